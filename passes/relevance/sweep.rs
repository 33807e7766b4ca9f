//! The backward sweep: start at the target output, visit nodes in reverse topological
//! order, apply each node's rule, sum relevance where a tensor feeds several consumers and
//! un-broadcast it to each operand's shape.

use super::activations::Activations;
use super::config::{RuleConfig, SoftmaxRule, StartMode};
use super::graph_info::{batchnorm_folds, carrying};
use super::rules::{self, Backward, Ctx};
use super::tensor::{abs_and_plain_sum, reshape, unbroadcast, T};
use crate::data::HostTensor;
use crate::error::{Error, Result};
use crate::ir::{Model, Node};
use ndarray::IxDyn;
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

fn label(n: &Node) -> String {
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
        Some(st) => {
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
            (
                st.tensor.clone(),
                best.0,
                st.tensor.clone(),
                None,
                st.relevance.clone(),
                st.relevance.sum(),
            )
        }
        None => resolve_target(model, acts, target, cfg, &carry)?,
    };
    let mut rel: HashMap<String, T> = HashMap::new();
    rel.insert(start_tensor.clone(), r0);

    let mut failed: HashMap<petgraph::stable_graph::NodeIndex, String> = HashMap::new();
    let mut stats: HashMap<petgraph::stable_graph::NodeIndex, (f64, f64)> = HashMap::new();
    for &idx in g.order.iter().rev() {
        let node = &g.ops[idx];
        if Some(idx) == start_node {
            continue;
        }
        let rel_out: Vec<Option<T>> = node
            .outputs
            .iter()
            .map(|o| if o.is_empty() { None } else { rel.remove(o) })
            .collect();
        if rel_out.iter().all(|r| r.is_none()) {
            continue;
        }
        // Σ|R| for the scores, ΣR for the even split should the rule fail (the rule
        // takes the tensors themselves).
        let (out_abs, out_sum) = rel_out
            .iter()
            .flatten()
            .map(abs_and_plain_sum)
            .fold((0.0, 0.0), |(a, s), (x, y)| (a + x, s + y));
        let started = times.is_some().then(std::time::Instant::now);
        let fold = folds.get(&idx).map(|f| &g.ops[f.bn]);
        let ctx = Ctx {
            graph: g,
            node,
            acts,
            cfg,
            carry: &carry,
            opset,
            fold,
            conv_depth: conv_depth.get(&idx).copied(),
        };
        let back: Backward = if folded_bn.contains(&idx) {
            // Folded into the layer before it: the layer sees the BN output's relevance.
            let mut b = Backward::single(node.inputs.len(), 0, T::zeros(IxDyn(&[0])));
            b.inputs[0] = rel_out.into_iter().next().flatten();
            b
        } else if cfg.uniform {
            rules::uniform(&ctx, &rel_out).map_err(Error::Internal)?
        } else {
            match rules::apply(&ctx, rel_out) {
                Ok(Some(b)) => b,
                Ok(None) => {
                    if strict {
                        return Err(Error::Usage(format!(
                            "no relevance rule for op '{}' (node '{}'); without --strict it would split relevance evenly",
                            node.qualified_op(),
                            label(node)
                        )));
                    }
                    failed.insert(idx, "no rule for this op".into());
                    rules::uniform_total(&ctx, out_sum).map_err(Error::Internal)?
                }
                Err(why) => {
                    if strict {
                        return Err(Error::Usage(format!(
                            "relevance rule for op '{}' (node '{}') failed: {why}",
                            node.qualified_op(),
                            label(node)
                        )));
                    }
                    failed.insert(idx, why);
                    rules::uniform_total(&ctx, out_sum).map_err(Error::Internal)?
                }
            }
        };
        stats.insert(idx, (out_abs, back.weight_rel));
        for (slot, r) in back.inputs.into_iter().enumerate() {
            let Some(r) = r else { continue };
            let Some(name) = node.inputs.get(slot).filter(|n| !n.is_empty()) else {
                continue;
            };
            if !carry.contains(name) {
                continue;
            }
            let shape = acts.shape(name).map_err(Error::Internal)?;
            let r = fit(r, &shape).map_err(|e| {
                Error::Internal(format!(
                    "node '{}' ({}), input '{name}': {e}",
                    label(node),
                    node.op_type
                ))
            })?;
            match rel.get_mut(name) {
                Some(acc) => *acc += &r,
                None => {
                    rel.insert(name.clone(), r);
                }
            }
        }
        if let (Some(t), Some(s)) = (times.as_deref_mut(), started) {
            let e = t.entry(node.op_type.clone()).or_insert((0, 0.0));
            e.0 += 1;
            e.1 += s.elapsed().as_secs_f64();
        }
    }

    let mut inputs = Vec::new();
    for name in g.runtime_inputs() {
        let r = match rel.remove(name) {
            Some(r) => r,
            None => {
                let shape = acts.shape(name).map_err(Error::Internal)?;
                T::zeros(IxDyn(&shape))
            }
        };
        inputs.push((name.to_string(), r));
    }

    let mut coverage = Coverage {
        nodes: g.node_count(),
        ..Coverage::default()
    };
    let mut nodes = Vec::new();
    for (idx, n) in g.nodes() {
        let on_path = n.inputs.iter().any(|i| carry.contains(i))
            && n.outputs.iter().any(|o| carry.contains(o));
        if !on_path {
            coverage.constant += 1;
        } else {
            coverage.on_path += 1;
            let why = if let Some(w) = failed.get(&idx) {
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
                        .push((label(n), n.qualified_op(), w));
                }
            }
        }
        let (out_abs, weight_abs) = stats.get(&idx).copied().unwrap_or((0.0, 0.0));
        nodes.push(NodeRelevance {
            name: label(n),
            op: n.qualified_op(),
            out_abs,
            weight_abs,
        });
    }
    coverage.covered = coverage.constant + coverage.ruled;
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

/// True when the graph multiplies two activations (MatMul of two relevance-carrying
/// operands): attention, so a non-final Softmax gets the AttnLRP rule under `auto`.
fn has_attention(g: &crate::ir::Graph, carry: &HashSet<String>) -> bool {
    g.nodes().any(|(_, n)| {
        n.is("MatMul") && n.inputs.len() == 2 && n.inputs.iter().all(|i| carry.contains(i))
    })
}

/// Each data-path Conv/ConvTranspose's rank among them in topological order, 0 to 1.
fn conv_depths(g: &crate::ir::Graph, carry: &HashSet<String>) -> HashMap<NodeIndex, f64> {
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
