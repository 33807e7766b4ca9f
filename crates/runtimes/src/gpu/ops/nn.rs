//! Convolutions, pooling, matrix products, normalizations, softmax, resize.

use super::{attr_f, attr_i, attr_ints, attr_s, axis, f};
use crate::gpu::exec::Exec;
use crate::gpu::host::broadcast_strides;
use optimize_ir::error::Result;

/// Spatial geometry of a 1-D, 2-D or 3-D window op, as (D, H, W) triples (leading dims of
/// lower-rank ops are 1 with no padding).
struct Window {
    k: [usize; 3],
    s: [usize; 3],
    d: [usize; 3],
    /// pads at the beginning and end of each spatial dim
    pb: [usize; 3],
    pe: [usize; 3],
}

/// Reads kernel/strides/dilations/pads (honoring auto_pad) for spatial dims `inp` → `out`.
fn window(
    ex: &Exec,
    inp: &[usize],
    out: &[usize],
    kernel: &[usize],
    transposed: bool,
) -> Result<Window> {
    let n = ex.node;
    let r = inp.len();
    let max_r = if transposed { 2 } else { 3 };
    if r == 0 || r > max_r {
        return Err(ex.err(format!(
            "{r}-D spatial data is not supported (1-D to {max_r}-D are)"
        )));
    }
    let get = |name: &str, dflt: usize| -> Vec<usize> {
        attr_ints(n, name)
            .map(|v| v.iter().map(|&x| x.max(0) as usize).collect())
            .unwrap_or_else(|| vec![dflt; r])
    };
    let s = get("strides", 1);
    let d = get("dilations", 1);
    let pads = attr_ints(n, "pads").unwrap_or_else(|| vec![0; 2 * r]);
    if pads.len() < 2 * r {
        return Err(ex.err(format!(
            "pads has {} values, {} expected",
            pads.len(),
            2 * r
        )));
    }
    let auto = attr_s(n, "auto_pad").unwrap_or("NOTSET");
    let out_pad = get("output_padding", 0);
    let mut w = Window {
        k: [1; 3],
        s: [1; 3],
        d: [1; 3],
        pb: [0; 3],
        pe: [0; 3],
    };
    let off = 3 - r;
    for i in 0..r {
        let ki = *kernel
            .get(i)
            .ok_or_else(|| ex.err("kernel shape too short"))?;
        let (si, di) = (*s.get(i).unwrap_or(&1), *d.get(i).unwrap_or(&1));
        w.k[off + i] = ki;
        w.s[off + i] = si.max(1);
        w.d[off + i] = di.max(1);
        let eff = (ki.max(1) - 1) * di + 1;
        let (b, e) = if transposed {
            let explicit = n.attr("pads").is_some() && n.attr("output_shape").is_none();
            if explicit && auto == "NOTSET" {
                (pads[i].max(0) as usize, pads[i + r].max(0) as usize)
            } else {
                let total = (si * (inp[i].saturating_sub(1))
                    + out_pad.get(i).copied().unwrap_or(0)
                    + eff) as i64
                    - out[i] as i64;
                let total = total.max(0) as usize;
                if auto == "SAME_UPPER" {
                    (total / 2, total - total / 2)
                } else {
                    (total - total / 2, total / 2)
                }
            }
        } else {
            match auto {
                "SAME_UPPER" | "SAME_LOWER" => {
                    let total = ((out[i].saturating_sub(1)) * si + eff).saturating_sub(inp[i]);
                    if auto == "SAME_UPPER" {
                        (total / 2, total - total / 2)
                    } else {
                        (total - total / 2, total / 2)
                    }
                }
                "VALID" => (0, 0),
                _ => (pads[i].max(0) as usize, pads[i + r].max(0) as usize),
            }
        };
        w.pb[off + i] = b;
        w.pe[off + i] = e;
    }
    Ok(w)
}

/// (D, H, W) of an N C spatial... tensor with 1 to 3 spatial dims (missing leading ones 1).
fn dhw(shape: &[usize]) -> [usize; 3] {
    let sp = &shape[2.min(shape.len())..];
    let mut v = [1usize; 3];
    for (i, &d) in sp.iter().rev().take(3).enumerate() {
        v[2 - i] = d;
    }
    v
}

