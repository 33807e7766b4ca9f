//! LRP rules per ONNX operator. [`apply`] picks the rule for a node; each rule takes the
//! relevance of the node's outputs and returns relevance for its relevance-carrying inputs
//! (shaped like the output or like the input: the sweep un-broadcasts) and the total
//! |R_W| of its weights.

pub mod batchnorm;
pub mod conv;
pub mod elementwise;
pub mod linear;
pub mod pool;
pub mod resize;
pub mod routing;

use super::activations::Activations;
use super::config::RuleConfig;
use super::tensor::T;
use optimize_ir::ir::attr::AttrExt;
use optimize_ir::ir::op_table::{relevance_rule, RelevanceRule};
use optimize_ir::ir::{Graph, Node, DEFAULT_DOMAIN};
use std::collections::HashSet;

pub type RResult<X> = std::result::Result<X, String>;

/// Everything a rule can read about its node.
pub struct Ctx<'a> {
    pub graph: &'a Graph,
    pub node: &'a Node,
    pub acts: &'a Activations,
    pub cfg: &'a RuleConfig,
    pub carry: &'a HashSet<String>,
    pub opset: i64,
    /// The BatchNormalization folded into this Conv/Gemm, if any.
    pub fold: Option<&'a Node>,
    /// For a convolution: its rank among the graph's convolutions, 0 (first) to 1 (last).
    pub conv_depth: Option<f64>,
}

