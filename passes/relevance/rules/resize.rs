//! Resize / Upsample (nearest and linear): separable per-axis interpolation matrices.
//! Nearest routes relevance back to the source pixel; linear uses the z-rule
//! R_x = x ⊙ Mᵀ(R / stab(M x)).

use super::{Backward, Ctx, RResult};
use crate::relevance::tensor::{apply_along_axis, div_stab, reshape, T};
use ndarray::Array2;

/// The interpolation matrix (out × in) of one axis.
fn axis_matrix(
    n_in: usize,
    n_out: usize,
    scale: f64,
    coord: &str,
    mode: &str,
    nearest: &str,
) -> RResult<Array2<f64>> {
    let mut m = Array2::<f64>::zeros((n_out, n_in));
    if n_in == 0 {
        return Ok(m);
    }
    for o in 0..n_out {
        let of = o as f64;
        let x = match coord {
            "half_pixel" => (of + 0.5) / scale - 0.5,
            "pytorch_half_pixel" => {
                if n_out > 1 {
                    (of + 0.5) / scale - 0.5
                } else {
                    0.0
                }
            }
            "align_corners" => {
                if n_out > 1 {
                    of * (n_in as f64 - 1.0) / (n_out as f64 - 1.0)
                } else {
                    0.0
                }
            }
            "asymmetric" => of / scale,
            other => {
                return Err(format!(
                    "coordinate_transformation_mode '{other}' is not supported"
                ))
            }
        };
        match mode {
            "nearest" => {
                let i = match nearest {
                    "floor" => x.floor(),
                    "ceil" => x.ceil(),
                    "round_prefer_ceil" => (x + 0.5).floor(),
                    _ => {
                        if x.fract() == 0.5 {
                            x.floor()
                        } else {
                            x.round()
                        }
                    }
                };
                let i = (i.max(0.0) as usize).min(n_in - 1);
                m[[o, i]] = 1.0;
            }
            "linear" | "bilinear" => {
                let xc = x.clamp(0.0, (n_in - 1) as f64);
                let i0 = xc.floor() as usize;
                let i1 = (i0 + 1).min(n_in - 1);
                let w1 = xc - i0 as f64;
                m[[o, i0]] += 1.0 - w1;
                m[[o, i1]] += w1;
            }
            other => return Err(format!("Resize mode '{other}' is not supported")),
        }
    }
    Ok(m)
}

/// Resize (opset 10+) and Upsample.
pub fn resize(c: &Ctx, r: T) -> RResult<Backward> {
    let n_in = c.node.inputs.len();
    let x = c.input(0)?;
    let xs = x.shape().to_vec();
    let ys = c.out_shape(0)?;
    let rank = xs.len();
    let is_upsample = c.node.op_type == "Upsample";
    let old = is_upsample || c.opset < 11;
    // Scales: input 1 (Upsample-9, Resize-10), input 2 (Resize-11+), or attribute (Upsample-7).
    let scales: Vec<f64> = {
        let slot = if old { 1 } else { 2 };
        let from_input = if c.has_input(slot) {
            c.input(slot)?.iter().copied().collect()
        } else {
            Vec::new()
        };
        if from_input.len() == rank {
            from_input
        } else if let Some(a) = c
            .node
            .attr("scales")
            .and_then(|a| optimize_ir::ir::attr::AttrExt::as_floats(a).map(|v| v.to_vec()))
        {
            a.iter().map(|&v| v as f64).collect()
        } else {
            xs.iter()
                .zip(&ys)
                .map(|(&i, &o)| if i == 0 { 1.0 } else { o as f64 / i as f64 })
                .collect()
        }
    };
    let mode = c.attr_str("mode", "nearest");
    let coord = if old {
        "asymmetric".to_string()
    } else {
        c.attr_str("coordinate_transformation_mode", "half_pixel")
    };
    let nearest = if old {
        "floor".to_string()
    } else {
        c.attr_str("nearest_mode", "round_prefer_floor")
    };
    let mut mats = Vec::new();
    for a in 0..rank {
        mats.push(axis_matrix(
            xs[a],
            ys[a],
            scales.get(a).copied().unwrap_or(1.0),
            &coord,
            &mode,
            &nearest,
        )?);
    }
    let r = reshape(r, &ys)?;
    let adjoint = |t: &T| -> RResult<T> {
        let mut t = t.clone();
        for (a, m) in mats.iter().enumerate() {
            if xs[a] != ys[a] || m.nrows() != m.ncols() {
                t = apply_along_axis(&t, a, &m.t().to_owned())?;
            }
        }
        Ok(t)
    };
    if mode == "nearest" {
        return Ok(Backward::single(n_in, 0, adjoint(&r)?));
    }
    let mut y = x.clone();
    for (a, m) in mats.iter().enumerate() {
        if xs[a] != ys[a] || m.nrows() != m.ncols() {
            y = apply_along_axis(&y, a, m)?;
        }
    }
    let s = div_stab(&r, &y, c.cfg.eps)?;
    Ok(Backward::single(n_in, 0, &x * &adjoint(&s)?))
}