fn conv(ex: &mut Exec, transposed: bool) -> Result<()> {
    let n = ex.node;
    let xs = ex.in_info(0)?.shape.clone();
    let ws = ex.in_info(1)?.shape.clone();
    let ys = ex.out_info(0)?.shape.clone();
    let max_rank = if transposed { 4 } else { 5 };
    if xs.len() < 3 || xs.len() > max_rank {
        return Err(ex.err(format!(
            "input rank {} is not supported (3 to {max_rank})",
            xs.len()
        )));
    }
    let kernel: Vec<usize> = attr_ints(n, "kernel_shape")
        .map(|v| v.iter().map(|&x| x as usize).collect())
        .unwrap_or_else(|| ws[2..].to_vec());
    let w = window(ex, &xs[2..], &ys[2..], &kernel, transposed)?;
    let g = attr_i(n, "group", 1).max(1) as usize;
    let [xd, h, wd] = dhw(&xs);
    let [od, oh, ow] = dhw(&ys);
    let m = ys[1];
    let count: usize = ys.iter().product();
    let has_bias = ex.has_in(2);
    let u = |v: usize| v as u32;
    let p: Vec<u32> = if transposed {
        vec![
            u(count),
            u(xs[1]),
            u(h),
            u(wd),
            u(m),
            u(oh),
            u(ow),
            u(w.k[1]),
            u(w.k[2]),
            u(g),
            u(w.s[1]),
            u(w.s[2]),
            u(w.pb[1]),
            u(w.pb[2]),
            u(w.d[1]),
            u(w.d[2]),
            has_bias as u32,
        ]
    } else {
        vec![
            u(count),
            u(xs[1]),
            u(xd),
            u(h),
            u(wd),
            u(m),
            u(od),
            u(oh),
            u(ow),
            u(w.k[0]),
            u(w.k[1]),
            u(w.k[2]),
            u(g),
            u(w.s[0]),
            u(w.s[1]),
            u(w.s[2]),
            u(w.pb[0]),
            u(w.pb[1]),
            u(w.pb[2]),
            u(w.d[0]),
            u(w.d[1]),
            u(w.d[2]),
            has_bias as u32,
        ]
    };
    let x = ex.buf(0)?;
    let wb = ex.buf(1)?;
    let b = if has_bias { ex.buf(2)? } else { ex.dummy() };
    let y = ex.out(0)?;
    let kernel = if transposed { "convtranspose" } else { "conv" };
    ex.dispatch(kernel, &[], &p, &[&x, &wb, &b, &y], count)
}

fn pool(ex: &mut Exec, op: &str) -> Result<()> {
    let n = ex.node;
    let xs = ex.in_info(0)?.shape.clone();
    let ys = ex.out_info(0)?.shape.clone();
    if ex.has_out(1) {
        return Err(ex.err("the Indices output is not supported"));
    }
    let global = op.starts_with("Global");
    let kernel: Vec<usize> = if global {
        xs[2..].to_vec()
    } else {
        attr_ints(n, "kernel_shape")
            .ok_or_else(|| ex.err("no kernel_shape"))?
            .iter()
            .map(|&x| x as usize)
            .collect()
    };
    let w = if global {
        let r = xs.len().saturating_sub(2);
        if r == 0 || r > 3 {
            return Err(ex.err(format!("{r}-D pooling is not supported")));
        }
        let mut k = [1; 3];
        for i in 0..r {
            k[3 - r + i] = kernel[i];
        }
        Window {
            k,
            s: [1; 3],
            d: [1; 3],
            pb: [0; 3],
            pe: [0; 3],
        }
    } else {
        window(ex, &xs[2..], &ys[2..], &kernel, false)?
    };
    let kind = if op.contains("Max") {
        0
    } else if op.contains("Average") {
        1
    } else {
        2
    };
    let [xd, h, wd] = dhw(&xs);
    let [od, oh, ow] = dhw(&ys);
    let count: usize = ys.iter().product();
    let u = |v: usize| v as u32;
    let p = [
        u(count),
        u(xd),
        u(h),
        u(wd),
        u(od),
        u(oh),
        u(ow),
        u(w.k[0]),
        u(w.k[1]),
        u(w.k[2]),
        u(w.s[0]),
        u(w.s[1]),
        u(w.s[2]),
        u(w.pb[0]),
        u(w.pb[1]),
        u(w.pb[2]),
        u(w.d[0]),
        u(w.d[1]),
        u(w.d[2]),
        kind,
        attr_i(n, "count_include_pad", 0) as u32,
        attr_i(n, "p", 2) as u32,
        u(w.pe[0]),
        u(w.pe[1]),
        u(w.pe[2]),
    ];
    let (x, y) = (ex.buf(0)?, ex.out(0)?);
    ex.dispatch("pool", &[], &p, &[&x, &y], count)
}

