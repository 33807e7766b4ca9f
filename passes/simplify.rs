//! Lossless (up to float rounding) graph simplifications, a pass the precision pass requires
//! (it runs before the precision choice),
//! because they decide how fast onnxruntime runs the result whatever precision each
//! operator gets. Measured on PP-OCRv4 det with onnxruntime's profiler: about a third of the
//! fp32 time went to elementwise chains between convolutions, which onnxruntime neither
//! fuses nor quantizes (in QDQ form they also cost a DQ and a Q each):
//!
//! * `Conv → Mul(const) → Add(const)` (the "learnable affine" of PP-LCNetV3) folds into the
//!   Conv's weight and bias, and so do `ConvTranspose → Add(bias) → BatchNormalization`
//!   (a detector head's upsampling) into the ConvTranspose's ([`fold_conv_affine`]).
//! * `Add(x, 3) → Clip(0, 6) → Mul(x, ·) → Div(·, 6)` (HardSwish written out) becomes
//!   `HardSigmoid(x; 1/6, 1/2) → Mul(x, ·)`: two kernels instead of four, and no opset
//!   change (HardSwish needs opset 14) ([`fuse_hardswish`]).
//! * `Mul(x, s) → Add(·, b)` with constants feeding only 1×1, unpadded, ungrouped Convs folds
//!   into those Convs: `W' = W·s`, `B' = B + Σ W·b` ([`fold_affine_into_conv`]). Padded or
//!   grouped Convs are left alone: the padding zeros would no longer be zeros of the affine's
//!   output.

use crate::pass_manager::{retype_if, Pass, PassChanges, PassResult};
use onnx_protobuf::{attribute_proto::AttributeType, AttributeProto};
use optimize_ir::error::Result;
use optimize_ir::ir::affine::{
    fold_output_affine, fold_output_affine_transposed, inference_batchnorm,
};
use optimize_ir::ir::attr::AttrExt;
use optimize_ir::ir::build::{add_initializer, f32_tensor, node, relink_after, Namer};
use optimize_ir::ir::tensor::constant_f32;
use optimize_ir::ir::{Graph, Model, Node};
use optimize_ir::shape::current_bindings;
use petgraph::stable_graph::NodeIndex;
use serde::Serialize;

/// How many patterns each simplification rewrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SimplifyStats {
    pub conv_affine: usize,
    pub hardswish: usize,
    pub affine_into_conv: usize,
}

impl SimplifyStats {
    pub fn total(&self) -> usize {
        self.conv_affine + self.hardswish + self.affine_into_conv
    }
}

/// The pass's name.
pub const PASS_NAME: &str = "simplify";

/// Runs [`simplify`], then retypes the graph when something changed.
pub struct Simplify;

impl Pass for Simplify {
    fn name(&self) -> &'static str {
        PASS_NAME
    }

    fn run(&self, model: &mut Model) -> Result<PassResult> {
        let bindings = current_bindings(model);
        let stats = simplify(model)?;
        retype_if(stats.total() > 0, model, &bindings, "simplification")?;
        let mut changes = PassChanges::default();
        changes.add("conv_affine", stats.conv_affine as u64);
        changes.add("hardswish", stats.hardswish as u64);
        changes.add("affine_into_conv", stats.affine_into_conv as u64);
        Ok(changes.into())
    }
}

/// Runs every simplification; returns what changed. Shape inference is up to the caller.
pub fn simplify(model: &mut Model) -> Result<SimplifyStats> {
    let conv_affine = fold_conv_affine(&mut model.graph)?;
    let hardswish = fuse_hardswish(&mut model.graph)?;
    let affine_into_conv = fold_affine_into_conv(&mut model.graph)?;
    Ok(SimplifyStats {
        conv_affine,
        hardswish,
        affine_into_conv,
    })
}

fn add_init(g: &mut Graph, name: &str, dims: &[i64], v: &[f32]) {
    add_initializer(g, f32_tensor(name, dims, v));
}

fn a_float(name: &str, v: f32) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::FLOAT.into();
    a.f = v;
    a
}

