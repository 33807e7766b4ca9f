//! The tiled ONNX graph: every run of the plan becomes one node of its operator over a
//! slice of its inputs, so the tiling is explicit for onnxruntime and for any compiler
//! downstream.
//!
//! * An input region comes from `Slice` of a tensor made before the segment, or from the
//!   stripes a producer in the segment made (`Slice` where a stripe is wider, `Concat`
//!   along H of consecutive stripes: the rows kept in a ring are reused, not recomputed).
//! * Windows get the tile's pads (only at image borders; a `ceil_mode` pool's last tile
//!   pads to its last window and runs in floor mode); transposed convolutions and
//!   upsampling run unpadded over their input tile and are cropped by a `Slice`.
//! * Every tile gets its own copy of an attached DequantizeLinear, so onnxruntime still
//!   fuses DQ → op → Q into one integer kernel per tile (bit-identical results).
//! * A reduction over H and W stays one node over the concatenated stripes (the plan
//!   streams them; one node keeps onnxruntime's summation order and result).
//! * A tensor read after its segment is reassembled under its own name: `Concat` along H of
//!   each band's stripes, then along W of the bands.

use super::classify::{Kind, Map};
use super::graph::{SGraph, TId};
use super::plan::{SegPlan, TilePlan};
use super::simulate::{Event, Run};
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::{AttributeProto, TensorProto};
use optimize_ir::ir::build::a_int;
use optimize_ir::ir::{DataType, Model, Node, ValueType};
use petgraph::stable_graph::NodeIndex;
use std::collections::{BTreeMap, HashMap, HashSet};

/// One stripe of a tensor made in the current segment.
#[derive(Clone, Debug)]
struct Block {
    rows: (i64, i64),
    cols: (i64, i64),
    name: String,
}

struct Writer<'a> {
    g: &'a SGraph,
    model: &'a Model,
    opset: i64,
    seg: usize,
    nodes: Vec<Node>,
    types: Vec<(String, ValueType)>,
    inits: BTreeMap<String, TensorProto>,
    consts: HashMap<Vec<i64>, String>,
    blocks: HashMap<(TId, usize), Vec<Block>>,
    /// Which new node produces each name (to rename a lone stripe).
    made_by: HashMap<String, usize>,
    produced: HashSet<TId>,
    counter: usize,
}

fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INTS.into();
    a.ints = v.to_vec();
    a
}

fn set_attr(n: &mut Node, a: AttributeProto) {
    n.attributes.retain(|x| x.name != a.name);
    n.attributes.push(a);
}

/// Statistics of the rewrite.
#[derive(Clone, Debug, Default)]
pub struct Rewritten {
    pub nodes_before: usize,
    pub nodes_after: usize,
    pub tiled_segments: usize,
}

/// Rewrites `model` (whose tiling view is `g`) into the tiled program of `plan`.
pub fn rewrite(model: &mut Model, g: &SGraph, plan: &TilePlan) -> Result<Rewritten, String> {
    let nodes_before = model.graph.node_count();
    let mut w = Writer {
        g,
        model,
        opset: model.opset("").unwrap_or(1),
        seg: 0,
        nodes: Vec::new(),
        types: Vec::new(),
        inits: BTreeMap::new(),
        consts: HashMap::new(),
        blocks: HashMap::new(),
        made_by: HashMap::new(),
        produced: HashSet::new(),
        counter: 0,
    };
    // (segment index, new nodes) per tiled segment; original nodes to drop.
    let mut tiled: Vec<(usize, Vec<Node>)> = Vec::new();
    let mut drop: HashSet<NodeIndex> = HashSet::new();
    for (s, seg) in plan.segments.iter().enumerate() {
        if untouched(g, seg) {
            continue;
        }
        w.start(s, seg);
        for e in &seg.events {
            if let Event::Run(r) = e {
                w.run(r)?;
            }
        }
        w.finish(seg)?;
        for &x in &seg.ops {
            drop.insert(g.ops[x].node);
            for d in g.ops[x]
                .inputs
                .iter()
                .filter_map(|i| i.dq)
                .chain(g.ops[x].statics.iter().filter_map(|s| s.dq))
            {
                drop.insert(d);
            }
        }
        tiled.push((s, std::mem::take(&mut w.nodes)));
    }
    let (types, inits) = (std::mem::take(&mut w.types), std::mem::take(&mut w.inits));
    let tiled_segments = tiled.len();
    install(model, g, plan, tiled, &drop, types, inits)?;
    Ok(Rewritten {
        nodes_before,
        nodes_after: model.graph.node_count(),
        tiled_segments,
    })
}

