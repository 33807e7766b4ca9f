//! Sequence ops, lowered to tensor ops before planning. A sequence whose length and
//! element positions are known when the model is planned (positions are constants, or
//! small integer inputs the session folds in at run time) is host bookkeeping: a list of
//! tensor names. `SequenceAt` becomes an `Identity` of the element, `SplitToSequence` one
//! `Slice` (or `Gather` when `keepdims=0`) per element, `ConcatFromSequence` a `Concat`
//! (after a `Reshape` per element when `new_axis=1`), `SequenceLength` a constant; the rest
//! (`SequenceEmpty`, `SequenceConstruct`, `SequenceInsert`, `SequenceErase`) only edits the
//! list. The elements then live as ordinary device tensors, so liveness and buffer reuse
//! apply unchanged.

use super::exec::node_error as err;
use super::host::HVal;
use onnx_protobuf::TensorProto;
use optimize_ir::error::{Error, Result};
use optimize_ir::ir::build::a_int;
use optimize_ir::ir::{DataType, Model, Node, ValueType};
use optimize_ir::shape::{infer, Bindings};
use std::collections::HashMap;

/// The sequence ops this module lowers.
pub const SEQUENCE_OPS: &[&str] = &[
    "SequenceEmpty",
    "SequenceConstruct",
    "SequenceInsert",
    "SequenceErase",
    "SequenceAt",
    "SequenceLength",
    "SplitToSequence",
    "ConcatFromSequence",
];

fn is_sequence_op(n: &Node) -> bool {
    optimize_ir::ir::canonical_domain(&n.domain).is_empty()
        && SEQUENCE_OPS.contains(&n.op_type.as_str())
}

/// True when the model has a sequence op to lower.
pub fn has_sequence_ops(model: &Model) -> bool {
    model.graph.nodes().any(|(_, n)| is_sequence_op(n))
}

fn int_tensor(name: &str, dims: &[i64], vals: &[i64]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.to_string();
    t.data_type = DataType::Int64 as i32;
    t.dims = dims.to_vec();
    t.int64_data = vals.to_vec();
    t
}

fn attr_i(n: &Node, name: &str) -> Option<i64> {
    use optimize_ir::ir::attr::AttrExt;
    n.attr(name).and_then(|a| a.as_int())
}

fn mk(op: &str, name: String, inputs: Vec<String>, output: String) -> Node {
    Node {
        name,
        op_type: op.to_string(),
        inputs,
        outputs: vec![output],
        ..Default::default()
    }
}

/// Host values of initializers and `Constant` nodes (the only position sources lowered).
fn constants(model: &Model) -> HashMap<String, HVal> {
    let g = &model.graph;
    let mut out = HashMap::new();
    for (name, t) in &g.initializers {
        if let Ok(v) = HVal::from_proto(t, name) {
            out.insert(name.clone(), v);
        }
    }
    for (_, n) in g.nodes() {
        if n.op_type == "Constant" && n.outputs.len() == 1 {
            if let Some(t) = n.attr("value").and_then(|a| a.t.as_ref()) {
                if let Ok(v) = HVal::from_proto(t, &n.outputs[0]) {
                    out.insert(n.outputs[0].clone(), v);
                }
            }
        }
    }
    out
}

fn static_shape(model: &Model, name: &str) -> Option<Vec<usize>> {
    match model.graph.value_type(name)? {
        ValueType::Tensor {
            shape: Some(dims), ..
        } => dims
            .iter()
            .map(|d| d.known().filter(|&v| v >= 0).map(|v| v as usize))
            .collect(),
        _ => None,
    }
}

/// The static shapes of the runtime inputs, as bindings (re-inference after lowering must
/// keep shapes that were bound when the model was first inferred).
fn input_bindings(model: &Model) -> Bindings {
    let mut b = Bindings::new();
    for name in model.graph.runtime_inputs() {
        if let Some(s) = static_shape(model, name) {
            b.insert(name.to_string(), s.iter().map(|&d| d as i64).collect());
        }
    }
    b
}

/// A position operand: constant scalar, normalized against `len` (`extra` is 1 where the
/// position may equal `len`, as for SequenceInsert).
fn position(
    n: &Node,
    consts: &HashMap<String, HVal>,
    i: usize,
    len: usize,
    default: i64,
    extra: usize,
) -> Result<usize> {
    let p = match n.inputs.get(i).filter(|s| !s.is_empty()) {
        None => default,
        Some(name) => {
            let v = consts.get(name).ok_or_else(|| {
                err(
                    n,
                    format!(
                        "position '{name}' must be a constant (or a small integer input) for the \
                         wgpu executor"
                    ),
                )
            })?;
            *v.ints()
                .first()
                .ok_or_else(|| err(n, "empty position tensor"))?
        }
    };
    let q = if p < 0 { p + len as i64 } else { p };
    if q < 0 || q as usize >= len + extra {
        return Err(err(
            n,
            format!("position {p} is out of range for a sequence of {len}"),
        ));
    }
    Ok(q as usize)
}

