//! Minimum-peak ordering (no spills): a dynamic program over the sets of operators already
//! run. The bytes alive after a set S has run depend on S only, so keeping, for every S of
//! a given size, the smallest peak that reaches it is exact; when a level holds more sets
//! than the state cap, only the best ones are kept (a beam) and the result is an upper
//! bound on M_P rather than M_P itself.

use super::problem::{OpId, Problem};
use std::collections::HashMap;

#[derive(Clone, Debug)]
pub struct MinPeak {
    pub order: Vec<OpId>,
    /// Peak live bytes of `order`.
    pub peak: u64,
    /// True when no level was cut, so `peak` is M_P.
    pub exact: bool,
}

#[derive(Clone)]
struct St {
    done: Vec<u64>,
    peak: u64,
    live: u64,
    parent: usize,
    op: OpId,
    /// Operators whose predecessors have all run.
    ready: Vec<OpId>,
}

fn has(bits: &[u64], i: usize) -> bool {
    bits[i / 64] >> (i % 64) & 1 == 1
}

/// Finds a minimum-peak order. `max_states` caps the sets kept per level.
pub fn min_peak_order(p: &Problem, max_states: usize) -> MinPeak {
    let n = p.ops.len();
    let words = n.div_ceil(64).max(1);
    let mut succs: Vec<Vec<OpId>> = vec![Vec::new(); n];
    for (v, op) in p.ops.iter().enumerate() {
        for &q in &op.preds {
            succs[q].push(v);
        }
    }
    let mut levels: Vec<Vec<St>> = Vec::with_capacity(n + 1);
    levels.push(vec![St {
        done: vec![0; words],
        peak: 0,
        live: 0,
        parent: usize::MAX,
        op: usize::MAX,
        ready: (0..n).filter(|&v| p.ops[v].preds.is_empty()).collect(),
    }]);
    let mut exact = true;
    for _k in 0..n {
        let prev = levels.last().expect("a level");
        let mut next: Vec<St> = Vec::new();
        let mut index: HashMap<Vec<u64>, usize> = HashMap::new();
        for (si, s) in prev.iter().enumerate() {
            // An operator that touches no tracked tensor costs nothing: run it at once.
            let free = s
                .ready
                .iter()
                .copied()
                .find(|&v| p.ops[v].inputs.is_empty() && p.ops[v].outputs.is_empty());
            let choices: Vec<OpId> = match free {
                Some(v) => vec![v],
                None => s.ready.clone(),
            };
            for &v in &choices {
                let (during, freed) = step_cost(p, &s.done, v);
                let live_during = s.live + during;
                let peak = s.peak.max(live_during);
                let live = live_during - freed;
                let mut done = s.done.clone();
                done[v / 64] |= 1 << (v % 64);
                match index.get(&done) {
                    Some(&j) => {
                        let e = &mut next[j];
                        if (peak, live) < (e.peak, e.live) {
                            e.peak = peak;
                            e.live = live;
                            e.parent = si;
                            e.op = v;
                        }
                    }
                    None => {
                        let mut ready: Vec<OpId> =
                            s.ready.iter().copied().filter(|&r| r != v).collect();
                        for &w in &succs[v] {
                            if p.ops[w].preds.iter().all(|&q| has(&done, q)) && !ready.contains(&w)
                            {
                                ready.push(w);
                            }
                        }
                        index.insert(done.clone(), next.len());
                        next.push(St {
                            done,
                            peak,
                            live,
                            parent: si,
                            op: v,
                            ready,
                        });
                    }
                }
            }
        }
        if next.len() > max_states {
            exact = false;
            next.sort_by_key(|s| (s.peak, s.live));
            next.truncate(max_states);
        }
        levels.push(next);
    }
    let last = levels.last().expect("a level");
    let (mut idx, peak) = last
        .iter()
        .enumerate()
        .min_by_key(|(_, s)| s.peak)
        .map(|(i, s)| (i, s.peak))
        .unwrap_or((0, 0));
    let mut order = Vec::with_capacity(n);
    for k in (1..levels.len()).rev() {
        let s = &levels[k][idx];
        order.push(s.op);
        idx = s.parent;
    }
    order.reverse();
    MinPeak { order, peak, exact }
}

/// Bytes added while `v` runs after the set `done` (its outputs and the graph inputs or
/// weights it loads first), and bytes freed after it (tensors it was the last user of).
fn step_cost(p: &Problem, done: &[u64], v: OpId) -> (u64, u64) {
    let op = &p.ops[v];
    let mut during = 0;
    let mut freed = 0;
    for &a in &op.inputs {
        let t = &p.tensors[a];
        let others_left = t.consumers.iter().any(|&c| c != v && !has(done, c));
        let loaded = t.host_backed() && t.consumers.iter().any(|&c| has(done, c));
        if t.host_backed() && !loaded {
            during += t.size;
        }
        if !others_left {
            freed += t.size;
        }
    }
    for &a in &op.outputs {
        let t = &p.tensors[a];
        during += t.size;
        if t.consumers.is_empty() {
            freed += t.size;
        }
    }
    (during, freed)
}
