//! Rules for linear layers with weights, written once over a [`LinearMap`] (Gemm, MatMul,
//! Conv, ConvTranspose), and the bilinear rule for activation × activation MatMul.

use super::{Backward, Ctx, RResult};
use crate::relevance::config::Rule;
use crate::relevance::tensor::{
    abs_sum, broadcast_to, div_stab, lanes_zip_sum, layer_eps, matmul as mm, neg, pos, reshape,
    stab_div, t_last2, unbroadcast, T,
};

/// A map z = L(x; W), linear in x and in W separately, with its adjoints.
pub trait LinearMap {
    /// z without bias.
    fn fwd(&self, x: &T, w: &T) -> RResult<T>;
    /// Lᵀ s: the gradient with respect to x of ⟨s, L(x; W)⟩.
    fn adj_x(&self, s: &T, w: &T) -> RResult<T>;
    /// The gradient with respect to W of ⟨s, L(x; W)⟩.
    fn adj_w(&self, x: &T, s: &T) -> RResult<T>;
    /// The products of the ε- and γ-rules at this x and W, when the map can share work
    /// between them (a large MatMul's f32 copies of x, W and |W|); `None`:
    /// [`PlainProducts`]. Large convolutions have a rule of their own (`conv::fast`).
    fn shared_products<'a>(
        &'a self,
        _x: &'a T,
        _w: &'a T,
    ) -> RResult<Option<Box<dyn Products + 'a>>> {
        Ok(None)
    }
}

/// The products the ε- and γ-rules take at one fixed x and W.
pub trait Products {
    /// L(|x|; |W|).
    fn fwd_abs(&mut self) -> RResult<T>;
    /// Lᵀ s with W, or with |W| when `abs_w`.
    fn adj_x(&mut self, s: &T, abs_w: bool) -> RResult<T>;
    /// The gradient with respect to W of ⟨s, L(x; W)⟩.
    fn adj_w(&mut self, s: &T) -> RResult<T>;
    /// The input relevance of the ε-rule, x ⊙ Lᵀs (`sigma` None), or of the γ-rule,
    /// (1 + h)·x ⊙ Lᵀs + h·|x| ⊙ |L|ᵀσ (`sigma` Some, h = γ/2). Maps override it to fuse
    /// the products with the element-wise sums.
    fn input_relevance(&mut self, x: &T, s: &T, sigma: Option<&T>, half: f64) -> RResult<T> {
        let mut rx = self.adj_x(s, false)?;
        let Some(sigma) = sigma else {
            return Ok(x * &rx);
        };
        let b = self.adj_x(sigma, true)?;
        ndarray::Zip::from(&mut rx)
            .and(x)
            .and(&b)
            .for_each(|a, &x, &b| *a = (1.0 + half) * x * *a + half * x.abs() * b);
        Ok(rx)
    }
    /// Σ|W ⊙ ∇_W⟨s, L(x; W)⟩|: the layer's weight relevance. Maps override it to sum
    /// without building the gradient in f64.
    fn weight_relevance(&mut self, s: &T) -> RResult<f64>;
}

/// [`Products`] through the map's own forward and adjoints.
pub struct PlainProducts<'a> {
    map: &'a dyn LinearMap,
    x: &'a T,
    w: &'a T,
    w_abs: Option<T>,
}

impl PlainProducts<'_> {
    fn w_abs(&mut self) -> &T {
        self.w_abs.get_or_insert_with(|| self.w.mapv(f64::abs))
    }
}

impl Products for PlainProducts<'_> {
    fn fwd_abs(&mut self) -> RResult<T> {
        let xa = self.x.mapv(f64::abs);
        let map = self.map;
        map.fwd(&xa, self.w_abs())
    }
    fn adj_x(&mut self, s: &T, abs_w: bool) -> RResult<T> {
        let map = self.map;
        if abs_w {
            map.adj_x(s, self.w_abs())
        } else {
            map.adj_x(s, self.w)
        }
    }
    fn adj_w(&mut self, s: &T) -> RResult<T> {
        self.map.adj_w(self.x, s)
    }
    fn weight_relevance(&mut self, s: &T) -> RResult<f64> {
        Ok(abs_sum(&(self.w * &self.adj_w(s)?)))
    }
}

