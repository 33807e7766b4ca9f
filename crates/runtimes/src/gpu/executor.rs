//! The executor: plans a model once (tensor shapes from inference, host folding of shape
//! subgraphs, liveness), then runs it on the device: one compute pipeline per op kind
//! (cached by shader source), one dispatch per node, buffers recycled when a tensor dies.

use super::buffers::{BufferPool, TENSOR_USAGE};
use super::device::GpuDevice;
use super::exec::{to_words, Chunked, Exec, Plan, Runtime, TInfo};
use super::host::{fold, HVal};
use optimize_ir::data::HostTensor;
use optimize_ir::error::{Error, Result};
use optimize_ir::ir::{DataType, Model, Node, ValueType};
use optimize_ir::shape::{infer, Bindings};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// A model opened on a wgpu device; `run` has the shape of `OrtSession::run`.
pub struct WgpuSession {
    plan: Plan,
    rt: Runtime,
    /// Set when tensor shapes depend on the values of small integer inputs (an Expand or
    /// Reshape to a shape fed at run time): the plan is then made at run time, per value.
    deferred: Option<Deferred>,
}

/// A model planned at run time with some integer inputs folded in as constants and the
/// other inputs' shapes bound to the fed ones.
struct Deferred {
    model: Model,
    /// The inputs folded in.
    folded: Vec<String>,
    /// The folded values and the other inputs' shapes the current plan was made for.
    planned_for: Option<(Vec<HostTensor>, Vec<Vec<usize>>)>,
}

/// Largest integer input (elements) folded in as a constant by a deferred plan.
const MAX_FOLDED_INPUT: usize = 64;

fn tinfo(model: &Model, name: &str) -> Result<TInfo> {
    match model.graph.value_type(name) {
        Some(ValueType::Tensor {
            elem,
            shape: Some(dims),
        }) => {
            let mut shape = Vec::with_capacity(dims.len());
            for d in dims {
                match d.known() {
                    Some(v) if v >= 0 => shape.push(v as usize),
                    _ => {
                        return Err(Error::Runtime(format!(
                        "wgpu: tensor '{name}' has no static shape ({}); bind the model's dynamic \
                             dims with --input-shape",
                        optimize_ir::ir::types::fmt_shape(&Some(dims.clone()))
                    )))
                    }
                }
            }
            Ok(TInfo {
                dtype: *elem,
                shape,
            })
        }
        Some(other) => Err(Error::Runtime(format!(
            "wgpu: tensor '{name}' has type {other}; only tensors are supported"
        ))),
        None => Err(Error::Runtime(format!(
            "wgpu: tensor '{name}' has no inferred type"
        ))),
    }
}

