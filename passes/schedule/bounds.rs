//! Lower bounds: M_R (no order fits below it), the live bytes of an order, and the
//! non-compulsory traffic any plan of a fixed order must pay at a budget.

use super::problem::{Lifetimes, OpId, Problem};

/// `M_R = max over operators of the bytes of their distinct inputs and outputs`, with
/// the operator that needs it (None for a graph with no tracked tensor).
pub fn m_r(p: &Problem) -> (u64, Option<OpId>) {
    let mut best = (0, None);
    for o in 0..p.ops.len() {
        let b = p.op_bytes(o);
        if b > best.0 {
            best = (b, Some(o));
        }
    }
    best
}

/// Bytes alive at each of `steps` steps, given `(size, first step, last step)` intervals
/// (steps inclusive, last < `steps`), by one sweep over a difference array.
pub fn interval_loads(
    steps: usize,
    intervals: impl IntoIterator<Item = (u64, usize, usize)>,
) -> Vec<u64> {
    let mut delta = vec![0i128; steps + 1];
    for (size, first, last) in intervals {
        delta[first] += size as i128;
        delta[last + 1] -= size as i128;
    }
    let mut cur = 0i128;
    (0..steps)
        .map(|t| {
            cur += delta[t];
            cur as u64
        })
        .collect()
}

/// Bytes alive at each step of `order` (a tensor is alive from its first to its last use).
pub fn live_bytes(p: &Problem, lt: &Lifetimes) -> Vec<u64> {
    let used = p
        .tensors
        .iter()
        .enumerate()
        .filter(|&(a, _)| !lt.uses[a].is_empty())
        .map(|(a, t)| (t.size, lt.start[a], lt.end[a]));
    interval_loads(p.ops.len(), used)
}

/// `L(σ)`: the peak of [`live_bytes`]; no placement of this order needs less.
pub fn peak(p: &Problem, order: &[OpId]) -> u64 {
    let lt = Lifetimes::new(p, order);
    live_bytes(p, &lt).into_iter().max().unwrap_or(0)
}

/// A lower bound on the non-compulsory traffic of any plan that runs `order` in `budget`
/// bytes. At each step the live tensors the operator does not touch ("bystanders") must
/// be off chip for at least `excess = live − budget` bytes; each such activation costs a
/// spill and a reload (2× its size), each graph input or weight a reload (1×). The bound
/// is the largest fractional min-cost cover of the excess over all steps. `None` when
/// some step cannot fit even with every bystander off chip.
pub fn traffic_lower_bound(p: &Problem, order: &[OpId], budget: u64) -> Option<u64> {
    let lt = Lifetimes::new(p, order);
    let live = live_bytes(p, &lt);
    let mut best = 0u64;
    for (t, &o) in order.iter().enumerate() {
        let own = p.op_bytes(o);
        if own > budget {
            return None;
        }
        let excess = live[t].saturating_sub(budget);
        if excess == 0 {
            continue;
        }
        let op = &p.ops[o];
        let (mut cheap, mut dear) = (0u64, 0u64);
        for (a, ten) in p.tensors.iter().enumerate() {
            if lt.live_at(a, t) && !op.inputs.contains(&a) && !op.outputs.contains(&a) {
                if ten.host_backed() {
                    cheap += ten.size;
                } else {
                    dear += ten.size;
                }
            }
        }
        if cheap + dear < excess {
            return None;
        }
        let cost = if cheap >= excess {
            excess
        } else {
            cheap + 2 * (excess - cheap)
        };
        best = best.max(cost);
    }
    Some(best)
}

/// A lower bound on the non-compulsory traffic of any plan in *any* order at `budget`
/// bytes, from M_P: every order has a step where at least M_P bytes are alive, so at
/// least `M_P − budget` bytes of bystanders are off chip there. A bystander activation
/// was spilled and is reloaded (2× its size); a graph input or weight costs 1× but can be
/// a bystander only when two operators read it. `None` unless M_P is exact.
pub fn free_order_traffic_lower_bound(
    p: &Problem,
    m_p: u64,
    m_p_exact: bool,
    budget: u64,
) -> Option<u64> {
    if !m_p_exact {
        return None;
    }
    let mut readers = vec![0usize; p.tensors.len()];
    for op in &p.ops {
        let mut u: Vec<_> = op.uses().collect();
        u.sort_unstable();
        u.dedup();
        for a in u {
            readers[a] += 1;
        }
    }
    let cheap_bystander = p
        .tensors
        .iter()
        .enumerate()
        .any(|(a, t)| t.host_backed() && readers[a] > 1);
    let per_byte = if cheap_bystander { 1 } else { 2 };
    Some(per_byte * m_p.saturating_sub(budget))
}

