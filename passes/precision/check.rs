//! The independent checker. It recomputes everything from the problem's raw data (it does
//! not call the solver module's helpers): one allowed precision per operator, the byte or
//! bit budget, the latency budget (from the latency model's terms), the ties, and the
//! claimed objective. After the rewrite it re-verifies the
//! size budget on the rewritten model's real constant bytes.

use super::budget::Budget;
use super::ilp::AllocProblem;
use super::{Assignment, Precision};
use serde::Serialize;
use std::collections::BTreeSet;

/// What the checker found; `passed` when `problems` is empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CheckReport {
    pub passed: bool,
    pub problems: Vec<String>,
}

impl CheckReport {
    fn from(problems: Vec<String>) -> CheckReport {
        CheckReport {
            passed: problems.is_empty(),
            problems,
        }
    }
}

/// Verifies `assignment` (by node key) against `p`, and that `claimed_objective` equals
/// the objective recomputed from scratch (relative tolerance 1e-6).
pub fn check_assignment(
    p: &AllocProblem,
    assignment: &Assignment,
    claimed_objective: f64,
) -> CheckReport {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    // Per item: the chosen option's (precision, bytes, cost), when valid.
    let mut chosen: Vec<Option<(Precision, u64, f64)>> = Vec::with_capacity(p.items.len());
    for it in &p.items {
        if !seen.insert(it.key.as_str()) {
            problems.push(format!("operator '{}' is listed twice", it.key));
        }
        match assignment.get(&it.key) {
            None => {
                problems.push(format!("operator '{}' has no precision", it.key));
                chosen.push(None);
            }
            Some(&q) => {
                let hits: Vec<_> = it.options.iter().filter(|o| o.precision == q).collect();
                match hits.as_slice() {
                    [o] => chosen.push(Some((q, o.bytes, o.cost))),
                    [] => {
                        problems.push(format!(
                            "operator '{}' gets {}, which it does not allow",
                            it.key,
                            q.name()
                        ));
                        chosen.push(None);
                    }
                    _ => {
                        problems.push(format!(
                            "operator '{}' lists {} more than once",
                            it.key,
                            q.name()
                        ));
                        chosen.push(None);
                    }
                }
            }
        }
    }
    for k in assignment.keys() {
        if !seen.contains(k.as_str()) {
            problems.push(format!(
                "the assignment names '{k}', which is not a candidate"
            ));
        }
    }
    if chosen.iter().any(Option::is_none) {
        return CheckReport::from(problems);
    }
    let c: Vec<(Precision, u64, f64)> = chosen.into_iter().flatten().collect();
    // Budget, from scratch.
    match p.budget {
        Budget::SizeFraction(f) => {
            let bytes: u64 = p.fixed_bytes + c.iter().map(|x| x.1).sum::<u64>();
            let limit = f * p.total_weight_bytes as f64;
            if bytes as f64 > limit * (1.0 + 1e-9) {
                problems.push(format!(
                    "size budget broken: {bytes} bytes > {f} × {} = {limit:.0} bytes",
                    p.total_weight_bytes
                ));
            }
        }
        Budget::AvgBits(b) => {
            let mut bits = 0u128;
            let mut elems = 0u128;
            for (it, x) in p.items.iter().zip(&c) {
                bits += x.0.weight_bits() as u128 * it.elements as u128;
                elems += it.elements as u128;
            }
            let avg = if elems == 0 {
                0.0
            } else {
                bits as f64 / elems as f64
            };
            if avg > b * (1.0 + 1e-9) {
                problems.push(format!("bit budget broken: {avg:.4} bits per weight > {b}"));
            }
        }
    }
    // Ties.
    for g in &p.same_precision {
        let set: BTreeSet<Precision> = g.iter().filter_map(|&i| c.get(i).map(|x| x.0)).collect();
        if set.len() > 1 {
            let keys: Vec<&str> = g.iter().map(|&i| p.items[i].key.as_str()).collect();
            problems.push(format!(
                "tie broken: operators sharing a weight ({}) get different precisions",
                keys.join(", ")
            ));
        }
    }
    for g in &p.int8_ties {
        let set: BTreeSet<bool> = g
            .iter()
            .filter_map(|&i| c.get(i).map(|x| x.0 == Precision::Int8))
            .collect();
        if set.len() > 1 {
            let keys: Vec<&str> = g.iter().map(|&i| p.items[i].key.as_str()).collect();
            problems.push(format!(
                "tie broken: operators feeding one Concat/Add ({}) are not all int8 or all not",
                keys.join(", ")
            ));
        }
    }
    // Option indices, for the latency terms (parallel to `options`).
    let idx: Vec<usize> = p
        .items
        .iter()
        .zip(&c)
        .map(|(it, x)| {
            it.options
                .iter()
                .position(|o| o.precision == x.0)
                .unwrap_or(0)
        })
        .collect();
    let differs = |u: usize, v: usize| (c[u].0 == Precision::Int8) != (c[v].0 == Precision::Int8);
    if let Some(problem) = latency_problem(p, &idx, &differs) {
        problems.push(problem);
    }
    let obj = recomputed_objective(p, &c, &idx, &differs);
    let tol = 1e-6 * obj.abs().max(claimed_objective.abs()).max(1e-12);
    if (obj - claimed_objective).abs() > tol {
        problems.push(format!(
            "claimed objective {claimed_objective:.6e} differs from the recomputed {obj:.6e}"
        ));
    }
    CheckReport::from(problems)
}

