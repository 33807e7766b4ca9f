//! Free-order COSMA: the operator order, the offsets and the spills chosen together in one
//! integer program (the reference's formulation with order variables), for small graphs.
//!
//! `x[o,t]` runs operator `o` at step `t` (one operator per step, each exactly once,
//! inside its ASAP/ALAP window; a predecessor's step is smaller). Per tensor `a` and step
//! `t` of its possible lifetime: created `C = x[producer,t]`, first load `F` (graph inputs
//! and weights, free: compulsory traffic), preserved `P`, reloaded `R`, spilled `S`, and
//! an offset `L`; `res = C + F + P + R ≤ 1`. Constraints: preserve or spill only what was
//! resident (Eq.2-3), reload only after a spill (Eq.4), inputs on chip when their reader
//! runs (Eq.5, which also orders the operators), one spill per tensor (Eq.8), offsets
//! inside the scratchpad (Eq.9), no overlap of resident tensors (Eq.10, one ordering
//! binary per pair and step), fixed addresses while preserved (Eq.11). P, R and S are
//! allowed only while some reader is still to run, so nothing occupies the chip after its
//! last use. Objective: spilled plus reloaded bytes (Eq.12).
//!
//! The program grows with steps × tensors²; the pass uses it for graphs of a few dozen
//! operators and keeps the cheapest checked plan of all methods.

use super::ilp::IlpStatus;
use super::plan::{Plan, StepActions};
use super::problem::{OpId, Problem, TensorId};
use good_lp::solvers::coin_cbc::coin_cbc;
use good_lp::{
    variable, Constraint, Expression, ProblemVariables, Solution, SolutionStatus, SolverModel,
    Variable, WithInitialSolution, WithTimeLimit,
};
use std::collections::BTreeMap;
use std::time::Instant;

/// What the free-order program produced.
#[derive(Clone, Debug)]
pub struct FreeOutcome {
    pub status: IlpStatus,
    pub plan: Option<Plan>,
    /// Objective of `plan` in bytes.
    pub objective: Option<u64>,
    /// CBC's bound over all orders, in bytes (the objective when optimal).
    pub bound: Option<u64>,
    pub seconds: f64,
    pub variables: usize,
}

struct TV {
    f: Option<Variable>,
    p: Option<Variable>,
    r: Option<Variable>,
    s: Option<Variable>,
    l: Variable,
}

/// Earliest and latest step of every operator (ancestors before, descendants after).
pub fn op_windows(p: &Problem) -> Vec<(usize, usize)> {
    let n = p.ops.len();
    let mut anc: Vec<Vec<bool>> = vec![vec![false; n]; n];
    // Operators are numbered in a topological (model) order.
    for o in 0..n {
        for &q in &p.ops[o].preds {
            anc[o][q] = true;
            let row = anc[q].clone();
            for (k, &b) in row.iter().enumerate() {
                if b {
                    anc[o][k] = true;
                }
            }
        }
    }
    (0..n)
        .map(|o| {
            let before = anc[o].iter().filter(|&&b| b).count();
            let after = (0..n).filter(|&k| anc[k][o]).count();
            (before, n - 1 - after)
        })
        .collect()
}

/// Solves the free-order program for `p` at `budget` bytes within `limit_s` seconds.
///
/// `warm`, a plan of `p` (any order), starts CBC from its values, so the result is never
/// costlier than that plan when CBC keeps the start.
pub fn solve_free(p: &Problem, budget: u64, limit_s: f64, warm: Option<&Plan>) -> FreeOutcome {
    let started = Instant::now();
    if p.ops.is_empty() {
        return FreeOutcome {
            status: IlpStatus::Optimal,
            plan: Some(Plan::empty(Vec::new())),
            objective: Some(0),
            bound: Some(0),
            seconds: 0.0,
            variables: 0,
        };
    }
    if p.tensors.iter().any(|t| t.size > budget) {
        return failed(IlpStatus::Infeasible, started, 0);
    }
    let mut prog = FreeProgram::new(p, budget);
    prog.order_constraints();
    for a in 0..p.tensors.len() {
        prog.tensor_variables(a);
    }
    prog.input_constraints();
    for t in 0..p.ops.len() {
        prog.capacity_and_overlap(t);
    }
    prog.solve(warm, limit_s, started)
}