/// Returns the model with its sequence ops lowered to tensor ops and shapes re-inferred.
pub fn lower_sequences(model: &Model) -> Result<Model> {
    let g = &model.graph;
    for name in g
        .runtime_inputs()
        .into_iter()
        .chain(g.outputs.iter().map(|s| s.as_str()))
    {
        if matches!(g.value_type(name), Some(ValueType::Sequence(_))) {
            return Err(Error::Runtime(format!(
                "wgpu: graph input or output '{name}' is a sequence; the wgpu executor takes and \
                 returns tensors only"
            )));
        }
    }
    let mut lw = Lowering {
        model,
        consts: constants(model),
        seqs: HashMap::new(),
        nodes: Vec::new(),
        inits: Vec::new(),
        fresh: 0,
    };
    for (_, n) in g.nodes() {
        if !is_sequence_op(n) {
            lw.nodes.push(n.clone());
            continue;
        }
        lw.sequence_op(n)?;
    }
    let mut m = model.clone();
    m.graph.ops.clear();
    m.graph.order.clear();
    for n in lw.nodes {
        m.graph.add_node(n);
    }
    for t in lw.inits {
        m.graph.initializers.insert(t.name.clone(), t);
    }
    m.graph
        .relink()
        .map_err(|e| Error::Internal(format!("wgpu: relinking the lowered sequence ops: {e}")))?;
    infer(&mut m, &input_bindings(model))
        .map_err(|e| Error::Runtime(format!("wgpu: shapes after lowering sequence ops: {e}")))?;
    Ok(m)
}

/// The lowering in progress: the tensors each sequence holds (sequences exist only while
/// planning), and the tensor nodes and initializers of the lowered graph, in order.
struct Lowering<'m> {
    model: &'m Model,
    consts: HashMap<String, HVal>,
    seqs: HashMap<String, Vec<String>>,
    nodes: Vec<Node>,
    inits: Vec<TensorProto>,
    /// Counter of the names made up so far.
    fresh: usize,
}

