//! Conv and ConvTranspose (1-D and 2-D, any padding, stride, dilation and groups) as
//! [`LinearMap`]s through im2col, and BatchNormalization folding.

mod fast;

pub use super::batchnorm::{bn_params, bn_scale_shift, fold_into_conv};
use super::linear::{linear_rule, LinearMap};
use super::{Backward, Ctx, RResult};
use crate::relevance::tensor::{lanes_zip_sum, reshape, T};
use ndarray::{s, Array2, ArrayD, ArrayView2, CowArray, Ix2, IxDyn, LinalgScalar};
use std::borrow::Cow;
use std::ops::AddAssign;

/// A 2-D convolution from space U ([n, cu, hu, wu]) to space V ([n, cv, hv, wv]) with a
/// weight [cv, cu/groups, kh, kw]: V[o] reads U[o·stride − pad + k·dilation].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geom {
    pub n: usize,
    pub cu: usize,
    pub hu: usize,
    pub wu: usize,
    pub cv: usize,
    pub hv: usize,
    pub wv: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub ph: isize,
    pub pw: isize,
    pub groups: usize,
    /// Run the products (not depthwise ones) in f32 through matrixmultiply's sgemm.
    pub fast: bool,
}

/// `a` (standard layout) as f32.
fn to_f32(a: &[f64]) -> Vec<f32> {
    a.iter().map(|&v| v as f32).collect()
}

impl Geom {
    /// Multiply-adds of the convolution.
    pub fn macs(&self) -> usize {
        self.n * self.cv * self.hv * self.wv * self.rows()
    }

    fn cug(&self) -> usize {
        self.cu / self.groups
    }
    fn cvg(&self) -> usize {
        self.cv / self.groups
    }
    fn rows(&self) -> usize {
        self.cug() * self.kh * self.kw
    }
    fn check(&self) -> RResult<()> {
        if self.groups == 0
            || !self.cu.is_multiple_of(self.groups)
            || !self.cv.is_multiple_of(self.groups)
        {
            return Err(format!(
                "channels {} → {} do not split into {} groups",
                self.cu, self.cv, self.groups
            ));
        }
        Ok(())
    }

    /// Source index in U of output position `o` with kernel offset `k` along one axis.
    fn src(o: usize, k: usize, s: usize, d: usize, p: isize, len: usize) -> Option<usize> {
        let i = (o * s + k * d) as isize - p;
        (i >= 0 && (i as usize) < len).then_some(i as usize)
    }

    /// Calls `f(c, row, u, v, len)` for every run of the im2col of one group: column row
    /// `row` (channel `c` of the group, kernel offset ky, kx) at output positions v..v+len
    /// reads channel c's plane at u, u + stride_w, …. The valid output range is computed
    /// once per kernel offset (no per-element bounds checks), so the callers' inner loops
    /// vectorize.
    #[inline(always)]
    fn col_runs(&self, mut f: impl FnMut(usize, usize, usize, usize, usize)) {
        let sw = self.sw as isize;
        for c in 0..self.cug() {
            for ky in 0..self.kh {
                for kx in 0..self.kw {
                    let row = (c * self.kh + ky) * self.kw + kx;
                    // ix = ox·sw + off must lie in [0, wu).
                    let off = (kx * self.dw) as isize - self.pw;
                    let lo = if off >= 0 { 0 } else { (-off + sw - 1) / sw };
                    let hi = ((self.wu as isize - off + sw - 1) / sw).clamp(0, self.wv as isize);
                    if hi <= lo {
                        continue;
                    }
                    let ix0 = (lo * sw + off) as usize;
                    let (lo, len) = (lo as usize, (hi - lo) as usize);
                    for oy in 0..self.hv {
                        if let Some(iy) = Self::src(oy, ky, self.sh, self.dh, self.ph, self.hu) {
                            f(c, row, iy * self.wu + ix0, oy * self.wv + lo, len);
                        }
                    }
                }
            }
        }
    }

