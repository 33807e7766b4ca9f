//! Elementwise rules: the z-rule for Add/Sum/Mean and Sub, the AttnLRP rules for Mul and
//! Div, winner-take-all for Max/Min, routing for Where, Softmax, standalone BatchNorm.

use super::{Backward, Ctx, RResult};
use crate::relevance::config::{Rule, SoftmaxRule};
use crate::relevance::graph_info::{is_centring, is_self_gate};
use crate::relevance::tensor::{
    broadcast_shape, broadcast_to, div_stab, layer_eps_of, reshape, stab_div, T,
};
use ndarray::{Axis, IxDyn};
use std::borrow::Cow;

fn operands(c: &Ctx) -> RResult<(Vec<T>, Vec<usize>)> {
    let mut vals = Vec::new();
    for i in 0..c.node.inputs.len() {
        vals.push(c.input(i)?);
    }
    let shapes: Vec<&[usize]> = vals.iter().map(|v| v.shape()).collect();
    let shape = broadcast_shape(&shapes)?;
    Ok((vals, shape))
}

/// Add, Sum, Mean: R_i = x_i·R / stab(Σ x) (the 1/N of Mean cancels); constant operands
/// (biases) absorb their share.
pub fn sum_like(c: &Ctx, r: T) -> RResult<Backward> {
    if let Some(b) = sum_like_f32(c, &r)? {
        return Ok(b);
    }
    let (vals, shape) = operands(c)?;
    let mut out = Backward {
        inputs: vec![None; vals.len()],
        weight_rel: 0.0,
    };
    let full = |v: &T| v.shape() == shape.as_slice();
    if vals.iter().all(|v| full(v) || v.len() == 1)
        && vals.iter().any(full)
        && r.shape() == shape.as_slice()
    {
        // Same shapes (residual additions) or scalars (x + 3 in a decomposed HardSwish):
        // one pass per operand, no broadcasting copies.
        let first = vals.iter().position(full).ok_or("no full-shape operand")?;
        let mut z = vals[first].as_standard_layout().into_owned();
        for (i, v) in vals.iter().enumerate() {
            if i == first {
                continue;
            }
            match v.iter().next() {
                Some(&k) if !full(v) => z.mapv_inplace(|e| e + k),
                _ => z += v,
            }
        }
        let eps = c.eps_for(&z);
        let mut s = r;
        ndarray::Zip::from(&mut s)
            .and(&z)
            .for_each(|o, &zv| *o = stab_div(*o, zv, eps));
        for (i, v) in vals.iter().enumerate() {
            if c.carries(i) {
                out.inputs[i] = Some(match v.iter().next() {
                    Some(&k) if !full(v) => &s * k,
                    _ => v * &s,
                });
            }
        }
        return Ok(out);
    }
    let mut z = T::zeros(IxDyn(&shape));
    for v in &vals {
        z += &broadcast_to(v, &shape)?;
    }
    let s = div_stab(&r, &z, c.eps_for(&z))?;
    for (i, v) in vals.iter().enumerate() {
        if c.carries(i) {
            out.inputs[i] = Some(&broadcast_to(v, &shape)? * &s);
        }
    }
    Ok(out)
}

/// An operand of [`sum_like_f32`].
enum Summand<'a> {
    /// R's shape, recorded in f32 (read in place).
    Full(Cow<'a, [f32]>),
    Scalar(f64),
}