/// An outcome without a plan.
fn failed(status: IlpStatus, started: Instant, variables: usize) -> FreeOutcome {
    FreeOutcome {
        status,
        plan: None,
        objective: None,
        bound: None,
        seconds: started.elapsed().as_secs_f64(),
        variables,
    }
}

/// The free-order program under construction. Each step adds its variables and
/// constraints in the order they have always been added: CBC's search, hence its answer
/// within a time limit, depends on that order.
struct FreeProgram<'a> {
    p: &'a Problem,
    /// Bytes per program unit (the gcd of the tensor sizes).
    unit: u64,
    /// The scratchpad in units.
    cap: f64,
    vars: ProblemVariables,
    cons: Vec<Constraint>,
    /// x[o][t] for t in the window of o.
    x: Vec<BTreeMap<usize, Variable>>,
    /// Possible lifetime of each tensor.
    span: Vec<Option<(usize, usize)>>,
    tv: BTreeMap<(TensorId, usize), TV>,
    objective: Expression,
    /// The ordering binary of each pair of tensors that may both be resident at a step.
    pairs_z: Vec<(TensorId, TensorId, usize, Variable)>,
}

impl<'a> FreeProgram<'a> {
    /// The order variables `x` and the tensors' possible lifetimes.
    fn new(p: &'a Problem, budget: u64) -> Self {
        let n = p.ops.len();
        let unit = p.size_unit();
        let win = op_windows(p);
        let mut vars = ProblemVariables::new();
        let x: Vec<BTreeMap<usize, Variable>> = (0..n)
            .map(|o| {
                (win[o].0..=win[o].1)
                    .map(|t| (t, vars.add(variable().binary())))
                    .collect()
            })
            .collect();
        let span: Vec<Option<(usize, usize)>> = p
            .tensors
            .iter()
            .map(|ten| {
                let users: Vec<OpId> = ten
                    .producer
                    .into_iter()
                    .chain(ten.consumers.clone())
                    .collect();
                let lo = users.iter().map(|&o| win[o].0).min()?;
                let hi = users.iter().map(|&o| win[o].1).max()?;
                Some((lo, hi))
            })
            .collect();
        FreeProgram {
            p,
            unit,
            cap: (budget / unit) as f64,
            vars,
            cons: Vec::new(),
            x,
            span,
            tv: BTreeMap::new(),
            objective: Expression::from(0.0),
            pairs_z: Vec::new(),
        }
    }

    /// Size of tensor `a` in units.
    fn su(&self, a: TensorId) -> f64 {
        (self.p.tensors[a].size / self.unit) as f64
    }

    /// The step of operator `o`.
    fn pos(&self, o: OpId) -> Expression {
        let mut e = Expression::from(0.0);
        for (&t, &v) in &self.x[o] {
            e += t as f64 * v;
        }
        e
    }

    /// "Some reader of a runs at t or later".
    fn pending(&self, a: TensorId, t: usize) -> Expression {
        let mut e = Expression::from(0.0);
        for &c in &self.p.tensors[a].consumers {
            for (_, &v) in self.x[c].range(t..) {
                e += v;
            }
        }
        e
    }

    /// Whether tensor `a` is on chip at step `t` (created, first loaded, preserved or
    /// reloaded there).
    fn res_of(&self, a: TensorId, t: usize) -> Expression {
        let mut e = Expression::from(0.0);
        if let Some(v) = self.tv.get(&(a, t)) {
            for w in [v.f, v.p, v.r].into_iter().flatten() {
                e += w;
            }
        }
        if let Some(pr) = self.p.tensors[a].producer {
            if let Some(&c) = self.x[pr].get(&t) {
                e += c;
            }
        }
        e
    }

    /// Every operator runs exactly once, one operator per step, after its predecessors.
    fn order_constraints(&mut self) {
        let n = self.p.ops.len();
        for xo in &self.x {
            let mut e = Expression::from(0.0);
            for &v in xo.values() {
                e += v;
            }
            self.cons.push(e.eq(1.0));
        }
        for t in 0..n {
            let mut e = Expression::from(0.0);
            for xo in &self.x {
                if let Some(&v) = xo.get(&t) {
                    e += v;
                }
            }
            self.cons.push(e.eq(1.0));
        }
        for o in 0..n {
            for &q in &self.p.ops[o].preds {
                let c = (self.pos(q) + 1.0).leq(self.pos(o));
                self.cons.push(c);
            }
        }
    }