/// The map's shared products, else the plain ones.
fn products<'a>(map: &'a dyn LinearMap, x: &'a T, w: &'a T) -> RResult<Box<dyn Products + 'a>> {
    Ok(match map.shared_products(x, w)? {
        Some(p) => p,
        None => Box::new(PlainProducts {
            map,
            x,
            w,
            w_abs: None,
        }),
    })
}

fn add_bias(z: T, b: Option<&T>) -> RResult<T> {
    match b {
        Some(b) => Ok(&z + &broadcast_to(b, z.shape())?),
        None => Ok(z),
    }
}

/// The stabilizer of a layer: `abs + rel · std(z)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stab {
    pub abs: f64,
    pub rel: f64,
}

impl Stab {
    /// An absolute ε only.
    pub fn abs(eps: f64) -> Stab {
        Stab { abs: eps, rel: 0.0 }
    }
}

/// The γ-rule's denominator at one output: z⁺ = (1 + γ/2)(z − b) + (γ/2)q + b + γb⁺ when
/// z ≥ 0, else z⁻ = (1 + γ/2)(z − b) − (γ/2)q + b + γb⁻, from the plain z (bias included),
/// the bias b and q = |x|·|W| there. Returns it and whether z ≥ 0 (z⁺ was taken).
#[inline]
pub fn gamma_denominator(z: f64, b: f64, q: f64, gamma: f64) -> (f64, bool) {
    let half = 0.5 * gamma;
    let up = z >= 0.0;
    let side = if up {
        q * half + b + gamma * b.max(0.0)
    } else {
        b + gamma * b.min(0.0) - q * half
    };
    ((z - b) * (1.0 + half) + side, up)
}