/// Strided batched product; `a`/`b` are given as (buffer, batch dims, M/K or K/N, strides).
#[allow(clippy::too_many_arguments)]
pub fn gemm_raw(
    ex: &mut Exec,
    bufs: [&wgpu::Buffer; 4],
    mnk: (usize, usize, usize),
    alpha_beta: (f32, f32, bool),
    a_str: (usize, usize),
    b_str: (usize, usize),
    c_str: (usize, usize),
    batch: (&[usize], &[usize], &[usize]),
) -> Result<()> {
    let whole = Part {
        ldy: mnk.1,
        ..Default::default()
    };
    gemm_part(ex, bufs, mnk, alpha_beta, a_str, b_str, c_str, batch, whole)
}

/// Where one row block of a weight lands in the product (see `shaders/gemm.wgsl`).
#[derive(Clone, Copy, Default)]
struct Part {
    /// First output column, output row stride, bias offset, A offset (elements).
    y_off: usize,
    ldy: usize,
    c_off: usize,
    a_off: usize,
    /// Adds to the output instead of writing it (blocks after the first along K).
    accumulate: bool,
}

#[allow(clippy::too_many_arguments)]
fn gemm_part(
    ex: &mut Exec,
    bufs: [&wgpu::Buffer; 4],
    mnk: (usize, usize, usize),
    alpha_beta: (f32, f32, bool),
    a_str: (usize, usize),
    b_str: (usize, usize),
    c_str: (usize, usize),
    batch: (&[usize], &[usize], &[usize]),
    part: Part,
) -> Result<()> {
    let (m, nn, k) = mnk;
    if batch.0.len() > 4 {
        return Err(ex.err("more than 4 batch dims are not supported"));
    }
    let count = batch.0.iter().product::<usize>() * m * nn;
    let mut p = vec![0u32; 31];
    p[26] = part.y_off as u32;
    p[27] = part.ldy as u32;
    p[28] = part.c_off as u32;
    p[29] = part.a_off as u32;
    p[30] = part.accumulate as u32;
    p[..14].copy_from_slice(&[
        count as u32,
        m as u32,
        nn as u32,
        k as u32,
        f(alpha_beta.0),
        f(alpha_beta.1),
        alpha_beta.2 as u32,
        a_str.0 as u32,
        a_str.1 as u32,
        b_str.0 as u32,
        b_str.1 as u32,
        c_str.0 as u32,
        c_str.1 as u32,
        batch.0.len() as u32,
    ]);
    for d in 0..batch.0.len() {
        p[14 + d] = batch.0[d] as u32;
        p[18 + d] = batch.1[d] as u32;
        p[22 + d] = batch.2[d] as u32;
    }
    ex.dispatch("gemm", &[], &p, &bufs, count)
}