/// A segment whose operators each run once over their whole output is left as it is.
fn untouched(g: &SGraph, seg: &SegPlan) -> bool {
    let mut runs: HashMap<usize, usize> = HashMap::new();
    for e in &seg.events {
        if let Event::Run(r) = e {
            *runs.entry(r.op).or_default() += 1;
            let out = &g.tensors[g.ops[r.op].output()];
            let whole = match g.ops[r.op].kind {
                Kind::Reduce => r.rows == (0, g.tensors[g.ops[r.op].inputs[0].tensor].h),
                _ => r.rows == (0, out.h) && r.cols == (0, out.w),
            };
            if !whole {
                return false;
            }
        }
    }
    seg.ops.iter().all(|x| runs.get(x) == Some(&1))
}

/// Puts the new nodes in place of the tiled segments' nodes, in plan order.
fn install(
    model: &mut Model,
    g: &SGraph,
    plan: &TilePlan,
    tiled: Vec<(usize, Vec<Node>)>,
    drop: &HashSet<NodeIndex>,
    types: Vec<(String, ValueType)>,
    inits: BTreeMap<String, TensorProto>,
) -> Result<(), String> {
    let graph = &mut model.graph;
    let mut new_of: HashMap<usize, Vec<NodeIndex>> = HashMap::new();
    for (s, nodes) in tiled {
        let ids = nodes.into_iter().map(|n| graph.add_node(n)).collect();
        new_of.insert(s, ids);
    }
    let mut order: Vec<NodeIndex> = g
        .kept
        .iter()
        .copied()
        .filter(|n| !drop.contains(n))
        .collect();
    for (s, seg) in plan.segments.iter().enumerate() {
        match new_of.remove(&s) {
            Some(ids) => order.extend(ids),
            None => order.extend(seg.ops.iter().map(|&x| g.ops[x].node)),
        }
    }
    for &n in drop {
        graph.remove_node(n);
    }
    graph.order = order;
    for (name, t) in inits {
        graph.initializers.insert(name, t);
    }
    for (name, ty) in types {
        graph.set_value_type(&name, ty);
    }
    graph
        .relink()
        .map_err(|e| format!("the tiled graph is invalid: {e}"))
}

