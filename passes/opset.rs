//! Raising the default-domain opset (per-channel QuantizeLinear/DequantizeLinear need 13),
//! rewriting the ops whose signature or semantics changed on the way so the model computes
//! exactly what it did. Ops not known to be unchanged are refused by name.
//!
//! A pass of its own (`[[pass]] name = "opset"`, option `version`, 13 by default) and the
//! step the precision rewrite takes when a format it chose needs opset 13.

use crate::pass_manager::{retype_if, Pass, PassChanges, PassResult};
use onnx_protobuf::TensorProto;
use optimize_ir::error::{Error, Result};
use optimize_ir::ir::attr::AttrExt;
use optimize_ir::ir::build::{a_int, node, Namer};
use optimize_ir::ir::{canonical_domain, DataType, Graph, Model, Node, ValueType};
use optimize_ir::shape::current_bindings;
use petgraph::stable_graph::NodeIndex;

/// The pass's name.
pub const PASS_NAME: &str = "opset";

/// The version the pass raises to unless its `version` option says otherwise.
pub const DEFAULT_TARGET: i64 = 13;

/// The keys a `[[pass]] name = "opset"` entry may give.
pub const OPTION_KEYS: &[&str] = &["version"];

/// Raises the default-domain opset to `target` ([`upgrade_default_opset`]).
pub struct UpgradeOpset {
    pub target: i64,
}

impl UpgradeOpset {
    /// The pass for a `[[pass]]` entry's options (`version`, 7 to 13).
    pub fn from_options(options: &toml::Table) -> Result<UpgradeOpset> {
        let mut target = DEFAULT_TARGET;
        for (k, v) in options {
            match (k.as_str(), v.as_integer()) {
                ("version", Some(t)) if (7..=13).contains(&t) => target = t,
                ("version", _) => {
                    return Err(Error::Usage(format!(
                        "pass 'opset': bad value for 'version': {v:?} (expected 7 to 13)"
                    )))
                }
                (other, _) => {
                    return Err(Error::Usage(format!(
                        "pass 'opset' takes no option '{other}' (known: {})",
                        OPTION_KEYS.join(", ")
                    )))
                }
            }
        }
        Ok(UpgradeOpset { target })
    }
}

impl Pass for UpgradeOpset {
    fn name(&self) -> &'static str {
        PASS_NAME
    }

    fn run(&self, model: &mut Model) -> Result<PassResult> {
        let bindings = current_bindings(model);
        let rewritten = upgrade_default_opset(model, self.target)?;
        // The nodes it added (Flatten around an old Softmax, say) get their types.
        retype_if(!rewritten.is_empty(), model, &bindings, "the opset upgrade")?;
        let mut changes = PassChanges::default();
        changes.add("rewritten_nodes", rewritten.len() as u64);
        Ok(changes.into())
    }
}

/// Ops whose behaviour is the same at every default-domain version from 7 to 13 (later
/// versions only added types or optional attributes with the old default).
const UNCHANGED: &[&str] = &[
    "Abs",
    "Acos",
    "Acosh",
    "Add",
    "And",
    "ArgMax",
    "ArgMin",
    "Asin",
    "Asinh",
    "Atan",
    "Atanh",
    "AveragePool",
    "BitShift",
    "Cast",
    "Ceil",
    "Celu",
    "Compress",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "ConvInteger",
    "ConvTranspose",
    "Cos",
    "Cosh",
    "CumSum",
    "DepthToSpace",
    "DequantizeLinear",
    "Det",
    "Div",
    "DynamicQuantizeLinear",
    "Einsum",
    "Elu",
    "Equal",
    "Erf",
    "Exp",
    "Expand",
    "EyeLike",
    "Flatten",
    "Floor",
    "GRU",
    "Gather",
    "GatherElements",
    "GatherND",
    "Gemm",
    "GlobalAveragePool",
    "GlobalLpPool",
    "GlobalMaxPool",
    "Greater",
    "GreaterOrEqual",
    "HardSigmoid",
    "Identity",
    "InstanceNormalization",
    "IsInf",
    "IsNaN",
    "LRN",
    "LSTM",
    "LeakyRelu",
    "Less",
    "LessOrEqual",
    "Log",
    "LpNormalization",
    "LpPool",
    "MatMul",
    "MatMulInteger",
    "Max",
    "MaxPool",
    "MaxRoiPool",
    "MaxUnpool",
    "Mean",
    "MeanVarianceNormalization",
    "Min",
    "Mod",
    "Mul",
    "Multinomial",
    "Neg",
    "NonMaxSuppression",
    "NonZero",
    "Not",
    "OneHot",
    "Or",
    "PRelu",
    "Pow",
    "QLinearConv",
    "QLinearMatMul",
    "QuantizeLinear",
    "RNN",
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Range",
    "Reciprocal",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSumSquare",
    "Relu",
    "Reshape",
    "ReverseSequence",
    "RoiAlign",
    "Round",
    "ScatterElements",
    "ScatterND",
    "Selu",
    "Shape",
    "Shrink",
    "Sigmoid",
    "Sign",
    "Sin",
    "Sinh",
    "Size",
    "Softplus",
    "Softsign",
    "SpaceToDepth",
    "Sqrt",
    "Sub",
    "Sum",
    "Tan",
    "Tanh",
    "ThresholdedRelu",
    "Tile",
    "Transpose",
    "Unique",
    "Where",
    "Xor",
];