fn gemm(ex: &mut Exec) -> Result<()> {
    let n = ex.node;
    let (ta, tb) = (attr_i(n, "transA", 0) != 0, attr_i(n, "transB", 0) != 0);
    let sa = ex.in_info(0)?.shape.clone();
    let sb = ex.in_info(1)?.shape.clone();
    if sa.len() != 2 || sb.len() != 2 {
        return Err(ex.err("Gemm inputs must be 2-D"));
    }
    let (m, k) = if ta { (sa[1], sa[0]) } else { (sa[0], sa[1]) };
    let nn = if tb { sb[0] } else { sb[1] };
    let a_str = if ta { (1, sa[1]) } else { (sa[1], 1) };
    let b_str = if tb { (1, sb[1]) } else { (sb[1], 1) };
    let has_c = ex.has_in(2);
    let c_str = if has_c {
        let cs = ex.in_info(2)?.shape.clone();
        let st = broadcast_strides(&cs, &[m, nn]);
        (st[0], st[1])
    } else {
        (0, 0)
    };
    let ab = (attr_f(n, "alpha", 1.0), attr_f(n, "beta", 1.0), has_c);
    if let Some(blocks) = ex.chunked_in(1)? {
        let a = ex.buf(0)?;
        let c = if has_c { ex.buf(2)? } else { ex.dummy() };
        let y = ex.out(0)?;
        return gemm_blocks(ex, &a, &blocks, &c, &y, (m, nn, k), ab, a_str, tb, c_str);
    }
    let (a, b) = (ex.buf(0)?, ex.buf(1)?);
    let c = if has_c { ex.buf(2)? } else { ex.dummy() };
    let y = ex.out(0)?;
    gemm_raw(
        ex,
        [&a, &b, &c, &y],
        (m, nn, k),
        ab,
        a_str,
        b_str,
        c_str,
        (&[], &[], &[]),
    )
}

/// y = alpha·A·B (+ beta·C) with B held in row blocks: with B as [N, K] (`tb`) each block
/// computes a range of output columns; with B as [K, N] each adds its K range's partial sum.
#[allow(clippy::too_many_arguments)]
fn gemm_blocks(
    ex: &mut Exec,
    a: &wgpu::Buffer,
    blocks: &crate::gpu::exec::Chunked,
    c: &wgpu::Buffer,
    y: &wgpu::Buffer,
    (m, nn, k): (usize, usize, usize),
    ab: (f32, f32, bool),
    a_str: (usize, usize),
    tb: bool,
    c_str: (usize, usize),
) -> Result<()> {
    let expect = if tb { (nn, k) } else { (k, nn) };
    if (blocks.rows, blocks.row_len) != expect {
        return Err(ex.err(format!(
            "weight blocks of {}x{} do not match the product's {}x{}",
            blocks.rows, blocks.row_len, expect.0, expect.1
        )));
    }
    for (idx, (r0, r, b)) in blocks.blocks.iter().enumerate() {
        let (mnk, b_str, part) = if tb {
            let part = Part {
                y_off: *r0,
                ldy: nn,
                c_off: r0 * c_str.1,
                ..Default::default()
            };
            ((m, *r, k), (1, k), part)
        } else {
            let part = Part {
                ldy: nn,
                a_off: r0 * a_str.1,
                accumulate: idx > 0,
                ..Default::default()
            };
            ((m, nn, *r), (nn, 1), part)
        };
        gemm_part(
            ex,
            [a, b, c, y],
            mnk,
            ab,
            a_str,
            b_str,
            c_str,
            (&[], &[], &[]),
            part,
        )?;
    }
    Ok(())
}

/// MatMul with numpy semantics: 1-D operands promoted, batch dims broadcast.
pub fn matmul_bufs(
    ex: &mut Exec,
    a: (&wgpu::Buffer, &[usize]),
    b: (&wgpu::Buffer, &[usize]),
    y: &wgpu::Buffer,
) -> Result<()> {
    let mut sa = a.1.to_vec();
    let mut sb = b.1.to_vec();
    if sa.len() == 1 {
        sa.insert(0, 1);
    }
    if sb.len() == 1 {
        sb.push(1);
    }
    let (m, k) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let nn = sb[sb.len() - 1];
    if sb[sb.len() - 2] != k {
        return Err(ex.err(format!("inner dims differ: {:?} x {:?}", a.1, b.1)));
    }
    let ba = &sa[..sa.len() - 2];
    let bb = &sb[..sb.len() - 2];
    let rank = ba.len().max(bb.len());
    let mut batch = vec![1usize; rank];
    for i in 0..rank {
        let da = if i + ba.len() >= rank {
            ba[i + ba.len() - rank]
        } else {
            1
        };
        let db = if i + bb.len() >= rank {
            bb[i + bb.len() - rank]
        } else {
            1
        };
        batch[i] = da.max(db);
    }
    let mut ast: Vec<usize> = broadcast_strides(ba, &batch);
    let mut bst: Vec<usize> = broadcast_strides(bb, &batch);
    for s in &mut ast {
        *s *= m * k;
    }
    for s in &mut bst {
        *s *= k * nn;
    }
    let dummy = ex.dummy();
    gemm_raw(
        ex,
        [a.0, b.0, &dummy, y],
        (m, nn, k),
        (1.0, 0.0, false),
        (k, 1),
        (nn, 1),
        (0, 0),
        (&batch, &ast, &bst),
    )
}