/// For a binary `n` with one constant float input: (the other input, the constant's values
/// and dims).
fn const_operand(g: &Graph, n: &Node) -> Option<(String, Vec<f32>, Vec<usize>)> {
    if n.inputs.len() != 2 || n.outputs.len() != 1 {
        return None;
    }
    for k in 0..2 {
        if let Some((v, d)) = constant_f32(g, &n.inputs[k]) {
            if constant_f32(g, &n.inputs[1 - k]).is_none() {
                return Some((n.inputs[1 - k].clone(), v, d));
            }
        }
    }
    None
}

/// Values of a constant broadcast against a tensor of rank `rank` along axis 1 only, as one
/// value per channel (`channels` of them); `None` when it broadcasts along any other axis.
fn per_channel(v: &[f32], dims: &[usize], rank: usize, channels: usize) -> Option<Vec<f32>> {
    if v.len() == 1 && dims.len() <= rank {
        return Some(vec![v[0]; channels]);
    }
    if dims.len() > rank || rank < 2 || v.len() != channels {
        return None;
    }
    // Right-aligned: the channel axis of the constant is `dims.len() - (rank - 1)`.
    let axis = dims.len().checked_sub(rank - 1)?;
    let ok = dims
        .iter()
        .enumerate()
        .all(|(i, &d)| if i == axis { d == channels } else { d == 1 });
    ok.then(|| v.to_vec())
}

/// A Conv with constant weight: (weight values, weight dims, bias values).
fn conv_params(g: &Graph, conv: &Node) -> Option<(Vec<f32>, Vec<usize>, Vec<f32>)> {
    if !conv.is("Conv") || conv.outputs.len() != 1 || conv.inputs.len() < 2 {
        return None;
    }
    let (w, wd) = constant_f32(g, &conv.inputs[1])?;
    let m = *wd.first()?;
    let b = bias_of(g, conv, m)?;
    Some((w, wd, b))
}

/// The constant bias of a convolution with `m` output channels (zeros when it has none).
fn bias_of(g: &Graph, conv: &Node, m: usize) -> Option<Vec<f32>> {
    match conv.inputs.get(2).filter(|b| !b.is_empty()) {
        Some(b) => constant_f32(g, b).map(|(v, _)| v).filter(|v| v.len() == m),
        None => Some(vec![0.0; m]),
    }
}

/// A Conv or ConvTranspose with constant weight, which a per-channel affine after it folds
/// into.
struct AffineProducer {
    w: Vec<f32>,
    wd: Vec<usize>,
    b: Vec<f32>,
    /// `Some(group)` for a ConvTranspose, whose weight is laid out `[cin, cout/group, …]`.
    transposed_group: Option<usize>,
}

impl AffineProducer {
    fn of(g: &Graph, n: &Node) -> Option<Self> {
        let (w, wd, b, transposed_group) = match conv_params(g, n) {
            Some((w, wd, b)) => (w, wd, b, None),
            None if n.is("ConvTranspose") && n.outputs.len() == 1 && n.inputs.len() >= 2 => {
                let (w, wd) = constant_f32(g, &n.inputs[1])?;
                let group = usize::try_from(n.attr_int("group", 1)).ok()?.max(1);
                let b = bias_of(g, n, wd.get(1)? * group)?;
                (w, wd, b, Some(group))
            }
            None => return None,
        };
        Some(AffineProducer {
            w,
            wd,
            b,
            transposed_group,
        })
    }

    fn fold(&mut self, k: &[f64], shift: &[f64]) {
        match self.transposed_group {
            None => fold_output_affine(&mut self.w, &mut self.b, k, shift),
            Some(group) => {
                let cin = self.wd.first().copied().unwrap_or(0);
                fold_output_affine_transposed(&mut self.w, &mut self.b, k, shift, cin, group)
            }
        }
    }
}

/// The per-channel affine `(k, shift)` that `next` applies to `y`, a tensor of rank `rank`
/// with `m` channels: a Mul or Add by a per-channel or scalar constant, or an inference
/// BatchNormalization with constant parameters.
fn channel_affine(
    g: &Graph,
    next: &Node,
    y: &str,
    rank: usize,
    m: usize,
) -> Option<(Vec<f64>, Vec<f64>)> {
    if next.is("BatchNormalization") {
        return inference_batchnorm(g, next, m).filter(|_| next.inputs[0] == y);
    }
    if !(next.is("Mul") || next.is("Add")) {
        return None;
    }
    let (other, v, d) = const_operand(g, next)?;
    let c = (other == y)
        .then(|| per_channel(&v, &d, rank, m))
        .flatten()?;
    let c: Vec<f64> = c.iter().map(|&v| v as f64).collect();
    Some(if next.is("Mul") {
        (c, vec![0.0; m])
    } else {
        (vec![1.0; m], c)
    })
}

