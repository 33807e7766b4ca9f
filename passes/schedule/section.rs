//! The scheduling pass's section of the report, typed: a schedule of whole tensors (COSMA)
//! or a tiled one (below M_R). The pass builds it, the report carries its JSON, and the
//! terminal summary and the HTML report read it back as these types
//! ([`ScheduleSection::from_report`]). The memory plan stays a JSON document of its own
//! (`plan`): it is also the `--plan` file, whose format differs between the two.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The schedule section: tiled or whole.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScheduleSection {
    Tiled(Box<TiledSection>),
    Whole(Box<WholeSection>),
}

/// Off-chip traffic of the chosen plan and of each baseline (`None`: no valid plan).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrafficInfo {
    pub ours: Option<u64>,
    pub baselines: BTreeMap<String, Option<u64>>,
}

/// One plan of whole tensors: a baseline, a candidate, or ours.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WholeMethod {
    pub name: String,
    pub traffic_bytes: Option<u64>,
    /// `passed` or `failed: why`.
    pub check: String,
    pub peak_resident_bytes: Option<u64>,
}

/// The ILP (or window search) behind a schedule of whole tensors.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SolverInfo {
    pub status: String,
    pub seconds: f64,
    /// (traffic − lower bound) / traffic for the chosen order; 0 when proven optimal.
    pub gap: Option<f64>,
    pub bound_bytes: Option<u64>,
    pub windows: usize,
    pub fallback_windows: usize,
    pub variables: usize,
    pub time_limit_s: f64,
}

/// What the independent checker saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckerInfo {
    pub passed: bool,
    pub plans_checked: usize,
    /// Plans it rejected, with the reason (never used).
    pub rejected: Vec<String>,
}

/// A schedule of whole tensors (COSMA), at or above M_R.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WholeSection {
    pub scratchpad_bytes: u64,
    pub alignment: u64,
    pub tensors: usize,
    pub operators: usize,
    pub m_r: u64,
    pub m_r_operator: Option<String>,
    pub m_p: u64,
    pub m_p_exact: bool,
    pub model_order_peak: u64,
    pub live_bytes_bound: u64,
    pub traffic_lower_bound: Option<u64>,
    pub free_order_traffic_lower_bound: Option<u64>,
    pub traffic_bytes: TrafficInfo,
    pub ours: WholeMethod,
    /// Where the chosen plan came from (`ilp`, `windows`, or a baseline fallback).
    pub source: String,
    pub baselines: Vec<WholeMethod>,
    pub candidates: Vec<WholeMethod>,
    pub best_baseline_traffic_bytes: Option<u64>,
    pub reduction_vs_best_baseline: Option<f64>,
    pub solver: SolverInfo,
    pub checker: CheckerInfo,
    /// The memory plan (the `--plan` file's content).
    pub plan: serde_json::Value,
    pub mode: String,
    pub weights_in_scratchpad: bool,
    /// Traffic over the target's bandwidth, when the target gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_seconds: Option<f64>,
}

/// One tiled plan: a baseline, a candidate, or ours.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TiledMethod {
    pub name: String,
    pub traffic_bytes: Option<u64>,
    /// `passed` or `failed: why`.
    pub check: String,
    /// How its residency was decided (`optimal`, `time_limit`, `greedy`, `all streamed`).
    pub residency: String,
    pub seconds: f64,
    pub segments: Option<usize>,
    pub runs: Option<usize>,
}

/// The tensor a cascade ends in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sink {
    pub name: String,
    pub h: i64,
    pub w: i64,
}

/// A segment run in more than one tile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cascade {
    pub operators: usize,
    pub first: String,
    pub last: String,
    pub bands: usize,
    pub stripe_rows: Option<i64>,
    pub runs: usize,
    pub macs: u64,
    pub halo_macs: u64,
    pub sink: Sink,
    /// Each band's columns `[from, to)` of the sink.
    pub band_cols: Vec<[i64; 2]>,
}

/// The search behind a tiled plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TiledSolver {
    pub status: String,
    pub seconds: f64,
    /// To the compulsory traffic (graph inputs and outputs), a bound no tiling beats.
    pub gap: Option<f64>,
    pub bound_bytes: u64,
    pub residency_bound_bytes: Option<u64>,
    pub time_limit_s: f64,
}

/// What the tiled rewrite did to the graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RewriteInfo {
    pub nodes_before: usize,
    pub nodes_after: usize,
    pub tiled_segments: usize,
}

/// A tiled schedule (fused-layer tiling), below M_R or with `--tiling on`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TiledSection {
    /// Always true: tells the shapes apart in the JSON.
    pub tiled: bool,
    pub scratchpad_bytes: u64,
    pub alignment: u64,
    pub operators: usize,
    pub tensors: usize,
    pub m_r: u64,
    pub m_r_operator: Option<String>,
    pub traffic_bytes: TrafficInfo,
    pub traffic_counts: String,
    pub best_baseline_traffic_bytes: Option<u64>,
    pub reduction_vs_best_baseline: Option<f64>,
    pub reduction_vs_layer_by_layer: Option<f64>,
    pub reduction_vs_greedy_cascade: Option<f64>,
    pub source: String,
    pub cascades: Vec<Cascade>,
    pub segments: Option<usize>,
    pub runs: Option<usize>,
    pub macs: Option<u64>,
    pub halo_overhead_macs: Option<u64>,
    pub peak_scratchpad_bytes: Option<u64>,
    pub ours: TiledMethod,
    pub baselines: Vec<TiledMethod>,
    pub candidates: Vec<TiledMethod>,
    pub solver: TiledSolver,
    pub checker: CheckerInfo,
    /// The tiled plan without tile events (the `--plan` file has them).
    pub plan: Option<serde_json::Value>,
    pub mode: String,
    pub tiling: String,
    pub weights_in_scratchpad: bool,
    pub rewrite: RewriteInfo,
    /// Traffic over the target's bandwidth, when the target gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_seconds: Option<f64>,
}

impl ScheduleSection {
    /// The section as the report carries it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Reads a report's schedule section back (`None` when it has neither shape).
    pub fn from_report(v: &serde_json::Value) -> Option<ScheduleSection> {
        serde_json::from_value(v.clone()).ok()
    }

    /// The memory plan the report carries.
    pub fn plan(&self) -> Option<&serde_json::Value> {
        match self {
            ScheduleSection::Tiled(t) => t.plan.as_ref(),
            ScheduleSection::Whole(w) => Some(&w.plan),
        }
    }

    /// The chosen plan's traffic and the baselines'.
    pub fn traffic(&self) -> &TrafficInfo {
        match self {
            ScheduleSection::Tiled(t) => &t.traffic_bytes,
            ScheduleSection::Whole(w) => &w.traffic_bytes,
        }
    }
}
