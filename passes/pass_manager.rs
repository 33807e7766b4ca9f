//! The pass manager: runs named passes over the IR in order, verifies the IR after each
//! one, times them, records what each changed, and turns a panic inside a pass into an
//! internal error that names the pass.
//!
//! After every pass the IR is verified (see [`TypeCheck`]); a failure is an
//! [`Error::Internal`] naming the pass and the tensor:
//! * **structure** ([`optimize_ir::ir::Graph::relink`]): every tensor read is defined exactly once,
//!   no cycle, and no dangling graph output (every output is produced by a node, an
//!   initializer or a graph input);
//! * **types**: shape inference, rerun on the graph the pass left, must agree with the
//!   element type (and rank, where both are known) the graph records for each tensor and
//!   declares for its outputs and `value_info`. Only where both sides are known is compared,
//!   and a disagreement that was already there before the pass is not blamed on it. When
//!   inference could not type the model a pass was given, its result after the pass is not
//!   an error either; when it could and no longer can, that is the pass's error.

use optimize_ir::error::{Error, Result};
use optimize_ir::ir::{Graph, Model, ValueInfo, ValueType};
use optimize_ir::shape::{current_bindings, infer, Bindings};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Instant;

/// What a pass reports about its run: counts of what it changed, keyed by a short label
/// (`removed_nodes`, `removed_initializers`, ...). Empty means nothing changed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PassChanges(pub BTreeMap<String, u64>);

impl PassChanges {
    pub fn add(&mut self, what: &str, n: u64) {
        if n > 0 {
            *self.0.entry(what.to_string()).or_insert(0) += n;
        }
    }
    pub fn changed(&self) -> bool {
        !self.0.is_empty()
    }
}

/// What a pass hands back: what it changed, and its section of the report if it writes one.
#[derive(Clone, Debug, Default)]
pub struct PassResult {
    pub changes: PassChanges,
    pub section: Option<ReportSection>,
}

impl PassResult {
    pub fn changed(&self) -> bool {
        self.changes.changed()
    }
}

impl From<PassChanges> for PassResult {
    fn from(changes: PassChanges) -> PassResult {
        PassResult {
            changes,
            section: None,
        }
    }
}

/// A pass's section of the report. `body` is what the report carries under `key` (its
/// schema is `schema/report.schema.json`); the fields beside it are what later steps of the
/// run need from the pass, typed, so that nobody reads them back out of the JSON.
#[derive(Clone, Debug)]
pub struct ReportSection {
    pub key: &'static str,
    pub body: serde_json::Value,
    /// The output's numbers differ from the input's by design (mixed precision), so
    /// validation judges fidelity instead of the element-wise tolerance.
    pub lossy: bool,
    /// The folder the pass calibrated on: validation uses it when no `--inputs` are given.
    pub calibration_dir: Option<PathBuf>,
    /// The samples of that folder the pass held out of calibration for validation.
    pub held_out_samples: Vec<String>,
    /// The memory plan for `--plan` (with every tile event when tiled), kept out of the
    /// report when it is larger than what the report carries.
    pub plan: Option<serde_json::Value>,
}

impl ReportSection {
    /// A section with nothing beside its body.
    pub fn new(key: &'static str, body: serde_json::Value) -> ReportSection {
        ReportSection {
            key,
            body,
            lossy: false,
            calibration_dir: None,
            held_out_samples: Vec::new(),
            plan: None,
        }
    }
}

/// Reruns shape inference after a pass's rewrite changed the graph (`changed`), with the
/// bindings the model had before it; a failure is the pass's bug, named by `what`.
pub fn retype_if(changed: bool, model: &mut Model, bindings: &Bindings, what: &str) -> Result<()> {
    if changed {
        infer(model, bindings)
            .map_err(|e| Error::Internal(format!("shape inference after {what}: {e}")))?;
    }
    Ok(())
}