/// Points `conv` at new weight/bias initializers.
fn set_conv_params(
    g: &mut Graph,
    namer: &mut Namer,
    conv_idx: NodeIndex,
    w: &[f32],
    wd: &[usize],
    b: &[f32],
) {
    let base = g.ops[conv_idx].outputs[0].clone();
    let wn = namer.fresh(&format!("{base}__simplified_w"));
    let bn = namer.fresh(&format!("{base}__simplified_b"));
    let wdims: Vec<i64> = wd.iter().map(|&d| d as i64).collect();
    add_init(g, &wn, &wdims, w);
    add_init(g, &bn, &[b.len() as i64], b);
    let c = &mut g.ops[conv_idx];
    c.inputs.truncate(1);
    c.inputs.push(wn);
    c.inputs.push(bn);
}

/// Drops initializers and Constant nodes nobody reads any more.
fn remove_dead_constants(g: &mut Graph) -> Result<()> {
    let mut used: std::collections::HashSet<String> = g.outputs.iter().cloned().collect();
    for (_, n) in g.nodes() {
        used.extend(n.inputs.iter().cloned());
    }
    let dead_inits: Vec<String> = g
        .initializers
        .keys()
        .filter(|k| !used.contains(*k) && !g.inputs.contains(k))
        .cloned()
        .collect();
    for k in dead_inits {
        g.initializers.shift_remove(&k);
        g.values.remove(&k);
    }
    let dead_nodes: Vec<NodeIndex> = g
        .nodes()
        .filter(|(_, n)| n.is("Constant") && n.outputs.iter().all(|o| !used.contains(o)))
        .map(|(i, _)| i)
        .collect();
    for i in dead_nodes {
        if let Some(n) = g.remove_node(i) {
            for o in &n.outputs {
                g.values.remove(o);
            }
        }
    }
    relink_after(g, "graph simplification")
}

/// Folds `Conv → Mul(c) → Add(c)` chains (each step optional, constants per output channel
/// or scalar; an inference BatchNormalization is a step too) into the Conv, and the same
/// chains after a ConvTranspose (PP-OCR det's head: `ConvTranspose → Add(bias) →
/// BatchNormalization`, two kernels onnxruntime neither fuses nor quantizes). Returns the
/// number of nodes folded away.
pub fn fold_conv_affine(g: &mut Graph) -> Result<usize> {
    let mut namer = Namer::new(g);
    let convs = g.indices_of(&["Conv", "ConvTranspose"]);
    let mut folded = 0;
    for conv_idx in convs {
        loop {
            let conv = g.ops[conv_idx].clone();
            let Some(mut p) = AffineProducer::of(g, &conv) else {
                break;
            };
            let y = &conv.outputs[0];
            let Some(next_idx) = g.sole_consumer(y) else {
                break;
            };
            let next = g.ops[next_idx].clone();
            let Some((k, shift)) = channel_affine(g, &next, y, p.wd.len(), p.b.len()) else {
                break;
            };
            p.fold(&k, &shift);
            set_conv_params(g, &mut namer, conv_idx, &p.w, &p.wd, &p.b);
            g.ops[conv_idx].outputs = vec![next.outputs[0].clone()];
            g.values.remove(y);
            g.remove_node(next_idx);
            relink_after(g, "Conv affine folding")?;
            folded += 1;
        }
    }
    if folded > 0 {
        remove_dead_constants(g)?;
    }
    Ok(folded)
}

/// The scalar value of a constant tensor.
fn scalar(g: &Graph, name: &str) -> Option<f32> {
    constant_f32(g, name).and_then(|(v, _)| (v.len() == 1).then(|| v[0]))
}

