//! The ε- and γ-rules of large convolutions in f32, on the f32 x and z that onnxruntime
//! recorded (read in place, never widened to f64): the products run through sgemm (direct
//! loops for depthwise layers) with x's im2col and the f32 weights W and |W| built once
//! per layer, and the per-element bookkeeping of the rules is fused into single passes.
//! Relevance enters and leaves in f64, as everywhere in the sweep.

use super::{to_f32, Geom};
use crate::relevance::config::Rule;
use crate::relevance::rules::linear::{abs_dot_f32, gamma_denominator, Stab};
use crate::relevance::rules::RResult;
use crate::relevance::tensor::{layer_eps_of, stab_div, T};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use std::borrow::Cow;

/// The products of the ε- and γ-rules at one x and W, on flat f32 slices in standard
/// layout ([n, cu, hu, wu] for x-space, [n, cv, hv, wv] for z-space).
trait F32Products {
    /// L(|x|; |W|) in z-space.
    fn fwd_abs(&self) -> RResult<Vec<f32>>;
    /// The input relevance x ⊙ Lᵀs (`sg` None), or (1 + h)·x ⊙ Lᵀs + h·|x| ⊙ |L|ᵀσ, in f64
    /// in x-space; and the weight relevance Σ|W ⊙ ∇_W⟨s, L(x; W)⟩|.
    fn backward(&self, ss: &[f32], sg: Option<&[f32]>, half: f32) -> RResult<(Vec<f64>, f64)>;
}

/// A convolution z = L(x; W) + b as the forward run recorded it.
pub(super) struct RecordedConv<'a> {
    /// x in f32 (in place).
    pub x: Cow<'a, [f32]>,
    /// z in f32 (in place), BatchNormalization folded in when it is.
    pub z: Cow<'a, [f32]>,
    /// W (folded).
    pub w: &'a T,
    /// b per output channel (folded).
    pub bias: Option<Vec<f64>>,
}

/// (weight per group, relevance in z-space, scale): one term of Σ a·Lᵀs.
type Term<'t> = (&'t [Array2<f32>], &'t [f32], f32);
/// A [`Term`] of one group.
type GroupTerm<'t> = (&'t Array2<f32>, &'t [f32], f32);

/// The ε- or γ-rule of a large convolution `layer` with output relevance `r` (f64, z's
/// shape). Returns R_x (f64, x's shape, flat) and Σ|R_W|; `None` for the other rules and
/// for sizes the general path must handle.
pub(super) fn rule_f32(
    g: &Geom,
    rule: Rule,
    stab: Stab,
    layer: RecordedConv<'_>,
    r: &T,
) -> RResult<Option<(Vec<f64>, f64)>> {
    if !matches!(rule, Rule::Epsilon | Rule::Gamma(_)) {
        return Ok(None);
    }
    let RecordedConv { x, z, w, bias } = layer;
    let (z, bias): (&[f32], Option<&[f64]>) = (&z, bias.as_deref());
    let osz = g.hv * g.wv;
    let zlen = g.n * g.cv * osz;
    let r = r.as_standard_layout();
    let rs = r.as_slice().ok_or("relevance is not contiguous")?;
    if z.len() != zlen || rs.len() != zlen || x.len() != g.n * g.cu * g.hu * g.wu {
        // R broadcast from a smaller shape, say: the general path handles it.
        return Ok(None);
    }
    let eps = layer_eps_of(z, stab.abs, stab.rel);
    let p: Box<dyn F32Products + '_> = if g.depthwise() {
        Box::new(DepthwiseProducts::new(g, x, w)?)
    } else {
        Box::new(ConvProducts::new(g, x, w)?)
    };
    // Per block of one image and output channel: its bias and its slice of z (and R).
    let blocks = (0..g.n * g.cv).map(|blk| {
        let bi = bias.map_or(0.0, |b| b[blk % g.cv]);
        (bi, blk * osz..(blk + 1) * osz)
    });
    match rule {
        Rule::Gamma(gm) => {
            // The γ-rule as in `linear_rule`: s = s⁺ + s⁻ and σ = s⁺ − s⁻ from the sign of
            // z, over the denominators z± of `gamma_denominator`.
            let q = p.fwd_abs()?;
            let half = 0.5 * gm;
            let mut ss = vec![0f32; zlen];
            let mut sg = vec![0f32; zlen];
            for (bi, range) in blocks {
                // Slices of one block, zipped: no bounds checks, so the loop vectorizes.
                let (zb, qb, rb) = (&z[range.clone()], &q[range.clone()], &rs[range.clone()]);
                let (sb, gb) = (&mut ss[range.clone()], &mut sg[range]);
                let outs = sb.iter_mut().zip(gb.iter_mut());
                for (((&zi, &qi), &ri), (so, go)) in zb.iter().zip(qb).zip(rb).zip(outs) {
                    let (d, up) = gamma_denominator(f64::from(zi), bi, f64::from(qi), gm);
                    let v = stab_div(ri, d, eps);
                    *so = v as f32;
                    *go = if up { v as f32 } else { -(v as f32) };
                }
            }
            p.backward(&ss, Some(&sg), half as f32).map(Some)
        }
        _ => {
            let ss: Vec<f32> = z
                .iter()
                .zip(rs)
                .map(|(&zi, &ri)| stab_div(ri, f64::from(zi), eps) as f32)
                .collect();
            p.backward(&ss, None, 0.0).map(Some)
        }
    }
}

