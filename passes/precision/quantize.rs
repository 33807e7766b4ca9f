//! Number formats of the mixed-precision rewrite: uint8 activation parameters, int8/int4
//! per-channel weights, int4 packing, `com.microsoft.MatMulNBits` blocks, int32 bias, and the
//! error and byte estimates the ILP uses. Every estimate here is computed in exactly the
//! format [`super::rewrite`] emits, so the solver's numbers match the written model.

use super::{Precision, Range};

/// Block size of the emitted `MatMulNBits` (ORT's fast path wants a power of two ≥ 16).
pub const NBITS_BLOCK: usize = 32;

/// Smallest activation scale emitted: keeps `x_scale · w_scale` (the bias scale) far from
/// underflow and int32 bias values in range, whatever a degenerate range says.
const MIN_SCALE: f32 = 1e-8;

/// uint8 asymmetric scale and zero point for a tensor with real range `r`. The range is
/// widened to contain 0 (so zero padding is exact); NaN/inf bounds count as 0 and a
/// degenerate range gets a tiny positive scale, never 0 or NaN.
pub fn activation_qparams(r: Range) -> (f32, u8) {
    let lo = if r.min.is_finite() {
        r.min.min(0.0)
    } else {
        0.0
    };
    let hi = if r.max.is_finite() {
        r.max.max(0.0)
    } else {
        0.0
    };
    let mut scale = (hi - lo) / 255.0;
    if !scale.is_finite() || scale < MIN_SCALE {
        scale = MIN_SCALE;
    }
    let zp = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as u8;
    (scale, zp)
}

/// Symmetric per-channel quantized weights: `values[i] ≈ w[i] / scales[channel(i)]`.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedWeight {
    pub values: Vec<i8>,
    pub scales: Vec<f32>,
}

/// Size of `shape` after `axis` (the stride of `axis` in row-major order).
fn inner_size(shape: &[usize], axis: usize) -> usize {
    shape.iter().skip(axis + 1).product::<usize>().max(1)
}

/// Channel of each flat index for `axis` of a row-major `shape`.
fn channel_of(i: usize, shape: &[usize], axis: usize) -> usize {
    let c = shape.get(axis).copied().unwrap_or(1).max(1);
    (i / inner_size(shape, axis)) % c
}

/// Symmetric per-channel quantization along `axis` with `bits` (8: [-127,127], 4: [-7,7]);
/// a channel of zeros gets scale 1 (all values 0). Rounding is half-to-even, like ONNX.
pub fn quantize_per_channel(w: &[f32], shape: &[usize], axis: usize, bits: u32) -> QuantizedWeight {
    let qmax = ((1i32 << (bits.clamp(2, 8) - 1)) - 1) as f32;
    let channels = shape.get(axis).copied().unwrap_or(1).max(1);
    let mut maxabs = vec![0f32; channels];
    for (i, &v) in w.iter().enumerate() {
        let c = channel_of(i, shape, axis);
        if v.is_finite() {
            maxabs[c] = maxabs[c].max(v.abs());
        }
    }
    let scales: Vec<f32> = maxabs
        .iter()
        .map(|&m| if m > 0.0 { m / qmax } else { 1.0 })
        .collect();
    let values = w
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let s = scales[channel_of(i, shape, axis)];
            let q = if v.is_finite() { v / s } else { 0.0 };
            q.round_ties_even().clamp(-qmax, qmax) as i8
        })
        .collect();
    QuantizedWeight { values, scales }
}

/// Dequantizes per-channel values: `values[i] · scales[channel(i)]`.
pub fn dequantize_per_channel(q: &QuantizedWeight, shape: &[usize], axis: usize) -> Vec<f32> {
    q.values
        .iter()
        .enumerate()
        .map(|(i, &v)| v as f32 * q.scales[channel_of(i, shape, axis)])
        .collect()
}

