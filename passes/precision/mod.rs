//! Mixed precision: picks fp32 / fp16 / int8 / int4 per operator by an integer linear
//! program, steered by relevance and measured error, under a size or bit budget, and
//! rewrites the graph into ONNX that onnxruntime's CPU kernels fuse.
//!
//! Flow (see [`pass`]): fold BatchNorm into Conv and raise the opset ([`rewrite`],
//! [`opset`]) → list the candidate precisions per operator ([`candidates`]) → calibrate
//! activation ranges ([`calibrate`]) → relevance scores (the relevance pass's public API)
//! → error per operator and precision, measured and proxy ([`sensitivity`]) → ILP with
//! greedy fallback ([`ilp`]) → independent check ([`check`]) → rewrite to QDQ /
//! MatMulNBits / fp16 ([`rewrite`]) using the number formats in [`quantize`].

pub mod budget;
pub mod calibrate;
pub mod candidate;
pub mod candidates;
pub mod check;
pub mod decoded_weights;
pub mod ilp;
pub mod int8_glue;
pub mod int8_resize;
pub mod latency;
pub mod latency_cache;
pub mod options;
pub mod pass;
pub mod quantize;
pub mod rewrite;
pub mod section;
pub mod sensitivity;
pub mod speed;
pub mod suffix;

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// A precision an operator's weights (and, for `Int8`, its activations) can take.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Unchanged.
    Fp32,
    /// Weights stored as fp16 and cast back to fp32 (storage only; x86 has no fp16 math).
    Fp16,
    /// QDQ: uint8 activations (calibrated, asymmetric), int8 per-channel symmetric
    /// weights, int32 bias; DQ → op → Q so onnxruntime fuses it to QLinearConv/QLinearMatMul.
    Int8,
    /// Weight-only int4: `com.microsoft.MatMulNBits` (block 32, accuracy_level 4) for
    /// MatMul/Gemm; per-channel int4 for Conv (per-row for Gather tables), decoded by
    /// constant-foldable standard ops.
    Int4,
    /// Weight-only int8: per-channel (per-row for Gather tables) symmetric int8 weights,
    /// decoded at session start by `Cast → Mul` (onnxruntime folds both), so the operator
    /// runs in fp32 and no activation range is needed. The int8 format of runs without
    /// calibration data; with `--calib` it is offered only where `Int8` is not (Gather
    /// tables, ConvTranspose).
    Int8W,
    /// Dynamic int8 (MatMul with a constant 2-D weight; offered under the speed objectives
    /// only): per-column symmetric int8 weights, and the activation quantized to uint8 on
    /// every call by `DynamicQuantizeLinear`, so no calibrated range is needed and the
    /// output stays float. `MatMulInteger → Cast → Mul(x_scale · w_scale)`, with the bias
    /// Add after it, is what onnxruntime fuses into one `DynamicQuantizeMatMul` (the form
    /// of its `quantize_dynamic`).
    Int8Dyn,
}

impl Precision {
    pub const ALL: [Precision; 6] = [
        Precision::Fp32,
        Precision::Fp16,
        Precision::Int8,
        Precision::Int4,
        Precision::Int8W,
        Precision::Int8Dyn,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
            Precision::Int4 => "int4",
            Precision::Int8W => "int8w",
            Precision::Int8Dyn => "int8dyn",
        }
    }
    /// Bits per weight element (scales and zero points not counted).
    pub fn weight_bits(self) -> u32 {
        match self {
            Precision::Fp32 => 32,
            Precision::Fp16 => 16,
            Precision::Int8 | Precision::Int8W | Precision::Int8Dyn => 8,
            Precision::Int4 => 4,
        }
    }
    /// Whether activations around the operator are quantized with calibrated ranges (Q/DQ
    /// on its edges). `Int8Dyn` quantizes its input too, but with the range of each call.
    pub fn quantizes_activations(self) -> bool {
        self == Precision::Int8
    }
    pub fn parse(s: &str) -> Option<Precision> {
        Precision::ALL.into_iter().find(|p| p.name() == s)
    }
    /// Bits per weight of the narrowest precision the allocation can choose: the floor
    /// below which no size budget can be met.
    pub fn min_weight_bits() -> u32 {
        Precision::ALL
            .iter()
            .map(|p| p.weight_bits())
            .min()
            .unwrap_or(32)
    }
}

/// Operators are identified by their first output tensor's name: unique in SSA form and
/// stable across passes that do not rewrite that operator.
pub type NodeKey = String;

/// One precision per candidate operator (operators not listed stay fp32).
pub type Assignment = BTreeMap<NodeKey, Precision>;

/// Calibrated real range of a float tensor, by tensor name.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Range {
    pub min: f32,
    pub max: f32,
}

pub type Ranges = HashMap<String, Range>;