/// a·x (+ b·|x|) from f32 slices, in f64.
fn times_x(xs: &[f32], a: &[f32], b: Option<&[f32]>) -> Vec<f64> {
    match b {
        None => xs.iter().zip(a).map(|(&x, &a)| f64::from(x * a)).collect(),
        Some(b) => xs
            .iter()
            .zip(a)
            .zip(b)
            .map(|((&x, &a), &b)| f64::from(x * a + x.abs() * b))
            .collect(),
    }
}

/// The products of a convolution with more than one channel per group, through sgemm.
struct ConvProducts<'a> {
    g: &'a Geom,
    xs: Cow<'a, [f32]>,
    /// im2col of image n, group grp at n·groups + grp (empty when pointwise: the
    /// columns are x itself).
    cols: Vec<Array2<f32>>,
    w: Vec<Array2<f32>>,
    w_abs: Vec<Array2<f32>>,
    /// x has no negative values (after a ReLU): |col| is col.
    x_nonneg: bool,
}

impl<'a> ConvProducts<'a> {
    fn new(g: &'a Geom, xs: Cow<'a, [f32]>, w: &T) -> RResult<ConvProducts<'a>> {
        g.check()?;
        let img = g.cu * g.hu * g.wu;
        let mut cols = Vec::new();
        if !g.pointwise() {
            cols.reserve(g.n * g.groups);
            for n in 0..g.n {
                for grp in 0..g.groups {
                    cols.push(g.im2col(&xs[n * img..(n + 1) * img], grp));
                }
            }
        }
        let w = (0..g.groups)
            .map(|grp| g.weight_group_f32(w, grp))
            .collect::<RResult<Vec<_>>>()?;
        let w_abs = w.iter().map(|a| a.mapv(f32::abs)).collect();
        let x_nonneg = xs.iter().all(|&v| v >= 0.0);
        Ok(ConvProducts {
            g,
            xs,
            cols,
            w,
            w_abs,
            x_nonneg,
        })
    }

    /// The [rows, hv·wv] columns of image n, group grp.
    fn col(&self, n: usize, grp: usize) -> RResult<ArrayView2<'_, f32>> {
        let g = self.g;
        if !g.pointwise() {
            return Ok(self.cols[n * g.groups + grp].view());
        }
        let (psz, rows) = (g.hu * g.wu, g.rows());
        let base = (n * g.cu + grp * rows) * psz;
        ArrayView2::from_shape((rows, psz), &self.xs[base..base + rows * psz])
            .map_err(|e| e.to_string())
    }

    /// Σ_k a_k·W_kᵀ s_k over the (group weight, relevance, scale) terms of image n, group
    /// grp, added into image n's f32 `img` (by col2im; straight into it when pointwise).
    fn adj_x_into(
        &self,
        terms: &[GroupTerm<'_>],
        n: usize,
        grp: usize,
        img: &mut [f32],
    ) -> RResult<()> {
        let g = self.g;
        let (psz, rows, osz) = (g.hu * g.wu, g.rows(), g.hv * g.wv);
        let run = |out: &mut ArrayViewMut2<f32>| -> RResult<()> {
            for (i, &(w, ss, a)) in terms.iter().enumerate() {
                let s = g.group_rows(ss, n, grp)?;
                let beta = if i == 0 { 0.0 } else { 1.0 };
                general_mat_mul(a, &w.t(), &s, beta, out);
            }
            Ok(())
        };
        if g.pointwise() {
            let base = grp * rows * psz;
            let mut out = ArrayViewMut2::from_shape((rows, psz), &mut img[base..base + rows * psz])
                .map_err(|e| e.to_string())?;
            run(&mut out)
        } else {
            let mut cols = Array2::<f32>::zeros((rows, osz));
            run(&mut cols.view_mut())?;
            g.col2im(&cols, grp, img);
            Ok(())
        }
    }

    /// Σ_k a_k·L_kᵀ s_k over (weights per group, relevance, scale) terms, in x-space.
    fn adj_x(&self, terms: &[Term<'_>]) -> RResult<Vec<f32>> {
        let g = self.g;
        let img = g.cu * g.hu * g.wu;
        let mut out = vec![0f32; g.n * img];
        for n in 0..g.n {
            for grp in 0..g.groups {
                let t: Vec<_> = terms.iter().map(|&(w, s, a)| (&w[grp], s, a)).collect();
                self.adj_x_into(&t, n, grp, &mut out[n * img..(n + 1) * img])?;
            }
        }
        Ok(out)
    }

    /// Σ_n s_g·col_gᵀ of group grp.
    fn weight_grad(&self, ss: &[f32], grp: usize) -> RResult<Array2<f32>> {
        let g = self.g;
        let mut gw = Array2::<f32>::zeros((g.cvg(), g.rows()));
        for n in 0..g.n {
            let col = self.col(n, grp)?;
            general_mat_mul(1.0, &g.group_rows(ss, n, grp)?, &col.t(), 1.0, &mut gw);
        }
        Ok(gw)
    }
}

impl F32Products for ConvProducts<'_> {
    fn fwd_abs(&self) -> RResult<Vec<f32>> {
        let g = self.g;
        let osz = g.hv * g.wv;
        let mut out = vec![0f32; g.n * g.cv * osz];
        for n in 0..g.n {
            for grp in 0..g.groups {
                let col = self.col(n, grp)?;
                let base = (n * g.cv + grp * g.cvg()) * osz;
                let mut dst =
                    ArrayViewMut2::from_shape((g.cvg(), osz), &mut out[base..base + g.cvg() * osz])
                        .map_err(|e| e.to_string())?;
                if self.x_nonneg {
                    general_mat_mul(1.0, &self.w_abs[grp], &col, 0.0, &mut dst);
                } else {
                    general_mat_mul(1.0, &self.w_abs[grp], &col.mapv(f32::abs), 0.0, &mut dst);
                }
            }
        }
        Ok(out)
    }

    /// With x ≥ 0 both γ products go into one image: x ⊙ [(1 + h)·Wᵀs + h·|W|ᵀσ].
    fn backward(&self, ss: &[f32], sg: Option<&[f32]>, half: f32) -> RResult<(Vec<f64>, f64)> {
        let a = 1.0 + half;
        let rx = match sg {
            None => times_x(&self.xs, &self.adj_x(&[(&self.w, ss, 1.0)])?, None),
            Some(sg) if self.x_nonneg => {
                let l = self.adj_x(&[(&self.w, ss, a), (&self.w_abs, sg, half)])?;
                times_x(&self.xs, &l, None)
            }
            Some(sg) => {
                let l = self.adj_x(&[(&self.w, ss, a)])?;
                let la = self.adj_x(&[(&self.w_abs, sg, half)])?;
                times_x(&self.xs, &l, Some(&la))
            }
        };
        let mut rw = 0.0;
        for grp in 0..self.g.groups {
            rw += abs_dot_f32(&self.w[grp], &self.weight_grad(ss, grp)?);
        }
        Ok((rx, rw))
    }
}