impl Writer<'_> {
    fn start(&mut self, s: usize, seg: &SegPlan) {
        self.seg = s;
        self.blocks.clear();
        self.made_by.clear();
        self.produced = seg
            .ops
            .iter()
            .flat_map(|&x| self.g.ops[x].outputs.iter().copied())
            .collect();
    }

    fn fresh(&mut self, base: &str) -> String {
        self.counter += 1;
        format!("{base}__t{}_{}", self.seg, self.counter)
    }

    fn ty(&mut self, name: &str, elem: DataType, t: TId, rows: i64, cols: i64) {
        let d = &self.g.tensors[t].dims;
        let dims = if d.len() == 4 {
            vec![d[0], d[1], rows, cols]
        } else {
            d.clone()
        };
        self.types
            .push((name.to_string(), ValueType::tensor(elem, &dims)));
    }

    fn push(&mut self, n: Node) {
        for o in &n.outputs {
            self.made_by.insert(o.clone(), self.nodes.len());
        }
        self.nodes.push(n);
    }

    fn node(
        &self,
        name: String,
        op: &str,
        ins: Vec<String>,
        out: &str,
        attrs: Vec<AttributeProto>,
    ) -> Node {
        Node {
            name,
            op_type: op.into(),
            inputs: ins,
            outputs: vec![out.to_string()],
            attributes: attrs,
            ..Default::default()
        }
    }

    fn i64_const(&mut self, v: &[i64]) -> String {
        if let Some(n) = self.consts.get(v) {
            return n.clone();
        }
        let name = format!("__tile_i64_{}", self.consts.len());
        let mut t = TensorProto::new();
        t.name = name.clone();
        t.data_type = DataType::Int64 as i32;
        t.dims = vec![v.len() as i64];
        t.int64_data = v.to_vec();
        self.inits.insert(name.clone(), t);
        self.consts.insert(v.to_vec(), name.clone());
        name
    }

    /// `Slice` of rows × cols (axes 2, 3) of `src` (a tensor like `t`) into a new name.
    fn slice(&mut self, src: &str, t: TId, rows: (i64, i64), cols: (i64, i64)) -> String {
        let out = self.fresh(&self.g.tensors[t].name.clone());
        let (starts, ends, axes) = ([rows.0, cols.0], [rows.1, cols.1], [2, 3]);
        let n = if self.opset >= 10 {
            let ins = vec![
                src.to_string(),
                self.i64_const(&starts),
                self.i64_const(&ends),
                self.i64_const(&axes),
            ];
            self.node(out.clone(), "Slice", ins, &out, vec![])
        } else {
            let attrs = vec![
                ints_attr("starts", &starts),
                ints_attr("ends", &ends),
                ints_attr("axes", &axes),
            ];
            self.node(out.clone(), "Slice", vec![src.to_string()], &out, attrs)
        };
        self.push(n);
        let elem = self.g.tensors[t].elem;
        self.ty(&out, elem, t, rows.1 - rows.0, cols.1 - cols.0);
        out
    }

    fn concat(&mut self, parts: Vec<String>, axis: i64, out: &str, t: TId, rows: i64, cols: i64) {
        let n = self.node(
            out.to_string(),
            "Concat",
            parts,
            out,
            vec![a_int("axis", axis)],
        );
        self.push(n);
        let elem = self.g.tensors[t].elem;
        self.ty(out, elem, t, rows, cols);
    }

    /// Region rows × cols of tensor `t` in band `band`, as a tensor name.
    fn region(
        &mut self,
        t: TId,
        band: usize,
        rows: (i64, i64),
        cols: (i64, i64),
    ) -> Result<String, String> {
        let ten = &self.g.tensors[t];
        if !self.produced.contains(&t) {
            if rows == (0, ten.h) && cols == (0, ten.w) {
                return Ok(ten.name.clone());
            }
            let name = ten.name.clone();
            return Ok(self.slice(&name, t, rows, cols));
        }
        let blocks: Vec<Block> = self
            .blocks
            .get(&(t, band))
            .map(|b| {
                b.iter()
                    .filter(|b| b.rows.0 < rows.1 && rows.0 < b.rows.1)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut parts = Vec::new();
        let mut at = rows.0;
        for b in blocks {
            if b.rows.0 > at || b.cols.0 > cols.0 || b.cols.1 < cols.1 {
                return Err(format!(
                    "rows {rows:?} cols {cols:?} of '{}' are not in its stripes",
                    ten.name
                ));
            }
            let r = (at - b.rows.0, rows.1.min(b.rows.1) - b.rows.0);
            let c = (cols.0 - b.cols.0, cols.1 - b.cols.0);
            let whole = r == (0, b.rows.1 - b.rows.0) && c == (0, b.cols.1 - b.cols.0);
            parts.push(if whole {
                b.name.clone()
            } else {
                self.slice(&b.name, t, r, c)
            });
            at = rows.1.min(b.rows.1);
        }
        if at < rows.1 {
            return Err(format!(
                "rows {rows:?} of '{}' were not made before they are read",
                ten.name
            ));
        }
        if parts.len() == 1 {
            return Ok(parts.remove(0));
        }
        let out = self.fresh(&ten.name.clone());
        self.concat(parts, 2, &out, t, rows.1 - rows.0, cols.1 - cols.0);
        Ok(out)
    }

    /// A copy of DequantizeLinear `d` reading `x` (a region rows × cols of tensor `t`,
    /// or the constant itself).
    fn dq_copy(&mut self, d: NodeIndex, x: String, region: Option<(TId, i64, i64)>) -> String {
        let orig = self.model.graph.ops[d].clone();
        let out = self.fresh(&orig.outputs[0]);
        let mut n = orig.clone();
        n.name = out.clone();
        n.inputs[0] = x;
        n.outputs = vec![out.clone()];
        self.push(n);
        let ty = self.model.graph.value_type(&orig.outputs[0]).cloned();
        match (ty, region) {
            (Some(ty), None) => self.types.push((out.clone(), ty)),
            (Some(ty), Some((t, rows, cols))) => {
                let elem = ty.elem().unwrap_or(DataType::Float);
                self.ty(&out, elem, t, rows, cols);
            }
            (None, _) => {}
        }
        out
    }

    fn run(&mut self, r: &Run) -> Result<(), String> {
        let g = self.g;
        let op = &g.ops[r.op];
        let input_h = op
            .inputs
            .first()
            .map(|i| g.tensors[i.tensor].h)
            .unwrap_or(0);
        if op.kind == Kind::Reduce && r.rows.1 < input_h {
            return Ok(()); // the reduction is emitted once, at its last stripe
        }
        let mut n = self.model.graph.ops[op.node].clone();
        for (inp, rd) in op.inputs.iter().zip(&r.reads) {
            let (rows, cols) = if op.kind == Kind::Reduce {
                ((0, g.tensors[inp.tensor].h), (0, g.tensors[inp.tensor].w))
            } else {
                (rd.rows, rd.cols)
            };
            let mut name = self.region(inp.tensor, r.band, rows, cols)?;
            if let Some(d) = inp.dq {
                name = self.dq_copy(
                    d,
                    name,
                    Some((inp.tensor, rows.1 - rows.0, cols.1 - cols.0)),
                );
            }
            n.inputs[inp.slot] = name;
        }
        for s in &op.statics {
            if let Some(d) = s.dq {
                let x = self.model.graph.ops[d].inputs[0].clone();
                n.inputs[s.slot] = self.dq_copy(d, x, None);
            }
        }
        let out_t = op.output();
        let out_name = self.fresh(&g.tensors[out_t].name.clone());
        n.name = out_name.clone();
        let (rows, cols) = if op.kind == Kind::Reduce {
            ((0, 1), (0, 1))
        } else {
            (r.rows, r.cols)
        };
        let raw = self.shape_node(&mut n, r)?;
        match raw {
            None => {
                n.outputs = vec![out_name.clone()];
                self.push(n);
            }
            Some((raw_rows, raw_cols, crop)) => {
                let raw_name = format!("{out_name}_whole");
                n.outputs = vec![raw_name.clone()];
                self.push(n);
                let elem = g.tensors[out_t].elem;
                self.ty(&raw_name, elem, out_t, raw_rows, raw_cols);
                let sliced = self.slice(&raw_name, out_t, crop.0, crop.1);
                if let Some(s) = self.nodes.last_mut() {
                    s.outputs = vec![out_name.clone()];
                }
                self.types.retain(|(n, _)| n != &sliced);
                self.made_by.insert(out_name.clone(), self.nodes.len() - 1);
            }
        }
        let elem = g.tensors[out_t].elem;
        self.ty(&out_name, elem, out_t, rows.1 - rows.0, cols.1 - cols.0);
        self.blocks.entry((out_t, r.band)).or_default().push(Block {
            rows,
            cols,
            name: out_name,
        });
        Ok(())
    }

    /// Adjusts a tile's attributes; for outputs that need a crop returns the raw output's
    /// rows, cols, and the crop (rows, cols) inside it.
    #[allow(clippy::type_complexity)]
    fn shape_node(
        &mut self,
        n: &mut Node,
        r: &Run,
    ) -> Result<Option<(i64, i64, ((i64, i64), (i64, i64)))>, String> {
        let op = &self.g.ops[r.op];
        let Some(first) = op.inputs.first() else {
            return Ok(None);
        };
        let rd = &r.reads[0];
        match &first.map {
            Map::Window(_) => {
                n.attributes.retain(|a| a.name != "auto_pad");
                set_attr(n, ints_attr("pads", &rd.pads));
                if n.attr("ceil_mode").is_some() {
                    set_attr(n, a_int("ceil_mode", 0));
                }
                Ok(None)
            }
            Map::Transposed(ax) => {
                set_attr(n, ints_attr("pads", &[0, 0, 0, 0]));
                let span = |a: usize| (ax[a].kernel - 1) * ax[a].dilation + 1;
                let rows = (rd.rows.1 - rd.rows.0 - 1) * ax[0].stride + span(0);
                let cols = (rd.cols.1 - rd.cols.0 - 1) * ax[1].stride + span(1);
                let r0 = rd.rows.0 * ax[0].stride - ax[0].pad_begin;
                let c0 = rd.cols.0 * ax[1].stride - ax[1].pad_begin;
                Ok(Some((
                    rows,
                    cols,
                    (
                        (r.rows.0 - r0, r.rows.1 - r0),
                        (r.cols.0 - c0, r.cols.1 - c0),
                    ),
                )))
            }
            Map::Upsample(rs) => {
                let scales = self.f32_const(&[1.0, 1.0, rs[0].scale as f32, rs[1].scale as f32]);
                let roi = match n.inputs.get(1).filter(|s| !s.is_empty()) {
                    Some(r) => r.clone(),
                    None if self.opset >= 13 => String::new(),
                    None => self.f32_const(&[]),
                };
                n.inputs.truncate(1);
                n.inputs.push(roi);
                n.inputs.push(scales);
                let rows = (rd.rows.1 - rd.rows.0) * rs[0].scale;
                let cols = (rd.cols.1 - rd.cols.0) * rs[1].scale;
                let (r0, c0) = (rd.rows.0 * rs[0].scale, rd.cols.0 * rs[1].scale);
                Ok(Some((
                    rows,
                    cols,
                    (
                        (r.rows.0 - r0, r.rows.1 - r0),
                        (r.cols.0 - c0, r.cols.1 - c0),
                    ),
                )))
            }
            _ => Ok(None),
        }
    }

    fn f32_const(&mut self, v: &[f32]) -> String {
        let name = format!(
            "__tile_f32_{}",
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("_")
        );
        let mut t = TensorProto::new();
        t.name = name.clone();
        t.data_type = DataType::Float as i32;
        t.dims = vec![v.len() as i64];
        t.float_data = v.to_vec();
        self.inits.insert(name.clone(), t);
        name
    }

    /// Reassembles every tensor read after the segment under its own name.
    fn finish(&mut self, seg: &SegPlan) -> Result<(), String> {
        let g = self.g;
        let bands = seg.cfg.bands.max(1);
        let escaping: Vec<TId> = seg
            .ops
            .iter()
            .flat_map(|&x| g.ops[x].outputs.iter().copied())
            .filter(|&t| {
                g.tensors[t].graph_output
                    || g.tensors[t].consumers.iter().any(|c| !seg.ops.contains(c))
            })
            .collect();
        for t in escaping {
            let ten = &g.tensors[t];
            let mut band_parts = Vec::new();
            for b in 0..bands {
                let cols = (
                    ten.w * b as i64 / bands as i64,
                    ten.w * (b as i64 + 1) / bands as i64,
                );
                if cols.1 <= cols.0 {
                    continue;
                }
                band_parts.push(self.region(t, b, (0, ten.h), cols)?);
            }
            let name = ten.name.clone();
            if band_parts.len() == 1 {
                let only = band_parts.remove(0);
                let idx = *self
                    .made_by
                    .get(&only)
                    .ok_or_else(|| format!("'{name}' has no stripes"))?;
                // The only piece is made here: give it the tensor's own name.
                for o in self.nodes[idx].outputs.iter_mut().filter(|o| **o == only) {
                    *o = name.clone();
                }
                for n in &mut self.nodes {
                    for i in n.inputs.iter_mut().filter(|i| **i == only) {
                        *i = name.clone();
                    }
                }
                self.types.retain(|(n, _)| n != &only);
            } else {
                self.concat(band_parts, 3, &name, t, ten.h, ten.w);
                self.types.pop();
            }
        }
        Ok(())
    }
}
