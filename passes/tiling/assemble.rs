//! Turns a segmentation and its residency into a [`TilePlan`]: every segment simulated
//! again with its resident tensors (recording the events), its rings and weight buffers
//! laid out in its work area, whole buffers at their packed offsets.

use super::graph::{SGraph, TId};
use super::plan::{Buffer, SegPlan, Segmentation, TilePlan};
use super::residency::{Placed, Table};
use super::simulate::{simulate, Event, SimOpts};
use crate::schedule::problem::align_up;
use std::collections::BTreeMap;

/// Builds the plan; `None` when a segment's recorded work area outgrew its planned one.
pub fn assemble(
    g: &SGraph,
    sgm: &Segmentation,
    table: &Table,
    placed: &Placed,
    budget: u64,
) -> Option<TilePlan> {
    let mut buffers: Vec<Buffer> = Vec::new();
    let mut whole_id: BTreeMap<TId, usize> = BTreeMap::new();
    let mut resident = Vec::new();
    for (b, &k) in table.boundaries.iter().zip(&placed.keep) {
        if !k {
            continue;
        }
        let t = &g.tensors[b.tensor];
        whole_id.insert(b.tensor, buffers.len());
        resident.push(b.tensor);
        buffers.push(Buffer {
            label: t.name.clone(),
            offset: placed.whole_offset[&b.tensor],
            bytes: b.whole,
            rows: t.h,
            row_bytes: t.w.max(0) as u64 * t.pixel,
            segs: (b.start, b.end),
            whole: true,
        });
    }
    let first_reader: BTreeMap<TId, usize> = table
        .boundaries
        .iter()
        .zip(&placed.keep)
        .filter(|(b, &k)| k && g.tensors[b.tensor].graph_input)
        .map(|(b, _)| (b.tensor, b.start))
        .collect();
    let mut segments = Vec::with_capacity(sgm.parts.len());
    let mut claimed = 0u64;
    for (s, part) in sgm.parts.iter().enumerate() {
        let seg = &part.seg;
        let res: Vec<bool> = seg.tens.iter().map(|t| whole_id.contains_key(t)).collect();
        let opts = SimOpts {
            limit: None,
            record: true,
            weights_streamed: part.weights_streamed,
        };
        let sim = simulate(g, seg, part.cfg, &res, opts)?;
        if sim.work_bytes > table.work(s, &placed.keep) {
            return None;
        }
        claimed += sim.traffic();
        let mut events = Vec::with_capacity(sim.events.len() + 1);
        for (&t, &fs) in &first_reader {
            if fs == s {
                let ten = &g.tensors[t];
                claimed += ten.bytes;
                events.push(Event::Load {
                    tensor: t,
                    band: 0,
                    rows: (0, ten.h),
                    cols: (0, ten.w),
                });
            }
        }
        events.extend(sim.events.iter().cloned());
        let mut buffer_of = BTreeMap::new();
        let mut cursor = placed.work_offset[s];
        for c in 0..seg.classes {
            let members: Vec<usize> = (0..seg.tens.len())
                .filter(|&lt| seg.class[lt] == c)
                .collect();
            if sim.resident_class[c] {
                for &lt in &members {
                    buffer_of.insert(seg.tens[lt], whole_id[&seg.tens[lt]]);
                }
                continue;
            }
            let bytes = sim.class_bytes(c, g.alignment);
            let label = members
                .iter()
                .map(|&lt| g.tensors[seg.tens[lt]].name.as_str())
                .collect::<Vec<_>>()
                .join(" = ");
            for &lt in &members {
                buffer_of.insert(seg.tens[lt], buffers.len());
            }
            buffers.push(Buffer {
                label: format!("{label} (ring)"),
                offset: cursor,
                bytes,
                rows: sim.caps[c].max(1),
                row_bytes: sim.widths[c].max(0) as u64 * sim.pixel[c],
                segs: (s, s),
                whole: false,
            });
            cursor += bytes;
        }
        let weights_of = weight_buffers(g, part, s, &mut cursor, &mut buffers);
        // Resident tensors alive across this segment without being touched keep their
        // buffers (listed in `buffers` with their lifetime).
        segments.push(SegPlan {
            ops: seg.ops.clone(),
            cfg: part.cfg,
            stripes: (0..seg.ops.len())
                .map(|l| seg.stripe(g, l, part.cfg.t))
                .collect(),
            events,
            buffer_of,
            weights_of,
            weights_streamed: part.weights_streamed,
            macs: sim.macs,
            runs: sim.runs,
        });
    }
    Some(TilePlan {
        method: sgm.name.clone(),
        budget,
        alignment: g.alignment,
        segments,
        buffers,
        resident,
        claimed_traffic: claimed,
    })
}

/// Weight buffers of a segment: one per operator, or one shared slot when streamed.
fn weight_buffers(
    g: &SGraph,
    part: &super::plan::Part,
    s: usize,
    cursor: &mut u64,
    buffers: &mut Vec<Buffer>,
) -> BTreeMap<usize, usize> {
    let mut out = BTreeMap::new();
    if !g.weights_tracked {
        return out;
    }
    let ops: Vec<usize> = part
        .seg
        .ops
        .iter()
        .copied()
        .filter(|&x| g.ops[x].weight_bytes > 0)
        .collect();
    if part.weights_streamed {
        let bytes = ops
            .iter()
            .map(|&x| align_up(g.ops[x].weight_bytes, g.alignment))
            .max()
            .unwrap_or(0);
        if bytes > 0 {
            for &x in &ops {
                out.insert(x, buffers.len());
            }
            push_weight_buffer(buffers, cursor, s, "weights (streamed)".into(), bytes);
        }
        return out;
    }
    for x in ops {
        let bytes = align_up(g.ops[x].weight_bytes, g.alignment);
        out.insert(x, buffers.len());
        push_weight_buffer(
            buffers,
            cursor,
            s,
            format!("{} weights", g.ops[x].name),
            bytes,
        );
    }
    out
}

/// Places one weight buffer of segment `s` at `cursor` (a single row, never whole).
fn push_weight_buffer(
    buffers: &mut Vec<Buffer>,
    cursor: &mut u64,
    s: usize,
    label: String,
    bytes: u64,
) {
    buffers.push(Buffer {
        label,
        offset: *cursor,
        bytes,
        rows: 1,
        row_bytes: bytes,
        segs: (s, s),
        whole: false,
    });
    *cursor += bytes;
}
