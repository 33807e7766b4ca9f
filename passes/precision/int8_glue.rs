//! Lets int8 stay int8 between quantized operators (`--objective speed`, `--latency-budget`).
//!
//! The int8 rewrite quantizes an operator's inputs and output; the ops between two int8
//! operators (SiLU's Sigmoid and Mul, residual Adds, Concat, pooling, Resize, reshapes) then
//! run in fp32 between a DequantizeLinear and a QuantizeLinear, and where such an op feeds
//! another float op, onnxruntime cannot fuse it. This pass puts a Q/DQ pair on the output
//! of every such "glue" op whose float inputs all come from DequantizeLinear, so each
//! becomes a `DQ → op → Q` unit that onnxruntime's CPU provider runs as a QLinear kernel
//! (Add, Mul, Sigmoid, LeakyRelu, AveragePool, GlobalAveragePool, Concat, Softmax) or on
//! 8-bit data directly (Transpose, Reshape, MaxPool, Resize…, whose Q takes the input's
//! parameters so that the pair drops). It repeats until nothing changes, so whole chains
//! go int8.
//!
//! Nearest Resizes that end up on uint8 then run channel-first ([`super::int8_resize`]).
//!
//! Quantization parameters: an existing QuantizeLinear of the tensor is reused (no DQ→Q
//! pair with equal parameters is created); data-movement ops take their input's (and so
//! does an int8 operator's input that a move produced, [`moved_from`]; an int8 output read
//! only by a Relu takes the Relu output's, [`relu_output`]); Sigmoid,
//! HardSigmoid and Softmax outputs take the exact range [0, 1]; the others their calibrated
//! range, and an op without one is left in fp32.

use super::quantize::activation_qparams;
use super::{Range, Ranges};
use optimize_ir::error::Result;
use optimize_ir::ir::build::{
    add_initializer, f32_tensor, node, raw_tensor, relink_after, remove_dead_constants,
    set_type_like, Namer,
};
use optimize_ir::ir::tensor::element_count;
use optimize_ir::ir::{DataType, Graph, ValueType};
use petgraph::stable_graph::NodeIndex;
use std::collections::BTreeSet;

/// Ops that only move values: their Q takes the input's parameters.
const MOVES: &[&str] = &[
    "Split",
    "Transpose",
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "MaxPool",
    "Resize",
    "Slice",
];

/// The tensor whose quantization parameters `t` should share: `t` itself, or, when `t` comes
/// out of a chain of moves (a Split of a SiLU's output, a Reshape before a MatMul), the
/// moves' first input that has a calibrated range. A move's output then takes its input's
/// parameters and onnxruntime runs the move on uint8 (with its own range, the move ran in
/// fp32 between a DQ and a Q: on YOLOv8n every C2f block's Split did).
pub fn moved_from<'a>(g: &'a Graph, t: &'a str, ranges: &Ranges) -> &'a str {
    let mut source = t;
    let mut at = t;
    for _ in 0..16 {
        let Some(p) = g.producer(at).and_then(|p| g.ops.node_weight(p)) else {
            break;
        };
        if !p.domain.is_empty() || !MOVES.contains(&p.op_type.as_str()) {
            break;
        }
        let Some(input) = p.inputs.first().filter(|i| !i.is_empty()) else {
            break;
        };
        at = input;
        if ranges.contains_key(at) {
            source = at;
        }
    }
    source
}

/// The Relu output whose quantization parameters the int8 output `t` should take: when a
/// Relu is `t`'s only reader and its output has a calibrated range. Quantized onto the
/// Relu's `[0, max]` (zero point 0), `t`'s Q does the Relu's clamp, and onnxruntime drops
/// the Relu and the DQ→Q pair after it, so the QLinearConv writes the Relu's output
/// directly (on det, ten requantizations fewer).
pub fn relu_output<'a>(g: &'a Graph, t: &str, ranges: &Ranges) -> Option<&'a str> {
    let r = g.ops.node_weight(g.sole_consumer(t)?)?;
    let out = r.outputs.first()?;
    (r.is("Relu") && ranges.contains_key(out)).then_some(out.as_str())
}