impl<'a> Ctx<'a> {
    pub fn in_name(&self, i: usize) -> Option<&str> {
        self.node
            .inputs
            .get(i)
            .map(|s| s.as_str())
            .filter(|s| !s.is_empty())
    }
    pub fn has_input(&self, i: usize) -> bool {
        self.in_name(i).is_some()
    }
    /// True when input `i` carries relevance.
    pub fn carries(&self, i: usize) -> bool {
        self.in_name(i).is_some_and(|n| self.carry.contains(n))
    }
    pub fn input(&self, i: usize) -> RResult<T> {
        let n = self
            .in_name(i)
            .ok_or_else(|| format!("input {i} is missing"))?;
        self.acts.get(n)
    }
    /// Input `i`, borrowed when it is a constant.
    pub fn input_cow(&self, i: usize) -> RResult<std::borrow::Cow<'a, T>> {
        let n = self
            .in_name(i)
            .ok_or_else(|| format!("input {i} is missing"))?;
        self.acts.get_cow(n)
    }
    pub fn in_shape(&self, i: usize) -> RResult<Vec<usize>> {
        let n = self
            .in_name(i)
            .ok_or_else(|| format!("input {i} is missing"))?;
        self.acts.shape(n)
    }
    pub fn ints(&self, i: usize) -> RResult<Vec<i64>> {
        let n = self
            .in_name(i)
            .ok_or_else(|| format!("input {i} is missing"))?;
        self.acts.ints(n)
    }
    pub fn output(&self, i: usize) -> RResult<T> {
        let n = self
            .node
            .outputs
            .get(i)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("output {i} is missing"))?;
        self.acts.get(n)
    }
    pub fn out_shape(&self, i: usize) -> RResult<Vec<usize>> {
        let n = self
            .node
            .outputs
            .get(i)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("output {i} is missing"))?;
        self.acts.shape(n)
    }
    pub fn attr_int(&self, name: &str, default: i64) -> i64 {
        self.node
            .attr(name)
            .and_then(|a| a.as_int())
            .unwrap_or(default)
    }
    pub fn attr_ints(&self, name: &str) -> Option<Vec<i64>> {
        self.node
            .attr(name)
            .and_then(|a| a.as_ints())
            .map(|v| v.to_vec())
    }
    /// A per-spatial-axis attribute (strides, dilations): at least 1 each, `d` ones when absent.
    pub fn spatial_ints(&self, name: &str, d: usize) -> Vec<usize> {
        self.attr_ints(name)
            .map(|v| v.iter().map(|&x| x.max(1) as usize).collect())
            .unwrap_or_else(|| vec![1; d])
    }
    /// For a layer whose input 0 is data and input 1 a weight: `Some` empty relevance when
    /// no relevance flows into the data, `Some` error when the weight is computed from it.
    pub fn weight_layer_guard(&self) -> Option<RResult<Backward>> {
        if !self.carries(0) {
            return Some(Ok(Backward {
                inputs: vec![None; self.node.inputs.len()],
                weight_rel: 0.0,
            }));
        }
        self.carries(1).then(|| {
            Err(format!(
                "{} with a weight computed from the input is not supported",
                self.node.op_type
            ))
        })
    }
    pub fn attr_float(&self, name: &str, default: f32) -> f32 {
        self.node
            .attr(name)
            .and_then(|a| a.as_float())
            .unwrap_or(default)
    }
    pub fn attr_str(&self, name: &str, default: &str) -> String {
        self.node
            .attr(name)
            .and_then(|a| a.as_str())
            .unwrap_or(default)
            .to_string()
    }
    /// The rule for this node: its override by name, else the class rule.
    pub fn rule(&self, class: super::config::Rule) -> super::config::Rule {
        self.cfg
            .node_rules
            .get(&self.node.name)
            .copied()
            .unwrap_or(class)
    }
    /// The stabilizer for a layer with pre-activations `z` (absolute plus relative part).
    pub fn eps_for(&self, z: &T) -> f64 {
        super::tensor::layer_eps(z, self.cfg.eps, self.cfg.eps_rel)
    }
    /// The configured stabilizer.
    pub fn stab(&self) -> linear::Stab {
        linear::Stab {
            abs: self.cfg.eps,
            rel: self.cfg.eps_rel,
        }
    }
    /// The recorded pre-activation z of this Conv/Gemm (the folded BatchNormalization's
    /// output when there is one), if its value was recorded.
    pub fn recorded_z(&self) -> Option<T> {
        let node = self.fold.unwrap_or(self.node);
        let name = node.outputs.first().filter(|s| !s.is_empty())?;
        self.acts.get(name).ok()
    }
    /// [`Ctx::recorded_z`] as onnxruntime recorded it in f32, borrowed in place.
    pub fn recorded_z_f32(&self) -> Option<std::borrow::Cow<'a, [f32]>> {
        let node = self.fold.unwrap_or(self.node);
        let name = node.outputs.first().filter(|s| !s.is_empty())?;
        self.acts.get_f32(name)
    }
    /// Input `i` as recorded in f32 (borrowed in place); `None` for constants and other types.
    pub fn input_f32(&self, i: usize) -> Option<std::borrow::Cow<'a, [f32]>> {
        self.acts.get_f32(self.in_name(i)?)
    }
    /// Indices of the inputs that carry relevance.
    pub fn carrying_inputs(&self) -> Vec<usize> {
        (0..self.node.inputs.len())
            .filter(|&i| self.carries(i))
            .collect()
    }
}

/// What a rule returns.
#[derive(Clone, Debug, Default)]
pub struct Backward {
    /// Relevance per input slot (`None`: none flows there).
    pub inputs: Vec<Option<T>>,
    /// Σ|R_W| of the node's weights (0 for ops without weights).
    pub weight_rel: f64,
}

impl Backward {
    /// Relevance only for input `slot` of a node with `n` inputs.
    pub fn single(n: usize, slot: usize, r: T) -> Backward {
        let mut inputs = vec![None; n];
        if slot < n {
            inputs[slot] = Some(r);
        }
        Backward {
            inputs,
            weight_rel: 0.0,
        }
    }
}

/// True when `n` has a rule of its own.
pub fn has_rule(n: &Node) -> bool {
    relevance_rule(&n.domain, &n.op_type).is_some()
}

