//! The allocation ILP (good_lp + CBC) and its greedy fallback.
//!
//! Binary `x[i,p]` per candidate operator `i` and allowed precision `p`, with
//! `Σ_p x[i,p] = 1`. Budget, either
//! * size: `fixed_bytes + Σ bytes[i,p]·x[i,p] ≤ f · total_weight_bytes` (fixed bytes are the
//!   constant tensors that are not candidate weights), or
//! * bits: `Σ bits(p)·elements[i]·x[i,p] ≤ b · Σ elements[i]`.
//!
//! Objective `Σ cost[i,p]·x[i,p] + λ Σ_e y_e` with `y_e ≥ |int8[u] − int8[v]|` for every
//! edge `e = (u, v)` between candidate operators (a precision-domain change there costs an
//! extra Q/DQ pair), `int8[i] = x[i,Int8]`. Ties: operators of a `same_precision` group
//! take the same precision (shared weights); operators of an `int8_ties` group are all int8
//! or all not (the producers of one Concat's inputs or of a residual Add's operands, which
//! onnxruntime fuses only when all sides carry the same quantization).
//!
//! The solve has a time limit; when CBC stops without an incumbent, the greedy solution is
//! used. (CBC is not warm-started from greedy: with a start solution, CBC 2.10 here reported
//! "optimal" for worse solutions than the start on bit-budget instances.)

use super::budget::Budget;
use super::{NodeKey, Precision};
use good_lp::solvers::coin_cbc::coin_cbc;
use good_lp::{
    constraint, variable, Expression, ProblemVariables, ResolutionError, Solution, SolutionStatus,
    SolverModel, Variable, WithTimeLimit,
};
use optimize_ir::error::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// One allowed precision of one operator.
#[derive(Clone, Debug, PartialEq)]
pub struct AllocOption {
    pub precision: Precision,
    /// Bytes stored for the operator's weights (and bias, scales) at this precision.
    pub bytes: u64,
    /// Error used for steering (see `Objective`).
    pub cost: f64,
}

/// One candidate operator.
#[derive(Clone, Debug, PartialEq)]
pub struct AllocItem {
    pub key: NodeKey,
    /// Weight elements (for the bit budget).
    pub elements: u64,
    pub options: Vec<AllocOption>,
}

/// Everything the solver, the greedy fallback and the checker see.
#[derive(Clone, Debug, PartialEq)]
pub struct AllocProblem {
    pub items: Vec<AllocItem>,
    /// Bytes of the constant tensors that are not candidate weights (counted as they are).
    pub fixed_bytes: u64,
    /// fp32 bytes of all constant tensors of the model (the size budget's reference).
    pub total_weight_bytes: u64,
    pub budget: Budget,
    /// Groups of item indices that must take the same precision.
    pub same_precision: Vec<Vec<usize>>,
    /// Groups of item indices whose int8 indicator must be equal.
    pub int8_ties: Vec<Vec<usize>>,
    /// Item pairs connected directly or through data-movement/elementwise ops.
    pub edges: Vec<(usize, usize)>,
    /// Cost of one precision-domain change on an edge.
    pub lambda: f64,
    /// The latency model's terms, when the run asked for a latency budget or for speed.
    pub latency: Option<LatencyTerms>,
}

/// Predicted time of an assignment, linear in the ILP's variables (see
/// [`super::latency`]): `base_ms + Σ option_ms[i][o] + Σ edge_ms[e]·[int8-ness differs]`.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyTerms {
    /// The fp32 model's measured time.
    pub base_ms: f64,
    /// Per item, per option (parallel to `options`): the predicted change against fp32.
    pub option_ms: Vec<Vec<f64>>,
    /// Per entry of `edges`: what an int8/float boundary there costs.
    pub edge_ms: Vec<f64>,
    /// `--latency-budget`: the predicted time must not exceed this.
    pub limit_ms: Option<f64>,
    /// `--objective speed`: minimize the predicted time; the error enters with
    /// `error_weight` per unit, only to break ties.
    pub minimize: bool,
    pub error_weight: f64,
}

