//! Small tensor helpers for the relevance rules: the stabilized division, broadcasting and
//! un-broadcasting, batched matrix products, and linear maps applied along one axis.

use ndarray::{Array2, ArrayD, Axis, IxDyn};

/// A dense f64 tensor of any rank.
pub type T = ArrayD<f64>;

/// Errors of the tensor helpers: shapes that do not fit.
pub type TResult<X> = std::result::Result<X, String>;

/// z + ε·sign(z) with sign(0) = +1 (the zennit / DynamicLRP convention).
pub fn stab(z: f64, eps: f64) -> f64 {
    if z >= 0.0 {
        z + eps
    } else {
        z - eps
    }
}

/// r / stab(z, eps) for one element; a zero denominator gives 0.
#[inline]
pub fn stab_div(r: f64, z: f64, eps: f64) -> f64 {
    let d = stab(z, eps);
    if d == 0.0 {
        0.0
    } else {
        r / d
    }
}

/// Σ f(v) over all elements. A contiguous tensor is summed in 8 independent lanes, which
/// vectorizes (a sequential float sum cannot be reordered by the compiler, so it runs at
/// one add per FP-latency); the result differs from a sequential sum by rounding only and
/// is the same on every run.
pub fn sum_map(a: &T, f: impl Fn(f64) -> f64) -> f64 {
    match a.as_slice() {
        Some(xs) => lanes_sum(xs, f),
        None => a.iter().map(|&v| f(v)).sum(),
    }
}

/// Σ f(v) over a slice of f64 or f32 values (widened to f64) in 8 lanes (see [`sum_map`]).
pub fn lanes_sum<V: Copy + Into<f64>>(xs: &[V], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v.into());
        }
    }
    acc.iter().sum::<f64>() + rest.iter().map(|&v| f(v.into())).sum::<f64>()
}

/// Σ f(aᵢ, bᵢ) over two slices of one length in 8 lanes of their own type, so the loop
/// vectorizes (dot products, Σ|aᵢ·bᵢ|).
#[inline]
pub fn lanes_zip_sum<F: ndarray::LinalgScalar>(a: &[F], b: &[F], f: impl Fn(F, F) -> F) -> F {
    let mut acc = [F::zero(); 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, &p), &q) in acc.iter_mut().zip(x).zip(y) {
            *s = *s + f(p, q);
        }
    }
    let tail = ra.iter().zip(rb).fold(F::zero(), |s, (&p, &q)| s + f(p, q));
    acc.iter().fold(tail, |s, &v| s + v)
}

/// (Σ|v|, Σv) in one pass, each in 8 lanes (see [`sum_map`]).
pub fn abs_and_plain_sum(a: &T) -> (f64, f64) {
    let Some(xs) = a.as_slice() else {
        return (abs_sum(a), a.sum());
    };
    let (mut acc, mut pl) = ([0.0f64; 8], [0.0f64; 8]);
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for ((a, p), &v) in acc.iter_mut().zip(pl.iter_mut()).zip(c) {
            *a += v.abs();
            *p += v;
        }
    }
    (
        acc.iter().sum::<f64>() + rest.iter().map(|v| v.abs()).sum::<f64>(),
        pl.iter().sum::<f64>() + rest.iter().sum::<f64>(),
    )
}

/// Population standard deviation of all elements (0 for an empty tensor).
pub fn std_dev(a: &T) -> f64 {
    let a = a.as_standard_layout();
    a.as_slice().map_or(0.0, std_dev_of)
}

/// Population standard deviation of f64 or f32 values, summed in f64 (0 when empty).
pub fn std_dev_of<V: Copy + Into<f64>>(xs: &[V]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let n = xs.len() as f64;
    let mean = lanes_sum(xs, |v| v) / n;
    (lanes_sum(xs, |v| (v - mean) * (v - mean)) / n).sqrt()
}

/// The stabilizer of a layer with pre-activations `z`: `abs + rel · std(z)`.
pub fn layer_eps(z: &T, abs: f64, rel: f64) -> f64 {
    if rel > 0.0 {
        abs + rel * std_dev(z)
    } else {
        abs
    }
}

