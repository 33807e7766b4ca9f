//! The pull schedule of one segment, band by band: every sink asks for its next stripe,
//! and an operator runs only when a reader needs rows it has not produced yet, so each
//! intermediate lives in a ring buffer that holds just the rows some reader still needs
//! (overlap rows are kept, not recomputed, along H). External inputs are loaded row by
//! row as readers need them; outputs read after the segment are stored as they appear.
//! Columns are split into bands; a band recomputes its halo columns.
//!
//! The simulation gives the exact ring sizes (rows per class, the widest band's columns),
//! the traffic per tensor, and, when asked, the event list the plan and the rewrite use.

use super::classify::Kind;
use super::graph::{SGraph, TId, XId};
use super::halo::Need;
use super::segment::{need, Cfg, Seg};

/// One input region an operator run reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    pub tensor: TId,
    pub rows: (i64, i64),
    pub cols: (i64, i64),
    /// Padding the tile adds: top, left, bottom, right.
    pub pads: [i64; 4],
}

/// One run of an operator: output rows × columns (input rows for a reduction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub op: XId,
    pub band: usize,
    pub rows: (i64, i64),
    pub cols: (i64, i64),
    pub reads: Vec<Read>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Off-chip → scratchpad.
    Load {
        tensor: TId,
        band: usize,
        rows: (i64, i64),
        cols: (i64, i64),
    },
    /// Scratchpad → off-chip.
    Store {
        tensor: TId,
        band: usize,
        rows: (i64, i64),
        cols: (i64, i64),
    },
    Run(Run),
    /// The operator's weights → scratchpad.
    Weights {
        op: XId,
    },
}

/// What a simulation measured.
#[derive(Clone, Debug, Default)]
pub struct Sim {
    /// Ring rows per class and row width (columns) per class.
    pub caps: Vec<i64>,
    pub widths: Vec<i64>,
    pub pixel: Vec<u64>,
    /// Classes holding a resident tensor (whole buffers, not part of the work area).
    pub resident_class: Vec<bool>,
    /// Bytes of the work area: rings plus weights.
    pub work_bytes: u64,
    pub weight_bytes: u64,
    /// Off-chip bytes read per local tensor (loads) and written (stores).
    pub loads: Vec<u64>,
    pub stores: Vec<u64>,
    /// Non-compulsory weight reloads.
    pub weight_traffic: u64,
    pub macs: u64,
    pub runs: usize,
    pub events: Vec<Event>,
}

impl Sim {
    pub fn traffic(&self) -> u64 {
        self.loads.iter().sum::<u64>() + self.stores.iter().sum::<u64>() + self.weight_traffic
    }

    /// Bytes of one class's ring buffer.
    pub fn class_bytes(&self, c: usize, align: u64) -> u64 {
        crate::schedule::problem::align_up(
            self.caps[c].max(0) as u64 * self.widths[c].max(0) as u64 * self.pixel[c],
            align,
        )
    }
}

const INF: i64 = i64::MAX;

/// Options of one simulation.
#[derive(Clone, Copy, Debug)]
pub struct SimOpts {
    /// Stop (None) as soon as the work area exceeds this.
    pub limit: Option<u64>,
    /// Keep the event list.
    pub record: bool,
    /// Weights (when tracked) are reloaded before every run into one shared slot.
    pub weights_streamed: bool,
}

struct State<'a> {
    g: &'a SGraph,
    seg: &'a Seg,
    resident: &'a [bool],
    opts: SimOpts,
    band: usize,
    cols: Vec<(i64, i64)>,
    targets: Vec<(i64, i64)>,
    stripe: Vec<i64>,
    hi: Vec<i64>,
    next_lo: Vec<Vec<i64>>,
    consumed: Vec<i64>,
    runs_of: Vec<usize>,
    weights_loaded: Vec<bool>,
    sim: Sim,
}

