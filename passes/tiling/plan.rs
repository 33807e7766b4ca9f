//! A tiled memory plan: segments in order, each with its cut (bands × stripes), its
//! buffers (rings for intermediates and streamed inputs/outputs, whole buffers for tensors
//! kept on chip across segments, weight buffers) at fixed scratchpad offsets, and its
//! event list: DMA loads and stores of row × column regions and operator runs.

use super::graph::{SGraph, TId, XId};
use super::segment::{Cfg, Seg};
use super::simulate::{Event, Sim};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A scratchpad buffer. Rings hold `rows` slots of `row_bytes`; row `r` of a tensor sits in
/// slot `r mod rows`. Whole buffers hold every row (`rows` = the tensor's height).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buffer {
    pub label: String,
    pub offset: u64,
    pub bytes: u64,
    pub rows: i64,
    pub row_bytes: u64,
    /// First and last segment the buffer is alive in.
    pub segs: (usize, usize),
    /// A whole tensor kept on chip across segments.
    pub whole: bool,
}

/// One segment of the plan.
#[derive(Clone, Debug)]
pub struct SegPlan {
    pub ops: Vec<XId>,
    pub cfg: Cfg,
    /// Stripe height per operator (output rows per run; input rows for a reduction).
    pub stripes: Vec<i64>,
    pub events: Vec<Event>,
    /// Buffer of every tensor the segment touches.
    pub buffer_of: BTreeMap<TId, usize>,
    /// Buffer of every operator's weights (when weights are tracked).
    pub weights_of: BTreeMap<XId, usize>,
    pub weights_streamed: bool,
    pub macs: u64,
    pub runs: usize,
}

#[derive(Clone, Debug)]
pub struct TilePlan {
    pub method: String,
    pub budget: u64,
    pub alignment: u64,
    pub segments: Vec<SegPlan>,
    pub buffers: Vec<Buffer>,
    /// Tensors kept whole on chip between segments.
    pub resident: Vec<TId>,
    /// Off-chip bytes the planner expects (the checker must recount exactly this).
    pub claimed_traffic: u64,
}

/// One segment as the search chose it: its operators, cut, and the all-streamed simulation.
#[derive(Clone, Debug)]
pub struct Part {
    pub seg: Seg,
    pub cfg: Cfg,
    pub weights_streamed: bool,
    pub sim: Sim,
}

/// A partition of the operators into segments, in order.
#[derive(Clone, Debug)]
pub struct Segmentation {
    pub name: String,
    pub parts: Vec<Part>,
}

impl TilePlan {
    /// Runs of every operator (events of kind Run).
    pub fn runs(&self) -> usize {
        self.segments.iter().map(|s| s.runs).sum()
    }

    /// Multiply-accumulates the tiles compute, halo recompute included.
    pub fn macs(&self) -> u64 {
        self.segments.iter().map(|s| s.macs).sum()
    }

    /// Segments that run in more than one tile.
    pub fn cascades(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| s.runs > s.ops.len())
            .count()
    }
}

fn range(r: (i64, i64)) -> Value {
    json!([r.0, r.1])
}

/// One event as JSON (buffer addresses resolved).
fn event_json(g: &SGraph, s: &SegPlan, buffers: &[Buffer], e: &Event) -> Value {
    let addr = |t: &TId| s.buffer_of.get(t).map(|&b| buffers[b].offset);
    match e {
        Event::Load {
            tensor,
            band,
            rows,
            cols,
        } => {
            json!({"load": g.tensors[*tensor].name, "band": band, "rows": range(*rows), "cols": range(*cols), "buffer": addr(tensor)})
        }
        Event::Store {
            tensor,
            band,
            rows,
            cols,
        } => {
            json!({"store": g.tensors[*tensor].name, "band": band, "rows": range(*rows), "cols": range(*cols), "buffer": addr(tensor)})
        }
        Event::Weights { op } => {
            json!({"weights": g.ops[*op].name, "buffer": s.weights_of.get(op).map(|&b| buffers[b].offset)})
        }
        Event::Run(r) => json!({
            "run": g.ops[r.op].name,
            "band": r.band,
            "rows": range(r.rows),
            "cols": range(r.cols),
            "out_buffer": addr(&g.ops[r.op].output()),
            "reads": r.reads.iter().map(|rd| json!({"tensor": g.tensors[rd.tensor].name, "rows": range(rd.rows), "cols": range(rd.cols), "pads": rd.pads, "buffer": addr(&rd.tensor)})).collect::<Vec<_>>(),
        }),
    }
}

/// The `--plan` JSON. `events` includes every DMA and run (large); without it, the
/// report's compact form.
pub fn plan_json(g: &SGraph, p: &TilePlan, events: bool) -> Value {
    let segments: Vec<Value> = p
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut v = json!({
                "segment": i,
                "operators": s.ops.iter().map(|&x| g.ops[x].name.clone()).collect::<Vec<_>>(),
                "bands": s.cfg.bands,
                "stripe_rows": s.ops.iter().zip(&s.stripes).map(|(&x, &h)| json!({"operator": g.ops[x].name, "rows": h})).collect::<Vec<_>>(),
                "runs": s.runs,
                "macs": s.macs,
                "weights_streamed": s.weights_streamed,
                "buffers": s.buffer_of.iter().map(|(&t, &b)| json!({"tensor": g.tensors[t].name, "offset": p.buffers[b].offset, "bytes": p.buffers[b].bytes, "rows": p.buffers[b].rows, "whole": p.buffers[b].whole})).collect::<Vec<_>>(),
            });
            if events {
                v["events"] = s.events.iter().map(|e| event_json(g, s, &p.buffers, e)).collect();
            }
            v
        })
        .collect();
    // The memory picture's form: one "tensor" per buffer, steps = segments.
    let tensors: Vec<Value> = p
        .buffers
        .iter()
        .map(|b| {
            json!({
                "name": b.label,
                "kind": if b.whole { "whole" } else { "ring" },
                "size": b.bytes,
                "offset": b.offset,
                "rows": b.rows,
                "lifetime": [b.segs.0, b.segs.1],
                "placements": [{"from": b.segs.0, "to": b.segs.1, "offset": b.offset}],
            })
        })
        .collect();
    let order: Vec<Value> = p
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"step": i, "node": s.ops.first().map(|&x| g.ops[x].name.clone()), "operators": s.ops.len()}))
        .collect();
    json!({
        "tiled": true,
        "method": p.method,
        "scratchpad_bytes": p.budget,
        "alignment": p.alignment,
        "traffic_bytes": p.claimed_traffic,
        "resident": p.resident.iter().map(|&t| g.tensors[t].name.clone()).collect::<Vec<_>>(),
        "order": order,
        "tensors": tensors,
        "segments": segments,
    })
}
