//! Tensor data on the host: the in-memory tensor type, input files (.npy/.pb) and input folders.

pub mod host_tensor;

pub use host_tensor::HostTensor;
