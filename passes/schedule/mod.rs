//! Scratchpad scheduling (COSMA): operator order, scratchpad offsets, and which tensors
//! to spill off-chip and reload, minimizing non-compulsory off-chip traffic for an
//! accelerator with a small on-chip memory.
//!
//! * [`problem`]: the problem extracted from the IR; [`target`]: the accelerator;
//! * [`bounds`]: M_R, live bytes of an order, traffic lower bound;
//! * [`order`]: minimum-peak order (M_P); [`baseline`]: greedy arena + Belady;
//! * [`ilp`]: fixed-order COSMA on CBC; [`windows`]: divide and conquer;
//! * [`free_ilp`]: free-order COSMA (order, offsets, spills in one program) for small graphs;
//! * [`residency`]: two-phase program per order; [`placement`]: offsets for fixed lifetimes;
//! * [`checker`]: independent replay of every plan; [`plan`]: plan and its JSON.

pub mod baseline;
pub mod bounds;
pub mod checker;
pub mod free_ilp;
pub mod ilp;
pub mod order;
pub mod placement;
pub mod plan;
pub mod problem;
pub mod residency;
pub mod section;
pub mod target;
pub mod tiling_mode;
pub mod windows;

mod pass;
mod solve;

pub use pass::{SchedulePass, PASS_NAME};
pub use solve::{schedule, schedule_with, Mode, Outcome, ScheduleError, ScheduleOptions};

#[cfg(test)]
mod tests;

/// Everything the pipeline needs to run the pass (from `--scratchpad`/`--target`,
/// `--schedule-mode`, `--schedule-time-limit` and `--plan`).
#[derive(Clone, Debug)]
pub struct ScheduleConfig {
    pub target: target::Target,
    pub options: ScheduleOptions,
    pub plan: Option<std::path::PathBuf>,
}

impl ScheduleConfig {
    /// Builds the configuration from command-line values; `None` when neither a
    /// scratchpad size nor a target file is given (the pass does not run then).
    pub fn from_flags(
        scratchpad: Option<&str>,
        target_file: Option<&std::path::Path>,
        mode: Option<&str>,
        time_limit_s: Option<f64>,
        weights_in_scratchpad: bool,
        plan: Option<std::path::PathBuf>,
    ) -> Result<Option<ScheduleConfig>, optimize_ir::error::Error> {
        use optimize_ir::error::Error;
        let mut target = match target_file {
            Some(f) => Some(target::Target::from_toml_file(f).map_err(|e| Error::input(f, e))?),
            None => None,
        };
        if let Some(s) = scratchpad {
            let bytes = optimize_ir::byte_size::parse_size(s)
                .map_err(|e| Error::Usage(format!("--scratchpad: {e}")))?;
            match &mut target {
                Some(t) => t.scratchpad_bytes = bytes,
                None => target = Some(target::Target::with_scratchpad(bytes)),
            }
        }
        if let Some(t) = &target {
            let max = crate::limits::MAX_SCRATCHPAD;
            if t.scratchpad_bytes > max {
                let msg = format!(
                    "scratchpad of {} bytes: expected at most {}",
                    t.scratchpad_bytes,
                    optimize_ir::onnx_io::limits::fmt_bytes(max)
                );
                return Err(match (target_file, scratchpad) {
                    (Some(f), None) => Error::input(f, msg),
                    _ => Error::Usage(format!("--scratchpad: {msg}")),
                });
            }
        }
        let Some(mut target) = target else {
            if mode.is_some() || plan.is_some() || time_limit_s.is_some() || weights_in_scratchpad {
                return Err(Error::Usage(
                    "--schedule-mode, --schedule-time-limit, --weights-in-scratchpad and --plan need --scratchpad SIZE or --target FILE".into(),
                ));
            }
            return Ok(None);
        };
        if weights_in_scratchpad {
            target.weights_in_scratchpad = true;
        }
        let mut options = ScheduleOptions::default();
        if let Some(m) = mode {
            options.mode = m
                .parse()
                .map_err(|e: String| Error::Usage(format!("--schedule-mode: {e}")))?;
        }
        if let Some(t) = time_limit_s {
            if !(t.is_finite() && (1.0..=crate::limits::MAX_TIME_LIMIT_S).contains(&t)) {
                return Err(Error::Usage(format!(
                    "--schedule-time-limit must be between 1 and {:e} seconds, got {t}",
                    crate::limits::MAX_TIME_LIMIT_S
                )));
            }
            options.time_limit_s = t;
        }
        Ok(Some(ScheduleConfig {
            target,
            options,
            plan,
        }))
    }
}