    /// A 1×1 convolution with unit stride and no padding: the im2col of a group is the
    /// group's channels of the image as they lie, and col2im is the identity.
    fn pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.ph == 0
            && self.pw == 0
            && self.hu == self.hv
            && self.wu == self.wv
    }

    /// The columns of one image and group: rows (c, ky, kx), columns output positions.
    fn im2col<F: Copy + Default>(&self, img: &[F], grp: usize) -> Array2<F> {
        let (osz, psz, sw) = (self.hv * self.wv, self.hu * self.wu, self.sw);
        let mut col = Array2::<F>::from_elem((self.rows(), osz), F::default());
        let data = col.as_slice_mut().expect("fresh array is contiguous");
        let planes = &img[grp * self.cug() * psz..(grp + 1) * self.cug() * psz];
        self.col_runs(|c, row, u, v, len| {
            let src = &planes[c * psz + u..];
            let dst = &mut data[row * osz + v..row * osz + v + len];
            if sw == 1 {
                dst.copy_from_slice(&src[..len]);
            } else {
                dst.iter_mut()
                    .enumerate()
                    .for_each(|(i, d)| *d = src[i * sw]);
            }
        });
        col
    }

    /// Adds columns back into one image (the adjoint of [`Geom::im2col`]).
    fn col2im<F: Copy + AddAssign>(&self, col: &Array2<F>, grp: usize, img: &mut [F]) {
        let (osz, psz, sw) = (self.hv * self.wv, self.hu * self.wu, self.sw);
        let col = col.as_standard_layout();
        let data = col.as_slice().expect("standard layout is contiguous");
        let planes = &mut img[grp * self.cug() * psz..(grp + 1) * self.cug() * psz];
        self.col_runs(|c, row, u, v, len| {
            let src = &data[row * osz + v..row * osz + v + len];
            let dst = &mut planes[c * psz + u..];
            if sw == 1 {
                dst[..len].iter_mut().zip(src).for_each(|(d, &x)| *d += x);
            } else {
                src.iter().enumerate().for_each(|(i, &x)| dst[i * sw] += x);
            }
        });
    }

    fn weight_group_f32(&self, w: &T, grp: usize) -> RResult<Array2<f32>> {
        self.with_weight_group(w, grp, |g| g.mapv(|v| v as f32))
    }

    fn weight_group(&self, w: &T, grp: usize) -> RResult<Array2<f64>> {
        self.with_weight_group(w, grp, |g| g.to_owned())
    }

    /// `f` of group `grp`'s [cv/groups, rows] block of the weight, without copying it first.
    fn with_weight_group<R>(
        &self,
        w: &T,
        grp: usize,
        f: impl FnOnce(ArrayView2<f64>) -> R,
    ) -> RResult<R> {
        let w = w.as_standard_layout();
        let flat = w
            .view()
            .into_shape_with_order((self.cv, self.rows()))
            .map_err(|e| format!("weight {:?}: {e}", w.shape()))?;
        Ok(f(
            flat.slice(s![grp * self.cvg()..(grp + 1) * self.cvg(), ..])
        ))
    }

    /// One input and one output channel per group: direct loops beat a GEMM per channel.
    fn depthwise(&self) -> bool {
        self.cug() == 1 && self.cvg() == 1
    }

    /// Calls `f(u0, v0, k, len)` for every run of a depthwise convolution's multiplies
    /// along one output row: V[v0 + i] reads U[u0 + i·stride_w] with weight k, for
    /// i < len. The valid output range is computed once per row (no per-element bounds
    /// checks), so the callers' inner loops vectorize.
    #[inline(always)]
    fn depthwise_rows(&self, mut f: impl FnMut(usize, usize, usize, usize)) {
        let sw = self.sw as isize;
        for n in 0..self.n {
            for ch in 0..self.cu {
                let ub = (n * self.cu + ch) * self.hu * self.wu;
                let vb = (n * self.cv + ch) * self.hv * self.wv;
                for ky in 0..self.kh {
                    for kx in 0..self.kw {
                        let k = (ch * self.kh + ky) * self.kw + kx;
                        // ix = ox·sw + off must lie in [0, wu).
                        let off = (kx * self.dw) as isize - self.pw;
                        let lo = if off >= 0 { 0 } else { (-off + sw - 1) / sw };
                        let hi =
                            ((self.wu as isize - off + sw - 1) / sw).clamp(0, self.wv as isize);
                        if hi <= lo {
                            continue;
                        }
                        let (lo, hi) = (lo as usize, hi as usize);
                        for oy in 0..self.hv {
                            let Some(iy) = Self::src(oy, ky, self.sh, self.dh, self.ph, self.hu)
                            else {
                                continue;
                            };
                            let ix0 = (lo as isize * sw + off) as usize;
                            f(ub + iy * self.wu + ix0, vb + oy * self.wv + lo, k, hi - lo);
                        }
                    }
                }
            }
        }
    }

    /// A depthwise convolution U → V on flat standard-layout slices, in any element type.
    fn dw_fwd<F: LinalgScalar>(&self, xs: &[F], ws: &[F]) -> Vec<F> {
        let mut out = vec![F::zero(); self.n * self.cv * self.hv * self.wv];
        let sw = self.sw;
        self.depthwise_rows(|u, v, k, len| {
            let wk = ws[k];
            let dst = &mut out[v..v + len];
            if sw == 1 {
                dst.iter_mut()
                    .zip(&xs[u..u + len])
                    .for_each(|(o, &x)| *o = *o + wk * x);
            } else {
                for (i, o) in dst.iter_mut().enumerate() {
                    *o = *o + wk * xs[u + i * sw];
                }
            }
        });
        out
    }

    /// The adjoint of [`Geom::dw_fwd`] in its input.
    fn dw_adj_x<F: LinalgScalar>(&self, ss: &[F], ws: &[F]) -> Vec<F> {
        let mut out = vec![F::zero(); self.n * self.cu * self.hu * self.wu];
        let sw = self.sw;
        self.depthwise_rows(|u, v, k, len| {
            let wk = ws[k];
            let src = &ss[v..v + len];
            if sw == 1 {
                out[u..u + len]
                    .iter_mut()
                    .zip(src)
                    .for_each(|(o, &s)| *o = *o + wk * s);
            } else {
                for (i, &s) in src.iter().enumerate() {
                    out[u + i * sw] = out[u + i * sw] + wk * s;
                }
            }
        });
        out
    }

    /// The products of a depthwise convolution's backward pass in one traversal: Lᵀs with
    /// weights `wa`; with `sg` = (σ, wb) also Lᵀσ with weights `wb`, added into the first
    /// image when `sum` (the second is then empty); and the weight gradient Σ s·x per tap,
    /// in f64.
    fn dw_backward(
        &self,
        xs: &[f32],
        ss: &[f32],
        wa: &[f32],
        sg: Option<(&[f32], &[f32])>,
        sum: bool,
    ) -> (Vec<f32>, Vec<f32>, Vec<f64>) {
        let len_u = self.n * self.cu * self.hu * self.wu;
        let mut oa = vec![0f32; len_u];
        let two = sg.is_some() && !sum;
        let mut ob = if two { vec![0f32; len_u] } else { Vec::new() };
        let mut gw = vec![0.0; self.cv * self.kh * self.kw];
        let sw = self.sw;
        self.depthwise_rows(|u, v, k, len| {
            let s1 = &ss[v..v + len];
            let ka = wa[k];
            let dot = if sw == 1 {
                let xr = &xs[u..u + len];
                match sg {
                    None => oa[u..u + len]
                        .iter_mut()
                        .zip(s1)
                        .for_each(|(o, &x)| *o += ka * x),
                    Some((sg, wb)) => {
                        let (s2, kb) = (&sg[v..v + len], wb[k]);
                        if two {
                            oa[u..u + len]
                                .iter_mut()
                                .zip(ob[u..u + len].iter_mut())
                                .zip(s1.iter().zip(s2))
                                .for_each(|((a, b), (&x, &y))| {
                                    *a += ka * x;
                                    *b += kb * y;
                                });
                        } else {
                            oa[u..u + len]
                                .iter_mut()
                                .zip(s1.iter().zip(s2))
                                .for_each(|(o, (&x, &y))| *o += ka * x + kb * y);
                        }
                    }
                }
                lanes_zip_sum(s1, xr, |p, q| p * q)
            } else {
                let mut dot = 0f32;
                for (i, &x) in s1.iter().enumerate() {
                    let ui = u + i * sw;
                    oa[ui] += ka * x;
                    if let Some((sg, wb)) = sg {
                        let y = wb[k] * sg[v + i];
                        if two {
                            ob[ui] += y;
                        } else {
                            oa[ui] += y;
                        }
                    }
                    dot += x * xs[ui];
                }
                dot
            };
            gw[k] += f64::from(dot);
        });
        (oa, ob, gw)
    }

    /// The adjoint of [`Geom::dw_fwd`] in its weight, summed in f64.
    fn dw_adj_w<F: LinalgScalar + Into<f64>>(&self, xs: &[F], ss: &[F]) -> Vec<f64> {
        let mut gw = vec![0.0; self.cv * self.kh * self.kw];
        let sw = self.sw;
        self.depthwise_rows(|u, v, k, len| {
            let src = &ss[v..v + len];
            let dot = if sw == 1 {
                lanes_zip_sum(src, &xs[u..u + len], |p, q| p * q)
            } else {
                src.iter()
                    .enumerate()
                    .fold(F::zero(), |a, (i, &s)| a + s * xs[u + i * sw])
            };
            gw[k] += dot.into();
        });
        gw
    }

    /// U → V.
    pub fn conv(&self, x: &T, w: &T) -> RResult<T> {
        self.check()?;
        if self.depthwise() {
            let (x, w) = (x.as_standard_layout(), w.as_standard_layout());
            let (xs, ws) = (x.as_slice().ok_or("input")?, w.as_slice().ok_or("weight")?);
            let out = self.dw_fwd(xs, ws);
            return ArrayD::from_shape_vec(IxDyn(&[self.n, self.cv, self.hv, self.wv]), out)
                .map_err(|e| e.to_string());
        }
        let x = x.as_standard_layout();
        let xs = x.as_slice().ok_or("input is not contiguous")?;
        let img = self.cu * self.hu * self.wu;
        let mut out = ArrayD::<f64>::zeros(IxDyn(&[self.n, self.cv, self.hv, self.wv]));
        let osz = self.hv * self.wv;
        let os = out.as_slice_mut().ok_or("output is not contiguous")?;
        let xs32 = if self.fast { to_f32(xs) } else { Vec::new() };
        for n in 0..self.n {
            for grp in 0..self.groups {
                let base = (n * self.cv + grp * self.cvg()) * osz;
                let dst = &mut os[base..base + self.cvg() * osz];
                if self.fast {
                    let col = self.im2col(&xs32[n * img..(n + 1) * img], grp);
                    let y = self.weight_group_f32(w, grp)?.dot(&col);
                    let y = y.as_standard_layout();
                    let ys = y.as_slice().ok_or("product is not contiguous")?;
                    dst.iter_mut().zip(ys).for_each(|(d, &v)| *d = v as f64);
                } else {
                    let col = self.im2col(&xs[n * img..(n + 1) * img], grp);
                    let y = self.weight_group(w, grp)?.dot(&col);
                    let y = y.as_standard_layout();
                    dst.copy_from_slice(y.as_slice().ok_or("product is not contiguous")?);
                }
            }
        }
        Ok(out)
    }

    /// V → U: the adjoint of [`Geom::conv`] in its input.
    pub fn conv_adj_x(&self, s: &T, w: &T) -> RResult<T> {
        self.check()?;
        if self.depthwise() {
            let (s, w) = (s.as_standard_layout(), w.as_standard_layout());
            let (ss, ws) = (
                s.as_slice().ok_or("relevance")?,
                w.as_slice().ok_or("weight")?,
            );
            let out = self.dw_adj_x(ss, ws);
            return ArrayD::from_shape_vec(IxDyn(&[self.n, self.cu, self.hu, self.wu]), out)
                .map_err(|e| e.to_string());
        }
        let s = s.as_standard_layout();
        let ss = s.as_slice().ok_or("relevance is not contiguous")?;
        let out: Vec<f64> = if self.fast {
            self.adj_x_gemm(&to_f32(ss), |grp| {
                self.weight_group_f32(w, grp).map(CowArray::from)
            })?
            .into_iter()
            .map(f64::from)
            .collect()
        } else {
            self.adj_x_gemm(ss, |grp| self.weight_group(w, grp).map(CowArray::from))?
        };
        ArrayD::from_shape_vec(IxDyn(&[self.n, self.cu, self.hu, self.wu]), out)
            .map_err(|e| e.to_string())
    }

    /// The relevance of image `n`, group `grp` as a [cv/groups, hv·wv] matrix.
    fn group_rows<'a, F>(&self, ss: &'a [F], n: usize, grp: usize) -> RResult<ArrayView2<'a, F>> {
        let osz = self.hv * self.wv;
        let base = (n * self.cv + grp * self.cvg()) * osz;
        ArrayView2::from_shape((self.cvg(), osz), &ss[base..base + self.cvg() * osz])
            .map_err(|e| e.to_string())
    }

    /// col2im(W_gᵀ·s_g) summed over images and groups, in one element type: f32 for the
    /// fast path, f64 for the exact one.
    fn adj_x_gemm<'w, F: LinalgScalar + AddAssign>(
        &self,
        ss: &[F],
        weight: impl Fn(usize) -> RResult<CowArray<'w, F, Ix2>>,
    ) -> RResult<Vec<F>> {
        let img = self.cu * self.hu * self.wu;
        let mut out = vec![F::zero(); self.n * img];
        for n in 0..self.n {
            for grp in 0..self.groups {
                let cols = weight(grp)?.t().dot(&self.group_rows(ss, n, grp)?);
                self.col2im(&cols, grp, &mut out[n * img..(n + 1) * img]);
            }
        }
        Ok(out)
    }

    /// Hands s_g·col_gᵀ of every image and group to `add`, in one element type; `col(n,
    /// grp)` gives the im2col of image n, group grp.
    fn adj_w_gemm<'c, F: LinalgScalar + Default>(
        &self,
        col: impl Fn(usize, usize) -> CowArray<'c, F, Ix2>,
        ss: &[F],
        mut add: impl FnMut(usize, Array2<F>),
    ) -> RResult<()> {
        for n in 0..self.n {
            for grp in 0..self.groups {
                add(grp, self.group_rows(ss, n, grp)?.dot(&col(n, grp).t()));
            }
        }
        Ok(())
    }

    /// Adds one group's f32 weight gradient into the f64 sum over images.
    fn add_weight_group(&self, gw: &mut Array2<f64>, grp: usize, g: &Array2<f32>) {
        let cvg = self.cvg();
        let mut dst = gw.slice_mut(s![grp * cvg..(grp + 1) * cvg, ..]);
        dst.zip_mut_with(g, |d, &v| *d += f64::from(v));
    }

    /// The adjoint of [`Geom::conv`] in its weight: Σ_n s·colᵀ.
    pub fn conv_adj_w(&self, x: &T, s: &T) -> RResult<T> {
        self.check()?;
        if self.depthwise() {
            let (x, s) = (x.as_standard_layout(), s.as_standard_layout());
            let (xs, ss) = (
                x.as_slice().ok_or("input")?,
                s.as_slice().ok_or("relevance")?,
            );
            let gw = self.dw_adj_w(xs, ss);
            return ArrayD::from_shape_vec(IxDyn(&[self.cv, 1, self.kh, self.kw]), gw)
                .map_err(|e| e.to_string());
        }
        let x = x.as_standard_layout();
        let xs = x.as_slice().ok_or("input is not contiguous")?;
        let s = s.as_standard_layout();
        let ss = s.as_slice().ok_or("relevance is not contiguous")?;
        let mut gw = Array2::<f64>::zeros((self.cv, self.rows()));
        let cvg = self.cvg();
        let img = self.cu * self.hu * self.wu;
        // Sums over images in f64 in both paths.
        if self.fast {
            let xs = to_f32(xs);
            let col = |n: usize, grp| CowArray::from(self.im2col(&xs[n * img..(n + 1) * img], grp));
            self.adj_w_gemm(col, &to_f32(ss), |grp, g| {
                self.add_weight_group(&mut gw, grp, &g)
            })?;
        } else {
            let col = |n: usize, grp| CowArray::from(self.im2col(&xs[n * img..(n + 1) * img], grp));
            self.adj_w_gemm(col, ss, |grp, g| {
                let mut dst = gw.slice_mut(s![grp * cvg..(grp + 1) * cvg, ..]);
                dst += &g;
            })?;
        }
        self.weight_grad(gw)
    }

    /// [cv, rows] → the weight's shape.
    fn weight_grad(&self, gw: Array2<f64>) -> RResult<T> {
        reshape(gw.into_dyn(), &[self.cv, self.cug(), self.kh, self.kw])
    }
}

