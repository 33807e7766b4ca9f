//! Runtimes that execute ONNX models: onnxruntime through `ort` (the reference) and our
//! own wgpu executor ([`gpu`], the fallback). [`validate`] runs the original and the
//! optimized model side by side on them and scores every output with the task metrics of
//! [`fidelity`]. Depends only on `optimize-ir`.

pub mod fidelity;
pub mod gpu;
pub mod host;
pub mod intermediates;
pub mod ort_runtime;
pub mod profile;
pub mod select;
pub mod validate;

pub use ort_runtime::{locate_onnxruntime, OrtRuntime, OrtSession, OrtTensor};
