//! Runtimes that execute ONNX models: onnxruntime through `ort` (the reference).

pub mod gpu;
pub mod intermediates;
pub mod ort_runtime;
pub mod select;

pub use ort_runtime::{locate_onnxruntime, OrtRuntime, OrtSession, OrtTensor};
