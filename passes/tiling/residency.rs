//! Which tensors crossing segment boundaries stay whole on chip, and where everything
//! sits: COSMA's residency program at the granularity of segments. A boundary tensor is
//! either *streamed* (stored by its producer stripe by stripe, loaded by each reader as its
//! rows are needed, through small rings) or *resident* (one whole buffer from its
//! producer to its last reader, no traffic). One binary per tensor, a byte capacity per
//! segment (the segment's work area plus every resident tensor alive across it); CBC
//! minimises the traffic under a time limit. The result is placed with the schedule pass's
//! offset packer; when fragmentation overflows, the capacity is lowered there and the
//! program solved again.

use super::graph::{SGraph, TId};
use super::plan::Part;
use crate::schedule::placement::{pack, Block};
use crate::schedule::problem::align_up;
use good_lp::solvers::coin_cbc::coin_cbc;
use good_lp::{
    variable, Expression, ProblemVariables, Solution, SolutionStatus, SolverModel, Variable,
    WithTimeLimit,
};
use std::collections::BTreeMap;
use std::time::Instant;

/// A tensor read in a segment other than the one producing it (or a graph input).
#[derive(Clone, Debug)]
pub struct Boundary {
    pub tensor: TId,
    /// First and last segment it must be on chip in when resident.
    pub start: usize,
    pub end: usize,
    /// Bytes of its whole buffer.
    pub whole: u64,
    /// Traffic when streamed (stores plus loads) and when resident (a graph input's one load).
    pub streamed: u64,
    pub resident: u64,
    /// Ring bytes per segment when streamed.
    pub rings: Vec<(usize, u64)>,
    pub eligible: bool,
}

/// The residency program's data.
#[derive(Clone, Debug)]
pub struct Table {
    pub boundaries: Vec<Boundary>,
    /// Work area bytes per segment without the boundary rings.
    pub base: Vec<u64>,
    /// Traffic that does not depend on residency (weight reloads).
    pub fixed: u64,
    pub alignment: u64,
}

impl Table {
    pub fn new(g: &SGraph, parts: &[Part], budget: u64) -> Table {
        let mut by: BTreeMap<TId, Boundary> = BTreeMap::new();
        let mut base = Vec::with_capacity(parts.len());
        let mut fixed = 0;
        for (s, part) in parts.iter().enumerate() {
            let (seg, sim) = (&part.seg, &part.sim);
            let mut b = sim.work_bytes;
            for (lt, &t) in seg.tens.iter().enumerate() {
                if !seg.external[lt] && !seg.escaping[lt] {
                    continue;
                }
                let ring = sim.class_bytes(seg.class[lt], g.alignment);
                b = b.saturating_sub(ring);
                let ten = &g.tensors[t];
                let e = by.entry(t).or_insert_with(|| Boundary {
                    tensor: t,
                    start: s,
                    end: s,
                    whole: align_up(ten.bytes, g.alignment),
                    streamed: 0,
                    resident: if ten.graph_input { ten.bytes } else { 0 },
                    rings: Vec::new(),
                    eligible: !ten.graph_output,
                });
                e.end = s;
                e.streamed += sim.loads[lt] + sim.stores[lt];
                e.rings.push((s, ring));
                if seg.escaping[lt] && part.cfg.bands > 1 {
                    e.eligible = false;
                }
            }
            base.push(b);
            fixed += sim.weight_traffic;
        }
        let boundaries = by
            .into_values()
            .map(|mut b| {
                b.eligible &= b.whole <= budget && b.streamed > b.resident;
                b
            })
            .collect();
        Table {
            boundaries,
            base,
            fixed,
            alignment: g.alignment,
        }
    }

    /// Traffic of a residency choice.
    pub fn traffic(&self, keep: &[bool]) -> u64 {
        self.fixed
            + self
                .boundaries
                .iter()
                .zip(keep)
                .map(|(b, &k)| if k { b.resident } else { b.streamed })
                .sum::<u64>()
    }