impl AllocProblem {
    /// Left side and limit of the budget constraint for a per-item choice of option index.
    pub fn budget_use(&self, choice: &[usize]) -> (f64, f64) {
        match self.budget {
            Budget::SizeFraction(f) => {
                let used = self.fixed_bytes
                    + self
                        .items
                        .iter()
                        .zip(choice)
                        .map(|(it, &c)| it.options[c].bytes)
                        .sum::<u64>();
                (used as f64, f * self.total_weight_bytes as f64)
            }
            Budget::AvgBits(b) => {
                let used: f64 = self
                    .items
                    .iter()
                    .zip(choice)
                    .map(|(it, &c)| {
                        it.options[c].precision.weight_bits() as f64 * it.elements as f64
                    })
                    .sum();
                let total: f64 = self.items.iter().map(|it| it.elements as f64).sum();
                (used, b * total)
            }
        }
    }

    /// The coefficient of option `o` of item `i` in the budget constraint.
    fn budget_coef(&self, i: usize, o: usize) -> f64 {
        let it = &self.items[i];
        match self.budget {
            Budget::SizeFraction(_) => it.options[o].bytes as f64,
            Budget::AvgBits(_) => it.options[o].precision.weight_bits() as f64 * it.elements as f64,
        }
    }

    /// Constant part of the budget constraint and its limit.
    fn budget_rhs(&self) -> (f64, f64) {
        match self.budget {
            Budget::SizeFraction(f) => {
                (self.fixed_bytes as f64, f * self.total_weight_bytes as f64)
            }
            Budget::AvgBits(b) => (
                0.0,
                b * self.items.iter().map(|it| it.elements as f64).sum::<f64>(),
            ),
        }
    }

    /// The fp32 size the budget is a fraction of: all fp32 weight bytes (size budget) or
    /// 32 bits per candidate weight element (bit budget).
    fn budget_reference(&self) -> f64 {
        match self.budget {
            Budget::SizeFraction(_) => self.total_weight_bytes as f64,
            Budget::AvgBits(_) => {
                32.0 * self.items.iter().map(|it| it.elements as f64).sum::<f64>()
            }
        }
    }

    /// Objective of a choice: option costs plus λ per edge whose ends differ in int8-ness;
    /// with `--objective speed`, the predicted time change plus the error times its weight.
    pub fn objective(&self, choice: &[usize]) -> f64 {
        let mut obj: f64 = (0..self.items.len())
            .map(|i| self.option_objective(i, choice[i]))
            .sum();
        for (e, &(u, v)) in self.edges.iter().enumerate() {
            if self.int8(u, choice[u]) != self.int8(v, choice[v]) {
                obj += self.edge_objective(e);
            }
        }
        obj
    }

    fn int8(&self, i: usize, o: usize) -> bool {
        self.items[i].options[o].precision == Precision::Int8
    }

    /// Objective coefficient of option `o` of item `i`.
    fn option_objective(&self, i: usize, o: usize) -> f64 {
        let cost = self.items[i].options[o].cost;
        match &self.latency {
            Some(l) if l.minimize => l.option_ms[i][o] + l.error_weight * cost,
            _ => cost,
        }
    }

    /// Objective coefficient of a precision-domain change on edge `e`.
    fn edge_objective(&self, e: usize) -> f64 {
        match &self.latency {
            Some(l) if l.minimize => l.edge_ms[e] + l.error_weight * self.lambda,
            _ => self.lambda,
        }
    }

    /// The latency model's prediction for a choice (`None` without a latency model).
    pub fn predicted_ms(&self, choice: &[usize]) -> Option<f64> {
        let l = self.latency.as_ref()?;
        let mut t = l.base_ms;
        for (i, &o) in choice.iter().enumerate() {
            t += l.option_ms[i][o];
        }
        for (e, &(u, v)) in self.edges.iter().enumerate() {
            if self.int8(u, choice[u]) != self.int8(v, choice[v]) {
                t += l.edge_ms[e];
            }
        }
        Some(t)
    }

    /// Whether a predicted time meets the latency limit (always, without one).
    pub fn meets_latency_ms(&self, t: f64) -> bool {
        match self.latency.as_ref().and_then(|l| l.limit_ms) {
            Some(limit) => t <= limit * (1.0 + 1e-9),
            None => true,
        }
    }

    /// Whether a choice meets the latency limit (always, without one).
    pub fn meets_latency(&self, choice: &[usize]) -> bool {
        self.predicted_ms(choice)
            .is_none_or(|t| self.meets_latency_ms(t))
    }

