//! Shape and dtype inference over the IR.
//!
//! [`infer`] assigns a [`ValueType`] to every tensor of the main graph: graph inputs
//! (declared type with user bindings applied), initializers, and every node output, walking
//! the nodes in export order. A small constant evaluator ([`constant`]) tracks the values of
//! integer/float tensors that feed shape operands (Reshape's shape, Slice's starts, Resize's
//! scales, ...) — including partially symbolic ones produced by `Shape` — so that shapes
//! come out fully static whenever the input shapes are.
//!
//! Unsupported ops leave their outputs unknown (reported in [`InferenceSummary::unknown`]);
//! a malformed model yields a [`ShapeError`] naming the node and tensor.

pub mod constant;
mod conv_pool;
mod elementwise;
mod nn;
mod recurrent;
mod reduce;
mod sequence;
mod tensor_ops;

pub use constant::{Data, Value};
pub use elementwise::broadcast;

use crate::ir::attr::AttrExt;
use crate::ir::{canonical_domain, DataType, Dim, Model, Node, ValueType};
use std::collections::{HashMap, HashSet};

/// Concrete dims for graph inputs given by the user (`--input-shape name=1x3x224x224`).
pub type Bindings = HashMap<String, Vec<i64>>;

/// What [`infer`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InferenceSummary {
    /// Tensors considered: graph inputs, initializers and node outputs.
    pub tensors: usize,
    /// Tensors whose shape is fully known (sequences: whose element shape is).
    pub fully_static: usize,
    /// Tensor names whose type, element type or rank stayed unknown, in graph order.
    pub unknown: Vec<String>,
}

/// A problem with the bindings or a model whose shapes cannot be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error(
        "input shape given for '{input}', which is not an input of the model (inputs: {available})"
    )]
    UnknownInput { input: String, available: String },
    #[error("input '{input}': the given shape {bound:?} has rank {got}, but the model declares rank {expected}")]
    BindingRank {
        input: String,
        bound: Vec<i64>,
        got: usize,
        expected: usize,
    },
    #[error("input '{input}': the given shape {bound:?} sets dimension {axis} to {value}, but the model declares {declared}")]
    BindingConflict {
        input: String,
        bound: Vec<i64>,
        axis: usize,
        value: i64,
        declared: i64,
    },
    #[error("input '{input}': the given shape {bound:?} has a negative dimension")]
    BindingNegative { input: String, bound: Vec<i64> },
    #[error("initializer '{tensor}': {msg}")]
    Initializer { tensor: String, msg: String },
    #[error("node '{node}' ({op}), tensor '{tensor}': {msg}")]
    Node {
        node: String,
        op: String,
        tensor: String,
        msg: String,
    },
}

pub(crate) type Res<T = ()> = Result<T, ShapeError>;

/// The node's name, or a description of it when it has none.
pub(crate) fn node_label(n: &Node) -> String {
    if !n.name.is_empty() {
        n.name.clone()
    } else {
        let first = n
            .outputs
            .iter()
            .find(|o| !o.is_empty())
            .map(|s| s.as_str())
            .unwrap_or("");
        format!("<unnamed, output '{first}'>")
    }
}

/// A ShapeError about `tensor` at node `n`.
pub(crate) fn node_err(n: &Node, tensor: &str, msg: impl Into<String>) -> ShapeError {
    ShapeError::Node {
        node: node_label(n),
        op: n.qualified_op(),
        tensor: tensor.to_string(),
        msg: msg.into(),
    }
}

/// Largest number of elements whose values the constant evaluator keeps.
pub(crate) const MAX_CONST_ELEMS: u64 = 1 << 14;

/// Inference state: types, known values and known sequence contents by tensor name.
pub(crate) struct Ctx {
    pub opset: i64,
    pub types: HashMap<String, ValueType>,
    pub vals: HashMap<String, Value>,
    /// Element types of sequences whose length and element types are known.
    pub seqs: HashMap<String, Vec<ValueType>>,
}

impl Ctx {
    fn new(opset: i64) -> Ctx {
        Ctx {
            opset,
            types: HashMap::new(),
            vals: HashMap::new(),
            seqs: HashMap::new(),
        }
    }