/// Conv as a linear map of x.
pub struct ConvMap(pub Geom);

impl LinearMap for ConvMap {
    fn fwd(&self, x: &T, w: &T) -> RResult<T> {
        self.0.conv(x, w)
    }
    fn adj_x(&self, s: &T, w: &T) -> RResult<T> {
        self.0.conv_adj_x(s, w)
    }
    fn adj_w(&self, x: &T, s: &T) -> RResult<T> {
        self.0.conv_adj_w(x, s)
    }
}

/// ConvTranspose as a linear map of x: the adjoint of a Conv from y-space (U) to x-space (V).
pub struct ConvTransposeMap(pub Geom);

impl LinearMap for ConvTransposeMap {
    fn fwd(&self, x: &T, w: &T) -> RResult<T> {
        self.0.conv_adj_x(x, w)
    }
    fn adj_x(&self, s: &T, w: &T) -> RResult<T> {
        self.0.conv(s, w)
    }
    fn adj_w(&self, x: &T, s: &T) -> RResult<T> {
        self.0.conv_adj_w(s, x)
    }
}

/// Begin pads per spatial axis: explicit `pads`, or from `auto_pad`.
fn begin_pads(
    c: &Ctx,
    u: &[usize],
    v: &[usize],
    k: &[usize],
    st: &[usize],
    dl: &[usize],
) -> Vec<isize> {
    let d = k.len();
    if let Some(p) = c.attr_ints("pads") {
        if p.len() >= d {
            return p[..d].iter().map(|&x| x as isize).collect();
        }
    }
    let auto = c.attr_str("auto_pad", "NOTSET");
    (0..d)
        .map(|i| {
            if auto == "SAME_UPPER" || auto == "SAME_LOWER" {
                let need =
                    (v[i].saturating_sub(1) * st[i] + k[i].saturating_sub(1) * dl[i] + 1) as isize;
                let total = (need - u[i] as isize).max(0);
                if auto == "SAME_UPPER" {
                    total / 2
                } else {
                    total - total / 2
                }
            } else {
                0
            }
        })
        .collect()
}