    /// Tensor `a`'s variables at each step of its possible lifetime, their share of the
    /// objective, and the constraints between them (Eq.2-4, 8, 11; one first load).
    fn tensor_variables(&mut self, a: TensorId) {
        let p = self.p;
        let ten = &p.tensors[a];
        let Some((lo, hi)) = self.span[a] else { return };
        let read = !ten.consumers.is_empty();
        let (cap, su) = (self.cap, self.su(a));
        let mut spills: Vec<Variable> = Vec::new();
        let mut loads: Vec<Variable> = Vec::new();
        for t in lo..=hi {
            let l = self.vars.add(variable().integer().min(0.0).max(cap - su));
            let mut v = TV {
                f: None,
                p: None,
                r: None,
                s: None,
                l,
            };
            if read {
                if ten.host_backed() {
                    let f = self.vars.add(variable().binary());
                    loads.push(f);
                    v.f = Some(f);
                } else {
                    let s = self.vars.add(variable().binary());
                    spills.push(s);
                    v.s = Some(s);
                    self.objective += su * s;
                }
                if t > lo {
                    v.p = Some(self.vars.add(variable().binary()));
                }
                let r = self.vars.add(variable().binary());
                self.objective += su * r;
                v.r = Some(r);
                if !ten.host_backed() {
                    // Reload only after a spill.
                    let mut e = Expression::from(0.0);
                    for &s in &spills {
                        e += s;
                    }
                    self.cons.push(Expression::from(r).leq(e));
                }
                // Nothing stays, comes back or leaves once every reader has run.
                for w in [v.f, v.p, v.r, v.s].into_iter().flatten() {
                    let c = Expression::from(w).leq(self.pending(a, t));
                    self.cons.push(c);
                }
            }
            self.tv.insert((a, t), v);
            let res = self.res_of(a, t);
            self.cons.push(res.leq(1.0));
            let v = &self.tv[&(a, t)];
            let (vp, vs) = (v.p, v.s);
            let prev = if t > lo {
                self.res_of(a, t - 1)
            } else {
                Expression::from(0.0)
            };
            if let Some(pv) = vp {
                self.cons.push(Expression::from(pv).leq(prev.clone()));
                // Address fixed while preserved.
                let m = cap;
                let pl = self.tv[&(a, t - 1)].l;
                self.cons.push((Expression::from(l) - pl + m * pv).leq(m));
                self.cons.push((Expression::from(pl) - l + m * pv).leq(m));
            }
            if let Some(s) = vs {
                self.cons.push(Expression::from(s).leq(prev));
                if let Some(pv) = vp {
                    self.cons.push((Expression::from(s) + pv).leq(1.0));
                }
            }
        }
        if spills.len() > 1 {
            let mut e = Expression::from(0.0);
            for &s in &spills {
                e += s;
            }
            self.cons.push(e.leq(1.0));
        }
        if loads.len() > 1 {
            let mut e = Expression::from(0.0);
            for &f in &loads {
                e += f;
            }
            self.cons.push(e.leq(1.0));
        }
    }

    /// Inputs on chip when their reader runs (Eq.5, which also orders the operators).
    fn input_constraints(&mut self) {
        for (o, op) in self.p.ops.iter().enumerate() {
            for &a in &op.inputs {
                for (&t, &xv) in &self.x[o] {
                    let c = Expression::from(xv).leq(self.res_of(a, t));
                    self.cons.push(c);
                }
            }
        }
    }

    /// Capacity at step `t`, and no overlap of the tensors resident there (Eq.9-10, one
    /// ordering binary per pair).
    fn capacity_and_overlap(&mut self, t: usize) {
        let cap = self.cap;
        let here: Vec<TensorId> = (0..self.p.tensors.len())
            .filter(|&a| self.span[a].is_some_and(|(lo, hi)| lo <= t && t <= hi))
            .collect();
        let mut total = Expression::from(0.0);
        for &a in &here {
            total += self.su(a) * self.res_of(a, t);
        }
        self.cons.push(total.leq(cap));
        for i in 0..here.len() {
            for j in i + 1..here.len() {
                let (a, b) = (here[i], here[j]);
                let z = self.vars.add(variable().binary());
                self.pairs_z.push((a, b, t, z));
                let gate = cap * (Expression::from(2.0) - self.res_of(a, t) - self.res_of(b, t));
                let (la, lb) = (self.tv[&(a, t)].l, self.tv[&(b, t)].l);
                let (sa, sb) = (self.su(a), self.su(b));
                // z = 1: a above b; z = 0: b above a.
                self.cons
                    .push((Expression::from(la) - lb - sb + cap - cap * z + gate.clone()).geq(0.0));
                self.cons
                    .push((Expression::from(lb) - la - sa + cap * z + gate).geq(0.0));
            }
        }
    }

