//! Tensor data on the host: the in-memory tensor type, input files (.npy/.pb) and input folders.

pub mod batch;
pub mod compare;
pub mod host_tensor;
pub mod images;
pub mod inputs;
pub mod npy;
pub mod pb;

pub use compare::{compare, Metrics};
pub use host_tensor::HostTensor;
pub use inputs::{
    apply_input_shapes, load_expected_outputs, load_input_dir, load_sample_dir, load_tensor_file,
    parse_input_shapes, random_inputs, require_finite, InputSpec, RandomSamples, Sample,
};
pub use npy::{read_npy, write_npy};
pub use pb::{read_tensor_pb, tensor_proto_from_host, write_tensor_pb};