/// ONNX INT4 raw_data packing: two values per byte, element 0 in the low nibble; an odd
/// count leaves the last high nibble 0.
pub fn pack_int4(values: &[i8]) -> Vec<u8> {
    values
        .chunks(2)
        .map(|c| {
            let lo = (c[0] as u8) & 0x0F;
            let hi = c.get(1).map_or(0, |&v| (v as u8) & 0x0F);
            lo | (hi << 4)
        })
        .collect()
}

/// Weights of one `com.microsoft.MatMulNBits` (4 bits): `packed` is B as uint8
/// `[N, ceil(K/bs), bs/2]`, `scales` `[N · ceil(K/bs)]`, `zero_points` (uint4 packed per
/// row of N, `[N · ceil(ceil(K/bs)/2)]`) when the blocks are asymmetric.
#[derive(Clone, Debug, PartialEq)]
pub struct NBits {
    pub packed: Vec<u8>,
    pub scales: Vec<f32>,
    pub zero_points: Option<Vec<u8>>,
}

/// Quantizes a `[K, N]` row-major MatMul weight into MatMulNBits blocks of `block_size`
/// along K (K padded with zeros). Asymmetric uint4 per block over the block's range widened
/// to contain 0: it uses all 16 levels, where the symmetric form wastes one, and 0 (the
/// padding) stays exact. Checked against onnxruntime in tests/precision_rewrite.rs.
pub fn quantize_matmul_nbits(w_kn: &[f32], k: usize, n: usize, block_size: usize) -> NBits {
    let bs = block_size.max(2);
    let kb = k.div_ceil(bs);
    let mut packed = vec![0u8; n * kb * bs / 2];
    let mut scales = vec![0f32; n * kb];
    let zp_row = kb.div_ceil(2);
    let mut zps = vec![0u8; n * zp_row];
    let at = |kk: usize, nn: usize| -> f32 {
        let v = if kk < k { w_kn[kk * n + nn] } else { 0.0 };
        if v.is_finite() {
            v
        } else {
            0.0
        }
    };
    for col in 0..n {
        for b in 0..kb {
            let (mut lo, mut hi) = (0f32, 0f32);
            for kk in b * bs..(b + 1) * bs {
                let v = at(kk, col);
                lo = lo.min(v);
                hi = hi.max(v);
            }
            let mut scale = (hi - lo) / 15.0;
            if scale.is_nan() || scale <= 0.0 || scale.is_infinite() {
                scale = 1.0;
            }
            let zp = (-lo / scale).round_ties_even().clamp(0.0, 15.0) as u8;
            scales[col * kb + b] = scale;
            let zi = col * zp_row + b / 2;
            zps[zi] |= zp << (4 * (b % 2));
            for j in 0..bs {
                let kk = b * bs + j;
                let q =
                    ((at(kk, col) / scale).round_ties_even() + zp as f32).clamp(0.0, 15.0) as u8;
                let byte = (col * kb + b) * (bs / 2) + j / 2;
                packed[byte] |= q << (4 * (j % 2));
            }
        }
    }
    NBits {
        packed,
        scales,
        zero_points: Some(zps),
    }
}

/// Dequantizes MatMulNBits blocks back to a `[K, N]` row-major weight.
pub fn dequantize_matmul_nbits(q: &NBits, k: usize, n: usize, block_size: usize) -> Vec<f32> {
    let bs = block_size.max(2);
    let kb = k.div_ceil(bs);
    let zp_row = kb.div_ceil(2);
    let mut out = vec![0f32; k * n];
    for col in 0..n {
        for b in 0..kb {
            let scale = q.scales[col * kb + b];
            let zp = match &q.zero_points {
                Some(z) => (z[col * zp_row + b / 2] >> (4 * (b % 2))) & 0x0F,
                None => 8,
            };
            for j in 0..bs {
                let kk = b * bs + j;
                if kk >= k {
                    break;
                }
                let byte = q.packed[(col * kb + b) * (bs / 2) + j / 2];
                let v = (byte >> (4 * (j % 2))) & 0x0F;
                out[kk * n + col] = (v as f32 - zp as f32) * scale;
            }
        }
    }
    out
}

