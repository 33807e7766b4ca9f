//! Per-operator scores that rank operators: the share of output relevance Σ|R| and of
//! weight relevance Σ|R_W| each node takes, averaged over the samples; and the report
//! section built from them.

use super::sweep::{Coverage, SampleRelevance};
use serde::Serialize;
use serde_json::{json, Value};

/// One node's scores.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeScore {
    pub name: String,
    pub op: String,
    /// Mean over samples of Σ|R_out(node)| / Σ_nodes Σ|R_out|.
    pub relevance_share: f64,
    /// Mean over samples of Σ|R_W(node)| / Σ_nodes Σ|R_W| (0 without weights).
    pub weight_relevance_share: f64,
}

/// Scores over a set of samples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RelevanceSummary {
    pub samples: usize,
    pub coverage: Coverage,
    /// Nodes in graph order.
    pub nodes: Vec<NodeScore>,
    /// Per sample: (target output, index, start relevance, Σ input relevance).
    pub conservation: Vec<(String, usize, f64, f64)>,
}

/// Averages the per-sample shares. All samples must come from the same model.
pub fn summarize(samples: &[SampleRelevance]) -> RelevanceSummary {
    let n_nodes = samples.first().map(|s| s.nodes.len()).unwrap_or(0);
    let mut rel = vec![0.0; n_nodes];
    let mut wrel = vec![0.0; n_nodes];
    for s in samples {
        let tot: f64 = s.nodes.iter().map(|n| n.out_abs).sum();
        let wtot: f64 = s.nodes.iter().map(|n| n.weight_abs).sum();
        for (i, n) in s.nodes.iter().enumerate().take(n_nodes) {
            if tot > 0.0 {
                rel[i] += n.out_abs / tot;
            }
            if wtot > 0.0 {
                wrel[i] += n.weight_abs / wtot;
            }
        }
    }
    let k = samples.len().max(1) as f64;
    let nodes = match samples.first() {
        Some(s) => s
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeScore {
                name: n.name.clone(),
                op: n.op.clone(),
                relevance_share: rel[i] / k,
                weight_relevance_share: wrel[i] / k,
            })
            .collect(),
        None => Vec::new(),
    };
    RelevanceSummary {
        samples: samples.len(),
        coverage: samples
            .first()
            .map(|s| s.coverage.clone())
            .unwrap_or_default(),
        nodes,
        conservation: samples
            .iter()
            .map(|s| {
                (
                    s.target_output.clone(),
                    s.target_index,
                    s.start_value,
                    s.input_sum(),
                )
            })
            .collect(),
    }
}

impl RelevanceSummary {
    /// The report's `relevance` section.
    pub fn to_json(&self, preset: &str) -> Value {
        let c = &self.coverage;
        json!({
            "preset": preset,
            "samples": self.samples,
            "coverage": {
                "nodes": c.nodes,
                "covered": c.covered,
                "fraction": c.fraction(),
                "constant": c.constant,
                "on_path": c.on_path,
                "ruled": c.ruled,
                "uncovered_ops": c.uncovered_ops,
                "uncovered_nodes": c.uncovered_nodes.iter().map(|(n, o, w)| json!({"node": n, "op": o, "why": w})).collect::<Vec<_>>(),
            },
            "conservation": self.conservation.iter().map(|(o, i, s, r)| json!({
                "output": o, "index": i, "start": s, "input_sum": r
            })).collect::<Vec<_>>(),
            "nodes": self.nodes.iter().map(|n| json!({
                "name": n.name,
                "op": n.op,
                "relevance_share": n.relevance_share,
                "weight_relevance_share": n.weight_relevance_share,
            })).collect::<Vec<_>>(),
        })
    }

    /// A text table of the `top` nodes by relevance share, then the coverage line.
    pub fn table(&self, top: usize) -> String {
        let mut order: Vec<&NodeScore> = self
            .nodes
            .iter()
            .filter(|n| n.relevance_share > 0.0 || n.weight_relevance_share > 0.0)
            .collect();
        order.sort_by(|a, b| {
            b.relevance_share
                .partial_cmp(&a.relevance_share)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut s = format!(
            "{:<40} {:<20} {:>10} {:>10}\n",
            "node", "op", "R share", "R_W share"
        );
        for n in order.iter().take(top) {
            let name: String = n.name.chars().take(40).collect();
            s.push_str(&format!(
                "{:<40} {:<20} {:>9.3}% {:>9.3}%\n",
                name,
                n.op,
                100.0 * n.relevance_share,
                100.0 * n.weight_relevance_share
            ));
        }
        if order.len() > top {
            s.push_str(&format!(
                "… {} more nodes with relevance\n",
                order.len() - top
            ));
        }
        let c = &self.coverage;
        s.push_str(&format!(
            "coverage: {}/{} nodes ({:.2}%): {} constant/shape-only, {} of {} on-path nodes with a rule",
            c.covered,
            c.nodes,
            100.0 * c.fraction(),
            c.constant,
            c.ruled,
            c.on_path
        ));
        if !c.uncovered_ops.is_empty() {
            let ops: Vec<String> = c
                .uncovered_ops
                .iter()
                .map(|(o, k)| format!("{o}×{k}"))
                .collect();
            s.push_str(&format!("; uncovered (even split): {}", ops.join(", ")));
        }
        s.push('\n');
        for (o, i, st, sum) in &self.conservation {
            s.push_str(&format!(
                "target {o}[{i}]: start relevance {st:.6}, input relevance sum {sum:.6}\n"
            ));
        }
        s
    }
}
