//! Runtimes that execute ONNX models: onnxruntime through `ort` (the reference).

pub mod intermediates;
pub mod ort_runtime;

pub use ort_runtime::{locate_onnxruntime, OrtRuntime, OrtSession};
