//! Baselines: a TFLite-style greedy-by-size arena with Belady eviction.
//!
//! For a given order, the arena planner first places every tensor for its whole lifetime,
//! largest first, in the tightest gap among the tensors whose lifetimes overlap (TFLite's
//! `GreedyBySize` offset calculation). If that arena fits the scratchpad, nothing is
//! spilled. Otherwise Belady decides residency with a byte capacity (evict the tensor
//! whose next use is farthest), the stays on chip get greedy-by-size offsets, and the
//! capacity is lowered until that arena fits. If no capacity does, the plan is made step
//! by step (this online form also warm-starts the divide-and-conquer windows): the tensors an operator needs that
//! are not on chip (its outputs, spilled inputs) are placed largest first in the tightest
//! free gap; when none fits, the resident tensor whose next use is farthest away is evicted
//! (Belady; written off-chip if it has no copy there yet). If eviction of bystanders cannot
//! make room (fragmentation by the operator's own inputs), everything is evicted and the
//! operator's tensors are packed from offset 0.

use super::plan::{Plan, StepActions};
use super::problem::{Lifetimes, OpId, Problem, TensorId};

/// Who is on chip between steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChipState {
    /// Offset of each resident tensor.
    pub addr: Vec<Option<u64>>,
    /// True once an off-chip copy exists (always for graph inputs and weights).
    pub has_copy: Vec<bool>,
}

impl ChipState {
    pub fn initial(p: &Problem) -> ChipState {
        ChipState {
            addr: vec![None; p.tensors.len()],
            has_copy: p.tensors.iter().map(|t| t.host_backed()).collect(),
        }
    }
}

/// TFLite greedy-by-size offsets for blocks `(size, first step, last step)`: every block
/// goes, largest first, into the tightest gap among the placed blocks whose steps overlap
/// it (or above them all). Returns (offsets, arena bytes).
pub fn greedy_by_size_blocks(blocks: &[(u64, usize, usize)]) -> (Vec<u64>, u64) {
    let mut ids: Vec<usize> = (0..blocks.len()).collect();
    ids.sort_by_key(|&i| (std::cmp::Reverse(blocks[i].0), blocks[i].1, i));
    place_blocks_in_order(blocks, &ids)
}