/// Relevance of the input `x` of a linear layer z = L(x; W) + b whose output relevance
/// is `r`, under `rule`; also returns Σ|R_W|. `z_known`: z = L(x; W) + b as recorded by
/// the forward run (saves recomputing it).
#[allow(clippy::too_many_arguments)]
pub fn linear_rule(
    map: &dyn LinearMap,
    rule: Rule,
    stab: Stab,
    x: &T,
    w: &T,
    b: Option<&T>,
    r: &T,
    z_known: Option<T>,
) -> RResult<(T, f64)> {
    let z_of = |z_known: Option<T>| -> RResult<T> {
        match z_known {
            Some(z) => Ok(z),
            None => add_bias(map.fwd(x, w)?, b),
        }
    };
    // The plain z only when the rule or the stabilizer needs it.
    let (z_plain, eps) = match rule {
        Rule::Epsilon | Rule::Gamma(_) => {
            let z = z_of(z_known)?;
            let eps = layer_eps(&z, stab.abs, stab.rel);
            (Some(z), eps)
        }
        _ if stab.rel > 0.0 => {
            let z = z_of(z_known)?;
            (None, layer_eps(&z, stab.abs, stab.rel))
        }
        _ => (None, stab.abs),
    };
    match rule {
        Rule::Epsilon => {
            let z = z_plain.ok_or("z is missing")?;
            let s = div_stab(r, &z, eps)?;
            let mut p = products(map, x, w)?;
            let rx = p.input_relevance(x, &s, None, 0.0)?;
            Ok((rx, p.weight_relevance(&s)?))
        }
        Rule::Gamma(g) => {
            // The generalized γ-rule: z_j ≥ 0 uses z⁺ = x⁺(w + γw⁺) + x⁻(w + γw⁻) + b + γb⁺,
            // z_j < 0 uses z⁻ = x⁺(w + γw⁻) + x⁻(w + γw⁺) + b + γb⁻. Written with
            // P = x⁺w⁺ + x⁻w⁻ = (xw + |x||w|)/2 and N = xw − P, both need one product
            // |x|·|w| next to the plain z; and the backward sum
            // x⁺⊙[(w+γw⁺)ᵀs⁺ + (w+γw⁻)ᵀs⁻] + x⁻⊙[(w+γw⁻)ᵀs⁺ + (w+γw⁺)ᵀs⁻] equals
            // (1 + γ/2)·x⊙wᵀs + (γ/2)·|x|⊙|w|ᵀσ with s = s⁺ + s⁻ and σ = s⁺ − s⁻:
            // four products in all instead of nine.
            let z = z_plain.ok_or("z is missing")?;
            let b_full = match b {
                Some(b) => Some(broadcast_to(b, z.shape())?),
                None => None,
            };
            let mut p = products(map, x, w)?;
            let q = p.fwd_abs()?;
            let half = 0.5 * g;
            // R usually has z's shape already: read it in place rather than copy it.
            let r_full = if r.shape() == z.shape() {
                None
            } else {
                Some(broadcast_to(r, z.shape())?)
            };
            let (zc, rc, qc) = (
                z.as_standard_layout(),
                r_full.as_ref().unwrap_or(r).as_standard_layout(),
                q.as_standard_layout(),
            );
            let bc = b_full.as_ref().map(|b| b.as_standard_layout());
            let (zs, rs, qs) = (
                zc.as_slice().ok_or("z is not contiguous")?,
                rc.as_slice().ok_or("relevance is not contiguous")?,
                qc.as_slice().ok_or("product is not contiguous")?,
            );
            let bs = match &bc {
                Some(b) => Some(b.as_slice().ok_or("bias is not contiguous")?),
                None => None,
            };
            // One pass: s = s⁺ + s⁻ and σ = s⁺ − s⁻ from z (its sign picks z⁺ or z⁻), the
            // bias, |x|·|w| and R.
            let mut s_all = vec![0.0; zs.len()];
            let mut sigma = vec![0.0; zs.len()];
            for i in 0..zs.len() {
                let (d, up) = gamma_denominator(zs[i], bs.map_or(0.0, |b| b[i]), qs[i], g);
                let v = stab_div(rs[i], d, eps);
                s_all[i] = v;
                sigma[i] = if up { v } else { -v };
            }
            let s = T::from_shape_vec(z.raw_dim(), s_all).map_err(|e| e.to_string())?;
            let sigma = T::from_shape_vec(z.raw_dim(), sigma).map_err(|e| e.to_string())?;
            let rx = p.input_relevance(x, &s, Some(&sigma), half)?;
            Ok((rx, p.weight_relevance(&s)?))
        }
        Rule::ZPlus => {
            let (xp, xn, wp, wn) = (pos(x), neg(x), pos(w), neg(w));
            let z = &map.fwd(&xp, &wp)? + &map.fwd(&xn, &wn)?;
            let s = div_stab(r, &z, eps)?;
            let rx = &xp * &map.adj_x(&s, &wp)? + &xn * &map.adj_x(&s, &wn)?;
            let rw = abs_sum(&(w * &map.adj_w(x, &s)?));
            Ok((rx, rw))
        }
        Rule::AlphaBeta(a, bt) => {
            let (xp, xn, wp, wn) = (pos(x), neg(x), pos(w), neg(w));
            let zp = &map.fwd(&xp, &wp)? + &map.fwd(&xn, &wn)?;
            let zn = &map.fwd(&xp, &wn)? + &map.fwd(&xn, &wp)?;
            let sp = div_stab(r, &zp, eps)?;
            let sn = div_stab(r, &zn, eps)?;
            let rp = &xp * &map.adj_x(&sp, &wp)? + &xn * &map.adj_x(&sp, &wn)?;
            let rn = &xp * &map.adj_x(&sn, &wn)? + &xn * &map.adj_x(&sn, &wp)?;
            let rx = rp * a - rn * bt;
            let rw = abs_sum(&(w * &map.adj_w(x, &sp)?));
            Ok((rx, rw))
        }
        Rule::ZBox(low, high) => {
            let (wp, wn) = (pos(w), neg(w));
            let (l, h) = (
                T::from_elem(x.raw_dim(), low),
                T::from_elem(x.raw_dim(), high),
            );
            let z = &(&map.fwd(x, w)? - &map.fwd(&l, &wp)?) - &map.fwd(&h, &wn)?;
            let s = div_stab(r, &z, eps)?;
            let rx = &(x * &map.adj_x(&s, w)? - &l * &map.adj_x(&s, &wp)?)
                - &(&h * &map.adj_x(&s, &wn)?);
            let rw = abs_sum(&(w * &map.adj_w(x, &s)?));
            Ok((rx, rw))
        }
        Rule::Identity => {
            let zshape = map.fwd(x, w)?.shape().to_vec();
            let r = broadcast_to(r, &zshape)?;
            if r.len() == x.len() {
                return Ok((reshape(r, x.shape())?, 0.0));
            }
            let ones_x = T::ones(x.raw_dim());
            let ones_w = T::ones(w.raw_dim());
            let z = map.fwd(&ones_x, &ones_w)?;
            let s = div_stab(&r, &z, stab.abs)?;
            Ok((map.adj_x(&s, &ones_w)?, 0.0))
        }
    }
}

