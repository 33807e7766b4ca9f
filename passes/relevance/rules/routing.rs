//! Shape and routing ops: relevance goes back along the adjoint of the index map
//! (reshape back, inverse permutation, split/concat, scatter into zeros, sum over copies).

use super::{Backward, Ctx, RResult};
use crate::relevance::tensor::{apply_along_axis, gather_matrix, norm_axis, reshape, T};
use ndarray::{Axis, IxDyn, Slice};

/// Reshape, Flatten, Squeeze, Unsqueeze: reshape back to the input's shape.
pub fn reshape_back(c: &Ctx, r: T) -> RResult<Backward> {
    let shape = c.in_shape(0)?;
    Ok(Backward::single(
        c.node.inputs.len(),
        0,
        reshape(r, &shape)?,
    ))
}

/// Transpose: the inverse permutation.
pub fn transpose(c: &Ctx, r: T) -> RResult<Backward> {
    let rank = r.ndim();
    let perm: Vec<usize> = match c.attr_ints("perm") {
        Some(p) => p
            .iter()
            .map(|&a| norm_axis(a, rank))
            .collect::<Result<_, _>>()?,
        None => (0..rank).rev().collect(),
    };
    if perm.len() != rank {
        return Err("perm does not match the rank".into());
    }
    let mut inv = vec![0usize; rank];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    let back = r
        .view()
        .permuted_axes(IxDyn(&inv))
        .as_standard_layout()
        .into_owned();
    Ok(Backward::single(1, 0, back))
}

/// Concat: each input gets its slice of R.
pub fn concat(c: &Ctx, r: T) -> RResult<Backward> {
    let axis = norm_axis(c.attr_int("axis", 0), r.ndim())?;
    let n_in = c.node.inputs.len();
    let mut out = Backward {
        inputs: vec![None; n_in],
        weight_rel: 0.0,
    };
    let mut at = 0usize;
    for i in 0..n_in {
        if !c.has_input(i) {
            continue;
        }
        let len = c.in_shape(i)?.get(axis).copied().unwrap_or(0);
        if c.carries(i) {
            let part = r
                .slice_axis(Axis(axis), Slice::from(at..at + len))
                .to_owned();
            out.inputs[i] = Some(part);
        }
        at += len;
    }
    Ok(out)
}

