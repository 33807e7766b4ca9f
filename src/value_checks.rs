//! Range checks for every numeric setting, run before any work: the same check for a flag
//! (`--tolerance nan` → one line naming the flag, exit 2) and for the key of a config file
//! (`optimize.toml: key 'tolerance' = nan: …`, naming the file and the key).
//!
//! The bounds keep every value meaningful and every downstream computation in range: a
//! size budget below what the narrowest precision (int4, 4 of 32 bits) can store is
//! refused at once (no allocation could meet it, and budgets like 1e-30 would otherwise
//! reach the solver as coefficients beyond CLP's range), time limits stay finite and
//! below 10^6 s, sample counts are at least 1.

use crate::error::{Error, Result};
use crate::passes::registry;
use crate::run_args::RunArgs;
use std::fmt::Display;
use std::path::Path;

/// A range check: `Err(why)` when the value is out of range.
pub type Check = fn(f64) -> Result<(), String>;

/// Most random validation samples (they are made and run one at a time).
pub const MAX_SAMPLES: usize = 1_000_000;
pub use crate::passes::limits::{MAX_SCRATCHPAD, MAX_TIME_LIMIT_S};

/// `--tolerance`: a finite number ≥ 0.
pub fn tolerance(v: f64) -> Result<(), String> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err("expected a finite number ≥ 0, e.g. 1e-4".into())
    }
}

/// `--samples`: 1 to [`MAX_SAMPLES`].
pub fn samples(n: usize) -> Result<(), String> {
    if (1..=MAX_SAMPLES).contains(&n) {
        Ok(())
    } else {
        Err(format!(
            "expected 1 to {MAX_SAMPLES} samples (validation needs at least one; --no-validate skips it)"
        ))
    }
}

pub use crate::passes::limits::time_limit;
pub use crate::passes::precision::options::{avg_bits, size_budget};

/// A scratchpad size (bytes, or a number with a unit).
pub fn scratchpad(s: &str) -> Result<(), String> {
    let b = crate::byte_size::parse_size(s)?;
    if b == 0 || b > MAX_SCRATCHPAD {
        return Err(format!(
            "expected a size from 1 byte to {}",
            crate::onnx_io::limits::fmt_bytes(MAX_SCRATCHPAD)
        ));
    }
    Ok(())
}

pub use crate::error::Shown;

pub use crate::error::flag_error;

/// The error for a bad value of a config file's key.
pub fn key_error(file: &Path, key: &str, value: impl Display, why: String) -> Error {
    Error::input(file, format!("key '{key}' = {value}: {why}"))
}

/// Runs `check` on `v` when set; a failure names the flag.
fn flag<T: Shown>(name: &str, v: Option<T>, check: impl Fn(T) -> Result<(), String>) -> Result<()> {
    match v {
        Some(x) => check(x).map_err(|why| flag_error(name, x.shown(), why)),
        None => Ok(()),
    }
}

/// Runs `check` on `v` when set; a failure names the file and key.
pub fn key<T: Shown>(
    file: &Path,
    name: &str,
    v: Option<T>,
    check: impl Fn(T) -> Result<(), String>,
) -> Result<()> {
    match v {
        Some(x) => check(x).map_err(|why| key_error(file, name, x.shown(), why)),
        None => Ok(()),
    }
}

/// Checks every numeric flag of a run (before the config file is merged, so a value from
/// the file is checked, and named, by [`crate::config`]).
pub fn check_run_flags(a: &RunArgs) -> Result<()> {
    flag("--tolerance", a.tolerance, tolerance)?;
    crate::fidelity::FidelitySpec::parse(&a.metric, &a.min_fidelity)
        .map_err(|e| flag_error(&format!("--{}", e.key), e.value, e.why))?;
    flag("--samples", a.samples, samples)?;
    flag("--size-budget", a.size_budget, size_budget)?;
    flag("--avg-bits", a.avg_bits, avg_bits)?;
    flag("--precision-time-limit", a.precision_time_limit, time_limit)?;
    flag("--schedule-time-limit", a.schedule_time_limit, time_limit)?;
    if let Some(s) = &a.scratchpad {
        scratchpad(s).map_err(|why| flag_error("--scratchpad", s, why))?;
    }
    if a.size_budget.is_some() && a.avg_bits.is_some() {
        return Err(Error::Usage(
            "give either --size-budget or --avg-bits, not both".into(),
        ));
    }
    for name in &a.dump_ir_after {
        dump_pass(name).map_err(|why| flag_error("--dump-ir-after", name, why))?;
    }
    Ok(())
}

/// A pass name `--dump-ir-after` accepts: one of the pipeline's passes, or `all`.
pub fn dump_pass(name: &str) -> Result<(), String> {
    if name == "all" || registry::find(name).is_some() {
        Ok(())
    } else {
        Err(format!(
            "unknown pass (known: {}, or all)",
            registry::names().join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(tolerance(0.0).is_ok() && tolerance(f64::NAN).is_err() && tolerance(-1.0).is_err());
        assert!(samples(1).is_ok() && samples(0).is_err());
        assert!(size_budget(0.125).is_ok() && size_budget(1e-30).is_err());
        assert!(size_budget(1.0).is_ok() && size_budget(1.5).is_err());
        assert!(
            avg_bits(4.0).is_ok() && avg_bits(2.0).is_err() && avg_bits(f64::INFINITY).is_err()
        );
        assert!(time_limit(1.0).is_ok() && time_limit(1e300).is_err() && time_limit(0.0).is_err());
        assert!(scratchpad("512KiB").is_ok() && scratchpad("2T").is_err());
    }
}
