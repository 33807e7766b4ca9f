//! The fidelity gate: every output's pooled fidelity must reach its target.
//!
//! Whether a failed gate refuses the run (exit 3, nothing written) or only reports is the
//! pipeline's call (`enforced`): it refuses when `--min-fidelity` is given, and for a
//! mixed-precision run whose budget was not given explicitly; with an explicit
//! `--size-budget`/`--avg-bits` and no `--min-fidelity` the size is the contract and the
//! gate reports.

use super::measure::{Meter, WorstSample};
use super::spec::OutputPlan;
use serde::Serialize;

/// One output's fidelity over the validation set.
#[derive(Clone, Debug, Serialize)]
pub struct OutputFidelity {
    pub name: String,
    pub metric: String,
    /// Why this metric (`given (--metric)`, or the auto rule).
    pub why: String,
    /// How `value` pools the samples.
    pub pooling: String,
    /// The pooled fidelity (a rate, a mean cosine, or a mean SNR in dB).
    pub value: f64,
    /// A conservative estimate of `value` on unseen data (see
    /// [`super::measure::Meter::conservative`]): what the search compares with the target.
    pub conservative: f64,
    pub target: f64,
    /// True when `--min-fidelity` set the target, false for the metric's default.
    pub target_given: bool,
    /// `dB` for snr, absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub passed: bool,
    pub samples: usize,
    /// Cosine samples left out of the mean because both outputs were empty (see
    /// [`super::measure::EMPTY_NORM_FRACTION`]); absent when none.
    #[serde(skip_serializing_if = "is_zero")]
    pub empty_samples: usize,
    /// The sample with the smallest value (absent when no sample ran).
    pub worst: Option<WorstSample>,
}

/// The gate's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct FidelityReport {
    /// Every output reached its target.
    pub passed: bool,
    /// Whether a failure refuses the run (exit 3) or is only reported.
    pub enforced: bool,
    /// Why the gate refuses or only reports.
    pub mode: String,
    pub outputs: Vec<OutputFidelity>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl OutputFidelity {
    /// The measured result of one plan.
    pub fn of(plan: &OutputPlan, meter: &Meter) -> OutputFidelity {
        let value = meter.pooled();
        // NaN never passes: a comparison with it is false.
        let passed = value >= plan.target;
        OutputFidelity {
            name: plan.name.clone(),
            metric: plan.metric.to_string(),
            why: plan.why.clone(),
            pooling: plan.metric.pooling().to_string(),
            value,
            conservative: meter.conservative(),
            target: plan.target,
            target_given: plan.target_given,
            unit: (plan.metric == super::Metric::Snr).then(|| "dB".to_string()),
            passed,
            samples: meter.samples(),
            empty_samples: meter.empty_samples(),
            worst: meter.worst(),
        }
    }

    /// `" dB"` for snr, empty otherwise: what follows a value or a target when printed.
    pub fn unit_suffix(&self) -> String {
        self.unit
            .as_deref()
            .map(|u| format!(" {u}"))
            .unwrap_or_default()
    }

    /// `output 'y' top1 0.875 below 0.99; worst sample s3.npy: 0.5`, for messages.
    pub fn describe(&self) -> String {
        let unit = self.unit_suffix();
        let worst = match &self.worst {
            Some(w) => format!("; worst sample {}: {}", w.sample, fmt_value(w.value)),
            None => String::new(),
        };
        let rel = if self.passed { ">=" } else { "below" };
        format!(
            "output '{}' {} {}{unit} {rel} {}{unit}{worst}",
            self.name,
            self.metric,
            fmt_value(self.value),
            self.target
        )
    }
}

/// A fidelity value with six digits, trailing zeros dropped.
pub fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

impl FidelityReport {
    pub fn new(outputs: Vec<OutputFidelity>, enforced: bool, mode: String) -> FidelityReport {
        FidelityReport {
            passed: outputs.iter().all(|o| o.passed),
            enforced,
            mode,
            outputs,
        }
    }

    /// The outputs below their targets.
    pub fn failing(&self) -> impl Iterator<Item = &OutputFidelity> {
        self.outputs.iter().filter(|o| !o.passed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fidelity::measure::Score;
    use crate::fidelity::Metric;

    #[test]
    fn verdict_and_message() {
        let plan = OutputPlan {
            name: "y".into(),
            metric: Metric::Top1,
            why: "given (--metric)".into(),
            target: 0.99,
            target_given: false,
        };
        let mut m = Meter::new(Metric::Top1);
        m.add(0, "a.npy", Score { num: 8.0, den: 8.0 });
        m.add(1, "b.npy", Score { num: 6.0, den: 8.0 });
        let o = OutputFidelity::of(&plan, &m);
        assert!(!o.passed);
        assert_eq!(o.value, 0.875);
        assert_eq!(
            o.describe(),
            "output 'y' top1 0.875 below 0.99; worst sample b.npy: 0.75"
        );
        let r = FidelityReport::new(vec![o], true, "refuses".into());
        assert!(!r.passed);
        assert_eq!(r.failing().count(), 1);
        assert_eq!(fmt_value(1.0), "1");
    }
}
