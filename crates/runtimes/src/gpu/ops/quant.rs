//! QuantizeLinear / DequantizeLinear (int8, uint8, int4, uint4, int16; per-tensor,
//! per-axis, blocked) and com.microsoft MatMulNBits.

use super::{attr_i, axis};
use crate::gpu::exec::Exec;
use crate::gpu::host::HVal;
use optimize_ir::error::Result;
use optimize_ir::ir::DataType;

/// (mode, inner, axis_len, block, n_blocks) of a scale of shape `ss` over data of shape `xs`.
fn scale_layout(ex: &Exec, xs: &[usize], ss: &[usize]) -> Result<[u32; 5]> {
    let n = ex.node;
    let scount: usize = ss.iter().product();
    if scount <= 1 {
        return Ok([0, 1, 1, 1, 1]);
    }
    let ax = axis(ex, attr_i(n, "axis", 1), xs.len())?;
    let inner: usize = xs[ax + 1..].iter().product();
    let block = attr_i(n, "block_size", 0).max(0) as usize;
    if block == 0 {
        if scount != xs[ax] {
            return Err(ex.err(format!(
                "scale of shape {ss:?} does not match axis {ax} of {xs:?}"
            )));
        }
        Ok([1, inner.max(1) as u32, xs[ax] as u32, 1, 1])
    } else {
        let nb = xs[ax].div_ceil(block);
        Ok([
            2,
            inner.max(1) as u32,
            xs[ax] as u32,
            block as u32,
            nb as u32,
        ])
    }
}

fn qrange(dt: DataType) -> Option<(i32, i32)> {
    Some(match dt {
        DataType::Int8 => (-128, 127),
        DataType::Uint8 => (0, 255),
        DataType::Int4 => (-8, 7),
        DataType::Uint4 => (0, 15),
        DataType::Int16 => (-32768, 32767),
        DataType::Uint16 => (0, 65535),
        DataType::Int32 => (i32::MIN, i32::MAX),
        _ => return None,
    })
}

pub fn run(ex: &mut Exec, op: &str) -> Result<bool> {
    let quant = match op {
        "QuantizeLinear" => true,
        "DequantizeLinear" => false,
        _ => return Ok(false),
    };
    let xs = ex.in_info(0)?.shape.clone();
    let ss = ex.in_info(1)?.shape.clone();
    let lay = scale_layout(ex, &xs, &ss)?;
    let count: usize = xs.iter().product();
    let has_zp = ex.has_in(2);
    let mut p = vec![
        count as u32,
        lay[0],
        lay[1],
        lay[2],
        lay[3],
        lay[4],
        has_zp as u32,
    ];
    if quant {
        let dt = ex.out_info(0)?.dtype;
        let (lo, hi) =
            qrange(dt).ok_or_else(|| ex.err(format!("output type {dt} is not supported")))?;
        p.push(lo as u32);
        p.push(hi as u32);
    }
    let (x, s) = (ex.buf(0)?, ex.buf(1)?);
    let z = if has_zp { ex.buf(2)? } else { ex.dummy() };
    let y = ex.out(0)?;
    ex.dispatch(
        if quant { "quant" } else { "dequant" },
        &[],
        &p,
        &[&x, &s, &z, &y],
        count,
    )?;
    Ok(true)
}

