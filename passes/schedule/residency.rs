//! Two-phase COSMA for a fixed order: an integer program decides only *which* tensors stay
//! on chip between their uses (a byte capacity per step, no addresses), then the stays are
//! given best-fit offsets; when fragmentation makes the arena overflow, the capacity is
//! lowered and the program solved again.
//!
//! The residency program is far smaller than the full one (no pairwise ordering binaries):
//! one binary per *gap* between two consecutive uses of a tensor (keep it on chip over
//! the gap, or drop it and reload just before the next use — keeping it part of a gap or
//! reloading early never helps when only bytes count), plus one spill indicator per
//! activation (an activation is written off-chip once, the first time it leaves). So CBC
//! solves it to optimality on whole models where the full program needs windows, and
//! its optimum at the full budget is a lower bound on the traffic of any plan for this
//! order, placement included.

use super::baseline::{stays_to_plan, Stay};
use super::ilp::IlpStatus;
use super::placement::{pack, Block};
use super::plan::Plan;
use super::problem::{Lifetimes, OpId, Problem, TensorId};
use good_lp::solvers::coin_cbc::coin_cbc;
use good_lp::{
    variable, Expression, ProblemVariables, ResolutionError, Solution, SolutionStatus, SolverModel,
    Variable, WithTimeLimit,
};
use std::time::Instant;

/// What the two-phase solve produced.
#[derive(Clone, Debug)]
pub struct ResidencyOutcome {
    /// The cheapest placed plan found (None when no capacity gave a placement that fits).
    pub plan: Option<Plan>,
    /// Its traffic in bytes (spills plus non-compulsory reloads).
    pub objective: Option<u64>,
    /// Status of the solve that produced `plan`.
    pub status: IlpStatus,
    /// Optimum (or CBC's bound) of the residency program at the full budget: no plan for
    /// this order, placed or not, has less traffic.
    pub lower_bound: Option<u64>,
    pub seconds: f64,
    pub variables: usize,
    /// Residency programs solved (the first at the full budget; later ones with the
    /// capacity lowered where the placement overflowed).
    pub rounds: usize,
}

/// One gap of tensor `a`: off chip over steps `from+1 .. to` unless kept.
struct Gap {
    a: TensorId,
    from: usize,
    to: usize,
}

struct Program {
    gaps: Vec<Gap>,
    /// Bytes of the tensors each step's operator uses (always resident).
    base: Vec<u64>,
}

impl Program {
    fn new(p: &Problem, lt: &Lifetimes, n: usize) -> Program {
        let mut gaps = Vec::new();
        let mut base = vec![0u64; n];
        for (a, ten) in p.tensors.iter().enumerate() {
            for (k, &u) in lt.uses[a].iter().enumerate() {
                base[u] += ten.size;
                if let Some(&next) = lt.uses[a].get(k + 1) {
                    if next > u + 1 {
                        gaps.push(Gap {
                            a,
                            from: u,
                            to: next,
                        });
                    }
                }
            }
        }
        Program { gaps, base }
    }
}

struct Solved {
    keep: Vec<bool>,
    objective: u64,
    bound: Option<u64>,
    status: IlpStatus,
    variables: usize,
}

