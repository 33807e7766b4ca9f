//! Data movement: reshapes, Transpose, Expand, Tile, Slice, Concat, Split, Gather, Pad,
//! ConstantOfShape. All bit copies, so one kernel serves every element type.

use super::{attr_i, attr_ints, attr_s, axis, f};
use crate::gpu::exec::Exec;
use crate::gpu::host::{broadcast_strides, is_float_class, slice_plan, strides};
use optimize_ir::error::Result;

/// A strided region copy: element at region coordinate c goes from
/// `in_base + Σ (c_i mod mods_i)·in_strides_i` to `out_base + Σ c_i·out_strides_i`.
pub struct Region {
    pub dims: Vec<usize>,
    pub mods: Vec<usize>,
    pub in_base: i64,
    pub in_strides: Vec<i64>,
    pub out_base: usize,
    pub out_strides: Vec<usize>,
}

impl Region {
    /// A plain copy of `dims` reading with `in_strides` into a contiguous output.
    pub fn gather(dims: &[usize], in_base: i64, in_strides: Vec<i64>) -> Region {
        Region {
            dims: dims.to_vec(),
            mods: dims.to_vec(),
            in_base,
            in_strides,
            out_base: 0,
            out_strides: strides(dims),
        }
    }
}

pub fn copy_region(ex: &mut Exec, x: &wgpu::Buffer, y: &wgpu::Buffer, r: &Region) -> Result<()> {
    if r.dims.len() > 8 {
        return Err(ex.err("rank above 8 is not supported"));
    }
    let n: usize = r.dims.iter().product();
    let mut p = vec![0u32; 36];
    p[0] = n as u32;
    p[1] = r.dims.len() as u32;
    p[2] = r.out_base as u32;
    p[3] = (r.in_base as i32) as u32;
    for d in 0..r.dims.len() {
        p[4 + d] = r.dims[d] as u32;
        p[12 + d] = r.mods[d].max(1) as u32;
        p[20 + d] = (r.in_strides[d] as i32) as u32;
        p[28 + d] = r.out_strides[d] as u32;
    }
    ex.dispatch("copy", &[], &p, &[x, y], n)
}

fn contiguous(n: usize) -> Region {
    Region::gather(&[n], 0, vec![1])
}

