//! Optimization passes, one module each. Each implements `crate::pass_manager::Pass`.

pub mod cbc;
pub mod cleanup;
pub mod precision;
pub mod relevance;
pub mod schedule;
pub mod tiling;
