//! The scheduling problem extracted from the IR: operators (one timestep each), the tensors
//! they touch with byte sizes from inferred shapes × dtype, producers, consumers and
//! operator dependencies.
//!
//! Tensor kinds:
//! * activations: produced by an operator, written off-chip only by a spill;
//! * graph inputs and (when the target keeps weights on chip) weights — initializers and
//!   outputs of Constant (or initializer-fed ConstantOfShape) nodes: these already live off-chip, so their first load before the first
//!   consumer is compulsory traffic, dropping them is free and only later re-loads count.
//!
//! Operator ids are positions in `graph.order`, so the model's own order is `0..n`.

use super::target::Target;
use optimize_ir::ir::types::fmt_shape;
use optimize_ir::ir::{Model, ValueType};
use petgraph::stable_graph::NodeIndex;
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use serde::Serialize;
use std::collections::HashMap;

pub type TensorId = usize;
pub type OpId = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TensorKind {
    Activation,
    Input,
    Weight,
}

#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    /// Bytes, rounded up to the target alignment.
    pub size: u64,
    pub kind: TensorKind,
    pub producer: Option<OpId>,
    /// Distinct consuming operators, ascending.
    pub consumers: Vec<OpId>,
    pub is_output: bool,
}

impl Tensor {
    /// True for tensors that already have an off-chip copy before any operator runs.
    pub fn host_backed(&self) -> bool {
        self.kind != TensorKind::Activation
    }
}

#[derive(Clone, Debug)]
pub struct Op {
    pub name: String,
    pub op_type: String,
    /// Distinct tracked input tensors.
    pub inputs: Vec<TensorId>,
    /// Tracked output tensors.
    pub outputs: Vec<TensorId>,
    /// Operators that must run before this one (through any tensor, tracked or not).
    pub preds: Vec<OpId>,
}

impl Op {
    /// Tensors that must be on chip while the operator runs.
    pub fn uses(&self) -> impl Iterator<Item = TensorId> + '_ {
        self.inputs.iter().chain(self.outputs.iter()).copied()
    }
}

#[derive(Clone, Debug)]
pub struct Problem {
    pub tensors: Vec<Tensor>,
    pub ops: Vec<Op>,
    pub alignment: u64,
    /// The IR node of each operator (empty for hand-built problems).
    pub nodes: Vec<NodeIndex>,
}

/// Builder for hand-made problems (tests, toys): sizes are used as given.
impl Problem {
    pub fn new(alignment: u64) -> Problem {
        Problem {
            tensors: Vec::new(),
            ops: Vec::new(),
            alignment: alignment.max(1),
            nodes: Vec::new(),
        }
    }

    pub fn add_tensor(&mut self, name: &str, size: u64, kind: TensorKind) -> TensorId {
        self.tensors.push(Tensor {
            name: name.to_string(),
            size: align_up(size, self.alignment),
            kind,
            producer: None,
            consumers: Vec::new(),
            is_output: false,
        });
        self.tensors.len() - 1
    }

    /// Adds an operator; dependencies follow from the producers of its inputs.
    pub fn add_op(&mut self, name: &str, inputs: &[TensorId], outputs: &[TensorId]) -> OpId {
        let id = self.ops.len();
        let mut ins: Vec<TensorId> = Vec::new();
        for &t in inputs {
            if !ins.contains(&t) {
                ins.push(t);
            }
        }
        let mut preds = Vec::new();
        for &t in &ins {
            if let Some(p) = self.tensors[t].producer {
                if !preds.contains(&p) {
                    preds.push(p);
                }
            }
            if !self.tensors[t].consumers.contains(&id) {
                self.tensors[t].consumers.push(id);
            }
        }
        for &t in outputs {
            self.tensors[t].producer = Some(id);
        }
        self.ops.push(Op {
            name: name.to_string(),
            op_type: name.to_string(),
            inputs: ins,
            outputs: outputs.to_vec(),
            preds,
        });
        id
    }

    pub fn n_ops(&self) -> usize {
        self.ops.len()
    }