/// Clip bounds (inputs from opset 11, attributes before).
fn clip_bounds(g: &Graph, n: &Node) -> Option<(f32, f32)> {
    if n.inputs.len() > 1 {
        let lo = scalar(g, n.inputs.get(1).filter(|s| !s.is_empty())?)?;
        let hi = scalar(g, n.inputs.get(2).filter(|s| !s.is_empty())?)?;
        Some((lo, hi))
    } else {
        let lo = n.attr("min").and_then(|a| a.as_float())?;
        let hi = n.attr("max").and_then(|a| a.as_float())?;
        Some((lo, hi))
    }
}

/// Rewrites `Add(x, 3) → Clip(0, 6) → Mul(x, ·) → Div(·, 6)` into
/// `HardSigmoid(x; alpha 1/6, beta 1/2) → Mul(x, ·)`. Returns the number rewritten.
pub fn fuse_hardswish(g: &mut Graph) -> Result<usize> {
    let mut namer = Namer::new(g);
    let adds = g.indices_of(&["Add"]);
    let mut fused = 0;
    for add_idx in adds {
        if !g.ops.contains_node(add_idx) {
            continue;
        }
        let add = g.ops[add_idx].clone();
        let Some((x, v, _)) = const_operand(g, &add) else {
            continue;
        };
        if v != [3.0] {
            continue;
        }
        let Some(clip_idx) = g.sole_consumer(&add.outputs[0]) else {
            continue;
        };
        let clip = g.ops[clip_idx].clone();
        if !clip.is("Clip")
            || clip.inputs[0] != add.outputs[0]
            || clip_bounds(g, &clip) != Some((0.0, 6.0))
        {
            continue;
        }
        let Some(mul_idx) = g.sole_consumer(&clip.outputs[0]) else {
            continue;
        };
        let mul = g.ops[mul_idx].clone();
        let pair = |a: &str, b: &str| {
            mul.inputs.len() == 2
                && ((mul.inputs[0] == a && mul.inputs[1] == b)
                    || (mul.inputs[0] == b && mul.inputs[1] == a))
        };
        if !mul.is("Mul") || !pair(&x, &clip.outputs[0]) {
            continue;
        }
        let Some(div_idx) = g.sole_consumer(&mul.outputs[0]) else {
            continue;
        };
        let div = g.ops[div_idx].clone();
        if !div.is("Div")
            || div.inputs.len() != 2
            || div.inputs[0] != mul.outputs[0]
            || scalar(g, &div.inputs[1]) != Some(6.0)
        {
            continue;
        }
        let y = div.outputs[0].clone();
        let hs_out = namer.fresh(&format!("{y}__hardsigmoid"));
        let hs_name = namer.fresh(&format!("{}__hardsigmoid", div.name));
        let mul_name = namer.fresh(&format!("{}__hardswish", div.name));
        for (i, t) in [
            (add_idx, &add.outputs[0]),
            (clip_idx, &clip.outputs[0]),
            (mul_idx, &mul.outputs[0]),
            (div_idx, &y),
        ] {
            g.remove_node(i);
            if *t != y {
                g.values.remove(t);
            }
        }
        let hs = node(
            &hs_name,
            "HardSigmoid",
            &[&x],
            &[&hs_out],
            vec![a_float("alpha", 1.0 / 6.0), a_float("beta", 0.5)],
        );
        g.add_node(hs);
        g.add_node(node(&mul_name, "Mul", &[&x, &hs_out], &[&y], Vec::new()));
        if let Some(t) = g.value_type(&y).cloned() {
            g.set_value_type(&hs_out, t);
        }
        relink_after(g, "HardSwish fusion")?;
        fused += 1;
    }
    if fused > 0 {
        remove_dead_constants(g)?;
    }
    Ok(fused)
}

/// Whether `conv` reads `t` as its data input and is a 1×1 (all kernel dims 1), unpadded,
/// ungrouped Conv with a constant weight.
fn pointwise_reader(g: &Graph, conv: &Node, t: &str) -> bool {
    let Some((_, wd, _)) = conv_params(g, conv) else {
        return false;
    };
    let ints = |name: &str| {
        conv.attr(name)
            .and_then(|a| a.as_ints())
            .map(<[i64]>::to_vec)
    };
    let auto_pad = conv
        .attr("auto_pad")
        .map(|a| String::from_utf8_lossy(&a.s).into_owned())
        .unwrap_or_else(|| "NOTSET".into());
    conv.inputs[0] == t
        && conv.inputs.iter().skip(1).all(|i| i != t)
        && conv.attr("group").and_then(|a| a.as_int()).unwrap_or(1) == 1
        && wd.len() >= 3
        && wd[2..].iter().all(|&k| k == 1)
        && ints("pads").is_none_or(|p| p.iter().all(|&x| x == 0))
        && matches!(auto_pad.as_str(), "NOTSET" | "VALID")
}