fn int64_init(name: &str, v: &[i64], scalar: bool) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.to_string();
    t.data_type = DataType::Int64 as i32;
    t.dims = if scalar { vec![] } else { vec![v.len() as i64] };
    t.raw_data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    t
}

fn f32_scalar(name: &str, v: f32) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.to_string();
    t.data_type = DataType::Float as i32;
    t.raw_data = v.to_le_bytes().to_vec();
    t
}

fn take_attr(n: &mut Node, name: &str) -> Option<onnx_protobuf::AttributeProto> {
    let i = n.attributes.iter().position(|a| a.name == name)?;
    Some(n.attributes.remove(i))
}

fn rank_of(model: &Model, name: &str) -> Option<usize> {
    model
        .graph
        .value_type(name)
        .and_then(ValueType::dims)
        .map(|d| d.len())
}

/// Raises the default-domain opset from 7..=12 to `target` (13 at most here), rewriting
/// Squeeze/Unsqueeze/ReduceSum axes and Split's split into inputs, Clip/Pad/Slice/TopK/
/// Dropout attributes into inputs, BatchNormalization's `spatial`, and Softmax/LogSoftmax/
/// Hardmax (old versions flatten to 2-D at `axis`: kept exactly with Flatten → op(-1) →
/// Reshape when `axis` is not the last). Raises `ir_version` to 7 when needed. Returns what
/// changed, one line per rewritten node (empty when the opset already is ≥ `target`).
pub fn upgrade_default_opset(model: &mut Model, target: i64) -> Result<Vec<String>> {
    let from = model.opset("").unwrap_or(1);
    if from >= target {
        return Ok(Vec::new());
    }
    if target > 13 {
        return Err(Error::Usage(format!(
            "opset upgrade to {target} is not supported (13 at most)"
        )));
    }
    if from < 7 {
        return Err(Error::Usage(format!(
            "cannot upgrade a model at default opset {from} (7 or later needed)"
        )));
    }
    // Check everything first so a refusal leaves the model untouched.
    check_upgradable(model, from, target)?;
    let mut up = Upgrade {
        from,
        namer: Namer::new(&model.graph),
        changes: Vec::new(),
        new_inits: Vec::new(),
        new_nodes: Vec::new(),
    };
    let indices: Vec<_> = model.graph.order.clone();
    for idx in indices {
        let g = &mut model.graph;
        let n = &g.ops[idx];
        if !canonical_domain(&n.domain).is_empty() {
            continue;
        }
        let label = format!("{} '{}'", n.op_type, n.name);
        let base = n.outputs.first().cloned().unwrap_or_default();
        if matches!(n.op_type.as_str(), "Softmax" | "LogSoftmax" | "Hardmax") {
            up.softmax(g, idx, &label, &base);
        } else {
            up.attributes_to_inputs(&mut g.ops[idx], &label, &base);
        }
    }
    let Upgrade {
        mut changes,
        new_inits,
        new_nodes,
        ..
    } = up;
    let g = &mut model.graph;
    for t in new_inits {
        let dims = t.dims.clone();
        let dt = DataType::from_onnx(t.data_type).unwrap_or(DataType::Float);
        g.set_value_type(&t.name, ValueType::tensor(dt, &dims));
        g.initializers.insert(t.name.clone(), t);
    }
    for n in new_nodes {
        g.add_node(n);
    }
    g.relink()
        .map_err(|e| Error::Internal(format!("opset upgrade broke the graph: {e}")))?;
    for (d, v) in model.opsets.iter_mut() {
        if canonical_domain(d).is_empty() {
            *v = target;
        }
    }
    if model.opset("").is_none() {
        model.opsets.push((String::new(), target));
    }
    changes.push(format!("default opset {from} → {target}"));
    if model.ir_version < 7 {
        changes.push(format!("ir_version {} → 7", model.ir_version));
        model.ir_version = 7;
    }
    Ok(changes)
}

