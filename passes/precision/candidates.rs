//! Which operators can change precision, in which formats, and what each format stores.
//!
//! Only ops whose weight is a constant tensor (initializer or Constant node) are candidates:
//! Conv (any group), MatMul with a constant 2-D second input, Gemm with constant B,
//! ConvTranspose (fp16 and weight-only int8: onnxruntime has no fused int8 kernel for it on
//! x86, so QDQ around it would only add work), and Gather on a constant 2-D float table
//! along axis 0 (an embedding table: fp16, weight-only int8 and int4 per row), and LSTM,
//! GRU and RNN with constant W and R (two candidates per node, fp16 and weight-only int8
//! per direction and gate row; the bias B stays fp32). Weights read inside If/Loop/Scan
//! bodies, and large constants other operators read (Einsum, fused ops, Add), are
//! candidates too, in the weight-only formats (see [`super::decoded_weights`]).
//!
//! [`candidates`] lists every format the rewrite can emit; [`offer_for_mode`] narrows that
//! to what a run offers the allocation (weight-only formats without calibration data).

use super::candidate::float_dims;
pub use super::candidate::{constant_f32, tensor_f32, OpCandidate};
use super::decoded_weights::decoded_candidates;
use super::quantize::{is_recurrent, stored_bytes, weight_channel_axis};
use super::{NodeKey, Precision};
use onnx_protobuf::TensorProto;
use optimize_ir::ir::op_table::{self, Trait};
use optimize_ir::ir::tensor::element_count;
use optimize_ir::ir::{DataType, Graph, Model, Node};
use petgraph::stable_graph::NodeIndex;
use std::collections::{BTreeMap, HashSet};

/// Appended to a recurrent node's key to name its R candidate (its W candidate has the key
/// itself).
pub const RECURRENT_R_SUFFIX: &str = "#R";

/// A constant float32 weight with no zero dimension: its tensor and shape.
fn float_weight<'a>(g: &'a Graph, name: &str) -> Option<(&'a TensorProto, Vec<usize>)> {
    let t = g.constant_tensor(name)?;
    Some((t, float_dims(t)?))
}

/// `formats` with the bytes each stores (see [`stored_bytes`]).
fn offered(
    op: &str,
    shape: &[usize],
    axis: usize,
    bias_len: usize,
    formats: impl IntoIterator<Item = Precision>,
) -> Vec<(Precision, u64)> {
    formats
        .into_iter()
        .map(|p| (p, stored_bytes(op, shape, axis, bias_len, p)))
        .collect()
}

/// The first non-empty output of a recurrent node (Y is optional): its key.
fn recurrent_key(n: &Node) -> Option<&String> {
    n.outputs.iter().find(|o| !o.is_empty())
}

/// The node of candidate `key`: the node whose first output is `key`, or the recurrent
/// node whose key is `key` with or without [`RECURRENT_R_SUFFIX`].
pub fn candidate_node(g: &Graph, key: &str) -> Option<NodeIndex> {
    if let Some((i, _)) = g
        .nodes()
        .find(|(_, n)| n.outputs.first().map(String::as_str) == Some(key))
    {
        return Some(i);
    }
    let base = key.strip_suffix(RECURRENT_R_SUFFIX).unwrap_or(key);
    g.nodes()
        .find(|(_, n)| {
            n.domain.is_empty()
                && is_recurrent(&n.op_type)
                && recurrent_key(n).map(String::as_str) == Some(base)
        })
        .map(|(i, _)| i)
}

