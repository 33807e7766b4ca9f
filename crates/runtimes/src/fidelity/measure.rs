//! Measuring one output's fidelity sample by sample, pooled over the validation set.
//!
//! Per sample (a = the original's output, b = the optimized model's, as f64):
//! * `top1`: rows along the last axis whose argmax agrees (first index on ties, NaN never
//!   the largest); `topk:K`: rows where the original's argmax is among b's K largest.
//!   Pooled: agreeing rows / rows over the whole set.
//! * `iou:T`: |{a > T} ∩ {b > T}| and |{a > T} ∪ {b > T}|. Pooled: Σ intersections /
//!   Σ unions (1 when both maps are empty everywhere).
//! * `cosine`: the cosine of the flattened tensors (see [`optimize_ir::data::compare`]). Pooled:
//!   the mean; a sample where both outputs are empty (norms below [`EMPTY_NORM_FRACTION`]
//!   of the set's largest original norm) is left out.
//! * `snr`: 10·log10(Σa² / Σ(a−b)²) in dB, clamped to ±[`SNR_CAP_DB`]. Pooled: the mean.
//!
//! The worst sample is the one with the smallest per-sample value (the first on ties).
//! Outputs that have no numeric view (strings) score 1 when bit-identical, else 0.

use super::metric::{Metric, SNR_CAP_DB};
use optimize_ir::data::HostTensor;
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
    score_sample(metric, a, b, cosine).0
}

/// [`score`] and the sample's [`SampleExtra`], from one conversion of the two outputs.
pub fn score_sample(
    metric: Metric,
    a: &HostTensor,
    b: &HostTensor,
    cosine: f64,
) -> (Score, SampleExtra) {
    let (Some(va), Some(vb)) = (a.to_f64(), b.to_f64()) else {
        let num = match metric {
            Metric::Cosine => cosine,
            _ if a.bit_identical(b) => 1.0,
            _ => 0.0,
        };
        return (Score { num, den: 1.0 }, SampleExtra::default());
    };
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let mut extra = SampleExtra::default();
    let score = match metric {
        Metric::Cosine | Metric::Snr => {
            extra.norms = Some((norm(&va), norm(&vb)));
            let num = match metric {
                Metric::Snr => snr_db(&va, &vb),
                _ => cosine,
            };
            Score { num, den: 1.0 }
        }
        Metric::Top1 => {
            extra.robust_rows = Some(robust_top1_rows(&va, &vb, last_dim(a)));
            topk(&va, &vb, last_dim(a), 1)
        }
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
    };
    (score, extra)
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

/// A cosine sample whose original and optimized outputs both have a norm below this
/// fraction of the largest original norm in the set holds nothing to compare, and is left out
/// of the mean (as two empty maps are out of IoU's sums). PP-OCR det on a photograph without
/// text gives a map of ~1e-6 everywhere; the cosine of two such maps is noise, anywhere in
/// [−1, 1]. Counting such samples as 1 instead would tie the mean to how many empty crops a
/// set happens to hold. A model that draws something where the original drew nothing keeps
/// its low cosine.
pub const EMPTY_NORM_FRACTION: f64 = 1e-3;

/// One sample as added to a [`Meter`].
#[derive(Clone, Debug)]
struct Entry {
    index: usize,
    id: String,
    score: Score,
    extra: SampleExtra,
}

/// What a sample adds beyond its score, for the rules of [`Meter`]: the outputs' norms
/// (cosine: the empty-sample rule) and the rows that agree with margin (top1: the
/// conservative estimate).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SampleExtra {
    /// (‖original‖, ‖optimized‖).
    pub norms: Option<(f64, f64)>,
    /// Rows whose argmax agrees and whose optimized output keeps at least half of the
    /// original's top-1 margin (top1 only).
    pub robust_rows: Option<f64>,
}