/// Applies the node's rule. `rel` holds the relevance of each output (`None`: none arrived).
/// Returns `Ok(None)` when the op has no rule.
pub fn apply(c: &Ctx, rel: Vec<Option<T>>) -> RResult<Option<Backward>> {
    if !has_rule(c.node) {
        return Ok(None);
    }
    let n_in = c.node.inputs.len();
    let op = c.node.op_type.as_str();
    if op == "Split" {
        return routing::split(c, &rel).map(Some);
    }
    let r = match rel.into_iter().next().flatten() {
        Some(r) => r,
        None => return Ok(Some(Backward::default())),
    };
    if op == "Pow" {
        // All relevance to the base; to the exponent only when the base is constant.
        let slot = if c.carries(0) { 0 } else { 1 };
        return Ok(Some(Backward::single(n_in, slot, r)));
    }
    if relevance_rule(DEFAULT_DOMAIN, op) == Some(RelevanceRule::PassThrough) {
        let slot = if c.carries(0) {
            0
        } else {
            c.carrying_inputs().first().copied().unwrap_or(0)
        };
        let shape = c.in_shape(slot)?;
        let r = if r.len() == shape.iter().product::<usize>() && r.shape() != shape.as_slice() {
            super::tensor::reshape(r, &shape)?
        } else {
            r
        };
        return Ok(Some(Backward::single(n_in, slot, r)));
    }
    let b = match op {
        "Conv" => conv::conv(c, r)?,
        "ConvTranspose" => conv::conv_transpose(c, r)?,
        "Gemm" => linear::gemm(c, r)?,
        "MatMul" => linear::matmul(c, r)?,
        "Add" | "Sum" | "Mean" => elementwise::sum_like(c, r)?,
        "Sub" => elementwise::sub(c, r)?,
        "Mul" => elementwise::mul(c, r)?,
        "Div" => elementwise::div(c, r)?,
        "Max" | "Min" => elementwise::max_min(c, r)?,
        "Where" => elementwise::where_(c, r)?,
        "Softmax" => elementwise::softmax(c, r)?,
        "BatchNormalization" => elementwise::batchnorm(c, r)?,
        "MaxPool" | "AveragePool" => pool::pool(c, r)?,
        "GlobalAveragePool" | "GlobalMaxPool" => pool::global_pool(c, r)?,
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" => pool::reduce(c, r)?,
        "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => routing::reshape_back(c, r)?,
        "Transpose" => routing::transpose(c, r)?,
        "Concat" => routing::concat(c, r)?,
        "Slice" => routing::slice(c, r)?,
        "Gather" => routing::gather(c, r)?,
        "Expand" => Backward::single(n_in, 0, r),
        "Tile" => routing::tile(c, r)?,
        "Pad" => routing::pad(c, r)?,
        "DepthToSpace" | "SpaceToDepth" => routing::depth_space(c, r)?,
        "Resize" | "Upsample" => resize::resize(c, r)?,
        _ => return Ok(None),
    };
    Ok(Some(b))
}

/// The uniform rule (plumbing check, and the fallback for ops without a rule): ΣR_out
/// spread evenly over the elements of the relevance-carrying inputs.
pub fn uniform(c: &Ctx, rel: &[Option<T>]) -> RResult<Backward> {
    uniform_total(c, rel.iter().flatten().map(|r| r.sum()).sum())
}

/// [`uniform`] from the total ΣR over the node's outputs (all it reads of them).
pub fn uniform_total(c: &Ctx, total: f64) -> RResult<Backward> {
    let slots = c.carrying_inputs();
    let mut shapes = Vec::new();
    for &s in &slots {
        shapes.push(c.in_shape(s)?);
    }
    let count: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
    let mut b = Backward {
        inputs: vec![None; c.node.inputs.len()],
        weight_rel: 0.0,
    };
    if count == 0 {
        return Ok(b);
    }
    let each = total / count as f64;
    for (s, shape) in slots.into_iter().zip(shapes) {
        b.inputs[s] = Some(T::from_elem(ndarray::IxDyn(&shape), each));
    }
    Ok(b)
}
