//! The wgpu executor: runs the IR on a wgpu device with WGSL compute shaders. It is the
//! fallback runtime for validation when onnxruntime is unavailable or refuses a model.
//!
//! - [`device`]: headless device creation (`WGPU_BACKEND`, adapter forced by name);
//! - [`exec`]: what an op sees while running (the plan's types, device state, the run in
//!   progress: [`exec::Exec`]), below both the executor and `ops/`;
//! - [`executor`]: planning (static shapes, host folding of shape subgraphs, liveness) and
//!   running (one pipeline per op kind, cached; pooled buffers);
//! - [`host`]: host-side constants and the folding of shape-only subgraphs;
//! - [`kernels`] and `shaders/*.wgsl`: the WGSL kernels;
//! - `ops/`: one module per op family;
//! - [`lower`]: sequence ops lowered to tensor ops (sequences are host bookkeeping);
//! - [`strings`]: string tensors, kept on the host (`StringNormalizer`).
//!
//! Element types on the device: every tensor is an array of 32-bit words, `f32` for float
//! types and `i32` for integer and bool types (one word per element; 4-bit constants are
//! unpacked on upload, MatMulNBits weights stay packed four bytes a word). float16/bfloat16
//! are computed in f32 and every op producing new values rounds its 16-bit outputs to their
//! type (ties to even, in integer bit arithmetic so every device agrees); double is computed
//! in f32. int64 values must lie in the int32 range: uploading one outside it is an error
//! naming the tensor, and shape arithmetic, where INT64_MAX sentinels occur, is folded on
//! the host in f64. A tensor larger than the device's largest storage binding (lavapipe:
//! 128 MiB) is held in row blocks, each its own buffer, when it is a Gemm/MatMul weight
//! (filled by ConstantOfShape or uploaded from a constant); the product then runs per block.
//! Any other reader of such a tensor, or one above `max_buffer_size`, is an error naming the
//! limit.
//!
//! A model whose shapes depend on the values of small integer inputs (Expand or Reshape to a
//! shape fed at run time, a sequence position fed at run time) is planned at run time with
//! those values folded in; so is a model with input dims left unbound, with the fed shapes.

mod attrs;
pub mod buffers;
pub mod device;
pub mod exec;
pub mod executor;
pub mod host;
pub mod kernels;
pub mod lower;
mod ops;
pub mod strings;

pub use device::GpuDevice;
pub use executor::WgpuSession;