impl Plan {
    /// Plans a model whose shapes have been inferred.
    pub fn new(model: &Model) -> Result<Plan> {
        if super::lower::has_sequence_ops(model) {
            return Plan::new(&super::lower::lower_sequences(model)?);
        }
        let g = &model.graph;
        let nodes: Vec<Node> = g.nodes().map(|(_, n)| n.clone()).collect();
        super::ops::check_supported(&nodes)?;
        let mut infos = HashMap::new();
        let mut consts = HashMap::new();
        for (name, t) in &g.initializers {
            let v = HVal::from_proto(t, name)?;
            infos.insert(
                name.clone(),
                TInfo {
                    dtype: v.dtype,
                    shape: v.shape.clone(),
                },
            );
            consts.insert(name.clone(), v);
        }
        let inputs: Vec<String> = g.runtime_inputs().iter().map(|s| s.to_string()).collect();
        for name in &inputs {
            infos.insert(name.clone(), tinfo(model, name)?);
        }
        let mut folded = Vec::with_capacity(nodes.len());
        for n in &nodes {
            let string_op = super::strings::is_string_op(n);
            if !string_op {
                if let Some(i) = n
                    .inputs
                    .iter()
                    .find(|i| infos.get(*i).is_some_and(|t| t.dtype == DataType::String))
                {
                    return Err(Error::Runtime(format!(
                        "wgpu: node '{}' ({}) reads the string tensor '{i}'; the wgpu executor \
                         runs only {} on strings",
                        n.name,
                        n.qualified_op(),
                        super::strings::STRING_OPS.join(", ")
                    )));
                }
            }
            for o in n.outputs.iter().filter(|o| !o.is_empty()) {
                if !infos.contains_key(o) {
                    // A string op's output shape may depend on the data (stopwords): the host
                    // value carries its shape.
                    let info = match tinfo(model, o) {
                        Err(_) if string_op => TInfo {
                            dtype: DataType::String,
                            shape: Vec::new(),
                        },
                        r => r?,
                    };
                    infos.insert(o.clone(), info);
                }
            }
            let ins: Vec<Option<&HVal>> = n.inputs.iter().map(|i| consts.get(i)).collect();
            let in_shapes: Vec<Option<Vec<usize>>> = n
                .inputs
                .iter()
                .map(|i| infos.get(i).map(|t: &TInfo| t.shape.clone()))
                .collect();
            let outs: Vec<(DataType, Vec<usize>)> = n
                .outputs
                .iter()
                .filter(|o| !o.is_empty())
                .filter_map(|o| infos.get(o).map(|t| (t.dtype, t.shape.clone())))
                .collect();
            let done = if n.outputs.len() == 1 && !string_op {
                fold(n, &ins, &in_shapes, &outs)
            } else {
                None
            };
            match done {
                Some(vals) => {
                    for (o, v) in n.outputs.iter().zip(vals) {
                        consts.insert(o.clone(), v);
                    }
                    folded.push(true);
                }
                None => folded.push(false),
            }
        }
        // Liveness: the last node reading each device tensor; graph outputs never die.
        let outputs = g.outputs.clone();
        let keep: HashSet<&String> = outputs.iter().collect();
        let mut last: HashMap<&String, usize> = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            if folded[i] {
                continue;
            }
            for inp in &n.inputs {
                if !inp.is_empty() && !consts.contains_key(inp) {
                    last.insert(inp, i);
                }
            }
        }
        let mut dies_after = vec![Vec::new(); nodes.len()];
        for (name, i) in last {
            if !keep.contains(name) {
                dies_after[i].push(name.clone());
            }
        }
        Ok(Plan {
            nodes,
            inputs,
            outputs,
            infos,
            consts,
            folded,
            dies_after,
            opset: model.opset("").unwrap_or(1),
        })
    }
}

/// Converts device words back to a host tensor of `dtype`.
fn from_words(dtype: DataType, shape: Vec<usize>, words: &[u32]) -> Result<HostTensor> {
    let f = |w: &u32| f32::from_bits(*w);
    let i = |w: &u32| *w as i32;
    let bytes: Vec<u8> = match dtype {
        DataType::Float => words.iter().flat_map(|w| f(w).to_le_bytes()).collect(),
        DataType::Double => words
            .iter()
            .flat_map(|w| (f(w) as f64).to_le_bytes())
            .collect(),
        DataType::Float16 => words
            .iter()
            .flat_map(|w| half::f16::from_f32(f(w)).to_le_bytes())
            .collect(),
        DataType::Bfloat16 => words
            .iter()
            .flat_map(|w| half::bf16::from_f32(f(w)).to_le_bytes())
            .collect(),
        DataType::Int64 => words
            .iter()
            .flat_map(|w| (i(w) as i64).to_le_bytes())
            .collect(),
        DataType::Uint64 => words
            .iter()
            .flat_map(|w| (i(w) as u32 as u64).to_le_bytes())
            .collect(),
        DataType::Int32 | DataType::Uint32 => words.iter().flat_map(|w| w.to_le_bytes()).collect(),
        DataType::Int16 | DataType::Uint16 => words
            .iter()
            .flat_map(|w| (i(w) as i16).to_le_bytes())
            .collect(),
        DataType::Int8 | DataType::Uint8 | DataType::Bool => {
            words.iter().map(|w| i(w) as u8).collect()
        }
        other => {
            return Err(Error::Runtime(format!(
                "wgpu: output element type {other} is not supported"
            )))
        }
    };
    Ok(HostTensor::new(dtype, shape, bytes))
}

/// Integer runtime inputs of at most [`MAX_FOLDED_INPUT`] elements (shape operands).
fn small_int_inputs(model: &Model) -> Vec<String> {
    model
        .graph
        .runtime_inputs()
        .iter()
        .filter(|name| {
            tinfo(model, name).is_ok_and(|t| t.dtype.is_integer() && t.count() <= MAX_FOLDED_INPUT)
        })
        .map(|s| s.to_string())
        .collect()
}

