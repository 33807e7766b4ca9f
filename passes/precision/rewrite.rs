//! The graph rewrite of the mixed-precision pass: BatchNorm folding, and emitting each
//! operator at its assigned precision in the form onnxruntime's CPU kernels run fast:
//!
//! * Int8: QDQ node units (DQ(x) + DQ(w, per channel) [+ DQ(int32 bias)] → op → Q → DQ),
//!   which onnxruntime fuses to QLinearConv / QLinearMatMul / QGemm. One Q per tensor, one
//!   DQ per consuming node unit (a shared DQ blocks the fusion).
//! * Int4: MatMul/Gemm → `com.microsoft.MatMulNBits`; Conv → packed int4 per-channel weight
//!   decoded by standard ops that onnxruntime constant-folds (see
//!   `Rewriter::emit_int4_conv_weight`), in front of the float Conv.
//! * Fp16: weight stored as fp16, Cast back to float in front of the op.

use super::candidate::DecodedSite;
use super::candidates::{candidate_node, candidates, constant_f32, tensor_f32, OpCandidate};
use super::decoded_weights::take;
use super::quantize::{
    activation_qparams, channel_view, int4_packs_axis0, quantize_bias_int32, quantize_matmul_nbits,
    quantize_per_channel, scale_dims, to_kn, NBITS_BLOCK,
};
use super::{Assignment, NodeKey, Precision, Ranges};
use crate::opset::upgrade_default_opset;
use optimize_ir::error::{Error, Result};
use optimize_ir::ir::build::{
    a_int, add_initializer, f32_tensor, i64_tensor, node, prune_values, raw_tensor, relink_after,
    remove_dead_constants, set_type_like, used_names, Namer,
};
use optimize_ir::ir::tensor::storage_bytes;
use optimize_ir::ir::{DataType, Graph, Model, Node, ValueType};
use petgraph::stable_graph::NodeIndex;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap, HashSet};

// ------------------------------------------------------------------ small builders

// ------------------------------------------------------------------ the rewrite

/// What the rewrite did to one operator.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeRewrite {
    pub key: NodeKey,
    pub node_name: String,
    pub op: String,
    pub precision: Precision,
    /// Stored bytes of the op's weight (and bias) before, measured on the tensors. A weight
    /// shared by several ops is counted at the first of them only.
    pub bytes_before: u64,
    /// Stored bytes of the tensors emitted for it (weights, bias, scales, zero points).
    pub bytes_after: u64,
}