/// Refuses the upgrade (before anything changes) when a default-domain node has
/// subgraphs, has no known rewrite, is a BatchNormalization with spatial=0, or is a
/// Softmax-like op whose input rank is unknown and needed.
fn check_upgradable(model: &Model, from: i64, target: i64) -> Result<()> {
    for (_, n) in model.graph.nodes() {
        if !canonical_domain(&n.domain).is_empty() {
            continue;
        }
        if n.subgraphs().next().is_some() {
            return Err(Error::Usage(format!(
                "opset upgrade {from}→{target}: node '{}' ({}) has subgraphs, which are not upgraded",
                n.name, n.op_type
            )));
        }
        let op = n.op_type.as_str();
        let known = UNCHANGED.contains(&op)
            || matches!(
                op,
                "Squeeze"
                    | "Unsqueeze"
                    | "ReduceSum"
                    | "Split"
                    | "Softmax"
                    | "LogSoftmax"
                    | "Hardmax"
                    | "Clip"
                    | "Pad"
                    | "Slice"
                    | "TopK"
                    | "Dropout"
                    | "BatchNormalization"
            )
            || (op == "Resize" && from >= 11);
        if !known {
            return Err(Error::Usage(format!(
                "opset upgrade {from}→{target}: no known rewrite for op {op} (node '{}')",
                n.name
            )));
        }
        if op == "BatchNormalization"
            && n.attr("spatial").and_then(|a| a.as_int()).unwrap_or(1) != 1
        {
            return Err(Error::Usage(format!(
                "opset upgrade: BatchNormalization '{}' with spatial=0 has no opset-13 form",
                n.name
            )));
        }
        if matches!(op, "Softmax" | "LogSoftmax" | "Hardmax") && from < 13 {
            let axis = n.attr("axis").and_then(|a| a.as_int()).unwrap_or(1);
            let r = n.inputs.first().and_then(|x| rank_of(model, x));
            if r.is_none() && axis != -1 {
                return Err(Error::Usage(format!(
                    "opset upgrade: {op} '{}' needs its input's rank (run shape inference first)",
                    n.name
                )));
            }
        }
    }
    Ok(())
}

/// The upgrade in progress: the initializers and nodes to add once every node is
/// rewritten (added after the walk, in the order they were made), and the change log.
struct Upgrade {
    from: i64,
    namer: Namer,
    changes: Vec<String>,
    new_inits: Vec<TensorProto>,
    new_nodes: Vec<Node>,
}

impl Upgrade {
    /// The node-local rewrites: attributes that became inputs (as new initializers), and
    /// BatchNormalization's `spatial=1` dropped.
    fn attributes_to_inputs(&mut self, n: &mut Node, label: &str, base: &str) {
        let from = self.from;
        let (namer, new_inits, changes) = (&mut self.namer, &mut self.new_inits, &mut self.changes);
        match n.op_type.as_str() {
            "Squeeze" | "Unsqueeze" | "ReduceSum" => {
                if let Some(a) = take_attr(n, "axes") {
                    let nm = namer.fresh(&format!("{base}__axes"));
                    new_inits.push(int64_init(&nm, &a.ints, false));
                    n.inputs.truncate(1);
                    n.inputs.push(nm);
                    changes.push(format!("{label}: axes attribute → input"));
                }
            }
            "Split" => {
                if let Some(a) = take_attr(n, "split") {
                    let nm = namer.fresh(&format!("{base}__split"));
                    new_inits.push(int64_init(&nm, &a.ints, false));
                    n.inputs.truncate(1);
                    n.inputs.push(nm);
                    changes.push(format!("{label}: split attribute → input"));
                }
            }
            "Clip" if from < 11 => {
                let lo = take_attr(n, "min").map(|a| a.f);
                let hi = take_attr(n, "max").map(|a| a.f);
                n.inputs.truncate(1);
                for (v, what) in [(lo, "min"), (hi, "max")] {
                    match v {
                        Some(v) => {
                            let nm = namer.fresh(&format!("{base}__{what}"));
                            new_inits.push(f32_scalar(&nm, v));
                            n.inputs.push(nm);
                        }
                        None => n.inputs.push(String::new()),
                    }
                }
                while n.inputs.last().is_some_and(|s| s.is_empty()) {
                    n.inputs.pop();
                }
                changes.push(format!("{label}: min/max attributes → inputs"));
            }
            "Pad" if from < 11 => {
                let pads = take_attr(n, "pads").map(|a| a.ints).unwrap_or_default();
                let value = take_attr(n, "value").map_or(0.0, |a| a.f);
                let nm = namer.fresh(&format!("{base}__pads"));
                new_inits.push(int64_init(&nm, &pads, false));
                n.inputs.truncate(1);
                n.inputs.push(nm);
                if value != 0.0 {
                    let nv = namer.fresh(&format!("{base}__value"));
                    new_inits.push(f32_scalar(&nv, value));
                    n.inputs.push(nv);
                }
                changes.push(format!("{label}: pads/value attributes → inputs"));
            }
            "Slice" if from < 10 => {
                n.inputs.truncate(1);
                for what in ["starts", "ends", "axes"] {
                    if let Some(a) = take_attr(n, what) {
                        let nm = namer.fresh(&format!("{base}__{what}"));
                        new_inits.push(int64_init(&nm, &a.ints, false));
                        n.inputs.push(nm);
                    }
                }
                changes.push(format!("{label}: starts/ends/axes attributes → inputs"));
            }
            "TopK" if from < 10 => {
                let k = take_attr(n, "k").map_or(0, |a| a.i);
                let nm = namer.fresh(&format!("{base}__k"));
                new_inits.push(int64_init(&nm, &[k], false));
                n.inputs.truncate(1);
                n.inputs.push(nm);
                changes.push(format!("{label}: k attribute → input"));
            }
            "Dropout" if from < 12 => {
                let ratio = take_attr(n, "ratio").map_or(0.5, |a| a.f);
                take_attr(n, "is_test");
                let nm = namer.fresh(&format!("{base}__ratio"));
                new_inits.push(f32_scalar(&nm, ratio));
                n.inputs.truncate(1);
                n.inputs.push(nm);
                changes.push(format!("{label}: ratio attribute → input"));
            }
            "BatchNormalization" if n.attr("spatial").is_some() => {
                take_attr(n, "spatial");
                changes.push(format!(
                    "{label}: dropped spatial=1 (the only opset-9+ form)"
                ));
            }
            _ => {}
        }
    }

