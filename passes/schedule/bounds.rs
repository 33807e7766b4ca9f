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

/// Bytes alive at each step of `order` (a tensor is alive from its first to its last use).
pub fn live_bytes(p: &Problem, lt: &Lifetimes) -> Vec<u64> {
    let n = p.ops.len();
    let mut delta = vec![0i128; n + 1];
    for (a, t) in p.tensors.iter().enumerate() {
        if lt.uses[a].is_empty() {
            continue;
        }
        delta[lt.start[a]] += t.size as i128;
        delta[lt.end[a] + 1] -= t.size as i128;
    }
    let mut cur = 0i128;
    (0..n)
        .map(|t| {
            cur += delta[t];
            cur as u64
        })
        .collect()
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