    /// Work area of segment `s` (its rings for streamed boundary tensors included).
    pub fn work(&self, s: usize, keep: &[bool]) -> u64 {
        let mut w = self.base[s];
        for (b, &k) in self.boundaries.iter().zip(keep) {
            if !k {
                w += b
                    .rings
                    .iter()
                    .filter(|r| r.0 == s)
                    .map(|r| r.1)
                    .sum::<u64>();
            }
        }
        w
    }

    /// Bytes on chip during segment `s`.
    pub fn load(&self, s: usize, keep: &[bool]) -> u64 {
        self.work(s, keep)
            + self
                .boundaries
                .iter()
                .zip(keep)
                .filter(|(b, &k)| k && b.start <= s && s <= b.end)
                .map(|(b, _)| b.whole)
                .sum::<u64>()
    }

    /// First fit in order: keep a tensor whenever every segment it spans still fits.
    pub fn greedy(&self, cap: &[u64]) -> Vec<bool> {
        let mut keep = vec![false; self.boundaries.len()];
        for i in 0..self.boundaries.len() {
            if !self.boundaries[i].eligible {
                continue;
            }
            keep[i] = true;
            let b = &self.boundaries[i];
            if (b.start..=b.end).any(|s| self.load(s, &keep) > cap[s]) {
                keep[i] = false;
            }
        }
        keep
    }
}

/// Offsets of the whole buffers and of each segment's work area.
pub type Offsets = (BTreeMap<TId, u64>, Vec<u64>);

/// Offsets of a residency choice: whole buffers and one work area per segment.
#[derive(Clone, Debug)]
pub struct Placed {
    pub keep: Vec<bool>,
    pub whole_offset: BTreeMap<TId, u64>,
    pub work_offset: Vec<u64>,
    pub traffic: u64,
    /// `optimal`, `time_limit`, `greedy` or `all streamed`.
    pub status: String,
    /// Lower bound of the residency program (for this segmentation).
    pub bound: Option<u64>,
    pub seconds: f64,
    pub rounds: usize,
}

/// Packs `keep`; the overflowing segments when the arena exceeds the budget.
pub fn place(t: &Table, keep: &[bool], budget: u64) -> Result<Offsets, Vec<usize>> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut owner: Vec<Option<TId>> = Vec::new();
    for (b, &k) in t.boundaries.iter().zip(keep) {
        if k {
            blocks.push((b.whole, b.start, b.end));
            owner.push(Some(b.tensor));
        }
    }
    for s in 0..t.base.len() {
        blocks.push((align_up(t.work(s, keep).max(1), t.alignment), s, s));
        owner.push(None);
    }
    let (off, arena) = pack(&blocks, budget, 0.5, 7);
    if arena > budget {
        let over: Vec<usize> = (0..t.base.len())
            .filter(|&s| {
                blocks
                    .iter()
                    .zip(&off)
                    .any(|(b, &o)| b.1 <= s && s <= b.2 && o + b.0 > budget)
            })
            .collect();
        return Err(over);
    }
    let mut whole = BTreeMap::new();
    let mut work = vec![0; t.base.len()];
    for ((b, o), w) in blocks.iter().zip(off).zip(owner) {
        match w {
            Some(tid) => {
                whole.insert(tid, o);
            }
            None => work[b.1] = o,
        }
    }
    Ok((whole, work))
}

