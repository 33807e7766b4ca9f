//! `--metric auto`: picks each output's metric from the original model's graph, and says why.
//!
//! * `top1` for an output produced by Softmax or LogSoftmax over its last axis, or by a
//!   classifier head (Gemm or MatMul) when its last dimension C is known and ≥ 2 (the
//!   head's own when a run-time Reshape hides the output's): these are class scores, and
//!   what must hold is the decision.
//! * `cosine` otherwise (feature maps, probability maps, embeddings of unknown width).
//!
//! Between the output and the op that decides, ops that do not change which value is
//! largest are looked through: Identity, Reshape, Flatten, Squeeze, Unsqueeze, and an Add
//! of a constant (a bias).

use super::metric::Metric;
use optimize_ir::ir::attr::AttrExt;
use optimize_ir::ir::{Graph, Model};

/// Ops looked through on the way back from an output (their first input is the data).
const TRANSPARENT: &[&str] = &["Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze"];
/// Most ops looked through.
const MAX_STEPS: usize = 8;

/// The metric `auto` picks for the graph output `output`, and why (one phrase for the report).
pub fn pick(model: &Model, output: &str) -> (Metric, String) {
    let g = &model.graph;
    let shape = shape_text(g, output);
    let mut name = output.to_string();
    for _ in 0..MAX_STEPS {
        let Some(idx) = g.producer(&name) else {
            return (
                Metric::Cosine,
                "not produced by an operator (a graph input or constant)".into(),
            );
        };
        let node = &g.ops[idx];
        let op = node.qualified_op();
        if node.is("Softmax") || node.is("LogSoftmax") {
            return match softmax_on_last_axis(model, g, node, &name) {
                Some(true) => (
                    Metric::Top1,
                    format!("produced by {op} over the last axis: class scores"),
                ),
                Some(false) => (
                    Metric::Cosine,
                    format!("produced by {op} over an axis that is not the last"),
                ),
                None => (
                    Metric::Cosine,
                    format!("produced by {op} over an axis that is unknown (rank unknown)"),
                ),
            };
        }
        if node.is("Gemm") || node.is("MatMul") {
            // The output's own last dimension, else the head's (a Reshape with a shape
            // computed at run time hides it; ddddocr's CTC scores: [T, 8210] → [T, 1, ?]).
            let head_c = || last_dim(g, &name).map(|c| (c, true));
            let c = last_dim(g, output).map(|c| (c, false)).or_else(head_c);
            return match c {
                Some((c, false)) if c >= 2 => (
                    Metric::Top1,
                    format!("shaped {shape} (C = {c}) after a classifier head ({op})"),
                ),
                Some((c, true)) if c >= 2 => (
                    Metric::Top1,
                    format!(
                        "after a classifier head ({op}) of C = {c}; the output's last dimension is unknown ({shape}), the head's is taken"
                    ),
                ),
                Some((c, _)) => (
                    Metric::Cosine,
                    format!("after {op}, but its last dimension is {c} (not classes)"),
                ),
                None => (
                    Metric::Cosine,
                    format!("after {op}, but its last dimension is unknown"),
                ),
            };
        }
        let next = if TRANSPARENT.iter().any(|t| node.is(t)) {
            node.inputs.first().cloned()
        } else if node.is("Add") && node.inputs.len() == 2 {
            let constant = |n: &str| g.initializers.contains_key(n) || is_constant_node(g, n);
            match (constant(&node.inputs[0]), constant(&node.inputs[1])) {
                (false, true) => Some(node.inputs[0].clone()),
                (true, false) => Some(node.inputs[1].clone()),
                _ => None,
            }
        } else {
            None
        };
        match next {
            Some(n) if !n.is_empty() => name = n,
            _ => {
                return (
                    Metric::Cosine,
                    format!("produced by {op}: not class scores"),
                )
            }
        }
    }
    (
        Metric::Cosine,
        format!("more than {MAX_STEPS} reshaping ops after the last deciding op"),
    )
}

/// True when `name` is the output of a Constant node.
fn is_constant_node(g: &Graph, name: &str) -> bool {
    g.producer(name).is_some_and(|i| g.ops[i].is("Constant"))
}

/// The output's shape as text, e.g. `[1,2]`.
fn shape_text(g: &Graph, name: &str) -> String {
    match g.value_type(name).and_then(|t| t.dims()) {
        Some(d) => optimize_ir::ir::types::fmt_shape(&Some(d.to_vec())),
        None => "[*]".into(),
    }
}

fn last_dim(g: &Graph, name: &str) -> Option<i64> {
    g.value_type(name)?.dims()?.last()?.known()
}

/// Whether a Softmax/LogSoftmax normalizes over the last axis of `out` (None: rank unknown).
/// Before opset 13 the axis defaults to 1 and the input is coerced to 2-D at that axis, so
/// only a rank-2 tensor (or axis = rank − 1) is normalized over its last axis.
fn softmax_on_last_axis(
    model: &Model,
    g: &Graph,
    node: &optimize_ir::ir::Node,
    out: &str,
) -> Option<bool> {
    let rank = g.value_type(out)?.dims()?.len() as i64;
    let opset = model.opset(&node.domain).unwrap_or(13);
    let default = if opset >= 13 { -1 } else { 1 };
    let axis = node
        .attr("axis")
        .and_then(|a| a.as_int())
        .unwrap_or(default);
    let axis = if axis < 0 { axis + rank } else { axis };
    Some(axis == rank - 1)
}
