//! The two tiled baselines every run is compared with:
//!
//! * **layer by layer**: every feature map goes off chip between layers (the conventional
//!   accelerator of Alwani et al.); a layer is one operator plus the single-input
//!   elementwise operators applied to its output (fused activations). Each layer is cut
//!   into the tallest stripes (and fewest bands) that fit, so it runs at any budget.
//! * **greedy cascade** (Vela's `build_cascades`): walk the model order and extend the
//!   current cascade by the next operator while it reads only the previous operator's
//!   output, that output has no other reader, and the longer cascade still fits in
//!   stripes; then keep boundary tensors on chip first come, first served.

use super::classify::{Kind, Map};
use super::graph::{SGraph, XId};
use super::plan::Segmentation;
use super::search::{fit, infeasible};
use super::segment::Seg;

fn single_input_activation(g: &SGraph, prev: XId, x: XId) -> bool {
    let op = &g.ops[x];
    let p = &g.ops[prev];
    op.elementwise
        && op.inputs.len() == 1
        && p.kind == Kind::Tiled
        && p.outputs.len() == 1
        && op.inputs[0].tensor == p.output()
        && g.tensors[p.output()].consumers == [x]
        && !g.tensors[p.output()].graph_output
}

fn build(
    g: &SGraph,
    groups: Vec<Vec<XId>>,
    limit: u64,
    name: &str,
) -> Result<Segmentation, String> {
    let mut parts = Vec::with_capacity(groups.len());
    for ops in groups {
        let seg = Seg::new(g, &ops);
        parts.push(fit(g, &seg, limit, 0).ok_or_else(|| infeasible(g, ops[0], limit))?);
    }
    Ok(Segmentation {
        name: name.to_string(),
        parts,
    })
}

/// Layer-by-layer segments.
pub fn layer_by_layer(g: &SGraph, limit: u64) -> Result<Segmentation, String> {
    let mut groups: Vec<Vec<XId>> = Vec::new();
    for x in 0..g.ops.len() {
        match groups.last_mut() {
            Some(last) if single_input_activation(g, *last.last().unwrap_or(&x), x) => last.push(x),
            _ => groups.push(vec![x]),
        }
    }
    build(g, groups, limit, "layer_by_layer")
}

/// True when `x` may follow `prev` in a Vela cascade.
fn chainable(g: &SGraph, prev: XId, x: XId) -> bool {
    let (p, op) = (&g.ops[prev], &g.ops[x]);
    if p.kind != Kind::Tiled || op.kind != Kind::Tiled || p.outputs.len() != 1 {
        return false;
    }
    let out = &g.tensors[p.output()];
    out.consumers == [x]
        && !out.graph_output
        && op.inputs.iter().all(|i| i.tensor == p.output())
        && op.inputs.iter().any(|i| i.map != Map::Whole)
}

/// Greedy (Vela-style) cascades.
pub fn greedy_cascades(g: &SGraph, limit: u64) -> Result<Segmentation, String> {
    let mut groups: Vec<Vec<XId>> = Vec::new();
    let mut x = 0;
    while x < g.ops.len() {
        let mut ops = vec![x];
        while let Some(&last) = ops.last() {
            let next = last + 1;
            if next >= g.ops.len() || !chainable(g, last, next) {
                break;
            }
            let mut longer = ops.clone();
            longer.push(next);
            let seg = Seg::new(g, &longer);
            match fit(g, &seg, limit, 0) {
                Some(p) if p.cfg.bands == 1 => ops = longer,
                _ => break,
            }
        }
        x = *ops.last().unwrap_or(&x) + 1;
        groups.push(ops);
    }
    build(g, groups, limit, "greedy_cascade")
}