/// Simulates `seg` cut by `cfg`; `resident[l]` marks local external inputs and escaping
/// outputs kept whole on chip. None when the work area passes `opts.limit`.
pub fn simulate(g: &SGraph, seg: &Seg, cfg: Cfg, resident: &[bool], opts: SimOpts) -> Option<Sim> {
    let bands = cfg.bands.max(1);
    let band_cols: Vec<Vec<(i64, i64)>> = (0..bands).map(|b| seg.band_cols(g, b, bands)).collect();
    let mut sim = Sim {
        caps: vec![0; seg.classes],
        widths: vec![0; seg.classes],
        pixel: vec![0; seg.classes],
        resident_class: vec![false; seg.classes],
        loads: vec![0; seg.tens.len()],
        stores: vec![0; seg.tens.len()],
        ..Sim::default()
    };
    for (lt, &t) in seg.tens.iter().enumerate() {
        let c = seg.class[lt];
        sim.pixel[c] = sim.pixel[c].max(g.tensors[t].pixel);
        sim.resident_class[c] |= resident[lt];
        for cols in &band_cols {
            sim.widths[c] = sim.widths[c].max(cols[lt].1 - cols[lt].0);
        }
    }
    if g.weights_tracked {
        let w: Vec<u64> = seg
            .ops
            .iter()
            .map(|&x| align(g, g.ops[x].weight_bytes))
            .collect();
        sim.weight_bytes = if opts.weights_streamed {
            w.iter().copied().max().unwrap_or(0)
        } else {
            w.iter().sum()
        };
    }
    sim.work_bytes = sim.weight_bytes;
    if opts.limit.is_some_and(|l| sim.work_bytes > l) {
        return None;
    }
    let mut st = State {
        g,
        seg,
        resident,
        opts,
        band: 0,
        cols: Vec::new(),
        targets: Vec::new(),
        stripe: (0..seg.ops.len())
            .map(|l| seg.stripe(g, l, cfg.t))
            .collect(),
        hi: Vec::new(),
        next_lo: Vec::new(),
        consumed: Vec::new(),
        runs_of: vec![0; seg.ops.len()],
        weights_loaded: vec![false; seg.ops.len()],
        sim,
    };
    for (b, cols) in band_cols.into_iter().enumerate() {
        st.start_band(b, cols, bands);
        st.drive()?;
    }
    Some(st.sim)
}

fn align(g: &SGraph, v: u64) -> u64 {
    crate::schedule::problem::align_up(v, g.alignment)
}

