//! COSMA as an integer program (good_lp + CBC), for a fixed order over a window of steps.
//!
//! Variables per tensor `a` and step `t` of its lifetime inside the window (sizes and
//! addresses in units of the gcd of all tensor sizes, to keep big-M small):
//! `P[a,t]` preserved (on chip at t-1 and t, same address), `R[a,t]` reloaded before t,
//! `S[a,t]` spilled before t, `L[a,t]` its offset; `z[a,b,t]` orders two tensors in
//! memory. Residency `res = created + P + R`. Constraints follow the paper (Eq.2-5, 8-12):
//! preserve/spill only what was resident, reload only after a spill (graph inputs and
//! weights have an off-chip copy from the start), inputs and outputs on chip when their
//! operator runs, at most one spill, placement inside the scratchpad, no overlap, address
//! fixed while preserved. A spill and a reload in the same step (relocation) is allowed.
//! Objective: spilled plus reloaded bytes (the compulsory first load of a graph input or
//! weight is fixed and not counted).
//!
//! The whole fixed-order problem is the window `0..n` from an empty chip; the
//! divide-and-conquer mode solves consecutive windows, each starting from the state the
//! previous one left.

use super::baseline::ChipState;
use super::plan::{Plan, StepActions};
use super::problem::{Lifetimes, OpId, Problem, TensorId};
use good_lp::solvers::coin_cbc::coin_cbc;
use good_lp::{
    variable, Expression, ProblemVariables, ResolutionError, Solution, SolutionStatus, SolverModel,
    Variable, WithInitialSolution, WithTimeLimit,
};
use std::collections::HashMap;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IlpStatus {
    Optimal,
    TimeLimit,
    Infeasible,
    Failed,
}

/// What one ILP solve produced.
#[derive(Clone, Debug)]
pub struct IlpOutcome {
    pub status: IlpStatus,
    /// Objective of the returned solution, in bytes.
    pub objective: Option<u64>,
    /// CBC's best bound, in bytes.
    pub bound: Option<u64>,
    pub seconds: f64,
    /// Actions for steps `t0..t1` (empty when there is no solution).
    pub steps: Vec<StepActions>,
    /// The chip after step `t1 - 1`.
    pub end: Option<ChipState>,
    pub variables: usize,
    pub constraints: usize,
}

/// One fixed-order window to solve.
pub struct Window<'a> {
    pub p: &'a Problem,
    pub lt: &'a Lifetimes,
    pub order: &'a [OpId],
    pub t0: usize,
    pub t1: usize,
    /// The chip before step `t0`.
    pub init: &'a ChipState,
    pub budget: u64,
    pub time_limit_s: f64,
    /// A plan whose steps `t0..t1` are feasible from `init`, used as CBC's start.
    pub warm: Option<&'a Plan>,
}

struct TVars {
    p: Option<Variable>,
    r: Option<Variable>,
    s: Option<Variable>,
    l: Variable,
    /// Created at this step, or a compulsory first load: resident for sure.
    fixed: bool,
    /// Used by the step's operator: resident for sure (P + R = 1 is imposed).
    used: bool,
}

impl TVars {
    fn res(&self) -> Expression {
        if self.fixed {
            return Expression::from(1.0);
        }
        let mut e = Expression::from(0.0);
        if let Some(p) = self.p {
            e += p;
        }
        if let Some(r) = self.r {
            e += r;
        }
        e
    }
    fn surely_resident(&self) -> bool {
        self.fixed || self.used
    }
}

/// Solves one window with CBC; CBC's log is silenced.
pub fn solve_window(w: &Window) -> IlpOutcome {
    let start = Instant::now();
    let mut prog = WindowProgram::new(w);
    for a in 0..w.p.tensors.len() {
        if !prog.add_tensor(a) {
            return failed(start);
        }
    }
    for k in 0..w.t1 - w.t0 {
        prog.capacity_and_overlap(k);
    }
    prog.solve(start)
}

/// The program of one window under construction. Its steps add variables and constraints
/// in the order they have always been added: CBC's search, hence its answer within a time
/// limit, depends on that order.
struct WindowProgram<'w, 'a> {
    w: &'w Window<'a>,
    /// Bytes per program unit (the gcd of the tensor sizes).
    unit: u64,
    /// The scratchpad in units.
    capf: f64,
    vars: ProblemVariables,
    tv: HashMap<(TensorId, usize), TVars>,
    objective: Expression,
    cons: Vec<good_lp::Constraint>,
    /// Tensors with variables at each step of the window.
    active: Vec<Vec<TensorId>>,
    zs: HashMap<(TensorId, TensorId, usize), Variable>,
}