/// The geometry of a Conv (U = x, V = y) or ConvTranspose (U = y, V = x), as 2-D
/// (a 1-D op gets height 1).
fn geometry(c: &Ctx, u: &[usize], v: &[usize], w: &[usize]) -> RResult<Geom> {
    let rank = u.len();
    if !(3..=4).contains(&rank) || v.len() != rank || w.len() != rank {
        return Err(format!(
            "only 1-D and 2-D convolutions are supported (input rank {rank})"
        ));
    }
    let d = rank - 2;
    let k: Vec<usize> = w[2..].to_vec();
    let st = c.spatial_ints("strides", d);
    let dl = c.spatial_ints("dilations", d);
    if st.len() != d || dl.len() != d {
        return Err("strides/dilations do not match the spatial rank".into());
    }
    let p = begin_pads(c, &u[2..], &v[2..], &k, &st, &dl);
    let groups = c.attr_int("group", 1).max(1) as usize;
    let (hu, wu, hv, wv, kh, kw, sh, sw, dh, dw, ph, pw) = if d == 1 {
        (1, u[2], 1, v[2], 1, k[0], 1, st[0], 1, dl[0], 0, p[0])
    } else {
        (
            u[2], u[3], v[2], v[3], k[0], k[1], st[0], st[1], dl[0], dl[1], p[0], p[1],
        )
    };
    Ok(Geom {
        n: u[0],
        cu: u[1],
        hu,
        wu,
        cv: v[1],
        hv,
        wv,
        kh,
        kw,
        sh,
        sw,
        dh,
        dw,
        ph,
        pw,
        groups,
        fast: false,
    })
}

