//! The independent plan checker. It shares no code with the solvers: it replays a plan
//! step by step with a per-tensor state machine and rejects anything a real accelerator
//! could not do:
//!
//! * the order runs every operator exactly once, after all its predecessors;
//! * spills only of on-chip tensors, at most one per tensor (the off-chip copy persists);
//! * drops only of on-chip tensors that have an off-chip copy or are never read again;
//! * reloads only of tensors that have an off-chip copy and are not on chip (so an
//!   address never changes while a tensor stays resident);
//! * outputs are placed exactly at their operator's step; inputs are on chip when it runs;
//! * every placement is aligned and inside the scratchpad, and no two resident tensors
//!   overlap at any step.
//!
//! It recounts the traffic: spilled bytes plus reloaded bytes, less the compulsory first
//! load of each graph input or weight.

use super::plan::{Plan, Segment};
use super::problem::Problem;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    /// Non-compulsory off-chip traffic in bytes.
    pub traffic_bytes: u64,
    pub spill_bytes: u64,
    pub reload_bytes: u64,
    /// First loads of graph inputs and weights (not in `traffic_bytes`).
    pub compulsory_load_bytes: u64,
    /// Most bytes on chip while an operator ran.
    pub peak_resident_bytes: u64,
    /// Highest address in use plus one.
    pub arena_bytes: u64,
    pub segments: Vec<Segment>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Not produced yet (activations) or never loaded (host-backed).
    NotYet,
    OnChip {
        addr: u64,
        since: usize,
    },
    /// Only the off-chip copy exists.
    OffChip,
    /// Gone: dropped without a copy, or past its last use.
    Gone,
}

