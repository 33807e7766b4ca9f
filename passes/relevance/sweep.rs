//! The backward sweep: start at the target output, visit nodes in reverse topological
//! order, apply each node's rule, sum relevance where a tensor feeds several consumers and
//! un-broadcast it to each operand's shape.

use super::activations::Activations;
use super::config::{RuleConfig, SoftmaxRule, StartMode};
use super::graph_info::{batchnorm_folds, carrying, Fold};
use super::rules::{self, Backward, Ctx};
use super::tensor::{abs_and_plain_sum, reshape, unbroadcast, T};
use ndarray::IxDyn;
use optimize_ir::data::HostTensor;
use optimize_ir::error::{Error, Result};
use optimize_ir::ir::{Graph, Model, Node};
use petgraph::stable_graph::NodeIndex;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Which output element to explain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// Graph output name; the first float output when `None`.
    pub output: Option<String>,
    /// Flat index into that output; its argmax when `None`.
    pub index: Option<usize>,
}

/// How each node was handled.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// All nodes of the graph.
    pub nodes: usize,
    /// Nodes that need no relevance: constant and shape-only subgraphs.
    pub constant: usize,
    /// Nodes on a data path from an input (relevance may flow through them).
    pub on_path: usize,
    /// On-path nodes handled by a rule of their own.
    pub ruled: usize,
    /// `constant + ruled`.
    pub covered: usize,
    /// Uncovered nodes per op type (they split relevance evenly).
    pub uncovered_ops: BTreeMap<String, usize>,
    /// Uncovered nodes: (node, op, why).
    pub uncovered_nodes: Vec<(String, String, String)>,
}

impl Coverage {
    /// covered / nodes (1 for an empty graph).
    pub fn fraction(&self) -> f64 {
        if self.nodes == 0 {
            1.0
        } else {
            self.covered as f64 / self.nodes as f64
        }
    }
}

/// Per-node result of one sweep, in graph order.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeRelevance {
    pub name: String,
    pub op: String,
    /// Σ|R| over the node's outputs.
    pub out_abs: f64,
    /// Σ|R_W| of its weights.
    pub weight_abs: f64,
}

/// The relevance of one input sample.
#[derive(Clone, Debug)]
pub struct SampleRelevance {
    pub target_output: String,
    pub target_index: usize,
    /// The tensor the sweep started at (the logits when the model ends in Softmax).
    pub start_tensor: String,
    /// Relevance put at the start.
    pub start_value: f64,
    /// Relevance per runtime input, in input order.
    pub inputs: Vec<(String, T)>,
    pub nodes: Vec<NodeRelevance>,
    pub coverage: Coverage,
}

impl SampleRelevance {
    /// Σ of all input relevance.
    pub fn input_sum(&self) -> f64 {
        self.inputs.iter().map(|(_, r)| r.sum()).sum()
    }
}

/// Runs the model once on onnxruntime and sweeps relevance back from the target.
pub fn explain(
    model: &Model,
    inputs: &[(String, HostTensor)],
    target: &Target,
    cfg: &RuleConfig,
    strict: bool,
) -> Result<SampleRelevance> {
    let acts = super::activations::Collector::for_config(model, cfg)?.run(inputs)?;
    explain_with(model, &acts, target, cfg, strict)
}

/// The label an operator gets in relevance results: its name, or `<first output>` when
/// unnamed. Callers that look results up by operator use it too.
pub fn node_label(n: &Node) -> String {
    if n.name.is_empty() {
        format!("<{}>", n.outputs.first().cloned().unwrap_or_default())
    } else {
        n.name.clone()
    }
}

/// Fits relevance to an operand's shape: un-broadcast, or reshape when only the layout differs.
fn fit(r: T, shape: &[usize]) -> std::result::Result<T, String> {
    if r.shape() == shape {
        return Ok(r);
    }
    let n: usize = shape.iter().product();
    let from = r.shape().to_vec();
    match unbroadcast(r.clone(), shape) {
        Ok(u) => Ok(u),
        Err(_) if r.len() == n => reshape(r, shape),
        Err(_) => Err(format!(
            "relevance of shape {from:?} does not fit operand shape {shape:?}"
        )),
    }
}

