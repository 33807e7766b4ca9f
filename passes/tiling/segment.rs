//! A segment: consecutive operators of the model order that run interleaved, stripe by
//! stripe (a *cascade*; a segment of one operator with one stripe runs whole). This module
//! holds what does not depend on the tile size: local indices, which tensors enter, leave
//! or stay inside, how many rows of each are ever needed, each tensor's columns per band,
//! and which elementwise outputs overwrite their input in place.

use super::classify::{Kind, Map};
use super::graph::{SGraph, TId, XId};
use super::halo::Need;
use std::collections::HashMap;

/// How a segment is cut into tiles: `bands` vertical bands (W), and stripes whose height
/// is `t` rows of the tallest tensor, scaled to every other tensor's height.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cfg {
    pub bands: usize,
    pub t: i64,
}

/// The receptive field of `map` along `axis` (0 = H, 1 = W) for output `[o0, o1)`.
pub fn need(map: &Map, axis: usize, o0: i64, o1: i64, in_len: i64, out_len: i64) -> Need {
    match map {
        Map::Same | Map::Stream => Need::plain(o0, o1),
        Map::Whole => Need::plain(0, in_len),
        Map::Window(ax) => ax[axis].input_for(o0, o1, in_len),
        Map::Transposed(ax) => {
            let (a, b) = ax[axis].transposed_input_for(o0, o1, in_len);
            Need::plain(a, b)
        }
        Map::Upsample(r) => {
            let (a, b) = r[axis].input_for(o0, o1, in_len, out_len);
            Need::plain(a, b)
        }
    }
}

/// Local view of one segment.
#[derive(Clone, Debug)]
pub struct Seg {
    /// Global operator ids, in model order.
    pub ops: Vec<XId>,
    /// Global tensor ids: tensors produced here first, then the external inputs.
    pub tens: Vec<TId>,
    pub local: HashMap<TId, usize>,
    /// Local producer of each local tensor.
    pub producer: Vec<Option<usize>>,
    /// Readers of each local tensor: (local op, index into that op's inputs).
    pub readers: Vec<Vec<(usize, usize)>>,
    /// Per local op, the local tensor of each input.
    pub ins: Vec<Vec<usize>>,
    /// Per local op, the local tensors of its outputs.
    pub outs: Vec<Vec<usize>>,
    /// Produced here and read after the segment, or a graph output.
    pub escaping: Vec<bool>,
    /// Produced here and never read.
    pub dead: Vec<bool>,
    pub external: Vec<bool>,
    /// Rows of each local tensor ever needed (rows `[0, need)`).
    pub need_rows: Vec<i64>,
    /// Height of the tallest produced tensor (stripes scale from it).
    pub h_ref: i64,
    pub has_reduce: bool,
    /// A single opaque operator.
    pub opaque: bool,
    /// Class of every local tensor (in-place outputs share their input's class).
    pub class: Vec<usize>,
    pub classes: usize,
}

impl Seg {
    /// Analyses operators `ops` (ascending ids) of `g`.
    pub fn new(g: &SGraph, ops: &[XId]) -> Seg {
        let mut s = Seg {
            ops: ops.to_vec(),
            tens: Vec::new(),
            local: HashMap::new(),
            producer: Vec::new(),
            readers: Vec::new(),
            ins: vec![Vec::new(); ops.len()],
            outs: vec![Vec::new(); ops.len()],
            escaping: Vec::new(),
            dead: Vec::new(),
            external: Vec::new(),
            need_rows: Vec::new(),
            h_ref: 1,
            has_reduce: ops.iter().any(|&x| g.ops[x].kind == Kind::Reduce),
            opaque: ops.iter().any(|&x| g.ops[x].kind == Kind::Opaque),
            class: Vec::new(),
            classes: 0,
        };
        let inside: HashMap<XId, usize> = ops.iter().enumerate().map(|(l, &x)| (x, l)).collect();
        for (l, &x) in ops.iter().enumerate() {
            for &t in &g.ops[x].outputs {
                let lt = s.add(t, Some(l));
                s.outs[l].push(lt);
                let ten = &g.tensors[t];
                s.escaping[lt] =
                    ten.graph_output || ten.consumers.iter().any(|c| !inside.contains_key(c));
                s.dead[lt] = !s.escaping[lt] && ten.consumers.is_empty();
            }
        }
        for (l, &x) in ops.iter().enumerate() {
            for (i, inp) in g.ops[x].inputs.iter().enumerate() {
                let lt = match s.local.get(&inp.tensor) {
                    Some(&lt) => lt,
                    None => {
                        let lt = s.add(inp.tensor, None);
                        s.external[lt] = true;
                        lt
                    }
                };
                s.ins[l].push(lt);
                s.readers[lt].push((l, i));
            }
        }
        s.need_rows = s
            .backward(g, |t| (0, g.tensors[t].h), 0)
            .iter()
            .map(|r| r.1)
            .collect();
        // Stripes scale from the tallest tensor made here or streamed into a reduction.
        let reduced = (0..ops.len())
            .filter(|&l| g.ops[ops[l]].kind == Kind::Reduce)
            .map(|l| s.ins[l][0]);
        s.h_ref = (0..s.tens.len())
            .filter(|&l| !s.external[l])
            .chain(reduced)
            .map(|l| s.need_rows[l])
            .max()
            .unwrap_or(1)
            .max(1);
        s.assign_classes(g);
        s
    }