/// int32 bias for a quantized op: `round(b / (x_scale · w_scale[c]))`, saturating (one
/// weight scale means per-tensor).
pub fn quantize_bias_int32(b: &[f32], x_scale: f32, w_scales: &[f32]) -> Vec<i32> {
    b.iter()
        .enumerate()
        .map(|(i, &v)| {
            let ws = if w_scales.len() == 1 {
                w_scales[0]
            } else {
                w_scales.get(i).copied().unwrap_or(1.0)
            };
            let s = (x_scale as f64) * (ws as f64);
            let q = if s > 0.0 && v.is_finite() {
                (v as f64 / s).round_ties_even()
            } else {
                0.0
            };
            q.clamp(i32::MIN as f64, i32::MAX as f64) as i32
        })
        .collect()
}

/// Per-channel axis of an op's constant weight in the emitted formats: Conv `[M, C/g, ...]`
/// → 0; ConvTranspose `[C, M/g, ...]` → 1; MatMul `[K, N]` → 1; Gemm B → 0 with transB,
/// else 1; a Gather table `[V, D]` → 0 (one scale per row: a row is what a lookup reads);
/// LSTM/GRU/RNN W `[D, gates·H, I]` and R `[D, gates·H, H]` → 1, the gate rows, with the
/// direction axis before it kept apart (see [`is_recurrent`]).
pub fn weight_channel_axis(op: &str, trans_b: bool) -> usize {
    match op {
        "Conv" | "Gather" => 0,
        "Gemm" if trans_b => 0,
        _ => 1,
    }
}

/// LSTM, GRU and RNN: their weights get one scale per (direction, gate row), i.e. per
/// channel of every axis up to and including the channel axis, not of that axis alone.
pub fn is_recurrent(op: &str) -> bool {
    matches!(op, "LSTM" | "GRU" | "RNN")
}

/// The weight as the per-channel formats see it: `shape` and `axis` as they are, except
/// for a recurrent op, whose axes up to `axis` merge into one leading channel axis
/// (`[D, gates·H, I]`, axis 1 → `[D·gates·H, I]`, axis 0). The data order is unchanged.
pub fn channel_view(op: &str, shape: &[usize], axis: usize) -> (Vec<usize>, usize) {
    if !is_recurrent(op) || axis == 0 || axis >= shape.len() {
        return (shape.to_vec(), axis);
    }
    let mut v = vec![shape[..=axis].iter().product()];
    v.extend_from_slice(&shape[axis + 1..]);
    (v, 0)
}

/// Dims of the per-channel scale tensor the weight-only formats emit: the weight's rank,
/// 1 everywhere but the channel axis (for a recurrent op, every axis up to it), so that it
/// broadcasts against the weight.
pub fn scale_dims(op: &str, shape: &[usize], axis: usize) -> Vec<i64> {
    let keep = |i: usize| i == axis || (is_recurrent(op) && i < axis);
    (0..shape.len())
        .map(|i| if keep(i) { shape[i] as i64 } else { 1 })
        .collect()
}

/// Whether int4 is stored per channel of axis 0, packed by halves and decoded by standard
/// ops (Conv, Gather tables), rather than as `MatMulNBits` blocks (MatMul, Gemm).
pub fn int4_packs_axis0(op: &str) -> bool {
    matches!(op, "Conv" | "Gather")
}

fn sq_err(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            d * d
        })
        .sum()
}

/// `‖dequant(quant(W)) − W‖² / ‖W‖²` for an op's weight in the format the rewrite emits
/// (0 for Fp32, fp16 rounding for Fp16). `op` is the op type; a Gemm weight is taken as
/// stored without transB (use [`relative_weight_error_axis`] for transB=1).
pub fn relative_weight_error(w: &[f32], shape: &[usize], op: &str, p: Precision) -> f64 {
    relative_weight_error_axis(w, shape, op, weight_channel_axis(op, false), p)
}