/// numpy matmul with the weight on the right (x·W) or on the left (W·x); operands of
/// rank ≥ 2 (callers promote vectors).
pub struct MatMulMap {
    pub weight_left: bool,
    pub x_shape: Vec<usize>,
    pub w_shape: Vec<usize>,
    /// Run the ε/γ products in f32 through sgemm (a 2-D weight on the right only).
    pub fast: bool,
}

impl MatMulMap {
    /// x·W with the fast f32 products when W is 2-D and the product has at least
    /// `fast_min_macs` multiply-adds.
    fn weight_right(x_shape: &[usize], w_shape: &[usize], fast_min_macs: usize) -> MatMulMap {
        let macs = x_shape.iter().product::<usize>() * w_shape.last().copied().unwrap_or(0);
        MatMulMap {
            weight_left: false,
            x_shape: x_shape.to_vec(),
            w_shape: w_shape.to_vec(),
            fast: w_shape.len() == 2 && macs >= fast_min_macs,
        }
    }
}

/// The ε/γ products of x·W (W 2-D on the right) in f32: x as an [R, K] matrix and W, |W|
/// converted once.
struct SharedMatMulProducts<'a> {
    map: &'a MatMulMap,
    x: ndarray::Array2<f32>,
    w: ndarray::Array2<f32>,
    w_abs: ndarray::Array2<f32>,
}

impl<'a> SharedMatMulProducts<'a> {
    fn new(map: &'a MatMulMap, x: &T, w: &T) -> RResult<SharedMatMulProducts<'a>> {
        let k = *map.x_shape.last().ok_or("x has no axes")?;
        let w2 = f32_matrix(w, map.w_shape[1])?;
        Ok(SharedMatMulProducts {
            map,
            x: f32_matrix(x, k)?,
            w_abs: w2.mapv(f32::abs),
            w: w2,
        })
    }

    /// The relevance at the output as an f32 [R, N] matrix.
    fn rows(&self, s: &T) -> RResult<ndarray::Array2<f32>> {
        f32_matrix(s, self.w.ncols())
    }

    fn to_t(a: ndarray::Array2<f32>, shape: &[usize]) -> RResult<T> {
        reshape(a.mapv(f64::from).into_dyn(), shape)
    }
}

/// `a` (any rank, row-major) as an f32 matrix with `cols` columns.
fn f32_matrix(a: &T, cols: usize) -> RResult<ndarray::Array2<f32>> {
    let a = a.as_standard_layout();
    let rows = a.len() / cols.max(1);
    ndarray::ArrayView2::from_shape((rows, cols), a.as_slice().ok_or("not contiguous")?)
        .map(|v| v.mapv(|e| e as f32))
        .map_err(|e| e.to_string())
}

impl Products for SharedMatMulProducts<'_> {
    fn fwd_abs(&mut self) -> RResult<T> {
        let mut shape = self.map.x_shape.clone();
        if let Some(l) = shape.last_mut() {
            *l = self.w.ncols();
        }
        Self::to_t(self.x.mapv(f32::abs).dot(&self.w_abs), &shape)
    }
    fn adj_x(&mut self, s: &T, abs_w: bool) -> RResult<T> {
        let w = if abs_w { &self.w_abs } else { &self.w };
        Self::to_t(self.rows(s)?.dot(&w.t()), &self.map.x_shape)
    }
    fn adj_w(&mut self, s: &T) -> RResult<T> {
        Ok(self.x.t().dot(&self.rows(s)?).mapv(f64::from).into_dyn())
    }
    fn weight_relevance(&mut self, s: &T) -> RResult<f64> {
        let g = self.x.t().dot(&self.rows(s)?);
        Ok(abs_dot_f32(&self.w, &g))
    }
}