/// What the pass manager knows of the run so far, for a pass that needs more than the
/// model in front of it.
#[derive(Clone, Debug, Default)]
pub struct PassContext {
    /// Each pass that ran, with the model's weight bytes just before it.
    weight_bytes_before: Vec<(&'static str, u64)>,
}

impl PassContext {
    /// The weight bytes of the model just before `pass` first ran in this run, if it ran.
    pub fn weight_bytes_before(&self, pass: &str) -> Option<u64> {
        self.weight_bytes_before
            .iter()
            .find(|(name, _)| *name == pass)
            .map(|(_, b)| *b)
    }
}

/// A transformation of the IR with a name. Passes see only the model (and what they are
/// constructed with); analyses they need are computed through public IR APIs.
pub trait Pass {
    fn name(&self) -> &'static str;
    fn run(&self, model: &mut Model) -> Result<PassResult>;
    /// [`Pass::run`] inside a pass manager's run, which `ctx` describes.
    fn run_in(&self, model: &mut Model, ctx: &PassContext) -> Result<PassResult> {
        let _ = ctx;
        self.run(model)
    }
}

/// One pass's entry in the report.
#[derive(Clone, Debug, Serialize)]
pub struct PassRecord {
    pub name: String,
    pub seconds: f64,
    pub changed: bool,
    pub changes: BTreeMap<String, u64>,
    /// Seconds spent verifying the IR after the pass (not in the report: its schema is fixed).
    #[serde(skip)]
    pub verify_seconds: f64,
    /// The pass's report section; the pipeline moves it into the report's sections.
    #[serde(skip)]
    pub section: Option<ReportSection>,
}

#[derive(Default)]
pub struct PassManager {
    passes: Vec<Box<dyn Pass>>,
}

impl PassManager {
    pub fn new() -> PassManager {
        PassManager::default()
    }

    pub fn add(&mut self, pass: impl Pass + 'static) -> &mut Self {
        self.passes.push(Box::new(pass));
        self
    }

    /// [`PassManager::add`] for a pass built at run time (see [`crate::registry`]).
    pub fn add_boxed(&mut self, pass: Box<dyn Pass>) -> &mut Self {
        self.passes.push(pass);
        self
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    /// Runs every pass in order; stops at the first failure.
    pub fn run(&self, model: &mut Model) -> Result<Vec<PassRecord>> {
        self.run_with(model, |_, _, _| Ok(()))
    }

    /// [`PassManager::run`], calling `after(position, pass name, model)` once each pass has
    /// run and its result is verified (`position` counts from 0); an error from `after`
    /// stops the run.
    pub fn run_with(
        &self,
        model: &mut Model,
        mut after: impl FnMut(usize, &str, &Model) -> Result<()>,
    ) -> Result<Vec<PassRecord>> {
        let mut records = Vec::new();
        let mut types = TypeCheck::new(model);
        let mut ctx = PassContext::default();
        for (position, pass) in self.passes.iter().enumerate() {
            let start = Instant::now();
            ctx.weight_bytes_before
                .push((pass.name(), model.graph.parameter_stats().1));
            let outcome =
                catch_unwind(AssertUnwindSafe(|| pass.run_in(model, &ctx))).map_err(|p| {
                    Error::Internal(format!(
                        "pass '{}' panicked: {}",
                        pass.name(),
                        panic_message(&p)
                    ))
                })??;
            model.graph.relink().map_err(|e| {
                Error::Internal(format!("pass '{}' left an invalid graph: {e}", pass.name()))
            })?;
            let seconds = start.elapsed().as_secs_f64();
            let verify = Instant::now();
            types.check(pass.name(), model)?;
            records.push(PassRecord {
                name: pass.name().to_string(),
                seconds,
                changed: outcome.changed(),
                changes: outcome.changes.0,
                verify_seconds: verify.elapsed().as_secs_f64(),
                section: outcome.section,
            });
            after(position, pass.name(), model)?;
        }
        Ok(records)
    }
}

/// The type check after each pass: shape inference rerun on the pass's result, compared with
/// the types the graph records and declares (see the module docs).
pub struct TypeCheck {
    /// The input shapes the model was typed with, kept for every rerun.
    bindings: Bindings,
    /// Whether inference typed the model the next pass is given.
    typed: bool,
    /// Tensors whose recorded or declared type disagreed with inference already: a pass is
    /// blamed only for new disagreements.
    known: BTreeSet<String>,
}

impl TypeCheck {
    /// Types `model` as the first pass will get it.
    pub fn new(model: &mut Model) -> TypeCheck {
        let bindings = current_bindings(model);
        let (typed, known) = match infer_types(model, &bindings) {
            Ok(inferred) => (
                true,
                disagreements(&model.graph, &inferred).into_keys().collect(),
            ),
            Err(_) => (false, BTreeSet::new()),
        };
        TypeCheck {
            bindings,
            typed,
            known,
        }
    }

    /// Whether shape inference typed the model last checked (else types are not compared).
    pub fn typed(&self) -> bool {
        self.typed
    }