impl NodeRewrite {
    fn of(c: &OpCandidate, precision: Precision, bytes_before: u64, bytes_after: u64) -> Self {
        NodeRewrite {
            key: c.key.clone(),
            node_name: c.node_name.clone(),
            op: c.op.clone(),
            precision,
            bytes_before,
            bytes_after,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RewriteStats {
    pub nodes: Vec<NodeRewrite>,
    pub inserted_nodes: usize,
    pub opset_changes: Vec<String>,
    /// Glue ops whose output [`super::int8_glue`] quantized (speed objectives only).
    pub int8_glue_ops: usize,
}

/// The uint8 quantization of one activation tensor: its Q output and parameters.
#[derive(Clone)]
struct QTensor {
    q: String,
    scale: String,
    zp: String,
    scale_value: f32,
}

struct Rewriter<'a> {
    ranges: &'a Ranges,
    /// The int8 glue's form: an int8 input that a move produced takes the parameters of the
    /// move's input ([`super::int8_glue::moved_from`]), and an int8 output read only by a
    /// Relu takes the Relu output's ([`super::int8_glue::relu_output`]).
    glue_params: bool,
    namer: Namer,
    /// Quantized activation tensors by float name.
    quant: HashMap<String, QTensor>,
    /// Nodes this rewrite added (swept if they end up unused).
    added: Vec<NodeIndex>,
    /// Constants replaced (removed at the end if nobody reads them).
    replaced: BTreeSet<String>,
    /// Emitted weight tensors per (weight, precision): reused by ops sharing a weight.
    emitted: HashMap<(String, Precision), Vec<String>>,
    /// Tensors already counted in some node's bytes before / after (a shared tensor
    /// counts at its first op only).
    counted_before: HashSet<String>,
    counted_after: HashSet<String>,
}

impl Rewriter<'_> {
    fn add(&mut self, g: &mut Graph, n: Node) {
        let i = g.add_node(n);
        self.added.push(i);
    }

    fn range_qparams(&self, t: &str) -> Result<(f32, u8)> {
        let r = self.ranges.get(t).ok_or_else(|| {
            Error::Internal(format!(
                "no calibrated range for tensor '{t}', which an int8 operator needs"
            ))
        })?;
        Ok(activation_qparams(*r))
    }

    fn qparam_inits(&mut self, g: &mut Graph, base: &str, scale: f32, zp: u8) -> (String, String) {
        let s = self.namer.fresh(&format!("{base}__scale"));
        let z = self.namer.fresh(&format!("{base}__zp"));
        add_initializer(g, f32_tensor(&s, &[], &[scale]));
        add_initializer(g, raw_tensor(&z, DataType::Uint8, &[], vec![zp]));
        (s, z)
    }

    /// Q of float tensor `x` (created once per tensor, right after its producer).
    fn quantize_input(&mut self, g: &mut Graph, x: &str) -> Result<QTensor> {
        if let Some(q) = self.quant.get(x) {
            return Ok(q.clone());
        }
        let source = if self.glue_params {
            super::int8_glue::moved_from(g, x, self.ranges)
        } else {
            x
        };
        let (scale, zp) = self.range_qparams(source)?;
        let (s, z) = self.qparam_inits(g, x, scale, zp);
        let q = self.namer.fresh(&format!("{x}__q"));
        let nn = self.namer.fresh(&format!("{x}__quantize"));
        self.add(g, node(&nn, "QuantizeLinear", &[x, &s, &z], &[&q], vec![]));
        set_type_like(g, &q, x, DataType::Uint8);
        let qt = QTensor {
            q,
            scale: s,
            zp: z,
            scale_value: scale,
        };
        self.quant.insert(x.to_string(), qt.clone());
        Ok(qt)
    }

    /// A DQ of `x`'s quantized form for one consumer (`key`); returns its output name.
    fn dq_for(&mut self, g: &mut Graph, x: &str, qt: &QTensor, key: &str) -> String {
        let out = self.namer.fresh(&format!("{x}__dq_for_{key}"));
        let nn = self.namer.fresh(&format!("{out}__node"));
        self.add(
            g,
            node(
                &nn,
                "DequantizeLinear",
                &[&qt.q, &qt.scale, &qt.zp],
                &[&out],
                vec![],
            ),
        );
        set_type_like(g, &out, x, DataType::Float);
        out
    }

    /// Int4 Conv weight: per-output-channel symmetric int4, stored as uint8 `[ceil(M/2), ...]`
    /// with output channel `o` in the low nibble and `o + ceil(M/2)` in the high nibble (as
    /// `v + 8`), decoded by standard ops (Cast, Div, Mod, Concat, [Slice], Cast, Sub, Mul).
    /// Every input of that chain is constant, so onnxruntime folds it into a float weight
    /// when the session starts and the Conv runs with a prepacked weight. (A DequantizeLinear
    /// would not be folded: onnxruntime keeps DQ nodes for its QDQ fusions, and the Conv
    /// then decodes the weight and skips prepacking on every run: measured 1.4x slower on
    /// det.) Returns `[packed, scales, decoded float weight]`.
    fn emit_int4_conv_weight(
        &mut self,
        g: &mut Graph,
        key: &str,
        w: &[f32],
        wshape: &[usize],
    ) -> Result<Vec<String>> {
        let q = quantize_per_channel(w, wshape, 0, 4);
        let m = wshape.first().copied().unwrap_or(0);
        let half = m.div_ceil(2);
        let inner = w.len() / m.max(1);
        let packed: Vec<u8> = (0..half * inner)
            .map(|i| {
                let nib = |j: usize| q.values.get(j).map_or(8u8, |&v| (v as i16 + 8) as u8);
                let lo = nib(i);
                let hi = if i + half * inner < m * inner {
                    nib(i + half * inner)
                } else {
                    8
                };
                (lo & 0x0F) | ((hi & 0x0F) << 4)
            })
            .collect();
        let mut pdims: Vec<i64> = wshape.iter().map(|&d| d as i64).collect();
        let wdims = pdims.clone();
        pdims[0] = half as i64;
        let mut sdims = vec![1i64; wdims.len()];
        sdims[0] = m as i64;
        let wq = self.namer.fresh(&format!("{key}__w_i4"));
        let ws = self.namer.fresh(&format!("{key}__w_scale"));
        add_initializer(g, raw_tensor(&wq, DataType::Uint8, &pdims, packed));
        add_initializer(g, f32_tensor(&ws, &sdims, &q.scales));
        // Constants shared by every int4 Conv of the model.
        let shared_key = (String::new(), Precision::Int4);
        let shared = match self.emitted.get(&shared_key) {
            Some(v) => v.clone(),
            None => {
                let c16 = self.namer.fresh("int4__sixteen");
                let c8 = self.namer.fresh("int4__eight");
                add_initializer(
                    g,
                    raw_tensor(&c16, DataType::Int32, &[], 16i32.to_le_bytes().to_vec()),
                );
                add_initializer(g, f32_tensor(&c8, &[], &[8.0]));
                let v = vec![c16, c8];
                self.emitted.insert(shared_key, v.clone());
                v
            }
        };
        let t = |me: &mut Self, s: &str| me.namer.fresh(&format!("{key}__w_i4_{s}"));
        let (a, hi, lo, cat) = (t(self, "i32"), t(self, "hi"), t(self, "lo"), t(self, "cat"));
        let (f, fs, out) = (t(self, "f"), t(self, "centered"), t(self, "decoded"));
        let mut pdims_cat = pdims.clone();
        pdims_cat[0] = 2 * half as i64;
        let int = |dims: &[i64]| ValueType::tensor(DataType::Int32, dims);
        let nn = |me: &mut Self, s: &str| me.namer.fresh(&format!("{key}__w_i4_{s}_node"));
        let n1 = nn(self, "cast");
        self.add(g, node(&n1, "Cast", &[&wq], &[&a], vec![a_int("to", 6)]));
        g.set_value_type(&a, int(&pdims));
        let n2 = nn(self, "div");
        self.add(g, node(&n2, "Div", &[&a, &shared[0]], &[&hi], vec![]));
        g.set_value_type(&hi, int(&pdims));
        let n3 = nn(self, "mod");
        self.add(g, node(&n3, "Mod", &[&a, &shared[0]], &[&lo], vec![]));
        g.set_value_type(&lo, int(&pdims));
        let n4 = nn(self, "concat");
        self.add(
            g,
            node(&n4, "Concat", &[&lo, &hi], &[&cat], vec![a_int("axis", 0)]),
        );
        g.set_value_type(&cat, int(&pdims_cat));
        let mut whole = cat.clone();
        if 2 * half != m {
            let (st, en, ax) = (t(self, "starts"), t(self, "ends"), t(self, "axes"));
            add_initializer(g, i64_tensor(&st, &[0]));
            add_initializer(g, i64_tensor(&en, &[m as i64]));
            add_initializer(g, i64_tensor(&ax, &[0]));
            whole = t(self, "sliced");
            let n5 = nn(self, "slice");
            self.add(
                g,
                node(&n5, "Slice", &[&cat, &st, &en, &ax], &[&whole], vec![]),
            );
            g.set_value_type(&whole, int(&wdims));
        }
        let n6 = nn(self, "tofloat");
        self.add(g, node(&n6, "Cast", &[&whole], &[&f], vec![a_int("to", 1)]));
        g.set_value_type(&f, ValueType::tensor(DataType::Float, &wdims));
        let n7 = nn(self, "sub");
        self.add(g, node(&n7, "Sub", &[&f, &shared[1]], &[&fs], vec![]));
        g.set_value_type(&fs, ValueType::tensor(DataType::Float, &wdims));
        let n8 = nn(self, "scale");
        self.add(g, node(&n8, "Mul", &[&fs, &ws], &[&out], vec![]));
        g.set_value_type(&out, ValueType::tensor(DataType::Float, &wdims));
        Ok(vec![wq, ws, out])
    }

    fn bytes_of(&mut self, g: &Graph, names: &[String], after: bool) -> u64 {
        let counted = if after {
            &mut self.counted_after
        } else {
            &mut self.counted_before
        };
        let mut b = 0;
        for n in names {
            if !counted.insert(n.clone()) {
                continue;
            }
            if let Some(t) = g.constant_tensor(n) {
                b += storage_bytes(t);
            }
        }
        b
    }
}

fn ensure_opset(model: &mut Model, domain: &str, version: i64) {
    if model.opset(domain).is_none() {
        model.opsets.push((domain.to_string(), version));
    }
}

/// Rewrites every operator of `assignment` (keys from [`candidates`]) at its precision;
/// operators not listed or at Fp32 stay as they are. Int8 raises the default opset to 13
/// first; Int4 adds the `com.microsoft` opset import. `ranges` must cover the activation
/// inputs and outputs of every Int8 operator (a missing one is an internal error naming
/// the tensor).
pub fn apply(model: &mut Model, assignment: &Assignment, ranges: &Ranges) -> Result<RewriteStats> {
    apply_with(model, assignment, ranges, false)
}

/// [`apply`], and with `int8_glue` also the [`super::int8_glue`] pass after it (the form
/// the speed objectives write and time).
pub fn apply_with(
    model: &mut Model,
    assignment: &Assignment,
    ranges: &Ranges,
    int8_glue: bool,
) -> Result<RewriteStats> {
    let mut stats = RewriteStats::default();
    check_assignment(model, assignment)?;
    // Int8 needs opset 13 (per-axis QDQ); the int4 and int8w decoding chains need Mod
    // (opset 10) and the attribute-typed Cast (opset 6): one upgrade serves all.
    if assignment.values().any(|p| {
        matches!(
            p,
            Precision::Int8 | Precision::Int4 | Precision::Int8W | Precision::Int8Dyn
        )
    }) {
        stats.opset_changes = upgrade_default_opset(model, 13)?;
    }
    if assignment.values().any(|p| *p == Precision::Int4) {
        ensure_opset(model, "com.microsoft", 1);
    }
    let order: Vec<OpCandidate> = candidates(model)
        .into_iter()
        .filter(|c| {
            assignment
                .get(&c.key)
                .is_some_and(|p| *p != Precision::Fp32)
        })
        .collect();
    let mut rw = Rewriter {
        ranges,
        glue_params: int8_glue,
        namer: Namer::new(&model.graph),
        quant: HashMap::new(),
        added: Vec::new(),
        replaced: BTreeSet::new(),
        emitted: HashMap::new(),
        counted_before: HashSet::new(),
        counted_after: HashSet::new(),
    };
    let g = &mut model.graph;
    for c in &order {
        let node = rw.rewrite_op(g, c, assignment[&c.key])?;
        stats.nodes.push(node);
    }
    relink_after(g, "precision rewrite")?;
    rw.sweep(g);
    relink_after(g, "precision rewrite")?;
    stats.inserted_nodes = rw.added.len();
    if int8_glue && assignment.values().any(|p| *p == Precision::Int8) {
        let before = g.node_count();
        stats.int8_glue_ops = super::int8_glue::extend(g, ranges, &mut rw.namer)?;
        stats.inserted_nodes += g.node_count().saturating_sub(before);
    }
    Ok(stats)
}

/// Every assigned operator is a candidate offered at its precision (an internal error
/// otherwise: the assignment comes from the pass, not the user).
fn check_assignment(model: &Model, assignment: &Assignment) -> Result<()> {
    let cands: HashMap<NodeKey, OpCandidate> = candidates(model)
        .into_iter()
        .map(|c| (c.key.clone(), c))
        .collect();
    for (k, p) in assignment {
        let c = cands.get(k).ok_or_else(|| {
            Error::Internal(format!(
                "precision assigned to '{k}', which is not a candidate"
            ))
        })?;
        if c.bytes_at(*p).is_none() {
            return Err(Error::Internal(format!(
                "{} is not offered for {} '{}'",
                p.name(),
                c.op,
                c.node_name
            )));
        }
    }
    Ok(())
}

/// One operator being rewritten: its candidate, its node, its float weight, and the
/// constants it reads once rewritten (its bytes after).
struct OpRewrite<'c> {
    c: &'c OpCandidate,
    idx: NodeIndex,
    w: Vec<f32>,
    wshape: Vec<usize>,
    wdims: Vec<i64>,
    key: String,
    after_names: Vec<String>,
}