/// [`relative_weight_error`] with an explicit per-channel axis (0 for a transB Gemm).
pub fn relative_weight_error_axis(
    w: &[f32],
    shape: &[usize],
    op: &str,
    axis: usize,
    p: Precision,
) -> f64 {
    let norm: f64 = w.iter().map(|&x| (x as f64) * (x as f64)).sum();
    if norm == 0.0 || !norm.is_finite() {
        return 0.0;
    }
    let deq: Vec<f32> = match p {
        Precision::Fp32 => return 0.0,
        Precision::Fp16 => w.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect(),
        Precision::Int8 | Precision::Int8W | Precision::Int8Dyn => {
            let (shape, axis) = channel_view(op, shape, axis);
            dequantize_per_channel(&quantize_per_channel(w, &shape, axis, 8), &shape, axis)
        }
        Precision::Int4 if int4_packs_axis0(op) => {
            dequantize_per_channel(&quantize_per_channel(w, shape, axis, 4), shape, axis)
        }
        Precision::Int4 => {
            // MatMulNBits blocks run along K; bring the weight to [K, N] first.
            let (k, n, kn) = to_kn(w, shape, axis);
            let q = quantize_matmul_nbits(&kn, k, n, NBITS_BLOCK);
            let back = dequantize_matmul_nbits(&q, k, n, NBITS_BLOCK);
            return sq_err(&back, &kn) / norm;
        }
    };
    sq_err(&deq, w) / norm
}

/// A 2-D weight as `[K, N]` row-major, N being the channel axis (`axis` 1: as stored;
/// `axis` 0: `[N, K]` transposed).
pub fn to_kn(w: &[f32], shape: &[usize], axis: usize) -> (usize, usize, Vec<f32>) {
    let (r, c) = (
        shape.first().copied().unwrap_or(1),
        shape.get(1).copied().unwrap_or(1),
    );
    if axis == 1 {
        (r, c, w.to_vec())
    } else {
        let mut t = vec![0f32; r * c];
        for i in 0..r {
            for j in 0..c {
                t[j * r + i] = w[i * c + j];
            }
        }
        (c, r, t)
    }
}

/// Uniform-noise estimate of uint8 quantization of a tensor with range `r` and RMS `rms`:
/// `(scale²/12) / rms²` (0 for an all-zero tensor).
pub fn relative_activation_error(r: Range, rms: f64) -> f64 {
    let (scale, _) = activation_qparams(r);
    if rms.is_nan() || rms <= 0.0 || rms.is_infinite() {
        return 0.0;
    }
    (scale as f64).powi(2) / 12.0 / (rms * rms)
}

