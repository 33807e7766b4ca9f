//! Measuring one output's fidelity sample by sample, pooled over the validation set.
//!
//! Per sample (a = the original's output, b = the optimized model's, as f64):
//! * `top1`: rows along the last axis whose argmax agrees (first index on ties, NaN never
//!   the largest); `topk:K`: rows where the original's argmax is among b's K largest.
//!   Pooled: agreeing rows / rows over the whole set.
//! * `iou:T`: |{a > T} ∩ {b > T}| and |{a > T} ∪ {b > T}|. Pooled: Σ intersections /
//!   Σ unions (1 when both maps are empty everywhere).
//! * `cosine`: the cosine of the flattened tensors (see [`crate::data::compare`]). Pooled:
//!   the mean.
//! * `snr`: 10·log10(Σa² / Σ(a−b)²) in dB, clamped to ±[`SNR_CAP_DB`]. Pooled: the mean.
//!
//! The worst sample is the one with the smallest per-sample value (the first on ties).
//! Outputs that have no numeric view (strings) score 1 when bit-identical, else 0.

use super::metric::{Metric, SNR_CAP_DB};
use crate::data::HostTensor;
use serde::Serialize;

/// One sample's contribution: `num / den` is its value; rates pool the sums, means pool
/// the values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    pub num: f64,
    pub den: f64,
}

impl Score {
    pub fn value(self) -> f64 {
        if self.den == 0.0 {
            1.0
        } else {
            self.num / self.den
        }
    }
}

/// The sample that scored lowest.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorstSample {
    /// Its position in the validation set.
    pub index: usize,
    /// Its file or folder name (`random_K` for random samples).
    pub sample: String,
    pub value: f64,
}

/// Scores one sample of one output. `cosine` is the sample's cosine (already computed by
/// the comparison); `a` and `b` have the same type and shape.
pub fn score(metric: Metric, a: &HostTensor, b: &HostTensor, cosine: f64) -> Score {
    if metric == Metric::Cosine {
        return Score {
            num: cosine,
            den: 1.0,
        };
    }
    let (Some(va), Some(vb)) = (a.to_f64(), b.to_f64()) else {
        let same = a.bit_identical(b);
        return Score {
            num: if same { 1.0 } else { 0.0 },
            den: 1.0,
        };
    };
    match metric {
        Metric::Cosine => Score {
            num: cosine,
            den: 1.0,
        },
        Metric::Snr => Score {
            num: snr_db(&va, &vb),
            den: 1.0,
        },
        Metric::Top1 => topk(&va, &vb, last_dim(a), 1),
        Metric::TopK(k) => topk(&va, &vb, last_dim(a), k),
        Metric::Iou(t) => {
            let (mut inter, mut union) = (0u64, 0u64);
            for (&x, &y) in va.iter().zip(&vb) {
                let (p, q) = (x > t, y > t);
                inter += (p && q) as u64;
                union += (p || q) as u64;
            }
            Score {
                num: inter as f64,
                den: union as f64,
            }
        }
    }
}

/// The length of the last axis (1 for a scalar).
fn last_dim(t: &HostTensor) -> usize {
    t.shape.last().copied().unwrap_or(1)
}

/// Index of the largest value (first on ties; NaN never wins unless all are NaN).
fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] || (row[best].is_nan() && !v.is_nan()) {
            best = i;
        }
    }
    best
}

/// Rows of length `c` where a's argmax is among b's `k` largest.
fn topk(a: &[f64], b: &[f64], c: usize, k: usize) -> Score {
    if c == 0 || a.is_empty() {
        return Score { num: 0.0, den: 0.0 };
    }
    let mut agree = 0u64;
    let mut rows = 0u64;
    for (ra, rb) in a.chunks_exact(c).zip(b.chunks_exact(c)) {
        rows += 1;
        let want = argmax(ra);
        // b's value at `want` is among its k largest when fewer than k values beat it
        // (ties broken by index, as argmax does).
        let x = rb[want];
        let beaten = rb
            .iter()
            .enumerate()
            .filter(|&(i, &v)| v > x || (v == x && i < want) || (x.is_nan() && !v.is_nan()))
            .count();
        if beaten < k {
            agree += 1;
        }
    }
    Score {
        num: agree as f64,
        den: rows as f64,
    }
}