/// After the rewrite: the rewritten model's real constant bytes must meet the size budget
/// `fraction × reference_bytes` (`reference_bytes`: fp32 weight bytes of the input model).
pub fn check_rewritten_size(
    rewritten_bytes: u64,
    reference_bytes: u64,
    fraction: f64,
) -> CheckReport {
    let limit = fraction * reference_bytes as f64;
    let mut problems = Vec::new();
    if rewritten_bytes as f64 > limit * (1.0 + 1e-9) {
        problems.push(format!(
            "rewritten model holds {rewritten_bytes} constant bytes > {fraction} × {reference_bytes} = {limit:.0}"
        ));
    }
    CheckReport::from(problems)
}

/// The latency budget, recomputed from the latency terms (`None` when met or absent).
fn latency_problem(
    p: &AllocProblem,
    idx: &[usize],
    differs: &dyn Fn(usize, usize) -> bool,
) -> Option<String> {
    let l = p.latency.as_ref()?;
    let limit = l.limit_ms?;
    let mut t = l.base_ms;
    for (i, &o) in idx.iter().enumerate() {
        t += l.option_ms[i][o];
    }
    for (e, &(u, v)) in p.edges.iter().enumerate() {
        if differs(u, v) {
            t += l.edge_ms[e];
        }
    }
    (t > limit * (1.0 + 1e-9))
        .then(|| format!("latency budget broken: predicted {t:.4} ms > {limit:.4} ms"))
}

/// The objective, from scratch: errors and λ per domain change, or with `--objective
/// speed` the time change plus the weighted error.
fn recomputed_objective(
    p: &AllocProblem,
    c: &[(Precision, u64, f64)],
    idx: &[usize],
    differs: &dyn Fn(usize, usize) -> bool,
) -> f64 {
    let speed = p.latency.as_ref().filter(|l| l.minimize);
    let mut obj: f64 = 0.0;
    for (i, x) in c.iter().enumerate() {
        obj += match speed {
            Some(l) => l.option_ms[i][idx[i]] + l.error_weight * x.2,
            None => x.2,
        };
    }
    for (e, &(u, v)) in p.edges.iter().enumerate() {
        if differs(u, v) {
            obj += match speed {
                Some(l) => l.edge_ms[e] + l.error_weight * p.lambda,
                None => p.lambda,
            };
        }
    }
    obj
}
