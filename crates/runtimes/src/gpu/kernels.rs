//! WGSL kernel sources. Every kernel binds its parameters (`p: array<u32>`) at binding 0,
//! inputs from binding 1 on and its output last; element types are spliced in by name
//! (`TI`, `TO`, `TA`, `TB`: `f32` or `i32`) together with op expressions (`EXPR`).

use optimize_ir::error::{Error, Result};

const HEADER: &str = "@group(0) @binding(0) var<storage, read> p: array<u32>;

// Q/DQ: the scale (and zero point) index of element i. p[1] mode (0 per tensor, 1 per axis,
// 2 blocked), p[2] elements after the axis, p[3] axis length, p[4] block, p[5] blocks.
fn qparam_index(i: u32) -> u32 {
    let inner = p[2];
    let a = (i / inner) % p[3];
    if (p[1] == 1u) { return a; }
    if (p[1] == 2u) { return ((i / inner / p[3]) * p[5] + a / p[4]) * inner + i % inner; }
    return 0u;
}

fn erf_approx(x: f32) -> f32 {
    // Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).
    let t = 1.0 / (1.0 + 0.3275911 * abs(x));
    let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
        + 0.254829592) * t * exp(-x * x);
    return select(-y, y, x >= 0.0);
}

fn pow_f(a: f32, b: f32) -> f32 {
    if (b == floor(b)) {
        let r = pow(abs(a), b);
        if (a < 0.0 && abs(b % 2.0) == 1.0) { return -r; }
        if (a == 0.0 && b == 0.0) { return 1.0; }
        return r;
    }
    return pow(a, b);
}

// Rounds to the nearest float16 value (ties to even, overflow to inf), in integer bit
// arithmetic: WGSL leaves the rounding of pack2x16float, and its result on overflow, to the
// implementation, and validation needs the same answer on every device.
fn to_f16(v: f32) -> f32 {
    let b = bitcast<u32>(v);
    let s = b & 0x80000000u;
    let a = b & 0x7fffffffu;
    if (a >= 0x7f800000u) { return v; }
    if (a >= 0x477ff000u) { return bitcast<f32>(s | 0x7f800000u); }
    if (a < 0x38800000u) {
        // float16 subnormals are multiples of 2^-24; scaling by 2^24 is exact.
        let q = round(bitcast<f32>(a) * 16777216.0) * (1.0 / 16777216.0);
        return bitcast<f32>(s | bitcast<u32>(q));
    }
    return bitcast<f32>(s | ((a + 0xfffu + ((a >> 13u) & 1u)) & 0xffffe000u));
}

// Rounds to the nearest bfloat16 value (ties to even); NaN stays NaN.
fn to_bf16(v: f32) -> f32 {
    let b = bitcast<u32>(v);
    if ((b & 0x7fffffffu) > 0x7f800000u) { return v; }
    return bitcast<f32>((b + 0x7fffu + ((b >> 16u) & 1u)) & 0xffff0000u);
}
";

fn body(name: &str) -> Option<&'static str> {
    Some(match name {
        "unary" => include_str!("shaders/unary.wgsl"),
        "binary" => include_str!("shaders/binary.wgsl"),
        "where" => include_str!("shaders/where.wgsl"),
        "copy" => include_str!("shaders/copy.wgsl"),
        "fill" => include_str!("shaders/fill.wgsl"),
        "gather" => include_str!("shaders/gather.wgsl"),
        "conv" => include_str!("shaders/conv.wgsl"),
        "convtranspose" => include_str!("shaders/convtranspose.wgsl"),
        "pool" => include_str!("shaders/pool.wgsl"),
        "gemm" => include_str!("shaders/gemm.wgsl"),
        "softmax" => include_str!("shaders/softmax.wgsl"),
        "reduce" => include_str!("shaders/reduce.wgsl"),
        "batchnorm" => include_str!("shaders/batchnorm.wgsl"),
        "instnorm" => include_str!("shaders/instnorm.wgsl"),
        "lrn" => include_str!("shaders/lrn.wgsl"),
        "resize" => include_str!("shaders/resize.wgsl"),
        "pad" => include_str!("shaders/pad.wgsl"),
        "dequant" => include_str!("shaders/dequant.wgsl"),
        "quant" => include_str!("shaders/quant.wgsl"),
        "round" => include_str!("shaders/round.wgsl"),
        "matmul_nbits" => include_str!("shaders/matmul_nbits.wgsl"),
        _ => return None,
    })
}

/// The full source of kernel `name` with `subs` applied (whole-word placeholders).
pub fn source(name: &str, subs: &[(&str, &str)]) -> Result<String> {
    let b = body(name).ok_or_else(|| Error::Internal(format!("no kernel named '{name}'")))?;
    let mut s = String::with_capacity(HEADER.len() + b.len());
    s.push_str(HEADER);
    s.push_str(b);
    for (k, v) in subs {
        s = replace_word(&s, k, v);
    }
    Ok(s)
}

fn replace_word(s: &str, word: &str, with: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    let is_id = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < s.len() {
        if s[i..].starts_with(word)
            && (i == 0 || !is_id(bytes[i - 1]))
            && bytes.get(i + word.len()).is_none_or(|&c| !is_id(c))
        {
            out.push_str(with);
            i += word.len();
        } else {
            let ch = s[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// WGSL element type of a tensor of `dt` on the device.
pub fn wty(dt: optimize_ir::ir::DataType) -> &'static str {
    if super::host::is_float_class(dt) {
        "f32"
    } else {
        "i32"
    }
}
