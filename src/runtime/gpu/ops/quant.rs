//! QuantizeLinear / DequantizeLinear (int8, uint8, int4, uint4, int16; per-tensor,
//! per-axis, blocked) and com.microsoft MatMulNBits.

use super::{attr_i, axis, f};
use crate::error::Result;
use crate::ir::DataType;
use crate::runtime::gpu::executor::Exec;
use crate::runtime::gpu::host::HVal;

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

/// MatMulNBits: B (constant, `bits`-bit packed per column in blocks) is dequantized once
/// per session to a float [K, N] matrix, then multiplied on the device.
pub fn matmul_nbits(ex: &mut Exec) -> Result<()> {
    let n = ex.node;
    let k = attr_i(n, "K", 0) as usize;
    let nn = attr_i(n, "N", 0) as usize;
    let bits = attr_i(n, "bits", 4) as usize;
    let block = attr_i(n, "block_size", 0) as usize;
    if k == 0 || nn == 0 || block == 0 || !(2..=8).contains(&bits) {
        return Err(ex.err("needs K, N, block_size and bits in 2..=8"));
    }
    let key = format!(
        "{}#dequantized",
        n.inputs.get(1).cloned().unwrap_or_default()
    );
    if !ex.has_const_upload(&key) {
        let b = ex
            .host(1)
            .ok_or_else(|| ex.err("B must be a constant"))?
            .clone();
        let sc = ex
            .host(2)
            .ok_or_else(|| ex.err("scales must be a constant"))?
            .clone();
        let zp = if ex.has_in(3) {
            Some(
                ex.host(3)
                    .ok_or_else(|| ex.err("zero_points must be a constant"))?
                    .clone(),
            )
        } else {
            None
        };
        let nb = k.div_ceil(block);
        let blob = block * bits / 8;
        let mut w = vec![0f64; k * nn];
        let default_zp = (1u32 << (bits - 1)) as f64;
        for col in 0..nn {
            for kk in 0..k {
                let blk = kk / block;
                let bit = (kk % block) * bits;
                let byte_at = |i: usize| b.data.get(i).copied().unwrap_or(0.0) as u32;
                let base = (col * nb + blk) * blob + bit / 8;
                let word = byte_at(base) | (byte_at(base + 1) << 8);
                let q = ((word >> (bit % 8)) & ((1 << bits) - 1)) as f64;
                let s = sc.data.get(col * nb + blk).copied().unwrap_or(0.0);
                let z = match &zp {
                    None => default_zp,
                    Some(z) if z.dtype == DataType::Uint8 => {
                        let per_byte = 8 / bits;
                        let stride = nb.div_ceil(per_byte);
                        let byte = z
                            .data
                            .get(col * stride + blk / per_byte)
                            .copied()
                            .unwrap_or(0.0) as u32;
                        ((byte >> ((blk % per_byte) * bits)) & ((1 << bits) - 1)) as f64
                    }
                    Some(z) => z.data.get(col * nb + blk).copied().unwrap_or(0.0),
                };
                w[kk * nn + col] = (q - z) * s;
            }
        }
        ex.upload_const(&key, &HVal::new(DataType::Float, vec![k, nn], w))?;
    }
    let wbuf = ex.const_upload(&key)?;
    let sa = ex.in_info(0)?.shape.clone();
    let a = ex.buf(0)?;
    let y = ex.out(0)?;
    if ex.has_in(5) {
        let tmp_shape = ex.out_info(0)?.shape.clone();
        let count: usize = tmp_shape.iter().product();
        let max = ex.rt.gpu.max_binding_bytes();
        let tmp = ex.rt.pool.take(&ex.rt.gpu.device, count as u64 * 4, max);
        super::nn::matmul_bufs(ex, (&a, &sa), (&wbuf, &[k, nn]), &tmp)?;
        let bias = ex.buf(5)?;
        super::elementwise::binary_raw(
            ex,
            "a + b",
            ("f32", "f32", "f32"),
            (&tmp, &tmp_shape),
            (&bias, &[nn]),
            &y,
            &tmp_shape,
        )?;
        ex.rt.pool.give(tmp);
    } else {
        super::nn::matmul_bufs(ex, (&a, &sa), (&wbuf, &[k, nn]), &y)?;
    }
    let _ = f;
    Ok(())
}