/// Ops onnxruntime runs as QLinear kernels in a `DQ → op → Q` unit.
const QLINEAR: &[&str] = &[
    "Add",
    "Mul",
    "Sigmoid",
    "LeakyRelu",
    "AveragePool",
    "GlobalAveragePool",
    "Concat",
    "Softmax",
];

/// A float-only op worth a Q on its output when that output is small (an SE block's
/// channel gate): its consumer (a Mul) then runs int8.
const SMALL_GATES: &[&str] = &["HardSigmoid"];
const SMALL_GATE_ELEMENTS: u64 = 65_536;

/// The ops a later pass may list as glue (their outputs need a calibrated range).
pub fn needs_range(op: &str) -> bool {
    QLINEAR.contains(&op) && !matches!(op, "Sigmoid" | "Softmax")
}

/// Runs the pass; returns how many glue ops got a quantized output.
pub fn extend(g: &mut Graph, ranges: &Ranges, namer: &mut Namer) -> Result<usize> {
    relink_after(g, "int8 glue")?;
    let mut count = hard_sigmoids_as_add(g, namer);
    // The float constants replaced by exact uint8 DQs, removed at the end when unread.
    let mut replaced = BTreeSet::new();
    for _ in 0..64 {
        relink_after(g, "int8 glue")?;
        let order = g.order.clone();
        let mut changed = false;
        for idx in order {
            if quantize_glue_output(g, idx, ranges, namer, &mut replaced) {
                count += 1;
                changed = true;
                relink_after(g, "int8 glue")?;
            }
        }
        if !changed {
            break;
        }
    }
    remove_dead_constants(g, &replaced);
    relink_after(g, "int8 glue")?;
    super::int8_resize::channel_first_resizes(g, namer)?;
    Ok(count)
}

/// A float-only HardSigmoid on a dequantized tensor, `clip(αx + β, 0, 1)`, rewritten as
/// `α·clip(x + β/α, 0, 1/α)`: an Add of the exact constant β/α quantized onto [0, 1/α]
/// (onnxruntime's QLinearAdd; the clip is the uint8 saturation) and dequantized with scale
/// 1/255 (the factor α folded in). HardSwish's `x · HardSigmoid(x)` then has two quantized
/// operands and runs as QLinearMul. Exact up to the 8-bit rounding of the gate (≤ 1/510).
fn hard_sigmoids_as_add(g: &mut Graph, namer: &mut Namer) -> usize {
    let found: Vec<NodeIndex> = g
        .order
        .iter()
        .copied()
        .filter(|&i| {
            g.ops.node_weight(i).is_some_and(|n| {
                n.op_type == "HardSigmoid"
                    && n.domain.is_empty()
                    && dq_params(g, &n.inputs[0]).is_some()
            })
        })
        .collect();
    let mut count = 0;
    for idx in found {
        let n = g.ops[idx].clone();
        let alpha = n.attr_float("alpha", 0.2);
        let beta = n.attr_float("beta", 0.5);
        let shift = beta / alpha;
        if !(alpha > 0.0 && shift > 0.0 && shift.is_finite()) {
            continue;
        }
        let base = &n.outputs[0];
        let c = exact_u8_constant(g, namer, base, shift);
        let a = namer.fresh(&format!("{base}__shifted"));
        let a_q = namer.fresh(&format!("{base}__shifted_q"));
        let (s_a, s_out, zero) = (
            namer.fresh(&format!("{base}__shifted_scale")),
            namer.fresh(&format!("{base}__gate_scale")),
            namer.fresh(&format!("{base}__gate_zp")),
        );
        add_initializer(g, f32_tensor(&s_a, &[], &[1.0 / alpha / 255.0]));
        add_initializer(g, f32_tensor(&s_out, &[], &[1.0 / 255.0]));
        add_initializer(g, raw_tensor(&zero, DataType::Uint8, &[], vec![0]));
        let names = [
            namer.fresh(&format!("{base}__shift")),
            namer.fresh(&format!("{base}__shift_quantize")),
            namer.fresh(&format!("{base}__gate_dequantize")),
        ];
        g.remove_node(idx);
        g.add_node(node(&names[0], "Add", &[&n.inputs[0], &c], &[&a], vec![]));
        g.add_node(node(
            &names[1],
            "QuantizeLinear",
            &[&a, &s_a, &zero],
            &[&a_q],
            vec![],
        ));
        g.add_node(node(
            &names[2],
            "DequantizeLinear",
            &[&a_q, &s_out, &zero],
            &[base],
            vec![],
        ));
        set_type_like(g, &a, base, DataType::Float);
        set_type_like(g, &a_q, base, DataType::Uint8);
        count += 1;
    }
    count
}

