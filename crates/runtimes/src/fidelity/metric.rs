//! The task metrics an output's fidelity is measured with, their names on the command line,
//! their default targets and the targets they accept.

use std::fmt;

/// How one output of the optimized model is compared with the original's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    /// Argmax agreement on the last axis: a classifier's or a sequence tagger's decision.
    Top1,
    /// The original's argmax is among the optimized output's K largest (last axis).
    TopK(usize),
    /// Cosine similarity of the flattened tensors.
    Cosine,
    /// Both maps thresholded at T (`> T`); intersection over union pooled over the set.
    Iou(f64),
    /// Signal-to-noise ratio in dB: 10·log10(Σa² / Σ(a−b)²).
    Snr,
}

/// The default target of the rate metrics (top1, topk, iou) and of cosine.
pub const DEFAULT_TARGET: f64 = 0.99;
/// The default target of `snr`, in dB: the error's energy at most 1% of the signal's,
/// about what a cosine of 0.995 allows.
pub const DEFAULT_SNR_TARGET_DB: f64 = 20.0;
/// Bounds of one sample's SNR, in dB: identical outputs count as the upper one (float32
/// rounding is near 150 dB), an all-zero original with a non-zero candidate as the lower.
pub const SNR_CAP_DB: f64 = 150.0;

/// The names `--metric` accepts, for messages.
pub const KNOWN: &str = "top1, topk:K, cosine, iou:T, snr, auto";

impl Metric {
    /// Parses a metric name: `top1`, `topk:K` (K ≥ 1), `cosine`, `iou:T` (T finite), `snr`.
    pub fn parse(s: &str) -> Result<Metric, String> {
        let unknown = || format!("unknown metric '{s}' (known: {KNOWN})");
        match s {
            "top1" => return Ok(Metric::Top1),
            "cosine" => return Ok(Metric::Cosine),
            "snr" => return Ok(Metric::Snr),
            _ => {}
        }
        if let Some(k) = s.strip_prefix("topk:") {
            return match k.parse::<usize>() {
                Ok(k) if k >= 1 => Ok(Metric::TopK(k)),
                _ => Err(format!(
                    "metric '{s}': K must be a whole number ≥ 1, e.g. topk:5"
                )),
            };
        }
        if let Some(t) = s.strip_prefix("iou:") {
            return match t.parse::<f64>() {
                Ok(t) if t.is_finite() => Ok(Metric::Iou(t)),
                _ => Err(format!(
                    "metric '{s}': T must be a finite threshold, e.g. iou:0.3"
                )),
            };
        }
        Err(unknown())
    }

    /// True for the metrics that are a rate over the set (top1, topk, iou): their targets
    /// lie in (0, 1].
    pub fn is_rate(self) -> bool {
        matches!(self, Metric::Top1 | Metric::TopK(_) | Metric::Iou(_))
    }

    /// The target used when `--min-fidelity` gives none for this output.
    pub fn default_target(self) -> f64 {
        match self {
            Metric::Snr => DEFAULT_SNR_TARGET_DB,
            _ => DEFAULT_TARGET,
        }
    }

    /// `Err(why)` when `t` cannot be a target of this metric.
    pub fn check_target(self, t: f64) -> Result<(), String> {
        match self {
            _ if self.is_rate() => {
                if t > 0.0 && t <= 1.0 {
                    Ok(())
                } else {
                    Err(format!(
                        "a target for {self} (a rate over the set) must be in (0, 1]"
                    ))
                }
            }
            Metric::Cosine => {
                if (-1.0..=1.0).contains(&t) {
                    Ok(())
                } else {
                    Err("a target for cosine must be between -1 and 1, e.g. 0.999".into())
                }
            }
            _ => {
                if t.is_finite() {
                    Ok(())
                } else {
                    Err("a target for snr must be a finite number of dB, e.g. 25".into())
                }
            }
        }
    }

    /// How the pooled value is formed, for the report.
    pub fn pooling(self) -> &'static str {
        match self {
            Metric::Top1 | Metric::TopK(_) => "agreeing rows / rows over all samples",
            Metric::Iou(_) => "intersection / union summed over all samples",
            Metric::Cosine => "mean over samples",
            Metric::Snr => "mean over samples (dB)",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Top1 => write!(f, "top1"),
            Metric::TopK(k) => write!(f, "topk:{k}"),
            Metric::Cosine => write!(f, "cosine"),
            Metric::Iou(t) => write!(f, "iou:{t}"),
            Metric::Snr => write!(f, "snr"),
        }
    }
}

/// A metric as asked for: a given one, or `auto` (picked from the model's graph).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetricChoice {
    Auto,
    Given(Metric),
}

impl MetricChoice {
    pub fn parse(s: &str) -> Result<MetricChoice, String> {
        if s == "auto" {
            Ok(MetricChoice::Auto)
        } else {
            Metric::parse(s).map(MetricChoice::Given)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in ["top1", "topk:5", "cosine", "iou:0.3", "snr"] {
            assert_eq!(Metric::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(MetricChoice::parse("auto"), Ok(MetricChoice::Auto));
        for bad in ["top2", "topk:0", "topk:x", "iou:nan", "iou:", "", "Top1"] {
            assert!(Metric::parse(bad).is_err(), "{bad}");
        }
        assert!(Metric::parse("accuracy")
            .unwrap_err()
            .contains("unknown metric"));
    }

    #[test]
    fn targets() {
        assert!(Metric::Top1.check_target(1.0).is_ok());
        assert!(Metric::Top1.check_target(0.0).is_err());
        assert!(Metric::Iou(0.3).check_target(1.5).is_err());
        assert!(Metric::TopK(3).check_target(f64::NAN).is_err());
        assert!(Metric::Cosine.check_target(-1.0).is_ok());
        assert!(Metric::Cosine.check_target(1.01).is_err());
        assert!(Metric::Snr.check_target(25.0).is_ok());
        assert!(Metric::Snr.check_target(f64::INFINITY).is_err());
        assert_eq!(Metric::Snr.default_target(), DEFAULT_SNR_TARGET_DB);
        assert_eq!(Metric::Iou(0.5).default_target(), DEFAULT_TARGET);
    }
}