/// Folds `Mul(x, s) → Add(·, b)` (per input channel or scalar constants; either step alone
/// too) into the 1×1 unpadded ungrouped Convs that are its only readers. Returns the number
/// of Mul/Add nodes folded away.
pub fn fold_affine_into_conv(g: &mut Graph) -> Result<usize> {
    let mut namer = Namer::new(g);
    let heads = g.indices_of(&["Mul", "Add"]);
    let mut folded = 0;
    for head_idx in heads {
        if !g.ops.contains_node(head_idx) {
            continue;
        }
        let head = g.ops[head_idx].clone();
        let Some((x, v1, d1)) = const_operand(g, &head) else {
            continue;
        };
        // The chain: head, optionally followed by the other of Mul/Add.
        let mut chain = vec![(head_idx, head.clone(), v1, d1)];
        if head.is("Mul") {
            if let Some(i) = g.sole_consumer(&head.outputs[0]) {
                let n = g.ops[i].clone();
                if n.is("Add") {
                    if let Some((o, v, d)) = const_operand(g, &n) {
                        if o == head.outputs[0] {
                            chain.push((i, n, v, d));
                        }
                    }
                }
            }
        }
        let Some(last) = chain.last() else {
            continue;
        };
        let z = last.1.outputs[0].clone();
        if g.outputs.contains(&z) {
            continue;
        }
        let readers = g.consumers(&z);
        if readers.is_empty()
            || !readers
                .iter()
                .all(|&(i, _)| pointwise_reader(g, &g.ops[i], &z))
        {
            continue;
        }
        // Channels: the readers' input channels (all readers read the same tensor).
        let Some((_, wd0, _)) = conv_params(g, &g.ops[readers[0].0]) else {
            continue;
        };
        let ch = wd0[1];
        let rank = wd0.len();
        let mut s = vec![1.0f32; ch];
        let mut b = vec![0.0f32; ch];
        let mut ok = true;
        for (_, n, v, d) in &chain {
            let Some(c) = per_channel(v, d, rank, ch) else {
                ok = false;
                break;
            };
            if n.is("Mul") {
                for k in 0..ch {
                    s[k] *= c[k];
                    b[k] *= c[k];
                }
            } else {
                for k in 0..ch {
                    b[k] += c[k];
                }
            }
        }
        if !ok {
            continue;
        }
        let mut readers_ok = Vec::new();
        for &(i, _) in &readers {
            match conv_params(g, &g.ops[i]) {
                Some((w, wd, bias)) if wd[1] == ch && wd.len() == rank => {
                    readers_ok.push((i, w, wd, bias))
                }
                _ => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            continue;
        }
        for (i, mut w, wd, mut bias) in readers_ok {
            let m = wd[0];
            let inner = w.len() / (m * ch).max(1);
            for (o, bo) in bias.iter_mut().enumerate() {
                let mut acc = *bo as f64;
                for c in 0..ch {
                    for k in 0..inner {
                        acc += w[(o * ch + c) * inner + k] as f64 * b[c] as f64;
                    }
                }
                *bo = acc as f32;
            }
            for (idx, x) in w.iter_mut().enumerate() {
                *x *= s[(idx / inner) % ch];
            }
            set_conv_params(g, &mut namer, i, &w, &wd, &bias);
            g.ops[i].inputs[0] = x.clone();
        }
        for (i, n, _, _) in &chain {
            g.values.remove(&n.outputs[0]);
            g.remove_node(*i);
        }
        relink_after(g, "affine folding into 1x1 Conv")?;
        folded += chain.len();
    }
    if folded > 0 {
        remove_dead_constants(g)?;
    }
    Ok(folded)
}
