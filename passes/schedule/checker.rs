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

use super::plan::{Plan, Segment, StepActions};
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
    check_order(p, plan)?;
    let mut replay = Replay::new(p, plan);
    for (t, &o) in plan.order.iter().enumerate() {
        let acts = &plan.steps[t];
        let op = &p.ops[o];
        for &a in &acts.spill {
            replay.spill(t, a)?;
        }
        for &a in &acts.drop {
            replay.drop_tensor(t, a)?;
        }
        for &(a, addr) in &acts.reload {
            replay.reload(t, a, addr)?;
        }
        for &(a, addr) in &acts.alloc {
            replay.alloc(t, o, a, addr)?;
        }
        replay.operands_on_chip(t, o, acts)?;
        replay.placement(t, budget)?;
        // Tensors whose last use was this step leave the chip.
        for &a in op.inputs.iter().chain(&op.outputs) {
            if replay.last[a] == Some(t) {
                if let State::OnChip { addr, since } = replay.state[a] {
                    close(&mut replay.rep, a, since, t + 1, addr);
                }
                replay.state[a] = State::Gone;
            }
        }
    }
    let mut rep = replay.rep;
    for (a, s) in replay.state.iter().enumerate() {
        if let State::OnChip { addr, since } = *s {
            close(&mut rep, a, since, n, addr);
        }
    }
    rep.traffic_bytes = rep.spill_bytes + rep.reload_bytes;
    Ok(rep)
}

/// The order: one step and one action list per operator, a permutation that respects
/// every dependency.
fn check_order(p: &Problem, plan: &Plan) -> Result<(), String> {
    let n = p.ops.len();
    if plan.order.len() != n || plan.steps.len() != n {
        return Err(format!(
            "the plan has {} steps and {} action lists for {n} operators",
            plan.order.len(),
            plan.steps.len()
        ));
    }
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
    Ok(())
}

/// The per-tensor state machine of one replay, with the report it fills. Each action kind
/// is one method, so each rule the checker enforces reads on its own.
struct Replay<'a> {
    p: &'a Problem,
    /// Last step each tensor is touched.
    last: Vec<Option<usize>>,
    state: Vec<State>,
    has_copy: Vec<bool>,
    spilled: Vec<bool>,
    loaded: Vec<bool>,
    rep: CheckReport,
}

impl<'a> Replay<'a> {
    fn new(p: &'a Problem, plan: &Plan) -> Self {
        let nt = p.tensors.len();
        let mut last = vec![None::<usize>; nt];
        for (t, &o) in plan.order.iter().enumerate() {
            for &a in p.ops[o].inputs.iter().chain(&p.ops[o].outputs) {
                last[a] = Some(t);
            }
        }
        let state: Vec<State> = p
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
        Replay {
            p,
            last,
            state,
            has_copy: p.tensors.iter().map(|t| t.host_backed()).collect(),
            spilled: vec![false; nt],
            loaded: vec![false; nt],
            rep: CheckReport {
                traffic_bytes: 0,
                spill_bytes: 0,
                reload_bytes: 0,
                compulsory_load_bytes: 0,
                peak_resident_bytes: 0,
                arena_bytes: 0,
                segments: Vec::new(),
            },
        }
    }