    /// The index of precision `p` among item `i`'s options.
    pub fn option_of(&self, i: usize, p: Precision) -> Option<usize> {
        self.items[i].options.iter().position(|o| o.precision == p)
    }

    /// Turns option indices into an assignment by key.
    pub fn assignment(&self, choice: &[usize]) -> super::Assignment {
        self.items
            .iter()
            .zip(choice)
            .map(|(it, &c)| (it.key.clone(), it.options[c].precision))
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SolveStatus {
    /// CBC proved the solution optimal.
    Optimal,
    /// CBC stopped on its time limit; its best solution (incumbent) is used.
    TimeLimitIncumbent,
    /// CBC gave nothing usable; the greedy solution is used.
    GreedyFallback,
}

impl SolveStatus {
    pub fn name(self) -> &'static str {
        match self {
            SolveStatus::Optimal => "optimal",
            SolveStatus::TimeLimitIncumbent => "time_limit_incumbent",
            SolveStatus::GreedyFallback => "greedy_fallback",
        }
    }
}

/// A solution: one option index per item.
#[derive(Clone, Debug)]
pub struct AllocSolution {
    pub choice: Vec<usize>,
    pub status: SolveStatus,
    pub objective: f64,
    /// CBC's best bound (None for greedy).
    pub bound: Option<f64>,
    /// Relative gap `(objective − bound) / max(|objective|, 1e-12)`.
    pub gap: Option<f64>,
    pub seconds: f64,
}

/// Union-find roots over item indices for the given groups.
fn components(n: usize, groups: &[&Vec<usize>]) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], x: usize) -> usize {
        let mut r = x;
        while p[r] != r {
            r = p[r];
        }
        let mut y = x;
        while p[y] != r {
            let nx = p[y];
            p[y] = r;
            y = nx;
        }
        r
    }
    for g in groups {
        for w in g.windows(2) {
            let (a, b) = (find(&mut parent, w[0]), find(&mut parent, w[1]));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    (0..n).map(|i| find(&mut parent, i)).collect()
}

/// Per tie unit, the precisions every member allows, in the fixed order of Precision::ALL.
pub fn common_precisions(p: &AllocProblem, units: &[Vec<usize>]) -> Vec<Vec<Precision>> {
    units
        .iter()
        .map(|u| {
            Precision::ALL
                .into_iter()
                .filter(|&q| u.iter().all(|&i| p.option_of(i, q).is_some()))
                .collect()
        })
        .collect()
}

/// Items joined by any tie (same precision or int8), as groups in index order: giving all
/// members of a unit one common precision always meets the ties.
pub fn tie_units(p: &AllocProblem) -> Vec<Vec<usize>> {
    let groups: Vec<&Vec<usize>> = p.same_precision.iter().chain(&p.int8_ties).collect();
    let root = components(p.items.len(), &groups);
    let mut units: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &r) in root.iter().enumerate() {
        units.entry(r).or_default().push(i);
    }
    units.into_values().collect()
}