    /// Name of input `i`, if present (non-empty).
    pub fn in_name<'n>(&self, n: &'n Node, i: usize) -> Option<&'n str> {
        n.inputs
            .get(i)
            .map(|s| s.as_str())
            .filter(|s| !s.is_empty())
    }

    pub fn has_input(&self, n: &Node, i: usize) -> bool {
        self.in_name(n, i).is_some()
    }

    pub fn ty(&self, n: &Node, i: usize) -> Option<&ValueType> {
        self.types.get(self.in_name(n, i)?)
    }

    pub fn elem(&self, n: &Node, i: usize) -> Option<DataType> {
        self.ty(n, i)?.elem()
    }

    /// Dims of input `i` when it is a tensor of known rank.
    pub fn dims(&self, n: &Node, i: usize) -> Option<Vec<Dim>> {
        self.ty(n, i)?.dims().map(|d| d.to_vec())
    }

    pub fn rank(&self, n: &Node, i: usize) -> Option<usize> {
        self.ty(n, i)?.dims().map(|d| d.len())
    }

    pub fn val(&self, n: &Node, i: usize) -> Option<&Value> {
        self.vals.get(self.in_name(n, i)?)
    }

    /// Values of input `i` as fully known integers.
    pub fn ints(&self, n: &Node, i: usize) -> Option<Vec<i64>> {
        self.val(n, i)?.ints()
    }

    /// Values of input `i` as integers, some possibly symbolic.
    pub fn sym_ints(&self, n: &Node, i: usize) -> Option<Vec<Dim>> {
        self.val(n, i)?.sym_ints()
    }

    pub fn floats(&self, n: &Node, i: usize) -> Option<Vec<f64>> {
        self.val(n, i)?.floats()
    }

    /// Name of output `i`, if the node has it.
    pub fn out_name<'n>(&self, n: &'n Node, i: usize) -> Option<&'n str> {
        n.outputs
            .get(i)
            .map(|s| s.as_str())
            .filter(|s| !s.is_empty())
    }

    pub fn set(&mut self, n: &Node, i: usize, ty: ValueType) {
        if let Some(name) = self.out_name(n, i) {
            self.types.insert(name.to_string(), ty);
        }
    }

    pub fn set_tensor(&mut self, n: &Node, i: usize, elem: DataType, shape: Option<Vec<Dim>>) {
        self.set(n, i, ValueType::Tensor { elem, shape });
    }

    /// Sets output `i` to a known value (its type follows from it).
    pub fn set_val(&mut self, n: &Node, i: usize, v: Value) {
        if let Some(name) = self.out_name(n, i) {
            self.types.insert(name.to_string(), v.value_type());
            self.vals.insert(name.to_string(), v);
        }
    }

    /// Makes output `i` a copy of input `j` (type, value, sequence contents).
    pub fn copy(&mut self, n: &Node, j: usize, i: usize) {
        let (Some(src), Some(dst)) = (self.in_name(n, j), self.out_name(n, i)) else {
            return;
        };
        if let Some(t) = self.types.get(src).cloned() {
            self.types.insert(dst.to_string(), t);
        }
        if let Some(v) = self.vals.get(src).cloned() {
            self.vals.insert(dst.to_string(), v);
        }
        if let Some(s) = self.seqs.get(src).cloned() {
            self.seqs.insert(dst.to_string(), s);
        }
    }
}

// ---------------------------------------------------------------- attribute helpers

pub(crate) fn attr_i(n: &Node, name: &str) -> Option<i64> {
    n.attr(name).and_then(|a| a.as_int())
}

pub(crate) fn attr_i_or(n: &Node, name: &str, default: i64) -> i64 {
    attr_i(n, name).unwrap_or(default)
}

pub(crate) fn attr_ints(n: &Node, name: &str) -> Option<Vec<i64>> {
    n.attr(name).and_then(|a| a.as_ints()).map(|v| v.to_vec())
}

pub(crate) fn attr_floats(n: &Node, name: &str) -> Option<Vec<f32>> {
    n.attr(name).and_then(|a| a.as_floats()).map(|v| v.to_vec())
}

pub(crate) fn attr_s<'a>(n: &'a Node, name: &str) -> Option<&'a str> {
    n.attr(name).and_then(|a| a.as_str())
}

/// Normalizes a possibly negative axis against `rank`; errors when out of range.
pub(crate) fn norm_axis(n: &Node, tensor: &str, axis: i64, rank: usize) -> Res<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(node_err(
            n,
            tensor,
            format!("axis {axis} is out of range for rank {rank}"),
        ));
    }
    Ok(a as usize)
}

/// Normalizes a list of axes, rejecting duplicates.
pub(crate) fn norm_axes(n: &Node, tensor: &str, axes: &[i64], rank: usize) -> Res<Vec<usize>> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let x = norm_axis(n, tensor, a, rank)?;
        if out.contains(&x) {
            return Err(node_err(
                n,
                tensor,
                format!("axis {a} is repeated in {axes:?}"),
            ));
        }
        out.push(x);
    }
    Ok(out)
}