impl Rewriter<'_> {
    /// Rewrites operator `c` at precision `p` and measures its stored bytes before and
    /// after.
    fn rewrite_op(&mut self, g: &mut Graph, c: &OpCandidate, p: Precision) -> Result<NodeRewrite> {
        if let Some(site) = &c.decoded {
            return self.rewrite_decoded_weight(g, c, site, p);
        }
        let idx = candidate_node(g, &c.key)
            .ok_or_else(|| Error::Internal(format!("operator '{}' vanished", c.key)))?;
        let mut before_names = vec![c.weight.clone()];
        before_names.extend(c.bias.clone());
        let bytes_before = self.bytes_of(g, &before_names, false);
        let (w, wshape) = constant_f32(g, &c.weight).ok_or_else(|| {
            Error::Internal(format!(
                "weight '{}' of '{}' is not constant",
                c.weight, c.key
            ))
        })?;
        let wdims: Vec<i64> = wshape.iter().map(|&d| d as i64).collect();
        let mut op = OpRewrite {
            c,
            idx,
            w,
            wshape,
            wdims,
            key: c.key.clone(),
            after_names: Vec::new(),
        };
        self.replaced.insert(c.weight.clone());
        match p {
            Precision::Fp32 => {}
            Precision::Fp16 => self.fp16(g, &mut op),
            Precision::Int8 => self.int8(g, &mut op)?,
            Precision::Int8W => self.int8_weight_only(g, &mut op),
            Precision::Int8Dyn => self.int8_dynamic(g, &mut op),
            Precision::Int4 if int4_packs_axis0(c.format_op()) => self.int4_conv(g, &mut op)?,
            Precision::Int4 => self.matmul_nbits(g, &mut op)?,
        }
        let bytes_after = self.bytes_of(g, &op.after_names, true);
        Ok(NodeRewrite::of(c, p, bytes_before, bytes_after))
    }

    /// A weight decoded under its own name: taken out of where it is stored (an
    /// initializer, a Constant node, a body's initializers) and emitted at `p` in the main
    /// graph, the decoding's last output named as the weight (see `decoded_weights`).
    fn rewrite_decoded_weight(
        &mut self,
        g: &mut Graph,
        c: &OpCandidate,
        site: &DecodedSite,
        p: Precision,
    ) -> Result<NodeRewrite> {
        let lost = || Error::Internal(format!("decoded weight '{}' vanished", c.weight));
        let tensor = take(g, site, &c.weight).ok_or_else(lost)?;
        let bytes_before = storage_bytes(&tensor);
        let (w, _) = tensor_f32(&tensor).ok_or_else(lost)?;
        let mut op = OpRewrite {
            c,
            idx: NodeIndex::end(),
            w,
            wshape: c.weight_shape.clone(),
            wdims: c.weight_shape.iter().map(|&d| d as i64).collect(),
            key: c.weight.clone(),
            after_names: Vec::new(),
        };
        match p {
            Precision::Fp16 => self.fp16(g, &mut op),
            Precision::Int8W => self.int8_weight_only(g, &mut op),
            Precision::Int4 => self.int4_conv(g, &mut op)?,
            Precision::Fp32 | Precision::Int8 | Precision::Int8Dyn => {
                return Err(Error::Internal(format!(
                    "{} is not a format of decoded weight '{}'",
                    p.name(),
                    c.weight
                )))
            }
        }
        let bytes_after = self.bytes_of(g, &op.after_names, true);
        Ok(NodeRewrite::of(c, p, bytes_before, bytes_after))
    }

    /// Makes the operator read the `decoded` weight: at its weight input, or, for a
    /// decoded weight, by naming the decoding's last output (or a Reshape of it back to
    /// the stored dims) as the weight.
    fn attach(&mut self, g: &mut Graph, op: &mut OpRewrite, decoded: &str) {
        let c = op.c;
        let Some(site) = &c.decoded else {
            g.ops[op.idx].inputs[c.weight_slot] = decoded.to_string();
            return;
        };
        if site.dims == op.wdims {
            let producer = self.added.iter().copied().find(|&i| {
                g.ops
                    .node_weight(i)
                    .is_some_and(|n| n.outputs.iter().any(|o| o == decoded))
            });
            if let Some(i) = producer {
                for o in g.ops[i].outputs.iter_mut().filter(|o| *o == decoded) {
                    *o = c.weight.clone();
                }
                g.values.remove(decoded);
            }
        } else {
            let dims = self.namer.fresh(&format!("{}__dims", c.weight));
            let raw = site.dims.iter().flat_map(|d| d.to_le_bytes()).collect();
            add_initializer(
                g,
                raw_tensor(&dims, DataType::Int64, &[site.dims.len() as i64], raw),
            );
            let nn = self.namer.fresh(&format!("{}__reshape", c.weight));
            self.add(
                g,
                node(&nn, "Reshape", &[decoded, &dims], &[&c.weight], vec![]),
            );
            op.after_names.push(dims);
        }
        g.set_value_type(&c.weight, ValueType::tensor(DataType::Float, &site.dims));
    }

    /// Fp16: the weight stored as fp16 (once per weight) and Cast back to float in front
    /// of the operator.
    fn fp16(&mut self, g: &mut Graph, op: &mut OpRewrite) {
        let (c, key, wdims) = (op.c, &op.key, &op.wdims);
        let ek = (c.weight.clone(), Precision::Fp16);
        let wh = match self.emitted.get(&ek) {
            Some(v) => v[0].clone(),
            None => {
                let wh = self.namer.fresh(&format!("{key}__w_fp16"));
                let raw =
                    op.w.iter()
                        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                        .collect();
                add_initializer(g, raw_tensor(&wh, DataType::Float16, wdims, raw));
                self.emitted.insert(ek, vec![wh.clone()]);
                wh
            }
        };
        let wf = self.namer.fresh(&format!("{key}__w_f32"));
        let nn = self.namer.fresh(&format!("{key}__w_cast"));
        self.add(g, node(&nn, "Cast", &[&wh], &[&wf], vec![a_int("to", 1)]));
        g.set_value_type(&wf, ValueType::tensor(DataType::Float, wdims));
        self.attach(g, op, &wf);
        op.after_names.push(wh);
        op.after_names.extend(c.bias.clone());
    }

    /// Int8: a QDQ node unit — DQ of the quantized activation, DQ of the per-channel
    /// weight, DQ of the int32 bias, and Q → DQ on the output.
    fn int8(&mut self, g: &mut Graph, op: &mut OpRewrite) -> Result<()> {
        let c = op.c;
        let key = op.key.clone();
        let x = c.activation_inputs[0].clone();
        let xq = self.quantize_input(g, &x)?;
        let x_dq = self.dq_for(g, &x, &xq, &key);
        let axis = c.channel_axis;
        let (wq, ws, wscales) = self.int8_weight(g, op);
        let w_dq = self.namer.fresh(&format!("{key}__w_dq"));
        let nn = self.namer.fresh(&format!("{key}__w_dequantize"));
        self.add(
            g,
            node(
                &nn,
                "DequantizeLinear",
                &[&wq, &ws],
                &[&w_dq],
                vec![a_int("axis", axis as i64)],
            ),
        );
        g.set_value_type(&w_dq, ValueType::tensor(DataType::Float, &op.wdims));
        op.after_names.extend([wq, ws]);
        let mut new_inputs = vec![x_dq, w_dq];
        if let Some(b) = &c.bias {
            let bd = self.int8_bias(g, op, b, xq.scale_value, &wscales)?;
            new_inputs.push(bd);
        }
        self.quantize_output(g, op, new_inputs)
    }

    /// The symmetric per-channel int8 weight and its scales (no zero point: it defaults
    /// to 0 of the int8 type), emitted once per weight.
    fn int8_weight(&mut self, g: &mut Graph, op: &OpRewrite) -> (String, String, Vec<f32>) {
        let key = &op.key;
        let ek = (op.c.weight.clone(), Precision::Int8);
        match self.emitted.get(&ek) {
            Some(v) => {
                let scales = constant_f32(g, &v[1]).map(|t| t.0).unwrap_or_default();
                (v[0].clone(), v[1].clone(), scales)
            }
            None => {
                let q = quantize_per_channel(&op.w, &op.wshape, op.c.channel_axis, 8);
                let ch = q.scales.len() as i64;
                let wq = self.namer.fresh(&format!("{key}__w_i8"));
                let ws = self.namer.fresh(&format!("{key}__w_scale"));
                let raw = q.values.iter().map(|&v| v as u8).collect();
                add_initializer(g, raw_tensor(&wq, DataType::Int8, &op.wdims, raw));
                add_initializer(g, f32_tensor(&ws, &[ch], &q.scales));
                self.emitted.insert(ek, vec![wq.clone(), ws.clone()]);
                (wq, ws, q.scales)
            }
        }
    }

    /// The int32 bias `b` (times Gemm's beta, which the node then drops) at scale
    /// input scale × weight scale, and its DQ; returns the DQ's output.
    fn int8_bias(
        &mut self,
        g: &mut Graph,
        op: &mut OpRewrite,
        b: &str,
        x_scale: f32,
        wscales: &[f32],
    ) -> Result<String> {
        let (c, idx, key) = (op.c, op.idx, op.key.clone());
        let (mut bv, _) = constant_f32(g, b)
            .ok_or_else(|| Error::Internal(format!("bias '{b}' of '{key}' is not constant")))?;
        if c.op == "Gemm" {
            let beta = g.ops[idx].attr_float("beta", 1.0);
            bv.iter_mut().for_each(|v| *v *= beta);
        }
        let bq = quantize_bias_int32(&bv, x_scale, wscales);
        let bscales: Vec<f32> = (0..bv.len())
            .map(|i| {
                x_scale
                    * if wscales.len() == 1 {
                        wscales[0]
                    } else {
                        wscales[i]
                    }
            })
            .collect();
        let n = bv.len() as i64;
        let bi = self.namer.fresh(&format!("{key}__b_i32"));
        let bs = self.namer.fresh(&format!("{key}__b_scale"));
        let bd = self.namer.fresh(&format!("{key}__b_dq"));
        let raw = bq.iter().flat_map(|v| v.to_le_bytes()).collect();
        add_initializer(g, raw_tensor(&bi, DataType::Int32, &[n], raw));
        add_initializer(g, f32_tensor(&bs, &[n], &bscales));
        let nn = self.namer.fresh(&format!("{key}__b_dequantize"));
        self.add(
            g,
            node(
                &nn,
                "DequantizeLinear",
                &[&bi, &bs],
                &[&bd],
                vec![a_int("axis", 0)],
            ),
        );
        g.set_value_type(&bd, ValueType::tensor(DataType::Float, &[n]));
        op.after_names.extend([bi, bs]);
        self.replaced.insert(b.to_string());
        if c.op == "Gemm" {
            let n = &mut g.ops[idx];
            n.attributes.retain(|a| a.name != "beta");
        }
        Ok(bd)
    }

    /// The operator reads `new_inputs`; its output goes op → y__f → Q → y__q → DQ → y, so
    /// float readers are unchanged and int8 readers find the Q.
    fn quantize_output(
        &mut self,
        g: &mut Graph,
        op: &OpRewrite,
        new_inputs: Vec<String>,
    ) -> Result<()> {
        let idx = op.idx;
        let y = op.key.clone();
        let source = if self.glue_params {
            super::int8_glue::relu_output(g, &y, self.ranges).unwrap_or(&y)
        } else {
            &y
        };
        let (scale, zp) = self.range_qparams(source)?;
        let yf = self.namer.fresh(&format!("{y}__f"));
        g.ops[idx].inputs = new_inputs;
        g.ops[idx].outputs[0] = yf.clone();
        set_type_like(g, &yf, &y, DataType::Float);
        let (s, z) = self.qparam_inits(g, &y, scale, zp);
        let q = self.namer.fresh(&format!("{y}__q"));
        let nq = self.namer.fresh(&format!("{y}__quantize"));
        self.add(
            g,
            node(&nq, "QuantizeLinear", &[&yf, &s, &z], &[&q], vec![]),
        );
        set_type_like(g, &q, &y, DataType::Uint8);
        let nd = self.namer.fresh(&format!("{y}__dequantize"));
        self.add(
            g,
            node(&nd, "DequantizeLinear", &[&q, &s, &z], &[&y], vec![]),
        );
        self.quant.insert(
            y.clone(),
            QTensor {
                q,
                scale: s,
                zp: z,
                scale_value: scale,
            },
        );
        Ok(())
    }

    /// Weight-only int8: the per-channel int8 weight and its scales (shaped to broadcast
    /// along the channel axis), decoded by `Cast → Mul` once per weight in front of the
    /// float operator. Both inputs of the chain are constants, so onnxruntime folds it
    /// when the session starts (like the int4 chain) and nothing runs per call.
    fn int8_weight_only(&mut self, g: &mut Graph, op: &mut OpRewrite) {
        let (c, key) = (op.c, op.key.clone());
        let ek = (c.weight.clone(), Precision::Int8W);
        let names = match self.emitted.get(&ek) {
            Some(v) => v.clone(),
            None => {
                // Per channel of the channel view (a recurrent weight: per direction and
                // gate row), the scales shaped to broadcast against the weight.
                let (view, axis) = channel_view(c.format_op(), &op.wshape, c.channel_axis);
                let q = quantize_per_channel(&op.w, &view, axis, 8);
                let sdims = scale_dims(c.format_op(), &op.wshape, c.channel_axis);
                let wq = self.namer.fresh(&format!("{key}__w_i8w"));
                let ws = self.namer.fresh(&format!("{key}__w_i8w_scale"));
                let raw = q.values.iter().map(|&v| v as u8).collect();
                add_initializer(g, raw_tensor(&wq, DataType::Int8, &op.wdims, raw));
                add_initializer(g, f32_tensor(&ws, &sdims, &q.scales));
                let (wf, wd) = (
                    self.namer.fresh(&format!("{key}__w_i8w_f")),
                    self.namer.fresh(&format!("{key}__w_i8w_decoded")),
                );
                let nc = self.namer.fresh(&format!("{key}__w_i8w_cast"));
                self.add(g, node(&nc, "Cast", &[&wq], &[&wf], vec![a_int("to", 1)]));
                g.set_value_type(&wf, ValueType::tensor(DataType::Float, &op.wdims));
                let nm = self.namer.fresh(&format!("{key}__w_i8w_scale_node"));
                self.add(g, node(&nm, "Mul", &[&wf, &ws], &[&wd], vec![]));
                g.set_value_type(&wd, ValueType::tensor(DataType::Float, &op.wdims));
                let v = vec![wq, ws, wd];
                self.emitted.insert(ek, v.clone());
                v
            }
        };
        self.attach(g, op, &names[2]);
        op.after_names.extend(names[..2].iter().cloned());
        op.after_names.extend(c.bias.clone());
    }

    /// Dynamic int8 MatMul: `DynamicQuantizeLinear(x)` → the operator as `MatMulInteger(xq,
    /// w_i8, x_zp)` (it keeps its node name) → `Cast` → `Mul` by `x_scale · w_scale` (per
    /// column). Each operator gets its own DynamicQuantizeLinear: onnxruntime fuses it into
    /// `DynamicQuantizeMatMul` only when nothing else reads it.
    fn int8_dynamic(&mut self, g: &mut Graph, op: &mut OpRewrite) {
        let (c, idx, y) = (op.c, op.idx, op.key.clone());
        let (wq, ws, wscales) = self.int8_weight(g, op);
        op.after_names.extend([wq.clone(), ws.clone()]);
        let x = c.activation_inputs[0].clone();
        let [xq, xs, xz, acc, accf, scales, nq, ncast, nscales, nscale] = [
            "xq",
            "xscale",
            "xzp",
            "acc",
            "acc_f",
            "scales",
            "quantize",
            "cast",
            "scales_mul",
            "scale",
        ]
        .map(|s| self.namer.fresh(&format!("{y}__dyn_{s}")));
        self.add(
            g,
            node(
                &nq,
                "DynamicQuantizeLinear",
                &[&x],
                &[&xq, &xs, &xz],
                vec![],
            ),
        );
        set_type_like(g, &xq, &x, DataType::Uint8);
        g.set_value_type(&xs, ValueType::tensor(DataType::Float, &[]));
        g.set_value_type(&xz, ValueType::tensor(DataType::Uint8, &[]));
        let n = &mut g.ops[idx];
        n.op_type = "MatMulInteger".into();
        n.inputs = vec![xq, wq, xz];
        n.outputs[0] = acc.clone();
        set_type_like(g, &acc, &y, DataType::Int32);
        self.add(
            g,
            node(&ncast, "Cast", &[&acc], &[&accf], vec![a_int("to", 1)]),
        );
        set_type_like(g, &accf, &y, DataType::Float);
        self.add(g, node(&nscales, "Mul", &[&xs, &ws], &[&scales], vec![]));
        let columns = wscales.len() as i64;
        g.set_value_type(&scales, ValueType::tensor(DataType::Float, &[columns]));
        self.add(g, node(&nscale, "Mul", &[&accf, &scales], &[&y], vec![]));
    }

    /// Int4 Conv (and Gather table): the packed weight and its decoding chain (once per
    /// weight) in front of the float operator.
    fn int4_conv(&mut self, g: &mut Graph, op: &mut OpRewrite) -> Result<()> {
        let ek = (op.c.weight.clone(), Precision::Int4);
        let names = match self.emitted.get(&ek) {
            Some(v) => v.clone(),
            None => {
                let v = self.emit_int4_conv_weight(g, &op.key, &op.w, &op.wshape)?;
                self.emitted.insert(ek, v.clone());
                v
            }
        };
        self.attach(g, op, &names[2]);
        op.after_names.extend(names[..2].iter().cloned());
        op.after_names.extend(op.c.bias.clone());
        Ok(())
    }

    /// Int4 MatMul/Gemm: the node becomes `com.microsoft.MatMulNBits` with block-wise
    /// packed weights; a Gemm bias (times beta) becomes a float Add after it.
    fn matmul_nbits(&mut self, g: &mut Graph, op: &mut OpRewrite) -> Result<()> {
        let (c, idx, key) = (op.c, op.idx, op.key.clone());
        let (k, n, kn) = to_kn(&op.w, &op.wshape, c.channel_axis);
        let q = quantize_matmul_nbits(&kn, k, n, NBITS_BLOCK);
        let kb = k.div_ceil(NBITS_BLOCK) as i64;
        let bn = self.namer.fresh(&format!("{key}__nb_w"));
        let sn = self.namer.fresh(&format!("{key}__nb_scales"));
        add_initializer(
            g,
            raw_tensor(
                &bn,
                DataType::Uint8,
                &[n as i64, kb, NBITS_BLOCK as i64 / 2],
                q.packed.clone(),
            ),
        );
        add_initializer(g, f32_tensor(&sn, &[q.scales.len() as i64], &q.scales));
        let a = c.activation_inputs[0].clone();
        let mut ins = vec![a, bn.clone(), sn.clone()];
        op.after_names.extend([bn, sn]);
        if let Some(z) = &q.zero_points {
            let zn = self.namer.fresh(&format!("{key}__nb_zp"));
            add_initializer(
                g,
                raw_tensor(&zn, DataType::Uint8, &[z.len() as i64], z.clone()),
            );
            ins.push(zn.clone());
            op.after_names.push(zn);
        }
        let y = key.clone();
        let node_ref = &g.ops[idx];
        let beta = node_ref.attr_float("beta", 1.0);
        let bias = c.bias.clone();
        let n_node = &mut g.ops[idx];
        n_node.op_type = "MatMulNBits".into();
        n_node.domain = "com.microsoft".into();
        n_node.inputs = ins;
        n_node.attributes = vec![
            a_int("K", k as i64),
            a_int("N", n as i64),
            a_int("bits", 4),
            a_int("block_size", NBITS_BLOCK as i64),
            a_int("accuracy_level", 4),
        ];
        if let Some(b) = bias {
            // Gemm bias (times beta) as a float Add after the MatMulNBits.
            let (mut bv, _) = constant_f32(g, &b)
                .ok_or_else(|| Error::Internal(format!("bias '{b}' of '{key}' is not constant")))?;
            bv.iter_mut().for_each(|v| *v *= beta);
            let bname = self.namer.fresh(&format!("{key}__nb_bias"));
            add_initializer(g, f32_tensor(&bname, &[bv.len() as i64], &bv));
            let mid = self.namer.fresh(&format!("{y}__nb_out"));
            g.ops[idx].outputs[0] = mid.clone();
            set_type_like(g, &mid, &y, DataType::Float);
            let nn = self.namer.fresh(&format!("{key}__nb_add_bias"));
            self.add(g, node(&nn, "Add", &[&mid, &bname], &[&y], vec![]));
            op.after_names.push(bname);
            self.replaced.insert(b);
        }
        Ok(())
    }

    /// Sweeps added nodes nobody reads (e.g. the float DQ of an output whose readers are
    /// all int8 ops with their own DQ), then the replaced constants, then the Q
    /// parameters of removed Q/DQ nodes, then value types of names no longer in the graph.
    fn sweep(&mut self, g: &mut Graph) {
        loop {
            let used = used_names(g);
            let dead: Vec<NodeIndex> = self
                .added
                .iter()
                .copied()
                .filter(|&i| {
                    g.ops.node_weight(i).is_some_and(|n| {
                        n.outputs.iter().all(|o| o.is_empty() || !used.contains(o))
                    })
                })
                .collect();
            if dead.is_empty() {
                break;
            }
            for i in dead {
                g.remove_node(i);
            }
            self.added.retain(|&i| g.ops.node_weight(i).is_some());
        }
        remove_dead_constants(g, &self.replaced);
        // Q parameters of removed Q/DQ nodes.
        let used = used_names(g);
        let stale: Vec<String> = self
            .quant
            .values()
            .flat_map(|q| [q.scale.clone(), q.zp.clone()])
            .filter(|n| !used.contains(n))
            .collect();
        for s in stale {
            g.initializers.shift_remove(&s);
        }
        prune_values(g);
    }
}