impl Lowering<'_> {
    /// A fresh name derived from `base`.
    fn uniq(&mut self, base: &str, what: &str) -> String {
        self.fresh += 1;
        format!("{base}/__wgpu_seq_{what}{}", self.fresh)
    }

    /// The tensors of `n`'s input sequence.
    fn seq_of(&self, n: &Node) -> Result<Vec<String>> {
        let name = n.inputs.first().filter(|s| !s.is_empty());
        name.and_then(|s| self.seqs.get(s))
            .cloned()
            .ok_or_else(|| err(n, "its input sequence is not known when planning"))
    }

    /// One sequence op: a new sequence of known tensors, or tensor nodes and
    /// initializers computing what it reads out of one.
    fn sequence_op(&mut self, n: &Node) -> Result<()> {
        let out = n
            .outputs
            .first()
            .cloned()
            .ok_or_else(|| err(n, "no output"))?;
        match n.op_type.as_str() {
            "SequenceEmpty" => {
                self.seqs.insert(out, Vec::new());
            }
            "SequenceConstruct" => {
                self.seqs.insert(out, n.inputs.clone());
            }
            "SequenceInsert" => {
                let mut s = self.seq_of(n)?;
                let t = n
                    .inputs
                    .get(1)
                    .cloned()
                    .ok_or_else(|| err(n, "no tensor to insert"))?;
                let len = s.len();
                let at = position(n, &self.consts, 2, len, len as i64, 1)?;
                s.insert(at, t);
                self.seqs.insert(out, s);
            }
            "SequenceErase" => {
                let mut s = self.seq_of(n)?;
                let at = position(n, &self.consts, 1, s.len(), -1, 0)?;
                s.remove(at);
                self.seqs.insert(out, s);
            }
            "SequenceAt" => {
                let s = self.seq_of(n)?;
                let at = position(n, &self.consts, 1, s.len(), 0, 0)?;
                self.nodes
                    .push(mk("Identity", n.name.clone(), vec![s[at].clone()], out));
            }
            "SequenceLength" => {
                let s = self.seq_of(n)?;
                let mut t = int_tensor("", &[], &[s.len() as i64]);
                t.name = out.clone();
                self.inits.push(t);
            }
            "SplitToSequence" => self.split_to_sequence(n, out)?,
            "ConcatFromSequence" => self.concat_from_sequence(n, out)?,
            _ => return Err(err(n, "unsupported sequence op")),
        }
        Ok(())
    }

    /// SplitToSequence: the elements are Gathers by a scalar index (size-1 pieces,
    /// `keepdims=0`) or Slices of the split sizes along the axis.
    fn split_to_sequence(&mut self, n: &Node, out: String) -> Result<()> {
        let model = self.model;
        let x = n.inputs.first().cloned().unwrap_or_default();
        let shape = static_shape(model, &x)
            .ok_or_else(|| err(n, format!("input '{x}' has no static shape")))?;
        let rank = shape.len() as i64;
        let a = attr_i(n, "axis").unwrap_or(0);
        let a = if a < 0 { a + rank } else { a };
        if a < 0 || a >= rank {
            return Err(err(n, format!("axis {a} is out of range for rank {rank}")));
        }
        let a = a as usize;
        let dim = shape[a];
        let split = match n.inputs.get(1).filter(|s| !s.is_empty()) {
            None => None,
            Some(name) => Some(self.consts.get(name).cloned().ok_or_else(|| {
                err(
                    n,
                    format!("split '{name}' must be a constant for the wgpu executor"),
                )
            })?),
        };
        let mut elems = Vec::new();
        match split {
            None if attr_i(n, "keepdims").unwrap_or(1) == 0 => {
                // Size-1 pieces with the axis dropped: a Gather by a scalar index.
                for k in 0..dim {
                    let idx = self.uniq(&out, "index");
                    self.inits.push(int_tensor(&idx, &[], &[k as i64]));
                    let e = self.uniq(&out, "element");
                    let node_name = self.uniq(&out, "node");
                    let mut g = mk("Gather", node_name, vec![x.clone(), idx], e.clone());
                    g.attributes.push(a_int("axis", a as i64));
                    self.nodes.push(g);
                    elems.push(e);
                }
            }
            split => {
                let sizes = split_sizes(n, split.as_ref(), dim)?;
                let mut start = 0usize;
                for sz in sizes {
                    let names: Vec<String> = ["starts", "ends", "axes"]
                        .iter()
                        .map(|w| self.uniq(&out, w))
                        .collect();
                    self.inits
                        .push(int_tensor(&names[0], &[1], &[start as i64]));
                    self.inits
                        .push(int_tensor(&names[1], &[1], &[(start + sz) as i64]));
                    self.inits.push(int_tensor(&names[2], &[1], &[a as i64]));
                    let e = self.uniq(&out, "element");
                    let mut ins = vec![x.clone()];
                    ins.extend(names);
                    let node_name = self.uniq(&out, "node");
                    self.nodes.push(mk("Slice", node_name, ins, e.clone()));
                    elems.push(e);
                    start += sz;
                }
            }
        }
        self.seqs.insert(out, elems);
        Ok(())
    }

    /// ConcatFromSequence: a Concat of the elements, each first Reshaped to take the new
    /// axis when `new_axis` is set.
    fn concat_from_sequence(&mut self, n: &Node, out: String) -> Result<()> {
        let model = self.model;
        let s = self.seq_of(n)?;
        if s.is_empty() {
            return Err(err(n, "the sequence is empty"));
        }
        let shape = static_shape(model, &s[0])
            .ok_or_else(|| err(n, format!("element '{}' has no static shape", s[0])))?;
        let new_axis = attr_i(n, "new_axis").unwrap_or(0) != 0;
        let rank = shape.len() as i64 + new_axis as i64;
        let a = attr_i(n, "axis").ok_or_else(|| err(n, "attribute axis is missing"))?;
        let a = if a < 0 { a + rank } else { a };
        if a < 0 || a >= rank {
            return Err(err(n, format!("axis {a} is out of range for rank {rank}")));
        }
        let mut parts = Vec::with_capacity(s.len());
        for e in &s {
            if !new_axis {
                parts.push(e.clone());
                continue;
            }
            let es = static_shape(model, e)
                .ok_or_else(|| err(n, format!("element '{e}' has no static shape")))?;
            let mut dims: Vec<i64> = es.iter().map(|&d| d as i64).collect();
            dims.insert(a as usize, 1);
            let sh = self.uniq(&out, "shape");
            self.inits
                .push(int_tensor(&sh, &[dims.len() as i64], &dims));
            let r = self.uniq(&out, "stacked");
            let node_name = self.uniq(&out, "node");
            self.nodes
                .push(mk("Reshape", node_name, vec![e.clone(), sh], r.clone()));
            parts.push(r);
        }
        let mut c = mk("Concat", n.name.clone(), parts, out);
        c.attributes.push(a_int("axis", a));
        self.nodes.push(c);
        Ok(())
    }
}

/// The piece sizes of a SplitToSequence along an axis of length `dim`: ones without
/// `split`, equal pieces (the last shorter) for a scalar, or the listed sizes.
fn split_sizes(n: &Node, split: Option<&HVal>, dim: usize) -> Result<Vec<usize>> {
    Ok(match split {
        None => vec![1; dim],
        Some(v) if v.shape.is_empty() => {
            let c = v.ints().first().copied().unwrap_or(0);
            if c <= 0 {
                return Err(err(n, format!("split size {c} must be positive")));
            }
            let c = c as usize;
            (0..dim.div_ceil(c)).map(|k| c.min(dim - k * c)).collect()
        }
        Some(v) => {
            let s: Vec<usize> = v.ints().iter().map(|&d| d.max(0) as usize).collect();
            if s.iter().sum::<usize>() != dim {
                return Err(err(
                    n,
                    format!("split {s:?} does not sum to the axis length {dim}"),
                ));
            }
            s
        }
    })
}