/// A DequantizeLinear of one uint8 that equals `v` exactly (255 × v/255, or 0 × 1 for 0,
/// or (0 − 255) × |v|/255 for a negative `v`); returns its output.
fn exact_u8_constant(g: &mut Graph, namer: &mut Namer, base: &str, v: f32) -> String {
    let (q, scale, zp) = if v > 0.0 {
        (255u8, v / 255.0, 0u8)
    } else if v < 0.0 {
        (0, -v / 255.0, 255)
    } else {
        (0, 1.0, 0)
    };
    let (qn, sn, zn, out, nn) = (
        namer.fresh(&format!("{base}__const_q")),
        namer.fresh(&format!("{base}__const_scale")),
        namer.fresh(&format!("{base}__const_zp")),
        namer.fresh(&format!("{base}__const")),
        namer.fresh(&format!("{base}__const_dequantize")),
    );
    add_initializer(g, raw_tensor(&qn, DataType::Uint8, &[], vec![q]));
    add_initializer(g, f32_tensor(&sn, &[], &[scale]));
    add_initializer(g, raw_tensor(&zn, DataType::Uint8, &[], vec![zp]));
    g.add_node(node(
        &nn,
        "DequantizeLinear",
        &[&qn, &sn, &zn],
        &[&out],
        vec![],
    ));
    g.set_value_type(&out, ValueType::tensor(DataType::Float, &[]));
    out
}

/// The value of a scalar float constant input.
fn scalar_constant(g: &Graph, t: &str) -> Option<f32> {
    let c = g.constant_tensor(t)?;
    if c.dims.iter().product::<i64>() != 1 {
        return None;
    }
    optimize_ir::ir::tensor::tensor_f32(c).and_then(|(v, _)| v.first().copied())
}

/// The (scale, zero point) initializer names of a DequantizeLinear producing `t`.
fn dq_params(g: &Graph, t: &str) -> Option<(String, String)> {
    let p = g.ops.node_weight(g.producer(t)?)?;
    if p.op_type != "DequantizeLinear" || !p.domain.is_empty() || p.inputs.len() < 3 {
        return None;
    }
    let scale = g.constant_tensor(&p.inputs[1])?;
    // Per-tensor only: a per-channel DQ is a weight's.
    (scale.dims.iter().product::<i64>() == 1).then(|| (p.inputs[1].clone(), p.inputs[2].clone()))
}

fn elements(g: &Graph, t: &str) -> Option<u64> {
    g.value_type(t)?.static_dims().map(|d| element_count(&d))
}