    /// Softmax/LogSoftmax/Hardmax at node `idx`: the axis becomes -1 when it is the last;
    /// otherwise the old semantics (over the trailing dims flattened from `axis`) are
    /// kept with Flatten → op(-1) → Reshape to the input's shape.
    fn softmax(&mut self, g: &mut Graph, idx: NodeIndex, label: &str, base: &str) {
        let n = &g.ops[idx];
        let axis = n.attr("axis").and_then(|a| a.as_int()).unwrap_or(1);
        let x = n.inputs.first().cloned().unwrap_or_default();
        let r = g
            .value_type(&x)
            .and_then(ValueType::dims)
            .map(|d| d.len() as i64);
        let n = &mut g.ops[idx];
        let a = match r {
            Some(r) if axis < 0 => axis + r,
            _ => axis,
        };
        let last = match r {
            Some(r) => a == r - 1,
            None => axis == -1,
        };
        take_attr(n, "axis");
        if last {
            n.attributes.push(a_int("axis", -1));
            self.changes
                .push(format!("{label}: axis {axis} is the last axis, kept as -1"));
            return;
        }
        // Old semantics: softmax over the flattened trailing dims from `axis`.
        let y = n.outputs[0].clone();
        let flat = self.namer.fresh(&format!("{base}__flat2d"));
        let sm = self.namer.fresh(&format!("{base}__sm2d"));
        let shp = self.namer.fresh(&format!("{base}__shape"));
        n.inputs = vec![flat.clone()];
        n.outputs = vec![sm.clone()];
        n.attributes.push(a_int("axis", -1));
        let nm = n.name.clone();
        self.new_nodes.push(node(
            &format!("{nm}__flatten"),
            "Flatten",
            &[&x],
            &[&flat],
            vec![a_int("axis", a)],
        ));
        self.new_nodes.push(node(
            &format!("{nm}__shape"),
            "Shape",
            &[&x],
            &[&shp],
            vec![],
        ));
        self.new_nodes.push(node(
            &format!("{nm}__reshape"),
            "Reshape",
            &[&sm, &shp],
            &[&y],
            vec![],
        ));
        if let Some(ty) = g.value_type(&x).cloned() {
            let elem = ty.elem().unwrap_or(DataType::Float);
            g.set_value_type(&sm, ValueType::Tensor { elem, shape: None });
            g.set_value_type(&flat, ValueType::Tensor { elem, shape: None });
            let r = ty.dims().map_or(0, |d| d.len() as i64);
            g.set_value_type(&shp, ValueType::tensor(DataType::Int64, &[r]));
        }
        self.changes.push(format!(
            "{label}: axis {axis} of a rank-{} input → Flatten, {} over the last axis, Reshape",
            r.unwrap_or(0),
            g.ops[idx].op_type
        ));
    }
}