    /// The model's own order.
    pub fn model_order(&self) -> Vec<OpId> {
        (0..self.ops.len()).collect()
    }

    /// Total bytes of distinct tracked inputs and outputs of `op`.
    pub fn op_bytes(&self, op: OpId) -> u64 {
        self.ops[op].uses().map(|t| self.tensors[t].size).sum()
    }

    /// Greatest common divisor of all tensor sizes (1 when there are none).
    pub fn size_unit(&self) -> u64 {
        let g = self
            .tensors
            .iter()
            .map(|t| t.size)
            .filter(|&s| s > 0)
            .fold(0, gcd);
        g.max(1)
    }

    /// Checks that `order` is a permutation of the operators that respects dependencies.
    pub fn check_order(&self, order: &[OpId]) -> Result<(), String> {
        if order.len() != self.ops.len() {
            return Err(format!(
                "the order has {} steps for {} operators",
                order.len(),
                self.ops.len()
            ));
        }
        let mut pos = vec![usize::MAX; self.ops.len()];
        for (t, &o) in order.iter().enumerate() {
            if o >= self.ops.len() {
                return Err(format!("step {t}: operator id {o} does not exist"));
            }
            if pos[o] != usize::MAX {
                return Err(format!(
                    "operator '{}' runs twice (steps {} and {t})",
                    self.ops[o].name, pos[o]
                ));
            }
            pos[o] = t;
        }
        for (t, &o) in order.iter().enumerate() {
            for &p in &self.ops[o].preds {
                if pos[p] > t {
                    return Err(format!(
                        "step {t}: operator '{}' runs before its predecessor '{}' (step {})",
                        self.ops[o].name, self.ops[p].name, pos[p]
                    ));
                }
            }
        }
        Ok(())
    }
}

pub fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

pub fn align_up(v: u64, a: u64) -> u64 {
    if a <= 1 {
        v
    } else {
        v.div_ceil(a) * a
    }
}

/// Byte size of a dense tensor type, or a message saying why it has none.
fn tensor_bytes(name: &str, ty: Option<&ValueType>) -> Result<u64, String> {
    match ty {
        Some(ValueType::Tensor { elem, shape }) => match optimize_ir::ir::types::static_dims(shape) {
            Some(dims) => {
                let n: u64 = dims.iter().map(|&d| d.max(0) as u64).product();
                Ok(elem.storage_bytes(n))
            }
            None => Err(format!(
                "tensor '{name}' has the dynamic shape {}: bind the model's symbolic input dimensions with --input-shape NAME=DIMS (e.g. x=1x3x224x224) so every tensor size is known",
                fmt_shape(shape)
            )),
        },
        Some(other) => Err(format!(
            "tensor '{name}' is of type {other}, which has no fixed byte size; scratchpad scheduling needs dense tensors of static shape"
        )),
        None => Err(format!(
            "tensor '{name}' has an unknown type or shape: bind the model's symbolic input dimensions with --input-shape NAME=DIMS"
        )),
    }
}

/// Extracts the problem from a model whose shapes were inferred (`shape::infer`).
pub fn extract(model: &Model, target: &Target) -> Result<Problem, String> {
    let g = &model.graph;
    let op_of: HashMap<NodeIndex, OpId> =
        g.order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let mut ex = Extraction {
        g,
        target,
        p: Problem::new(target.alignment),
        outputs: g.outputs.iter().map(|s| s.as_str()).collect(),
        ids: HashMap::new(),
    };
    // Unbound graph inputs first: they are what the user has to bind.
    for name in g.runtime_inputs() {
        tensor_bytes(name, g.value_type(name))?;
    }
    // Tensors produced by operators.
    for (i, &n) in g.order.iter().enumerate() {
        ex.produced_tensors(i, n)?;
    }
    // Operators, their tracked inputs (graph inputs and weights added on first read).
    for (i, &n) in g.order.iter().enumerate() {
        ex.add_op(i, n, &op_of)?;
    }
    let mut p = ex.p;
    for t in &mut p.tensors {
        t.consumers.sort_unstable();
        t.consumers.dedup();
    }
    drop_unread_host_tensors(&mut p);
    Ok(p)
}