/// Replays `plan` against `p` with a scratchpad of `budget` bytes.
pub fn check(p: &Problem, plan: &Plan, budget: u64) -> Result<CheckReport, String> {
    let n = p.ops.len();
    let nt = p.tensors.len();
    if plan.order.len() != n || plan.steps.len() != n {
        return Err(format!(
            "the plan has {} steps and {} action lists for {n} operators",
            plan.order.len(),
            plan.steps.len()
        ));
    }
    // Order: a permutation that respects every dependency.
    let mut step_of = vec![usize::MAX; n];
    for (t, &o) in plan.order.iter().enumerate() {
        if o >= n {
            return Err(format!("step {t}: no operator {o}"));
        }
        if step_of[o] != usize::MAX {
            return Err(format!("operator '{}' runs twice", p.ops[o].name));
        }
        step_of[o] = t;
    }
    for (t, &o) in plan.order.iter().enumerate() {
        for &q in &p.ops[o].preds {
            if step_of[q] >= t {
                return Err(format!(
                    "step {t}: '{}' runs before its predecessor '{}'",
                    p.ops[o].name, p.ops[q].name
                ));
            }
        }
    }
    // Last step each tensor is touched.
    let mut last = vec![None::<usize>; nt];
    for (t, &o) in plan.order.iter().enumerate() {
        for &a in p.ops[o].inputs.iter().chain(&p.ops[o].outputs) {
            last[a] = Some(t);
        }
    }
    let mut state: Vec<State> = p
        .tensors
        .iter()
        .map(|t| {
            if t.host_backed() {
                State::OffChip
            } else {
                State::NotYet
            }
        })
        .collect();
    let mut has_copy: Vec<bool> = p.tensors.iter().map(|t| t.host_backed()).collect();
    let mut spilled = vec![false; nt];
    let mut loaded = vec![false; nt];
    let mut rep = CheckReport {
        traffic_bytes: 0,
        spill_bytes: 0,
        reload_bytes: 0,
        compulsory_load_bytes: 0,
        peak_resident_bytes: 0,
        arena_bytes: 0,
        segments: Vec::new(),
    };
    let name = |a: usize| p.tensors[a].name.as_str();
    let valid = |a: usize, t: usize| -> Result<(), String> {
        if a >= nt {
            Err(format!("step {t}: no tensor {a}"))
        } else {
            Ok(())
        }
    };

    for (t, &o) in plan.order.iter().enumerate() {
        let acts = &plan.steps[t];
        let op = &p.ops[o];
        for &a in &acts.spill {
            valid(a, t)?;
            let State::OnChip { addr, since } = state[a] else {
                return Err(format!(
                    "step {t}: spill of '{}', which is not on chip",
                    name(a)
                ));
            };
            if spilled[a] || has_copy[a] {
                return Err(format!(
                    "step {t}: '{}' is written off-chip again although it already has an off-chip copy",
                    name(a)
                ));
            }
            spilled[a] = true;
            has_copy[a] = true;
            rep.spill_bytes += p.tensors[a].size;
            state[a] = State::OffChip;
            close(&mut rep, a, since, t, addr);
        }
        for &a in &acts.drop {
            valid(a, t)?;
            let State::OnChip { addr, since } = state[a] else {
                return Err(format!(
                    "step {t}: drop of '{}', which is not on chip",
                    name(a)
                ));
            };
            let needed = last[a].is_some_and(|l| l >= t);
            if !has_copy[a] && needed {
                return Err(format!(
                    "step {t}: '{}' is dropped without an off-chip copy but is read again",
                    name(a)
                ));
            }
            state[a] = if has_copy[a] {
                State::OffChip
            } else {
                State::Gone
            };
            close(&mut rep, a, since, t, addr);
        }
        for &(a, addr) in &acts.reload {
            valid(a, t)?;
            match state[a] {
                State::OffChip if has_copy[a] => {}
                State::OnChip { .. } => {
                    return Err(format!(
                        "step {t}: reload of '{}', which is still on chip (addresses may not change while resident)",
                        name(a)
                    ))
                }
                _ => {
                    return Err(format!(
                        "step {t}: reload of '{}', which has no off-chip copy",
                        name(a)
                    ))
                }
            }
            let size = p.tensors[a].size;
            if p.tensors[a].host_backed() && !loaded[a] {
                rep.compulsory_load_bytes += size;
            } else {
                rep.reload_bytes += size;
            }
            loaded[a] = true;
            state[a] = State::OnChip { addr, since: t };
        }
        for &(a, addr) in &acts.alloc {
            valid(a, t)?;
            if !op.outputs.contains(&a) {
                return Err(format!(
                    "step {t}: allocation of '{}', which '{}' does not produce",
                    name(a),
                    op.name
                ));
            }
            if state[a] != State::NotYet {
                return Err(format!("step {t}: '{}' is produced twice", name(a)));
            }
            state[a] = State::OnChip { addr, since: t };
        }
        for &a in &op.outputs {
            if !matches!(state[a], State::OnChip { since, .. } if since == t)
                || !acts.alloc.iter().any(|&(b, _)| b == a)
            {
                return Err(format!(
                    "step {t}: output '{}' of '{}' has no place on chip",
                    name(a),
                    op.name
                ));
            }
        }
        for &a in &op.inputs {
            if !matches!(state[a], State::OnChip { .. }) {
                return Err(format!(
                    "step {t}: input '{}' of '{}' is not on chip",
                    name(a),
                    op.name
                ));
            }
        }
        // Placement: aligned, inside the scratchpad, pairwise disjoint.
        let mut blocks: Vec<(u64, u64, usize)> = Vec::new();
        for (a, s) in state.iter().enumerate() {
            if let State::OnChip { addr, .. } = *s {
                let size = p.tensors[a].size;
                if addr % p.alignment != 0 {
                    return Err(format!(
                        "step {t}: '{}' at offset {addr} is not aligned to {}",
                        name(a),
                        p.alignment
                    ));
                }
                if addr.checked_add(size).is_none_or(|e| e > budget) {
                    return Err(format!(
                        "step {t}: '{}' at [{addr}, {}) lies outside the {budget}-byte scratchpad",
                        name(a),
                        addr.saturating_add(size)
                    ));
                }
                blocks.push((addr, size, a));
            }
        }
        blocks.sort_unstable();
        for w in blocks.windows(2) {
            let (a0, s0, x) = w[0];
            let (a1, _, y) = w[1];
            if a0 + s0 > a1 {
                return Err(format!(
                    "step {t}: '{}' at [{a0}, {}) overlaps '{}' at offset {a1}",
                    name(x),
                    a0 + s0,
                    name(y)
                ));
            }
        }
        let resident: u64 = blocks.iter().map(|b| b.1).sum();
        rep.peak_resident_bytes = rep.peak_resident_bytes.max(resident);
        if let Some(top) = blocks.iter().map(|b| b.0 + b.1).max() {
            rep.arena_bytes = rep.arena_bytes.max(top);
        }
        // Tensors whose last use was this step leave the chip.
        for &a in op.inputs.iter().chain(&op.outputs) {
            if last[a] == Some(t) {
                if let State::OnChip { addr, since } = state[a] {
                    close(&mut rep, a, since, t + 1, addr);
                }
                state[a] = State::Gone;
            }
        }
    }
    for (a, s) in state.iter().enumerate() {
        if let State::OnChip { addr, since } = *s {
            close(&mut rep, a, since, n, addr);
        }
    }
    rep.traffic_bytes = rep.spill_bytes + rep.reload_bytes;
    Ok(rep)
}

fn close(rep: &mut CheckReport, a: usize, since: usize, until: usize, offset: u64) {
    if until > since {
        rep.segments.push(Segment {
            tensor: a,
            from: since,
            to: until - 1,
            offset,
        });
    }
}