/// Split: the outputs' relevances concatenated (outputs without relevance give zeros).
pub fn split(c: &Ctx, rel: &[Option<T>]) -> RResult<Backward> {
    let in_shape = c.in_shape(0)?;
    let axis = norm_axis(c.attr_int("axis", 0), in_shape.len())?;
    let mut parts = Vec::new();
    for (i, o) in c.node.outputs.iter().enumerate() {
        if o.is_empty() {
            continue;
        }
        let shape = c.out_shape(i)?;
        parts.push(match rel.get(i).and_then(|r| r.clone()) {
            Some(r) => reshape(r, &shape)?,
            None => T::zeros(IxDyn(&shape)),
        });
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    let joined = ndarray::concatenate(Axis(axis), &views).map_err(|e| e.to_string())?;
    let joined = reshape(joined, &in_shape)?;
    Ok(Backward::single(c.node.inputs.len(), 0, joined))
}

/// Slice: scatter R into zeros at the sliced positions.
pub fn slice(c: &Ctx, r: T) -> RResult<Backward> {
    let n_in = c.node.inputs.len();
    let xs = c.in_shape(0)?;
    let ys = c.out_shape(0)?;
    let rank = xs.len();
    let (starts, axes, steps) = if c.opset >= 10 {
        let starts = c.ints(1)?;
        let axes = if c.has_input(3) {
            c.ints(3)?
        } else {
            (0..starts.len() as i64).collect()
        };
        let steps = if c.has_input(4) {
            c.ints(4)?
        } else {
            vec![1; starts.len()]
        };
        (starts, axes, steps)
    } else {
        let starts = c.attr_ints("starts").ok_or("starts is missing")?;
        let axes = c
            .attr_ints("axes")
            .unwrap_or_else(|| (0..starts.len() as i64).collect());
        let n = starts.len();
        (starts, axes, vec![1; n])
    };
    let mut r = reshape(r, &ys)?;
    for (j, &a) in axes.iter().enumerate() {
        let a = norm_axis(a, rank)?;
        let dim = xs[a] as i64;
        if dim == 0 {
            continue;
        }
        let step = *steps.get(j).unwrap_or(&1);
        if step == 0 {
            return Err("Slice step 0".into());
        }
        let mut st = *starts.get(j).ok_or("starts is shorter than axes")?;
        if st < 0 {
            st += dim;
        }
        st = if step > 0 {
            st.clamp(0, dim)
        } else {
            st.clamp(0, dim - 1)
        };
        let map: Vec<Option<usize>> = (0..ys[a] as i64)
            .map(|i| {
                let src = st + i * step;
                (src >= 0 && src < dim).then_some(src as usize)
            })
            .collect();
        let m = gather_matrix(&map, xs[a]);
        r = apply_along_axis(&r, a, &m.t().to_owned())?;
    }
    Ok(Backward::single(n_in, 0, r))
}

/// Gather: scatter-add R back to the data rows it read; for constant data with carrying
/// indices (embeddings), each index gets the sum of its gathered slice.
pub fn gather(c: &Ctx, r: T) -> RResult<Backward> {
    let xs = c.in_shape(0)?;
    let rank = xs.len();
    let axis = norm_axis(c.attr_int("axis", 0), rank)?;
    let idx = c.ints(1)?;
    let idx_shape = c.in_shape(1)?;
    let pre: usize = xs[..axis].iter().product();
    let post: usize = xs[axis + 1..].iter().product();
    let nidx = idx.len();
    let r3 = reshape(r, &[pre, nidx, post])?;
    let mut out = Backward {
        inputs: vec![None; 2],
        weight_rel: 0.0,
    };
    if c.carries(0) {
        let dim = xs[axis] as i64;
        let map: Vec<Option<usize>> = idx
            .iter()
            .map(|&i| {
                let i = if i < 0 { i + dim } else { i };
                (0..dim).contains(&i).then_some(i as usize)
            })
            .collect();
        let m = gather_matrix(&map, xs[axis]);
        let back = apply_along_axis(&r3, 1, &m.t().to_owned())?;
        out.inputs[0] = Some(reshape(back, &xs)?);
    }
    if c.carries(1) {
        let per = r3.sum_axis(Axis(2)).sum_axis(Axis(0));
        out.inputs[1] = Some(reshape(per, &idx_shape)?);
    }
    Ok(out)
}

/// Tile: sum over the copies.
pub fn tile(c: &Ctx, r: T) -> RResult<Backward> {
    let xs = c.in_shape(0)?;
    let ys = c.out_shape(0)?;
    let mut r = reshape(r, &ys)?;
    for (a, (&x, &y)) in xs.iter().zip(&ys).enumerate() {
        if x != y && x > 0 {
            let map: Vec<Option<usize>> = (0..y).map(|i| Some(i % x)).collect();
            r = apply_along_axis(&r, a, &gather_matrix(&map, x).t().to_owned())?;
        }
    }
    Ok(Backward::single(c.node.inputs.len(), 0, r))
}

/// Pad (constant, edge, reflect, wrap): the adjoint of the per-axis index map.
pub fn pad(c: &Ctx, r: T) -> RResult<Backward> {
    let xs = c.in_shape(0)?;
    let ys = c.out_shape(0)?;
    let rank = xs.len();
    let pads: Vec<i64> = if c.opset >= 11 {
        c.ints(1)?
    } else {
        c.attr_ints("pads")
            .or_else(|| c.attr_ints("paddings"))
            .ok_or("pads is missing")?
    };
    let axes: Vec<usize> = if c.opset >= 18 && c.has_input(3) {
        c.ints(3)?
            .iter()
            .map(|&a| norm_axis(a, rank))
            .collect::<Result<_, _>>()?
    } else {
        (0..rank).collect()
    };
    if pads.len() != 2 * axes.len() {
        return Err("pads has the wrong length".into());
    }
    let mode = c.attr_str("mode", "constant");
    let mut r = reshape(r, &ys)?;
    for (j, &a) in axes.iter().enumerate() {
        let begin = pads[j];
        let n = xs[a] as i64;
        if n == 0 {
            continue;
        }
        let map: Vec<Option<usize>> = (0..ys[a] as i64)
            .map(|o| {
                let i = o - begin;
                let src = match mode.as_str() {
                    "edge" => i.clamp(0, n - 1),
                    "wrap" => i.rem_euclid(n),
                    "reflect" => {
                        if n == 1 {
                            0
                        } else {
                            let period = 2 * (n - 1);
                            let m = i.rem_euclid(period);
                            if m < n {
                                m
                            } else {
                                period - m
                            }
                        }
                    }
                    _ => i,
                };
                (0..n).contains(&src).then_some(src as usize)
            })
            .collect();
        r = apply_along_axis(&r, a, &gather_matrix(&map, xs[a]).t().to_owned())?;
    }
    Ok(Backward::single(c.node.inputs.len(), 0, r))
}

/// DepthToSpace / SpaceToDepth: undo the reshape–transpose–reshape.
pub fn depth_space(c: &Ctx, r: T) -> RResult<Backward> {
    let xs = c.in_shape(0)?;
    if xs.len() != 4 {
        return Err("DepthToSpace/SpaceToDepth need a 4-D input".into());
    }
    let b = c.attr_int("blocksize", 1).max(1) as usize;
    let (n, ch, h, w) = (xs[0], xs[1], xs[2], xs[3]);
    let (mid, perm): (Vec<usize>, Vec<usize>) = if c.node.op_type == "DepthToSpace" {
        if c.attr_str("mode", "DCR") == "CRD" {
            (vec![n, ch / (b * b), b, b, h, w], vec![0, 1, 4, 2, 5, 3])
        } else {
            (vec![n, b, b, ch / (b * b), h, w], vec![0, 3, 4, 1, 5, 2])
        }
    } else {
        (vec![n, ch, h / b, b, w / b, b], vec![0, 3, 5, 1, 2, 4])
    };
    // Forward: x.reshape(mid).permute(perm).reshape(y). Back: reshape R to the permuted
    // shape, apply the inverse permutation, reshape to x.
    let permuted: Vec<usize> = perm.iter().map(|&p| mid[p]).collect();
    let rp = reshape(r, &permuted)?;
    let mut inv = vec![0usize; 6];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    let back = rp
        .view()
        .permuted_axes(IxDyn(&inv))
        .as_standard_layout()
        .into_owned();
    Ok(Backward::single(1, 0, reshape(back, &xs)?))
}