/// Bytes an op's weights take when stored at precision `p` by the rewrite: weight, bias,
/// scales and zero points. `channel_axis` is [`weight_channel_axis`]; `bias_len` the bias
/// element count (0 without bias). The rewrite emits exactly these tensors.
pub fn stored_bytes(
    op: &str,
    weight_shape: &[usize],
    channel_axis: usize,
    bias_len: usize,
    p: Precision,
) -> u64 {
    let numel: u64 = weight_shape.iter().map(|&d| d as u64).product();
    let (view, view_axis) = channel_view(op, weight_shape, channel_axis);
    let ch = view.get(view_axis).copied().unwrap_or(1) as u64;
    let bias = 4 * bias_len as u64;
    match p {
        Precision::Fp32 => 4 * numel + bias,
        Precision::Fp16 => 2 * numel + bias,
        // int8 weight + f32 scale per channel (symmetric: no zero point); int32 bias + its
        // f32 scale per channel.
        Precision::Int8 => {
            let b = if bias_len > 0 {
                4 * bias_len as u64 + 4 * ch
            } else {
                0
            };
            numel + 4 * ch + b
        }
        // int8 weight + one f32 scale per channel; the bias stays fp32.
        Precision::Int8W | Precision::Int8Dyn => numel + 4 * ch + bias,
        // Output channels (Gather: rows) paired by halves (see rewrite.rs); odd M adds a
        // padding channel and three int64 Slice constants.
        Precision::Int4 if int4_packs_axis0(op) => {
            let m = weight_shape.first().copied().unwrap_or(1) as u64;
            let inner = numel / m.max(1);
            m.div_ceil(2) * inner + 4 * ch + bias + if m % 2 == 1 { 24 } else { 0 }
        }
        Precision::Int4 => {
            // MatMulNBits: [N, kb, bs/2] packed, N·kb scales, N·ceil(kb/2) zero points.
            let n = ch;
            let k = numel / n.max(1);
            let kb = k.div_ceil(NBITS_BLOCK as u64);
            n * kb * (NBITS_BLOCK as u64 / 2) + 4 * n * kb + n * kb.div_ceil(2) + bias
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recurrent_weights_get_one_scale_per_direction_and_gate_row() {
        // W [2 directions, 3 rows, 4 inputs]; direction 1 is 1000x larger than direction 0,
        // so a scale shared across directions would round direction 0 to zeros.
        let shape = [2usize, 3, 4];
        let w: Vec<f32> = (0..24)
            .map(|i| (i as f32 * 0.37).sin() * if i >= 12 { 1000.0 } else { 1.0 })
            .collect();
        let axis = weight_channel_axis("LSTM", false);
        assert_eq!(axis, 1);
        assert_eq!(channel_view("LSTM", &shape, axis), (vec![6, 4], 0));
        assert_eq!(channel_view("MatMul", &[3, 4], 1), (vec![3, 4], 1));
        assert_eq!(scale_dims("GRU", &shape, axis), vec![2, 3, 1]);
        assert_eq!(scale_dims("Conv", &[8, 3, 3, 3], 0), vec![8, 1, 1, 1]);
        assert_eq!(scale_dims("MatMul", &[3, 4], 1), vec![1, 4]);
        assert_eq!(
            stored_bytes("RNN", &shape, axis, 0, Precision::Int8W),
            24 + 4 * 6
        );
        assert_eq!(stored_bytes("RNN", &shape, axis, 0, Precision::Fp16), 48);
        let (view, va) = channel_view("LSTM", &shape, axis);
        let q = quantize_per_channel(&w, &view, va, 8);
        assert_eq!(q.scales.len(), 6);
        let back = dequantize_per_channel(&q, &view, va);
        let small: f64 = sq_err(&back[..12], &w[..12]);
        let norm0: f64 = w[..12].iter().map(|&x| (x * x) as f64).sum();
        assert!(small / norm0 < 1e-4, "direction 0 keeps its precision");
        let e = relative_weight_error_axis(&w, &shape, "LSTM", axis, Precision::Int8W);
        let norm: f64 = w.iter().map(|&x| (x as f64) * (x as f64)).sum();
        assert!((e - sq_err(&back, &w) / norm).abs() < 1e-12);
    }

    #[test]
    fn qparams_include_zero_and_never_zero_scale() {
        let (s, z) = activation_qparams(Range { min: 1.0, max: 2.0 });
        assert!((s - 2.0 / 255.0).abs() < 1e-7 && z == 0);
        let (s, z) = activation_qparams(Range {
            min: -1.0,
            max: 1.0,
        });
        assert!(s > 0.0 && (127..=128).contains(&z));
        let (s, _) = activation_qparams(Range { min: 0.0, max: 0.0 });
        assert!(s > 0.0 && s.is_finite());
        let (s, _) = activation_qparams(Range {
            min: f32::NAN,
            max: f32::INFINITY,
        });
        assert!(s > 0.0 && s.is_finite());
    }

    #[test]
    fn nbits_round_trip_is_close() {
        let (k, n) = (70, 3);
        let w: Vec<f32> = (0..k * n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let q = quantize_matmul_nbits(&w, k, n, 32);
        assert_eq!(q.packed.len(), n * 3 * 16);
        let back = dequantize_matmul_nbits(&q, k, n, 32);
        let err = sq_err(&back, &w) / w.iter().map(|&x| (x * x) as f64).sum::<f64>();
        assert!(err < 0.01, "{err}");
    }
}