/// 10·log10(Σa² / Σ(a−b)²), clamped to ±[`SNR_CAP_DB`]; a non-finite mismatch is the floor.
fn snr_db(a: &[f64], b: &[f64]) -> f64 {
    let (mut signal, mut noise) = (0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        if x == y || (x.is_nan() && y.is_nan()) {
            if x.is_finite() {
                signal += x * x;
            }
            continue;
        }
        if !x.is_finite() || !y.is_finite() {
            return -SNR_CAP_DB;
        }
        signal += x * x;
        noise += (x - y) * (x - y);
    }
    if noise == 0.0 {
        return SNR_CAP_DB;
    }
    if signal == 0.0 {
        return -SNR_CAP_DB;
    }
    (10.0 * (signal / noise).log10()).clamp(-SNR_CAP_DB, SNR_CAP_DB)
}

/// One output's fidelity, folded over the samples as they run.
#[derive(Clone, Debug)]
pub struct Meter {
    pub metric: Metric,
    num: f64,
    den: f64,
    sum: f64,
    samples: usize,
    worst: Option<WorstSample>,
}

impl Meter {
    pub fn new(metric: Metric) -> Meter {
        Meter {
            metric,
            num: 0.0,
            den: 0.0,
            sum: 0.0,
            samples: 0,
            worst: None,
        }
    }

    /// Adds sample `index` (named `id`).
    pub fn add(&mut self, index: usize, id: &str, s: Score) {
        self.num += s.num;
        self.den += s.den;
        let v = s.value();
        self.sum += v;
        self.samples += 1;
        if self.worst.as_ref().is_none_or(|w| v < w.value) {
            self.worst = Some(WorstSample {
                index,
                sample: id.to_string(),
                value: v,
            });
        }
    }

    /// The pooled value: a set-level rate for top1/topk/iou, the mean for cosine/snr
    /// (1 — or the SNR cap — when no sample was added).
    pub fn pooled(&self) -> f64 {
        if self.metric.is_rate() {
            Score {
                num: self.num,
                den: self.den,
            }
            .value()
        } else if self.samples == 0 {
            Score { num: 0.0, den: 0.0 }.value()
        } else {
            self.sum / self.samples as f64
        }
    }

    pub fn samples(&self) -> usize {
        self.samples
    }

    pub fn worst(&self) -> Option<&WorstSample> {
        self.worst.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], v: &[f32]) -> HostTensor {
        HostTensor::from_f32(shape.to_vec(), v)
    }

    #[test]
    fn top1_and_topk_on_rows() {
        let a = t(&[3, 3], &[0.1, 0.7, 0.2, 0.5, 0.4, 0.1, 0.3, 0.3, 0.4]);
        let b = t(&[3, 3], &[0.1, 0.6, 0.3, 0.4, 0.5, 0.1, 0.2, 0.3, 0.5]);
        let s = score(Metric::Top1, &a, &b, 1.0);
        assert_eq!((s.num, s.den), (2.0, 3.0));
        // Row 2: a's argmax (0) is b's second largest.
        let s = score(Metric::TopK(2), &a, &b, 1.0);
        assert_eq!((s.num, s.den), (3.0, 3.0));
    }

    #[test]
    fn iou_pools_over_the_set() {
        let a = t(&[4], &[0.9, 0.8, 0.1, 0.0]);
        let b = t(&[4], &[0.9, 0.2, 0.5, 0.0]);
        let s = score(Metric::Iou(0.3), &a, &b, 1.0);
        assert_eq!((s.num, s.den), (1.0, 3.0));
        let mut m = Meter::new(Metric::Iou(0.3));
        m.add(0, "a.npy", s);
        m.add(1, "b.npy", score(Metric::Iou(0.3), &a, &a, 1.0));
        // (1 + 2) / (3 + 2), not the mean of 1/3 and 1.
        assert!((m.pooled() - 0.6).abs() < 1e-12);
        assert_eq!(m.worst().unwrap().sample, "a.npy");
        // Empty maps everywhere: nothing to disagree on.
        let z = t(&[2], &[0.0, 0.0]);
        assert_eq!(score(Metric::Iou(0.3), &z, &z, 1.0).value(), 1.0);
    }

    #[test]
    fn snr_and_cosine_are_means() {
        let a = t(&[2], &[1.0, 0.0]);
        let b = t(&[2], &[1.0, 0.1]);
        let s = score(Metric::Snr, &a, &b, 0.99);
        assert!((s.value() - 20.0).abs() < 1e-3, "{s:?}");
        assert_eq!(score(Metric::Snr, &a, &a, 1.0).value(), SNR_CAP_DB);
        let mut m = Meter::new(Metric::Cosine);
        m.add(0, "x", Score { num: 1.0, den: 1.0 });
        m.add(1, "y", Score { num: 0.5, den: 1.0 });
        assert_eq!(m.pooled(), 0.75);
        assert_eq!(m.worst().unwrap().index, 1);
    }

    #[test]
    fn argmax_ignores_nan() {
        assert_eq!(argmax(&[f64::NAN, 1.0, 3.0, 3.0]), 2);
    }
}
