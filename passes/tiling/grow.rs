//! Taller stripes where the residency left room: a segment's cut was chosen to fit the
//! work-area limit with every boundary tensor streamed; once some of them are resident (no
//! rings) or the limit was a fraction of the scratchpad, taller stripes often fit. Same
//! feature-map traffic, fewer runs (and fewer weight reloads when weights stream).

use super::graph::{SGraph, TId};
use super::plan::Segmentation;
use super::residency::{place, Placed, Table};
use super::search::heights;
use super::segment::Cfg;
use super::simulate::{simulate, SimOpts};
use std::collections::BTreeSet;

/// Grows every segment's stripes as far as its share of the scratchpad allows; keeps the
/// result only if the whole plan still places.
pub fn grow(
    g: &SGraph,
    sgm: &Segmentation,
    table: &Table,
    placed: &Placed,
    budget: u64,
) -> Option<(Segmentation, Table, Placed)> {
    let kept: BTreeSet<TId> = table
        .boundaries
        .iter()
        .zip(&placed.keep)
        .filter(|(_, &k)| k)
        .map(|(b, _)| b.tensor)
        .collect();
    let mut out = sgm.clone();
    let mut changed = false;
    for (s, part) in out.parts.iter_mut().enumerate() {
        let resident: u64 = table
            .boundaries
            .iter()
            .zip(&placed.keep)
            .filter(|(b, &k)| k && b.start <= s && s <= b.end)
            .map(|(b, _)| b.whole)
            .sum();
        let avail = budget.saturating_sub(resident);
        let res: Vec<bool> = part.seg.tens.iter().map(|t| kept.contains(t)).collect();
        let taller = heights(part.seg.h_ref)
            .into_iter()
            .filter(|&t| t > part.cfg.t);
        for t in taller {
            let cfg = Cfg { t, ..part.cfg };
            let opts = SimOpts {
                limit: Some(avail),
                record: false,
                weights_streamed: part.weights_streamed,
            };
            if simulate(g, &part.seg, cfg, &res, opts).is_none() {
                continue;
            }
            let streamed = vec![false; part.seg.tens.len()];
            let all = SimOpts {
                limit: None,
                ..opts
            };
            if let Some(sim) = simulate(g, &part.seg, cfg, &streamed, all) {
                part.cfg = cfg;
                part.sim = sim;
                changed = true;
            }
            break;
        }
    }
    if !changed {
        return None;
    }
    let t2 = Table::new(g, &out.parts, budget);
    if t2.boundaries.len() != table.boundaries.len()
        || (0..t2.base.len()).any(|s| t2.load(s, &placed.keep) > budget)
    {
        return None;
    }
    let (whole, work) = place(&t2, &placed.keep, budget).ok()?;
    let traffic = t2.traffic(&placed.keep);
    let p2 = Placed {
        keep: placed.keep.clone(),
        whole_offset: whole,
        work_offset: work,
        traffic,
        status: placed.status.clone(),
        bound: placed.bound.map(|b| b.min(traffic)),
        seconds: placed.seconds,
        rounds: placed.rounds,
    };
    Some((out, t2, p2))
}
