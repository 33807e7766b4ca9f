//! The report section of a tiled schedule: traffic against each baseline, the cascades
//! with their cuts and halo recompute, the solver and checker results, the plan.

use super::graph::SGraph;
use super::plan::{plan_json, TilePlan};
use super::run::{Method, TilingOutcome};
use crate::schedule::section::{
    Cascade, CheckerInfo, RewriteInfo, Sink, TiledMethod, TiledSection, TiledSolver, TrafficInfo,
};
use std::collections::BTreeMap;

fn method_info(m: &Method) -> TiledMethod {
    TiledMethod {
        name: m.name.clone(),
        traffic_bytes: m.traffic(),
        check: match &m.check {
            Ok(_) => "passed".into(),
            Err(e) => format!("failed: {e}"),
        },
        residency: m.residency.clone(),
        seconds: m.seconds,
        segments: m.plan.as_ref().map(|p| p.segments.len()),
        runs: m.plan.as_ref().map(|p| p.runs()),
    }
}

/// The cascades of a plan (segments run in more than one tile).
pub fn cascades(g: &SGraph, p: &TilePlan) -> Vec<Cascade> {
    p.segments
        .iter()
        .filter(|s| s.runs > s.ops.len())
        .map(|s| {
            let last = *s.ops.last().unwrap_or(&0);
            let sink = &g.tensors[g.ops[last].output()];
            let bands = s.cfg.bands.max(1) as i64;
            let planned: u64 = s.ops.iter().map(|&x| g.ops[x].macs).sum();
            Cascade {
                operators: s.ops.len(),
                first: g.ops[s.ops[0]].name.clone(),
                last: g.ops[last].name.clone(),
                bands: s.cfg.bands,
                stripe_rows: s.stripes.last().copied(),
                runs: s.runs,
                macs: s.macs,
                halo_macs: s.macs.saturating_sub(planned),
                sink: Sink {
                    name: sink.name.clone(),
                    h: sink.h,
                    w: sink.w,
                },
                band_cols: (0..bands)
                    .map(|b| [sink.w * b / bands, sink.w * (b + 1) / bands])
                    .collect(),
            }
        })
        .collect()
}

/// What the tiling pass was run with, for its section.
pub struct RunSettings<'a> {
    pub time_limit_s: f64,
    pub mode: &'a str,
    pub tiling: &'a str,
    pub weights_in_scratchpad: bool,
    /// Off-chip bandwidth of the target, when it gives one.
    pub bandwidth_bytes_per_s: Option<f64>,
}

/// The `schedule` section for a tiled plan. `cosma` is today's plan's traffic on the same
/// scale (feature maps in and out included) where the scratchpad is at least M_R.
pub fn section(
    g: &SGraph,
    out: &TilingOutcome,
    (m_r, m_r_op): (u64, Option<&str>),
    cosma: Option<u64>,
    settings: &RunSettings,
    rewrite: RewriteInfo,
) -> TiledSection {
    let ours = out.ours.traffic();
    let mut baselines = BTreeMap::new();
    baselines.insert("layer_by_layer".to_string(), out.layer_by_layer.traffic());
    baselines.insert("greedy_cascade".to_string(), out.greedy.traffic());
    if let Some(c) = cosma {
        baselines.insert("cosma".to_string(), Some(c));
    }
    let best = baselines.values().filter_map(|v| *v).min();
    let reduction = |b: Option<u64>| match (b, ours) {
        (Some(b), Some(o)) if b > 0 => Some(1.0 - o as f64 / b as f64),
        _ => None,
    };
    let plan = out.ours.plan.as_ref();
    let check = out.ours.check.as_ref().ok();
    let status = match out.ours.residency.as_str() {
        "optimal" | "optimal after re-placement" => "optimal residency",
        "time_limit" => "time_limit",
        other => other,
    };
    TiledSection {
        tiled: true,
        scratchpad_bytes: out.budget,
        alignment: g.alignment,
        operators: g.ops.len(),
        tensors: g.tensors.len(),
        m_r,
        m_r_operator: m_r_op.map(str::to_string),
        traffic_bytes: TrafficInfo { ours, baselines },
        traffic_counts: "feature maps read and written off chip (graph inputs and outputs included) plus weight reloads".into(),
        best_baseline_traffic_bytes: best,
        reduction_vs_best_baseline: reduction(best),
        reduction_vs_layer_by_layer: reduction(out.layer_by_layer.traffic()),
        reduction_vs_greedy_cascade: reduction(out.greedy.traffic()),
        source: out.ours.name.clone(),
        cascades: plan.map(|p| cascades(g, p)).unwrap_or_default(),
        segments: plan.map(|p| p.segments.len()),
        runs: plan.map(|p| p.runs()),
        macs: check.map(|c| c.macs),
        halo_overhead_macs: check.map(|c| c.halo_macs),
        peak_scratchpad_bytes: check.map(|c| c.peak_bytes),
        ours: method_info(&out.ours),
        baselines: vec![method_info(&out.layer_by_layer), method_info(&out.greedy)],
        candidates: out.candidates.iter().map(method_info).collect(),
        solver: TiledSolver {
            status: status.into(),
            seconds: out.seconds,
            gap: out.gap(),
            bound_bytes: out.lower_bound,
            residency_bound_bytes: out.ours.residency_bound,
            time_limit_s: settings.time_limit_s,
        },
        checker: CheckerInfo {
            passed: out.ours.check.is_ok(),
            plans_checked: out.candidates.len() + 2,
            rejected: out.rejected.clone(),
        },
        plan: plan.map(|p| plan_json(g, p, false)),
        mode: settings.mode.into(),
        tiling: settings.tiling.into(),
        weights_in_scratchpad: settings.weights_in_scratchpad,
        rewrite,
        traffic_seconds: settings
            .bandwidth_bytes_per_s
            .map(|bw| ours.unwrap_or(u64::MAX) as f64 / bw),
    }
}