/// [`sum_like`] when every operand has R's shape (recorded in f32) or is a scalar: the
/// residual additions and the x + 3 of decomposed HardSwish. Reads the operands in place
/// and writes z once; `None` for any other case.
fn sum_like_f32(c: &Ctx, r: &T) -> RResult<Option<Backward>> {
    let n_in = c.node.inputs.len();
    let len = r.len();
    let mut ops = Vec::with_capacity(n_in);
    for i in 0..n_in {
        let shape = c.in_shape(i)?;
        if shape.iter().product::<usize>() == 1 {
            let k = c.input(i)?.iter().next().copied().ok_or("empty operand")?;
            ops.push(Summand::Scalar(k));
        } else if shape.as_slice() == r.shape() {
            match c.input_f32(i) {
                Some(v) if v.len() == len => ops.push(Summand::Full(v)),
                _ => return Ok(None),
            }
        } else {
            return Ok(None);
        }
    }
    let Some(rs) = r.as_slice() else {
        return Ok(None);
    };
    // z: the first full operand plus every scalar, then the other full operands.
    let k: f64 = ops
        .iter()
        .map(|o| match o {
            Summand::Scalar(k) => *k,
            Summand::Full(_) => 0.0,
        })
        .sum();
    let mut fulls = ops.iter().filter_map(|o| match o {
        Summand::Full(v) => Some(v),
        Summand::Scalar(_) => None,
    });
    let Some(first) = fulls.next() else {
        return Ok(None);
    };
    let mut z: Vec<f64> = first.iter().map(|&x| f64::from(x) + k).collect();
    for v in fulls {
        z.iter_mut()
            .zip(v.iter())
            .for_each(|(z, &x)| *z += f64::from(x));
    }
    let eps = layer_eps_of(&z, c.cfg.eps, c.cfg.eps_rel);
    let mut out = Backward {
        inputs: vec![None; n_in],
        weight_rel: 0.0,
    };
    let carrying: Vec<usize> = (0..n_in).filter(|&i| c.carries(i)).collect();
    if let [i] = carrying[..] {
        // One operand takes relevance (x + b): R_x = x·R / stab(z) in one pass.
        let ri: Vec<f64> = match &ops[i] {
            Summand::Full(v) => v
                .iter()
                .zip(&z)
                .zip(rs)
                .map(|((&x, &zv), &rv)| f64::from(x) * stab_div(rv, zv, eps))
                .collect(),
            Summand::Scalar(k) => z
                .iter()
                .zip(rs)
                .map(|(&zv, &rv)| k * stab_div(rv, zv, eps))
                .collect(),
        };
        out.inputs[i] = Some(T::from_shape_vec(r.raw_dim(), ri).map_err(|e| e.to_string())?);
        return Ok(Some(out));
    }
    // z becomes s = R / stab(z).
    z.iter_mut()
        .zip(rs)
        .for_each(|(zv, &rv)| *zv = stab_div(rv, *zv, eps));
    for i in carrying {
        let o = &ops[i];
        let ri: Vec<f64> = match o {
            Summand::Full(v) => v.iter().zip(&z).map(|(&x, &s)| f64::from(x) * s).collect(),
            Summand::Scalar(k) => z.iter().map(|&s| s * k).collect(),
        };
        out.inputs[i] = Some(T::from_shape_vec(r.raw_dim(), ri).map_err(|e| e.to_string())?);
    }
    Ok(Some(out))
}

/// Sub: R_a = a·R/stab(a − b), R_b = −b·R/stab(a − b); a centring x − mean(x) (decomposed
/// LayerNorm) passes everything to x.
pub fn sub(c: &Ctx, r: T) -> RResult<Backward> {
    if c.cfg.patterns && c.carries(0) && is_centring(c.graph, c.node) {
        return Ok(Backward::single(2, 0, r));
    }
    let a = c.input(0)?;
    let b = c.input(1)?;
    let shape = broadcast_shape(&[a.shape(), b.shape()])?;
    let a = broadcast_to(&a, &shape)?;
    let b = broadcast_to(&b, &shape)?;
    let z = &a - &b;
    let s = div_stab(&r, &z, c.eps_for(&z))?;
    let mut out = Backward {
        inputs: vec![None, None],
        weight_rel: 0.0,
    };
    if c.carries(0) {
        out.inputs[0] = Some(&a * &s);
    }
    if c.carries(1) {
        out.inputs[1] = Some(-(&b * &s));
    }
    Ok(out)
}

/// Mul: all to the activation against a constant; R/N to each of N activations; all to x in
/// a self-gate x·f(x).
pub fn mul(c: &Ctx, r: T) -> RResult<Backward> {
    let carrying = c.carrying_inputs();
    let n_in = c.node.inputs.len();
    match carrying.as_slice() {
        [] => Ok(Backward::default()),
        [i] => Ok(Backward::single(n_in, *i, r)),
        _ => {
            if c.cfg.patterns && n_in == 2 {
                let (a, b) = (&c.node.inputs[0], &c.node.inputs[1]);
                if is_self_gate(c.graph, c.carry, a, b) {
                    return Ok(Backward::single(2, 0, r));
                }
                if is_self_gate(c.graph, c.carry, b, a) {
                    return Ok(Backward::single(2, 1, r));
                }
            }
            let share = &r / carrying.len() as f64;
            let mut out = Backward {
                inputs: vec![None; n_in],
                weight_rel: 0.0,
            };
            for i in carrying {
                out.inputs[i] = Some(share.clone());
            }
            Ok(out)
        }
    }
}

/// Div: the numerator gets everything (the divisor is a normalizer); a constant numerator
/// passes everything to the divisor.
pub fn div(c: &Ctx, r: T) -> RResult<Backward> {
    let slot = if c.carries(0) { 0 } else { 1 };
    Ok(Backward::single(2, slot, r))
}