/// True when some runtime input has a dimension not known statically (bound at run time).
fn has_dynamic_inputs(model: &Model) -> bool {
    model
        .graph
        .runtime_inputs()
        .iter()
        .any(|name| tinfo(model, name).is_err())
}

fn host_to_tensor(v: &HVal) -> Result<HostTensor> {
    let words = to_words("output", v.dtype, &v.data)?;
    from_words(v.dtype, v.shape.clone(), &words)
}

impl WgpuSession {
    /// Opens a model file: loads it, infers shapes with `bindings`, plans it.
    pub fn from_file(
        path: &Path,
        bindings: &Bindings,
        adapter: Option<&str>,
    ) -> Result<WgpuSession> {
        let mut model = optimize_ir::onnx_io::load_model(path)?;
        infer(&mut model, bindings).map_err(|e| Error::input(path, e))?;
        Self::new(&model, adapter)
    }

    /// Plans an already shape-inferred model on a new device.
    pub fn new(model: &Model, adapter: Option<&str>) -> Result<WgpuSession> {
        let nodes: Vec<Node> = model.graph.nodes().map(|(_, n)| n.clone()).collect();
        super::ops::check_supported(&nodes)?;
        let (plan, deferred) = match Plan::new(model) {
            Ok(plan) => (plan, None),
            Err(e) => {
                let folded = small_int_inputs(model);
                if folded.is_empty() && !has_dynamic_inputs(model) {
                    return Err(e);
                }
                let plan = Plan {
                    nodes: Vec::new(),
                    inputs: model
                        .graph
                        .runtime_inputs()
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                    outputs: model.graph.outputs.clone(),
                    infos: HashMap::new(),
                    consts: HashMap::new(),
                    folded: Vec::new(),
                    dies_after: Vec::new(),
                    opset: model.opset("").unwrap_or(1),
                };
                let d = Deferred {
                    model: model.clone(),
                    folded,
                    planned_for: None,
                };
                (plan, Some(d))
            }
        };
        let gpu = GpuDevice::new(adapter)?;
        let dummy = Arc::new(gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dummy"),
            size: 16,
            usage: TENSOR_USAGE,
            mapped_at_creation: false,
        }));
        Ok(WgpuSession {
            plan,
            rt: Runtime {
                gpu,
                pipelines: HashMap::new(),
                uploads: HashMap::new(),
                chunk_uploads: HashMap::new(),
                pool: BufferPool::default(),
                dummy,
            },
            deferred,
        })
    }

    /// For a deferred session: (re)plans with the fed values of the folded inputs.
    fn replan(&mut self, inputs: &[(String, HostTensor)]) -> Result<()> {
        let Some(d) = &mut self.deferred else {
            return Ok(());
        };
        let fed = |name: &str| {
            inputs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
                .ok_or_else(|| Error::Runtime(format!("wgpu: input '{name}' was not given")))
        };
        let mut values = Vec::with_capacity(d.folded.len());
        for name in &d.folded {
            values.push(fed(name)?.clone());
        }
        let others: Vec<String> = d
            .model
            .graph
            .runtime_inputs()
            .iter()
            .filter(|n| !d.folded.iter().any(|f| f == *n))
            .map(|s| s.to_string())
            .collect();
        let mut bindings = Bindings::new();
        let mut shapes = Vec::with_capacity(others.len());
        for name in &others {
            let s = fed(name)?.shape.clone();
            bindings.insert(name.clone(), s.iter().map(|&d| d as i64).collect());
            shapes.push(s);
        }
        let key = (values, shapes);
        if d.planned_for.as_ref() == Some(&key) {
            return Ok(());
        }
        let values = &key.0;
        let mut m = d.model.clone();
        for (name, t) in d.folded.iter().zip(values) {
            m.graph.inputs.retain(|n| n != name);
            m.graph.initializers.insert(
                name.clone(),
                optimize_ir::data::pb::tensor_proto_from_host(t, name),
            );
        }
        m.graph
            .relink()
            .map_err(|e| Error::Internal(format!("wgpu: relinking the specialized model: {e}")))?;
        infer(&mut m, &bindings).map_err(|e| {
            Error::Runtime(format!(
                "wgpu: shapes with the fed values of [{}] folded in and the fed shapes bound: {e}",
                d.folded.join(", ")
            ))
        })?;
        let mut plan = Plan::new(&m)?;
        // Callers feed every input of the model, the folded ones included.
        plan.inputs = others;
        self.plan = plan;
        d.planned_for = Some(key);
        Ok(())
    }

    /// The adapter, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)`.
    pub fn device_description(&self) -> &str {
        &self.rt.gpu.description
    }

    pub fn input_names(&self) -> Vec<String> {
        match &self.deferred {
            Some(d) => d
                .model
                .graph
                .runtime_inputs()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            None => self.plan.inputs.clone(),
        }
    }

    pub fn output_names(&self) -> Vec<String> {
        self.plan.outputs.clone()
    }

    /// (pipelines compiled, buffers created, pool reuses) so far.
    pub fn stats(&self) -> (usize, usize, usize) {
        (
            self.rt.pipelines.len(),
            self.rt.pool.created,
            self.rt.pool.reused,
        )
    }

    /// Runs the model on named inputs and returns every graph output, in graph order.
    pub fn run(&mut self, inputs: &[(String, HostTensor)]) -> Result<Vec<(String, HostTensor)>> {
        self.replan(inputs)?;
        let plan = &self.plan;
        let rt = &mut self.rt;
        // String tensors stay on the host.
        let (mut live, mut strings) = upload_inputs(plan, rt, inputs)?;
        let enc = rt
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        let scope = rt
            .gpu
            .device
            .push_error_scope(wgpu::ErrorFilter::Validation);
        let (mut enc, chunked) = encode_nodes(plan, rt, enc, &mut live, &mut strings)?;
        let staged = stage_outputs(plan, rt, &mut enc, &live, &chunked, &strings)?;
        rt.gpu.queue.submit([enc.finish()]);
        if let Some(e) = super::device::block_on(scope.pop()) {
            return Err(Error::Internal(format!("wgpu: validation error: {e}")));
        }
        for (_, s) in &staged {
            s.slice(..).map_async(wgpu::MapMode::Read, |_| {});
        }
        rt.gpu
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Runtime(format!("wgpu: device lost while waiting: {e}")))?;
        let result = read_outputs(plan, &staged, &strings)?;
        for (_, b) in live.drain() {
            rt.pool.give(b);
        }
        Ok(result)
    }
}