/// Σ|aᵢ·bᵢ| over two f32 matrices of one shape: each row summed in f32 lanes, the rows in f64.
pub fn abs_dot_f32(a: &ndarray::Array2<f32>, b: &ndarray::Array2<f32>) -> f64 {
    a.rows()
        .into_iter()
        .zip(b.rows())
        .map(|(ra, rb)| match (ra.as_slice(), rb.as_slice()) {
            (Some(ra), Some(rb)) => f64::from(lanes_zip_sum(ra, rb, |p, q| (p * q).abs())),
            _ => ra
                .iter()
                .zip(rb.iter())
                .map(|(&p, &q)| f64::from((p * q).abs()))
                .sum(),
        })
        .sum()
}

impl LinearMap for MatMulMap {
    fn fwd(&self, x: &T, w: &T) -> RResult<T> {
        if self.weight_left {
            mm(w, x)
        } else {
            mm(x, w)
        }
    }
    fn adj_x(&self, s: &T, w: &T) -> RResult<T> {
        let g = if self.weight_left {
            mm(&t_last2(w), s)?
        } else {
            mm(s, &t_last2(w))?
        };
        unbroadcast(g, &self.x_shape)
    }
    fn adj_w(&self, x: &T, s: &T) -> RResult<T> {
        let g = if self.weight_left {
            mm(s, &t_last2(x))?
        } else {
            mm(&t_last2(x), s)?
        };
        unbroadcast(g, &self.w_shape)
    }
    fn shared_products<'a>(
        &'a self,
        x: &'a T,
        w: &'a T,
    ) -> RResult<Option<Box<dyn Products + 'a>>> {
        if !self.fast || self.weight_left || w.ndim() != 2 {
            return Ok(None);
        }
        Ok(Some(Box::new(SharedMatMulProducts::new(self, x, w)?)))
    }
}

/// The shape of numpy matmul(a, b) for operands of rank ≥ 2, without computing it.
fn matmul_shape(a: &[usize], b: &[usize]) -> RResult<Vec<usize>> {
    let (ra, rb) = (a.len(), b.len());
    if ra < 2 || rb < 2 || a[ra - 1] != b[rb - 2] {
        return Err(format!("matmul of {a:?} and {b:?}"));
    }
    let mut out = crate::relevance::tensor::broadcast_shape(&[&a[..ra - 2], &b[..rb - 2]])?;
    out.extend([a[ra - 2], b[rb - 1]]);
    Ok(out)
}

/// Promotes a vector operand of MatMul to a matrix ([K] → [1,K] on the left, [K,1] on
/// the right).
fn promote(a: T, left: bool) -> RResult<T> {
    if a.ndim() >= 2 {
        return Ok(a);
    }
    let n = a.len();
    let shape = if left { [1, n] } else { [n, 1] };
    reshape(a, &shape)
}

/// The AttnLRP bilinear ε-rule for a product of two activations:
/// R_A = A ⊙ [(R / stab(2O)) Bᵀ], R_B = B ⊙ [Aᵀ (R / stab(2O))].
pub fn bilinear(a: &T, b: &T, r: &T, eps: f64) -> RResult<(T, T)> {
    let o = mm(a, b)?;
    let s = div_stab(r, &(&o * 2.0), eps)?;
    let ra = a * &unbroadcast(mm(&s, &t_last2(b))?, a.shape())?;
    let rb = b * &unbroadcast(mm(&t_last2(a), &s)?, b.shape())?;
    Ok((ra, rb))
}