/// Where one tensor's variables run in a window, and what it brings into it.
struct TensorSpan {
    a: TensorId,
    /// Size in units.
    size: f64,
    first: usize,
    /// Live before the window starts.
    crossing_in: bool,
    on_chip_before: bool,
    /// An off-chip copy exists when the window starts (then it is never spilled).
    copy_before: bool,
}

impl<'w, 'a> WindowProgram<'w, 'a> {
    fn new(w: &'w Window<'a>) -> Self {
        let unit = w.p.size_unit();
        let cap = w.budget / unit;
        WindowProgram {
            w,
            unit,
            capf: cap as f64,
            vars: ProblemVariables::new(),
            tv: HashMap::new(),
            objective: Expression::from(0.0),
            cons: Vec::new(),
            active: vec![Vec::new(); w.t1 - w.t0],
            zs: HashMap::new(),
        }
    }

    /// Size of tensor `a` in units.
    fn su(&self, a: TensorId) -> f64 {
        (self.w.p.tensors[a].size / self.unit) as f64
    }

    /// Tensor `a`'s variables at each step of its lifetime inside the window, with at most
    /// one spill and, when it lives past the window, on chip or written off-chip by its
    /// end. `false` when the tensor alone does not fit the scratchpad.
    fn add_tensor(&mut self, a: TensorId) -> bool {
        let w = self.w;
        if w.lt.uses[a].is_empty() || w.lt.end[a] < w.t0 || w.lt.start[a] >= w.t1 {
            return true;
        }
        let size = self.su(a);
        if size > self.capf {
            return false;
        }
        let first = w.lt.start[a].max(w.t0);
        let last = w.lt.end[a].min(w.t1 - 1);
        let crossing_in = w.lt.start[a] < w.t0;
        let span = TensorSpan {
            a,
            size,
            first,
            crossing_in,
            on_chip_before: crossing_in && w.init.addr[a].is_some(),
            copy_before: if crossing_in {
                w.init.has_copy[a]
            } else {
                w.p.tensors[a].host_backed()
            },
        };
        let mut spill_vars = Vec::new();
        for t in first..=last {
            self.add_step(&span, t, &mut spill_vars);
        }
        if spill_vars.len() > 1 {
            let mut sum = Expression::from(0.0);
            for &s in &spill_vars {
                sum += s;
            }
            self.cons.push(sum.leq(1.0));
        }
        // Live past the window: on chip at its end or written off-chip by then.
        if w.lt.end[a] >= w.t1 && !span.copy_before {
            let mut e = self.tv[&(a, last)].res();
            for &s in &spill_vars {
                e += s;
            }
            self.cons.push(e.geq(1.0));
        }
        true
    }

    /// The variables of one tensor at step `t` and their constraints (Eq.2-4, 11; on chip
    /// when its operator uses it).
    fn add_step(&mut self, span: &TensorSpan, t: usize, spill_vars: &mut Vec<Variable>) {
        let (w, a, size, first) = (self.w, span.a, span.size, span.first);
        let capf = self.capf;
        self.active[t - w.t0].push(a);
        let l = self
            .vars
            .add(variable().integer().min(0.0).max(capf - size));
        let used = w.lt.uses[a].binary_search(&t).is_ok();
        let fixed = !span.crossing_in && t == first;
        let prev_possible = if t == first {
            span.on_chip_before
        } else {
            true
        };
        let mut v = TVars {
            p: None,
            r: None,
            s: None,
            l,
            fixed,
            used,
        };
        if !fixed {
            if prev_possible {
                v.p = Some(self.vars.add(variable().binary()));
                if !span.copy_before {
                    let s = self.vars.add(variable().binary());
                    spill_vars.push(s);
                    v.s = Some(s);
                }
            }
            v.r = Some(self.vars.add(variable().binary()));
        }
        // Reload only after a spill (or when a copy existed from the start).
        if let Some(r) = v.r {
            self.objective += size * r;
            if !span.copy_before {
                let mut sum = Expression::from(0.0);
                for &s in spill_vars.iter() {
                    sum += s;
                }
                self.cons.push((Expression::from(r) - sum).leq(0.0));
            }
        }
        if let Some(s) = v.s {
            self.objective += size * s;
        }
        // Preserve / spill only what was resident at t-1.
        let prev_res: Expression = if t == first {
            Expression::from(if span.on_chip_before { 1.0 } else { 0.0 })
        } else {
            self.tv[&(a, t - 1)].res()
        };
        if let Some(pv) = v.p {
            self.cons
                .push((Expression::from(pv) - prev_res.clone()).leq(0.0));
            if let Some(r) = v.r {
                self.cons.push((Expression::from(pv) + r).leq(1.0));
            }
            // Address fixed while preserved.
            let m = capf - size;
            let prev_l: Expression = if t == first {
                Expression::from(
                    w.init.addr[a]
                        .map(|x| (x / self.unit) as f64)
                        .unwrap_or(0.0),
                )
            } else {
                Expression::from(self.tv[&(a, t - 1)].l)
            };
            self.cons
                .push((Expression::from(l) - prev_l.clone() + m * pv).leq(m));
            self.cons.push((prev_l - l + m * pv).leq(m));
        }
        if let Some(s) = v.s {
            self.cons.push((Expression::from(s) - prev_res).leq(0.0));
            if let Some(pv) = v.p {
                self.cons.push((Expression::from(s) + pv).leq(1.0));
            }
        }
        if used && !fixed {
            self.cons.push(v.res().eq(1.0));
        }
        self.tv.insert((a, t), v);
    }

