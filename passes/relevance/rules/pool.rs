//! Pools and reductions: winner-take-all for Max, the z-rule for Average/Sum/Mean
//! (R_i = x_i·R / stab(Σ_window x), the divisor cancels).

use super::{Backward, Ctx, RResult};
use crate::relevance::tensor::{norm_axis, reshape, stab, T};
use ndarray::{ArrayD, IxDyn};

/// For each output spatial position, the flat input spatial indices of its window.
fn windows(
    ins: &[usize],
    outs: &[usize],
    k: &[usize],
    st: &[usize],
    dl: &[usize],
    pads: &[isize],
) -> Vec<Vec<usize>> {
    let d = ins.len();
    let n_out: usize = outs.iter().product();
    let n_k: usize = k.iter().product();
    let mut res = Vec::with_capacity(n_out);
    let mut o = vec![0usize; d];
    for _ in 0..n_out {
        let mut win = Vec::with_capacity(n_k);
        let mut kk = vec![0usize; d];
        for _ in 0..n_k {
            let mut flat = 0usize;
            let mut ok = true;
            for a in 0..d {
                let i = (o[a] * st[a] + kk[a] * dl[a]) as isize - pads[a];
                if i < 0 || i as usize >= ins[a] {
                    ok = false;
                    break;
                }
                flat = flat * ins[a] + i as usize;
            }
            if ok {
                win.push(flat);
            }
            for a in (0..d).rev() {
                kk[a] += 1;
                if kk[a] < k[a] {
                    break;
                }
                kk[a] = 0;
            }
        }
        res.push(win);
        for a in (0..d).rev() {
            o[a] += 1;
            if o[a] < outs[a] {
                break;
            }
            o[a] = 0;
        }
    }
    res
}

/// MaxPool (winner-take-all) and AveragePool (z-rule).
pub fn pool(c: &Ctx, r: T) -> RResult<Backward> {
    let n_in = c.node.inputs.len();
    let x = c.input(0)?;
    let xs = x.shape().to_vec();
    let ys = c.out_shape(0)?;
    if xs.len() < 3 {
        return Err("pool input must have rank 3 or more".into());
    }
    let d = xs.len() - 2;
    let k: Vec<usize> = c
        .attr_ints("kernel_shape")
        .ok_or("kernel_shape is missing")?
        .iter()
        .map(|&v| v.max(1) as usize)
        .collect();
    let st = c.spatial_ints("strides", d);
    let dl = c.spatial_ints("dilations", d);
    if k.len() != d || st.len() != d || dl.len() != d {
        return Err("pool attributes do not match the spatial rank".into());
    }
    let auto = c.attr_str("auto_pad", "NOTSET");
    let pads: Vec<isize> = match c.attr_ints("pads") {
        Some(p) if p.len() >= d && auto == "NOTSET" => p[..d].iter().map(|&v| v as isize).collect(),
        _ => (0..d)
            .map(|a| {
                if auto.starts_with("SAME") {
                    let need =
                        ((ys[a + 2].saturating_sub(1)) * st[a] + (k[a] - 1) * dl[a] + 1) as isize;
                    let total = (need - xs[a + 2] as isize).max(0);
                    if auto == "SAME_UPPER" {
                        total / 2
                    } else {
                        total - total / 2
                    }
                } else {
                    0
                }
            })
            .collect(),
    };
    let wins = windows(&xs[2..], &ys[2..], &k, &st, &dl, &pads);
    let planes = xs[0] * xs[1];
    let isz: usize = xs[2..].iter().product();
    let osz: usize = ys[2..].iter().product();
    let r = reshape(r, &ys)?;
    let r = r.as_standard_layout();
    let rs = r.as_slice().ok_or("relevance is not contiguous")?;
    let x = x.as_standard_layout();
    let xsl = x.as_slice().ok_or("input is not contiguous")?;
    let mut out = vec![0.0; xsl.len()];
    let is_max = c.node.op_type == "MaxPool";
    for p in 0..planes {
        let xp = &xsl[p * isz..(p + 1) * isz];
        let op = &mut out[p * isz..(p + 1) * isz];
        for (o, win) in wins.iter().enumerate() {
            let rv = rs[p * osz + o];
            if rv == 0.0 || win.is_empty() {
                continue;
            }
            if is_max {
                let mut best = win[0];
                for &i in win {
                    if xp[i] > xp[best] {
                        best = i;
                    }
                }
                op[best] += rv;
            } else {
                let z: f64 = win.iter().map(|&i| xp[i]).sum();
                let den = stab(z, c.cfg.eps);
                if den != 0.0 {
                    let s = rv / den;
                    for &i in win {
                        op[i] += xp[i] * s;
                    }
                }
            }
        }
    }
    let rx = ArrayD::from_shape_vec(IxDyn(&xs), out).map_err(|e| e.to_string())?;
    Ok(Backward::single(n_in, 0, rx))
}

