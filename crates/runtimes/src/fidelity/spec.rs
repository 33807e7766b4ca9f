//! What the user asked for (`--metric [OUTPUT=]NAME`, `--min-fidelity [OUTPUT=]F`, or the
//! `metric` and `min-fidelity` keys of optimize.toml), checked in two steps: the syntax and
//! the ranges that need no model before any work ([`FidelitySpec::parse`]), then the output
//! names and each output's target range against the loaded model ([`FidelitySpec::resolve`]).

use super::auto;
use super::metric::{Metric, MetricChoice};
use optimize_ir::error::{Error, Result};
use optimize_ir::ir::Model;
use serde::Serialize;

/// A bad entry: which setting (`metric` or `min-fidelity`), the entry as shown, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryError {
    pub key: &'static str,
    pub value: String,
    pub why: String,
}

/// The metrics and targets asked for, by output (`None` = every output).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FidelitySpec {
    pub metric_all: Option<MetricChoice>,
    pub metrics: Vec<(String, MetricChoice)>,
    pub target_all: Option<f64>,
    pub targets: Vec<(String, f64)>,
}

/// One output's metric and target, resolved against the model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutputPlan {
    pub name: String,
    #[serde(serialize_with = "as_text")]
    pub metric: Metric,
    /// Why this metric: `given (--metric)` or the auto rule that picked it.
    pub why: String,
    pub target: f64,
    /// True when `--min-fidelity` set the target (else the metric's default).
    pub target_given: bool,
}

fn as_text<S: serde::Serializer>(m: &Metric, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&m.to_string())
}

/// A usage error kept on one line (output names and entries may hold control characters).
fn usage(msg: String) -> Error {
    Error::Usage(optimize_ir::error::one_line(&msg))
}

/// Splits `OUTPUT=VALUE` at the last `=` (output names may hold `:`); no `=` is `(None, s)`.
fn split(s: &str) -> (Option<&str>, &str) {
    match s.rsplit_once('=') {
        Some((o, v)) => (Some(o), v),
        None => (None, s),
    }
}

/// A number as messages show it (`NaN`, `1e-30`).
fn shown(x: f64) -> String {
    optimize_ir::error::Shown::shown(x)
}

impl FidelitySpec {
    /// Parses the entries. Checked here: metric names, numbers, entries given twice, and
    /// target ranges that hold whatever the outputs are (a target in [-1, 1] unless a
    /// metric in dB, `snr`, is asked for; rate targets of outputs given a rate metric).
    pub fn parse(
        metrics: &[String],
        targets: &[String],
    ) -> std::result::Result<FidelitySpec, EntryError> {
        let mut spec = FidelitySpec::default();
        for m in metrics {
            let err = |why: String| EntryError {
                key: "metric",
                value: m.clone(),
                why,
            };
            let (out, name) = split(m);
            let choice = MetricChoice::parse(name).map_err(err)?;
            match out {
                Some("") => return Err(err("the output name before '=' is empty".into())),
                Some(o) => {
                    if spec.metrics.iter().any(|(n, _)| n == o) {
                        return Err(err(format!("output '{o}' is given a metric twice")));
                    }
                    spec.metrics.push((o.to_string(), choice));
                }
                None => {
                    if spec.metric_all.is_some() {
                        return Err(err(
                            "a metric for every output is given twice (use OUTPUT=NAME for one output)"
                                .into(),
                        ));
                    }
                    spec.metric_all = Some(choice);
                }
            }
        }
        let any_snr = spec.metric_all == Some(MetricChoice::Given(Metric::Snr))
            || spec
                .metrics
                .iter()
                .any(|(_, c)| *c == MetricChoice::Given(Metric::Snr));
        for t in targets {
            let (out, num) = split(t);
            let value = |x: f64| match out {
                Some(o) => format!("{o}={}", shown(x)),
                None => shown(x),
            };
            let err = |value: String, why: String| EntryError {
                key: "min-fidelity",
                value,
                why,
            };
            let x: f64 = num.trim().parse().map_err(|_| {
                err(
                    t.clone(),
                    "expected a number or OUTPUT=NUMBER, e.g. 0.99 or prob=0.98".into(),
                )
            })?;
            if !x.is_finite() {
                return Err(err(value(x), "expected a finite target".into()));
            }
            // The metric this target will meet, when it is already known.
            let metric = match out {
                Some(o) => spec
                    .metrics
                    .iter()
                    .find(|(n, _)| n == o)
                    .map(|(_, c)| *c)
                    .or(spec.metric_all),
                None => spec.metric_all,
            };
            let range = match metric {
                Some(MetricChoice::Given(m)) => m.check_target(x),
                _ if any_snr => Ok(()),
                _ => Metric::Cosine.check_target(x),
            };
            range.map_err(|why| err(value(x), why))?;
            match out {
                Some("") => {
                    return Err(err(value(x), "the output name before '=' is empty".into()))
                }
                Some(o) => {
                    if spec.targets.iter().any(|(n, _)| n == o) {
                        return Err(err(
                            value(x),
                            format!("output '{o}' is given a target twice"),
                        ));
                    }
                    spec.targets.push((o.to_string(), x));
                }
                None => {
                    if spec.target_all.is_some() {
                        return Err(err(
                            value(x),
                            "a target for every output is given twice (use OUTPUT=F for one output)"
                                .into(),
                        ));
                    }
                    spec.target_all = Some(x);
                }
            }
        }
        Ok(spec)
    }