/// MatMulNBits: B (constant) stays packed on the device (its bytes in u32 words, a quarter
/// of the memory of one word per element and an eighth of float weights for 4 bits) and is
/// dequantized inside the kernel; scales and zero points (one f32 per column and block, the
/// packed zero points unpacked on the host) are uploaded once per session.
pub fn matmul_nbits(ex: &mut Exec) -> Result<()> {
    let n = ex.node;
    let k = attr_i(n, "K", 0).max(0) as usize;
    let nn = attr_i(n, "N", 0).max(0) as usize;
    let bits = attr_i(n, "bits", 4).max(0) as usize;
    let block = attr_i(n, "block_size", 0).max(0) as usize;
    if k == 0 || nn == 0 || block == 0 || !(2..=8).contains(&bits) {
        return Err(ex.err("needs K, N, block_size and bits in 2..=8"));
    }
    if ex.has_in(4) {
        return Err(ex.err("the g_idx input is not supported"));
    }
    let nb = k.div_ceil(block);
    let blob = (block * bits).div_ceil(8);
    let sa = ex.in_info(0)?.shape.clone();
    if sa.last() != Some(&k) {
        return Err(ex.err(format!("A of shape {sa:?} does not end in K = {k}")));
    }
    let bkey = format!("{}#packed", n.inputs[1]);
    let skey = format!("{}#scales", n.outputs[0]);
    let zkey = format!("{}#zero_points", n.outputs[0]);
    if !ex.has_const_upload(&bkey) {
        let b = ex.host(1).ok_or_else(|| ex.err("B must be a constant"))?;
        if b.data.len() != nn * nb * blob {
            return Err(ex.err(format!(
                "B has {} bytes, N·k_blocks·blob_size = {nn}·{nb}·{blob} = {} expected",
                b.data.len(),
                nn * nb * blob
            )));
        }
        let words: Vec<u32> = b
            .data
            .chunks(4)
            .map(|c| {
                c.iter()
                    .enumerate()
                    .fold(0u32, |w, (j, &v)| w | ((v as u32 & 255) << (8 * j)))
            })
            .collect();
        ex.upload_words(&bkey, &format!("uint8[{nn},{nb},{blob}]"), &words)?;
    }
    if !ex.has_const_upload(&skey) {
        let sc = ex
            .host(2)
            .ok_or_else(|| ex.err("scales must be a constant"))?
            .clone();
        if sc.data.len() != nn * nb {
            return Err(ex.err(format!(
                "scales has {} elements, N·k_blocks = {} expected",
                sc.data.len(),
                nn * nb
            )));
        }
        let default_zp = (1u32 << (bits - 1)) as f64;
        let zf: Vec<f64> = match ex.has_in(3) {
            false => vec![default_zp; nn * nb],
            true => {
                let z = ex
                    .host(3)
                    .ok_or_else(|| ex.err("zero_points must be a constant"))?;
                if z.dtype == DataType::Uint8 {
                    // Packed: row n holds ceil(k_blocks·bits/8) bytes, low bits first.
                    let stride = (nb * bits).div_ceil(8);
                    if z.data.len() != nn * stride {
                        return Err(ex.err(format!(
                            "zero_points has {} bytes, N·ceil(k_blocks·bits/8) = {} expected",
                            z.data.len(),
                            nn * stride
                        )));
                    }
                    let mut v = Vec::with_capacity(nn * nb);
                    for col in 0..nn {
                        for blk in 0..nb {
                            let bit = blk * bits;
                            let at = col * stride + bit / 8;
                            let lo = z.data[at] as u32;
                            let hi = z.data.get(at + 1).map_or(0, |&x| x as u32);
                            let w = (lo | (hi << 8)) >> (bit % 8);
                            v.push((w & ((1 << bits) - 1)) as f64);
                        }
                    }
                    v
                } else {
                    if z.data.len() != nn * nb {
                        return Err(ex.err(format!(
                            "zero_points has {} elements, N·k_blocks = {} expected",
                            z.data.len(),
                            nn * nb
                        )));
                    }
                    z.data.clone()
                }
            }
        };
        ex.upload_const(&skey, &HVal::new(DataType::Float, vec![nn * nb], sc.data))?;
        ex.upload_const(&zkey, &HVal::new(DataType::Float, vec![nn * nb], zf))?;
    }
    let (bw, sw, zw) = (
        ex.const_upload(&bkey)?,
        ex.const_upload(&skey)?,
        ex.const_upload(&zkey)?,
    );
    let a = ex.buf(0)?;
    let has_bias = ex.has_in(5);
    let bias = if has_bias { ex.buf(5)? } else { ex.dummy() };
    let y = ex.out(0)?;
    let count = sa.iter().product::<usize>() / k * nn;
    let p = [
        count as u32,
        k as u32,
        nn as u32,
        nb as u32,
        blob as u32,
        block as u32,
        bits as u32,
        has_bias as u32,
    ];
    ex.dispatch(
        "matmul_nbits",
        &[],
        &p,
        &[&a, &bw, &sw, &zw, &bias, &y],
        count,
    )
}