/// A sweep that starts from given relevance on any tensor (a region of an output map, a
/// contrast of two logits) instead of one output element.
#[derive(Clone, Debug)]
pub struct Start {
    pub tensor: String,
    /// Relevance put on `tensor`, of its shape.
    pub relevance: T,
}

/// [`explain_with`] from a [`Start`]; the result's `target_output` is the start tensor and
/// `start_value` the sum of the start relevance.
pub fn explain_from(
    model: &Model,
    acts: &Activations,
    start: &Start,
    cfg: &RuleConfig,
    strict: bool,
) -> Result<SampleRelevance> {
    sweep(
        model,
        acts,
        &Target::default(),
        cfg,
        strict,
        Some(start),
        None,
    )
}

/// Seconds and node count per op type of one sweep, for profiling the rules.
pub type OpTimes = BTreeMap<String, (usize, f64)>;

/// The sweep over recorded activations.
pub fn explain_with(
    model: &Model,
    acts: &Activations,
    target: &Target,
    cfg: &RuleConfig,
    strict: bool,
) -> Result<SampleRelevance> {
    sweep(model, acts, target, cfg, strict, None, None)
}

/// [`explain_with`], also timing each rule per op type (the benchmark's profile).
pub fn explain_with_times(
    model: &Model,
    acts: &Activations,
    target: &Target,
    cfg: &RuleConfig,
    strict: bool,
) -> Result<(SampleRelevance, OpTimes)> {
    let mut times = OpTimes::new();
    let r = sweep(model, acts, target, cfg, strict, None, Some(&mut times))?;
    Ok((r, times))
}

fn sweep(
    model: &Model,
    acts: &Activations,
    target: &Target,
    cfg: &RuleConfig,
    strict: bool,
    start: Option<&Start>,
    mut times: Option<&mut OpTimes>,
) -> Result<SampleRelevance> {
    let g = &model.graph;
    let carry = carrying(g);
    let resolved;
    let cfg = if cfg.auto_softmax {
        resolved = RuleConfig {
            softmax: if has_attention(g, &carry) {
                SoftmaxRule::AttnLrp
            } else {
                cfg.softmax
            },
            ..cfg.clone()
        };
        &resolved
    } else {
        cfg
    };
    let conv_depth = conv_depths(g, &carry);
    let folds = if cfg.fold_batchnorm {
        batchnorm_folds(g)
    } else {
        HashMap::new()
    };
    let folded_bn: HashSet<_> = folds.values().map(|f| f.bn).collect();
    let opset = model.opset("").unwrap_or(13);

    let (out_name, index, start_tensor, start_node, r0, start_value) = match start {
        Some(st) => start_at(acts, st)?,
        None => resolve_target(model, acts, target, cfg, &carry)?,
    };
    let mut sw = Backprop {
        g,
        acts,
        cfg,
        carry: &carry,
        opset,
        conv_depth,
        folds,
        folded_bn,
        strict,
        rel: HashMap::new(),
        failed: HashMap::new(),
        stats: HashMap::new(),
    };
    sw.rel.insert(start_tensor.clone(), r0);
    for &idx in g.order.iter().rev() {
        if Some(idx) == start_node {
            continue;
        }
        sw.node(idx, times.as_deref_mut())?;
    }

    let mut inputs = Vec::new();
    for name in g.runtime_inputs() {
        let r = match sw.rel.remove(name) {
            Some(r) => r,
            None => {
                let shape = acts.shape(name).map_err(Error::Internal)?;
                T::zeros(IxDyn(&shape))
            }
        };
        inputs.push((name.to_string(), r));
    }
    let (coverage, nodes) = sw.coverage(start_node);
    Ok(SampleRelevance {
        target_output: out_name,
        target_index: index,
        start_tensor,
        start_value,
        inputs,
        nodes,
        coverage,
    })
}