/// Candidates in graph order.
pub fn candidates(model: &Model) -> Vec<OpCandidate> {
    let g = &model.graph;
    let mut out = Vec::new();
    for (_, n) in g.nodes() {
        let op = n.op_type.as_str();
        if n.domain.is_empty() && op == "Gather" {
            out.extend(gather_candidate(g, n));
            continue;
        }
        if n.domain.is_empty() && is_recurrent(op) {
            out.extend(recurrent_candidates(g, n));
            continue;
        }
        if !op_table::has(&n.domain, op, Trait::Quantizable) {
            continue;
        }
        let Some(w_slot) = op_table::weight_input(&n.domain, op) else {
            continue;
        };
        let Some(key) = n.outputs.first().filter(|o| !o.is_empty()).cloned() else {
            continue;
        };
        let (Some(x), Some(wname)) = (n.inputs.first(), n.inputs.get(w_slot)) else {
            continue;
        };
        if x.is_empty() || g.constant_tensor(x).is_some() {
            continue;
        }
        let Some((wt, shape)) = float_weight(g, wname) else {
            continue;
        };
        // A MatMul weight of another rank than 2 (batched `[B, K, N]`) has no QDQ or
        // MatMulNBits form here: it is a decoded weight (weight-only formats, per row).
        if op == "MatMul" && shape.len() != 2 {
            continue;
        }
        let trans_b = n.attr_int("transB", 0) != 0;
        let axis = weight_channel_axis(op, trans_b);
        let channels = shape.get(axis).copied().unwrap_or(0);
        // Bias: Conv/ConvTranspose input 2, Gemm C (only a constant 1-D-like [N] C is
        // quantized; any other C keeps the op out of the integer formats).
        let bias = n.inputs.get(2).filter(|b| !b.is_empty()).cloned();
        let bias_t = bias.as_deref().and_then(|b| g.constant_tensor(b));
        if bias.is_some() && op != "Gemm" && bias_t.is_none() {
            continue;
        }
        let bias_len = bias_t.map_or(0, |t| element_count(&t.dims) as usize);
        let bias_is_vector = bias_t.is_some_and(|t| {
            DataType::from_onnx(t.data_type) == Some(DataType::Float)
                && bias_len == channels
                && t.dims.iter().filter(|&&d| d != 1).count() <= 1
                && t.dims.len() <= 2
        });
        let mut opts = vec![Precision::Fp32, Precision::Fp16];
        let int_ok = match op {
            "Conv" => shape.len() >= 3,
            "MatMul" => true,
            "Gemm" => {
                shape.len() == 2
                    && n.attr_int("transA", 0) == 0
                    && n.attr_float("alpha", 1.0) == 1.0
                    && (bias.is_none() || bias_is_vector)
            }
            _ => false,
        };
        if int_ok {
            opts.push(Precision::Int8);
            opts.push(Precision::Int4);
        }
        if int_ok || op == "ConvTranspose" {
            opts.push(Precision::Int8W);
        }
        if op == "MatMul" {
            opts.push(Precision::Int8Dyn);
        }
        let fp32_bytes = 4 * (element_count(&wt.dims) + bias_len as u64);
        let options = offered(op, &shape, axis, bias_len, opts);
        out.push(OpCandidate {
            key,
            node_name: n.name.clone(),
            label: crate::relevance::sweep::node_label(n),
            op: op.to_string(),
            weight: wname.clone(),
            weight_slot: w_slot,
            weight_shape: shape,
            bias: if bias_t.is_some() { bias } else { None },
            fp32_bytes,
            options,
            activation_inputs: vec![x.clone()],
            outputs: n
                .outputs
                .iter()
                .filter(|o| !o.is_empty())
                .cloned()
                .collect(),
            channel_axis: axis,
            decoded: None,
        });
    }
    let decoded = {
        let taken: HashSet<&str> = out.iter().map(|c| c.weight.as_str()).collect();
        decoded_candidates(g, &taken)
    };
    out.extend(decoded);
    out
}

/// A Gather reading rows of a constant float table `[V, D]` (axis 0) with dynamic indices:
/// an embedding table. Offered fp16, weight-only int8 and int4 (per-row scales); never
/// `Int8` (its output is not an activation range anybody calibrated).
fn gather_candidate(g: &Graph, n: &optimize_ir::ir::Node) -> Option<OpCandidate> {
    let key = n.outputs.first().filter(|o| !o.is_empty())?.clone();
    let (table, ids) = (n.inputs.first()?, n.inputs.get(1)?);
    if ids.is_empty() || g.constant_tensor(ids).is_some() || n.attr_int("axis", 0) != 0 {
        return None;
    }
    let (t, shape) = float_weight(g, table).filter(|(_, s)| s.len() == 2)?;
    let op = "Gather";
    let axis = weight_channel_axis(op, false);
    let formats = [
        Precision::Fp32,
        Precision::Fp16,
        Precision::Int8W,
        Precision::Int4,
    ];
    let options = offered(op, &shape, axis, 0, formats);
    Some(OpCandidate {
        key,
        node_name: n.name.clone(),
        label: crate::relevance::sweep::node_label(n),
        op: op.to_string(),
        weight: table.clone(),
        weight_slot: 0,
        fp32_bytes: 4 * element_count(&t.dims),
        weight_shape: shape,
        bias: None,
        options,
        activation_inputs: vec![ids.clone()],
        outputs: vec![n.outputs[0].clone()],
        channel_axis: axis,
        decoded: None,
    })
}