/// Product of dims: known when all are known; a symbol when exactly one symbol and the
/// rest multiply to 1; unknown otherwise.
pub(crate) fn dim_product(dims: &[Dim]) -> Dim {
    let mut known = 1i64;
    let mut sym: Option<&Dim> = None;
    let mut nsym = 0;
    for d in dims {
        match d {
            Dim::Known(v) => known = known.saturating_mul(*v),
            Dim::Sym(_) => {
                nsym += 1;
                sym = Some(d);
            }
            Dim::Unknown => {
                return if known == 0 {
                    Dim::Known(0)
                } else {
                    Dim::Unknown
                }
            }
        }
    }
    match (nsym, sym) {
        (0, _) => Dim::Known(known),
        _ if known == 0 => Dim::Known(0),
        (1, Some(s)) if known == 1 => s.clone(),
        _ => Dim::Unknown,
    }
}

pub(crate) fn known_dims(v: &[i64]) -> Vec<Dim> {
    v.iter().map(|&d| Dim::Known(d)).collect()
}

// ---------------------------------------------------------------- entry point

/// Infers the type of every tensor of `model.graph` and stores it with
/// [`crate::ir::Graph::set_value_type`]. Nothing else in the model changes.
pub fn infer(model: &mut Model, bindings: &Bindings) -> Result<InferenceSummary, ShapeError> {
    let opset = model.opset("").unwrap_or(1);
    let g = &model.graph;
    let mut cx = Ctx::new(opset);
    let mut order: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();

    // Bindings must name runtime inputs.
    let runtime: Vec<&str> = g.runtime_inputs();
    for name in bindings.keys() {
        if !runtime.contains(&name.as_str()) {
            return Err(ShapeError::UnknownInput {
                input: name.clone(),
                available: runtime.join(", "),
            });
        }
    }

    // Initializers: type from dims/data_type, values of small numeric tensors.
    for (name, t) in &g.initializers {
        let Some(elem) = DataType::from_onnx(t.data_type) else {
            return Err(ShapeError::Initializer {
                tensor: name.clone(),
                msg: format!("unknown data_type {}", t.data_type),
            });
        };
        if let Some(d) = t.dims.iter().find(|&&d| d < 0) {
            return Err(ShapeError::Initializer {
                tensor: name.clone(),
                msg: format!("negative dimension {d}"),
            });
        }
        cx.types
            .insert(name.clone(), ValueType::tensor(elem, &t.dims));
        if let Some(v) = Value::from_tensor_proto(t) {
            cx.vals.insert(name.clone(), v);
        }
        if seen.insert(name.clone()) {
            order.push(name.clone());
        }
    }

    // Graph inputs: declared type with bindings applied.
    for name in &runtime {
        let info = g.values.get(*name);
        let declared = info
            .and_then(|v| v.declared.as_ref())
            .and_then(|d| d.type_.as_ref())
            .and_then(crate::onnx_io::type_proto::value_type_from_proto)
            .or_else(|| info.and_then(|v| v.ty.clone()));
        let ty = match bindings.get(*name) {
            Some(b) => apply_binding(name, declared, b)?,
            None => declared,
        };
        if let Some(ty) = ty {
            cx.types.insert(name.to_string(), ty);
        }
        if seen.insert(name.to_string()) {
            order.push(name.to_string());
        }
    }

    // Nodes in export order.
    for (_, n) in g.nodes() {
        infer_node(&mut cx, n, g)?;
        for o in &n.outputs {
            if !o.is_empty() && seen.insert(o.clone()) {
                order.push(o.clone());
            }
        }
    }

    let mut summary = InferenceSummary {
        tensors: order.len(),
        ..Default::default()
    };
    for name in &order {
        match cx.types.remove(name) {
            Some(ty) => {
                if is_fully_static(&ty) {
                    summary.fully_static += 1;
                }
                if is_unknown(&ty) {
                    summary.unknown.push(name.clone());
                }
                model.graph.set_value_type(name, ty);
            }
            None => {
                summary.unknown.push(name.clone());
                if let Some(v) = model.graph.values.get_mut(name) {
                    v.ty = None;
                }
            }
        }
    }
    Ok(summary)
}