fn to4(a: T) -> RResult<T> {
    if a.ndim() == 3 {
        let s = a.shape().to_vec();
        reshape(a, &[s[0], s[1], 1, s[2]])
    } else {
        Ok(a)
    }
}

/// [`to4`] without copying a weight that is already 4-D.
fn to4_cow(a: Cow<'_, T>) -> RResult<Cow<'_, T>> {
    if a.ndim() == 3 {
        to4(a.into_owned()).map(Cow::Owned)
    } else {
        Ok(a)
    }
}

/// Conv (with a BatchNormalization after it folded in when asked).
pub fn conv(c: &Ctx, r: T) -> RResult<Backward> {
    if let Some(done) = c.weight_layer_guard() {
        return done;
    }
    let n_in = c.node.inputs.len();
    let x_shape = c.in_shape(0)?;
    let mut w = c.input_cow(1)?;
    let mut b = if c.has_input(2) {
        Some(c.input(2)?)
    } else {
        None
    };
    if let Some(bn) = c.fold {
        let (k, sh) = bn_scale_shift(c, bn)?;
        let (w2, b2) = fold_into_conv(&w, b.as_ref(), &k, &sh)?;
        w = Cow::Owned(w2);
        b = Some(b2);
    }
    let y_shape = c.out_shape(0)?;
    let mut g = geometry(c, &x_shape, &y_shape, w.shape())?;
    // Large layers: f32 products, and z from the recorded output (or the folded BN's).
    g.fast = g.macs() >= c.cfg.fast_min_macs;
    // A first layer (reading a model input) may have a rule of its own (z^B); upper
    // layers may have another one than the lower ones.
    let class = match (c.cfg.first_conv, c.cfg.upper_conv, c.conv_depth) {
        (Some(r), _, _) if c.in_name(0).is_some_and(|n| c.graph.is_graph_input(n)) => r,
        (_, Some((f, r)), Some(d)) if d >= f => r,
        _ => c.cfg.conv,
    };
    let rule = c.rule(class);
    if g.fast {
        if let (Some(x), Some(z)) = (c.input_f32(0), c.recorded_z_f32()) {
            let bias = b
                .as_ref()
                .map(|b| b.as_standard_layout().iter().copied().collect());
            let layer = fast::RecordedConv { x, z, w: &w, bias };
            if let Some((rx, rw)) = fast::rule_f32(&g, rule, c.stab(), layer, &r)? {
                let rx = ArrayD::from_shape_vec(IxDyn(&x_shape), rx).map_err(|e| e.to_string())?;
                let mut out = Backward::single(n_in, 0, rx);
                out.weight_rel = rw;
                return Ok(out);
            }
        }
    }
    let x = c.input(0)?;
    let z_known = if g.fast {
        c.recorded_z().map(to4).transpose()?
    } else {
        None
    };
    let xs = x.shape().to_vec();
    let (x4, w4, r4) = (to4(x)?, to4_cow(w)?, to4(r)?);
    let b4 = match b {
        Some(b) => Some(reshape(b, &[1, g.cv, 1, 1])?),
        None => None,
    };
    let (rx, rw) = linear_rule(
        &ConvMap(g),
        rule,
        c.stab(),
        &x4,
        &w4,
        b4.as_ref(),
        &r4,
        z_known,
    )?;
    let mut out = Backward::single(n_in, 0, reshape(rx, &xs)?);
    out.weight_rel = rw;
    Ok(out)
}

/// ConvTranspose.
pub fn conv_transpose(c: &Ctx, r: T) -> RResult<Backward> {
    if let Some(done) = c.weight_layer_guard() {
        return done;
    }
    let n_in = c.node.inputs.len();
    let x = c.input(0)?;
    let w = c.input_cow(1)?;
    let y_shape = c.out_shape(0)?;
    let b = if c.has_input(2) {
        Some(reshape(c.input(2)?, &[1, y_shape[1], 1, 1])?)
    } else {
        None
    };
    // The conv from y-space (U) to x-space (V) has weight [cv = C_in, cu/g = C_out/g, k…].
    let mut g = geometry(c, &y_shape, x.shape(), w.shape())?;
    g.fast = g.macs() >= c.cfg.fast_min_macs;
    let z_known = if g.fast {
        c.recorded_z().map(to4).transpose()?
    } else {
        None
    };
    let xs = x.shape().to_vec();
    let (x4, w4, r4) = (to4(x)?, to4_cow(w)?, to4(r)?);
    let class = match (c.cfg.upper_conv, c.conv_depth) {
        (Some((f, r)), Some(d)) if d >= f => r,
        _ => c.cfg.conv,
    };
    let (rx, rw) = linear_rule(
        &ConvTransposeMap(g),
        c.rule(class),
        c.stab(),
        &x4,
        &w4,
        b.as_ref(),
        &r4,
        z_known,
    )?;
    let mut out = Backward::single(n_in, 0, reshape(rx, &xs)?);
    out.weight_rel = rw;
    Ok(out)
}