impl State<'_> {
    fn start_band(&mut self, b: usize, cols: Vec<(i64, i64)>, bands: usize) {
        let seg = self.seg;
        self.band = b;
        self.targets = seg
            .tens
            .iter()
            .map(|&t| {
                let w = self.g.tensors[t].w;
                (
                    w * b as i64 / bands as i64,
                    w * (b as i64 + 1) / bands as i64,
                )
            })
            .collect();
        self.cols = cols;
        self.hi = (0..seg.tens.len())
            .map(|lt| {
                if seg.external[lt] && self.resident[lt] {
                    INF
                } else {
                    0
                }
            })
            .collect();
        self.consumed = vec![0; seg.ops.len()];
        self.next_lo = (0..seg.ops.len())
            .map(|l| (0..seg.ins[l].len()).map(|i| self.first_lo(l, i)).collect())
            .collect();
    }

    fn first_lo(&self, l: usize, i: usize) -> i64 {
        let h = self.stripe[l];
        if self.g.ops[self.seg.ops[l]].kind != Kind::Tiled {
            return 0;
        }
        self.row_need(l, i, 0, h.min(self.seg.need_rows[self.seg.outs[l][0]]))
            .lo
    }

    /// Rows of input `i` local op `l` needs for output rows `[p, q)`.
    fn row_need(&self, l: usize, i: usize, p: i64, q: i64) -> Need {
        let op = &self.g.ops[self.seg.ops[l]];
        let inp = &op.inputs[i];
        let (it, ot) = (&self.g.tensors[inp.tensor], &self.g.tensors[op.output()]);
        need(&inp.map, 0, p, q, it.h, ot.h)
    }

    fn col_need(&self, l: usize, i: usize) -> Need {
        let op = &self.g.ops[self.seg.ops[l]];
        let inp = &op.inputs[i];
        let (c0, c1) = self.cols[self.seg.outs[l][0]];
        let (it, ot) = (&self.g.tensors[inp.tensor], &self.g.tensors[op.output()]);
        match op.kind {
            Kind::Tiled => need(&inp.map, 1, c0, c1, it.w, ot.w),
            _ => Need::plain(0, it.w),
        }
    }

    /// Pulls every sink stripe by stripe until all are complete.
    fn drive(&mut self) -> Option<()> {
        let seg = self.seg;
        let sinks: Vec<usize> = (0..seg.tens.len())
            .filter(|&lt| (seg.escaping[lt] || seg.dead[lt]) && self.cols[lt].1 > self.cols[lt].0)
            .collect();
        let mut round = 1;
        loop {
            let mut done = true;
            for &lt in &sinks {
                let l = seg.producer[lt]?;
                let goal = (round * self.stripe[l]).min(seg.need_rows[lt]);
                self.ensure(l, goal)?;
                done &= self.hi[lt] >= seg.need_rows[lt];
            }
            if done {
                return Some(());
            }
            round += 1;
        }
    }

    fn ensure(&mut self, l: usize, upto: i64) -> Option<()> {
        let op = &self.g.ops[self.seg.ops[l]];
        let out = self.seg.outs[l][0];
        if op.kind == Kind::Reduce {
            let need_in = self.seg.need_rows[self.seg.ins[l][0]];
            while self.hi[out] < upto.min(1) && self.consumed[l] < need_in {
                self.run(l)?;
            }
            return Some(());
        }
        while self.hi[out] < upto {
            self.run(l)?;
        }
        Some(())
    }

    /// Makes rows `[.., hi)` of local tensor `lt` available.
    fn provide(&mut self, lt: usize, hi: i64) -> Option<()> {
        if self.seg.external[lt] {
            if self.hi[lt] < hi {
                let (a, cols) = (self.hi[lt], self.cols[lt]);
                self.write(lt, a, hi)?;
                let t = self.seg.tens[lt];
                self.sim.loads[lt] += self.g.tensors[t].region(hi - a, cols.1 - cols.0);
                if self.opts.record {
                    self.sim.events.push(Event::Load {
                        tensor: t,
                        band: self.band,
                        rows: (a, hi),
                        cols,
                    });
                }
                self.hi[lt] = hi;
            }
            return Some(());
        }
        let l = self.seg.producer[lt]?;
        self.ensure(l, hi)
    }

    /// One run of local op `l`: its next stripe.
    fn run(&mut self, l: usize) -> Option<()> {
        let (g, seg) = (self.g, self.seg);
        let x = seg.ops[l];
        let op = &g.ops[x];
        let out = seg.outs[l][0];
        let (p, q) = match op.kind {
            Kind::Reduce => {
                let c = self.consumed[l];
                (c, (c + self.stripe[l]).min(seg.need_rows[seg.ins[l][0]]))
            }
            Kind::Opaque => (0, seg.need_rows[out]),
            Kind::Tiled => {
                let p = self.hi[out];
                (p, (p + self.stripe[l]).min(seg.need_rows[out]))
            }
        };
        let mut reads = Vec::with_capacity(op.inputs.len());
        for i in 0..op.inputs.len() {
            let r = match op.kind {
                Kind::Tiled => self.row_need(l, i, p, q),
                Kind::Reduce => Need::plain(p, q),
                Kind::Opaque => Need::plain(0, g.tensors[op.inputs[i].tensor].h),
            };
            let c = self.col_need(l, i);
            self.provide(seg.ins[l][i], r.hi)?;
            reads.push(Read {
                tensor: op.inputs[i].tensor,
                rows: (r.lo, r.hi),
                cols: (c.lo, c.hi),
                pads: [r.pad_lo, c.pad_lo, r.pad_hi, c.pad_hi],
            });
        }
        self.weights(l)?;
        self.sim.macs += self.run_macs(l, p, q, &reads);
        self.sim.runs += 1;
        self.runs_of[l] += 1;
        let (w0, w1) = if op.kind == Kind::Reduce {
            (0, 1)
        } else {
            (p, q)
        };
        let last = match op.kind {
            Kind::Reduce => q >= seg.need_rows[seg.ins[l][0]],
            _ => true,
        };
        if op.kind != Kind::Reduce || last {
            for &o in &seg.outs[l] {
                let rows = if op.kind == Kind::Opaque {
                    (0, seg.need_rows[o])
                } else {
                    (w0, w1)
                };
                self.write(o, rows.0, rows.1)?;
            }
        } else if self.consumed[l] == 0 {
            // The accumulator exists from the first stripe on.
            self.write(out, 0, 0)?;
        }
        self.consumed[l] = q;
        self.advance(l, p, q);
        if self.opts.record {
            self.sim.events.push(Event::Run(Run {
                op: x,
                band: self.band,
                rows: (p, q),
                cols: self.cols[out],
                reads,
            }));
        }
        let produced: Vec<(usize, (i64, i64))> = seg.outs[l]
            .iter()
            .map(|&o| {
                (
                    o,
                    if op.kind == Kind::Opaque {
                        (0, seg.need_rows[o])
                    } else {
                        (w0, w1)
                    },
                )
            })
            .collect();
        for (o, rows) in produced {
            if op.kind == Kind::Reduce && !last {
                continue;
            }
            self.hi[o] = rows.1;
            self.store(o, rows);
        }
        Some(())
    }

    fn store(&mut self, o: usize, rows: (i64, i64)) {
        let seg = self.seg;
        if !seg.escaping[o] || self.resident[o] || rows.1 <= rows.0 {
            return;
        }
        let t = seg.tens[o];
        let cols = self.targets[o];
        self.sim.stores[o] += self.g.tensors[t].region(rows.1 - rows.0, cols.1 - cols.0);
        if self.opts.record && cols.1 > cols.0 {
            self.sim.events.push(Event::Store {
                tensor: t,
                band: self.band,
                rows,
                cols,
            });
        }
    }

    /// Weights before a run: once per segment, or before every run when streamed.
    fn weights(&mut self, l: usize) -> Option<()> {
        let g = self.g;
        let x = self.seg.ops[l];
        if !g.weights_tracked || g.ops[x].weight_bytes == 0 {
            return Some(());
        }
        if self.opts.weights_streamed || !self.weights_loaded[l] {
            if self.weights_loaded[l] {
                self.sim.weight_traffic += g.ops[x].weight_bytes;
            }
            self.weights_loaded[l] = true;
            if self.opts.record {
                self.sim.events.push(Event::Weights { op: x });
            }
        }
        Some(())
    }

    /// After a run over `[p, q)`: where each input's next read starts.
    fn advance(&mut self, l: usize, _p: i64, q: i64) {
        let seg = self.seg;
        let op = &self.g.ops[seg.ops[l]];
        let finished = match op.kind {
            Kind::Reduce => q >= seg.need_rows[seg.ins[l][0]],
            Kind::Opaque => true,
            Kind::Tiled => q >= seg.need_rows[seg.outs[l][0]],
        };
        for i in 0..seg.ins[l].len() {
            self.next_lo[l][i] = if finished {
                INF
            } else {
                match op.kind {
                    Kind::Tiled => {
                        let q2 = (q + self.stripe[l]).min(seg.need_rows[seg.outs[l][0]]);
                        self.row_need(l, i, q, q2).lo
                    }
                    _ => q,
                }
            };
        }
    }

    /// Rows `[a, b)` of local tensor `lt` are written: grow its class's ring if the rows
    /// some reader still needs no longer fit.
    fn write(&mut self, lt: usize, a: i64, b: i64) -> Option<()> {
        let seg = self.seg;
        let c = seg.class[lt];
        let (mut lo, mut hi) = (a, b);
        for (m, &cm) in seg.class.iter().enumerate() {
            if cm != c || m == lt {
                continue;
            }
            let pending = seg.readers[m]
                .iter()
                .map(|&(x, i)| self.next_lo[x][i])
                .min()
                .unwrap_or(INF);
            let top = self.hi[m];
            if pending < top {
                lo = lo.min(pending);
                hi = hi.max(top);
            }
        }
        let pending = seg.readers[lt]
            .iter()
            .map(|&(x, i)| self.next_lo[x][i])
            .min()
            .unwrap_or(INF);
        let top = if self.hi[lt] == INF { 0 } else { self.hi[lt] };
        if pending < top {
            lo = lo.min(pending);
        }
        let span = (hi - lo).max(if b > a { b - a } else { 1 });
        if span > self.sim.caps[c] {
            let before = self.sim.class_bytes(c, self.g.alignment);
            self.sim.caps[c] = span;
            if !self.sim.resident_class[c] {
                self.sim.work_bytes += self.sim.class_bytes(c, self.g.alignment) - before;
                if self.opts.limit.is_some_and(|l| self.sim.work_bytes > l) {
                    return None;
                }
            }
        }
        Some(())
    }

    fn run_macs(&self, l: usize, p: i64, q: i64, reads: &[Read]) -> u64 {
        let op = &self.g.ops[self.seg.ops[l]];
        let (c0, c1) = self.cols[self.seg.outs[l][0]];
        let area = |r: (i64, i64), c: (i64, i64)| ((r.1 - r.0).max(0) * (c.1 - c.0).max(0)) as u64;
        match (op.kind, op.inputs.first().map(|i| &i.map)) {
            (Kind::Opaque, _) => op.macs,
            (Kind::Reduce, _) => area((p, q), reads[0].cols) * op.macs_per_pixel,
            (_, Some(super::classify::Map::Transposed(_))) => {
                area(reads[0].rows, reads[0].cols) * op.macs_per_pixel
            }
            (_, Some(super::classify::Map::Upsample(r))) => {
                let rows = (reads[0].rows.1 - reads[0].rows.0) * r[0].scale;
                let cols = (reads[0].cols.1 - reads[0].cols.0) * r[1].scale;
                (rows * cols).max(0) as u64 * op.macs_per_pixel
            }
            _ => area((p, q), (c0, c1)) * op.macs_per_pixel,
        }
    }
}
