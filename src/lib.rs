//! ONNX optimizer: import ONNX into a petgraph IR, run passes, export, validate on onnxruntime.

pub mod bounded_read;
pub mod byte_size;
pub mod cli;
pub mod config;
pub mod data;
pub mod error;
pub mod fidelity;
pub mod heap;
pub mod html;
pub mod html_tiles;
pub mod inspect;
pub mod interrupt;
pub mod ir;
pub mod onnx_io;
pub mod output_policy;
pub mod pass_manager;
#[path = "../passes/mod.rs"]
pub mod passes;
pub mod pipeline;
pub mod progress;
pub mod report;
pub mod run_args;
pub mod runtime;
pub mod search_curve;
pub mod shape;
pub mod summary;
pub mod validate;
pub mod value_checks;

pub use pipeline::{run_pipeline, PipelineOptions, PipelineOutcome};
