//! Forward activations from one real onnxruntime run with the intermediate tensors the
//! sweep reads exposed as outputs, plus the model's constants (initializers and Constant
//! nodes, read from the IR rather than copied out of the runtime), readable as f64 tensors.
//! Tensors that are not exposed keep their statically inferred shape.

use super::config::RuleConfig;
use super::graph_info::{batchnorm_folds, needed_values};
use super::tensor::{reshape, T};
use ndarray::{ArrayD, IxDyn};
use optimize_ir::data::HostTensor;
use optimize_ir::error::Result;
use optimize_ir::ir::tensor::to_f64;
use optimize_ir::ir::DataType;
use optimize_ir::ir::Model;
use optimize_ir::onnx_io::ExportOptions;
use optimize_runtimes::intermediates::{expose_selected, expose_untyped};
use optimize_runtimes::{OrtRuntime, OrtSession, OrtTensor};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// A recorded value: an f32 tensor stays in onnxruntime's buffer, anything else (small
/// integer tensors, the inputs) is a host copy.
enum Recorded {
    Host(HostTensor),
    Ort(OrtTensor),
}

impl Recorded {
    fn shape(&self) -> &[usize] {
        match self {
            Recorded::Host(t) => &t.shape,
            Recorded::Ort(t) => t.shape(),
        }
    }

    fn to_f64(&self) -> Option<Vec<f64>> {
        match self {
            Recorded::Host(t) => t.to_f64(),
            Recorded::Ort(t) => t.f32s().map(|v| v.iter().map(|&x| f64::from(x)).collect()),
        }
    }

    fn type_string(&self) -> String {
        match self {
            Recorded::Host(t) => t.type_string(),
            Recorded::Ort(t) => optimize_ir::data::host_tensor::type_string(t.dtype(), t.shape()),
        }
    }
}

/// Every tensor value of one forward pass the sweep needs, by name.
pub struct Activations {
    values: HashMap<String, Recorded>,
    consts: Arc<HashMap<String, T>>,
    /// Static shapes of tensors that were not exposed.
    shapes: Arc<HashMap<String, Vec<usize>>>,
}

/// Seconds spent in the phases of [`Collector::new`] and [`Collector::run`].
#[derive(Clone, Copy, Debug, Default)]
pub struct CollectTimes {
    /// Choosing and exposing tensors, serializing the model, reading constants.
    pub prepare_s: f64,
    /// Creating the onnxruntime session.
    pub session_s: f64,
    /// The onnxruntime run (its f32 outputs stay in onnxruntime's buffers).
    pub run_s: f64,
    /// Tensors exposed as outputs.
    pub exposed: usize,
    /// Bytes returned by the last run.
    pub bytes: usize,
}

/// A session on a model with the needed intermediates exposed: built once, run per input
/// (explaining several inputs pays for the session once).
pub struct Collector {
    session: OrtSession,
    consts: Arc<HashMap<String, T>>,
    shapes: Arc<HashMap<String, Vec<usize>>>,
    pub times: CollectTimes,
}

/// The f64 values of the initializers and of Constant nodes with a `value` tensor.
fn constants(model: &Model) -> HashMap<String, T> {
    let g = &model.graph;
    let mut consts = HashMap::new();
    let mut put = |name: &str, t: &onnx_protobuf::TensorProto| {
        if let Some(v) = to_f64(t) {
            let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
            if let Ok(a) = ArrayD::from_shape_vec(IxDyn(&dims), v) {
                consts.insert(name.to_string(), a);
            }
        }
    };
    for (name, t) in &g.initializers {
        put(name, t);
    }
    for (_, n) in g.nodes() {
        if !n.is("Constant") {
            continue;
        }
        if let (Some(out), Some(t)) = (
            n.outputs.first(),
            n.attr("value").and_then(|a| a.t.as_ref()),
        ) {
            put(out, t);
        }
    }
    consts
}

impl Collector {
    /// Chooses the tensors the sweep reads under any rule configuration
    /// ([`needed_values`] without BatchNormalization folding) and opens the session.
    /// Tensors whose shape is not statically known are exposed too.
    pub fn new(model: &Model) -> Result<Collector> {
        Collector::build(model, false, false)
    }

    /// [`Collector::new`] for one rule configuration: with folding on, the Conv outputs
    /// that only feed a folded BatchNormalization are not recorded.
    pub fn for_config(model: &Model, cfg: &RuleConfig) -> Result<Collector> {
        Collector::build(model, cfg.fold_batchnorm, false)
    }

    /// `all`: expose every intermediate (the old behaviour; for comparisons).
    pub fn with_all(model: &Model, cfg: &RuleConfig, all: bool) -> Result<Collector> {
        Collector::build(model, cfg.fold_batchnorm, all)
    }

