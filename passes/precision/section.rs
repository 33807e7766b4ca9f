//! The precision pass's section of the report, typed. The pass builds it, the report
//! carries it (as JSON, schema in `schema/report.schema.json`), and the terminal summary and
//! the HTML report read it back as these types ([`PrecisionSection::from_report`]).
//!
//! Which shape a section has depends on how the pass ended: skipped (the model keeps fp32
//! and the run goes on), unchanged (no candidate operator), or allocated.

use crate::simplify::SimplifyStats;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The precision section, by how the pass ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PrecisionSection {
    Skipped(Skipped),
    Allocated(Box<Allocated>),
    Unchanged(Unchanged),
}

/// The pass was not asked for explicitly and could not run: the model keeps fp32.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub skipped: String,
    pub hint: String,
    pub nodes: Vec<NodeRow>,
}

/// No candidate operator: nothing changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unchanged {
    pub budget: BudgetInfo,
    pub weight_bytes_before: u64,
    pub weight_bytes_after: u64,
    pub size_fraction: f64,
    pub nodes: Vec<NodeRow>,
    pub note: String,
    /// BatchNorms this run folded itself (0 after the `fold-batchnorm` pass).
    pub folded_batchnorms: usize,
    pub simplified: SimplifyStats,
}

/// An allocation was chosen, checked and written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Allocated {
    pub budget: BudgetInfo,
    pub strategy: StrategyInfo,
    pub weight_bytes_before: u64,
    pub weight_bytes_after: u64,
    pub size_fraction: f64,
    /// BatchNorms this run folded itself (0 after the `fold-batchnorm` pass).
    pub folded_batchnorms: usize,
    pub calibration: CalibrationInfo,
    pub objective: String,
    pub errors: ErrorsInfo,
    pub nodes: Vec<NodeRow>,
    pub solver: SolverInfo,
    pub checker: CheckerInfo,
    pub inserted_nodes: usize,
    /// Bytes of quantization parameters the rewrite added beyond the ILP's estimate.
    pub rewrite_overhead_bytes: u64,
    pub allocation_rounds: usize,
    /// Simplifications this run did itself (none after the `simplify` pass).
    pub simplified: SimplifyStats,
    /// Operators kept out of int8 because calibration saw no range for their tensors.
    pub int8_without_range: Vec<String>,
    pub formats: Formats,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchInfo>,
    /// The latency model, with `--objective speed` or `--latency-budget`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencySection>,
}

/// What the latency model measured and predicted, and the output's measured time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencySection {
    pub cpu_model: String,
    /// The CPU flags that matter (avx2, avx512_vnni, amx…).
    pub cpu_flags: Vec<String>,
    pub threads: usize,
    pub onnxruntime: String,
    /// `speed` (fastest within the budget or fidelity target) or `error`.
    pub objective: String,
    /// `--latency-budget`, a fraction of fp32's time.
    pub budget: Option<f64>,
    pub limit_ms: Option<f64>,
    /// `hit`, `miss` or `miss_not_stored`.
    pub cache: super::latency_cache::CacheStatus,
    pub cache_file: Option<String>,
    pub cache_note: Option<String>,
    /// Seconds spent measuring (or reading the cache).
    pub seconds: f64,
    pub runs: usize,
    pub fp32_ms: f64,
    /// The model's prediction for the output, and the output timed as the variants were.
    pub predicted_ms: f64,
    pub measured_ms: Option<f64>,
    /// `(predicted − measured) / measured`.
    pub prediction_error: Option<f64>,
    /// One whole-model variant per precision.
    pub variants: Vec<super::latency::VariantTiming>,
    /// Per operator: the predicted change of the model's time, against fp32, of each
    /// precision it allows (ms), and the one chosen.
    pub operators: Vec<LatencyRow>,
    pub qdq_ms_per_melem: f64,
    /// What one int8/float boundary costs (ms per million elements, or per boundary when
    /// shapes are dynamic), and the mixed variant it was fitted on.
    pub boundary_ms_per_melem: f64,
    pub boundary_fit: Option<super::latency::BoundaryFit>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyRow {
    pub key: String,
    pub op: String,
    pub chosen: String,
    pub delta_ms: BTreeMap<String, f64>,
}