fn quantize_glue_output(
    g: &mut Graph,
    idx: NodeIndex,
    ranges: &Ranges,
    namer: &mut Namer,
    replaced: &mut BTreeSet<String>,
) -> bool {
    let Some(n) = g.ops.node_weight(idx) else {
        return false;
    };
    let op_type = n.op_type.clone();
    let op = op_type.as_str();
    let glue = MOVES.contains(&op) || QLINEAR.contains(&op) || SMALL_GATES.contains(&op);
    // Only Split has several outputs; each gets its own pair.
    if !n.domain.is_empty() || !glue || (n.outputs.len() != 1 && op != "Split") {
        return false;
    }
    let outputs = n.outputs.clone();
    let t = outputs[0].clone();
    if SMALL_GATES.contains(&op) && elements(g, &t).is_none_or(|e| e > SMALL_GATE_ELEMENTS) {
        return false;
    }
    // A move's other inputs (shape, axes, scales) are parameters, computed or not.
    let data_inputs = if MOVES.contains(&op) {
        &n.inputs[..1.min(n.inputs.len())]
    } else {
        &n.inputs[..]
    };
    let dynamic: Vec<String> = data_inputs
        .iter()
        .filter(|i| !i.is_empty() && g.constant_tensor(i).is_none())
        .cloned()
        .collect();
    if dynamic.is_empty()
        || (!SMALL_GATES.contains(&op) && !dynamic.iter().all(|i| dq_params(g, i).is_some()))
    {
        return false;
    }
    if matches!(op, "Add" | "Mul") {
        // A scalar constant operand (a learnable affine's scale or shift) becomes an exact
        // uint8 DQ, so that the unit has two quantized operands.
        for slot in 0..g.ops[idx].inputs.len() {
            let input = g.ops[idx].inputs[slot].clone();
            if let Some(v) = scalar_constant(g, &input) {
                let c = exact_u8_constant(g, namer, &t, v);
                g.ops[idx].inputs[slot] = c;
                replaced.insert(input);
            }
        }
    }
    let mut changed = false;
    for t in &outputs {
        changed |= quantize_tensor(g, t, op, &dynamic[0], ranges, namer);
    }
    changed
}

/// Gives float tensor `t`, the output of glue op `op` whose first quantized input is
/// `input`, a Q (an existing one, or new) and one DQ that every float reader then reads.
fn quantize_tensor(
    g: &mut Graph,
    t: &str,
    op: &str,
    input: &str,
    ranges: &Ranges,
    namer: &mut Namer,
) -> bool {
    if g.outputs.iter().any(|o| o == t)
        || g.value_type(t).and_then(ValueType::elem) != Some(DataType::Float)
    {
        return false;
    }
    let consumers = g.consumers(t);
    let is_q = |c: NodeIndex| {
        g.ops
            .node_weight(c)
            .is_some_and(|c| c.op_type == "QuantizeLinear")
    };
    let floats: Vec<(NodeIndex, usize)> = consumers
        .iter()
        .copied()
        .filter(|&(c, _)| !is_q(c))
        .collect();
    if floats.is_empty() {
        return false;
    }
    let existing = consumers.iter().find(|&&(c, _)| is_q(c)).map(|&(c, _)| c);
    let (q, scale, zp) = match existing {
        Some(c) => {
            let qn = &g.ops[c];
            (
                qn.outputs[0].clone(),
                qn.inputs[1].clone(),
                qn.inputs[2].clone(),
            )
        }
        None => {
            let params = if MOVES.contains(&op) {
                dq_params(g, input)
            } else {
                let range = match op {
                    "Sigmoid" | "HardSigmoid" | "Softmax" => Some(Range { min: 0.0, max: 1.0 }),
                    _ => ranges.get(t).copied(),
                };
                range.map(|r| {
                    let (s, z) = activation_qparams(r);
                    let sn = namer.fresh(&format!("{t}__glue_scale"));
                    let zn = namer.fresh(&format!("{t}__glue_zp"));
                    add_initializer(g, f32_tensor(&sn, &[], &[s]));
                    add_initializer(g, raw_tensor(&zn, DataType::Uint8, &[], vec![z]));
                    (sn, zn)
                })
            };
            let Some((s, z)) = params else {
                return false;
            };
            let q = namer.fresh(&format!("{t}__glue_q"));
            let qn = namer.fresh(&format!("{t}__glue_quantize"));
            g.add_node(node(&qn, "QuantizeLinear", &[t, &s, &z], &[&q], vec![]));
            set_type_like(g, &q, t, DataType::Uint8);
            (q, s, z)
        }
    };
    let dq = namer.fresh(&format!("{t}__glue_dq"));
    let dn = namer.fresh(&format!("{t}__glue_dequantize"));
    g.add_node(node(
        &dn,
        "DequantizeLinear",
        &[&q, &scale, &zp],
        &[&dq],
        vec![],
    ));
    set_type_like(g, &dq, t, DataType::Float);
    for (c, slot) in floats {
        g.ops[c].inputs[slot] = dq.clone();
    }
    true
}