/// Greedy: items joined by any tie move together at one common precision (stricter than the
/// ties require, so always consistent). Starts from each unit's lowest-error common
/// precision and repeatedly takes the move with the smallest error increase per budget unit
/// saved, until the budget holds. `None` when no sequence of moves meets the budget.
pub fn greedy(p: &AllocProblem) -> Option<AllocSolution> {
    let start = Instant::now();
    let n = p.items.len();
    let units = tie_units(p);
    let common = common_precisions(p, &units);
    if common.iter().any(Vec::is_empty) {
        return None;
    }
    let unit_cost = |u: usize, q: Precision| -> f64 {
        units[u]
            .iter()
            .map(|&i| p.option_objective(i, p.option_of(i, q).unwrap_or(0)))
            .sum()
    };
    let unit_budget = |u: usize, q: Precision| -> f64 {
        units[u]
            .iter()
            .map(|&i| p.budget_coef(i, p.option_of(i, q).unwrap_or(0)))
            .sum()
    };
    let mut chosen: Vec<Precision> = (0..units.len())
        .map(|u| {
            let mut best = common[u][0];
            for &q in &common[u] {
                if unit_cost(u, q) < unit_cost(u, best) {
                    best = q;
                }
            }
            best
        })
        .collect();
    let (base, limit) = p.budget_rhs();
    let mut used: f64 = base
        + (0..units.len())
            .map(|u| unit_budget(u, chosen[u]))
            .sum::<f64>();
    while used > limit * (1.0 + 1e-12) {
        let mut best: Option<(f64, usize, Precision)> = None;
        for u in 0..units.len() {
            let (c0, b0) = (unit_cost(u, chosen[u]), unit_budget(u, chosen[u]));
            for &q in &common[u] {
                let db = b0 - unit_budget(u, q);
                if db <= 0.0 {
                    continue;
                }
                let ratio = (unit_cost(u, q) - c0) / db;
                if best.is_none_or(|(r, _, _)| ratio < r) {
                    best = Some((ratio, u, q));
                }
            }
        }
        let (_, u, q) = best?;
        used -= unit_budget(u, chosen[u]) - unit_budget(u, q);
        chosen[u] = q;
    }
    let mut choice = vec![0; n];
    for (u, members) in units.iter().enumerate() {
        for &i in members {
            choice[i] = p.option_of(i, chosen[u]).unwrap_or(0);
        }
    }
    if !p.meets_latency(&choice) {
        return None;
    }
    let objective = p.objective(&choice);
    Some(AllocSolution {
        choice,
        status: SolveStatus::GreedyFallback,
        objective,
        bound: None,
        gap: None,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The model's variables and constraints, shared by the solve and the min-budget solve.
struct Built {
    vars: ProblemVariables,
    x: Vec<Vec<Variable>>,
    cons: Vec<good_lp::Constraint>,
    /// One variable per entry of `edges` (`None` where neither end can be int8).
    edge_vars: Vec<Option<Variable>>,
    budget_expr: Expression,
    /// Predicted time less the fp32 time (without a latency model: 0).
    latency_expr: Expression,
}

fn build(p: &AllocProblem, with_budget: bool) -> Built {
    let mut vars = ProblemVariables::new();
    let mut cons = Vec::new();
    let x: Vec<Vec<Variable>> = p
        .items
        .iter()
        .map(|it| {
            it.options
                .iter()
                .map(|_| vars.add(variable().binary()))
                .collect()
        })
        .collect();
    for xi in &x {
        let s: Expression = xi.iter().copied().sum();
        cons.push(constraint!(s == 1.0));
    }
    // The budget row is divided by the fp32 reference (coefficients of millions of bits or
    // bytes otherwise meet CBC's absolute tolerances): every coefficient is then a fraction
    // of at most about 1 whatever the budget, so no budget, however small, can push a
    // coefficient past the solver's range (CLP asserts |c| < 1e25 on the objective, which
    // `min_budget` builds from this row). `budget_expr` is the used fraction of fp32.
    let (base, limit) = p.budget_rhs();
    let reference = p.budget_reference();
    let norm = if reference > 0.0 { reference } else { 1.0 };
    let mut budget_expr = Expression::from(base / norm);
    for (i, xi) in x.iter().enumerate() {
        for (o, &v) in xi.iter().enumerate() {
            budget_expr += (p.budget_coef(i, o) / norm) * v;
        }
    }
    if with_budget {
        cons.push(constraint!(budget_expr.clone() <= limit / norm));
    }
    let indicator = |i: usize, q: Precision| -> Expression {
        match p.option_of(i, q) {
            Some(o) => Expression::from(x[i][o]),
            None => Expression::from(0.0),
        }
    };
    for g in &p.same_precision {
        for w in g.windows(2) {
            for q in Precision::ALL {
                let (a, b) = (indicator(w[0], q), indicator(w[1], q));
                cons.push(constraint!(a == b));
            }
        }
    }
    for g in &p.int8_ties {
        for w in g.windows(2) {
            let (a, b) = (
                indicator(w[0], Precision::Int8),
                indicator(w[1], Precision::Int8),
            );
            cons.push(constraint!(a == b));
        }
    }
    let mut edge_vars = Vec::with_capacity(p.edges.len());
    for &(u, v) in &p.edges {
        let (a, b) = (indicator(u, Precision::Int8), indicator(v, Precision::Int8));
        if p.option_of(u, Precision::Int8).is_none() && p.option_of(v, Precision::Int8).is_none() {
            edge_vars.push(None);
            continue;
        }
        let y = vars.add(variable().min(0.0).max(1.0));
        cons.push(constraint!(y >= a.clone() - b.clone()));
        cons.push(constraint!(y >= b - a));
        edge_vars.push(Some(y));
    }
    let mut latency_expr = Expression::from(0.0);
    if let Some(l) = &p.latency {
        // Divided by the fp32 time, like the budget row, to keep coefficients near 1.
        let norm = l.base_ms.max(1e-9);
        for (i, xi) in x.iter().enumerate() {
            for (o, &v) in xi.iter().enumerate() {
                latency_expr += clean(l.option_ms[i][o] / norm) * v;
            }
        }
        for (e, y) in edge_vars.iter().enumerate() {
            if let Some(y) = y {
                latency_expr += clean(l.edge_ms[e] / norm) * *y;
            }
        }
        if let (Some(limit), true) = (l.limit_ms, with_budget) {
            let rhs = (limit - l.base_ms) / norm;
            cons.push(constraint!(latency_expr.clone() <= rhs));
        }
    }
    Built {
        vars,
        x,
        cons,
        edge_vars,
        budget_expr,
        latency_expr,
    }
}

/// A latency-row or speed-objective coefficient as the solver gets it: below 1e-7 of the
/// fp32 time (timer noise) it is 0, and a non-finite one is 0 too. CLP's dual simplex
/// aborted (an assertion, not an error) on one such row of near-zero coefficients.
fn clean(c: f64) -> f64 {
    if c.is_finite() && c.abs() >= 1e-7 {
        c
    } else {
        0.0
    }
}

fn decode(x: &[Vec<Variable>], sol: &impl Solution) -> Option<Vec<usize>> {
    x.iter()
        .map(|xi| {
            let on: Vec<usize> = (0..xi.len()).filter(|&o| sol.value(xi[o]) > 0.5).collect();
            (on.len() == 1).then(|| on[0])
        })
        .collect()
}

/// Activation quantization parameters an int8 op adds at most: a float scale and a uint8
/// zero point for its input and for its output.
const QPARAM_BYTES_PER_INT8_OP: usize = 2 * (4 + 1);

/// The constants the int4 decoding chains share (an int32 16 and a float 8).
const INT4_SHARED_BYTES: usize = 8;

/// Smallest budget any assignment meeting the ties reaches: `(fraction, bytes)` for a size
/// budget (fraction of `total_weight_bytes`), `(bits, 0)` for a bit budget.
pub fn min_budget(p: &AllocProblem, time_limit_s: f64) -> Option<(f64, u64)> {
    let b = build(p, false);
    let mut m = b.vars.minimise(b.budget_expr.clone()).using(coin_cbc);
    crate::cbc::quiet(&mut m);
    for c in b.cons {
        m.add_constraint(c);
    }
    let m = m.with_time_limit(time_limit_s.max(1.0));
    let sol = m.solve().ok()?;
    let choice = decode(&b.x, &sol)?;
    let (used, _) = p.budget_use(&choice);
    Some(match p.budget {
        Budget::SizeFraction(_) => {
            // The rewrite adds bytes the per-op counts leave out: the activation scale and
            // zero point (5 bytes per quantized tensor, at most 2 per int8 op) and the two
            // constants every int4 decoding chain shares. Reserve them, so that the budget
            // named is one the rewritten model meets.
            let chosen = |want: Precision| {
                choice
                    .iter()
                    .zip(&p.items)
                    .filter(|(&o, it)| it.options[o].precision == want)
                    .count()
            };
            let int4_shared = if chosen(Precision::Int4) > 0 {
                INT4_SHARED_BYTES
            } else {
                0
            };
            let used =
                used + (QPARAM_BYTES_PER_INT8_OP * chosen(Precision::Int8) + int4_shared) as f64;
            (
                used / p.total_weight_bytes.max(1) as f64,
                used.round() as u64,
            )
        }
        Budget::AvgBits(_) => {
            let total: f64 = p.items.iter().map(|it| it.elements as f64).sum();
            (used / total.max(1.0), 0)
        }
    })
}

/// Fails with the infeasible-budget error when no assignment meeting the ties can meet the
/// budget (decided from the byte counts alone: the costs do not matter). A solver that
/// cannot decide lets the problem through; [`solve`] then decides.
pub fn check_feasible(p: &AllocProblem, time_limit_s: f64) -> Result<()> {
    let (_, limit) = p.budget_rhs();
    let reachable = match (min_budget(p, time_limit_s), p.budget) {
        (Some((_, bytes)), Budget::SizeFraction(_)) => bytes as f64 <= limit * (1.0 + 1e-9),
        (Some((bits, _)), Budget::AvgBits(b)) => bits <= b * (1.0 + 1e-9),
        (None, _) => true,
    };
    if reachable {
        Ok(())
    } else {
        Err(infeasible_error(p, time_limit_s))
    }
}

/// The infeasible-budget error, stating the smallest feasible budget.
pub fn infeasible_error(p: &AllocProblem, time_limit_s: f64) -> Error {
    let asked = match p.budget {
        Budget::SizeFraction(f) => format!(
            "size budget {f} ({} bytes of {} fp32 weight bytes)",
            (f * p.total_weight_bytes as f64).floor() as u64,
            p.total_weight_bytes
        ),
        Budget::AvgBits(b) => format!("average {b} bits per weight"),
    };
    match (min_budget(p, time_limit_s), p.budget) {
        (Some((frac, bytes)), Budget::SizeFraction(_)) => Error::Usage(format!(
            "{asked} is infeasible: the smallest feasible size budget is {:.4} of the fp32 \
             weight bytes ({bytes} bytes; pass --size-budget {:.4} or more)",
            (frac * 1e4).ceil() / 1e4,
            (frac * 1e4).ceil() / 1e4
        )),
        (Some((bits, _)), Budget::AvgBits(_)) => Error::Usage(format!(
            "{asked} is infeasible: the smallest feasible average is {:.3} bits per weight \
             (pass --avg-bits {:.3} or more)",
            bits,
            (bits * 1e3).ceil() / 1e3
        )),
        (None, _) => Error::Usage(format!(
            "{asked} is infeasible, and the smallest feasible budget could not be computed"
        )),
    }
}

/// Solves the allocation: CBC within `time_limit_s`, else the
/// greedy solution. An infeasible budget is an `Error::Usage` naming the smallest one.
pub fn solve(p: &AllocProblem, time_limit_s: f64) -> Result<AllocSolution> {
    let start = Instant::now();
    if p.items.is_empty() {
        let (used, limit) = p.budget_use(&[]);
        if used > limit {
            return Err(infeasible_error(p, time_limit_s));
        }
        return Ok(AllocSolution {
            choice: Vec::new(),
            status: SolveStatus::Optimal,
            objective: 0.0,
            bound: Some(0.0),
            gap: Some(0.0),
            seconds: 0.0,
        });
    }
    let warm = greedy(p);
    let b = build(p, true);
    // Errors can be ~1e-6; CBC's tolerances are absolute, so the objective is scaled to a
    // largest coefficient of 1000 (the optimum does not change; reports use real units).
    // A non-finite cost (an error measured as NaN or ∞) becomes the largest coefficient
    // times 1000: the solver's range is never left, and such an option is the last resort.
    let option_coef: Vec<Vec<f64>> = (0..p.items.len())
        .map(|i| {
            (0..p.items[i].options.len())
                .map(|o| p.option_objective(i, o))
                .collect()
        })
        .collect();
    let edge_coef: Vec<f64> = (0..p.edges.len()).map(|e| p.edge_objective(e)).collect();
    let max_coef = option_coef
        .iter()
        .flatten()
        .chain(&edge_coef)
        .filter(|c| c.is_finite())
        .fold(0.0f64, |m, c| m.max(c.abs()));
    let scale = if max_coef > 0.0 && max_coef.is_finite() {
        1000.0 / max_coef
    } else {
        1.0
    };
    let speed = p.latency.as_ref().is_some_and(|l| l.minimize);
    let coef = |c: f64| match (c.is_finite(), speed) {
        (false, _) => 1e6,
        (true, true) => clean(c * scale / 1000.0) * 1000.0,
        (true, false) => c * scale,
    };
    let mut objective = Expression::from(0.0);
    for (e, y) in b.edge_vars.iter().enumerate() {
        if let Some(y) = y {
            objective += coef(edge_coef[e]) * *y;
        }
    }
    for (i, xi) in b.x.iter().enumerate() {
        for (o, &v) in xi.iter().enumerate() {
            objective += coef(option_coef[i][o]) * v;
        }
    }
    let mut m = b.vars.minimise(objective).using(coin_cbc);
    crate::cbc::quiet(&mut m);
    for c in b.cons {
        m.add_constraint(c);
    }
    let m = m.with_time_limit(time_limit_s.max(1.0));
    let result = m.solve();
    let seconds = start.elapsed().as_secs_f64();
    match result {
        Ok(sol) => {
            let status = match sol.status() {
                SolutionStatus::Optimal => SolveStatus::Optimal,
                _ => SolveStatus::TimeLimitIncumbent,
            };
            let raw_bound = sol.model().best_possible_value() / scale;
            if let Some(choice) = decode(&b.x, &sol) {
                let (used, limit) = p.budget_use(&choice);
                if used <= limit * (1.0 + 1e-9) && p.meets_latency(&choice) {
                    let objective = p.objective(&choice);
                    let bound = raw_bound.is_finite().then(|| raw_bound.min(objective));
                    let gap =
                        bound.map(|bd| ((objective - bd) / objective.abs().max(1e-12)).max(0.0));
                    return Ok(AllocSolution {
                        choice,
                        status,
                        objective,
                        bound: if status == SolveStatus::Optimal {
                            Some(objective)
                        } else {
                            bound
                        },
                        gap: if status == SolveStatus::Optimal {
                            Some(0.0)
                        } else {
                            gap
                        },
                        seconds,
                    });
                }
            }
            fallback(warm, p, time_limit_s, seconds)
        }
        Err(ResolutionError::Infeasible) => Err(infeasible(p, time_limit_s)),
        Err(_) => fallback(warm, p, time_limit_s, seconds),
    }
}

fn fallback(
    warm: Option<AllocSolution>,
    p: &AllocProblem,
    time_limit_s: f64,
    seconds: f64,
) -> Result<AllocSolution> {
    match warm {
        Some(mut w) => {
            w.seconds = seconds;
            Ok(w)
        }
        None => {
            // Greedy moves tied operators together, so it can miss budgets the ILP meets.
            let (_, limit) = p.budget_rhs();
            let reachable = match (min_budget(p, time_limit_s), p.budget) {
                (Some((_, bytes)), Budget::SizeFraction(_)) => bytes as f64 <= limit,
                (Some((bits, _)), Budget::AvgBits(b)) => bits <= b,
                (None, _) => false,
            };
            if reachable && min_latency(p, time_limit_s).is_none_or(|t| p.meets_latency_ms(t)) {
                Err(Error::Usage(format!(
                    "the solver found no allocation within its {time_limit_s} s time limit and                      the greedy fallback found none either; raise the time limit or the budget"
                )))
            } else {
                Err(infeasible(p, time_limit_s))
            }
        }
    }
}

/// The smallest predicted time any assignment meeting the ties and the size or bit budget
/// reaches (`None` without a latency model, or when the solver gives nothing).
pub fn min_latency(p: &AllocProblem, time_limit_s: f64) -> Option<f64> {
    p.latency.as_ref()?;
    let mut free = p.clone();
    if let Some(fl) = free.latency.as_mut() {
        fl.limit_ms = None;
    }
    let b = build(&free, true);
    let mut m = b.vars.minimise(b.latency_expr.clone()).using(coin_cbc);
    crate::cbc::quiet(&mut m);
    for c in b.cons {
        m.add_constraint(c);
    }
    let sol = m.with_time_limit(time_limit_s.max(1.0)).solve().ok()?;
    let choice = decode(&b.x, &sol)?;
    free.predicted_ms(&choice)
}

/// The infeasible-budget error: the latency budget's, naming the fastest feasible one,
/// when that is what no assignment meets; else the size or bit budget's.
pub fn infeasible(p: &AllocProblem, time_limit_s: f64) -> Error {
    let Some(l) = &p.latency else {
        return infeasible_error(p, time_limit_s);
    };
    match (l.limit_ms, min_latency(p, time_limit_s)) {
        (Some(limit), Some(best)) if best > limit * (1.0 + 1e-9) => {
            let frac = best / l.base_ms.max(1e-12);
            let smallest = (frac * 1e3).ceil() / 1e3;
            Error::Usage(format!(
                "latency budget {:.3} of fp32's predicted {:.3} ms is infeasible: the fastest assignment within the size budget is predicted at {best:.3} ms, {frac:.3} of fp32 (pass --latency-budget {smallest:.3} or more, or a larger size budget)",
                limit / l.base_ms.max(1e-12),
                l.base_ms
            ))
        }
        _ => infeasible_error(p, time_limit_s),
    }
}
