//! The scheduling pass with tiling: below M_R (or always, with `--tiling on`) it tiles the
//! model and rewrites it into the tiled program; otherwise it is the COSMA pass unchanged.

use super::graph::extract as tiling_view;
use super::report::{section, RunSettings};
use super::rewrite::rewrite;
use super::run::{solve, TilingOptions};
use crate::pass_manager::{Pass, PassChanges, PassResult, ReportSection};
use crate::schedule::bounds::m_r;
use crate::schedule::problem::extract;
use crate::schedule::section::{RewriteInfo, ScheduleSection};
use crate::schedule::tiling_mode::TilingMode;
use crate::schedule::{schedule, SchedulePass};
use optimize_ir::error::{Error, Result};
use optimize_ir::ir::Model;

/// [`SchedulePass`] that tiles where whole tensors do not fit.
pub struct TiledSchedulePass {
    pub inner: SchedulePass,
    /// `--plan` asked: the section's `plan` has every tile event, for `--plan` only (the
    /// report does not carry it).
    pub plan_events: bool,
}

impl Pass for TiledSchedulePass {
    fn name(&self) -> &'static str {
        crate::schedule::PASS_NAME
    }

    fn run(&self, model: &mut Model) -> Result<PassResult> {
        let (target, opts) = (&self.inner.target, &self.inner.options);
        if opts.tiling == TilingMode::Off {
            return self.inner.run(model);
        }
        let p = extract(model, target).map_err(Error::Usage)?;
        let (mr, mr_op) = m_r(&p);
        let budget = target.scratchpad_bytes;
        if budget >= mr && opts.tiling == TilingMode::Auto {
            return self.inner.run_extracted(model, &p);
        }
        let g = tiling_view(model, target.alignment, target.weights_in_scratchpad)
            .map_err(Error::Usage)?;
        let mr_name = mr_op.map(|o| p.ops[o].name.clone());
        let tiling = TilingOptions {
            time_limit_s: opts.time_limit_s,
            ..TilingOptions::default()
        };
        let progress = optimize_ir::progress::spinner("schedule");
        progress.set_message(format!(
            "tiling {} operators for a {budget}-byte scratchpad",
            g.ops.len()
        ));
        let out = solve(&g, budget, &tiling);
        progress.finish_and_clear();
        let out = out.map_err(|e| {
            let o = mr_op.map(|o| &p.ops[o]);
            Error::Usage(format!(
                "the scratchpad ({budget} bytes) is smaller than M_R = {mr} bytes, which operator '{}' ({}) needs at once, and no tiling fits either: {e}",
                o.map(|o| o.name.as_str()).unwrap_or(""),
                o.map(|o| o.op_type.as_str()).unwrap_or("")
            ))
        })?;
        // At or above M_R (tiling on): today's plan on the same scale competes.
        let compulsory: u64 = g
            .tensors
            .iter()
            .filter(|t| t.graph_input || t.graph_output)
            .map(|t| t.bytes)
            .sum();
        let cosma_outcome = if budget >= mr {
            schedule(&p, budget, opts).ok()
        } else {
            None
        };
        let cosma = cosma_outcome
            .as_ref()
            .and_then(|o| o.ours.traffic())
            .map(|t| t + compulsory);
        let ours = out.ours.traffic().unwrap_or(u64::MAX);
        if let (Some(c), Some(outcome)) = (cosma, &cosma_outcome) {
            if c <= ours {
                // Already solved: applied as is rather than scheduled a second time.
                return self.inner.apply(model, &p, outcome);
            }
        }
        let plan = out
            .ours
            .plan
            .as_ref()
            .ok_or_else(|| Error::Internal("the chosen tiling has no plan".into()))?;
        let check = out.ours.check.as_ref().map_err(|e| {
            Error::Internal(format!("the chosen tiled plan fails the checker: {e}"))
        })?;
        let rw =
            rewrite(model, &g, plan).map_err(|e| Error::Internal(format!("tiled rewrite: {e}")))?;
        let settings = RunSettings {
            time_limit_s: opts.time_limit_s,
            mode: opts.mode.name(),
            tiling: opts.tiling.name(),
            weights_in_scratchpad: target.weights_in_scratchpad,
            bandwidth_bytes_per_s: target.bandwidth_bytes_per_s,
        };
        let rewritten = RewriteInfo {
            nodes_before: rw.nodes_before,
            nodes_after: rw.nodes_after,
            tiled_segments: rw.tiled_segments,
        };
        let sec = section(
            &g,
            &out,
            (mr, mr_name.as_deref()),
            cosma,
            &settings,
            rewritten,
        );
        // For `--plan`: every tile event when asked, else the plan the section carries.
        let plan_out = if self.plan_events {
            Some(super::plan::plan_json(&g, plan, true))
        } else {
            sec.plan.clone()
        };
        let sec = ScheduleSection::Tiled(Box::new(sec));
        let mut changes = PassChanges::default();
        changes.add("tiled_segments", rw.tiled_segments as u64);
        changes.add("tile_runs", plan.runs() as u64);
        changes.add("load_bytes", check.load_bytes);
        changes.add("store_bytes", check.store_bytes);
        Ok(PassResult {
            changes,
            section: Some(ReportSection {
                plan: plan_out,
                ..ReportSection::new(crate::schedule::PASS_NAME, sec.to_json())
            }),
        })
    }
}
