//! The independent checker of tiled plans. It shares no code with the planner: it replays
//! the events against a model of the scratchpad (ring slots: row `r` of a buffer with
//! `rows` slots lives in slot `r mod rows`) and of off-chip memory (which rows × columns of
//! each tensor were written there), and rejects what a real accelerator could not do:
//!
//! * buffers unaligned, outside the scratchpad, or overlapping another live buffer;
//! * an operator missing or run outside its segment, weights not on chip when it runs;
//! * a run whose input region is not exactly its receptive field, recomputed here by
//!   brute force over every output row and kernel tap (pads only at image borders and
//!   exactly as wide as the taps beyond them; for upsampling and transposed convolutions,
//!   every tap inside the tile and the crop inside the tile's output);
//! * a read of a row that is not in its buffer (never written, or overwritten because the
//!   ring was too small), a load of rows never stored, a region stored twice;
//! * an in-place write by anything but an elementwise operator over exactly its input;
//! * a graph output not entirely off chip at the end.
//!
//! It recounts the traffic (loads, stores, weight reloads), which must equal the plan's
//! claim, and the multiply-accumulates the tiles compute (halo recompute included).

use super::classify::{Kind, Map};
use super::graph::{SGraph, TId, XId};
use super::halo::{Coord, Nearest};
use super::plan::TilePlan;
use super::simulate::{Event, Read, Run};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub traffic: u64,
    pub load_bytes: u64,
    pub store_bytes: u64,
    /// Weight loads after an operator's first (non-compulsory).
    pub weight_reload_bytes: u64,
    /// Largest sum of live buffer bytes in a segment.
    pub peak_bytes: u64,
    pub macs: u64,
    /// MACs beyond the untiled model's (halo recompute).
    pub halo_macs: u64,
    pub runs: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    tensor: TId,
    row: i64,
    c0: i64,
    c1: i64,
}

struct Replay<'a> {
    g: &'a SGraph,
    p: &'a TilePlan,
    slots: Vec<Vec<Option<Slot>>>,
    weights_in: Vec<Option<XId>>,
    weights_seen: Vec<bool>,
    /// Per tensor, per row: columns written off chip (sorted, disjoint).
    dram: Vec<Vec<Vec<(i64, i64)>>>,
    consumed: Vec<Vec<bool>>,
    rep: CheckReport,
}

/// Replays `p` against `g`.
pub fn check(g: &SGraph, p: &TilePlan) -> Result<CheckReport, String> {
    let peak = check_buffers(p)?;
    let seg_of = check_partition(g, p)?;
    let mut r = Replay {
        g,
        p,
        slots: p
            .buffers
            .iter()
            .map(|b| vec![None; b.rows.max(0) as usize])
            .collect(),
        weights_in: vec![None; p.buffers.len()],
        weights_seen: vec![false; g.ops.len()],
        dram: g
            .tensors
            .iter()
            .map(|t| {
                let full = if t.graph_input {
                    vec![(0, t.w)]
                } else {
                    Vec::new()
                };
                vec![full; t.h.max(0) as usize]
            })
            .collect(),
        consumed: g.ops.iter().map(|_| Vec::new()).collect(),
        rep: CheckReport {
            peak_bytes: peak,
            ..CheckReport::default()
        },
    };
    for (s, seg) in p.segments.iter().enumerate() {
        for (&t, &b) in &seg.buffer_of {
            let bf = &p.buffers[b];
            if !(bf.segs.0 <= s && s <= bf.segs.1) {
                return Err(format!(
                    "segment {s}: tensor '{}' uses a buffer that is not alive",
                    g.tensors[t].name
                ));
            }
        }
        for e in &seg.events {
            r.event(s, &seg_of, e)?;
        }
    }
    for (ti, t) in g.tensors.iter().enumerate().filter(|(_, t)| t.graph_output) {
        for row in 0..t.h {
            if !covered(&r.dram[ti][row as usize], 0, t.w) {
                return Err(format!(
                    "graph output '{}' row {row} is not off chip at the end",
                    t.name
                ));
            }
        }
    }
    let planned: u64 = g.ops.iter().map(|o| o.macs).sum();
    r.rep.halo_macs = r.rep.macs.saturating_sub(planned);
    r.rep.traffic = r.rep.load_bytes + r.rep.store_bytes + r.rep.weight_reload_bytes;
    if r.rep.traffic != p.claimed_traffic {
        return Err(format!(
            "recounted traffic {} differs from the plan's {}",
            r.rep.traffic, p.claimed_traffic
        ));
    }
    Ok(r.rep)
}