/// Solves the residency program with capacity `cap[t]` bytes at step `t`.
fn solve_capacity(
    p: &Problem,
    prog: &Program,
    n: usize,
    cap: &[u64],
    limit_s: f64,
) -> Option<Solved> {
    if prog.base.iter().zip(cap).any(|(&b, &c)| b > c) {
        return None;
    }
    let unit = p.size_unit();
    let su = |a: TensorId| (p.tensors[a].size / unit) as f64;
    let mut vars = ProblemVariables::new();
    let y: Vec<Variable> = prog
        .gaps
        .iter()
        .map(|_| vars.add(variable().binary()))
        .collect();
    let mut spill: Vec<Option<Variable>> = vec![None; p.tensors.len()];
    for g in &prog.gaps {
        if !p.tensors[g.a].host_backed() && spill[g.a].is_none() {
            spill[g.a] = Some(vars.add(variable().min(0.0).max(1.0)));
        }
    }
    // Traffic = Σ size·(1 − y) over gaps + Σ size·w over activations.
    let mut objective = Expression::from(0.0);
    let mut constant = 0.0;
    for (g, &v) in prog.gaps.iter().zip(&y) {
        constant += su(g.a);
        objective -= su(g.a) * v;
    }
    for (a, w) in spill.iter().enumerate() {
        if let Some(w) = w {
            objective += su(a) * *w;
        }
    }
    let mut cons = Vec::new();
    for (g, &v) in prog.gaps.iter().zip(&y) {
        if let Some(w) = spill[g.a] {
            cons.push((Expression::from(w) + v).geq(1.0));
        }
    }
    // Capacity per step.
    let mut load: Vec<Expression> = vec![Expression::from(0.0); n];
    let mut any = vec![false; n];
    for (g, &v) in prog.gaps.iter().zip(&y) {
        for t in g.from + 1..g.to {
            load[t] += su(g.a) * v;
            any[t] = true;
        }
    }
    for t in 0..n {
        if any[t] {
            let room = ((cap[t] - prog.base[t]) / unit) as f64;
            cons.push(std::mem::take(&mut load[t]).leq(room));
        }
    }
    let variables = y.len() + spill.iter().flatten().count();
    let mut model = vars.minimise(objective.clone()).using(coin_cbc);
    crate::cbc::quiet(&mut model);
    for c in cons {
        model.add_constraint(c);
    }
    let model = model.with_time_limit(limit_s.max(0.5));
    let sol = match model.solve() {
        Ok(s) => s,
        Err(ResolutionError::Infeasible) | Err(_) => return None,
    };
    let status = match sol.status() {
        SolutionStatus::Optimal => IlpStatus::Optimal,
        _ => IlpStatus::TimeLimit,
    };
    let keep: Vec<bool> = y.iter().map(|&v| sol.value(v) > 0.5).collect();
    // Recount exactly from the rounded decisions (not from CBC's floating objective).
    let mut objective = 0u64;
    let mut spilled = vec![false; p.tensors.len()];
    for (g, &k) in prog.gaps.iter().zip(&keep) {
        if !k {
            objective += p.tensors[g.a].size;
            if !p.tensors[g.a].host_backed() && !spilled[g.a] {
                spilled[g.a] = true;
                objective += p.tensors[g.a].size;
            }
        }
    }
    let bound = sol.model().best_possible_value();
    let bound = (bound.is_finite()).then(|| {
        let b = ((bound + constant).max(0.0) - 1e-6).ceil() as u64 * unit;
        b.min(objective)
    });
    Some(Solved {
        keep,
        objective,
        bound: if status == IlpStatus::Optimal {
            Some(objective)
        } else {
            bound
        },
        status,
        variables,
    })
}

/// The stays on chip implied by the kept gaps.
fn stays(p: &Problem, lt: &Lifetimes, prog: &Program, keep: &[bool]) -> Vec<Stay> {
    let mut dropped: Vec<Vec<usize>> = vec![Vec::new(); p.tensors.len()];
    for (g, &k) in prog.gaps.iter().zip(keep) {
        if !k {
            dropped[g.a].push(g.from);
        }
    }
    let mut out = Vec::new();
    for (a, ten) in p.tensors.iter().enumerate() {
        let uses = &lt.uses[a];
        if uses.is_empty() {
            continue;
        }
        let mut has_copy = ten.host_backed();
        let mut open = Stay {
            tensor: a,
            from: uses[0],
            to: uses[0],
            reload: ten.host_backed(),
            leave_spill: None,
        };
        for &u in &uses[1..] {
            if dropped[a].contains(&open.to) {
                let mut done = open.clone();
                done.leave_spill = Some(!has_copy);
                has_copy = true;
                out.push(done);
                open = Stay {
                    tensor: a,
                    from: u,
                    to: u,
                    reload: true,
                    leave_spill: None,
                };
            } else {
                open.to = u;
            }
        }
        out.push(open);
    }
    out
}

/// Offsets for the stays (see [`super::placement::pack`]): (offsets, arena bytes).
fn place(p: &Problem, stays: &[Stay], budget: u64, limit_s: f64) -> (Vec<u64>, u64) {
    let blocks: Vec<Block> = stays
        .iter()
        .map(|s| (p.tensors[s.tensor].size, s.from, s.to))
        .collect();
    pack(&blocks, budget, limit_s, 1)
}