/// The problem while [`extract`] builds it, with the tensor id of each tracked name.
struct Extraction<'m> {
    g: &'m optimize_ir::ir::Graph,
    target: &'m Target,
    p: Problem,
    /// The graph's outputs.
    outputs: std::collections::HashSet<&'m str>,
    ids: HashMap<&'m str, TensorId>,
}

impl<'m> Extraction<'m> {
    /// The non-empty outputs of operator `i` (node `n`): activations, or weights when
    /// the node makes constants and the target keeps weights on chip (else untracked).
    fn produced_tensors(&mut self, i: OpId, n: NodeIndex) -> Result<(), String> {
        let g = self.g;
        let node = &g.ops[n];
        // Constant tensors: Constant nodes, and ConstantOfShape fed only by initializers
        // (how weight-stripped models carry their weights).
        let weight = node.is("Constant")
            || (node.is("ConstantOfShape")
                && node
                    .inputs
                    .iter()
                    .all(|i| i.is_empty() || g.initializers.contains_key(i)));
        if weight && !self.target.weights_in_scratchpad {
            return Ok(());
        }
        for out in node.outputs.iter().filter(|o| !o.is_empty()) {
            let bytes = tensor_bytes(out, g.value_type(out))?;
            if bytes == 0 {
                continue;
            }
            let kind = if weight {
                TensorKind::Weight
            } else {
                TensorKind::Activation
            };
            let id = self.p.add_tensor(out, bytes, kind);
            if !weight {
                self.p.tensors[id].producer = Some(i);
            }
            self.p.tensors[id].is_output = self.outputs.contains(out.as_str());
            self.ids.insert(out.as_str(), id);
        }
        Ok(())
    }

    /// Operator `i` (node `n`) with its tracked inputs, predecessors and outputs.
    fn add_op(
        &mut self,
        i: OpId,
        n: NodeIndex,
        op_of: &HashMap<NodeIndex, OpId>,
    ) -> Result<(), String> {
        let g = self.g;
        let node = &g.ops[n];
        let mut inputs = Vec::new();
        // A node that makes a weight reads only shape parameters: nothing to track.
        let makes_weight = node.outputs.iter().any(|o| {
            self.ids
                .get(o.as_str())
                .is_some_and(|&t| self.p.tensors[t].kind == TensorKind::Weight)
        }) || (!self.target.weights_in_scratchpad
            && (node.is("Constant") || node.is("ConstantOfShape"))
            && node
                .inputs
                .iter()
                .all(|i| i.is_empty() || g.initializers.contains_key(i)));
        for inp in node
            .inputs
            .iter()
            .filter(|s| !s.is_empty())
            .filter(|_| !makes_weight)
        {
            if let Some(id) = self.read_tensor(inp)? {
                if !inputs.contains(&id) {
                    inputs.push(id);
                }
            }
        }
        for &t in &inputs {
            self.p.tensors[t].consumers.push(i);
        }
        let mut preds: Vec<OpId> = g
            .ops
            .edges_directed(n, Direction::Incoming)
            .filter_map(|e| op_of.get(&e.source()).copied())
            .collect();
        preds.sort_unstable();
        preds.dedup();
        let outputs_tracked: Vec<TensorId> = node
            .outputs
            .iter()
            .filter_map(|o| self.ids.get(o.as_str()).copied())
            .filter(|&t| self.p.tensors[t].producer == Some(i))
            .collect();
        self.p.ops.push(Op {
            name: if node.name.is_empty() {
                format!("{}#{i}", node.op_type)
            } else {
                node.name.clone()
            },
            op_type: node.qualified_op(),
            inputs,
            outputs: outputs_tracked,
            preds,
        });
        self.p.nodes.push(n);
        Ok(())
    }