/// Buffers aligned, inside, disjoint while alive; returns the peak of live bytes.
fn check_buffers(p: &TilePlan) -> Result<u64, String> {
    for b in &p.buffers {
        if b.offset % p.alignment.max(1) != 0 {
            return Err(format!(
                "buffer '{}' at {} is not aligned to {}",
                b.label, b.offset, p.alignment
            ));
        }
        if b.offset + b.bytes > p.budget {
            return Err(format!(
                "buffer '{}' [{}, {}) lies outside the {}-byte scratchpad",
                b.label,
                b.offset,
                b.offset + b.bytes,
                p.budget
            ));
        }
        if b.rows < 1
            || b.rows as u64 * b.row_bytes > b.bytes
            || b.segs.1 >= p.segments.len()
            || b.segs.0 > b.segs.1
        {
            return Err(format!(
                "buffer '{}' has an invalid shape or lifetime",
                b.label
            ));
        }
    }
    let mut peak = 0;
    for s in 0..p.segments.len() {
        let mut live: Vec<(u64, u64, &str)> = p
            .buffers
            .iter()
            .filter(|b| b.segs.0 <= s && s <= b.segs.1)
            .map(|b| (b.offset, b.bytes, b.label.as_str()))
            .collect();
        live.sort();
        for w in live.windows(2) {
            if w[0].0 + w[0].1 > w[1].0 {
                return Err(format!(
                    "segment {s}: buffer '{}' overlaps '{}'",
                    w[0].2, w[1].2
                ));
            }
        }
        peak = peak.max(live.iter().map(|b| b.1).sum::<u64>());
    }
    Ok(peak)
}

/// Every operator in exactly one segment, after the segments of its inputs' producers.
fn check_partition(g: &SGraph, p: &TilePlan) -> Result<Vec<usize>, String> {
    let mut seg_of = vec![usize::MAX; g.ops.len()];
    for (s, seg) in p.segments.iter().enumerate() {
        for &x in &seg.ops {
            if x >= g.ops.len() || seg_of[x] != usize::MAX {
                return Err(format!("operator {x} is missing or in two segments"));
            }
            seg_of[x] = s;
        }
    }
    if let Some(x) = seg_of.iter().position(|&s| s == usize::MAX) {
        return Err(format!("operator '{}' is in no segment", g.ops[x].name));
    }
    for (x, op) in g.ops.iter().enumerate() {
        for i in &op.inputs {
            if let Some(pr) = g.tensors[i.tensor].producer {
                if seg_of[pr] > seg_of[x] {
                    return Err(format!(
                        "'{}' runs before its input's producer '{}'",
                        op.name, g.ops[pr].name
                    ));
                }
            }
        }
    }
    Ok(seg_of)
}

fn covered(row: &[(i64, i64)], c0: i64, c1: i64) -> bool {
    c1 <= c0 || row.iter().any(|&(a, b)| a <= c0 && c1 <= b)
}

/// Adds `[c0, c1)` to a row's intervals; false if it overlaps what is there.
fn add_interval(row: &mut Vec<(i64, i64)>, c0: i64, c1: i64) -> bool {
    if row.iter().any(|&(a, b)| c0 < b && a < c1) {
        return false;
    }
    row.push((c0, c1));
    row.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(row.len());
    for &(a, b) in row.iter() {
        match merged.last_mut() {
            Some(m) if m.1 == a => m.1 = b,
            _ => merged.push((a, b)),
        }
    }
    *row = merged;
    true
}