/// [`layer_eps`] of pre-activations given as a slice (f64, or f32 as recorded).
pub fn layer_eps_of<V: Copy + Into<f64>>(z: &[V], abs: f64, rel: f64) -> f64 {
    if rel > 0.0 {
        abs + rel * std_dev_of(z)
    } else {
        abs
    }
}

/// r / stab(z, eps), elementwise with broadcasting; a zero denominator gives 0.
pub fn div_stab(r: &T, z: &T, eps: f64) -> TResult<T> {
    let shape = broadcast_shape(&[r.shape(), z.shape()])?;
    let r = broadcast_to(r, &shape)?;
    let z = broadcast_to(z, &shape)?;
    let mut out = r;
    ndarray::Zip::from(&mut out)
        .and(&z)
        .for_each(|o, &zv| *o = stab_div(*o, zv, eps));
    Ok(out)
}

/// The numpy broadcast of several shapes.
pub fn broadcast_shape(shapes: &[&[usize]]) -> TResult<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        let off = rank - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[off + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(format!("shapes {shapes:?} do not broadcast"));
            }
        }
    }
    Ok(out)
}

/// `a` broadcast to `shape`, as an owned standard-layout array.
pub fn broadcast_to(a: &T, shape: &[usize]) -> TResult<T> {
    if a.shape() == shape {
        return Ok(a.clone());
    }
    let err = || format!("cannot broadcast {:?} to {shape:?}", a.shape());
    if a.ndim() > shape.len() {
        return Err(err());
    }
    let mut src_shape = vec![1usize; shape.len() - a.ndim()];
    src_shape.extend_from_slice(a.shape());
    if src_shape.iter().zip(shape).any(|(&s, &d)| s != d && s != 1) {
        return Err(err());
    }
    // ndarray's broadcast-then-copy walks IxDyn indices element by element (slow on large
    // activations); this copies whole rows instead.
    let a = a.as_standard_layout();
    let src = a.as_slice().ok_or_else(err)?;
    let mut out = Vec::with_capacity(shape.iter().product());
    broadcast_rows(src, &src_shape, shape, &mut out);
    T::from_shape_vec(IxDyn(shape), out).map_err(|e| e.to_string())
}

/// Appends `src` (standard layout, shape `from`, same rank as `to`) broadcast to `to`.
fn broadcast_rows(src: &[f64], from: &[usize], to: &[usize], out: &mut Vec<f64>) {
    match (from, to) {
        ([], []) => out.extend_from_slice(&src[..1.min(src.len())]),
        ([f], [t]) => {
            if f == t {
                out.extend_from_slice(&src[..*f]);
            } else {
                out.extend(std::iter::repeat_n(src[0], *t));
            }
        }
        ([f, fr @ ..], [t, tr @ ..]) => {
            let block: usize = fr.iter().product();
            let start = out.len();
            if f == t {
                for i in 0..*f {
                    broadcast_rows(&src[i * block..(i + 1) * block], fr, tr, out);
                }
            } else {
                broadcast_rows(&src[..block], fr, tr, out);
                let len = out.len() - start;
                for _ in 1..*t {
                    out.extend_from_within(start..start + len);
                }
            }
        }
        _ => {}
    }
}

/// Sums `r` over the axes along which an operand of `shape` was broadcast to `r`'s shape,
/// so the result has exactly `shape` (the adjoint of broadcasting).
pub fn unbroadcast(r: T, shape: &[usize]) -> TResult<T> {
    if r.shape() == shape {
        return Ok(r);
    }
    if r.ndim() < shape.len() {
        return Err(format!(
            "relevance of shape {:?} cannot be un-broadcast to {shape:?}",
            r.shape()
        ));
    }
    let mut r = r;
    while r.ndim() > shape.len() {
        r = r.sum_axis(Axis(0));
    }
    for (i, &d) in shape.iter().enumerate() {
        if r.shape()[i] != d {
            if d == 1 {
                r = r.sum_axis(Axis(i)).insert_axis(Axis(i));
            } else {
                return Err(format!(
                    "relevance of shape {:?} cannot be un-broadcast to {shape:?}",
                    r.shape()
                ));
            }
        }
    }
    Ok(r)
}