/// Two-phase plan for `order` at `budget` bytes within `limit_s` seconds.
pub fn residency_plan(p: &Problem, order: &[OpId], budget: u64, limit_s: f64) -> ResidencyOutcome {
    let start = Instant::now();
    let n = order.len();
    let lt = Lifetimes::new(p, order);
    let prog = Program::new(p, &lt, n);
    let mut out = ResidencyOutcome {
        plan: None,
        objective: None,
        status: IlpStatus::Failed,
        lower_bound: None,
        seconds: 0.0,
        variables: 0,
        rounds: 0,
    };
    let mut cap = vec![budget; n];
    for round in 0..16 {
        let left = limit_s - start.elapsed().as_secs_f64();
        if left < 0.2 {
            break;
        }
        // The first solve gets half the time (its bound matters); later ones share the rest.
        let share = if round == 0 { left / 2.0 } else { left / 3.0 };
        out.rounds += 1;
        let Some(s) = solve_capacity(p, &prog, n, &cap, share) else {
            break;
        };
        out.variables = out.variables.max(s.variables);
        if round == 0 {
            out.lower_bound = s.bound;
        }
        let st = stays(p, &lt, &prog, &s.keep);
        // Placement gets a share of what is left (it stops early once the stays fit).
        let left = limit_s - start.elapsed().as_secs_f64();
        let (off, arena) = place(p, &st, budget, (left / 3.0).max(0.05));
        if arena <= budget {
            out.plan = Some(stays_to_plan(order, &st, &off));
            out.objective = Some(s.objective);
            out.status = if round == 0 {
                s.status
            } else {
                IlpStatus::TimeLimit
            };
            break;
        }
        // Lower the capacity only at the steps whose placement overflowed.
        let mut top = vec![0u64; n];
        for (k, s) in st.iter().enumerate() {
            let end = off[k] + p.tensors[s.tensor].size;
            for x in &mut top[s.from..=s.to] {
                *x = (*x).max(end);
            }
        }
        for t in 0..n {
            if top[t] > budget {
                cap[t] = cap[t].saturating_sub((top[t] - budget).max(p.alignment));
            }
        }
    }
    out.seconds = start.elapsed().as_secs_f64();
    out
}

/// Traffic of the residency program for `order` at `budget` (no placement): the cost a
/// local search over orders minimises. `None` when some step cannot fit.
pub fn residency_cost(p: &Problem, order: &[OpId], budget: u64, limit_s: f64) -> Option<u64> {
    let n = order.len();
    let lt = Lifetimes::new(p, order);
    let prog = Program::new(p, &lt, n);
    solve_capacity(p, &prog, n, &vec![budget; n], limit_s).map(|s| s.objective)
}

/// Free-order search: starting from `start`, moves one operator at a time to another
/// position allowed by its producers and consumers, near the steps where the live bytes
/// exceed the budget, and keeps the move when the residency traffic does not grow.
/// Deterministic for a given `seed`. Returns the best order and its residency traffic.
pub fn search_order(
    p: &Problem,
    start: &[OpId],
    budget: u64,
    limit_s: f64,
    seed: u64,
) -> Option<(Vec<OpId>, u64)> {
    use rand::{Rng, SeedableRng};
    let began = Instant::now();
    let n = start.len();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut succs: Vec<Vec<OpId>> = vec![Vec::new(); p.ops.len()];
    for (v, op) in p.ops.iter().enumerate() {
        for &q in &op.preds {
            succs[q].push(v);
        }
    }
    let mut best = start.to_vec();
    let mut best_cost = residency_cost(p, &best, budget, limit_s / 4.0)?;
    while best_cost > 0 && began.elapsed().as_secs_f64() < limit_s {
        let lt = Lifetimes::new(p, &best);
        let live = super::bounds::live_bytes(p, &lt);
        let hot: Vec<usize> = (0..n).filter(|&t| live[t] > budget).collect();
        if hot.is_empty() {
            break;
        }
        let t = hot[rng.random_range(0..hot.len())];
        let lo = t.saturating_sub(24);
        let hi = (t + 24).min(n - 1);
        let i = rng.random_range(lo..=hi);
        let o = best[i];
        let first = p.ops[o]
            .preds
            .iter()
            .map(|&q| lt.pos[q] + 1)
            .max()
            .unwrap_or(0);
        let last = succs[o].iter().map(|&q| lt.pos[q]).min().unwrap_or(n) - 1;
        if first >= last {
            continue;
        }
        let j = rng.random_range(first..=last);
        if j == i {
            continue;
        }
        let mut cand = best.clone();
        let op = cand.remove(i);
        cand.insert(j, op);
        let left = limit_s - began.elapsed().as_secs_f64();
        if left < 0.05 {
            break;
        }
        if let Some(c) = residency_cost(p, &cand, budget, left.min(1.0)) {
            if c <= best_cost {
                best = cand;
                best_cost = c;
            }
        }
    }
    Some((best, best_cost))
}
