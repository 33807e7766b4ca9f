//! The report section of a tiled schedule: traffic against each baseline, the cascades
//! with their cuts and halo recompute, the solver and checker results, the plan.

use super::graph::SGraph;
use super::plan::{plan_json, TilePlan};
use super::run::{Method, TilingOutcome};
use serde_json::{json, Value};

fn method_json(m: &Method) -> Value {
    json!({
        "name": m.name,
        "traffic_bytes": m.traffic(),
        "check": match &m.check { Ok(_) => Value::from("passed"), Err(e) => Value::from(format!("failed: {e}")) },
        "residency": m.residency,
        "seconds": m.seconds,
        "segments": m.plan.as_ref().map(|p| p.segments.len()),
        "runs": m.plan.as_ref().map(|p| p.runs()),
    })
}

/// The cascades of a plan (segments run in more than one tile).
pub fn cascades_json(g: &SGraph, p: &TilePlan) -> Vec<Value> {
    p.segments
        .iter()
        .filter(|s| s.runs > s.ops.len())
        .map(|s| {
            let last = *s.ops.last().unwrap_or(&0);
            let sink = &g.tensors[g.ops[last].output()];
            let bands = s.cfg.bands.max(1) as i64;
            let planned: u64 = s.ops.iter().map(|&x| g.ops[x].macs).sum();
            json!({
                "operators": s.ops.len(),
                "first": g.ops[s.ops[0]].name,
                "last": g.ops[last].name,
                "bands": s.cfg.bands,
                "stripe_rows": s.stripes.last(),
                "runs": s.runs,
                "macs": s.macs,
                "halo_macs": s.macs.saturating_sub(planned),
                "sink": {"name": sink.name, "h": sink.h, "w": sink.w},
                "band_cols": (0..bands).map(|b| json!([sink.w * b / bands, sink.w * (b + 1) / bands])).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// The `schedule` section for a tiled plan. `cosma` is today's plan's traffic on the same
/// scale (feature maps in and out included) where the scratchpad is at least M_R.
pub fn section(
    g: &SGraph,
    out: &TilingOutcome,
    m_r: u64,
    m_r_op: Option<&str>,
    cosma: Option<u64>,
    time_limit_s: f64,
) -> Value {
    let ours = out.ours.traffic();
    let mut baselines = serde_json::Map::new();
    baselines.insert("layer_by_layer".into(), json!(out.layer_by_layer.traffic()));
    baselines.insert("greedy_cascade".into(), json!(out.greedy.traffic()));
    if let Some(c) = cosma {
        baselines.insert("cosma".into(), json!(c));
    }
    let best = baselines.values().filter_map(|v| v.as_u64()).min();
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
    json!({
        "tiled": true,
        "scratchpad_bytes": out.budget,
        "alignment": g.alignment,
        "operators": g.ops.len(),
        "tensors": g.tensors.len(),
        "m_r": m_r,
        "m_r_operator": m_r_op,
        "traffic_bytes": {"ours": ours, "baselines": baselines},
        "traffic_counts": "feature maps read and written off chip (graph inputs and outputs included) plus weight reloads",
        "best_baseline_traffic_bytes": best,
        "reduction_vs_best_baseline": reduction(best),
        "reduction_vs_layer_by_layer": reduction(out.layer_by_layer.traffic()),
        "reduction_vs_greedy_cascade": reduction(out.greedy.traffic()),
        "source": out.ours.name,
        "cascades": plan.map(|p| cascades_json(g, p)).unwrap_or_default(),
        "segments": plan.map(|p| p.segments.len()),
        "runs": plan.map(|p| p.runs()),
        "macs": check.map(|c| c.macs),
        "halo_overhead_macs": check.map(|c| c.halo_macs),
        "peak_scratchpad_bytes": check.map(|c| c.peak_bytes),
        "ours": method_json(&out.ours),
        "baselines": [method_json(&out.layer_by_layer), method_json(&out.greedy)],
        "candidates": out.candidates.iter().map(method_json).collect::<Vec<_>>(),
        "solver": {
            "status": status,
            "seconds": out.seconds,
            "gap": out.gap(),
            "bound_bytes": out.lower_bound,
            "residency_bound_bytes": out.ours.residency_bound,
            "time_limit_s": time_limit_s,
        },
        "checker": {
            "passed": out.ours.check.is_ok(),
            "plans_checked": out.candidates.len() + 2,
            "rejected": out.rejected,
        },
        "plan": plan.map(|p| plan_json(g, p, false)),
    })
}