/// LSTM, GRU or RNN with dynamic X: its constant float 3-D W (input 1) and R (input 2),
/// each a candidate of its own, offered fp16 and weight-only int8 with one scale per
/// direction and gate row. Never `Int8` (the recurrence has no QDQ form onnxruntime runs)
/// nor int4 (no per-row int4 chain for these shapes). The bias B is not counted: it stays
/// fp32.
fn recurrent_candidates(g: &Graph, n: &Node) -> Vec<OpCandidate> {
    let op = n.op_type.as_str();
    let (Some(base), Some(x)) = (recurrent_key(n), n.inputs.first()) else {
        return Vec::new();
    };
    if x.is_empty() || g.constant_tensor(x).is_some() {
        return Vec::new();
    }
    let outputs: Vec<String> = n
        .outputs
        .iter()
        .filter(|o| !o.is_empty())
        .cloned()
        .collect();
    let mut out = Vec::new();
    for slot in [1usize, 2] {
        let key = match slot {
            1 => base.clone(),
            _ => format!("{base}{RECURRENT_R_SUFFIX}"),
        };
        // The R key must not be a tensor of the graph (then it would name two things).
        if slot == 2 && (g.source(&key).is_some() || g.value_type(&key).is_some()) {
            continue;
        }
        let Some(wname) = n.inputs.get(slot).filter(|w| !w.is_empty()) else {
            continue;
        };
        let Some((t, shape)) = float_weight(g, wname).filter(|(_, s)| s.len() == 3) else {
            continue;
        };
        let axis = weight_channel_axis(op, false);
        let formats = [Precision::Fp32, Precision::Fp16, Precision::Int8W];
        let options = offered(op, &shape, axis, 0, formats);
        out.push(OpCandidate {
            key,
            node_name: n.name.clone(),
            label: crate::relevance::sweep::node_label(n),
            op: op.to_string(),
            weight: wname.clone(),
            weight_slot: slot,
            fp32_bytes: 4 * element_count(&t.dims),
            weight_shape: shape,
            bias: None,
            options,
            activation_inputs: vec![x.clone()],
            outputs: outputs.clone(),
            channel_axis: axis,
            decoded: None,
        });
    }
    out
}

/// Narrows each candidate's formats to what the run offers. Without calibration data
/// (`weight_only`), formats that quantize activations are dropped: their ranges would come
/// from noise. With data, `Int8W` stays only where `Int8` is not offered (it would trade
/// int8 speed for a little accuracy at the same size). `Int8Dyn` is offered only when the
/// run measures speed (`speed`): it stores what `Int8W` stores and is chosen for its time.
pub fn offer_for_mode(cands: &mut [OpCandidate], weight_only: bool, speed: bool) {
    for c in cands {
        let has_int8 = c.bytes_at(Precision::Int8).is_some();
        c.options.retain(|(p, _)| {
            if *p == Precision::Int8Dyn {
                speed
            } else if weight_only {
                !p.quantizes_activations()
            } else {
                *p != Precision::Int8W || !has_int8
            }
        });
    }
}

/// Groups (of two or more) of candidates reading the same weight tensor; they must get the
/// same precision. Sorted by weight name, members in graph order.
pub fn shared_weight_groups(cands: &[OpCandidate]) -> Vec<Vec<NodeKey>> {
    let mut by_weight: BTreeMap<&str, Vec<NodeKey>> = BTreeMap::new();
    for c in cands {
        by_weight.entry(&c.weight).or_default().push(c.key.clone());
    }
    by_weight.into_values().filter(|v| v.len() > 1).collect()
}

/// fp32-equivalent bytes of all constant tensors (initializers and Constant nodes,
/// subgraphs included): the size budget is a fraction of this.
pub fn total_weight_bytes(model: &Model) -> u64 {
    model.graph.parameter_stats().1
}