/// The budget as given, and in bytes when it is a size fraction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetInfo {
    pub kind: String,
    pub value: f64,
    pub bytes: Option<u64>,
}

/// How the allocation was chosen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StrategyInfo {
    Ilp,
    Uniform { asked: String, used: Option<String> },
    Random { seed: u64 },
}

/// Where the activation ranges came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrationInfo {
    pub source: String,
    pub dir: Option<String>,
    pub samples: usize,
    pub method: String,
    pub warning: Option<String>,
    /// The hold-out of the calibration folder for validation, when asked for.
    pub holdout: Option<Holdout>,
}

/// The calibration folder split: a seeded part held out for validation, the rest the pool
/// calibration draws from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Holdout {
    pub seed: u64,
    pub folder_samples: usize,
    /// The samples validation runs on instead of calibration (empty when not split).
    pub validation_samples: Vec<String>,
    pub calibration_pool: usize,
    pub rule: String,
    /// Why the folder was not split (too few samples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_split: Option<String>,
}

/// How the error table was filled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorsInfo {
    pub measured: usize,
    pub unmeasured: usize,
    pub max_measurements: usize,
    pub time_limit_hit: bool,
    pub unexercised: usize,
    pub suffix_measured: bool,
    pub seconds: f64,
    pub relevance_problem: Option<String>,
    pub measured_at_logits: Vec<LogitsAt>,
}

/// An output whose errors were measured at the logits before it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogitsAt {
    pub output: String,
    pub logits: String,
}

/// One candidate operator with the precision it got. Non-finite numbers are `None`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRow {
    pub name: String,
    pub key: String,
    pub op: String,
    pub precision: String,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub error_measured: Option<f64>,
    pub error_proxy: Option<f64>,
    pub relevance: Option<f64>,
}

/// The ILP solve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SolverInfo {
    pub status: String,
    pub objective: Option<f64>,
    pub bound: Option<f64>,
    pub seconds: f64,
    pub gap: Option<f64>,
}

/// The independent checker's verdict on the allocation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckerInfo {
    pub passed: bool,
    pub problems: Vec<String>,
}

/// Which formats were offered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode")]
pub enum Formats {
    #[serde(rename = "weight-only")]
    WeightOnly { why: String },
    #[serde(rename = "all")]
    All { activations: String },
}

/// The fidelity-driven search over size budgets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchInfo {
    pub start: f64,
    pub first_probe: FirstProbeInfo,
    pub max: f64,
    pub tolerance: f64,
    pub step: f64,
    pub chosen_budget: f64,
    pub chosen_size_fraction: f64,
    pub probes: Vec<Probe>,
    /// What the probes' budgets are: absent for size fractions, `latency` for fractions
    /// of fp32's predicted time (`--objective speed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub axis: Option<String>,
    /// Why the written allocation is not the smallest passing budget's (the latency axis
    /// writes the fastest passing probe as measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen_note: Option<String>,
    /// Uniform int8 measured once beside the probes (a reference, never written).
    pub uniform_int8: Option<UniformPoint>,
}

/// Where the first probe came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FirstProbeInfo {
    pub budget: f64,
    /// `error model` or `default`.
    pub source: String,
    /// The rule and figures behind it, or why there was no prediction.
    pub detail: serde_json::Value,
}

/// One probe: a budget allocated, rewritten and validated (or infeasible).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<f64>,
    pub passed: bool,
    /// Why the allocation could not meet the budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infeasible: Option<String>,
    pub seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_fraction: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_bytes: Option<u64>,
    /// Pooled fidelity per output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fidelity: Option<BTreeMap<String, Option<f64>>>,
    /// The conservative estimate per output (what the verdict is taken on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conservative: Option<BTreeMap<String, Option<f64>>>,
    /// On the latency axis: the probe's model timed as the latency table was (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_ms: Option<f64>,
}

/// Uniform int8's point on the curve: a probe without a budget, and the precision used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UniformPoint {
    #[serde(flatten)]
    pub probe: Probe,
    pub precision_used: Option<String>,
}

/// `Some(x)` for a finite number, `None` (JSON null) otherwise.
pub fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

impl PrecisionSection {
    /// The section as the report carries it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Reads a report's precision section back (`None` when it has none of these shapes).
    pub fn from_report(v: &serde_json::Value) -> Option<PrecisionSection> {
        serde_json::from_value(v.clone()).ok()
    }

