//! The bottom layer: the IR every pass works on, and what it needs to exist on its own.
//!
//! ONNX is imported into a petgraph IR ([`ir`]) and exported back losslessly
//! ([`onnx_io`]); [`shape`] infers element types and shapes; [`data`] holds host tensors
//! and reads input data (.npy, .pb, images). [`error`] maps failures to exit codes. This
//! crate depends on no other crate of the workspace.

pub mod bounded_read;
pub mod byte_size;
pub mod data;
pub mod error;
pub mod ir;
pub mod onnx_io;
pub mod progress;
pub mod shape;