/// The start of an explanation from a given relevance tensor: its tensor as the target
/// output, the index of its largest |R| as the target index, and its sum as the value.
fn start_at(
    acts: &Activations,
    st: &Start,
) -> Result<(String, usize, String, Option<NodeIndex>, T, f64)> {
    let shape = acts.shape(&st.tensor).map_err(Error::Usage)?;
    if st.relevance.shape() != shape.as_slice() {
        return Err(Error::Usage(format!(
            "start relevance of shape {:?} does not match tensor '{}' of shape {shape:?}",
            st.relevance.shape(),
            st.tensor
        )));
    }
    let mut best = (0, f64::NEG_INFINITY);
    for (i, &v) in st.relevance.iter().enumerate() {
        if v.abs() > best.1 {
            best = (i, v.abs());
        }
    }
    Ok((
        st.tensor.clone(),
        best.0,
        st.tensor.clone(),
        None,
        st.relevance.clone(),
        st.relevance.sum(),
    ))
}

/// The backward sweep in progress: the relevance waiting at each tensor (summed over
/// its readers in the order they are visited), and per node the failure of its rule, if
/// any, and its (Σ|R| out, weight relevance).
struct Backprop<'a> {
    g: &'a Graph,
    acts: &'a Activations,
    cfg: &'a RuleConfig,
    carry: &'a HashSet<String>,
    opset: i64,
    conv_depth: HashMap<NodeIndex, f64>,
    folds: HashMap<NodeIndex, Fold>,
    /// BatchNormalizations folded into the layer before them.
    folded_bn: HashSet<NodeIndex>,
    strict: bool,
    rel: HashMap<String, T>,
    failed: HashMap<NodeIndex, String>,
    stats: HashMap<NodeIndex, (f64, f64)>,
}

impl<'a> Backprop<'a> {
    /// Moves the relevance at node `idx`'s outputs to its relevance-carrying inputs
    /// (nothing when no output has any), timing the rule when `times` is given.
    fn node(&mut self, idx: NodeIndex, times: Option<&mut OpTimes>) -> Result<()> {
        let g = self.g;
        let node = &g.ops[idx];
        let rel_out: Vec<Option<T>> = node
            .outputs
            .iter()
            .map(|o| {
                if o.is_empty() {
                    None
                } else {
                    self.rel.remove(o)
                }
            })
            .collect();
        if rel_out.iter().all(|r| r.is_none()) {
            return Ok(());
        }
        // Σ|R| for the scores, ΣR for the even split should the rule fail (the rule
        // takes the tensors themselves).
        let (out_abs, out_sum) = rel_out
            .iter()
            .flatten()
            .map(abs_and_plain_sum)
            .fold((0.0, 0.0), |(a, s), (x, y)| (a + x, s + y));
        let started = times.is_some().then(std::time::Instant::now);
        let back = self.backward(idx, rel_out, out_sum)?;
        self.stats.insert(idx, (out_abs, back.weight_rel));
        for (slot, r) in back.inputs.into_iter().enumerate() {
            let Some(r) = r else { continue };
            let Some(name) = node.inputs.get(slot).filter(|n| !n.is_empty()) else {
                continue;
            };
            if !self.carry.contains(name) {
                continue;
            }
            let shape = self.acts.shape(name).map_err(Error::Internal)?;
            let r = fit(r, &shape).map_err(|e| {
                Error::Internal(format!(
                    "node '{}' ({}), input '{name}': {e}",
                    node_label(node),
                    node.op_type
                ))
            })?;
            match self.rel.get_mut(name) {
                Some(acc) => *acc += &r,
                None => {
                    self.rel.insert(name.clone(), r);
                }
            }
        }
        if let (Some(t), Some(s)) = (times, started) {
            let e = t.entry(node.op_type.clone()).or_insert((0, 0.0));
            e.0 += 1;
            e.1 += s.elapsed().as_secs_f64();
        }
        Ok(())
    }