    /// Hands the program to CBC, started from `warm`'s values when they fit the program,
    /// and decodes the incumbent (or the start, when CBC did not improve on it).
    fn solve(self, warm: Option<&Plan>, limit_s: f64, started: Instant) -> FreeOutcome {
        let FreeProgram {
            p,
            unit,
            vars,
            cons,
            x,
            tv,
            objective,
            pairs_z,
            ..
        } = self;
        let variables = x.iter().map(|m| m.len()).sum::<usize>() + tv.len() * 5 + pairs_z.len();
        let start_values = warm.and_then(|plan| warm_values(p, plan, unit, &x, &tv, &pairs_z));
        let mut model = vars.minimise(objective.clone()).using(coin_cbc);
        crate::cbc::quiet(&mut model);
        for c in cons {
            model.add_constraint(c);
        }
        let mut model = model.with_time_limit(limit_s.max(0.5));
        let start_copy = start_values.clone();
        if let Some(v) = start_values {
            model = model.with_initial_solution(v);
        }
        let sol = match model.solve() {
            Ok(s) => s,
            Err(good_lp::ResolutionError::Infeasible) => {
                return failed(IlpStatus::Infeasible, started, variables);
            }
            Err(_) => return failed(IlpStatus::Failed, started, variables),
        };
        let status = match sol.status() {
            SolutionStatus::Optimal => IlpStatus::Optimal,
            _ => IlpStatus::TimeLimit,
        };
        // CBC may stop at once on an optimal start and hand back LP values rather than the
        // start: when it did not improve on the start, the start itself is the incumbent.
        let start_map: Option<std::collections::HashMap<Variable, f64>> =
            start_copy.map(|v| v.into_iter().collect());
        let cbc_obj = sol.eval(&objective);
        let use_start = start_map
            .as_ref()
            .is_some_and(|m| objective.eval_with(m) <= cbc_obj + 1e-6);
        let decoded = match &start_map {
            Some(m) if use_start => {
                decode(p, unit, &x, &tv, m).map(|pl| (pl, objective.eval_with(m)))
            }
            _ => decode(p, unit, &x, &tv, &sol).map(|pl| (pl, cbc_obj)),
        };
        let Some((plan, obj_units)) = decoded else {
            return failed(IlpStatus::Failed, started, variables);
        };
        let to_bytes = |v: f64| (v.max(0.0) * unit as f64).round() as u64;
        let obj = to_bytes(obj_units);
        let bound = sol.model().best_possible_value();
        FreeOutcome {
            status,
            plan: Some(plan),
            objective: Some(obj),
            bound: if status == IlpStatus::Optimal {
                Some(obj)
            } else if bound.is_finite() {
                Some(to_bytes((bound - 1e-6).ceil()).min(obj))
            } else {
                None
            },
            seconds: started.elapsed().as_secs_f64(),
            variables,
        }
    }
}