/// Max/Min: winner-take-all per element (first operand equal to the output).
pub fn max_min(c: &Ctx, r: T) -> RResult<Backward> {
    let (vals, shape) = operands(c)?;
    let y = broadcast_to(&c.output(0)?, &shape)?;
    let r = broadcast_to(&r, &shape)?;
    let mut taken = T::zeros(IxDyn(&shape));
    let mut out = Backward {
        inputs: vec![None; vals.len()],
        weight_rel: 0.0,
    };
    for (i, v) in vals.iter().enumerate() {
        let v = broadcast_to(v, &shape)?;
        let mut ri = T::zeros(IxDyn(&shape));
        ndarray::Zip::from(&mut ri)
            .and(&mut taken)
            .and(&v)
            .and(&y)
            .and(&r)
            .for_each(|ri, t, &v, &y, &r| {
                if *t == 0.0 && v == y {
                    *ri = r;
                    *t = 1.0;
                }
            });
        if c.carries(i) {
            out.inputs[i] = Some(ri);
        }
    }
    Ok(out)
}

/// Where: relevance goes to the branch that was selected.
pub fn where_(c: &Ctx, r: T) -> RResult<Backward> {
    let cond = c.input(0)?;
    let shape = broadcast_shape(&[cond.shape(), &c.in_shape(1)?, &c.in_shape(2)?])?;
    let cond = broadcast_to(&cond, &shape)?;
    let r = broadcast_to(&r, &shape)?;
    let mut out = Backward {
        inputs: vec![None; 3],
        weight_rel: 0.0,
    };
    if c.carries(1) {
        out.inputs[1] =
            Some(ndarray::Zip::from(&cond).and(&r).map_collect(
                |&k, &r| {
                    if k != 0.0 {
                        r
                    } else {
                        0.0
                    }
                },
            ));
    }
    if c.carries(2) {
        out.inputs[2] =
            Some(ndarray::Zip::from(&cond).and(&r).map_collect(
                |&k, &r| {
                    if k != 0.0 {
                        0.0
                    } else {
                        r
                    }
                },
            ));
    }
    Ok(out)
}

/// Softmax inside the graph: identity, AttnLRP (x ⊙ (R − s·ΣR)), or stop.
pub fn softmax(c: &Ctx, r: T) -> RResult<Backward> {
    match c.cfg.softmax {
        SoftmaxRule::Identity => Ok(Backward::single(1, 0, r)),
        SoftmaxRule::Stop => Ok(Backward::single(1, 0, T::zeros(r.raw_dim()))),
        SoftmaxRule::AttnLrp => {
            let x = c.input(0)?;
            let s = c.output(0)?;
            let shape = x.shape().to_vec();
            let rank = shape.len();
            let default_axis = if c.opset >= 13 { -1 } else { 1 };
            let axis = crate::relevance::tensor::norm_axis(c.attr_int("axis", default_axis), rank)?;
            // Opset < 13 works on the 2-D coercion [prod(pre), prod(post)].
            let (rows, cols, ax) = if c.opset >= 13 {
                (0, 0, axis)
            } else {
                (
                    shape[..axis].iter().product::<usize>(),
                    shape[axis..].iter().product::<usize>(),
                    1,
                )
            };
            let (x2, s2, r2) = if c.opset >= 13 {
                (x, s, r)
            } else {
                (
                    reshape(x, &[rows, cols])?,
                    reshape(s, &[rows, cols])?,
                    reshape(r, &[rows, cols])?,
                )
            };
            let sum_r = r2.sum_axis(Axis(ax)).insert_axis(Axis(ax));
            let x2 = x2.mapv(|v| if v.is_finite() { v } else { 0.0 });
            let rin = &x2 * &(&r2 - &(&s2 * &sum_r));
            Ok(Backward::single(1, 0, reshape(rin, &shape)?))
        }
    }
}

/// BatchNormalization not folded into a layer: the ε-rule on its affine map
/// (R_x = k·x·R / stab(y)); identity under the identity rule.
pub fn batchnorm(c: &Ctx, r: T) -> RResult<Backward> {
    let n_in = c.node.inputs.len();
    if c.cfg.conv == Rule::Identity {
        return Ok(Backward::single(n_in, 0, r));
    }
    let x = c.input(0)?;
    let (k, sh) = super::batchnorm::bn_scale_shift(c, c.node)?;
    let mut cs = vec![1usize; x.ndim()];
    if x.ndim() >= 2 {
        cs[1] = x.shape()[1];
    }
    let k = reshape(k, &cs)?;
    let sh = reshape(sh, &cs)?;
    let kx = &x * &k;
    let y = &kx + &sh;
    let s = div_stab(&r, &y, c.eps_for(&y))?;
    Ok(Backward::single(n_in, 0, &kx * &s))
}