    fn name(&self, a: usize) -> &'a str {
        self.p.tensors[a].name.as_str()
    }

    fn valid(&self, a: usize, t: usize) -> Result<(), String> {
        if a >= self.p.tensors.len() {
            Err(format!("step {t}: no tensor {a}"))
        } else {
            Ok(())
        }
    }

    /// A spill writes an on-chip tensor off chip, once (the off-chip copy persists).
    fn spill(&mut self, t: usize, a: usize) -> Result<(), String> {
        self.valid(a, t)?;
        let State::OnChip { addr, since } = self.state[a] else {
            return Err(format!(
                "step {t}: spill of '{}', which is not on chip",
                self.name(a)
            ));
        };
        if self.spilled[a] || self.has_copy[a] {
            return Err(format!(
                "step {t}: '{}' is written off-chip again although it already has an off-chip copy",
                self.name(a)
            ));
        }
        self.spilled[a] = true;
        self.has_copy[a] = true;
        self.rep.spill_bytes += self.p.tensors[a].size;
        self.state[a] = State::OffChip;
        close(&mut self.rep, a, since, t, addr);
        Ok(())
    }

    /// A drop frees an on-chip tensor that has an off-chip copy or is never read again.
    fn drop_tensor(&mut self, t: usize, a: usize) -> Result<(), String> {
        self.valid(a, t)?;
        let State::OnChip { addr, since } = self.state[a] else {
            return Err(format!(
                "step {t}: drop of '{}', which is not on chip",
                self.name(a)
            ));
        };
        let needed = self.last[a].is_some_and(|l| l >= t);
        if !self.has_copy[a] && needed {
            return Err(format!(
                "step {t}: '{}' is dropped without an off-chip copy but is read again",
                self.name(a)
            ));
        }
        self.state[a] = if self.has_copy[a] {
            State::OffChip
        } else {
            State::Gone
        };
        close(&mut self.rep, a, since, t, addr);
        Ok(())
    }

    /// A reload brings back a tensor that has an off-chip copy and is not on chip; the
    /// first load of a graph input or weight is compulsory, not traffic.
    fn reload(&mut self, t: usize, a: usize, addr: u64) -> Result<(), String> {
        self.valid(a, t)?;
        match self.state[a] {
            State::OffChip if self.has_copy[a] => {}
            State::OnChip { .. } => {
                return Err(format!(
                    "step {t}: reload of '{}', which is still on chip (addresses may not change while resident)",
                    self.name(a)
                ))
            }
            _ => {
                return Err(format!(
                    "step {t}: reload of '{}', which has no off-chip copy",
                    self.name(a)
                ))
            }
        }
        let size = self.p.tensors[a].size;
        if self.p.tensors[a].host_backed() && !self.loaded[a] {
            self.rep.compulsory_load_bytes += size;
        } else {
            self.rep.reload_bytes += size;
        }
        self.loaded[a] = true;
        self.state[a] = State::OnChip { addr, since: t };
        Ok(())
    }

    /// An allocation places an output of operator `o`, once.
    fn alloc(&mut self, t: usize, o: usize, a: usize, addr: u64) -> Result<(), String> {
        self.valid(a, t)?;
        let op = &self.p.ops[o];
        if !op.outputs.contains(&a) {
            return Err(format!(
                "step {t}: allocation of '{}', which '{}' does not produce",
                self.name(a),
                op.name
            ));
        }
        if self.state[a] != State::NotYet {
            return Err(format!("step {t}: '{}' is produced twice", self.name(a)));
        }
        self.state[a] = State::OnChip { addr, since: t };
        Ok(())
    }

    /// When operator `o` runs, its outputs were placed at this step and its inputs are on
    /// chip.
    fn operands_on_chip(&self, t: usize, o: usize, acts: &StepActions) -> Result<(), String> {
        let op = &self.p.ops[o];
        for &a in &op.outputs {
            if !matches!(self.state[a], State::OnChip { since, .. } if since == t)
                || !acts.alloc.iter().any(|&(b, _)| b == a)
            {
                return Err(format!(
                    "step {t}: output '{}' of '{}' has no place on chip",
                    self.name(a),
                    op.name
                ));
            }
        }
        for &a in &op.inputs {
            if !matches!(self.state[a], State::OnChip { .. }) {
                return Err(format!(
                    "step {t}: input '{}' of '{}' is not on chip",
                    self.name(a),
                    op.name
                ));
            }
        }
        Ok(())
    }

    /// Placement at step `t`: aligned, inside the scratchpad, pairwise disjoint; records
    /// the resident bytes and the arena's top.
    fn placement(&mut self, t: usize, budget: u64) -> Result<(), String> {
        let p = self.p;
        let mut blocks: Vec<(u64, u64, usize)> = Vec::new();
        for (a, s) in self.state.iter().enumerate() {
            if let State::OnChip { addr, .. } = *s {
                let size = p.tensors[a].size;
                if addr % p.alignment != 0 {
                    return Err(format!(
                        "step {t}: '{}' at offset {addr} is not aligned to {}",
                        self.name(a),
                        p.alignment
                    ));
                }
                if addr.checked_add(size).is_none_or(|e| e > budget) {
                    return Err(format!(
                        "step {t}: '{}' at [{addr}, {}) lies outside the {budget}-byte scratchpad",
                        self.name(a),
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
                    self.name(x),
                    a0 + s0,
                    self.name(y)
                ));
            }
        }
        let resident: u64 = blocks.iter().map(|b| b.1).sum();
        self.rep.peak_resident_bytes = self.rep.peak_resident_bytes.max(resident);
        if let Some(top) = blocks.iter().map(|b| b.0 + b.1).max() {
            self.rep.arena_bytes = self.rep.arena_bytes.max(top);
        }
        Ok(())
    }
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
