//! The candidate type: one weight whose precision the ILP chooses, where it is read and
//! stored, and the constant-tensor helpers every candidate lister shares. The listers
//! (`candidates.rs` for operators, `decoded_weights.rs` for weights decoded under their own
//! name) depend on this module, not on each other.

use super::quantize::relative_weight_error_axis;
use super::{NodeKey, Precision};
use onnx_protobuf::TensorProto;
pub use optimize_ir::ir::tensor::{constant_f32, tensor_f32};
use optimize_ir::ir::{DataType, Graph};
use petgraph::stable_graph::NodeIndex;

/// One operator whose precision the ILP chooses.
#[derive(Clone, Debug, PartialEq)]
pub struct OpCandidate {
    /// The node's first output; for a recurrent op the first non-empty output for W and
    /// that name plus `#R` for R (see `candidates::candidate_node`); for a decoded weight
    /// its name plus `#subgraph` or `#const`.
    pub key: NodeKey,
    pub node_name: String,
    /// The node as relevance labels it: its name, or `<first output>` when it has none.
    pub label: String,
    pub op: String,
    /// The constant weight tensor (initializer or Constant-node output).
    pub weight: String,
    /// The node input the weight is read at (1 for Conv/MatMul/Gemm B, 0 for a Gather
    /// table, 1 (W) or 2 (R) for LSTM/GRU/RNN).
    pub weight_slot: usize,
    /// As stored (Gemm with transB: `[N, K]`).
    pub weight_shape: Vec<usize>,
    pub bias: Option<String>,
    /// Bytes of weight + bias now (fp32).
    pub fp32_bytes: u64,
    /// Supported precisions with the bytes each stores (weights, bias, scales, zero points).
    pub options: Vec<(Precision, u64)>,
    /// Float activation inputs that get Q/DQ at Int8.
    pub activation_inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// Per-channel axis of the weight in the emitted formats (see
    /// [`super::quantize::weight_channel_axis`]).
    pub channel_axis: usize,
    /// Set for a weight decoded under its own name (see [`super::decoded_weights`]).
    pub decoded: Option<DecodedSite>,
}

impl OpCandidate {
    /// The op whose number formats the weight is stored in: the op itself, or, for a
    /// decoded weight, the per-row format of a Gather table.
    pub fn format_op(&self) -> &str {
        match self.decoded {
            Some(_) => FORMAT_OP,
            None => &self.op,
        }
    }

    /// Relative weight error of this op at `p`, in the exact emitted format (handles the
    /// transB Gemm axis, which [`super::quantize::relative_weight_error`] cannot see).
    pub fn weight_error(&self, w: &[f32], p: Precision) -> f64 {
        relative_weight_error_axis(
            w,
            &self.weight_shape,
            self.format_op(),
            self.channel_axis,
            p,
        )
    }

    /// The float weight as stored now (for a decoded weight, in its per-row view).
    pub fn weight_f32(&self, g: &Graph) -> Option<(Vec<f32>, Vec<usize>)> {
        match &self.decoded {
            Some(site) => {
                let (v, _) = tensor_f32(stored(g, site, &self.weight)?)?;
                Some((v, self.weight_shape.clone()))
            }
            None => constant_f32(g, &self.weight),
        }
    }

    /// Bytes stored at `p` (`None` when `p` is not offered).
    pub fn bytes_at(&self, p: Precision) -> Option<u64> {
        self.options.iter().find(|(q, _)| *q == p).map(|(_, b)| *b)
    }
}

/// The dims of a float32 tensor with no zero dimension (`None` otherwise): what a weight
/// candidate must be.
pub fn float_dims(t: &TensorProto) -> Option<Vec<usize>> {
    let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
    (DataType::from_onnx(t.data_type) == Some(DataType::Float) && !dims.contains(&0))
        .then_some(dims)
}

/// The number format a decoded weight is stored in: per row, like a Gather table.
pub const FORMAT_OP: &str = "Gather";

/// Where a decoded weight is stored in the input model.
#[derive(Clone, Debug, PartialEq)]
pub enum Storage {
    /// A main-graph initializer.
    Initializer,
    /// The `value` of the main-graph Constant node producing it.
    ConstantNode,
    /// An initializer of the body in attribute `attr` of the main-graph node whose first
    /// output is `host`.
    Body { host: String, attr: String },
}

/// A weight decoded under its own name: where it is stored and its dims as stored (the
/// candidate's `weight_shape` is the per-row view).
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedSite {
    pub storage: Storage,
    pub dims: Vec<i64>,
}

/// The main-graph node whose first output is `host`: the one holding a body.
pub fn body_host(g: &Graph, host: &str) -> Option<NodeIndex> {
    g.nodes()
        .find(|(_, n)| n.outputs.first().map(String::as_str) == Some(host))
        .map(|(i, _)| i)
}

/// Decoded weight `name` where `site` says it is stored.
pub fn stored<'a>(g: &'a Graph, site: &DecodedSite, name: &str) -> Option<&'a TensorProto> {
    match &site.storage {
        Storage::Initializer => g.initializers.get(name),
        Storage::ConstantNode => g.constant_tensor(name),
        Storage::Body { host, attr } => {
            let a = g.ops[body_host(g, host)?]
                .attributes
                .iter()
                .find(|a| &a.name == attr)?;
            a.g.as_ref()?.initializer.iter().find(|t| t.name == name)
        }
    }
}
