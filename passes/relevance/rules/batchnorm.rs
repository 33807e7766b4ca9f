//! BatchNormalization as a per-channel affine map, and its folding into a Conv. Shared by
//! the conv, linear and elementwise rules; kept apart so that none of them imports another.

use super::{Ctx, RResult};
use crate::relevance::tensor::{reshape, T};
use ndarray::IxDyn;
use optimize_ir::ir::affine::{batchnorm_affine, fold_output_affine};
use optimize_ir::ir::Node;

/// Per-channel scale k = γ/√(σ²+ε) and shift β − μ·k of a BatchNormalization node.
pub fn bn_scale_shift(c: &Ctx, bn: &Node) -> RResult<(T, T)> {
    let get = |i: usize| -> RResult<T> {
        let name = bn
            .inputs
            .get(i)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("BatchNormalization input {i} is missing"))?;
        c.acts.get(name)
    };
    let eps = bn
        .attr("epsilon")
        .and_then(optimize_ir::ir::attr::AttrExt::as_float)
        .unwrap_or(1e-5) as f64;
    bn_params(&get(1)?, &get(2)?, &get(3)?, &get(4)?, eps)
}

/// k = scale/√(var+ε), shift = bias − mean·k.
pub fn bn_params(scale: &T, bias: &T, mean: &T, var: &T, eps: f64) -> RResult<(T, T)> {
    let flat = |t: &T| -> Vec<f64> { t.iter().copied().collect() };
    let (k, sh) = batchnorm_affine(&flat(scale), &flat(bias), &flat(mean), &flat(var), eps);
    let like = |v: Vec<f64>| {
        T::from_shape_vec(IxDyn(scale.shape()), v).map_err(|e| format!("BatchNormalization: {e}"))
    };
    Ok((like(k)?, like(sh)?))
}

/// Folds a per-output-channel affine map (k, shift) into a Conv weight [cout, …] and bias.
pub fn fold_into_conv(w: &T, b: Option<&T>, k: &T, shift: &T) -> RResult<(T, T)> {
    let cout = w.shape()[0];
    if k.len() != cout || shift.len() != cout {
        return Err(format!(
            "BatchNormalization has {} channels, the Conv {cout}",
            k.len()
        ));
    }
    // In place on the standard layout (a broadcast multiply on IxDyn is slow).
    let mut w2 = w.as_standard_layout().into_owned();
    let mut b2 = match b {
        Some(b) => reshape(b.clone(), &[cout])?,
        None => T::zeros(IxDyn(&[cout])),
    }
    .as_standard_layout()
    .into_owned();
    let ks: Vec<f64> = k.iter().copied().collect();
    let shifts: Vec<f64> = shift.iter().copied().collect();
    match (w2.as_slice_mut(), b2.as_slice_mut()) {
        (Some(ws), Some(bs)) => fold_output_affine(ws, bs, &ks, &shifts),
        _ => return Err("a Conv weight not in standard layout".into()),
    }
    Ok((w2, b2))
}