    /// Node `idx`'s rule on its output relevance: a folded BatchNormalization passes it
    /// through, `uniform` splits it evenly, otherwise the op's rule; without a rule or when
    /// it fails, an even split of `out_sum` (an error under `strict`).
    fn backward(
        &mut self,
        idx: NodeIndex,
        rel_out: Vec<Option<T>>,
        out_sum: f64,
    ) -> Result<Backward> {
        let g = self.g;
        let node = &g.ops[idx];
        let fold = self.folds.get(&idx).map(|f| &g.ops[f.bn]);
        let ctx = Ctx {
            graph: g,
            node,
            acts: self.acts,
            cfg: self.cfg,
            carry: self.carry,
            opset: self.opset,
            fold,
            conv_depth: self.conv_depth.get(&idx).copied(),
        };
        Ok(if self.folded_bn.contains(&idx) {
            // Folded into the layer before it: the layer sees the BN output's relevance.
            let mut b = Backward::single(node.inputs.len(), 0, T::zeros(IxDyn(&[0])));
            b.inputs[0] = rel_out.into_iter().next().flatten();
            b
        } else if self.cfg.uniform {
            rules::uniform(&ctx, &rel_out).map_err(Error::Internal)?
        } else {
            match rules::apply(&ctx, rel_out) {
                Ok(Some(b)) => b,
                Ok(None) => {
                    if self.strict {
                        return Err(Error::Usage(format!(
                            "no relevance rule for op '{}' (node '{}'); without --strict it would split relevance evenly",
                            node.qualified_op(),
                            node_label(node)
                        )));
                    }
                    self.failed.insert(idx, "no rule for this op".into());
                    rules::uniform_total(&ctx, out_sum).map_err(Error::Internal)?
                }
                Err(why) => {
                    if self.strict {
                        return Err(Error::Usage(format!(
                            "relevance rule for op '{}' (node '{}') failed: {why}",
                            node.qualified_op(),
                            node_label(node)
                        )));
                    }
                    self.failed.insert(idx, why);
                    rules::uniform_total(&ctx, out_sum).map_err(Error::Internal)?
                }
            }
        })
    }

    /// Rule coverage of the data path and every node's relevance figures, in graph order.
    fn coverage(&self, start_node: Option<NodeIndex>) -> (Coverage, Vec<NodeRelevance>) {
        let g = self.g;
        let mut coverage = Coverage {
            nodes: g.node_count(),
            ..Coverage::default()
        };
        let mut nodes = Vec::new();
        for (idx, n) in g.nodes() {
            let on_path = n.inputs.iter().any(|i| self.carry.contains(i))
                && n.outputs.iter().any(|o| self.carry.contains(o));
            if !on_path {
                coverage.constant += 1;
            } else {
                coverage.on_path += 1;
                let why = if let Some(w) = self.failed.get(&idx) {
                    Some(w.clone())
                } else if rules::has_rule(n) || Some(idx) == start_node {
                    None
                } else {
                    Some("no rule for this op".to_string())
                };
                match why {
                    None => coverage.ruled += 1,
                    Some(w) => {
                        *coverage.uncovered_ops.entry(n.qualified_op()).or_insert(0) += 1;
                        coverage
                            .uncovered_nodes
                            .push((node_label(n), n.qualified_op(), w));
                    }
                }
            }
            let (out_abs, weight_abs) = self.stats.get(&idx).copied().unwrap_or((0.0, 0.0));
            nodes.push(NodeRelevance {
                name: node_label(n),
                op: n.qualified_op(),
                out_abs,
                weight_abs,
            });
        }
        coverage.covered = coverage.constant + coverage.ruled;
        (coverage, nodes)
    }
}