impl Replay<'_> {
    fn buffer(&self, s: usize, t: TId) -> Result<usize, String> {
        self.p.segments[s]
            .buffer_of
            .get(&t)
            .copied()
            .ok_or_else(|| {
                format!(
                    "segment {s}: tensor '{}' has no buffer",
                    self.g.tensors[t].name
                )
            })
    }

    fn event(&mut self, s: usize, seg_of: &[usize], e: &Event) -> Result<(), String> {
        match e {
            Event::Load {
                tensor, rows, cols, ..
            } => self.load(s, *tensor, *rows, *cols),
            Event::Store {
                tensor, rows, cols, ..
            } => self.store(s, *tensor, *rows, *cols),
            Event::Weights { op } => {
                let b = *self.p.segments[s].weights_of.get(op).ok_or_else(|| {
                    format!(
                        "segment {s}: weights of '{}' have no buffer",
                        self.g.ops[*op].name
                    )
                })?;
                let w = self.g.ops[*op].weight_bytes;
                if w > self.p.buffers[b].bytes {
                    return Err(format!(
                        "weights of '{}' do not fit their buffer",
                        self.g.ops[*op].name
                    ));
                }
                if self.weights_seen[*op] {
                    self.rep.weight_reload_bytes += w;
                }
                self.weights_seen[*op] = true;
                self.weights_in[b] = Some(*op);
                Ok(())
            }
            Event::Run(r) => {
                if seg_of[r.op] != s {
                    return Err(format!(
                        "segment {s}: '{}' runs outside its segment",
                        self.g.ops[r.op].name
                    ));
                }
                self.run(s, r)
            }
        }
    }

    fn region_ok(&self, t: TId, rows: (i64, i64), cols: (i64, i64)) -> Result<(), String> {
        let ten = &self.g.tensors[t];
        if rows.0 < 0
            || rows.1 > ten.h
            || rows.0 >= rows.1
            || cols.0 < 0
            || cols.1 > ten.w
            || cols.0 >= cols.1
        {
            return Err(format!(
                "region rows {rows:?} cols {cols:?} of '{}' is empty or outside it",
                ten.name
            ));
        }
        Ok(())
    }

    fn put(&mut self, b: usize, t: TId, rows: (i64, i64), cols: (i64, i64)) -> Result<(), String> {
        let bf = &self.p.buffers[b];
        let width = (cols.1 - cols.0) as u64 * self.g.tensors[t].pixel;
        if width > bf.row_bytes {
            return Err(format!(
                "{} bytes of a row of '{}' do not fit the {}-byte rows of '{}'",
                width, self.g.tensors[t].name, bf.row_bytes, bf.label
            ));
        }
        let n = bf.rows;
        for row in rows.0..rows.1 {
            self.slots[b][row.rem_euclid(n) as usize] = Some(Slot {
                tensor: t,
                row,
                c0: cols.0,
                c1: cols.1,
            });
        }
        Ok(())
    }

    fn has(
        &self,
        b: usize,
        t: TId,
        rows: (i64, i64),
        cols: (i64, i64),
        what: &str,
    ) -> Result<(), String> {
        let n = self.p.buffers[b].rows;
        for row in rows.0..rows.1 {
            match self.slots[b][row.rem_euclid(n) as usize] {
                Some(sl) if sl.tensor == t && sl.row == row && sl.c0 <= cols.0 && cols.1 <= sl.c1 => {}
                _ => {
                    return Err(format!(
                        "{what}: row {row} (cols {cols:?}) of '{}' is not in buffer '{}' (never written, or overwritten: ring too small)",
                        self.g.tensors[t].name, self.p.buffers[b].label
                    ))
                }
            }
        }
        Ok(())
    }

    fn load(&mut self, s: usize, t: TId, rows: (i64, i64), cols: (i64, i64)) -> Result<(), String> {
        self.region_ok(t, rows, cols)?;
        for row in rows.0..rows.1 {
            if !covered(&self.dram[t][row as usize], cols.0, cols.1) {
                return Err(format!(
                    "segment {s}: load of row {row} of '{}', which is not off chip",
                    self.g.tensors[t].name
                ));
            }
        }
        let b = self.buffer(s, t)?;
        self.put(b, t, rows, cols)?;
        self.rep.load_bytes += self.g.tensors[t].region(rows.1 - rows.0, cols.1 - cols.0);
        Ok(())
    }

    fn store(
        &mut self,
        s: usize,
        t: TId,
        rows: (i64, i64),
        cols: (i64, i64),
    ) -> Result<(), String> {
        self.region_ok(t, rows, cols)?;
        let b = self.buffer(s, t)?;
        self.has(b, t, rows, cols, &format!("segment {s}: store"))?;
        for row in rows.0..rows.1 {
            if !add_interval(&mut self.dram[t][row as usize], cols.0, cols.1) {
                return Err(format!(
                    "segment {s}: row {row} of '{}' is written off chip twice",
                    self.g.tensors[t].name
                ));
            }
        }
        self.rep.store_bytes += self.g.tensors[t].region(rows.1 - rows.0, cols.1 - cols.0);
        Ok(())
    }

    fn run(&mut self, s: usize, r: &Run) -> Result<(), String> {
        let g = self.g;
        let op = &g.ops[r.op];
        let what = format!(
            "segment {s}: run of '{}' rows {:?} cols {:?}",
            op.name, r.rows, r.cols
        );
        if g.weights_tracked && op.weight_bytes > 0 {
            let b = self.p.segments[s].weights_of.get(&r.op).copied();
            if b.is_none_or(|b| self.weights_in[b] != Some(r.op)) {
                return Err(format!("{what}: its weights are not on chip"));
            }
        }
        if r.reads.len() != op.inputs.len() {
            return Err(format!(
                "{what}: {} reads for {} inputs",
                r.reads.len(),
                op.inputs.len()
            ));
        }
        let out = op.output();
        let out_t = &g.tensors[out];
        if op.kind != Kind::Reduce {
            self.region_ok(out, r.rows, r.cols)
                .map_err(|e| format!("{what}: {e}"))?;
        }
        if op.kind == Kind::Opaque && (r.rows != (0, out_t.h) || r.cols != (0, out_t.w)) {
            return Err(format!("{what}: an opaque operator must run whole"));
        }
        let out_buf = self.buffer(s, out)?;
        for (inp, rd) in op.inputs.iter().zip(&r.reads) {
            if rd.tensor != inp.tensor {
                return Err(format!(
                    "{what}: reads '{}' for input '{}'",
                    g.tensors[rd.tensor].name, g.tensors[inp.tensor].name
                ));
            }
            let map = if op.kind == Kind::Opaque {
                &Map::Whole
            } else {
                &inp.map
            };
            expect_region(g, r, out, rd, map)
                .map_err(|e| format!("{what}: input '{}': {e}", g.tensors[rd.tensor].name))?;
            let b = self.buffer(s, rd.tensor)?;
            self.has(b, rd.tensor, rd.rows, rd.cols, &what)?;
            if b == out_buf
                && !(op.elementwise && rd.rows == r.rows && rd.cols == r.cols && *map == Map::Same)
            {
                return Err(format!("{what}: writes over its input '{}' without being elementwise over the same region", g.tensors[rd.tensor].name));
            }
        }
        self.rep.macs += run_macs(g, r);
        self.rep.runs += 1;
        match op.kind {
            Kind::Reduce => self.reduce(s, r, &what),
            Kind::Opaque => {
                for &o in &op.outputs {
                    let b = self.buffer(s, o)?;
                    let t = &g.tensors[o];
                    self.put(b, o, (0, t.h), (0, t.w))?;
                }
                Ok(())
            }
            Kind::Tiled => self.put(out_buf, out, r.rows, r.cols),
        }
    }

    fn reduce(&mut self, s: usize, r: &Run, what: &str) -> Result<(), String> {
        let op = &self.g.ops[r.op];
        let input = &self.g.tensors[op.inputs[0].tensor];
        let seen = &mut self.consumed[r.op];
        if seen.is_empty() {
            *seen = vec![false; input.h.max(0) as usize];
        }
        if r.rows.0 < 0 || r.rows.1 > input.h || r.rows.0 >= r.rows.1 {
            return Err(format!("{what}: rows outside the reduced input"));
        }
        for row in r.rows.0..r.rows.1 {
            if seen[row as usize] {
                return Err(format!("{what}: row {row} is reduced twice"));
            }
            seen[row as usize] = true;
        }
        if seen.iter().all(|&b| b) {
            let out = op.output();
            let b = self.buffer(s, out)?;
            let t = &self.g.tensors[out];
            self.put(b, out, (0, t.h), (0, t.w))?;
        }
        Ok(())
    }
}