    /// Capacity at the window's `k`-th step, and no overlap of the tensors resident there
    /// (Eq.9-10, one ordering binary per pair).
    fn capacity_and_overlap(&mut self, k: usize) {
        let t = self.w.t0 + k;
        let capf = self.capf;
        let act = self.active[k].clone();
        let mut total = Expression::from(0.0);
        for &a in &act {
            total += self.su(a) * self.tv[&(a, t)].res();
        }
        self.cons.push(total.leq(capf));
        for i in 0..act.len() {
            for j in i + 1..act.len() {
                let (a, b) = (act[i], act[j]);
                let (sa, sb) = (self.su(a), self.su(b));
                let (va, vb) = (&self.tv[&(a, t)], &self.tv[&(b, t)]);
                let z = self.vars.add(variable().binary());
                self.zs.insert((a, b, t), z);
                let mut gate = Expression::from(0.0);
                if !va.surely_resident() {
                    gate += capf * (Expression::from(1.0) - va.res());
                }
                if !vb.surely_resident() {
                    gate += capf * (Expression::from(1.0) - vb.res());
                }
                // z = 1: a above b; z = 0: b above a.
                self.cons.push(
                    (Expression::from(va.l) - vb.l - sb + capf - capf * z + gate.clone()).geq(0.0),
                );
                self.cons
                    .push((Expression::from(vb.l) - va.l - sa + capf * z + gate).geq(0.0));
            }
        }
    }

    /// Hands the program to CBC, started from the window's warm plan when it fits, and
    /// decodes CBC's solution into the window's steps and the chip state after them.
    fn solve(self, start: Instant) -> IlpOutcome {
        let WindowProgram {
            w,
            unit,
            vars,
            tv,
            objective,
            cons,
            active,
            zs,
            ..
        } = self;
        let n_vars = tv.len() * 4 + zs.len();
        let n_cons = cons.len();
        let warm = w
            .warm
            .and_then(|plan| warm_values(w, plan, unit, &active, &tv, &zs));
        let mut model = vars.minimise(objective.clone()).using(coin_cbc);
        crate::cbc::quiet(&mut model);
        for c in cons {
            model.add_constraint(c);
        }
        let mut model = model.with_time_limit(w.time_limit_s.max(1.0));
        if let Some(values) = warm {
            model = model.with_initial_solution(values);
        }
        let result = model.solve();
        let seconds = start.elapsed().as_secs_f64();
        let sol = match result {
            Ok(s) => s,
            Err(ResolutionError::Infeasible) => {
                return IlpOutcome {
                    status: IlpStatus::Infeasible,
                    objective: None,
                    bound: None,
                    seconds,
                    steps: Vec::new(),
                    end: None,
                    variables: n_vars,
                    constraints: n_cons,
                }
            }
            Err(_) => {
                let mut o = failed(start);
                o.variables = n_vars;
                o.constraints = n_cons;
                return o;
            }
        };
        let status = match sol.status() {
            SolutionStatus::Optimal => IlpStatus::Optimal,
            _ => IlpStatus::TimeLimit,
        };
        let raw = sol.model();
        let bound = raw.best_possible_value();
        let obj_units = sol.eval(&objective);
        let (steps, end) = decode(w, unit, &active, &tv, &sol);
        let to_bytes = |x: f64| (x.max(0.0) * unit as f64).round() as u64;
        IlpOutcome {
            status,
            objective: Some(to_bytes(obj_units)),
            bound: if bound.is_finite() {
                Some(to_bytes(bound.min(obj_units).ceil()))
            } else {
                None
            },
            seconds,
            steps,
            end: Some(end),
            variables: n_vars,
            constraints: n_cons,
        }
    }
}

