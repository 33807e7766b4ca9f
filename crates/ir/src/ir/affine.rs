//! Per-output-channel affine maps folded into a weight: the one implementation behind
//! BatchNormalization folding (precision's rewrite), the learnable-affine simplification
//! (`Conv → Mul → Add`) and relevance's view of a Conv followed by a BatchNormalization.

/// A weight or bias element: f32 in the IR's tensors, f64 in relevance's.
pub trait Element: Copy {
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
}

impl Element for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Element for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// BatchNormalization (inference) as `y = k·x + shift` per channel:
/// `k = γ/√(σ² + ε)`, `shift = β − μ·k`, computed in f64.
pub fn batchnorm_affine<E: Element>(
    gamma: &[E],
    beta: &[E],
    mean: &[E],
    var: &[E],
    eps: f64,
) -> (Vec<f64>, Vec<f64>) {
    let k: Vec<f64> = gamma
        .iter()
        .zip(var)
        .map(|(g, v)| g.to_f64() / (v.to_f64() + eps).sqrt())
        .collect();
    let shift = beta
        .iter()
        .zip(mean)
        .zip(&k)
        .map(|((b, m), k)| b.to_f64() - m.to_f64() * k)
        .collect();
    (k, shift)
}

/// An inference-mode BatchNormalization node over `m` channels with constant parameters,
/// as [`batchnorm_affine`]'s `(k, shift)`; `None` in training mode (`training_mode` set or
/// running statistics as outputs), or when a parameter is not a constant of `m` values.
/// The one recognizer behind BatchNorm folding and the simplification's affine chains.
pub fn inference_batchnorm(
    g: &super::Graph,
    bn: &super::Node,
    m: usize,
) -> Option<(Vec<f64>, Vec<f64>)> {
    let plain = bn.is("BatchNormalization")
        && bn.inputs.len() >= 5
        && !bn.outputs.is_empty()
        && bn.outputs.iter().skip(1).all(|o| o.is_empty())
        && bn.attr_int("training_mode", 0) == 0;
    if !plain {
        return None;
    }
    let params: Option<Vec<Vec<f32>>> = bn.inputs[1..5]
        .iter()
        .map(|p| {
            super::tensor::constant_f32(g, p)
                .map(|(v, _)| v)
                .filter(|v| v.len() == m)
        })
        .collect();
    let p = params?;
    let eps = bn.attr_float("epsilon", 1e-5) as f64;
    Some(batchnorm_affine(&p[0], &p[1], &p[2], &p[3], eps))
}

/// Folds `y' = k·y + shift` (per output channel) into the producer of `y`: a weight laid
/// out `[cout, …]` is scaled block by block, the bias becomes `b·k + shift`. `k` and
/// `shift` hold one value per output channel (`b.len()` of them); arithmetic in f64.
pub fn fold_output_affine<E: Element>(w: &mut [E], b: &mut [E], k: &[f64], shift: &[f64]) {
    let cout = b.len();
    let per = w.len() / cout.max(1);
    for (block, kv) in w.chunks_mut(per.max(1)).zip(k) {
        scale_block(block, *kv);
    }
    fold_bias(b, k, shift);
}

/// [`fold_output_affine`] for a ConvTranspose weight, laid out `[cin, cout/group, …]`:
/// block `w[ci, j, …]` belongs to output channel `(ci / (cin/group))·(cout/group) + j`.
pub fn fold_output_affine_transposed<E: Element>(
    w: &mut [E],
    b: &mut [E],
    k: &[f64],
    shift: &[f64],
    cin: usize,
    group: usize,
) {
    let (cout, group) = (b.len(), group.max(1));
    let cout_g = (cout / group).max(1);
    let cin_g = (cin / group).max(1);
    let per = (w.len() / (cin * cout_g).max(1)).max(1);
    for (i, block) in w.chunks_mut(per).enumerate() {
        let (ci, j) = (i / cout_g, i % cout_g);
        if let Some(kv) = k.get((ci / cin_g) * cout_g + j) {
            scale_block(block, *kv);
        }
    }
    fold_bias(b, k, shift);
}

fn scale_block<E: Element>(block: &mut [E], k: f64) {
    block
        .iter_mut()
        .for_each(|v| *v = E::from_f64(v.to_f64() * k));
}

fn fold_bias<E: Element>(b: &mut [E], k: &[f64], shift: &[f64]) {
    for ((bv, kv), s) in b.iter_mut().zip(k).zip(shift) {
        *bv = E::from_f64(bv.to_f64() * kv + s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batchnorm_after_a_conv_folds_into_its_weight_and_bias() {
        // Two output channels of 3 weights each.
        let (k, shift) =
            batchnorm_affine(&[2.0f32, 0.5], &[1.0, -1.0], &[0.5, 2.0], &[3.0, 0.0], 1.0);
        assert_eq!(k, vec![1.0, 0.5]);
        assert_eq!(shift, vec![0.5, -2.0]);
        let mut w = vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut b = vec![1.0f32, 2.0];
        fold_output_affine(&mut w, &mut b, &k, &shift);
        assert_eq!(w, vec![1.0, 2.0, 3.0, 2.0, 2.5, 3.0]);
        assert_eq!(b, vec![1.5, -1.0]);
    }

    #[test]
    fn a_transposed_weight_scales_along_its_second_axis() {
        // ConvTranspose weight [cin 2, cout/group 2, 1 kernel element], group 1: output
        // channel j owns w[·, j].
        let mut w = vec![1.0f32, 2.0, 3.0, 4.0];
        let mut b = vec![1.0f32, 1.0];
        fold_output_affine_transposed(&mut w, &mut b, &[10.0, 100.0], &[0.5, -1.0], 2, 1);
        assert_eq!(w, vec![10.0, 200.0, 30.0, 400.0]);
        assert_eq!(b, vec![10.5, 99.0]);
        // Two groups of one input and one output channel each: w[ci, 0] is channel ci's.
        let mut w = vec![1.0f32, 2.0];
        let mut b = vec![0.0f32, 0.0];
        fold_output_affine_transposed(&mut w, &mut b, &[3.0, 5.0], &[0.0, 0.0], 2, 2);
        assert_eq!(w, vec![3.0, 10.0]);
    }
}