fn softmax(ex: &mut Exec, op: &str) -> Result<()> {
    let s = ex.in_info(0)?.shape.clone();
    let opset = ex.plan.opset;
    let dflt = if opset < 13 { 1 } else { -1 };
    let ax = axis(ex, attr_i(ex.node, "axis", dflt), s.len())?;
    let (len, inner) = if opset < 13 {
        (s[ax..].iter().product::<usize>(), 1)
    } else {
        (s[ax], s[ax + 1..].iter().product::<usize>())
    };
    let total: usize = s.iter().product();
    let rows = total / (len * inner).max(1);
    let kind = match op {
        "Softmax" => 0,
        "LogSoftmax" => 1,
        _ => 2,
    };
    let (x, y) = (ex.buf(0)?, ex.out(0)?);
    ex.dispatch(
        "softmax",
        &[],
        &[(rows * inner) as u32, len as u32, inner.max(1) as u32, kind],
        &[&x, &y],
        rows * inner,
    )
}

fn resize(ex: &mut Exec, op: &str) -> Result<()> {
    let n = ex.node;
    let xs = ex.in_info(0)?.shape.clone();
    let ys = ex.out_info(0)?.shape.clone();
    let r = xs.len();
    if r < 2 || xs[..r - 2] != ys[..r - 2] {
        return Err(ex.err("only the last two dims can be resized"));
    }
    let opset = ex.plan.opset;
    let scales: Option<Vec<f64>> = if op == "Upsample" && opset < 9 {
        n.attr("scales")
            .map(|a| a.floats.iter().map(|&v| v as f64).collect())
    } else {
        let idx = if op == "Upsample" || opset < 11 { 1 } else { 2 };
        ex.host(idx)
            .filter(|v| !v.data.is_empty())
            .map(|v| v.data.clone())
    };
    let scale = |i: usize| -> f32 {
        match &scales {
            Some(s) if s.len() == r => s[i] as f32,
            _ => ys[i] as f32 / xs[i].max(1) as f32,
        }
    };
    let mode = match attr_s(n, "mode").unwrap_or("nearest") {
        "nearest" => 0,
        "linear" | "bilinear" => 1,
        m => return Err(ex.err(format!("mode '{m}' is not supported"))),
    };
    let legacy = op == "Upsample" || opset < 11;
    let coord = if legacy {
        1
    } else {
        match attr_s(n, "coordinate_transformation_mode").unwrap_or("half_pixel") {
            "half_pixel" => 0,
            "asymmetric" => 1,
            "align_corners" => 2,
            "pytorch_half_pixel" => 3,
            "tf_half_pixel_for_nearest" => 4,
            m => {
                return Err(ex.err(format!(
                    "coordinate_transformation_mode '{m}' is not supported"
                )))
            }
        }
    };
    let nearest = if legacy {
        2
    } else {
        match attr_s(n, "nearest_mode").unwrap_or("round_prefer_floor") {
            "round_prefer_floor" => 0,
            "round_prefer_ceil" => 1,
            "floor" => 2,
            _ => 3,
        }
    };
    let count: usize = ys.iter().product();
    let p = [
        count as u32,
        xs[r - 2] as u32,
        xs[r - 1] as u32,
        ys[r - 2] as u32,
        ys[r - 1] as u32,
        f(scale(r - 2)),
        f(scale(r - 1)),
        mode,
        coord,
        nearest,
    ];
    let (x, y) = (ex.buf(0)?, ex.out(0)?);
    ex.dispatch("resize", &[], &p, &[&x, &y], count)
}