fn failed(start: Instant) -> IlpOutcome {
    IlpOutcome {
        status: IlpStatus::Failed,
        objective: None,
        bound: None,
        seconds: start.elapsed().as_secs_f64(),
        steps: Vec::new(),
        end: None,
        variables: 0,
        constraints: 0,
    }
}

fn on(sol: &impl Solution, v: Option<Variable>) -> bool {
    v.is_some_and(|v| sol.value(v) > 0.5)
}

/// Turns a solution into per-step actions and the chip state after the window.
fn decode(
    w: &Window,
    unit: u64,
    active: &[Vec<TensorId>],
    tv: &HashMap<(TensorId, usize), TVars>,
    sol: &impl Solution,
) -> (Vec<StepActions>, ChipState) {
    let p = w.p;
    let mut st = w.init.clone();
    let mut steps = vec![StepActions::default(); w.t1 - w.t0];
    for t in w.t0..w.t1 {
        let acts = &mut steps[t - w.t0];
        let o = w.order[t];
        for &a in &active[t - w.t0] {
            let v = &tv[&(a, t)];
            let addr = (sol.value(v.l).round().max(0.0) as u64) * unit;
            let was = st.addr[a].is_some();
            let spill = on(sol, v.s);
            let keep = on(sol, v.p);
            let reload = on(sol, v.r);
            if spill {
                acts.spill.push(a);
                st.has_copy[a] = true;
                st.addr[a] = None;
            } else if was && !keep {
                acts.drop.push(a);
                st.addr[a] = None;
            }
            if v.fixed {
                if p.tensors[a].host_backed() {
                    acts.reload.push((a, addr));
                } else {
                    acts.alloc.push((a, addr));
                }
                st.addr[a] = Some(addr);
            } else if reload {
                acts.reload.push((a, addr));
                st.addr[a] = Some(addr);
            }
        }
        for a in p.ops[o].uses() {
            if w.lt.end[a] == t {
                st.addr[a] = None;
            }
        }
        // Tensors resident before but with no variables at t left the chip after their
        // last use (handled above) — nothing else to do.
    }
    (steps, st)
}

/// Values of every variable for a feasible plan of the window (CBC's start).
fn warm_values(
    w: &Window,
    plan: &Plan,
    unit: u64,
    active: &[Vec<TensorId>],
    tv: &HashMap<(TensorId, usize), TVars>,
    zs: &HashMap<(TensorId, TensorId, usize), Variable>,
) -> Option<Vec<(Variable, f64)>> {
    let p = w.p;
    let mut st = w.init.clone();
    let mut res_at: HashMap<(TensorId, usize), u64> = HashMap::new();
    let mut out = Vec::new();
    for t in w.t0..w.t1 {
        let acts = plan.steps.get(t)?;
        let was: Vec<Option<u64>> = st.addr.clone();
        for &a in acts.spill.iter().chain(&acts.drop) {
            st.addr[a] = None;
        }
        for &(a, addr) in acts.reload.iter().chain(&acts.alloc) {
            st.addr[a] = Some(addr);
        }
        for &a in &active[t - w.t0] {
            let v = &tv[&(a, t)];
            let now = st.addr[a];
            let reloaded = acts.reload.iter().any(|&(b, _)| b == a);
            let spilled = acts.spill.contains(&a);
            let kept = now.is_some() && was[a].is_some() && !reloaded;
            if let Some(x) = now {
                res_at.insert((a, t), x / unit);
            }
            if let Some(pv) = v.p {
                out.push((pv, if kept { 1.0 } else { 0.0 }));
            } else if kept && !v.fixed {
                return None;
            }
            if let Some(r) = v.r {
                out.push((r, if reloaded && !v.fixed { 1.0 } else { 0.0 }));
            } else if reloaded && !v.fixed {
                return None;
            }
            if let Some(sv) = v.s {
                out.push((sv, if spilled { 1.0 } else { 0.0 }));
            } else if spilled {
                return None;
            }
            out.push((v.l, now.map(|x| (x / unit) as f64).unwrap_or(0.0)));
        }
        for a in p.ops[w.order[t]].uses() {
            if w.lt.end[a] == t {
                st.addr[a] = None;
            }
        }
    }
    for (&(a, b, t), &z) in zs {
        let val = match (res_at.get(&(a, t)), res_at.get(&(b, t))) {
            (Some(x), Some(y)) if x > y => 1.0,
            _ => 0.0,
        };
        out.push((z, val));
    }
    Some(out)
}
