//! Op implementations: each turns one node into kernel dispatches.

mod elementwise;
mod movement;
mod nn;
mod quant;
mod reduce;

pub use super::attrs::{attr_f, attr_i, attr_ints, attr_s};
use super::exec::Exec;
use optimize_ir::error::{Error, Result};
use optimize_ir::ir::op_table::{self, Trait};
use optimize_ir::ir::Node;

/// True when the executor runs the op on the device (folded shape ops aside): the op
/// table's [`Trait::Gpu`], in the default domain and in `com.microsoft` (whose Q/DQ are the
/// default-domain arithmetic with int4/int16 types before opset 21, as onnxruntime's
/// quantizer emits them).
fn is_supported(n: &Node) -> bool {
    op_table::has(&n.domain, &n.op_type, Trait::Gpu)
}

/// Fails, naming every op the executor lacks, before any device work. Sequence ops (lowered
/// to tensor ops when planning) and string ops (run on the host) count as supported.
pub fn check_supported(nodes: &[Node]) -> Result<()> {
    let mut missing: Vec<String> = Vec::new();
    for n in nodes {
        let host = optimize_ir::ir::canonical_domain(&n.domain).is_empty()
            && (super::lower::SEQUENCE_OPS.contains(&n.op_type.as_str())
                || super::strings::is_string_op(n));
        if !host && !is_supported(n) && !missing.contains(&n.qualified_op()) {
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
    if optimize_ir::ir::canonical_domain(&n.domain) == "com.microsoft" {
        return match n.op_type.as_str() {
            "MatMulNBits" => quant::matmul_nbits(ex),
            op @ ("QuantizeLinear" | "DequantizeLinear") => {
                quant::run(ex, op)?;
                Ok(())
            }
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

/// Rounds the node's float16/bfloat16 outputs to their type in place. The device computes
/// 16-bit floats in f32; onnxruntime rounds each op's result to the output type, so without
/// this the two drift apart along a chain of fp16 ops.
pub fn round_half_outputs(ex: &mut Exec) -> Result<()> {
    let n = ex.node;
    if op_table::has(&n.domain, &n.op_type, Trait::ExactInHalf) {
        return Ok(());
    }
    for j in 0..n.outputs.len() {
        if !ex.has_out(j) {
            continue;
        }
        let info = ex.out_info(j)?;
        let expr = match info.dtype {
            optimize_ir::ir::DataType::Float16 => "to_f16(v)",
            optimize_ir::ir::DataType::Bfloat16 => "to_bf16(v)",
            _ => continue,
        };
        let count = info.count();
        let Some(b) = ex.live.get(&n.outputs[j]).cloned() else {
            continue;
        };
        ex.dispatch("round", &[("EXPR", expr)], &[count as u32], &[&b], count)?;
    }
    Ok(())
}