    fn build(model: &Model, fold: bool, all: bool) -> Result<Collector> {
        let t0 = Instant::now();
        let g = &model.graph;
        let consts = constants(model);
        let folds = if fold {
            batchnorm_folds(g)
        } else {
            HashMap::new()
        };
        let need = needed_values(g, &folds);
        let mut shapes = HashMap::new();
        let mut expose: HashSet<String> = HashSet::new();
        for (_, n) in g.nodes() {
            for o in n.outputs.iter().filter(|o| !o.is_empty()) {
                if consts.contains_key(o) {
                    continue;
                }
                let dims = g.value_type(o).and_then(|t| t.static_dims());
                match dims {
                    Some(d) if !all && !need.contains(o) && d.iter().all(|&v| v >= 0) => {
                        shapes.insert(o.clone(), d.iter().map(|&v| v as usize).collect());
                    }
                    _ => {
                        expose.insert(o.clone());
                    }
                }
            }
        }
        let (mut exposed, mut added) = expose_selected(model, |o| expose.contains(o));
        added.extend(expose_untyped(&mut exposed, |o| expose.contains(o)));
        let bytes = optimize_ir::onnx_io::export::to_bytes(&exposed, &ExportOptions::default())?;
        let t1 = Instant::now();
        let session =
            OrtRuntime::get()?.session_without_arena_from_bytes(&bytes, "the relevance model")?;
        let t2 = Instant::now();
        Ok(Collector {
            session,
            consts: Arc::new(consts),
            shapes: Arc::new(shapes),
            times: CollectTimes {
                prepare_s: (t1 - t0).as_secs_f64(),
                session_s: (t2 - t1).as_secs_f64(),
                run_s: 0.0,
                exposed: added.len(),
                bytes: 0,
            },
        })
    }

    /// One forward pass on `inputs`.
    pub fn run(&mut self, inputs: &[(String, HostTensor)]) -> Result<Activations> {
        let t0 = Instant::now();
        let outs = self.session.run_kept(inputs)?;
        self.times.bytes = outs.iter().map(|(_, t)| t.byte_len()).sum();
        let mut values = HashMap::with_capacity(outs.len() + inputs.len());
        for (n, t) in outs {
            let v = if t.dtype() == DataType::Float {
                Recorded::Ort(t)
            } else {
                Recorded::Host(t.to_host().map_err(|e| {
                    optimize_ir::error::Error::Runtime(format!("output '{n}': {e}"))
                })?)
            };
            values.insert(n, v);
        }
        for (n, t) in inputs {
            values.insert(n.clone(), Recorded::Host(t.clone()));
        }
        self.times.run_s = t0.elapsed().as_secs_f64();
        Ok(Activations {
            values,
            consts: self.consts.clone(),
            shapes: self.shapes.clone(),
        })
    }
}

impl Activations {
    /// Runs `model` (whose types were inferred) once on onnxruntime with the needed
    /// intermediates exposed.
    pub fn collect(model: &Model, inputs: &[(String, HostTensor)]) -> Result<Activations> {
        Collector::new(model)?.run(inputs)
    }

    /// Activations from given values only (tests, or values computed elsewhere).
    pub fn from_values(values: HashMap<String, T>) -> Activations {
        Activations {
            values: HashMap::new(),
            consts: Arc::new(values),
            shapes: Arc::new(HashMap::new()),
        }
    }

    /// True when the value (not only the shape) of `name` is known.
    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name) || self.consts.contains_key(name)
    }

    fn recorded(&self, name: &str) -> std::result::Result<&Recorded, String> {
        self.values.get(name).ok_or_else(|| {
            if self.shapes.contains_key(name) {
                format!("the value of tensor '{name}' was not recorded (only its shape)")
            } else {
                format!("no value recorded for tensor '{name}'")
            }
        })
    }

    /// The value of `name` as f64.
    pub fn get(&self, name: &str) -> std::result::Result<T, String> {
        if let Some(c) = self.consts.get(name) {
            return Ok(c.clone());
        }
        let t = self.recorded(name)?;
        let v = t
            .to_f64()
            .ok_or_else(|| format!("tensor '{name}' ({}) has no numeric view", t.type_string()))?;
        reshape(
            ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).map_err(|e| e.to_string())?,
            t.shape(),
        )
    }

    /// The value of `name` as f64, borrowed when it is a constant (weights are read once
    /// per layer; copying them is a measurable part of a sweep).
    pub fn get_cow(&self, name: &str) -> std::result::Result<Cow<'_, T>, String> {
        match self.consts.get(name) {
            Some(c) => Ok(Cow::Borrowed(c)),
            None => self.get(name).map(Cow::Owned),
        }
    }

    /// The value of a recorded f32 tensor without widening (the fast f32 paths), borrowed
    /// from onnxruntime's buffer where it lies there; `None` when it is a constant, not
    /// f32, or not recorded.
    pub fn get_f32(&self, name: &str) -> Option<Cow<'_, [f32]>> {
        match self.values.get(name)? {
            Recorded::Ort(t) => t.f32s().map(Cow::Borrowed),
            Recorded::Host(t) => t.as_f32().map(Cow::Owned),
        }
    }

    /// The shape of `name`.
    pub fn shape(&self, name: &str) -> std::result::Result<Vec<usize>, String> {
        if let Some(c) = self.consts.get(name) {
            return Ok(c.shape().to_vec());
        }
        if let Some(t) = self.values.get(name) {
            return Ok(t.shape().to_vec());
        }
        self.shapes
            .get(name)
            .cloned()
            .ok_or_else(|| format!("no value recorded for tensor '{name}'"))
    }

    /// The value of `name` as integers (axes, shapes, indices).
    pub fn ints(&self, name: &str) -> std::result::Result<Vec<i64>, String> {
        Ok(self.get(name)?.iter().map(|&v| v as i64).collect())
    }
}