/// Brute force: the input region `map` needs for the run's output, compared with `rd`.
fn expect_region(g: &SGraph, r: &Run, out: TId, rd: &Read, map: &Map) -> Result<(), String> {
    let it = &g.tensors[rd.tensor];
    let ot = &g.tensors[out];
    let out_rc = [r.rows, r.cols];
    let in_len = [it.h, it.w];
    let out_len = [ot.h, ot.w];
    let got = [rd.rows, rd.cols];
    for a in 0..2 {
        let (p, q) = out_rc[a];
        let (pad_lo, pad_hi) = (rd.pads[a], rd.pads[a + 2]);
        let exact = |want: (i64, i64), pads: (i64, i64)| -> Result<(), String> {
            if got[a] != want || (pad_lo, pad_hi) != pads {
                return Err(format!(
                    "axis {a}: reads {:?} pads {:?}, its receptive field is {want:?} pads {pads:?}",
                    got[a],
                    (pad_lo, pad_hi)
                ));
            }
            Ok(())
        };
        match map {
            Map::Same => exact((p, q), (0, 0))?,
            Map::Whole => exact((0, in_len[a]), (0, 0))?,
            Map::Stream => exact(if a == 0 { (p, q) } else { (0, in_len[a]) }, (0, 0))?,
            Map::Window(ax) => {
                let w = ax[a];
                let taps: Vec<i64> = (p..q)
                    .flat_map(|o| {
                        (0..w.kernel).map(move |i| o * w.stride - w.pad_begin + i * w.dilation)
                    })
                    .collect();
                let first = taps.iter().copied().min().unwrap_or(0);
                let last = taps.iter().copied().max().unwrap_or(-1);
                // The pads are the hull's rows outside the tensor, on each side.
                let n = in_len[a];
                exact(
                    (first.clamp(0, n), (last + 1).clamp(0, n)),
                    (
                        (last + 1).min(0).saturating_sub(first).max(0),
                        (last + 1).saturating_sub(first.max(n)).max(0),
                    ),
                )?;
                // The tile, run in floor mode, must give exactly the run's rows.
                let span = (w.kernel - 1) * w.dilation + 1;
                let rows = got[a].1 - got[a].0 + pad_lo + pad_hi - span;
                if rows < 0 || rows / w.stride + 1 != q - p {
                    return Err(format!(
                        "axis {a}: the tile would compute {} rows, not {}",
                        rows.max(-1) / w.stride + 1,
                        q - p
                    ));
                }
            }
            Map::Transposed(ax) => {
                let w = ax[a];
                let mut hull = (i64::MAX, i64::MIN);
                for x in 0..in_len[a] {
                    if (0..w.kernel)
                        .any(|i| (p..q).contains(&(x * w.stride - w.pad_begin + i * w.dilation)))
                    {
                        hull = (hull.0.min(x), hull.1.max(x + 1));
                    }
                }
                let span = (w.kernel - 1) * w.dilation + 1;
                let (lo, hi) = got[a];
                let crop_ok = lo * w.stride - w.pad_begin <= p
                    && q <= (hi - 1) * w.stride - w.pad_begin + span;
                if lo > hull.0 || hi < hull.1 || !crop_ok || pad_lo != 0 || pad_hi != 0 {
                    return Err(format!(
                        "axis {a}: reads {:?}, contributions come from {hull:?}",
                        got[a]
                    ));
                }
            }
            Map::Upsample(rs) => {
                let rs = rs[a];
                let mut hull = (i64::MAX, i64::MIN);
                for y in p..q {
                    let (x0, x1) = resize_taps(
                        rs.scale, rs.linear, rs.coord, rs.nearest, y, in_len[a], out_len[a],
                    );
                    hull = (hull.0.min(x0), hull.1.max(x1 + 1));
                }
                let (lo, hi) = got[a];
                if lo > hull.0
                    || hi < hull.1
                    || lo * rs.scale > p
                    || hi * rs.scale < q
                    || pad_lo != 0
                    || pad_hi != 0
                {
                    return Err(format!(
                        "axis {a}: reads {:?}, the taps span {hull:?}",
                        got[a]
                    ));
                }
            }
        }
    }
    Ok(())
}