fn apply_binding(name: &str, declared: Option<ValueType>, b: &[i64]) -> Res<Option<ValueType>> {
    if b.iter().any(|&d| d < 0) {
        return Err(ShapeError::BindingNegative {
            input: name.to_string(),
            bound: b.to_vec(),
        });
    }
    let (elem, shape) = match declared {
        Some(ValueType::Tensor { elem, shape }) => (Some(elem), shape),
        Some(ValueType::TensorUnknownElem { shape }) => (None, shape),
        None => (None, None),
        Some(other) => {
            return Err(ShapeError::UnknownInput {
                input: name.to_string(),
                available: format!("(input '{name}' is a {other}, not a tensor)"),
            })
        }
    };
    if let Some(dims) = &shape {
        if dims.len() != b.len() {
            return Err(ShapeError::BindingRank {
                input: name.to_string(),
                bound: b.to_vec(),
                got: b.len(),
                expected: dims.len(),
            });
        }
        for (axis, (d, &v)) in dims.iter().zip(b).enumerate() {
            if let Dim::Known(k) = d {
                if *k != v {
                    return Err(ShapeError::BindingConflict {
                        input: name.to_string(),
                        bound: b.to_vec(),
                        axis,
                        value: v,
                        declared: *k,
                    });
                }
            }
        }
    }
    let shape = Some(known_dims(b));
    Ok(Some(match elem {
        Some(elem) => ValueType::Tensor { elem, shape },
        None => ValueType::TensorUnknownElem { shape },
    }))
}

/// The bindings that reproduce `model`'s current input shapes: every runtime input whose
/// inferred shape is fully known (so re-running shape inference keeps them).
pub fn current_bindings(model: &Model) -> Bindings {
    let mut b = Bindings::new();
    for name in model.graph.runtime_inputs() {
        if let Some(ValueType::Tensor {
            shape: Some(dims), ..
        }) = model.graph.value_type(name)
        {
            let known: Option<Vec<i64>> = dims.iter().map(Dim::known).collect();
            if let Some(k) = known {
                b.insert(name.to_string(), k);
            }
        }
    }
    b
}

/// True for a dense tensor with all dims known, or a sequence/optional of such.
pub fn is_fully_static(ty: &ValueType) -> bool {
    match ty {
        ValueType::Tensor { shape: Some(d), .. } => d.iter().all(|d| matches!(d, Dim::Known(_))),
        ValueType::Sequence(e) | ValueType::Optional(e) => is_fully_static(e),
        _ => false,
    }
}

/// True when the element type or the rank is unknown (sequences: of the element).
pub fn is_unknown(ty: &ValueType) -> bool {
    match ty {
        ValueType::Tensor { shape, .. } => shape.is_none(),
        ValueType::TensorUnknownElem { .. } => true,
        ValueType::Sequence(e) | ValueType::Optional(e) => {
            matches!(**e, ValueType::TensorUnknownElem { .. })
        }
        ValueType::Map { .. } => false,
        ValueType::SparseTensor { shape, .. } => shape.is_none(),
    }
}

/// Dispatches one node to its family's rule.
fn infer_node(cx: &mut Ctx, n: &Node, g: &crate::ir::Graph) -> Res {
    let domain = canonical_domain(&n.domain);
    match domain {
        "" => {}
        "com.microsoft" => return nn::infer_ms(cx, n),
        "ai.onnx.preview.training" if n.op_type == "Gradient" => return gradient(cx, n, g),
        _ => return Ok(()),
    }
    let op = n.op_type.as_str();
    if elementwise::infer(cx, n, op)?
        || tensor_ops::infer(cx, n, op)?
        || conv_pool::infer(cx, n, op)?
        || nn::infer(cx, n, op)?
        || recurrent::infer(cx, n, op)
        || reduce::infer(cx, n, op)?
        || sequence::infer(cx, n, op)?
    {
        return Ok(());
    }
    if op == "StringNormalizer" {
        return string_normalizer(cx, n);
    }
    Ok(())
}

/// `Gradient`: output i has the type of the tensor named by `xs[i]`.
fn gradient(cx: &mut Ctx, n: &Node, _g: &crate::ir::Graph) -> Res {
    let xs: Vec<String> = match n.attr("xs") {
        Some(a) => a
            .strings
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
        None => {
            return Err(node_err(
                n,
                n.outputs.first().map(|s| s.as_str()).unwrap_or(""),
                "missing attribute xs",
            ))
        }
    };
    for (i, x) in xs.iter().enumerate() {
        if let Some(t) = cx.types.get(x).cloned() {
            cx.set(n, i, t);
        }
    }
    Ok(())
}

/// `StringNormalizer`: strings; removing stopwords makes the last dim data-dependent.
fn string_normalizer(cx: &mut Ctx, n: &Node) -> Res {
    let Some(dims) = cx.dims(n, 0) else {
        cx.set_tensor(n, 0, DataType::String, None);
        return Ok(());
    };
    let has_stopwords = n.attr("stopwords").is_some_and(|a| !a.strings.is_empty());
    let shape = if has_stopwords {
        let mut d = dims;
        if let Some(last) = d.last_mut() {
            *last = Dim::Unknown;
        }
        d
    } else {
        dims
    };
    cx.set_tensor(n, 0, DataType::String, Some(shape));
    Ok(())
}

#[cfg(test)]
mod tests;