/// Reshapes (row-major) to `shape`; the element counts must agree.
pub fn reshape(a: T, shape: &[usize]) -> TResult<T> {
    let from = a.shape().to_vec();
    let a = if a.is_standard_layout() {
        a
    } else {
        a.as_standard_layout().into_owned()
    };
    a.into_shape_with_order(IxDyn(shape))
        .map_err(|e| format!("cannot reshape {from:?} to {shape:?}: {e}"))
}

/// Elementwise max(x, 0).
pub fn pos(a: &T) -> T {
    a.mapv(|v| v.max(0.0))
}

/// Elementwise min(x, 0).
pub fn neg(a: &T) -> T {
    a.mapv(|v| v.min(0.0))
}

/// Sum of |x|.
pub fn abs_sum(a: &T) -> f64 {
    sum_map(a, f64::abs)
}

/// Swaps the last two axes (a matrix transpose for each batch entry).
pub fn t_last2(a: &T) -> T {
    let n = a.ndim();
    let mut v = a.view();
    v.swap_axes(n - 2, n - 1);
    v.as_standard_layout().into_owned()
}

/// numpy `matmul` of operands of rank ≥ 2 with broadcast batch dims.
pub fn matmul(a: &T, b: &T) -> TResult<T> {
    if a.ndim() < 2 || b.ndim() < 2 {
        return Err("matmul operands must have rank 2 or more here".into());
    }
    let (m, k) = (a.shape()[a.ndim() - 2], a.shape()[a.ndim() - 1]);
    let (k2, n) = (b.shape()[b.ndim() - 2], b.shape()[b.ndim() - 1]);
    if k != k2 {
        return Err(format!(
            "matmul of {:?} and {:?}: inner dims differ",
            a.shape(),
            b.shape()
        ));
    }
    let batch = broadcast_shape(&[&a.shape()[..a.ndim() - 2], &b.shape()[..b.ndim() - 2]])?;
    let nb: usize = batch.iter().product();
    let mut sa = batch.clone();
    sa.extend([m, k]);
    let mut sb = batch.clone();
    sb.extend([k, n]);
    let a3 = reshape(broadcast_to(a, &sa)?, &[nb, m, k])?;
    let b3 = reshape(broadcast_to(b, &sb)?, &[nb, k, n])?;
    let mut out = ndarray::Array3::<f64>::zeros((nb, m, n));
    for i in 0..nb {
        let a2 = a3.index_axis(Axis(0), i);
        let b2 = b3.index_axis(Axis(0), i);
        let a2 = a2
            .into_dimensionality::<ndarray::Ix2>()
            .map_err(|e| e.to_string())?;
        let b2 = b2
            .into_dimensionality::<ndarray::Ix2>()
            .map_err(|e| e.to_string())?;
        out.index_axis_mut(Axis(0), i).assign(&a2.dot(&b2));
    }
    let mut so = batch;
    so.extend([m, n]);
    reshape(out.into_dyn(), &so)
}

/// Applies the matrix `m` (out_len × in_len) along `axis`:
/// result[…, o, …] = Σ_i m[o, i] · a[…, i, …].
pub fn apply_along_axis(a: &T, axis: usize, m: &Array2<f64>) -> TResult<T> {
    let len = a.shape()[axis];
    if m.ncols() != len {
        return Err(format!(
            "axis {axis} has length {len}, the map expects {}",
            m.ncols()
        ));
    }
    let rank = a.ndim();
    let mut perm: Vec<usize> = (0..rank).filter(|&i| i != axis).collect();
    perm.push(axis);
    let moved = a.view().permuted_axes(IxDyn(&perm));
    let moved = moved.as_standard_layout().into_owned();
    let rest: Vec<usize> = perm[..rank - 1].iter().map(|&i| a.shape()[i]).collect();
    let lanes: usize = rest.iter().product();
    let flat = reshape(moved, &[lanes, len])?
        .into_dimensionality::<ndarray::Ix2>()
        .map_err(|e| e.to_string())?;
    let res = flat.dot(&m.t());
    let mut shape = rest;
    shape.push(m.nrows());
    let res = reshape(res.into_dyn(), &shape)?;
    let mut inv = vec![0usize; rank];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    Ok(res
        .view()
        .permuted_axes(IxDyn(&inv))
        .as_standard_layout()
        .into_owned())
}