/// The plan a solution (CBC's, or the start's values) describes; `None` when its `x`
/// values do not form a valid order.
fn decode(
    p: &Problem,
    unit: u64,
    x: &[BTreeMap<usize, Variable>],
    tv: &BTreeMap<(TensorId, usize), TV>,
    sol: &impl Solution,
) -> Option<Plan> {
    let on = |v: Option<Variable>| v.is_some_and(|v| sol.value(v) > 0.5);
    let n = p.ops.len();
    // The order.
    let mut order: Vec<OpId> = vec![usize::MAX; n];
    for (o, xo) in x.iter().enumerate() {
        if let Some((&t, _)) = xo.iter().find(|(_, &v)| sol.value(v) > 0.5) {
            if order[t] == usize::MAX {
                order[t] = o;
            }
        }
    }
    if order.contains(&usize::MAX) || p.check_order(&order).is_err() {
        return None;
    }
    // Actions per step, replaying residency as in the fixed-order decoder.
    let mut last = vec![None::<usize>; p.tensors.len()];
    for (t, &o) in order.iter().enumerate() {
        for a in p.ops[o].uses() {
            last[a] = Some(t);
        }
    }
    let mut plan = Plan::empty(order.clone());
    let mut resident = vec![false; p.tensors.len()];
    for (t, &op) in order.iter().enumerate() {
        let acts: &mut StepActions = &mut plan.steps[t];
        for (a, ten) in p.tensors.iter().enumerate() {
            let Some(v) = tv.get(&(a, t)) else { continue };
            if last[a].is_some_and(|l| l < t) {
                continue;
            }
            let addr = (sol.value(v.l).round().max(0.0) as u64) * unit;
            if on(v.s) {
                acts.spill.push(a);
                resident[a] = false;
            } else if resident[a] && !on(v.p) {
                acts.drop.push(a);
                resident[a] = false;
            }
            if ten.producer == Some(op) {
                acts.alloc.push((a, addr));
                resident[a] = true;
            } else if on(v.f) || on(v.r) {
                acts.reload.push((a, addr));
                resident[a] = true;
            }
        }
        for a in p.ops[op].uses() {
            if last[a] == Some(t) {
                resident[a] = false;
            }
        }
    }
    Some(plan)
}

/// Values of every variable for `plan` (CBC's start); `None` when the plan leaves the
/// program's windows (then CBC starts from nothing).
fn warm_values(
    p: &Problem,
    plan: &Plan,
    unit: u64,
    x: &[BTreeMap<usize, Variable>],
    tv: &BTreeMap<(TensorId, usize), TV>,
    pairs: &[(TensorId, TensorId, usize, Variable)],
) -> Option<Vec<(Variable, f64)>> {
    let n = p.ops.len();
    if plan.order.len() != n || plan.steps.len() != n {
        return None;
    }
    let mut out = Vec::new();
    for (t, &o) in plan.order.iter().enumerate() {
        x[o].get(&t)?;
        for (&k, &v) in &x[o] {
            out.push((v, if k == t { 1.0 } else { 0.0 }));
        }
    }
    let mut last = vec![None::<usize>; p.tensors.len()];
    for (t, &o) in plan.order.iter().enumerate() {
        for a in p.ops[o].uses() {
            last[a] = Some(t);
        }
    }
    let mut addr: Vec<Option<u64>> = vec![None; p.tensors.len()];
    let mut loaded = vec![false; p.tensors.len()];
    let mut at: BTreeMap<(TensorId, usize), u64> = BTreeMap::new();
    for (t, acts) in plan.steps.iter().enumerate() {
        let before = addr.clone();
        for &a in acts.spill.iter().chain(&acts.drop) {
            addr[a] = None;
        }
        for &(a, x) in acts.reload.iter().chain(&acts.alloc) {
            addr[a] = Some(x);
        }
        for (a, ten) in p.tensors.iter().enumerate() {
            let now = addr[a];
            let reloaded = acts.reload.iter().any(|&(b, _)| b == a);
            let first = reloaded && ten.host_backed() && !loaded[a];
            if reloaded {
                loaded[a] = true;
            }
            let kept = now.is_some() && before[a].is_some() && !reloaded;
            let spilled = acts.spill.contains(&a);
            let Some(v) = tv.get(&(a, t)) else {
                if now.is_some() || spilled || reloaded {
                    return None;
                }
                continue;
            };
            let mut set = |var: Option<Variable>, on: bool| -> Option<()> {
                match var {
                    Some(w) => out.push((w, if on { 1.0 } else { 0.0 })),
                    None if on => return None,
                    None => {}
                }
                Some(())
            };
            set(v.f, first)?;
            set(v.r, reloaded && !first)?;
            set(v.s, spilled)?;
            set(v.p, kept)?;
            out.push((v.l, now.map(|x| (x / unit) as f64).unwrap_or(0.0)));
            if let Some(x) = now {
                at.insert((a, t), x);
            }
        }
        for a in p.ops[plan.order[t]].uses() {
            if last[a] == Some(t) {
                addr[a] = None;
            }
        }
    }
    for &(a, b, t, z) in pairs {
        let v = match (at.get(&(a, t)), at.get(&(b, t))) {
            (Some(x), Some(y)) if x > y => 1.0,
            _ => 0.0,
        };
        out.push((z, v));
    }
    Some(out)
}