/// GlobalAveragePool (z-rule) and GlobalMaxPool (winner-take-all).
pub fn global_pool(c: &Ctx, r: T) -> RResult<Backward> {
    let x = c.input(0)?;
    let rank = x.ndim();
    let axes: Vec<usize> = (2..rank).collect();
    let winner = (c.node.op_type == "GlobalMaxPool").then_some(true);
    let rx = reduce_rule(&x, &axes, r, winner, c.cfg.eps)?;
    Ok(Backward::single(1, 0, rx))
}

/// ReduceMean/ReduceSum (z-rule), ReduceMax/ReduceMin (winner-take-all).
pub fn reduce(c: &Ctx, r: T) -> RResult<Backward> {
    let n_in = c.node.inputs.len();
    let x = c.input(0)?;
    let rank = x.ndim();
    let from_input = c.has_input(1);
    let axes: Vec<i64> = if from_input {
        c.ints(1)?
    } else {
        c.attr_ints("axes").unwrap_or_default()
    };
    let noop = c.attr_int("noop_with_empty_axes", 0) != 0;
    let axes: Vec<usize> = if axes.is_empty() {
        if noop {
            return Ok(Backward::single(n_in, 0, r));
        }
        (0..rank).collect()
    } else {
        axes.iter()
            .map(|&a| norm_axis(a, rank))
            .collect::<Result<_, _>>()?
    };
    let winner = match c.node.op_type.as_str() {
        "ReduceMax" => Some(true),
        "ReduceMin" => Some(false),
        _ => None,
    };
    let rx = reduce_rule(&x, &axes, r, winner, c.cfg.eps)?;
    Ok(Backward::single(n_in, 0, rx))
}

/// The reduction rule over `axes` of `x`: `r` has the reduced shape (with or without the
/// kept unit axes).
/// `winner`: `Some(true)` for max, `Some(false)` for min, `None` for sum/mean.
pub fn reduce_rule(x: &T, axes: &[usize], r: T, winner: Option<bool>, eps: f64) -> RResult<T> {
    let xs = x.shape().to_vec();
    let mut keep = xs.clone();
    for &a in axes {
        keep[a] = 1;
    }
    let r = reshape(r, &keep)?;
    let r = r.as_standard_layout();
    let rs = r.as_slice().ok_or("relevance is not contiguous")?;
    let x = x.as_standard_layout();
    let xsl = x.as_slice().ok_or("input is not contiguous")?;
    // Output index of every input element.
    let rank = xs.len();
    let mut idx = vec![0usize; rank];
    let mut map = Vec::with_capacity(xsl.len());
    for _ in 0..xsl.len() {
        let mut o = 0usize;
        for a in 0..rank {
            o = o * keep[a] + if keep[a] == 1 { 0 } else { idx[a] };
        }
        map.push(o);
        for a in (0..rank).rev() {
            idx[a] += 1;
            if idx[a] < xs[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    let mut out = vec![0.0; xsl.len()];
    if let Some(take_max) = winner {
        // Route to the first element equal to the reduced extreme.
        let init = if take_max {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
        let mut ext = vec![init; rs.len()];
        for (i, &o) in map.iter().enumerate() {
            ext[o] = if take_max {
                ext[o].max(xsl[i])
            } else {
                ext[o].min(xsl[i])
            };
        }
        let mut best: Vec<Option<usize>> = vec![None; rs.len()];
        for (i, &o) in map.iter().enumerate() {
            if best[o].is_none() && xsl[i] == ext[o] {
                best[o] = Some(i);
            }
        }
        for (o, b) in best.iter().enumerate() {
            if let Some(i) = b {
                out[*i] += rs[o];
            }
        }
    } else {
        let mut z = vec![0.0; rs.len()];
        for (i, &o) in map.iter().enumerate() {
            z[o] += xsl[i];
        }
        for (i, &o) in map.iter().enumerate() {
            let den = stab(z[o], eps);
            if den != 0.0 {
                out[i] = xsl[i] * rs[o] / den;
            }
        }
    }
    ArrayD::from_shape_vec(IxDyn(&xs), out).map_err(|e| e.to_string())
}