/// Best-fit offsets for blocks placed one by one in the order `ids` (each into the
/// tightest gap among the placed blocks whose steps overlap it). Returns (offsets, arena).
pub fn place_blocks_in_order(blocks: &[(u64, usize, usize)], ids: &[usize]) -> (Vec<u64>, u64) {
    let mut offset = vec![0u64; blocks.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut arena = 0;
    for &i in ids {
        let (size, s, e) = blocks[i];
        let mut over: Vec<(u64, u64)> = placed
            .iter()
            .filter(|&&j| blocks[j].1 <= e && s <= blocks[j].2)
            .map(|&j| (offset[j], offset[j] + blocks[j].0))
            .collect();
        over.sort_unstable();
        let mut best: Option<(u64, u64)> = None; // (gap size, offset)
        let mut prev_end = 0;
        for &(a, b) in &over {
            if a >= prev_end && a - prev_end >= size {
                let gap = a - prev_end;
                if best.is_none_or(|(g, _)| gap < g) {
                    best = Some((gap, prev_end));
                }
            }
            prev_end = prev_end.max(b);
        }
        let off = best.map(|b| b.1).unwrap_or(prev_end);
        offset[i] = off;
        arena = arena.max(off + size);
        placed.push(i);
    }
    (offset, arena)
}

/// TFLite greedy-by-size offsets for whole lifetimes: (offset per tensor, arena bytes).
pub fn greedy_by_size(p: &Problem, lt: &Lifetimes) -> (Vec<u64>, u64) {
    let ids: Vec<TensorId> = (0..p.tensors.len())
        .filter(|&a| !lt.uses[a].is_empty())
        .collect();
    let blocks: Vec<(u64, usize, usize)> = ids
        .iter()
        .map(|&a| (p.tensors[a].size, lt.start[a], lt.end[a]))
        .collect();
    let (off, arena) = greedy_by_size_blocks(&blocks);
    let mut offset = vec![0u64; p.tensors.len()];
    for (k, &a) in ids.iter().enumerate() {
        offset[a] = off[k];
    }
    (offset, arena)
}

/// One stay on chip decided by Belady: how the tensor arrives and leaves.
#[derive(Clone, Debug)]
pub(crate) struct Stay {
    pub tensor: TensorId,
    pub from: usize,
    pub to: usize,
    pub reload: bool,
    /// How it leaves after `to` when it is still needed: spill (true) or drop (false).
    pub leave_spill: Option<bool>,
}

/// The plan that realises `stays` at offsets `off` (one per stay).
pub(crate) fn stays_to_plan(order: &[OpId], stays: &[Stay], off: &[u64]) -> Plan {
    let mut plan = Plan::empty(order.to_vec());
    for (k, s) in stays.iter().enumerate() {
        if s.reload {
            plan.steps[s.from].reload.push((s.tensor, off[k]));
        } else {
            plan.steps[s.from].alloc.push((s.tensor, off[k]));
        }
        match s.leave_spill {
            Some(true) => plan.steps[s.to + 1].spill.push(s.tensor),
            Some(false) => plan.steps[s.to + 1].drop.push(s.tensor),
            None => {}
        }
    }
    plan
}

/// Belady residency with a byte capacity (no placement): per step, load what the operator
/// needs and evict the bystanders used farthest in the future until the bytes fit.
fn belady_stays(p: &Problem, lt: &Lifetimes, order: &[OpId], cap: u64) -> Option<Vec<Stay>> {
    let nt = p.tensors.len();
    let mut open: Vec<Option<usize>> = vec![None; nt]; // index into stays
    let mut has_copy: Vec<bool> = p.tensors.iter().map(|t| t.host_backed()).collect();
    let mut stays: Vec<Stay> = Vec::new();
    let mut resident_bytes = 0u64;
    for (t, &o) in order.iter().enumerate() {
        let op = &p.ops[o];
        let mut incoming = 0;
        for a in op.uses() {
            if open[a].is_none() {
                incoming += p.tensors[a].size;
            }
        }
        while resident_bytes + incoming > cap {
            let victim = (0..nt)
                .filter(|&b| {
                    open[b].is_some() && !op.inputs.contains(&b) && !op.outputs.contains(&b)
                })
                .max_by_key(|&b| {
                    (
                        lt.next_use(b, t).unwrap_or(usize::MAX),
                        p.tensors[b].size,
                        b,
                    )
                })?;
            let k = open[victim].take()?;
            stays[k].to = t - 1;
            stays[k].leave_spill = Some(!has_copy[victim]);
            has_copy[victim] = true;
            resident_bytes -= p.tensors[victim].size;
        }
        for a in op.uses() {
            if open[a].is_none() {
                open[a] = Some(stays.len());
                stays.push(Stay {
                    tensor: a,
                    from: t,
                    to: t,
                    reload: !op.outputs.contains(&a),
                    leave_spill: None,
                });
                resident_bytes += p.tensors[a].size;
            }
        }
        for a in op.uses() {
            if lt.end[a] == t {
                if let Some(k) = open[a].take() {
                    stays[k].to = t;
                    resident_bytes -= p.tensors[a].size;
                }
            }
        }
    }
    Some(stays)
}

/// Belady residency at a byte capacity, then greedy-by-size offsets for the stays; lowers
/// the capacity while the arena does not fit. `None` when no capacity down to M_R fits.
fn belady_arena(p: &Problem, lt: &Lifetimes, order: &[OpId], budget: u64) -> Option<Plan> {
    let floor = (0..p.ops.len()).map(|o| p.op_bytes(o)).max().unwrap_or(0);
    let mut cap = budget;
    for _ in 0..40 {
        if cap < floor {
            return None;
        }
        let stays = belady_stays(p, lt, order, cap)?;
        let blocks: Vec<(u64, usize, usize)> = stays
            .iter()
            .map(|s| (p.tensors[s.tensor].size, s.from, s.to))
            .collect();
        let (off, arena) = greedy_by_size_blocks(&blocks);
        if arena <= budget {
            return Some(stays_to_plan(order, &stays, &off));
        }
        cap = cap.saturating_sub((arena - budget).max(p.alignment));
    }
    None
}

/// The no-spill plan for fixed offsets (each tensor placed for its whole lifetime).
pub fn static_plan(p: &Problem, order: &[OpId], lt: &Lifetimes, offset: &[u64]) -> Plan {
    let mut plan = Plan::empty(order.to_vec());
    for (a, t) in p.tensors.iter().enumerate() {
        if lt.uses[a].is_empty() {
            continue;
        }
        let s = lt.start[a];
        if t.host_backed() {
            plan.steps[s].reload.push((a, offset[a]));
        } else {
            plan.steps[s].alloc.push((a, offset[a]));
        }
    }
    plan
}

/// The baseline plan for `order` at `budget` bytes.
pub fn arena_belady(p: &Problem, order: &[OpId], budget: u64) -> Result<Plan, String> {
    let lt = Lifetimes::new(p, order);
    let (offset, arena) = greedy_by_size(p, &lt);
    if arena <= budget {
        return Ok(static_plan(p, order, &lt, &offset));
    }
    if let Some(plan) = belady_arena(p, &lt, order, budget) {
        return Ok(plan);
    }
    let mut plan = Plan::empty(order.to_vec());
    let mut st = ChipState::initial(p);
    simulate(p, &lt, order, 0, order.len(), &mut st, budget, &mut plan)?;
    Ok(plan)
}

/// Greedy arena + Belady over steps `t0..t1` of `order`, starting from `st`; writes the
/// actions into `plan.steps[t0..t1]` and leaves the final state in `st`.
#[allow(clippy::too_many_arguments)]
pub fn simulate(
    p: &Problem,
    lt: &Lifetimes,
    order: &[OpId],
    t0: usize,
    t1: usize,
    st: &mut ChipState,
    budget: u64,
    plan: &mut Plan,
) -> Result<(), String> {
    for (t, &o) in order.iter().enumerate().take(t1).skip(t0) {
        let op = &p.ops[o];
        if p.op_bytes(o) > budget {
            return Err(format!(
                "operator '{}' needs {} bytes at once, more than the {budget}-byte scratchpad",
                op.name,
                p.op_bytes(o)
            ));
        }
        let saved = (st.clone(), plan.steps[t].clone());
        if !place_step(p, lt, t, o, st, budget, &mut plan.steps[t], false) {
            (*st, plan.steps[t]) = saved;
            let ok = place_step(p, lt, t, o, st, budget, &mut plan.steps[t], true);
            if !ok {
                return Err(format!(
                    "step {t}: cannot place the tensors of '{}' even in an empty scratchpad",
                    op.name
                ));
            }
        }
        for a in op.uses() {
            if lt.end[a] == t {
                st.addr[a] = None;
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn place_step(
    p: &Problem,
    lt: &Lifetimes,
    t: usize,
    o: OpId,
    st: &mut ChipState,
    budget: u64,
    acts: &mut StepActions,
    flush: bool,
) -> bool {
    let op = &p.ops[o];
    if flush {
        for a in 0..p.tensors.len() {
            if st.addr[a].is_some() {
                evict(st, a, acts);
            }
        }
    }
    let mut todo: Vec<TensorId> = op
        .inputs
        .iter()
        .copied()
        .filter(|&a| st.addr[a].is_none())
        .chain(op.outputs.iter().copied())
        .collect();
    todo.sort_by_key(|&a| (std::cmp::Reverse(p.tensors[a].size), a));
    for &a in &todo {
        let size = p.tensors[a].size;
        loop {
            if let Some(addr) = best_fit(p, st, size, budget) {
                st.addr[a] = Some(addr);
                if op.outputs.contains(&a) {
                    acts.alloc.push((a, addr));
                } else {
                    acts.reload.push((a, addr));
                }
                break;
            }
            // Belady: the bystander used farthest in the future (then the largest).
            let victim = (0..p.tensors.len())
                .filter(|&b| st.addr[b].is_some() && !op.inputs.contains(&b) && b != a)
                .filter(|b| !op.outputs.contains(b))
                .max_by_key(|&b| {
                    (
                        lt.next_use(b, t).unwrap_or(usize::MAX),
                        p.tensors[b].size,
                        b,
                    )
                });
            match victim {
                Some(b) => evict(st, b, acts),
                None => return false,
            }
        }
    }
    true
}

fn evict(st: &mut ChipState, a: TensorId, acts: &mut StepActions) {
    st.addr[a] = None;
    if st.has_copy[a] {
        acts.drop.push(a);
    } else {
        st.has_copy[a] = true;
        acts.spill.push(a);
    }
}

/// The lowest offset of the smallest free gap that holds `size` bytes.
fn best_fit(p: &Problem, st: &ChipState, size: u64, budget: u64) -> Option<u64> {
    let mut blocks: Vec<(u64, u64)> = st
        .addr
        .iter()
        .enumerate()
        .filter_map(|(a, x)| x.map(|off| (off, off + p.tensors[a].size)))
        .collect();
    blocks.sort_unstable();
    let mut best: Option<(u64, u64)> = None;
    let mut prev = 0;
    for &(s, e) in blocks.iter().chain(std::iter::once(&(budget, budget))) {
        if s >= prev && s - prev >= size {
            let gap = s - prev;
            if best.is_none_or(|(g, _)| gap < g) {
                best = Some((gap, prev));
            }
        }
        prev = prev.max(e);
    }
    best.map(|b| b.1)
}
