//! Runs a nearest Resize of quantized data on a channel-first tensor (`--objective speed`,
//! `--latency-budget`; part of the int8 glue).
//!
//! onnxruntime's CPU provider lays quantized convolutions out channel-last (NHWC) and moves
//! the layout Transposes through Resize, whose NHWC uint8 nearest kernel then takes its
//! generic N-d path. Measured on PP-OCRv4 det at 320×320, 1 thread: the six uint8 Resizes
//! took 1.15 ms, twice the 0.56 ms of the same Resizes in fp32 NCHW. A rank-changing Reshape
//! on each side, `[N, C, H, W] → [N·C, 1, H, W]` and back, stops the Transposes at the
//! Reshapes: the Resize runs channel-first on uint8 (0.38 ms for the six, with the Transposes
//! 0.2 ms more), the whole model 8% faster. The values are the same: scales of 1 on the
//! first two axes make the Resize act on each H×W plane alike, whatever folds into axis 0.

use optimize_ir::error::Result;
use optimize_ir::ir::attr::AttrExt;
use optimize_ir::ir::build::{add_initializer, i64_tensor, node, relink_after, Namer};
use optimize_ir::ir::tensor::tensor_f32;
use optimize_ir::ir::types::Dim;
use optimize_ir::ir::{DataType, Graph, ValueType};
use petgraph::stable_graph::NodeIndex;

/// Rewrites every nearest, scale-driven 4-d Resize between a DequantizeLinear and
/// QuantizeLinears (a unit onnxruntime runs on uint8); returns how many.
pub fn channel_first_resizes(g: &mut Graph, namer: &mut Namer) -> Result<usize> {
    let found: Vec<(NodeIndex, i64)> = g
        .order
        .iter()
        .filter_map(|&i| rewritable(g, i).map(|c| (i, c)))
        .collect();
    for &(idx, channels) in &found {
        wrap(g, namer, idx, channels);
    }
    if !found.is_empty() {
        relink_after(g, "channel-first Resize")?;
    }
    Ok(found.len())
}

/// The static channel count of a Resize that qualifies.
fn rewritable(g: &Graph, idx: NodeIndex) -> Option<i64> {
    let n = g.ops.node_weight(idx)?;
    let text = |a: &str| n.attr(a).and_then(AttrExt::as_str);
    let nearest = text("mode").is_none_or(|m| m == "nearest");
    let crop = text("coordinate_transformation_mode") == Some("tf_crop_and_resize");
    if n.op_type != "Resize" || !n.domain.is_empty() || !nearest || crop || n.outputs.len() != 1 {
        return None;
    }
    // Scales given (input 2), sizes not (input 3): the scales carry over unchanged.
    let scales = n.inputs.get(2).filter(|s| !s.is_empty())?;
    if n.inputs.get(3).is_some_and(|s| !s.is_empty()) {
        return None;
    }
    let (s, _) = tensor_f32(g.constant_tensor(scales)?)?;
    if s.len() != 4 || s[0] != 1.0 || s[1] != 1.0 {
        return None;
    }
    let x = &n.inputs[0];
    let from_dq = g
        .producer(x)
        .and_then(|p| g.ops.node_weight(p))
        .is_some_and(|p| p.op_type == "DequantizeLinear");
    let y = &n.outputs[0];
    let readers = g.consumers(y);
    let to_q = !readers.is_empty()
        && !g.outputs.contains(y)
        && readers.iter().all(|&(c, _)| {
            g.ops
                .node_weight(c)
                .is_some_and(|c| c.op_type == "QuantizeLinear")
        });
    if !from_dq || !to_q {
        return None;
    }
    match g.value_type(x)?.dims()? {
        [_, Dim::Known(c), _, _] if *c > 0 => Some(*c),
        _ => None,
    }
}

/// `x → Reshape[-1, 1, 0, 0] → Resize → Reshape[-1, C, 0, 0] → y` (a 0 copies the input's
/// extent, so spatial sizes and the batch may stay symbolic).
fn wrap(g: &mut Graph, namer: &mut Namer, idx: NodeIndex, channels: i64) {
    let n = g.ops[idx].clone();
    let (x, y) = (n.inputs[0].clone(), n.outputs[0].clone());
    let planes = namer.fresh(&format!("{y}__planes_shape"));
    let back = namer.fresh(&format!("{y}__channels_shape"));
    add_initializer(g, i64_tensor(&planes, &[-1, 1, 0, 0]));
    add_initializer(g, i64_tensor(&back, &[-1, channels, 0, 0]));
    let (xp, yp) = (
        namer.fresh(&format!("{x}__planes")),
        namer.fresh(&format!("{y}__planes")),
    );
    let elem = g.value_type(&x).and_then(ValueType::elem);
    let elem = elem.unwrap_or(DataType::Float);
    let (before, after) = (
        namer.fresh(&format!("{}__to_planes", n.name)),
        namer.fresh(&format!("{}__to_channels", n.name)),
    );
    g.add_node(node(&before, "Reshape", &[&x, &planes], &[&xp], vec![]));
    g.add_node(node(&after, "Reshape", &[&yp, &back], &[&y], vec![]));
    let r = &mut g.ops[idx];
    r.inputs[0] = xp.clone();
    r.outputs[0] = yp.clone();
    // Rank 4 with unknown extents: the shapes are re-inferred after the rewrite.
    g.set_value_type(&xp, ValueType::Tensor { elem, shape: None });
    g.set_value_type(&yp, ValueType::Tensor { elem, shape: None });
}