/// The products of a depthwise convolution (one input and one output channel per group)
/// by direct loops.
struct DepthwiseProducts<'a> {
    g: &'a Geom,
    xs: Cow<'a, [f32]>,
    w: Vec<f32>,
    w_abs: Vec<f32>,
    /// x has no negative values: |x| is x.
    x_nonneg: bool,
}

impl<'a> DepthwiseProducts<'a> {
    fn new(g: &'a Geom, xs: Cow<'a, [f32]>, w: &T) -> RResult<DepthwiseProducts<'a>> {
        g.check()?;
        let w = to_f32(
            w.as_standard_layout()
                .as_slice()
                .ok_or("weight is not contiguous")?,
        );
        let w_abs = w.iter().map(|v| v.abs()).collect();
        let x_nonneg = xs.iter().all(|&v| v >= 0.0);
        Ok(DepthwiseProducts {
            g,
            xs,
            w,
            w_abs,
            x_nonneg,
        })
    }
}

impl F32Products for DepthwiseProducts<'_> {
    fn fwd_abs(&self) -> RResult<Vec<f32>> {
        if self.x_nonneg {
            return Ok(self.g.dw_fwd(&self.xs, &self.w_abs));
        }
        let xa: Vec<f32> = self.xs.iter().map(|v| v.abs()).collect();
        Ok(self.g.dw_fwd(&xa, &self.w_abs))
    }

    /// Both products, with x ≥ 0 into one image, and the weight gradient in one traversal.
    fn backward(&self, ss: &[f32], sg: Option<&[f32]>, half: f32) -> RResult<(Vec<f64>, f64)> {
        let g = self.g;
        let (l, la, gw) = match sg {
            None => g.dw_backward(&self.xs, ss, &self.w, None, true),
            Some(sg) => {
                let wa: Vec<f32> = self.w.iter().map(|&v| v * (1.0 + half)).collect();
                let wb: Vec<f32> = self.w_abs.iter().map(|&v| v * half).collect();
                g.dw_backward(&self.xs, ss, &wa, Some((sg, &wb)), self.x_nonneg)
            }
        };
        let two = sg.is_some() && !self.x_nonneg;
        let rx = times_x(&self.xs, &l, two.then_some(&la[..]));
        let rw = gw
            .iter()
            .zip(&self.w)
            .map(|(&g, &w)| (g * f64::from(w)).abs())
            .sum();
        Ok((rx, rw))
    }
}
