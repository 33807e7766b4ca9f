//! A memory plan: the operator order and, before each step, which tensors leave the chip
//! (spill = written off-chip, drop = discarded because an off-chip copy exists or nobody
//! reads them again), which come back (reload, at an address) and where the operator's
//! outputs are placed. Tensors leave the chip by themselves after their last use.

use super::problem::{OpId, Problem, TensorId};
use serde_json::{json, Value};

/// What happens before the operator of one step runs, in this order: spills, drops,
/// reloads, then allocation of the operator's outputs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepActions {
    pub spill: Vec<TensorId>,
    pub drop: Vec<TensorId>,
    pub reload: Vec<(TensorId, u64)>,
    pub alloc: Vec<(TensorId, u64)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub order: Vec<OpId>,
    pub steps: Vec<StepActions>,
}

impl Plan {
    pub fn empty(order: Vec<OpId>) -> Plan {
        let steps = vec![StepActions::default(); order.len()];
        Plan { order, steps }
    }

    /// Bytes spilled plus bytes reloaded, counting every reload (callers subtract the
    /// compulsory first loads of host-backed tensors).
    pub fn raw_traffic(&self, p: &Problem) -> u64 {
        self.steps
            .iter()
            .map(|s| {
                s.spill.iter().map(|&a| p.tensors[a].size).sum::<u64>()
                    + s.reload
                        .iter()
                        .map(|&(a, _)| p.tensors[a].size)
                        .sum::<u64>()
            })
            .sum()
    }
}

/// One stay of a tensor on chip: steps `from..=to` at `offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub tensor: TensorId,
    pub from: usize,
    pub to: usize,
    pub offset: u64,
}

/// The `--plan` JSON: per tensor its size, lifetime, placements, spill and reload steps.
pub fn plan_json(p: &Problem, plan: &Plan, segments: &[Segment], budget: u64) -> Value {
    let mut spill_step = vec![None; p.tensors.len()];
    let mut reloads: Vec<Vec<usize>> = vec![Vec::new(); p.tensors.len()];
    for (t, s) in plan.steps.iter().enumerate() {
        for &a in &s.spill {
            spill_step[a] = Some(t);
        }
        for &(a, _) in &s.reload {
            reloads[a].push(t);
        }
    }
    let mut segs: Vec<Vec<&Segment>> = vec![Vec::new(); p.tensors.len()];
    for s in segments {
        segs[s.tensor].push(s);
    }
    let tensors: Vec<Value> = p
        .tensors
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let first = segs[i].iter().map(|s| s.from).min();
            let last = segs[i].iter().map(|s| s.to).max();
            json!({
                "name": t.name,
                "kind": t.kind,
                "size": t.size,
                "offset": segs[i].first().map(|s| s.offset),
                "lifetime": [first, last],
                "placements": segs[i].iter().map(|s| json!({"from": s.from, "to": s.to, "offset": s.offset})).collect::<Vec<_>>(),
                "spill_step": spill_step[i],
                "reload_steps": reloads[i],
            })
        })
        .collect();
    let order: Vec<Value> = plan
        .order
        .iter()
        .enumerate()
        .map(|(t, &o)| json!({"step": t, "node": p.ops[o].name, "op_type": p.ops[o].op_type}))
        .collect();
    json!({
        "scratchpad_bytes": budget,
        "alignment": p.alignment,
        "order": order,
        "tensors": tensors,
    })
}
