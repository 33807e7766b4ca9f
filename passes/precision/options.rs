//! The precision pass's settings as a user gives them: `--size-budget`/`--avg-bits` and
//! `--calib-method` (flags), and the options of a `[[pass]] name = "precision"` entry of
//! optimize.toml, with the range checks both share.

use super::calibrate::CalibMethod;
use super::latency::LatencySettings;
use super::pass::{Budget, PrecisionConfig};
use super::speed::LatencyGoal;
use super::Precision;
use optimize_ir::error::{flag_error, Error, Result, Shown};
use std::path::PathBuf;

/// The precision settings a user gives by flag (or by the config file's top-level keys,
/// which fill the flags not given): what [`PrecisionFlags::config`] turns into the pass's
/// configuration, so that the CLI never builds pass internals.
#[derive(Clone, Debug, Default)]
pub struct PrecisionFlags {
    /// `--no-precision`.
    pub off: bool,
    pub size_budget: Option<f64>,
    pub avg_bits: Option<f64>,
    /// `--calib DIR`.
    pub calib: Option<PathBuf>,
    pub calib_random: bool,
    pub calib_method: Option<String>,
    /// `--precision-time-limit`.
    pub time_limit_s: Option<f64>,
    pub seed: u64,
    /// `--objective`: `error` (the default) or `speed`.
    pub objective: Option<String>,
    /// `--latency-budget`: a fraction of fp32's predicted time.
    pub latency_budget: Option<f64>,
    /// `--threads`: the target's intra-op threads, for the latency model.
    pub threads: Option<usize>,
}

impl PrecisionFlags {
    /// The pass's configuration (`None`: turned off), the flags' combinations checked.
    pub fn config(&self) -> Result<Option<PrecisionConfig>> {
        if self.off {
            if self.calib.is_some()
                || self.calib_random
                || self.size_budget.is_some()
                || self.avg_bits.is_some()
                || self.objective.is_some()
                || self.latency_budget.is_some()
                || self.threads.is_some()
            {
                return Err(Error::Usage(
                    "--no-precision turns mixed precision off; drop --calib/--calib-random/--size-budget/--avg-bits/--objective/--latency-budget/--threads"
                        .into(),
                ));
            }
            return Ok(None);
        }
        if self.calib_random && self.calib.is_some() {
            return Err(Error::Usage(
                "--calib-random is for runs without calibration data; drop it or --calib".into(),
            ));
        }
        let mut cfg = PrecisionConfig::default();
        if let Some(b) = parse_budget(self.size_budget, self.avg_bits)? {
            cfg.budget = b;
        }
        if let Some(m) = &self.calib_method {
            cfg.calib_method = parse_calib_method(m)?;
        }
        if let Some(t) = self.time_limit_s {
            cfg.time_limit_s = t;
        }
        cfg.budget_explicit = self.size_budget.is_some() || self.avg_bits.is_some();
        cfg.explicit = self.calib.is_some()
            || cfg.budget_explicit
            || self.calib_random
            || self.calib_method.is_some()
            || self.time_limit_s.is_some();
        cfg.calib_dir = self.calib.clone();
        cfg.calib_random = self.calib_random;
        cfg.seed = self.seed;
        cfg.latency = self.latency_goal()?;
        if let Some(goal) = &cfg.latency {
            cfg.explicit = true;
            if goal.budget.is_some() {
                take_latency_budget(&mut cfg);
            }
        }
        Ok(Some(cfg))
    }

    /// The latency goal of `--objective speed` / `--latency-budget` (`None`: neither).
    fn latency_goal(&self) -> Result<Option<LatencyGoal>> {
        let speed = match self.objective.as_deref() {
            None | Some("error") => false,
            Some("speed") => true,
            Some(other) => {
                return Err(flag_error(
                    "--objective",
                    other,
                    "expected error (least error within the budgets) or speed (fastest within the budget or fidelity target)".into(),
                ))
            }
        };
        if let Some(b) = self.latency_budget {
            latency_budget(b).map_err(|why| flag_error("--latency-budget", b.shown(), why))?;
        }
        if let Some(t) = self.threads {
            check_threads(t as i64)?;
        }
        if !speed && self.latency_budget.is_none() {
            if self.threads.is_some() {
                return Err(Error::Usage(
                    "--threads sets the target of the latency model: give it with --objective speed or --latency-budget".into(),
                ));
            }
            return Ok(None);
        }
        Ok(Some(LatencyGoal {
            budget: self.latency_budget,
            speed,
            ..goal_at(self.threads.unwrap_or_else(default_threads))
        }))
    }
}

