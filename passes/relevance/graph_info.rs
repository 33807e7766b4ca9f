//! What the sweep needs to know about the graph before it starts: which tensors carry
//! relevance (they depend on a runtime input through data, not only through shapes), which
//! BatchNormalization nodes fold into the Conv/Gemm before them, and the self-gating
//! and decomposed-LayerNorm patterns.

use optimize_ir::ir::{DataType, Graph, Node, DEFAULT_DOMAIN};
use petgraph::stable_graph::NodeIndex;
use std::collections::{HashMap, HashSet};

/// Ops whose outputs never carry relevance: shapes, indices, comparisons, generated values.
const STOP_OPS: &[&str] = &[
    "Shape",
    "Size",
    "ArgMax",
    "ArgMin",
    "NonZero",
    "Equal",
    "Greater",
    "GreaterOrEqual",
    "Less",
    "LessOrEqual",
    "Not",
    "And",
    "Or",
    "Xor",
    "IsNaN",
    "IsInf",
    "ConstantOfShape",
    "Constant",
    "EyeLike",
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
    "Range",
];

/// True when output `slot` of `n` is an index or mask output even for data inputs.
fn index_output(n: &Node, slot: usize) -> bool {
    matches!(
        (n.op_type.as_str(), slot),
        ("MaxPool", 1) | ("TopK", 1) | ("Dropout", 1) | ("Unique", 1..)
    )
}

/// The tensors that carry relevance: runtime inputs of a numeric type and every node
/// output that depends on one through a data path.
pub fn carrying(g: &Graph) -> HashSet<String> {
    let mut set: HashSet<String> = HashSet::new();
    for name in g.runtime_inputs() {
        let numeric = g
            .value_type(name)
            .and_then(|t| t.elem())
            .is_none_or(|e| e != DataType::String && e != DataType::Bool);
        if numeric {
            set.insert(name.to_string());
        }
    }
    for (_, n) in g.nodes() {
        if STOP_OPS.contains(&n.op_type.as_str()) {
            continue;
        }
        if !n.inputs.iter().any(|i| !i.is_empty() && set.contains(i)) {
            continue;
        }
        for (slot, o) in n.outputs.iter().enumerate() {
            if o.is_empty() || index_output(n, slot) {
                continue;
            }
            let elem = g.value_type(o).and_then(|t| t.elem());
            if elem.is_none_or(|e| e != DataType::Bool && e != DataType::String) {
                set.insert(o.clone());
            }
        }
    }
    set
}

/// A BatchNormalization folded into the Conv or Gemm that produces its input.
#[derive(Clone, Debug)]
pub struct Fold {
    /// The BatchNormalization node.
    pub bn: NodeIndex,
}

/// BatchNormalization nodes whose input comes from a Conv or Gemm output read by nothing
/// else (and not a graph output): keyed by the Conv/Gemm node.
pub fn batchnorm_folds(g: &Graph) -> HashMap<NodeIndex, Fold> {
    let mut out = HashMap::new();
    for (idx, n) in g.nodes() {
        if !n.is("BatchNormalization") || n.inputs.len() < 5 {
            continue;
        }
        if n.outputs.iter().skip(1).any(|o| !o.is_empty()) {
            continue; // training mode
        }
        let x = &n.inputs[0];
        let Some(p) = g.producer(x) else { continue };
        let pn = &g.ops[p];
        if !(pn.is("Conv") || pn.is("Gemm")) || g.sole_consumer(x).is_none() {
            continue;
        }
        out.insert(p, Fold { bn: idx });
    }
    out
}

/// Ops a self-gate chain x → … → f(x) may pass through (one data input, elementwise).
const GATE_CHAIN_OPS: &[&str] = &[
    "Sigmoid",
    "HardSigmoid",
    "Tanh",
    "Erf",
    "Relu",
    "Clip",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Softplus",
    "Exp",
    "Neg",
    "Identity",
    "Cast",
];

/// True when `gate` is computed from `x` by a short chain of elementwise ops whose other
/// operands are constants (x·f(x): GELU, SiLU/Swish, HardSwish patterns).
pub fn is_self_gate(g: &Graph, carry: &HashSet<String>, x: &str, gate: &str) -> bool {
    let mut cur = gate.to_string();
    for _ in 0..6 {
        if cur == x {
            return true;
        }
        let Some(p) = g.producer(&cur) else {
            return false;
        };
        let n = &g.ops[p];
        if !GATE_CHAIN_OPS.contains(&n.op_type.as_str()) {
            return false;
        }
        let data: Vec<&String> = n
            .inputs
            .iter()
            .filter(|i| !i.is_empty() && carry.contains(*i))
            .collect();
        if data.len() != 1 {
            return false;
        }
        cur = data[0].clone();
    }
    cur == x
}

/// True when `sub` is `a − ReduceMean(a)` (the centring of a decomposed LayerNorm).
pub fn is_centring(g: &Graph, sub: &Node) -> bool {
    if sub.inputs.len() != 2 {
        return false;
    }
    let Some(p) = g.producer(&sub.inputs[1]) else {
        return false;
    };
    let m = &g.ops[p];
    m.is("ReduceMean") && m.inputs.first() == Some(&sub.inputs[0])
}

/// Data inputs of these ops are read for their shape only (the other inputs, such as
/// indices, starts or pads, are read as values).
const SHAPE_ONLY_DATA: &[&str] = &[
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Transpose",
    "Concat",
    "Split",
    "Slice",
    "Gather",
    "Tile",
    "Pad",
    "DepthToSpace",
    "SpaceToDepth",
];

/// The tensors whose values the sweep reads (all others only need their shape): every input
/// of an op whose rule reads values, the index-like inputs of routing ops, the outputs of
/// Max/Min and Softmax, and the pre-activation z of each Conv/ConvTranspose (its output,
/// or the output of a BatchNormalization folded into it), so the ε-rule need not recompute
/// it. Activations that only pass through Relu-like ops, Mul and Div are not needed:
/// exposing them all costs a copy each and made the collect run several forward passes long.
pub fn needed_values(g: &Graph, folds: &HashMap<NodeIndex, Fold>) -> HashSet<String> {
    use optimize_ir::ir::op_table::{relevance_rule, RelevanceRule};
    let folded: HashSet<NodeIndex> = folds.values().map(|f| f.bn).collect();
    let mut need = HashSet::new();
    for (idx, n) in g.nodes() {
        let op = n.op_type.as_str();
        let value_inputs: Vec<&String> = if folded.contains(&idx) {
            n.inputs.iter().skip(1).collect()
        } else if relevance_rule(DEFAULT_DOMAIN, op) == Some(RelevanceRule::PassThrough)
            || matches!(op, "Pow" | "Expand" | "Mul" | "Div")
        {
            Vec::new()
        } else if SHAPE_ONLY_DATA.contains(&op) {
            n.inputs.iter().skip(1).collect()
        } else {
            n.inputs.iter().collect()
        };
        need.extend(value_inputs.into_iter().filter(|s| !s.is_empty()).cloned());
        if matches!(op, "Max" | "Min" | "Softmax" | "LogSoftmax") {
            need.extend(n.outputs.iter().take(1).cloned());
            // A final (Log)Softmax: the sweep starts from its input, the logits.
            need.extend(n.inputs.iter().take(1).cloned());
        }
        if matches!(op, "Conv" | "ConvTranspose") {
            let z = match folds.get(&idx) {
                Some(f) => g.ops[f.bn].outputs.first(),
                None => n.outputs.first(),
            };
            need.extend(z.cloned());
        }
    }
    need.extend(g.outputs.iter().cloned());
    need.remove("");
    need
}
