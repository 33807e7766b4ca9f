//! Optimization passes, one module each, and the pass manager that runs and verifies them.
//! Each pass implements [`pass_manager::Pass`]. Depends on `optimize-ir` and
//! `optimize-runtimes` only, never on the CLI, pipeline or report layer above it.

pub mod cbc;
pub mod cleanup;
pub mod fold_batchnorm;
pub mod limits;
pub mod opset;
pub mod pass_manager;
pub mod precision;
pub mod registry;
pub mod relevance;
pub mod schedule;
pub mod simplify;
pub mod tiling;
