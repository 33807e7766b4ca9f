//! ONNX optimizer: import ONNX into a petgraph IR, run passes, export, validate on onnxruntime.
//!
//! This crate is the top layer (CLI, pipeline, config, reports, `explain`). The layers
//! below are crates of the workspace, re-exported here under the names the code and the
//! tests use: `optimize-ir` (IR, import/export, shape inference, data), `optimize-runtimes`
//! (onnxruntime, wgpu, validation, fidelity) and `optimize-passes` (the passes and the pass
//! manager). See ARCHITECTURE.md.

pub use optimize_ir::{bounded_read, byte_size, data, error, ir, onnx_io, progress, shape};
pub use optimize_passes as passes;
pub use optimize_passes::pass_manager;
pub use optimize_runtimes as runtime;
pub use optimize_runtimes::{fidelity, validate};

pub mod cli;
pub mod config;
pub mod explain;
pub mod heap;
pub mod html;
pub mod html_tiles;
pub mod inspect;
pub mod interrupt;
pub mod output_policy;
pub mod pass_catalog;
pub mod pipeline;
pub mod report;
pub mod run_args;
pub mod search_curve;
pub mod summary;
pub mod value_checks;

pub use pipeline::{run_pipeline, PipelineOptions, PipelineOutcome};