/// MatMul: the linear rule against a constant operand, the bilinear rule for two activations.
pub fn matmul(c: &Ctx, r: T) -> RResult<Backward> {
    let a0 = c.input(0)?;
    let b0 = c.input(1)?;
    let (sa, sb) = (a0.shape().to_vec(), b0.shape().to_vec());
    let a = promote(a0, true)?;
    let b = promote(b0, false)?;
    let out_shape = matmul_shape(a.shape(), b.shape())?;
    let r = reshape(r, &out_shape)?;
    let mut out = Backward {
        inputs: vec![None; c.node.inputs.len()],
        weight_rel: 0.0,
    };
    match (c.carries(0), c.carries(1)) {
        (true, true) => {
            let (ra, rb) = bilinear(&a, &b, &r, c.cfg.eps)?;
            out.inputs[0] = Some(reshape(ra, &sa)?);
            out.inputs[1] = Some(reshape(rb, &sb)?);
        }
        (true, false) => {
            let map = MatMulMap::weight_right(a.shape(), b.shape(), c.cfg.fast_min_macs);
            // Large products take z from the recorded output.
            let z = match c.output(0) {
                Ok(z) if map.fast => Some(reshape(z, &out_shape)?),
                _ => None,
            };
            let (rx, rw) = linear_rule(&map, c.rule(c.cfg.linear), c.stab(), &a, &b, None, &r, z)?;
            out.inputs[0] = Some(reshape(rx, &sa)?);
            out.weight_rel = rw;
        }
        (false, true) => {
            let map = MatMulMap {
                weight_left: true,
                x_shape: b.shape().to_vec(),
                w_shape: a.shape().to_vec(),
                fast: false,
            };
            let (rx, rw) =
                linear_rule(&map, c.rule(c.cfg.linear), c.stab(), &b, &a, None, &r, None)?;
            out.inputs[1] = Some(reshape(rx, &sb)?);
            out.weight_rel = rw;
        }
        (false, false) => {}
    }
    Ok(out)
}

/// Gemm: Y = α·A'·B' + β·C, with a BatchNormalization after it folded in when asked.
pub fn gemm(c: &Ctx, r: T) -> RResult<Backward> {
    let trans_a = c.attr_int("transA", 0) != 0;
    let trans_b = c.attr_int("transB", 0) != 0;
    let alpha = c.attr_float("alpha", 1.0) as f64;
    let beta = c.attr_float("beta", 1.0) as f64;
    let mut a = c.input(0)?;
    let mut b = c.input(1)?;
    if a.ndim() != 2 || b.ndim() != 2 {
        return Err("Gemm operands must be matrices".into());
    }
    if trans_a {
        a = t_last2(&a);
    }
    if trans_b {
        b = t_last2(&b);
    }
    let (m, n) = (a.shape()[0], b.shape()[1]);
    let mut bias = if c.has_input(2) {
        Some(broadcast_to(&(c.input(2)? * beta), &[m, n])?)
    } else {
        None
    };
    let mut out = Backward {
        inputs: vec![None; c.node.inputs.len()],
        weight_rel: 0.0,
    };
    let r = reshape(r, &[m, n])?;
    match (c.carries(0), c.carries(1)) {
        (true, true) => {
            let (ra, rb) = bilinear(&(a * alpha), &b, &r, c.cfg.eps)?;
            out.inputs[0] = Some(if trans_a { t_last2(&ra) } else { ra });
            out.inputs[1] = Some(if trans_b { t_last2(&rb) } else { rb });
        }
        (true, false) => {
            let mut w = b * alpha;
            if let Some(bn) = c.fold {
                let (k, sh) = super::batchnorm::bn_scale_shift(c, bn)?;
                let k2 = reshape(k.clone(), &[1, n])?;
                w = &w * &k2;
                let old = bias
                    .take()
                    .unwrap_or_else(|| T::zeros(ndarray::IxDyn(&[m, n])));
                bias = Some(&old * &k2 + &reshape(sh, &[1, n])?);
            }
            let map = MatMulMap::weight_right(a.shape(), w.shape(), c.cfg.fast_min_macs);
            let (rx, rw) = linear_rule(
                &map,
                c.rule(c.cfg.linear),
                c.stab(),
                &a,
                &w,
                bias.as_ref(),
                &r,
                None,
            )?;
            out.inputs[0] = Some(if trans_a { t_last2(&rx) } else { rx });
            out.weight_rel = rw;
        }
        (false, true) => {
            if c.fold.is_some() {
                return Err("BatchNormalization folding needs the weight on the right".into());
            }
            let w = a * alpha;
            let map = MatMulMap {
                weight_left: true,
                x_shape: b.shape().to_vec(),
                w_shape: w.shape().to_vec(),
                fast: false,
            };
            let (rx, rw) = linear_rule(
                &map,
                c.rule(c.cfg.linear),
                c.stab(),
                &b,
                &w,
                bias.as_ref(),
                &r,
                None,
            )?;
            out.inputs[1] = Some(if trans_b { t_last2(&rx) } else { rx });
            out.weight_rel = rw;
        }
        (false, false) => {}
    }
    Ok(out)
}
