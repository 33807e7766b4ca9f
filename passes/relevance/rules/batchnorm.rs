//! BatchNormalization as a per-channel affine map, and its folding into a Conv. Shared by
//! the conv, linear and elementwise rules; kept apart so that none of them imports another.

use super::{Ctx, RResult};
use crate::ir::Node;
use crate::passes::relevance::tensor::{reshape, T};
use ndarray::IxDyn;

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
        .and_then(crate::ir::attr::AttrExt::as_float)
        .unwrap_or(1e-5) as f64;
    bn_params(&get(1)?, &get(2)?, &get(3)?, &get(4)?, eps)
}

/// k = scale/√(var+ε), shift = bias − mean·k.
pub fn bn_params(scale: &T, bias: &T, mean: &T, var: &T, eps: f64) -> RResult<(T, T)> {
    let k = scale / &var.mapv(|v| (v + eps).sqrt());
    let sh = bias - &(mean * &k);
    Ok((k, sh))
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
    // Scale each output channel's block in place (a broadcast multiply on IxDyn is slow).
    let mut w2 = w.as_standard_layout().into_owned();
    let per = w2.len() / cout.max(1);
    let ks: Vec<f64> = k.iter().copied().collect();
    if let Some(ws) = w2.as_slice_mut() {
        for (chunk, kv) in ws.chunks_mut(per.max(1)).zip(&ks) {
            chunk.iter_mut().for_each(|v| *v *= kv);
        }
    }
    let b0 = match b {
        Some(b) => reshape(b.clone(), &[cout])?,
        None => T::zeros(IxDyn(&[cout])),
    };
    let b2 = &b0 * &reshape(k.clone(), &[cout])? + &reshape(shift.clone(), &[cout])?;
    Ok((w2, b2))
}
