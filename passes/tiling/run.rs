//! Puts the tiling together: the two baselines, our candidates (the dynamic program at a
//! few work-area limits, and the greedy cascades, each with the residency program), the
//! checker on every plan, and the choice of the cheapest checked one.

use super::assemble::assemble;
use super::baselines::{greedy_cascades, layer_by_layer};
use super::check::{check, CheckReport};
use super::graph::SGraph;
use super::plan::{Segmentation, TilePlan};
use super::residency::{decide, Placed, Table};
use super::search::dp;
use std::time::Instant;

/// Limits of the tiling search.
#[derive(Clone, Debug)]
pub struct TilingOptions {
    /// Seconds for everything (the dynamic programs stop growing segments past half of it).
    pub time_limit_s: f64,
    /// Work-area limits tried by the dynamic program, as fractions of the scratchpad
    /// (a smaller work area leaves room to keep boundary tensors on chip).
    pub fractions: Vec<f64>,
    /// Longest segment (operators).
    pub max_len: usize,
    /// Bytes of traffic one run is worth (its DMA and command setup): the cut and the
    /// choice between plans minimise traffic + this × runs.
    pub run_overhead_bytes: u64,
}

impl Default for TilingOptions {
    fn default() -> Self {
        TilingOptions {
            time_limit_s: 60.0,
            fractions: vec![1.0, 0.6, 0.35],
            max_len: 48,
            run_overhead_bytes: 256,
        }
    }
}

/// One method's checked plan.
#[derive(Clone, Debug)]
pub struct Method {
    pub name: String,
    pub plan: Option<TilePlan>,
    pub check: Result<CheckReport, String>,
    /// How its residency was decided (`optimal`, `time_limit`, `greedy`, `all streamed`).
    pub residency: String,
    pub residency_bound: Option<u64>,
    pub seconds: f64,
}

impl Method {
    pub fn traffic(&self) -> Option<u64> {
        self.check.as_ref().ok().map(|c| c.traffic)
    }

    fn failed(name: &str, why: String, seconds: f64) -> Method {
        Method {
            name: name.to_string(),
            plan: None,
            check: Err(why),
            residency: String::new(),
            residency_bound: None,
            seconds,
        }
    }
}

#[derive(Clone, Debug)]
pub struct TilingOutcome {
    pub budget: u64,
    pub layer_by_layer: Method,
    pub greedy: Method,
    /// Every candidate of ours, checked.
    pub candidates: Vec<Method>,
    /// The chosen plan (cheapest checked candidate; never above the greedy cascade).
    pub ours: Method,
    /// Traffic no plan can avoid: graph inputs read once, graph outputs written once.
    pub lower_bound: u64,
    pub seconds: f64,
    pub rejected: Vec<String>,
}

impl TilingOutcome {
    /// (traffic − lower bound) / traffic of the chosen plan.
    pub fn gap(&self) -> Option<f64> {
        let t = self.ours.traffic()?;
        Some(if t == 0 {
            0.0
        } else {
            t.saturating_sub(self.lower_bound) as f64 / t as f64
        })
    }
}

/// Plans, places and checks one segmentation.
fn method(
    g: &SGraph,
    sgm: Result<Segmentation, String>,
    budget: u64,
    residency: Option<bool>,
    limit_s: f64,
    name: &str,
) -> Method {
    let started = Instant::now();
    let sgm = match sgm {
        Ok(s) => s,
        Err(e) => return Method::failed(name, e, started.elapsed().as_secs_f64()),
    };
    let table = Table::new(g, &sgm.parts, budget);
    let placed = match residency {
        Some(ilp) => decide(&table, budget, ilp, limit_s),
        None => Placed::streamed(&table),
    };
    let (sgm, table, placed) = match super::grow::grow(g, &sgm, &table, &placed, budget) {
        Some(grown) => grown,
        None => (sgm, table, placed),
    };
    let Some(plan) = assemble(g, &sgm, &table, &placed, budget) else {
        return Method::failed(
            name,
            "a segment outgrew its work area when re-simulated".into(),
            started.elapsed().as_secs_f64(),
        );
    };
    let check = if plan.claimed_traffic != placed.traffic {
        Err(format!(
            "the plan's traffic {} differs from the residency program's {}",
            plan.claimed_traffic, placed.traffic
        ))
    } else {
        check(g, &plan)
    };
    Method {
        name: name.to_string(),
        plan: Some(plan),
        check,
        residency: placed.status.clone(),
        residency_bound: placed.bound,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Tiles `g` for a scratchpad of `budget` bytes.
pub fn solve(g: &SGraph, budget: u64, opts: &TilingOptions) -> Result<TilingOutcome, String> {
    let started = Instant::now();
    let lbl = method(
        g,
        layer_by_layer(g, budget),
        budget,
        None,
        0.0,
        "layer_by_layer",
    );
    let greedy_sgm = greedy_cascades(g, budget);
    let greedy = method(
        g,
        greedy_sgm.clone(),
        budget,
        Some(false),
        0.0,
        "greedy_cascade",
    );
    let share = opts.time_limit_s / (2.0 * (opts.fractions.len() + 1) as f64);
    let mut candidates = Vec::new();
    for &f in &opts.fractions {
        let limit = (budget as f64 * f) as u64;
        let name = format!("cascade_dp({:.0}%)", f * 100.0);
        let deadline = (started.elapsed().as_secs_f64() + share).min(opts.time_limit_s * 0.5);
        let sgm = dp(
            g,
            limit,
            budget,
            opts.max_len,
            opts.run_overhead_bytes,
            deadline,
            &name,
        );
        candidates.push(method(g, sgm, budget, Some(true), share, &name));
    }
    let mut sgm = greedy_sgm;
    if let Ok(s) = &mut sgm {
        s.name = "greedy_cascade+residency_ilp".into();
    }
    candidates.push(method(
        g,
        sgm,
        budget,
        Some(true),
        share,
        "greedy_cascade+residency_ilp",
    ));
    let mut rejected: Vec<String> = Vec::new();
    for m in candidates.iter().chain([&lbl, &greedy]) {
        if let Err(e) = &m.check {
            rejected.push(format!("{}: {e}", m.name));
        }
    }
    // The least traffic + overhead × runs, never above the greedy cascade's traffic.
    let cap = greedy.traffic().unwrap_or(u64::MAX);
    let ovh = opts.run_overhead_bytes;
    let ours = candidates
        .iter()
        .chain([&greedy])
        .filter(|m| m.traffic().is_some_and(|t| t <= cap))
        .min_by_key(|m| {
            let runs = m.plan.as_ref().map(|p| p.runs() as u64).unwrap_or(0);
            (
                m.traffic().unwrap_or(u64::MAX).saturating_add(ovh * runs),
                runs,
            )
        })
        .cloned()
        .ok_or_else(|| format!("no tiled plan passed the checker: {}", rejected.join("; ")))?;
    let lower_bound = g
        .tensors
        .iter()
        .filter(|t| t.graph_input || t.graph_output)
        .map(|t| t.bytes)
        .sum();
    Ok(TilingOutcome {
        budget,
        layer_by_layer: lbl,
        greedy,
        candidates,
        ours,
        lower_bound,
        seconds: started.elapsed().as_secs_f64(),
        rejected,
    })
}