/// A run's tensors held on the device, by name.
type LiveBuffers = HashMap<String, Arc<wgpu::Buffer>>;

/// Checks each fed input against the plan and uploads it to a pooled buffer; string
/// tensors stay on the host (the second map).
fn upload_inputs(
    plan: &Plan,
    rt: &mut Runtime,
    inputs: &[(String, HostTensor)],
) -> Result<(LiveBuffers, HashMap<String, HostTensor>)> {
    let mut live: LiveBuffers = HashMap::new();
    let mut strings: HashMap<String, HostTensor> = HashMap::new();
    for name in &plan.inputs {
        let t = inputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| Error::Runtime(format!("wgpu: input '{name}' was not given")))?;
        let info = &plan.infos[name];
        if t.dtype != info.dtype || t.shape != info.shape {
            return Err(Error::Runtime(format!(
                "wgpu: input '{name}' is {}, the model expects {}{:?}",
                t.type_string(),
                info.dtype,
                info.shape
            )));
        }
        if t.dtype == DataType::String {
            strings.insert(name.clone(), t.clone());
            continue;
        }
        let vals = t.to_f64().ok_or_else(|| {
            Error::Runtime(format!(
                "wgpu: input '{name}' of type {} cannot be fed",
                t.dtype
            ))
        })?;
        let words = to_words(name, t.dtype, &vals)?;
        rt.gpu
            .check_fits(name, &t.type_string(), words.len() as u64 * 4)?;
        let max = rt.gpu.max_binding_bytes();
        let b = rt.pool.take(&rt.gpu.device, words.len() as u64 * 4, max);
        if !words.is_empty() {
            rt.gpu.queue.write_buffer(
                &b,
                0,
                &words
                    .iter()
                    .flat_map(|w| w.to_le_bytes())
                    .collect::<Vec<u8>>(),
            );
        }
        live.insert(name.clone(), b);
    }
    Ok((live, strings))
}

