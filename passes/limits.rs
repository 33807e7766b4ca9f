//! Bounds on pass settings, checked before any work: the passes refuse values beyond them
//! and the CLI checks its flags and config keys against the same numbers.

/// Longest time limit accepted for a solver, in seconds (about 11.6 days).
pub const MAX_TIME_LIMIT_S: f64 = 1e6;
/// Largest scratchpad accepted: 1 TiB, beyond any on-chip memory.
pub const MAX_SCRATCHPAD: u64 = 1 << 40;