/// A latency budget is the run's budget: without a size budget, size is free.
fn take_latency_budget(cfg: &mut PrecisionConfig) {
    if !cfg.budget_explicit {
        cfg.budget = Budget::SizeFraction(1.0);
    }
    cfg.budget_explicit = true;
}

/// A goal with neither a budget nor speed yet, measured at `threads`.
fn goal_at(threads: usize) -> LatencyGoal {
    LatencyGoal {
        settings: LatencySettings {
            threads,
            ..LatencySettings::default()
        },
        budget: None,
        speed: false,
    }
}

/// The latency model's default thread count: every core this process may use.
fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// `--threads N` / `threads = N`: 1 to 1024 intra-op threads.
fn check_threads(t: i64) -> Result<usize> {
    if (1..=1024).contains(&t) {
        Ok(t as usize)
    } else {
        Err(flag_error(
            "--threads",
            t.to_string(),
            "expected 1 to 1024 intra-op threads".into(),
        ))
    }
}

/// The keys a `[[pass]] name = "precision"` entry may give.
pub const OPTION_KEYS: &[&str] = &[
    "size-budget",
    "avg-bits",
    "calib",
    "calib-random",
    "calib-method",
    "time-limit",
    "objective",
    "latency-budget",
    "threads",
];

/// `--latency-budget`: a fraction of fp32's predicted time, above 0 and at most 1.
pub fn latency_budget(f: f64) -> Result<(), String> {
    if f > 0.0 && f <= 1.0 {
        Ok(())
    } else {
        Err("expected a fraction of fp32's predicted time, above 0 and at most 1".into())
    }
}

/// `--size-budget`: a fraction of the fp32 weight bytes no smaller than the narrowest
/// precision stores, at most 1.
pub fn size_budget(f: f64) -> Result<(), String> {
    let floor = Precision::min_weight_bits() as f64 / 32.0;
    if !(f.is_finite() && f > 0.0 && f <= 1.0) {
        return Err("expected a fraction of the fp32 weight bytes in (0, 1], e.g. 0.3".into());
    }
    if f < floor {
        return Err(format!(
            "below {floor}, what the narrowest precision (int{}) stores per fp32 weight byte; no allocation can meet it",
            Precision::min_weight_bits()
        ));
    }
    Ok(())
}

/// `--avg-bits`: between the narrowest precision's bits and 32.
pub fn avg_bits(b: f64) -> Result<(), String> {
    let lo = Precision::min_weight_bits() as f64;
    if b.is_finite() && (lo..=32.0).contains(&b) {
        Ok(())
    } else {
        Err(format!(
            "expected bits per weight between {lo} (int{lo}) and 32, e.g. 6"
        ))
    }
}

