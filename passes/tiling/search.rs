//! Cascade boundaries and cuts: a dynamic program over the model order (tiling reference
//! §5). `F[j]` = least traffic of the first `j` operators cut into segments whose work
//! area fits; a segment's cost is the traffic of its boundary tensors when all of them
//! stream (loads of its inputs, halo columns of every band included, stores of its
//! outputs, weight reloads). Which boundary tensors then stay on chip is decided after,
//! by the residency program. For each segment the fewest bands that fit win (fewer halo
//! columns), then the tallest stripes that fit (fewer runs).

use super::classify::Kind;
use super::graph::{SGraph, XId};
use super::plan::{Part, Segmentation};
use super::segment::{Cfg, Seg};
use super::simulate::{simulate, SimOpts};
use std::time::Instant;

const BANDS: &[usize] = &[1, 2, 3, 4, 6, 8, 12, 16];

fn weight_modes(g: &SGraph, seg: &Seg) -> &'static [bool] {
    if g.weights_tracked && seg.ops.iter().any(|&x| g.ops[x].weight_bytes > 0) {
        &[false, true]
    } else {
        &[false]
    }
}

fn try_cut(g: &SGraph, seg: &Seg, cfg: Cfg, streamed: bool, limit: u64) -> Option<Part> {
    let res = vec![false; seg.tens.len()];
    let opts = SimOpts {
        limit: Some(limit),
        record: false,
        weights_streamed: streamed,
    };
    simulate(g, seg, cfg, &res, opts).map(|sim| Part {
        seg: seg.clone(),
        cfg,
        weights_streamed: streamed,
        sim,
    })
}

/// Stripe heights tried, tallest first: the whole height, halves, ..., one row.
pub fn heights(h: i64) -> Vec<i64> {
    let mut v = vec![h.max(1)];
    let mut t = h;
    while t > 1 {
        t = (t + 1) / 2;
        if t < *v.last().unwrap_or(&0) {
            v.push(t);
        }
    }
    if *v.last().unwrap_or(&1) != 1 {
        v.push(1);
    }
    v
}

/// The traffic of the cheapest cut of `seg` whose work area fits `limit` (fewest bands;
/// with streamed weights, the tallest stripes), or None.
pub fn cost(g: &SGraph, seg: &Seg, limit: u64) -> Option<(u64, usize, bool)> {
    let quick = super::halo::div_ceil(seg.h_ref, 16).max(1);
    for &b in BANDS.iter().filter(|&&b| b <= seg.max_bands(g)) {
        for &ws in weight_modes(g, seg) {
            for t in [quick, 1] {
                if let Some(p) = try_cut(g, seg, Cfg { bands: b, t }, ws, limit) {
                    return Some((p.sim.traffic(), b, ws));
                }
            }
        }
    }
    None
}

/// The final cut of a segment: for the fewest bands that fit and the next two band
/// counts, the tallest stripes that fit; the least `traffic + overhead × runs` wins (each
/// run costs a DMA and command setup, charged as `overhead` bytes).
pub fn fit(g: &SGraph, seg: &Seg, limit: u64, overhead: u64) -> Option<Part> {
    let mut best: Option<(u64, Part)> = None;
    let mut tried = 0;
    for &b in BANDS.iter().filter(|&&b| b <= seg.max_bands(g)) {
        if tried == 3 {
            break;
        }
        for &ws in weight_modes(g, seg) {
            if try_cut(g, seg, Cfg { bands: b, t: 1 }, ws, limit).is_none() {
                continue;
            }
            tried += 1;
            let part = heights(seg.h_ref)
                .into_iter()
                .find_map(|t| try_cut(g, seg, Cfg { bands: b, t }, ws, limit));
            if let Some(p) = part {
                let key = p.sim.traffic() + overhead * p.sim.runs as u64;
                if best.as_ref().is_none_or(|(k, _)| key < *k) {
                    best = Some((key, p));
                }
            }
            break;
        }
    }
    best.map(|(_, p)| p)
}

/// Why no cut of a single operator fits.
pub fn infeasible(g: &SGraph, x: XId, limit: u64) -> String {
    let seg = Seg::new(g, &[x]);
    let bands = *BANDS
        .iter()
        .rfind(|&&b| b <= seg.max_bands(g))
        .unwrap_or(&1);
    let res = vec![false; seg.tens.len()];
    let opts = SimOpts {
        limit: None,
        record: false,
        weights_streamed: true,
    };
    let need = simulate(g, &seg, Cfg { bands, t: 1 }, &res, opts)
        .map(|s| s.work_bytes)
        .unwrap_or(0);
    let op = &g.ops[x];
    let how = match op.kind {
        Kind::Opaque => format!(
            "runs whole ({})",
            op.why.as_deref().unwrap_or("not tileable")
        ),
        _ => format!("needs {need} bytes even in one-row stripes of {bands} bands"),
    };
    format!(
        "operator '{}' ({}) {how}, more than the {limit} bytes available; give at least {need} bytes",
        op.name, op.op_type
    )
}

/// Segments of the model order minimising the all-streamed traffic under `limit` bytes of
/// work area per segment (`full` for a single operator that needs more), at most `max_len`
/// operators each. Past `deadline_s` seconds only single-operator segments are added.
#[allow(clippy::too_many_arguments)]
pub fn dp(
    g: &SGraph,
    limit: u64,
    full: u64,
    max_len: usize,
    overhead: u64,
    deadline_s: f64,
    name: &str,
) -> Result<Segmentation, String> {
    let started = Instant::now();
    let n = g.ops.len();
    let mut best: Vec<Option<(u64, usize)>> = vec![None; n + 1];
    best[0] = Some((0, 0));
    for j in 0..n {
        let late = started.elapsed().as_secs_f64() > deadline_s;
        let lo = if late {
            j
        } else {
            (j + 1).saturating_sub(max_len)
        };
        for i in (lo..=j).rev() {
            if i < j && (g.ops[i].kind == Kind::Opaque || g.ops[j].kind == Kind::Opaque) {
                break;
            }
            let Some((before, _)) = best[i] else { continue };
            let ops: Vec<XId> = (i..=j).collect();
            let seg = Seg::new(g, &ops);
            let c = match cost(g, &seg, limit) {
                Some((c, _, _)) => c,
                None if i == j => match cost(g, &seg, full) {
                    Some((c, _, _)) => c,
                    None => break,
                },
                None => break,
            };
            if best[j + 1].is_none_or(|(b, _)| before + c < b) {
                best[j + 1] = Some((before + c, i));
            }
        }
        if best[j + 1].is_none() {
            return Err(infeasible(g, j, full));
        }
    }
    let mut cuts = Vec::new();
    let mut j = n;
    while j > 0 {
        let (_, i) = best[j].ok_or("no segmentation")?;
        cuts.push((i, j));
        j = i;
    }
    cuts.reverse();
    let mut parts = Vec::with_capacity(cuts.len());
    for (i, j) in cuts {
        let ops: Vec<XId> = (i..j).collect();
        let seg = Seg::new(g, &ops);
        let part = fit(g, &seg, limit, overhead)
            .or_else(|| (j == i + 1).then(|| fit(g, &seg, full, overhead)).flatten());
        parts.push(part.ok_or_else(|| infeasible(g, i, full))?);
    }
    Ok(Segmentation {
        name: name.to_string(),
        parts,
    })
}
