//! The scheduling pass: extracts the problem, schedules it, puts `graph.order` into the
//! chosen order (export lists nodes in it) and leaves the report section, with the memory
//! plan the pipeline writes to `--plan`, in a slot the pipeline reads.

use super::plan::plan_json;
use super::problem::{extract, Problem};
use super::section::ScheduleSection;
use super::solve::{schedule, Outcome, ScheduleError, ScheduleOptions};
use super::target::Target;
use crate::pass_manager::{Pass, PassChanges, PassResult, ReportSection};
use optimize_ir::error::{Error, Result};
use optimize_ir::ir::Model;

/// The pass's name, and the key of its report section.
pub const PASS_NAME: &str = "schedule";

pub struct SchedulePass {
    pub target: Target,
    pub options: ScheduleOptions,
}

impl Pass for SchedulePass {
    fn name(&self) -> &'static str {
        PASS_NAME
    }

    fn run(&self, model: &mut Model) -> Result<PassResult> {
        let p = extract(model, &self.target).map_err(Error::Usage)?;
        self.run_extracted(model, &p)
    }
}

impl SchedulePass {
    /// [`Pass::run`] on a problem already extracted from `model` (the tiling pass extracts
    /// it to decide whether to tile).
    pub fn run_extracted(&self, model: &mut Model, p: &Problem) -> Result<PassResult> {
        let progress = optimize_ir::progress::spinner("schedule");
        progress.set_message(format!(
            "{} operators, {} tensors, scratchpad {} bytes",
            p.ops.len(),
            p.tensors.len(),
            self.target.scratchpad_bytes
        ));
        let out = schedule(p, self.target.scratchpad_bytes, &self.options).map_err(|e| match e {
            ScheduleError::BelowMr { .. } => Error::Usage(e.to_string()),
            ScheduleError::Other(m) => Error::Internal(format!("scheduling failed: {m}")),
        });
        progress.finish_and_clear();
        self.apply(model, p, &out?)
    }

    /// Puts a solved schedule of `p` (extracted from `model`) into the model and the report
    /// slot. The tiling pass calls it with the COSMA outcome it already computed to compare
    /// with its tiled plan, so the schedule is not solved twice.
    pub fn apply(&self, model: &mut Model, p: &Problem, out: &Outcome) -> Result<PassResult> {
        let Some(plan) = &out.ours.plan else {
            return Err(Error::Internal("the chosen schedule has no plan".into()));
        };
        let check = out
            .ours
            .check
            .as_ref()
            .map_err(|e| Error::Internal(format!("the chosen plan fails the checker: {e}")))?;
        let new_order: Vec<_> = plan.order.iter().map(|&o| p.nodes[o]).collect();
        let moved = new_order
            .iter()
            .zip(&model.graph.order)
            .filter(|(a, b)| a != b)
            .count();
        model.graph.order = new_order;
        // The HTML report draws the memory timeline from the plan; it is the --plan file too.
        let plan_v = plan_json(p, plan, &check.segments, self.target.scratchpad_bytes);
        let traffic_seconds = self
            .target
            .bandwidth_bytes_per_s
            .map(|bw| out.ours.traffic().unwrap_or(0) as f64 / bw);
        let section = ScheduleSection::Whole(Box::new(out.section(
            p,
            plan_v.clone(),
            self.options.mode.name(),
            self.target.weights_in_scratchpad,
            traffic_seconds,
        )));
        let mut changes = PassChanges::default();
        changes.add("reordered_nodes", moved as u64);
        changes.add("spill_bytes", check.spill_bytes);
        changes.add("reload_bytes", check.reload_bytes);
        Ok(PassResult {
            changes,
            section: Some(ReportSection {
                plan: Some(plan_v),
                ..ReportSection::new(PASS_NAME, section.to_json())
            }),
        })
    }
}