    /// The tensor an operator input reads: a tracked one, or a graph input or weight
    /// tracked from this first read; `None` for what the scratchpad does not hold
    /// (weights off chip, empty tensors, untracked Constant outputs).
    fn read_tensor(&mut self, inp: &'m str) -> Result<Option<TensorId>, String> {
        let g = self.g;
        if let Some(&id) = self.ids.get(inp) {
            return Ok(Some(id));
        }
        let kind = if g.initializers.contains_key(inp) {
            Some(TensorKind::Weight)
        } else if g.is_graph_input(inp) {
            Some(TensorKind::Input)
        } else {
            None // an untracked Constant output
        };
        Ok(match kind {
            Some(TensorKind::Weight) if !self.target.weights_in_scratchpad => None,
            Some(kind) => {
                let bytes = tensor_bytes(inp, g.value_type(inp))?;
                if bytes == 0 {
                    None
                } else {
                    let id = self.p.add_tensor(inp, bytes, kind);
                    self.p.tensors[id].is_output = self.outputs.contains(inp);
                    self.ids.insert(inp, id);
                    Some(id)
                }
            }
            None => None,
        })
    }
}

/// Host-backed tensors no operator reads never need the scratchpad: drops them and
/// renumbers the rest.
fn drop_unread_host_tensors(p: &mut Problem) {
    let keep: Vec<bool> = p
        .tensors
        .iter()
        .map(|t| !(t.host_backed() && t.consumers.is_empty()))
        .collect();
    if keep.iter().any(|k| !k) {
        let mut remap = vec![usize::MAX; p.tensors.len()];
        let mut kept = Vec::new();
        for (i, t) in p.tensors.drain(..).enumerate() {
            if keep[i] {
                remap[i] = kept.len();
                kept.push(t);
            }
        }
        p.tensors = kept;
        for op in &mut p.ops {
            op.inputs.retain(|&t| remap[t] != usize::MAX);
            op.inputs.iter_mut().for_each(|t| *t = remap[*t]);
            op.outputs.retain(|&t| remap[t] != usize::MAX);
            op.outputs.iter_mut().for_each(|t| *t = remap[*t]);
        }
    }
}

/// When each tensor needs the scratchpad under one order.
#[derive(Clone, Debug)]
pub struct Lifetimes {
    /// Step of each operator.
    pub pos: Vec<usize>,
    /// First step the tensor is on chip: its producer's, or (host-backed) its first reader's.
    pub start: Vec<usize>,
    /// Last step it is needed (its producer's when nobody reads it).
    pub end: Vec<usize>,
    /// Steps at which it is used (produced or read), ascending.
    pub uses: Vec<Vec<usize>>,
}

impl Lifetimes {
    pub fn new(p: &Problem, order: &[OpId]) -> Lifetimes {
        let mut pos = vec![0; p.ops.len()];
        for (t, &o) in order.iter().enumerate() {
            pos[o] = t;
        }
        let mut uses: Vec<Vec<usize>> = vec![Vec::new(); p.tensors.len()];
        for (t, &o) in order.iter().enumerate() {
            for a in p.ops[o].uses() {
                uses[a].push(t);
            }
        }
        for u in &mut uses {
            u.sort_unstable();
            u.dedup();
        }
        let start = uses
            .iter()
            .map(|u| u.first().copied().unwrap_or(0))
            .collect();
        let end = uses
            .iter()
            .map(|u| u.last().copied().unwrap_or(0))
            .collect();
        Lifetimes {
            pos,
            start,
            end,
            uses,
        }
    }

    /// The first use of `a` strictly after step `t`.
    pub fn next_use(&self, a: TensorId, t: usize) -> Option<usize> {
        let u = &self.uses[a];
        let i = u.partition_point(|&s| s <= t);
        u.get(i).copied()
    }

    /// True when `a` is alive during step `t` (between first and last use).
    pub fn live_at(&self, a: TensorId, t: usize) -> bool {
        !self.uses[a].is_empty() && self.start[a] <= t && t <= self.end[a]
    }
}