/// Solves the residency program with capacity `cap` per segment.
fn solve(t: &Table, cap: &[u64], limit_s: f64) -> Option<(Vec<bool>, bool, Option<u64>)> {
    let cand: Vec<usize> = (0..t.boundaries.len())
        .filter(|&i| t.boundaries[i].eligible)
        .collect();
    let none = vec![false; t.boundaries.len()];
    if (0..cap.len()).any(|s| t.load(s, &none) > cap[s]) {
        return None;
    }
    if cand.is_empty() {
        let traffic = t.traffic(&none);
        return Some((none, true, Some(traffic)));
    }
    let unit = 64.0;
    let mut vars = ProblemVariables::new();
    let x: Vec<Variable> = cand.iter().map(|_| vars.add(variable().binary())).collect();
    let mut objective = Expression::from(0.0);
    for (&i, &v) in cand.iter().zip(&x) {
        let b = &t.boundaries[i];
        objective -= (b.streamed - b.resident) as f64 / unit * v;
    }
    let mut model = vars.minimise(objective).using(coin_cbc);
    crate::cbc::quiet(&mut model);
    for (s, &cap_s) in cap.iter().enumerate() {
        let mut e = Expression::from(0.0);
        let mut any = false;
        for (&i, &v) in cand.iter().zip(&x) {
            let b = &t.boundaries[i];
            let ring: u64 = b.rings.iter().filter(|r| r.0 == s).map(|r| r.1).sum();
            let spans = b.start <= s && s <= b.end;
            let delta = if spans { b.whole as f64 } else { 0.0 } - ring as f64;
            if delta != 0.0 && (spans || ring > 0) {
                e += delta / unit * v;
                any = true;
            }
        }
        if any {
            let room = (cap_s as f64 - t.load(s, &none) as f64) / unit;
            model.add_constraint(e.leq(room));
        }
    }
    let sol = model.with_time_limit(limit_s.max(0.5)).solve().ok()?;
    let optimal = matches!(sol.status(), SolutionStatus::Optimal);
    let mut keep = none;
    for (&i, &v) in cand.iter().zip(&x) {
        keep[i] = sol.value(v) > 0.5;
    }
    if (0..cap.len()).any(|s| t.load(s, &keep) > cap[s]) {
        return None;
    }
    let saving = -sol.model().best_possible_value() * unit;
    let all = t.traffic(&vec![false; t.boundaries.len()]);
    let bound = saving
        .is_finite()
        .then(|| all.saturating_sub((saving + 1.0).floor().max(0.0) as u64));
    Some((keep, optimal, bound))
}

/// Chooses and places the residency: the program (`ilp`), or first fit (`greedy`).
pub fn decide(t: &Table, budget: u64, ilp: bool, limit_s: f64) -> Placed {
    let started = Instant::now();
    let mut cap = vec![budget; t.base.len()];
    let none = vec![false; t.boundaries.len()];
    let mut rounds = 0;
    let mut bound = None;
    while rounds < 6 {
        rounds += 1;
        let left = (limit_s - started.elapsed().as_secs_f64()).max(0.5);
        let (keep, status) = if ilp {
            match solve(t, &cap, left) {
                Some((k, opt, b)) => {
                    if rounds == 1 {
                        bound = if opt { Some(t.traffic(&k)) } else { b };
                    }
                    (k, if opt { "optimal" } else { "time_limit" })
                }
                None => break,
            }
        } else {
            (t.greedy(&cap), "greedy")
        };
        match place(t, &keep, budget) {
            Ok((whole, work)) => {
                return Placed {
                    traffic: t.traffic(&keep),
                    keep,
                    whole_offset: whole,
                    work_offset: work,
                    status: if rounds > 1 && status == "optimal" {
                        "optimal after re-placement".into()
                    } else {
                        status.into()
                    },
                    bound,
                    seconds: started.elapsed().as_secs_f64(),
                    rounds,
                }
            }
            Err(over) => {
                for s in over {
                    cap[s] = cap[s].saturating_sub(budget / 16).max(t.load(s, &none));
                }
            }
        }
    }
    let work = vec![0; t.base.len()];
    Placed {
        traffic: t.traffic(&none),
        keep: none,
        whole_offset: BTreeMap::new(),
        work_offset: work,
        status: "all streamed".into(),
        bound,
        seconds: started.elapsed().as_secs_f64(),
        rounds,
    }
}

impl Placed {
    /// Nothing kept on chip between segments (the layer-by-layer baseline).
    pub fn streamed(t: &Table) -> Placed {
        let none = vec![false; t.boundaries.len()];
        Placed {
            traffic: t.traffic(&none),
            keep: none,
            whole_offset: BTreeMap::new(),
            work_offset: vec![0; t.base.len()],
            status: "all streamed".into(),
            bound: None,
            seconds: 0.0,
            rounds: 0,
        }
    }
}