/// For an output index → input index map along one axis (`None` = no source), the 0/1
/// matrix (out_len × in_len) of the gather.
pub fn gather_matrix(map: &[Option<usize>], in_len: usize) -> Array2<f64> {
    let mut m = Array2::<f64>::zeros((map.len(), in_len));
    for (o, src) in map.iter().enumerate() {
        if let Some(i) = src {
            if *i < in_len {
                m[[o, *i]] += 1.0;
            }
        }
    }
    m
}

/// Normalizes a possibly negative axis against `rank`.
pub fn norm_axis(axis: i64, rank: usize) -> TResult<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a as usize >= rank.max(1) {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(a as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn unbroadcast_sums_broadcast_axes() {
        let r = ArrayD::from_shape_vec(IxDyn(&[2, 3]), (0..6).map(|v| v as f64).collect()).unwrap();
        let u = unbroadcast(r.clone(), &[1, 3]).unwrap();
        assert_eq!(u.into_raw_vec_and_offset().0, vec![3.0, 5.0, 7.0]);
        let u = unbroadcast(r.clone(), &[3]).unwrap();
        assert_eq!(u.shape(), &[3]);
        let u = unbroadcast(r.clone(), &[2, 1]).unwrap();
        assert_eq!(u.into_raw_vec_and_offset().0, vec![3.0, 12.0]);
        assert!(unbroadcast(r, &[2, 2]).is_err());
    }

    #[test]
    fn broadcast_matches_ndarray() {
        let a =
            ArrayD::from_shape_vec(IxDyn(&[2, 1, 3]), (0..6).map(|v| v as f64).collect()).unwrap();
        for shape in [&[2, 4, 3][..], &[5, 2, 4, 3], &[2, 1, 3]] {
            let want = a.broadcast(IxDyn(shape)).unwrap().to_owned();
            assert_eq!(broadcast_to(&a, shape).unwrap(), want, "{shape:?}");
        }
        let s = ArrayD::from_elem(IxDyn(&[]), 7.0);
        assert_eq!(broadcast_to(&s, &[2, 2]).unwrap().sum(), 28.0);
        assert!(broadcast_to(&a, &[2, 4, 4]).is_err());
        assert!(broadcast_to(&a, &[3]).is_err());
    }

    #[test]
    fn stabilizer_sign_of_zero_is_positive() {
        assert_eq!(stab(0.0, 0.5), 0.5);
        assert_eq!(stab(-1.0, 0.5), -1.5);
        assert_eq!(stab(2.0, 0.5), 2.5);
    }

    #[test]
    fn matmul_and_axis_maps() {
        let a = array![[1.0, 2.0], [3.0, 4.0]].into_dyn();
        let b = array![[1.0], [1.0]].into_dyn();
        let c = matmul(&a, &b).unwrap();
        assert_eq!(c.into_raw_vec_and_offset().0, vec![3.0, 7.0]);
        // Reverse along axis 1 with a gather matrix.
        let m = gather_matrix(&[Some(1), Some(0), None], 2);
        let r = apply_along_axis(&a, 1, &m).unwrap();
        assert_eq!(r.shape(), &[2, 3]);
        assert_eq!(
            r.into_raw_vec_and_offset().0,
            vec![2.0, 1.0, 0.0, 4.0, 3.0, 0.0]
        );
    }
}