/// Rows of length `c` where b's argmax is a's and b keeps at least half of a's margin
/// between its top class and the runner-up (b's margin: a's class against b's best other).
fn robust_top1_rows(a: &[f64], b: &[f64], c: usize) -> f64 {
    if c == 0 {
        return 0.0;
    }
    let mut rows = 0u64;
    for (ra, rb) in a.chunks_exact(c).zip(b.chunks_exact(c)) {
        let k = argmax(ra);
        let best_other = |r: &[f64]| {
            r.iter()
                .enumerate()
                .filter(|&(i, _)| i != k)
                .map(|(_, &v)| v)
                .fold(f64::NEG_INFINITY, f64::max)
        };
        let (ma, mb) = (ra[k] - best_other(ra), rb[k] - best_other(rb));
        if argmax(rb) == k && (c == 1 || mb >= 0.5 * ma) {
            rows += 1;
        }
    }
    rows as f64
}

/// One output's fidelity over the samples as they run.
#[derive(Clone, Debug)]
pub struct Meter {
    pub metric: Metric,
    entries: Vec<Entry>,
}

impl Meter {
    pub fn new(metric: Metric) -> Meter {
        Meter {
            metric,
            entries: Vec::new(),
        }
    }

    /// Adds sample `index` (named `id`).
    pub fn add(&mut self, index: usize, id: &str, s: Score) {
        self.add_sample(index, id, s, SampleExtra::default());
    }

    /// Adds sample `index` with what [`score_sample`] found beside its score.
    pub fn add_sample(&mut self, index: usize, id: &str, s: Score, extra: SampleExtra) {
        self.entries.push(Entry {
            index,
            id: id.to_string(),
            score: s,
            extra,
        });
    }

    /// A conservative estimate of the pooled value on data not seen, which the search
    /// compares with the target (the gate uses [`Meter::pooled`]):
    /// * `top1`: the rate of rows that agree **and** keep at least half of the original's
    ///   top-1 margin; a row about to flip on these samples flips on others;
    /// * `cosine` and `snr`: the mean minus its standard error (n ≥ 2);
    /// * otherwise the pooled value.
    pub fn conservative(&self) -> f64 {
        let scores = self.scores();
        match self.metric {
            Metric::Top1 if self.entries.iter().all(|e| e.extra.robust_rows.is_some()) => Score {
                num: self
                    .entries
                    .iter()
                    .filter_map(|e| e.extra.robust_rows)
                    .sum(),
                den: scores.iter().map(|s| s.den).sum(),
            }
            .value(),
            Metric::Cosine | Metric::Snr if scores.len() >= 2 => {
                let n = scores.len() as f64;
                let mean = self.pooled();
                let var = scores
                    .iter()
                    .map(|s| (s.value() - mean).powi(2))
                    .sum::<f64>()
                    / (n - 1.0);
                mean - (var / n).sqrt()
            }
            _ => self.pooled(),
        }
    }

    /// Whether each sample counts: not an empty cosine sample (see [`EMPTY_NORM_FRACTION`]).
    fn counted(&self) -> Vec<bool> {
        let largest = self
            .entries
            .iter()
            .filter_map(|e| e.extra.norms.map(|n| n.0))
            .filter(|n| n.is_finite())
            .fold(0.0f64, f64::max);
        let floor = EMPTY_NORM_FRACTION * largest;
        self.entries
            .iter()
            .map(|e| match (self.metric, e.extra.norms) {
                (Metric::Cosine, Some((na, nb))) => !(na <= floor && nb <= floor),
                _ => true,
            })
            .collect()
    }

    /// The counted samples' scores.
    fn scores(&self) -> Vec<Score> {
        self.entries
            .iter()
            .zip(self.counted())
            .filter(|(_, c)| *c)
            .map(|(e, _)| e.score)
            .collect()
    }