pub fn run(ex: &mut Exec, op: &str) -> Result<bool> {
    match op {
        "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => {
            let count = ex.out_info(0)?.count();
            let (x, y) = (ex.buf(0)?, ex.out(0)?);
            copy_region(ex, &x, &y, &contiguous(count))?;
        }
        "Transpose" => transpose(ex)?,
        "Expand" => {
            let s = ex.in_info(0)?.shape.clone();
            let out = ex.out_info(0)?.shape.clone();
            let st = broadcast_strides(&s, &out);
            let r = Region::gather(&out, 0, st.iter().map(|&v| v as i64).collect());
            let (x, y) = (ex.buf(0)?, ex.out(0)?);
            copy_region(ex, &x, &y, &r)?;
        }
        "Tile" => {
            let s = ex.in_info(0)?.shape.clone();
            let out = ex.out_info(0)?.shape.clone();
            let mut r = Region::gather(&out, 0, strides(&s).iter().map(|&v| v as i64).collect());
            r.mods = s.clone();
            let (x, y) = (ex.buf(0)?, ex.out(0)?);
            copy_region(ex, &x, &y, &r)?;
        }
        "Slice" => slice(ex)?,
        "Concat" => concat(ex)?,
        "Split" => split(ex)?,
        "Gather" => gather(ex)?,
        "Pad" => pad(ex)?,
        "ConstantOfShape" => constant_of_shape(ex)?,
        "Constant" | "Shape" | "Size" | "Range" => {
            return Err(ex.err(
                "its inputs are not constants, so it cannot be computed on the host; the wgpu \
                 executor needs them to be",
            ))
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Transpose: a gather with the input strides permuted (reversed without `perm`).
fn transpose(ex: &mut Exec) -> Result<()> {
    let n = ex.node;
    let s = ex.in_info(0)?.shape.clone();
    let perm: Vec<usize> = match attr_ints(n, "perm") {
        Some(p) => p
            .iter()
            .map(|&a| axis(ex, a, s.len()))
            .collect::<Result<_>>()?,
        None => (0..s.len()).rev().collect(),
    };
    let st = strides(&s);
    let out = ex.out_info(0)?.shape.clone();
    let r = Region::gather(&out, 0, perm.iter().map(|&a| st[a] as i64).collect());
    let (x, y) = (ex.buf(0)?, ex.out(0)?);
    copy_region(ex, &x, &y, &r)
}

/// Slice: starts/ends/axes from attributes before opset 10, from constant inputs (with
/// steps) after; one strided gather.
fn slice(ex: &mut Exec) -> Result<()> {
    let n = ex.node;
    let s = ex.in_info(0)?.shape.clone();
    let plan = if ex.plan.opset < 10 {
        let starts = attr_ints(n, "starts").ok_or_else(|| ex.err("no starts"))?;
        let ends = attr_ints(n, "ends").ok_or_else(|| ex.err("no ends"))?;
        let axes = attr_ints(n, "axes");
        slice_plan(&s, &starts, &ends, axes.as_deref(), None)
    } else {
        let starts = ex.host_ints(1)?;
        let ends = ex.host_ints(2)?;
        let axes = if ex.has_in(3) {
            Some(ex.host_ints(3)?)
        } else {
            None
        };
        let steps = if ex.has_in(4) {
            Some(ex.host_ints(4)?)
        } else {
            None
        };
        slice_plan(&s, &starts, &ends, axes.as_deref(), steps.as_deref())
    }
    .map_err(|e| ex.err(e))?;
    let st = strides(&s);
    let base: i64 = plan.iter().zip(&st).map(|((b, _), &k)| b * k as i64).sum();
    let ss: Vec<i64> = plan
        .iter()
        .zip(&st)
        .map(|((_, t), &k)| t * k as i64)
        .collect();
    let out = ex.out_info(0)?.shape.clone();
    let (x, y) = (ex.buf(0)?, ex.out(0)?);
    copy_region(ex, &x, &y, &Region::gather(&out, base, ss))
}

/// Concat: each present input copied into its band of the output along the axis.
fn concat(ex: &mut Exec) -> Result<()> {
    let n = ex.node;
    let out = ex.out_info(0)?.shape.clone();
    let ax = axis(ex, attr_i(n, "axis", 0), out.len())?;
    let ost = strides(&out);
    let y = ex.out(0)?;
    let mut off = 0usize;
    for i in 0..ex.n_in() {
        if !ex.has_in(i) {
            continue;
        }
        let s = ex.in_info(i)?.shape.clone();
        let x = ex.buf(i)?;
        let r = Region {
            dims: s.clone(),
            mods: s.clone(),
            in_base: 0,
            in_strides: strides(&s).iter().map(|&v| v as i64).collect(),
            out_base: off * ost[ax],
            out_strides: ost.clone(),
        };
        copy_region(ex, &x, &y, &r)?;
        off += s[ax];
    }
    Ok(())
}

/// Split: each present output gathered from its band of the input along the axis.
fn split(ex: &mut Exec) -> Result<()> {
    let n = ex.node;
    let s = ex.in_info(0)?.shape.clone();
    let ax = axis(ex, attr_i(n, "axis", 0), s.len())?;
    let st: Vec<i64> = strides(&s).iter().map(|&v| v as i64).collect();
    let x = ex.buf(0)?;
    let mut off = 0i64;
    for j in 0..n.outputs.len() {
        if !ex.has_out(j) {
            continue;
        }
        let out = ex.out_info(j)?.shape.clone();
        let y = ex.out(j)?;
        copy_region(ex, &x, &y, &Region::gather(&out, off * st[ax], st.clone()))?;
        off += out[ax] as i64;
    }
    Ok(())
}

/// Gather along one axis with an index tensor (its own kernel: the indices are data).
fn gather(ex: &mut Exec) -> Result<()> {
    let n = ex.node;
    let s = ex.in_info(0)?.shape.clone();
    let ax = axis(ex, attr_i(n, "axis", 0), s.len())?;
    let nidx = ex.in_info(1)?.count();
    let count = ex.out_info(0)?.count();
    let inner: usize = s[ax + 1..].iter().product();
    let p = [
        count as u32,
        s[ax] as u32,
        inner.max(1) as u32,
        nidx.max(1) as u32,
    ];
    let (x, i, y) = (ex.buf(0)?, ex.buf(1)?, ex.out(0)?);
    ex.dispatch("gather", &[], &p, &[&x, &i, &y], count)
}

/// Pad: pads and value from attributes before opset 11, from constant inputs (with
/// optional axes) after; constant, reflect, edge and wrap modes in one kernel.
fn pad(ex: &mut Exec) -> Result<()> {
    let n = ex.node;
    let s = ex.in_info(0)?.shape.clone();
    let out = ex.out_info(0)?.shape.clone();
    let rank = s.len();
    if rank > 8 {
        return Err(ex.err("rank above 8 is not supported"));
    }
    let raw = if ex.plan.opset < 11 {
        attr_ints(n, "pads").ok_or_else(|| ex.err("no pads"))?
    } else {
        ex.host_ints(1)?
    };
    let mut begin = vec![0i64; rank];
    let axes: Vec<usize> = if ex.has_in(3) {
        ex.host_ints(3)?
            .iter()
            .map(|&a| axis(ex, a, rank))
            .collect::<Result<_>>()?
    } else {
        (0..rank).collect()
    };
    for (k, &a) in axes.iter().enumerate() {
        begin[a] = *raw.get(k).ok_or_else(|| ex.err("pads too short"))?;
    }
    let float = is_float_class(ex.in_info(0)?.dtype);
    let value = if ex.plan.opset < 11 {
        super::attr_f(n, "value", 0.0) as f64
    } else if ex.has_in(2) {
        ex.host(2)
            .and_then(|v| v.data.first().copied())
            .ok_or_else(|| ex.err("constant_value must be a constant"))?
    } else {
        0.0
    };
    let bits = if float {
        f(value as f32)
    } else {
        (value as i32) as u32
    };
    let mode = match attr_s(n, "mode").unwrap_or("constant") {
        "constant" => 0,
        "reflect" => 1,
        "edge" => 2,
        "wrap" => 3,
        m => return Err(ex.err(format!("mode '{m}' is not supported"))),
    };
    let count: usize = out.iter().product();
    let mut p = vec![0u32; 28];
    p[0] = count as u32;
    p[1] = rank as u32;
    p[2] = mode;
    p[3] = bits;
    for d in 0..rank {
        p[4 + d] = out[d] as u32;
        p[12 + d] = s[d] as u32;
        p[20 + d] = (begin[d] as i32) as u32;
    }
    let (x, y) = (ex.buf(0)?, ex.out(0)?);
    ex.dispatch("pad", &[], &p, &[&x, &y], count)
}

/// ConstantOfShape: a fill with the value's bits, in row blocks when the output is
/// larger than one binding.
fn constant_of_shape(ex: &mut Exec) -> Result<()> {
    let n = ex.node;
    let count = ex.out_info(0)?.count();
    let float = is_float_class(ex.out_info(0)?.dtype);
    let v = match n.attr("value").and_then(|a| a.t.as_ref()) {
        Some(t) => crate::gpu::host::HVal::from_proto(t, "value")?
            .data
            .first()
            .copied()
            .unwrap_or(0.0),
        None => 0.0,
    };
    let bits = if float {
        f(v as f32)
    } else {
        (v as i32) as u32
    };
    if ex.out_too_big(0)? {
        // Larger than one binding (fc weights of the light models): row blocks.
        let c = ex.out_chunked(0)?;
        for (_, rows, b) in &c.blocks {
            let m = rows * c.row_len;
            ex.dispatch("fill", &[], &[m as u32, bits], &[b], m)?;
        }
        return Ok(());
    }
    let y = ex.out(0)?;
    ex.dispatch("fill", &[], &[count as u32, bits], &[&y], count)
}