/// True when the graph multiplies two activations (MatMul of two relevance-carrying
/// operands): attention, so a non-final Softmax gets the AttnLRP rule under `auto`.
fn has_attention(g: &optimize_ir::ir::Graph, carry: &HashSet<String>) -> bool {
    g.nodes().any(|(_, n)| {
        n.is("MatMul") && n.inputs.len() == 2 && n.inputs.iter().all(|i| carry.contains(i))
    })
}

/// Each data-path Conv/ConvTranspose's rank among them in topological order, 0 to 1.
fn conv_depths(g: &optimize_ir::ir::Graph, carry: &HashSet<String>) -> HashMap<NodeIndex, f64> {
    let convs: Vec<NodeIndex> = g
        .order
        .iter()
        .copied()
        .filter(|&i| {
            let n = &g.ops[i];
            (n.is("Conv") || n.is("ConvTranspose"))
                && n.inputs.first().is_some_and(|x| carry.contains(x))
        })
        .collect();
    let last = convs.len().saturating_sub(1).max(1) as f64;
    convs
        .into_iter()
        .enumerate()
        .map(|(k, i)| (i, k as f64 / last))
        .collect()
}

/// The target's output, flat index, start tensor (the logits before a final Softmax), the
/// skipped final Softmax node, the start relevance and its value.
fn resolve_target(
    model: &Model,
    acts: &Activations,
    target: &Target,
    cfg: &RuleConfig,
    carry: &HashSet<String>,
) -> Result<(String, usize, String, Option<NodeIndex>, T, f64)> {
    let g = &model.graph;
    // The target output.
    let out_name = match &target.output {
        Some(o) => {
            if !g.outputs.contains(o) {
                return Err(Error::Usage(format!(
                    "--target output '{o}' is not an output of the model (outputs: {})",
                    g.outputs.join(", ")
                )));
            }
            o.clone()
        }
        None => g
            .outputs
            .iter()
            .find(|o| {
                carry.contains(*o)
                    && g.value_type(o)
                        .and_then(|t| t.elem())
                        .is_some_and(|e| e.is_float())
            })
            .cloned()
            .ok_or_else(|| {
                Error::Usage(
                    "the model has no float output that depends on its inputs: nothing to explain"
                        .into(),
                )
            })?,
    };
    let y = acts.get(&out_name).map_err(Error::Internal)?;
    if y.is_empty() {
        return Err(Error::Usage(format!("output '{out_name}' is empty")));
    }
    let index = match target.index {
        Some(k) if k >= y.len() => {
            return Err(Error::Usage(format!(
                "--target {k} is out of range: output '{out_name}' has {} elements",
                y.len()
            )))
        }
        Some(k) => k,
        None => {
            let mut best = (0, f64::NEG_INFINITY);
            for (i, &v) in y.iter().enumerate() {
                if v > best.1 {
                    best = (i, v);
                }
            }
            best.0
        }
    };
    // A final Softmax: start from the logits instead.
    let mut start_tensor = out_name.clone();
    let mut start_node = None;
    if let Some(p) = g.producer(&out_name) {
        let n = &g.ops[p];
        if (n.is("Softmax") || n.is("LogSoftmax"))
            && n.inputs.first().is_some_and(|i| carry.contains(i))
            && acts.shape(&n.inputs[0]).ok() == Some(y.shape().to_vec())
        {
            start_tensor = n.inputs[0].clone();
            start_node = Some(p);
        }
    }
    let sv = acts.get(&start_tensor).map_err(Error::Internal)?;
    let start_value = match cfg.start {
        StartMode::Value => sv.iter().nth(index).copied().unwrap_or(0.0),
        StartMode::One => 1.0,
    };
    let mut r0 = T::zeros(sv.raw_dim());
    if let Some(v) = r0.iter_mut().nth(index) {
        *v = start_value;
    }
    Ok((out_name, index, start_tensor, start_node, r0, start_value))
}