    /// The pooled value: a set-level rate for top1/topk/iou, the mean for cosine/snr
    /// (1 — or the SNR cap — when no sample was added).
    pub fn pooled(&self) -> f64 {
        let scores = self.scores();
        if self.metric.is_rate() {
            Score {
                num: scores.iter().map(|s| s.num).sum(),
                den: scores.iter().map(|s| s.den).sum(),
            }
            .value()
        } else if scores.is_empty() {
            Score { num: 0.0, den: 0.0 }.value()
        } else {
            scores.iter().map(|s| s.value()).sum::<f64>() / scores.len() as f64
        }
    }

    pub fn samples(&self) -> usize {
        self.entries.len()
    }

    /// How many cosine samples were left out because both outputs were empty.
    pub fn empty_samples(&self) -> usize {
        self.counted().iter().filter(|c| !**c).count()
    }

    /// The sample with the smallest value (the first on ties).
    pub fn worst(&self) -> Option<WorstSample> {
        let mut worst: Option<WorstSample> = None;
        for (e, _) in self.entries.iter().zip(self.counted()).filter(|(_, c)| *c) {
            let v = e.score.value();
            if worst.as_ref().is_none_or(|w| v < w.value) {
                worst = Some(WorstSample {
                    index: e.index,
                    sample: e.id.clone(),
                    value: v,
                });
            }
        }
        worst
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

    #[test]
    fn a_cosine_sample_where_both_outputs_are_empty_is_left_out() {
        let sc = |v: f64| Score { num: v, den: 1.0 };
        let mut m = Meter::new(Metric::Cosine);
        let norms = |a: f64, b: f64| SampleExtra {
            norms: Some((a, b)),
            robust_rows: None,
        };
        m.add_sample(0, "text", sc(0.99), norms(100.0, 100.0));
        m.add_sample(1, "empty", sc(0.0), norms(1e-4, 2e-4));
        m.add_sample(2, "false_alarm", sc(0.0), norms(1e-4, 5.0));
        assert!((m.pooled() - (0.99 + 0.0) / 2.0).abs() < 1e-12);
        assert_eq!(m.empty_samples(), 1);
        assert_eq!(m.worst().unwrap().sample, "false_alarm");
        // Without norms, or when every sample is as small, nothing is assumed empty.
        let mut m = Meter::new(Metric::Cosine);
        m.add(0, "x", sc(0.0));
        assert_eq!(m.pooled(), 0.0);
        let mut m = Meter::new(Metric::Cosine);
        m.add_sample(0, "a", sc(0.5), norms(1e-4, 1e-4));
        m.add_sample(1, "b", sc(0.7), norms(2e-4, 2e-4));
        assert!((m.pooled() - 0.6).abs() < 1e-12);
        assert_eq!(m.empty_samples(), 0);
    }

    #[test]
    fn the_conservative_estimate_needs_margin_or_spread() {
        // Row 0 agrees with its margin; row 1 agrees but keeps 0.1 of 0.6; row 2 flips.
        let a = t(&[3, 2], &[0.9, 0.1, 0.8, 0.2, 0.6, 0.4]);
        let b = t(&[3, 2], &[0.85, 0.15, 0.53, 0.47, 0.45, 0.55]);
        let mut m = Meter::new(Metric::Top1);
        let (s, extra) = score_sample(Metric::Top1, &a, &b, 1.0);
        m.add_sample(0, "s", s, extra);
        assert!((m.pooled() - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.conservative() - 1.0 / 3.0).abs() < 1e-12);
        // Cosine: the mean minus its standard error; one sample is its own estimate.
        let mut m = Meter::new(Metric::Cosine);
        m.add(0, "x", Score { num: 1.0, den: 1.0 });
        assert_eq!(m.conservative(), 1.0);
        m.add(1, "y", Score { num: 0.9, den: 1.0 });
        let se = (0.005f64 / 2.0).sqrt();
        assert!((m.conservative() - (0.95 - se)).abs() < 1e-12);
    }
}