    fn add(&mut self, t: TId, producer: Option<usize>) -> usize {
        let lt = self.tens.len();
        self.tens.push(t);
        self.local.insert(t, lt);
        self.producer.push(producer);
        self.readers.push(Vec::new());
        self.escaping.push(false);
        self.dead.push(false);
        self.external.push(false);
        lt
    }

    /// Ranges of every local tensor needed along `axis` when each sink (escaping or
    /// dead) tensor must supply `target(tensor)`: the hull over its readers' needs.
    pub fn backward(
        &self,
        g: &SGraph,
        target: impl Fn(TId) -> (i64, i64),
        axis: usize,
    ) -> Vec<(i64, i64)> {
        let mut range: Vec<(i64, i64)> = vec![(0, 0); self.tens.len()];
        let hull = |r: &mut (i64, i64), lo: i64, hi: i64| {
            if hi > lo {
                *r = if r.1 > r.0 {
                    (r.0.min(lo), r.1.max(hi))
                } else {
                    (lo, hi)
                };
            }
        };
        for (lt, r) in range.iter_mut().enumerate() {
            if self.escaping[lt] || self.dead[lt] {
                let (lo, hi) = target(self.tens[lt]);
                hull(r, lo, hi);
            }
        }
        for l in (0..self.ops.len()).rev() {
            let op = &g.ops[self.ops[l]];
            let out = self.outs[l][0];
            let (o0, o1) = range[out];
            let out_t = &g.tensors[self.tens[out]];
            for (i, inp) in op.inputs.iter().enumerate() {
                let lt = self.ins[l][i];
                let it = &g.tensors[inp.tensor];
                let (len, olen) = if axis == 0 {
                    (it.h, out_t.h)
                } else {
                    (it.w, out_t.w)
                };
                let n = if op.kind == Kind::Opaque || (op.kind == Kind::Reduce && o1 > o0) {
                    Need::plain(0, len)
                } else {
                    need(&inp.map, axis, o0, o1, len, olen)
                };
                hull(&mut range[lt], n.lo, n.hi);
            }
            // Opaque operators produce everything at once.
            if op.kind == Kind::Opaque {
                for &o in &self.outs[l] {
                    let t = &g.tensors[self.tens[o]];
                    range[o] = (0, if axis == 0 { t.h } else { t.w });
                }
            }
        }
        range
    }

    /// Columns of every local tensor in band `b` of `bands`.
    pub fn band_cols(&self, g: &SGraph, b: usize, bands: usize) -> Vec<(i64, i64)> {
        self.backward(
            g,
            |t| {
                let w = g.tensors[t].w;
                (
                    w * b as i64 / bands as i64,
                    w * (b as i64 + 1) / bands as i64,
                )
            },
            1,
        )
    }

    /// Elementwise operators overwrite an input in place when they are its only reader,
    /// it stays inside the segment, their output stays inside too and is not wider per
    /// element (a QuantizeLinear writes its bytes over the floats it reads).
    fn assign_classes(&mut self, g: &SGraph) {
        self.class = vec![usize::MAX; self.tens.len()];
        let mut next = 0;
        for lt in 0..self.tens.len() {
            let alias = self.producer[lt].and_then(|l| {
                let op = &g.ops[self.ops[l]];
                if !op.elementwise || self.escaping[lt] || self.dead[lt] {
                    return None;
                }
                let pixel = g.tensors[self.tens[lt]].pixel;
                op.inputs.iter().enumerate().find_map(|(i, inp)| {
                    let src = self.ins[l][i];
                    let t = &g.tensors[inp.tensor];
                    let only = t.consumers.len() == 1 && self.readers[src].iter().all(|r| r.0 == l);
                    let inside = !self.external[src] && !self.escaping[src];
                    (inp.map == Map::Same
                        && pixel <= t.pixel
                        && only
                        && inside
                        && self.class[src] != usize::MAX)
                        .then_some(self.class[src])
                })
            });
            self.class[lt] = alias.unwrap_or_else(|| {
                next += 1;
                next - 1
            });
        }
        self.classes = next;
    }

    /// Stripe height (output rows per run; input rows for a reduction) of local op `l`.
    pub fn stripe(&self, g: &SGraph, l: usize, t: i64) -> i64 {
        let op = &g.ops[self.ops[l]];
        let rows = if op.kind == Kind::Reduce {
            self.need_rows[self.ins[l][0]]
        } else {
            self.need_rows[self.outs[l][0]]
        };
        if op.kind == Kind::Opaque {
            return rows.max(1);
        }
        super::halo::div_ceil(t * rows, self.h_ref).clamp(1, rows.max(1))
    }

    /// Bands allowed: reductions and opaque operators need every column.
    pub fn max_bands(&self, g: &SGraph) -> usize {
        if self.has_reduce || self.opaque {
            return 1;
        }
        let w = self
            .tens
            .iter()
            .enumerate()
            .filter(|(l, _)| !self.external[*l])
            .map(|(_, &t)| g.tensors[t].w)
            .max()
            .unwrap_or(1);
        (w / 4).clamp(1, 16) as usize
    }
}