    /// True when any target was given (`--min-fidelity`): the gate then refuses.
    pub fn has_targets(&self) -> bool {
        self.target_all.is_some() || !self.targets.is_empty()
    }

    /// Every target given, for range checks.
    pub fn all_targets(&self) -> impl Iterator<Item = f64> + '_ {
        self.target_all
            .into_iter()
            .chain(self.targets.iter().map(|(_, t)| *t))
    }

    /// Each graph output's metric (auto-picked on `model`, the original) and target. An
    /// output name that is not an output of the model, a target outside its metric's range,
    /// or one bare target for outputs in dB and outputs in rates is a usage error.
    pub fn resolve(&self, model: &Model) -> Result<Vec<OutputPlan>> {
        let outputs = &model.graph.outputs;
        let known = || {
            let mut v: Vec<&str> = outputs.iter().map(String::as_str).collect();
            v.truncate(10);
            v.join(", ")
        };
        for (flag, name) in self
            .metrics
            .iter()
            .map(|(n, _)| ("--metric", n))
            .chain(self.targets.iter().map(|(n, _)| ("--min-fidelity", n)))
        {
            if !outputs.iter().any(|o| o == name) {
                return Err(usage(format!(
                    "{flag} {name}=…: the model has no output '{name}' (its outputs: {})",
                    known()
                )));
            }
        }
        let mut plans = Vec::new();
        for name in outputs {
            let given = self
                .metrics
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, c)| (*c, format!("given (--metric {name}=…)")))
                .or(self.metric_all.map(|c| (c, "given (--metric)".to_string())));
            let (metric, why) = match given {
                Some((MetricChoice::Given(m), why)) => (m, why),
                Some((MetricChoice::Auto, _)) | None => {
                    let (m, why) = auto::pick(model, name);
                    (m, format!("auto: {why}"))
                }
            };
            let own = self
                .targets
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| *t);
            let (target, target_given) = match own.or(self.target_all) {
                Some(t) => (t, true),
                None => (metric.default_target(), false),
            };
            if target_given {
                let shown_entry = match own {
                    Some(t) => format!("{name}={}", shown(t)),
                    None => shown(target),
                };
                metric.check_target(target).map_err(|why| {
                    usage(format!(
                        "--min-fidelity {shown_entry}: output '{name}' is measured with {metric}: {why}"
                    ))
                })?;
            }
            plans.push(OutputPlan {
                name: name.clone(),
                metric,
                why,
                target,
                target_given,
            });
        }
        if let Some(t) = self.target_all {
            let bare = |p: &&OutputPlan| !self.targets.iter().any(|(n, _)| *n == p.name);
            let db: Vec<&str> = plans
                .iter()
                .filter(bare)
                .filter(|p| p.metric == Metric::Snr)
                .map(|p| p.name.as_str())
                .collect();
            let other = plans.iter().filter(bare).any(|p| p.metric != Metric::Snr);
            if !db.is_empty() && other {
                return Err(usage(format!(
                    "--min-fidelity {}: one target for outputs measured in dB (snr: {}) and outputs measured as rates or cosines; give the snr outputs their own, e.g. --min-fidelity {}=25",
                    shown(t),
                    db.join(", "),
                    db[0]
                )));
            }
        }
        Ok(plans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_entries() {
        let spec = FidelitySpec::parse(&s(&["top1", "out:0=iou:0.3"]), &s(&["0.95", "out:0=0.8"]))
            .unwrap();
        assert_eq!(spec.metric_all, Some(MetricChoice::Given(Metric::Top1)));
        assert_eq!(
            spec.metrics,
            vec![("out:0".to_string(), MetricChoice::Given(Metric::Iou(0.3)))]
        );
        assert_eq!(spec.target_all, Some(0.95));
        assert_eq!(spec.targets, vec![("out:0".to_string(), 0.8)]);
        assert!(spec.has_targets());
    }

    #[test]
    fn refuses_bad_entries() {
        let e = FidelitySpec::parse(&s(&["accuracy"]), &[]).unwrap_err();
        assert_eq!(e.key, "metric");
        assert!(e.why.contains("unknown metric 'accuracy'"), "{e:?}");
        let e = FidelitySpec::parse(&[], &s(&["nan"])).unwrap_err();
        assert_eq!((e.key, e.value.as_str()), ("min-fidelity", "NaN"));
        // A rate target must be in (0, 1].
        let e = FidelitySpec::parse(&s(&["top1"]), &s(&["0"])).unwrap_err();
        assert!(e.why.contains("(0, 1]"), "{e:?}");
        // Without snr, targets beyond the cosine range are refused at once.
        assert!(FidelitySpec::parse(&[], &s(&["2"])).is_err());
        assert!(FidelitySpec::parse(&s(&["e=snr"]), &s(&["e=25"])).is_ok());
        assert!(FidelitySpec::parse(&s(&["top1", "cosine"]), &[]).is_err());
        assert!(FidelitySpec::parse(&s(&["y=top1", "y=cosine"]), &[]).is_err());
        assert!(FidelitySpec::parse(&s(&["=top1"]), &[]).is_err());
        assert!(FidelitySpec::parse(&[], &s(&["0.9", "0.8"])).is_err());
    }
}