/// An order-independent lower bound from *forced bystanders*: tensor `a` is alive but
/// unused at operator `o` in every order when one of its users is an ancestor of `o` and
/// another a descendant. If `o`'s own bytes plus its forced bystanders exceed the budget,
/// at least the excess of those bystanders is off chip when `o` runs, and each tensor
/// sent off chip costs at least a spill and a reload (2× its size; 1× for graph inputs and
/// weights). The cheapest set of tensors that covers every operator's excess is found by
/// a small covering program on CBC; its bound (optimal or CBC's best bound within
/// `limit_s`) is the result. `None` when the budget is below what some operator forces.
pub fn forced_bystander_lower_bound(p: &Problem, budget: u64, limit_s: f64) -> Option<u64> {
    use good_lp::solvers::coin_cbc::coin_cbc;
    use good_lp::{variable, Expression, ProblemVariables, SolverModel, WithTimeLimit};
    let n = p.ops.len();
    let words = n.div_ceil(64).max(1);
    let order = p.model_order();
    let mut succs: Vec<Vec<OpId>> = vec![Vec::new(); n];
    for (v, op) in p.ops.iter().enumerate() {
        for &q in &op.preds {
            succs[q].push(v);
        }
    }
    let set = |b: &mut [u64], i: usize| b[i / 64] |= 1 << (i % 64);
    // Descendants and ancestors (excluding the operator itself).
    let mut desc = vec![vec![0u64; words]; n];
    for &o in order.iter().rev() {
        let mut d = vec![0u64; words];
        for &s in &succs[o] {
            set(&mut d, s);
            for (x, y) in d.iter_mut().zip(&desc[s]) {
                *x |= *y;
            }
        }
        desc[o] = d;
    }
    let mut anc = vec![vec![0u64; words]; n];
    for &o in &order {
        let mut d = vec![0u64; words];
        for &q in &p.ops[o].preds {
            set(&mut d, q);
            for (x, y) in d.iter_mut().zip(&anc[q]) {
                *x |= *y;
            }
        }
        anc[o] = d;
    }
    let mut users: Vec<Vec<OpId>> = vec![Vec::new(); p.tensors.len()];
    for (o, op) in p.ops.iter().enumerate() {
        for a in op.uses() {
            if users[a].last() != Some(&o) {
                users[a].push(o);
            }
        }
    }
    // forced[o]: tensors forced to be bystanders at o.
    let mut forced: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (a, us) in users.iter().enumerate() {
        if us.len() < 2 {
            continue;
        }
        let mut after = vec![0u64; words]; // ops after some user
        let mut before = vec![0u64; words]; // ops before some user
        for &u in us {
            for (x, y) in after.iter_mut().zip(&desc[u]) {
                *x |= *y;
            }
            for (x, y) in before.iter_mut().zip(&anc[u]) {
                *x |= *y;
            }
        }
        for w in 0..words {
            let mut m = after[w] & before[w];
            while m != 0 {
                let o = w * 64 + m.trailing_zeros() as usize;
                m &= m - 1;
                if !us.contains(&o) {
                    forced[o].push(a);
                }
            }
        }
    }
    let unit = p.size_unit();
    let su = |a: usize| (p.tensors[a].size / unit) as f64;
    let cost = |a: usize| {
        if p.tensors[a].host_backed() {
            su(a)
        } else {
            2.0 * su(a)
        }
    };
    let mut vars = ProblemVariables::new();
    let mut x: Vec<Option<good_lp::Variable>> = vec![None; p.tensors.len()];
    let mut cons = Vec::new();
    let mut objective = Expression::from(0.0);
    for (o, fo) in forced.iter().enumerate() {
        let by: u64 = fo.iter().map(|&a| p.tensors[a].size).sum();
        let need = (p.op_bytes(o) + by).saturating_sub(budget);
        if need == 0 {
            continue;
        }
        if by < need {
            return None;
        }
        let mut e = Expression::from(0.0);
        for &a in fo {
            let v = *x[a].get_or_insert_with(|| {
                let v = vars.add(variable().binary());
                objective += cost(a) * v;
                v
            });
            e += su(a) * v;
        }
        cons.push(e.geq(need.div_ceil(unit) as f64));
    }
    if cons.is_empty() {
        return Some(0);
    }
    let mut model = vars.minimise(objective).using(coin_cbc);
    crate::cbc::quiet(&mut model);
    for c in cons {
        model.add_constraint(c);
    }
    let sol = model.with_time_limit(limit_s.max(0.5)).solve().ok()?;
    let b = sol.model().best_possible_value();
    b.is_finite()
        .then(|| ((b - 1e-6).max(0.0).ceil() as u64) * unit)
}
