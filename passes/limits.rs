//! Bounds on pass settings, checked before any work: the passes refuse values beyond them
//! and the CLI checks its flags and config keys against the same numbers.

/// Longest time limit accepted for a solver, in seconds (about 11.6 days).
pub const MAX_TIME_LIMIT_S: f64 = 1e6;
/// Largest scratchpad accepted: 1 TiB, beyond any on-chip memory.
pub const MAX_SCRATCHPAD: u64 = 1 << 40;

/// A solver time limit in seconds: finite, > 0, at most [`MAX_TIME_LIMIT_S`].
pub fn time_limit(t: f64) -> Result<(), String> {
    if t.is_finite() && t > 0.0 && t <= MAX_TIME_LIMIT_S {
        Ok(())
    } else {
        Err(format!(
            "expected seconds > 0 and at most {MAX_TIME_LIMIT_S:e}"
        ))
    }
}