pub fn run(ex: &mut Exec, op: &str) -> Result<bool> {
    let n = ex.node;
    match op {
        "Conv" => conv(ex, false)?,
        "ConvTranspose" => conv(ex, true)?,
        "MaxPool" | "AveragePool" | "LpPool" | "GlobalAveragePool" | "GlobalMaxPool"
        | "GlobalLpPool" => pool(ex, op)?,
        "Gemm" => gemm(ex)?,
        "MatMul" => {
            let (sa, sb) = (ex.in_info(0)?.shape.clone(), ex.in_info(1)?.shape.clone());
            if let Some(blocks) = ex.chunked_in(1)? {
                // A 2-D weight in row blocks (along K); A's leading dims fold into M.
                if sb.len() != 2 {
                    return Err(ex.err("a MatMul weight held in row blocks must be 2-D"));
                }
                let k = *sa.last().unwrap_or(&1);
                let m: usize = sa.iter().rev().skip(1).product();
                let (a, y, d) = (ex.buf(0)?, ex.out(0)?, ex.dummy());
                let ab = (1.0, 0.0, false);
                return gemm_blocks(
                    ex,
                    &a,
                    &blocks,
                    &d,
                    &y,
                    (m, sb[1], k),
                    ab,
                    (k, 1),
                    false,
                    (0, 0),
                )
                .map(|()| true);
            }
            let (a, b, y) = (ex.buf(0)?, ex.buf(1)?, ex.out(0)?);
            matmul_bufs(ex, (&a, &sa), (&b, &sb), &y)?;
        }
        "BatchNormalization" => {
            if (1..n.outputs.len()).any(|j| ex.has_out(j)) {
                return Err(ex.err("training-mode outputs are not supported"));
            }
            let s = ex.in_info(0)?.shape.clone();
            let count: usize = s.iter().product();
            let c = *s.get(1).unwrap_or(&1);
            let inner: usize = s.iter().skip(2).product();
            let p = [
                count as u32,
                c as u32,
                inner.max(1) as u32,
                f(attr_f(n, "epsilon", 1e-5)),
            ];
            let bufs = [
                ex.buf(0)?,
                ex.buf(1)?,
                ex.buf(2)?,
                ex.buf(3)?,
                ex.buf(4)?,
                ex.out(0)?,
            ];
            let refs: Vec<&wgpu::Buffer> = bufs.iter().map(|b| b.as_ref()).collect();
            ex.dispatch("batchnorm", &[], &p, &refs, count)?;
        }
        "InstanceNormalization" => {
            let s = ex.in_info(0)?.shape.clone();
            let rows = s[0] * s[1];
            let inner: usize = s.iter().skip(2).product();
            let p = [
                rows as u32,
                s[1] as u32,
                inner as u32,
                f(attr_f(n, "epsilon", 1e-5)),
            ];
            let (x, sc, b, y) = (ex.buf(0)?, ex.buf(1)?, ex.buf(2)?, ex.out(0)?);
            ex.dispatch("instnorm", &[], &p, &[&x, &sc, &b, &y], rows)?;
        }
        "LRN" => {
            let s = ex.in_info(0)?.shape.clone();
            let count: usize = s.iter().product();
            let inner: usize = s.iter().skip(2).product();
            let p = [
                count as u32,
                s[1] as u32,
                inner.max(1) as u32,
                attr_i(n, "size", 1) as u32,
                f(attr_f(n, "alpha", 1e-4)),
                f(attr_f(n, "beta", 0.75)),
                f(attr_f(n, "bias", 1.0)),
            ];
            let (x, y) = (ex.buf(0)?, ex.out(0)?);
            ex.dispatch("lrn", &[], &p, &[&x, &y], count)?;
        }
        "Softmax" | "LogSoftmax" | "Hardmax" => softmax(ex, op)?,
        "Resize" | "Upsample" => resize(ex, op)?,
        _ => return Ok(false),
    }
    Ok(true)
}