    /// Checks the model `pass` left.
    pub fn check(&mut self, pass: &str, model: &mut Model) -> Result<()> {
        let inferred = match infer_types(model, &self.bindings) {
            Ok(inferred) => inferred,
            Err(e) if self.typed => {
                return Err(Error::Internal(format!(
                    "pass '{pass}' left a graph shape inference cannot type: {e}"
                )))
            }
            // Inference failed before this pass too: nothing to compare, nothing to blame.
            Err(_) => return Ok(()),
        };
        let found = disagreements(&model.graph, &inferred);
        if let Some((tensor, what)) = found.iter().find(|(t, _)| !self.known.contains(*t)) {
            return Err(Error::Internal(format!(
                "pass '{pass}' left tensor '{tensor}' with {what}"
            )));
        }
        self.typed = true;
        self.known = found.into_keys().collect();
        Ok(())
    }
}

/// Shape inference on the model's type table alone: inference fills the table, which is then
/// put back as it was, so the model is unchanged (its weights are never copied). A panic
/// inside inference counts as a failure.
fn infer_types(
    model: &mut Model,
    bindings: &Bindings,
) -> std::result::Result<HashMap<String, ValueInfo>, String> {
    let recorded = model.graph.values.clone();
    let outcome = catch_unwind(AssertUnwindSafe(|| infer(model, bindings)));
    let inferred = std::mem::replace(&mut model.graph.values, recorded);
    match outcome {
        Ok(Ok(_)) => Ok(inferred),
        Ok(Err(e)) => Err(e.to_string()),
        Err(p) => Err(format!("shape inference panicked: {}", panic_message(&p))),
    }
}

/// Every tensor whose type the graph records (and, for outputs and `value_info`, declares)
/// disagrees with `inferred`: a different element type, or a different rank where both are
/// known. Keyed by tensor name, with what disagrees.
fn disagreements(g: &Graph, inferred: &HashMap<String, ValueInfo>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let inferred_ty = |name: &str| inferred.get(name).and_then(|v| v.ty.as_ref());
    for (name, info) in &g.values {
        if let Some(what) = type_disagreement("recorded", info.ty.as_ref(), inferred_ty(name)) {
            out.insert(name.clone(), what);
        }
    }
    for name in g.outputs.iter().chain(&g.value_info_names) {
        let declared = g
            .values
            .get(name)
            .and_then(|v| v.declared.as_ref())
            .and_then(|d| d.type_.as_ref())
            .and_then(optimize_ir::onnx_io::type_proto::value_type_from_proto);
        if let Some(what) = type_disagreement("declared", declared.as_ref(), inferred_ty(name)) {
            out.entry(name.clone()).or_insert(what);
        }
    }
    out
}

/// How `graph` (the type the graph records or declares) and `inferred` disagree, comparing
/// dense tensors only and only what both sides know.
fn type_disagreement(
    how: &str,
    graph: Option<&ValueType>,
    inferred: Option<&ValueType>,
) -> Option<String> {
    let (
        Some(ValueType::Tensor { elem: a, shape: sa }),
        Some(ValueType::Tensor { elem: b, shape: sb }),
    ) = (graph, inferred)
    else {
        return None;
    };
    if a != b {
        return Some(format!(
            "element type {a} {how} in the graph, but shape inference gives {b}"
        ));
    }
    match (sa, sb) {
        (Some(x), Some(y)) if x.len() != y.len() => Some(format!(
            "rank {} {how} in the graph, but shape inference gives rank {}",
            x.len(),
            y.len()
        )),
        _ => None,
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_protobuf::{attribute_proto::AttributeType, AttributeProto, TensorProto};
    use optimize_ir::ir::{DataType, Node};

    /// A pass from a function, for the tests.
    struct FnPass(&'static str, fn(&mut Model));

    impl Pass for FnPass {
        fn name(&self) -> &'static str {
            self.0
        }
        fn run(&self, model: &mut Model) -> Result<PassResult> {
            (self.1)(model);
            Ok(PassResult::default())
        }
    }

    fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> Node {
        Node {
            op_type: op.into(),
            name: name.into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn int_attr(name: &str, v: i64) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            type_: AttributeType::INT.into(),
            i: v,
            ..Default::default()
        }
    }

    fn weight(dims: &[i64]) -> TensorProto {
        let n: i64 = dims.iter().product();
        TensorProto {
            name: "w".into(),
            data_type: 1,
            dims: dims.to_vec(),
            raw_data: vec![0; 4 * n as usize],
            ..Default::default()
        }
    }

    /// `y = Identity(Relu(x) · w)`, x: float[2,3], w: float[3,w_cols] (inner dims must agree
    /// for inference to type it), inferred.
    fn model(w_rows: i64) -> Model {
        let mut m = Model {
            ir_version: 8,
            opsets: vec![(String::new(), 17)],
            ..Default::default()
        };
        let g = &mut m.graph;
        g.inputs = vec!["x".into()];
        g.outputs = vec!["y".into()];
        g.initializers.insert("w".into(), weight(&[w_rows, 4]));
        g.set_value_type("x", ValueType::tensor(DataType::Float, &[2, 3]));
        g.add_node(node("Relu", "relu", &["x"], &["r"]));
        g.add_node(node("MatMul", "mm", &["r", "w"], &["p"]));
        g.add_node(node("Identity", "id", &["p"], &["y"]));
        g.relink().expect("relink");
        let _ = infer(&mut m, &Bindings::new());
        m
    }

    fn run(m: &mut Model, pass: fn(&mut Model)) -> Result<Vec<PassRecord>> {
        let mut pm = PassManager::new();
        pm.add(FnPass("p", |_| {}));
        pm.add(FnPass("edit", pass));
        pm.run(m)
    }

    fn internal(r: Result<Vec<PassRecord>>) -> String {
        match r {
            Err(Error::Internal(msg)) => msg,
            other => panic!("expected an internal error, got {other:?}"),
        }
    }

    #[test]
    fn a_pass_that_keeps_the_types_passes_and_the_model_is_unchanged() {
        let mut m = model(3);
        let before = optimize_ir::ir::dump::dump(&m);
        let records = run(&mut m, |_| {}).expect("run");
        assert_eq!(records.len(), 2);
        assert!(records.iter().all(|r| r.verify_seconds >= 0.0));
        assert_eq!(optimize_ir::ir::dump::dump(&m), before);
    }

    #[test]
    fn a_dangling_output_names_the_pass_and_the_tensor() {
        let mut m = model(3);
        let msg = internal(run(&mut m, |m| {
            let id = m.graph.indices_of(&["Identity"])[0];
            m.graph.remove_node(id);
        }));
        assert!(msg.contains("pass 'edit'"), "{msg}");
        assert!(msg.contains("graph output 'y'"), "{msg}");
    }

    #[test]
    fn an_element_type_the_graph_does_not_record_names_the_pass_and_the_tensor() {
        let mut m = model(3);
        // Relu becomes a Cast to int32: every type after it changes, none is updated.
        let msg = internal(run(&mut m, |m| {
            let relu = m.graph.indices_of(&["Relu"])[0];
            let n = &mut m.graph.ops[relu];
            n.op_type = "Cast".into();
            n.attributes.push(int_attr("to", DataType::Int32 as i64));
        }));
        assert!(msg.contains("pass 'edit'"), "{msg}");
        assert!(
            msg.contains("tensor 'p'") || msg.contains("tensor 'r'"),
            "{msg}"
        );
        assert!(msg.contains("element type float recorded"), "{msg}");
    }

    #[test]
    fn a_rank_the_graph_does_not_record_names_the_pass_and_the_tensor() {
        let mut m = model(3);
        // The Identity becomes a ReduceMax over every axis: a scalar where [2,4] is recorded.
        let msg = internal(run(&mut m, |m| {
            let id = m.graph.indices_of(&["Identity"])[0];
            let n = &mut m.graph.ops[id];
            n.op_type = "ReduceMax".into();
            n.attributes.push(int_attr("keepdims", 0));
        }));
        assert!(msg.contains("pass 'edit' left tensor 'y'"), "{msg}");
        assert!(msg.contains("rank 2"), "{msg}");
        assert!(msg.contains("gives rank 0"), "{msg}");
    }

    #[test]
    fn breaking_inference_is_the_pass_error() {
        let mut m = model(3);
        let msg = internal(run(&mut m, |m| {
            m.graph.initializers.insert("w".into(), weight(&[5, 4]));
        }));
        assert!(
            msg.contains("pass 'edit' left a graph shape inference cannot type"),
            "{msg}"
        );
    }

    #[test]
    fn a_model_inference_could_not_type_before_is_not_blamed() {
        // Inner dimensions 3 and 5 differ: inference fails on the input already.
        let mut m = model(5);
        run(&mut m, |m| {
            let id = m.graph.indices_of(&["Identity"])[0];
            m.graph.ops[id].op_type = "Relu".into();
        })
        .expect("not the pass's fault");
    }

    #[test]
    fn a_declared_type_that_was_already_wrong_is_not_blamed() {
        let mut m = model(3);
        let declared = onnx_protobuf::ValueInfoProto {
            name: "y".into(),
            type_: Some(optimize_ir::onnx_io::type_proto::value_type_to_proto(
                &ValueType::tensor(DataType::Int64, &[2, 4]),
            ))
            .into(),
            ..Default::default()
        };
        m.graph.values.get_mut("y").expect("y").declared = Some(declared);
        run(&mut m, |_| {}).expect("the file declared it so");
        // A new disagreement after it is still found.
        let msg = internal(run(&mut m, |m| {
            let relu = m.graph.indices_of(&["Relu"])[0];
            let n = &mut m.graph.ops[relu];
            n.op_type = "Cast".into();
            n.attributes.push(int_attr("to", DataType::Int32 as i64));
        }));
        assert!(
            msg.contains("tensor 'p'") || msg.contains("tensor 'r'"),
            "{msg}"
        );
    }
}
