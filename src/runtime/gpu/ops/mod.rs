//! Op implementations: each turns one node into kernel dispatches.

mod elementwise;
mod movement;
mod nn;
mod quant;
mod reduce;

use super::executor::Exec;
use crate::error::{Error, Result};
use crate::ir::attr::AttrExt;
use crate::ir::Node;

/// Ops of the default domain the executor runs on the device (folded shape ops aside).
pub const SUPPORTED: &[&str] = &[
    // elementwise
    "Relu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Exp",
    "Log",
    "Sqrt",
    "Abs",
    "Neg",
    "Reciprocal",
    "Floor",
    "Ceil",
    "Round",
    "Erf",
    "Elu",
    "Selu",
    "LeakyRelu",
    "Softplus",
    "Softsign",
    "Sign",
    "Shrink",
    "Clip",
    "Not",
    "Sin",
    "Cos",
    "Gelu",
    "Mish",
    "ThresholdedRelu",
    "Cast",
    "CastLike",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Max",
    "Min",
    "Sum",
    "Mean",
    "PRelu",
    "Equal",
    "Less",
    "Greater",
    "LessOrEqual",
    "GreaterOrEqual",
    "And",
    "Or",
    "Xor",
    "Mod",
    "Where", // data movement
    "Identity",
    "Dropout",
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Transpose",
    "Expand",
    "Tile",
    "Slice",
    "Concat",
    "Split",
    "Gather",
    "Pad",
    "ConstantOfShape",
    "Constant",
    "Shape",
    "Size",
    "Range", // nn
    "Conv",
    "ConvTranspose",
    "MaxPool",
    "AveragePool",
    "LpPool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "GlobalLpPool",
    "Gemm",
    "MatMul",
    "BatchNormalization",
    "InstanceNormalization",
    "LRN",
    "Softmax",
    "LogSoftmax",
    "Hardmax",
    "Resize",
    "Upsample",
    // reductions
    "ReduceSum",
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceSumSquare",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ArgMax",
    "ArgMin",
    // quantization
    "QuantizeLinear",
    "DequantizeLinear",
];

/// Ops of the `com.microsoft` domain it runs.
pub const SUPPORTED_MS: &[&str] = &["MatMulNBits"];

fn is_supported(n: &Node) -> bool {
    match crate::ir::canonical_domain(&n.domain) {
        "" => SUPPORTED.contains(&n.op_type.as_str()),
        "com.microsoft" => SUPPORTED_MS.contains(&n.op_type.as_str()),
        _ => false,
    }
}

/// Fails, naming every op the executor lacks, before any device work.
pub fn check_supported(nodes: &[Node]) -> Result<()> {
    let mut missing: Vec<String> = Vec::new();
    for n in nodes {
        if !is_supported(n) && !missing.contains(&n.qualified_op()) {
            missing.push(n.qualified_op());
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Runtime(format!(
            "wgpu executor: unsupported op{} {}",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", ")
        )))
    }
}

pub fn attr_i(n: &Node, name: &str, default: i64) -> i64 {
    n.attr(name).and_then(|a| a.as_int()).unwrap_or(default)
}

pub fn attr_f(n: &Node, name: &str, default: f32) -> f32 {
    n.attr(name).and_then(|a| a.as_float()).unwrap_or(default)
}

pub fn attr_ints(n: &Node, name: &str) -> Option<Vec<i64>> {
    n.attr(name).and_then(|a| a.as_ints()).map(|v| v.to_vec())
}

pub fn attr_s<'a>(n: &'a Node, name: &str) -> Option<&'a str> {
    n.attr(name).and_then(|a| a.as_str())
}

/// Normalizes a possibly negative axis.
pub fn axis(ex: &Exec, a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let v = if a < 0 { a + r } else { a };
    if v < 0 || v >= r.max(1) {
        return Err(ex.err(format!("axis {a} is out of range for rank {rank}")));
    }
    Ok(v as usize)
}

pub fn f(v: f32) -> u32 {
    v.to_bits()
}

/// Runs one node.
pub fn run_node(ex: &mut Exec) -> Result<()> {
    let n = ex.node;
    if crate::ir::canonical_domain(&n.domain) == "com.microsoft" {
        return match n.op_type.as_str() {
            "MatMulNBits" => quant::matmul_nbits(ex),
            _ => Err(ex.err("unsupported op")),
        };
    }
    if !is_supported(n) {
        return Err(ex.err("unsupported op"));
    }
    let op = n.op_type.as_str();
    if elementwise::run(ex, op)?
        || movement::run(ex, op)?
        || nn::run(ex, op)?
        || reduce::run(ex, op)?
        || quant::run(ex, op)?
    {
        return Ok(());
    }
    Err(ex.err("unsupported op"))
}