/// Options of `[[pass]] name = "precision"` in optimize.toml: `size-budget`, `avg-bits`,
/// `calib`, `calib-random`, `calib-method`, `time-limit`, `objective`, `latency-budget`,
/// `threads`.
pub fn apply_options(cfg: &mut PrecisionConfig, options: &toml::Table) -> Result<()> {
    for (k, v) in options {
        let bad = || Error::Usage(format!("pass 'precision': bad value for '{k}': {v:?}"));
        let num = || {
            v.as_float()
                .or(v.as_integer().map(|i| i as f64))
                .ok_or_else(bad)
        };
        match k.as_str() {
            "size-budget" => {
                cfg.budget = parse_budget(Some(num()?), None)?.unwrap_or(cfg.budget);
                cfg.budget_explicit = true;
            }
            "avg-bits" => {
                cfg.budget = parse_budget(None, Some(num()?))?.unwrap_or(cfg.budget);
                cfg.budget_explicit = true;
            }
            "calib" => cfg.calib_dir = Some(PathBuf::from(v.as_str().ok_or_else(bad)?)),
            "calib-random" => cfg.calib_random = v.as_bool().ok_or_else(bad)?,
            "calib-method" => cfg.calib_method = parse_calib_method(v.as_str().ok_or_else(bad)?)?,
            "time-limit" => {
                let t = num()?;
                crate::limits::time_limit(t)
                    .map_err(|why| flag_error("time-limit", t.shown(), why))?;
                cfg.time_limit_s = t;
            }
            "objective" | "latency-budget" | "threads" => latency_option(cfg, k, v)?,
            other => {
                return Err(Error::Usage(format!(
                    "pass 'precision' takes no option '{other}' (known: {})",
                    OPTION_KEYS.join(", ")
                )))
            }
        }
    }
    if cfg
        .latency
        .as_ref()
        .is_some_and(|g| !g.speed && g.budget.is_none())
    {
        if options.contains_key("threads") {
            return Err(Error::Usage(
                "pass 'precision': threads sets the target of the latency model: give it with objective = \"speed\" or latency-budget".into(),
            ));
        }
        cfg.latency = None;
    }
    Ok(())
}

/// The `objective`, `latency-budget` and `threads` options of a `[[pass]]` entry: the
/// same goal as the flags (`threads` alone, without a goal, is refused the same way).
fn latency_option(cfg: &mut PrecisionConfig, key: &str, v: &toml::Value) -> Result<()> {
    let bad = || Error::Usage(format!("pass 'precision': bad value for '{key}': {v:?}"));
    let mut goal = cfg
        .latency
        .clone()
        .unwrap_or_else(|| goal_at(default_threads()));
    match key {
        "objective" => match v.as_str() {
            Some("speed") => goal.speed = true,
            Some("error") => goal.speed = false,
            _ => return Err(bad()),
        },
        "latency-budget" => {
            let b = v
                .as_float()
                .or(v.as_integer().map(|i| i as f64))
                .ok_or_else(bad)?;
            latency_budget(b).map_err(|why| flag_error("latency-budget", b.shown(), why))?;
            goal.budget = Some(b);
            take_latency_budget(cfg);
        }
        _ => goal.settings.threads = check_threads(v.as_integer().ok_or_else(bad)?)?,
    }
    cfg.explicit = true;
    cfg.latency = Some(goal);
    Ok(())
}

/// `--size-budget F` or `--avg-bits B` (ranges: [`size_budget`], [`avg_bits`]); at most one.
pub fn parse_budget(size: Option<f64>, bits: Option<f64>) -> Result<Option<Budget>> {
    match (size, bits) {
        (Some(_), Some(_)) => Err(Error::Usage(
            "give either --size-budget or --avg-bits, not both".into(),
        )),
        (Some(f), None) => {
            size_budget(f).map_err(|why| flag_error("--size-budget", f.shown(), why))?;
            Ok(Some(Budget::SizeFraction(f)))
        }
        (None, Some(b)) => {
            avg_bits(b).map_err(|why| flag_error("--avg-bits", b.shown(), why))?;
            Ok(Some(Budget::AvgBits(b)))
        }
        (None, None) => Ok(None),
    }
}

/// `minmax`, `percentile` (99.99) or `percentile:P`.
pub fn parse_calib_method(s: &str) -> Result<CalibMethod> {
    let bad = || {
        Error::Usage(format!(
            "--calib-method {s}: expected minmax, percentile or percentile:P (50 < P < 100)"
        ))
    };
    match s {
        "minmax" => Ok(CalibMethod::MinMax),
        "percentile" => Ok(CalibMethod::Percentile(99.99)),
        _ => {
            let p: f64 = s
                .strip_prefix("percentile:")
                .and_then(|p| p.parse().ok())
                .ok_or_else(bad)?;
            if p > 50.0 && p < 100.0 {
                Ok(CalibMethod::Percentile(p))
            } else {
                Err(bad())
            }
        }
    }
}