/// Records every node that was not folded into `enc` (string ops run on the host), giving
/// each tensor's buffers back to the pool after its last reader. Returns the encoder and
/// the tensors held in row blocks.
fn encode_nodes(
    plan: &Plan,
    rt: &mut Runtime,
    enc: wgpu::CommandEncoder,
    live: &mut LiveBuffers,
    strings: &mut HashMap<String, HostTensor>,
) -> Result<(wgpu::CommandEncoder, HashMap<String, Arc<Chunked>>)> {
    let mut enc = Some(enc);
    let mut chunked: HashMap<String, Arc<Chunked>> = HashMap::new();
    for (i, n) in plan.nodes.iter().enumerate() {
        if plan.folded[i] {
            continue;
        }
        if super::strings::is_string_op(n) {
            let x = n
                .inputs
                .first()
                .and_then(|x| strings.get(x))
                .ok_or_else(|| {
                    Error::Runtime(format!(
                        "wgpu: node '{}' ({}): its input is not a host string tensor",
                        n.name, n.op_type
                    ))
                })?;
            let y = super::strings::string_normalizer(n, x)?;
            strings.insert(n.outputs[0].clone(), y);
            continue;
        }
        let mut ex = Exec {
            plan,
            rt: &mut *rt,
            enc: enc.take().expect("encoder"),
            live: std::mem::take(live),
            chunked: std::mem::take(&mut chunked),
            node: n,
            dispatches: 0,
        };
        let r =
            super::ops::run_node(&mut ex).and_then(|()| super::ops::round_half_outputs(&mut ex));
        enc = Some(ex.enc);
        *live = ex.live;
        chunked = ex.chunked;
        r?;
        for dead in &plan.dies_after[i] {
            if let Some(b) = live.remove(dead) {
                rt.pool.give(b);
            }
            if let Some(c) = chunked.remove(dead).and_then(Arc::into_inner) {
                for (_, _, b) in c.blocks {
                    rt.pool.give(b);
                }
            }
        }
    }
    Ok((enc.expect("encoder"), chunked))
}

/// Copies every device-computed graph output into a mappable staging buffer (outputs
/// must fit one binding).
fn stage_outputs(
    plan: &Plan,
    rt: &Runtime,
    enc: &mut wgpu::CommandEncoder,
    live: &LiveBuffers,
    chunked: &HashMap<String, Arc<Chunked>>,
    strings: &HashMap<String, HostTensor>,
) -> Result<Vec<(String, wgpu::Buffer)>> {
    let mut staged = Vec::new();
    for name in &plan.outputs {
        if plan.consts.contains_key(name) || strings.contains_key(name) {
            continue;
        }
        if chunked.contains_key(name) {
            return Err(Error::Runtime(format!(
                "wgpu: output '{name}' exceeds the device's max_storage_buffer_binding_size \
                 ({} bytes); graph outputs must fit one binding",
                rt.gpu.limits.max_storage_buffer_binding_size
            )));
        }
        let b = live
            .get(name)
            .ok_or_else(|| Error::Runtime(format!("wgpu: output '{name}' was not computed")))?;
        let bytes = (plan.infos[name].count() as u64 * 4).max(4);
        let s = rt.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        enc.copy_buffer_to_buffer(b, 0, &s, 0, bytes);
        staged.push((name.clone(), s));
    }
    Ok(staged)
}

/// Every graph output in graph order: host constants, host strings, and the mapped
/// staging buffers decoded to their types.
fn read_outputs(
    plan: &Plan,
    staged: &[(String, wgpu::Buffer)],
    strings: &HashMap<String, HostTensor>,
) -> Result<Vec<(String, HostTensor)>> {
    let mut result = Vec::with_capacity(plan.outputs.len());
    for name in &plan.outputs {
        if let Some(v) = plan.consts.get(name) {
            result.push((name.clone(), host_to_tensor(v)?));
            continue;
        }
        if let Some(t) = strings.get(name) {
            result.push((name.clone(), t.clone()));
            continue;
        }
        let s = &staged
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| Error::Internal(format!("output '{name}' not staged")))?
            .1;
        let info = &plan.infos[name];
        let words: Vec<u32> = {
            let view = s
                .get_mapped_range(..)
                .map_err(|e| Error::Runtime(format!("wgpu: cannot read output '{name}': {e}")))?;
            view.chunks_exact(4)
                .take(info.count())
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        s.unmap();
        result.push((
            name.clone(),
            from_words(info.dtype, info.shape.clone(), &words)?,
        ));
    }
    Ok(result)
}