    /// The operators with their precisions (empty when skipped or unchanged).
    pub fn nodes(&self) -> &[NodeRow] {
        match self {
            PrecisionSection::Skipped(s) => &s.nodes,
            PrecisionSection::Unchanged(u) => &u.nodes,
            PrecisionSection::Allocated(a) => &a.nodes,
        }
    }

    /// The search, when one ran.
    pub fn search(&self) -> Option<&SearchInfo> {
        match self {
            PrecisionSection::Allocated(a) => a.search.as_ref(),
            _ => None,
        }
    }
}

impl Allocated {
    /// One line for terminals: `solver optimal objective 1.2e-3 bound 1.2e-3 gap 0.0% 0.41s; size …`.
    pub fn solver_line(&self) -> String {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.3e}"));
        let s = &self.solver;
        format!(
            "solver {} objective {} bound {} gap {} {:.2}s; size {:.4} of fp32 ({} → {} bytes)",
            s.status,
            f(s.objective),
            f(s.bound),
            s.gap
                .map_or("-".to_string(), |g| format!("{:.1}%", 100.0 * g)),
            s.seconds,
            self.size_fraction,
            self.weight_bytes_before,
            self.weight_bytes_after,
        )
    }
}

/// The per-node table for terminals.
pub fn node_table(nodes: &[NodeRow]) -> String {
    let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.3e}"));
    let mut out = format!(
        "{:<34} {:<6} {:<5} {:>9} {:>9} {:>11} {:>11} {:>9}\n",
        "node", "op", "prec", "bytes", "after", "measured", "proxy", "relevance"
    );
    for n in nodes {
        let name: String = if n.name.chars().count() > 34 {
            n.name.chars().take(33).collect::<String>() + "…"
        } else {
            n.name.clone()
        };
        out.push_str(&format!(
            "{:<34} {:<6} {:<5} {:>9} {:>9} {:>11} {:>11} {:>9}\n",
            name,
            n.op,
            n.precision,
            n.bytes_before,
            n.bytes_after,
            f(n.error_measured),
            f(n.error_proxy),
            n.relevance.map_or("-".into(), |x| format!("{x:.3}")),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(p: &str) -> NodeRow {
        NodeRow {
            name: format!("conv_{p}"),
            key: format!("y_{p}"),
            op: "Conv".into(),
            precision: p.into(),
            bytes_before: 64,
            bytes_after: 16,
            error_measured: None,
            error_proxy: Some(1e-3),
            relevance: Some(0.5),
        }
    }

    fn probe(budget: Option<f64>, passed: bool) -> Probe {
        Probe {
            budget,
            passed,
            infeasible: None,
            seconds: 1.5,
            size_fraction: Some(0.25),
            weight_bytes: Some(100),
            fidelity: Some([("y".to_string(), Some(0.99))].into()),
            conservative: Some([("y".to_string(), None)].into()),
            measured_ms: None,
        }
    }

    fn allocated() -> Allocated {
        Allocated {
            budget: BudgetInfo {
                kind: "size_fraction".into(),
                value: 0.3,
                bytes: Some(120),
            },
            strategy: StrategyInfo::Uniform {
                asked: "int8".into(),
                used: None,
            },
            weight_bytes_before: 400,
            weight_bytes_after: 100,
            size_fraction: 0.25,
            folded_batchnorms: 0,
            calibration: CalibrationInfo {
                source: "seeded random (seed 0)".into(),
                dir: None,
                samples: 4,
                method: "minmax".into(),
                warning: Some("random".into()),
                holdout: Some(Holdout {
                    seed: 0,
                    folder_samples: 8,
                    validation_samples: vec!["s7.npy".into(), "s2.npy".into()],
                    calibration_pool: 6,
                    rule: "a seeded quarter".into(),
                    not_split: None,
                }),
            },
            objective: "proxy".into(),
            errors: ErrorsInfo {
                measured: 0,
                unmeasured: 2,
                max_measurements: 200,
                time_limit_hit: false,
                unexercised: 0,
                suffix_measured: true,
                seconds: 0.1,
                relevance_problem: None,
                measured_at_logits: vec![LogitsAt {
                    output: "p".into(),
                    logits: "z".into(),
                }],
            },
            nodes: vec![node("int8"), node("fp16")],
            solver: SolverInfo {
                status: "optimal".into(),
                objective: Some(1.0),
                bound: None,
                seconds: 0.2,
                gap: Some(0.0),
            },
            checker: CheckerInfo {
                passed: true,
                problems: Vec::new(),
            },
            inserted_nodes: 6,
            rewrite_overhead_bytes: 10,
            allocation_rounds: 1,
            simplified: SimplifyStats::default(),
            int8_without_range: vec!["y_fp16".into()],
            formats: Formats::All {
                activations: "seeded random (seed 0)".into(),
            },
            latency: None,
            search: Some(SearchInfo {
                start: 0.2,
                first_probe: FirstProbeInfo {
                    budget: 0.2,
                    source: "default".into(),
                    detail: serde_json::json!({"why": "test"}),
                },
                max: 0.5,
                tolerance: 0.02,
                step: 0.025,
                chosen_budget: 0.25,
                axis: None,
                chosen_note: None,
                chosen_size_fraction: 0.25,
                probes: vec![
                    probe(Some(0.25), true),
                    Probe {
                        infeasible: Some("below int4".into()),
                        ..Probe::bare_for_tests(Some(0.1))
                    },
                ],
                uniform_int8: Some(UniformPoint {
                    probe: probe(None, false),
                    precision_used: Some("int8".into()),
                }),
            }),
        }
    }

    impl Probe {
        fn bare_for_tests(budget: Option<f64>) -> Probe {
            Probe {
                budget,
                passed: false,
                infeasible: None,
                seconds: 0.0,
                size_fraction: None,
                weight_bytes: None,
                fidelity: None,
                conservative: None,
                measured_ms: None,
            }
        }
    }

    /// Every shape reads back from its report JSON as itself: the summary and the HTML
    /// report, which read it back, see what the pass wrote.
    #[test]
    fn every_shape_round_trips_through_the_report_json() {
        let shapes = [
            PrecisionSection::Skipped(Skipped {
                skipped: "no opset".into(),
                hint: "keep fp32".into(),
                nodes: Vec::new(),
            }),
            PrecisionSection::Unchanged(Unchanged {
                budget: BudgetInfo {
                    kind: "avg_bits".into(),
                    value: 6.0,
                    bytes: None,
                },
                weight_bytes_before: 0,
                weight_bytes_after: 0,
                size_fraction: 0.0,
                nodes: Vec::new(),
                note: "nothing".into(),
                folded_batchnorms: 1,
                simplified: SimplifyStats::default(),
            }),
            PrecisionSection::Allocated(Box::new(allocated())),
            PrecisionSection::Allocated(Box::new(Allocated {
                search: None,
                formats: Formats::WeightOnly {
                    why: "no calib".into(),
                },
                strategy: StrategyInfo::Ilp,
                ..allocated()
            })),
        ];
        for s in shapes {
            let json = s.to_json();
            assert_eq!(PrecisionSection::from_report(&json), Some(s), "{json}");
        }
    }

    /// The JSON keeps the report's shape: a missing number is null, an absent search is no
    /// key, the strategy and formats are tagged objects, uniform int8 has no budget.
    #[test]
    fn the_json_keeps_the_report_shape() {
        let json = PrecisionSection::Allocated(Box::new(allocated())).to_json();
        assert!(json["nodes"][0]["error_measured"].is_null());
        assert!(json["nodes"][0].get("error_measured").is_some());
        assert_eq!(
            json["strategy"],
            serde_json::json!({"kind": "uniform", "asked": "int8", "used": null})
        );
        assert_eq!(json["formats"]["mode"], "all");
        let u = &json["search"]["uniform_int8"];
        assert!(
            u.get("budget").is_none() && u["precision_used"] == "int8",
            "{u}"
        );
        assert!(json["search"]["probes"][1].get("fidelity").is_none());
        let holdout = &json["calibration"]["holdout"];
        assert!(holdout.get("not_split").is_none(), "{holdout}");
        assert_eq!(holdout["validation_samples"][1], "s2.npy");
        let no_search = Allocated {
            search: None,
            ..allocated()
        };
        let json = PrecisionSection::Allocated(Box::new(no_search)).to_json();
        assert!(json.get("search").is_none());
    }
}