/// ONNX Resize source taps of output index `y`, written out from the operator's definition.
fn resize_taps(
    scale: i64,
    linear: bool,
    coord: Coord,
    nearest: Nearest,
    y: i64,
    len: i64,
    out: i64,
) -> (i64, i64) {
    let r = scale as f64;
    let x = match coord {
        Coord::Asymmetric => y as f64 / r,
        Coord::HalfPixel => (y as f64 + 0.5) / r - 0.5,
        Coord::PytorchHalfPixel => {
            if out > 1 {
                (y as f64 + 0.5) / r - 0.5
            } else {
                0.0
            }
        }
    };
    if linear {
        let x = x.max(0.0).min((len - 1) as f64);
        let f = x.floor() as i64;
        (f, (f + 1).min(len - 1))
    } else {
        let frac = x - x.floor();
        let i = match nearest {
            Nearest::Floor => x.floor(),
            Nearest::Ceil => x.ceil(),
            Nearest::RoundPreferFloor => {
                if frac <= 0.5 {
                    x.floor()
                } else {
                    x.ceil()
                }
            }
            Nearest::RoundPreferCeil => {
                if frac < 0.5 {
                    x.floor()
                } else {
                    x.ceil()
                }
            }
        } as i64;
        let i = i.clamp(0, len - 1);
        (i, i)
    }
}

fn run_macs(g: &SGraph, r: &Run) -> u64 {
    let op = &g.ops[r.op];
    let area = |a: (i64, i64), b: (i64, i64)| ((a.1 - a.0).max(0) * (b.1 - b.0).max(0)) as u64;
    match (op.kind, op.inputs.first().map(|i| &i.map)) {
        (Kind::Opaque, _) => op.macs,
        (Kind::Reduce, _) => area(r.reads[0].rows, r.reads[0].cols) * op.macs_per_pixel,
        (_, Some(Map::Transposed(_))) => area(r.reads[0].rows, r.reads[0].cols) * op.macs_per_pixel,
        (_, Some(Map::Upsample(rs))) => {
            let rows = (r.reads[0].rows.1 - r.reads[0].rows.0) * rs[0].scale;
            let cols = (r.reads[0].cols.1 - r.reads[0].cols.0) * rs[1].scale;
            (rows * cols).max(0) as u64 * op.macs_per_pixel
        }
        _ => area(r.rows, r.cols) * op.macs_per_pixel,
    }
}
