//! The intermediate representation: a petgraph DAG of ONNX operators whose edges are
//! the tensors flowing between them.
//!
//! Anything the optimizer does not interpret is kept verbatim (attributes, subgraphs,
//! functions, training info, doc strings, metadata) so that export is lossless.

pub mod affine;
pub mod attr;
pub mod build;
pub mod dtype;
pub mod dump;
pub mod op_table;
pub mod tensor;
pub mod types;

pub use dtype::DataType;
pub use types::{Dim, Shape, ValueType};

use indexmap::IndexMap;
use onnx_protobuf::{
    AttributeProto, FunctionProto, SparseTensorProto, StringStringEntryProto, TensorAnnotation,
    TensorProto, TrainingInfoProto, ValueInfoProto,
};
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences};
use std::collections::{BTreeMap, HashMap};

/// The ONNX default domain; `ai.onnx` is an alias of it.
pub const DEFAULT_DOMAIN: &str = "";

/// Normalizes `ai.onnx` to the empty default domain.
pub fn canonical_domain(d: &str) -> &str {
    if d == "ai.onnx" {
        DEFAULT_DOMAIN
    } else {
        d
    }
}

/// A whole model: graph plus everything ModelProto carries around it.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub ir_version: i64,
    /// Opset imports in file order (domain, version).
    pub opsets: Vec<(String, i64)>,
    pub producer_name: String,
    pub producer_version: String,
    pub domain: String,
    pub model_version: i64,
    pub doc_string: String,
    pub metadata_props: Vec<StringStringEntryProto>,
    /// Model-local functions, kept verbatim.
    pub functions: Vec<FunctionProto>,
    /// Training info, kept verbatim.
    pub training_info: Vec<TrainingInfoProto>,
    pub graph: Graph,
    /// True when some tensor was stored as external data in the source file; export
    /// then writes large tensors to a data file beside the output again.
    pub had_external_data: bool,
    /// The files external data was read from (as resolved inside the model's folder): no
    /// output may be written over them.
    pub external_data_files: Vec<std::path::PathBuf>,
}

impl Model {
    /// The imported version of `domain` (with `ai.onnx` = default domain).
    pub fn opset(&self, domain: &str) -> Option<i64> {
        let d = canonical_domain(domain);
        self.opsets
            .iter()
            .find(|(od, _)| canonical_domain(od) == d)
            .map(|(_, v)| *v)
    }
}

/// One operator.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Node {
    pub name: String,
    pub op_type: String,
    pub domain: String,
    pub overload: String,
    /// Input tensor names in order; an empty string is an omitted optional input.
    pub inputs: Vec<String>,
    /// Output tensor names in order; an empty string is an omitted optional output.
    pub outputs: Vec<String>,
    /// Attributes, kept as protobuf messages (subgraphs included) so nothing is lost.
    pub attributes: Vec<AttributeProto>,
    pub doc_string: String,
    pub metadata_props: Vec<StringStringEntryProto>,
}

impl Node {
    pub fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// An int attribute, or `default` when absent (or of another type).
    pub fn attr_int(&self, name: &str, default: i64) -> i64 {
        self.attr(name)
            .and_then(attr::AttrExt::as_int)
            .unwrap_or(default)
    }

    /// A float attribute, or `default` when absent (or of another type).
    pub fn attr_float(&self, name: &str, default: f32) -> f32 {
        self.attr(name)
            .and_then(attr::AttrExt::as_float)
            .unwrap_or(default)
    }

    /// `domain::op_type` for custom domains, plain `op_type` for the default domain.
    pub fn qualified_op(&self) -> String {
        let d = canonical_domain(&self.domain);
        if d.is_empty() {
            self.op_type.clone()
        } else {
            format!("{d}::{}", self.op_type)
        }
    }

    /// True when the op is from the default ONNX domain and has this type.
    pub fn is(&self, op_type: &str) -> bool {
        canonical_domain(&self.domain).is_empty() && self.op_type == op_type
    }

    /// The subgraphs held in attributes (If/Loop/Scan bodies and custom ops).
    pub fn subgraphs(&self) -> impl Iterator<Item = &onnx_protobuf::GraphProto> {
        self.attributes
            .iter()
            .flat_map(|a| a.g.as_ref().into_iter().chain(a.graphs.iter()))
    }
}

/// A tensor edge between two operators: `tensor` is read by the consumer at input `slot`.
/// Outer-scope tensors read inside a subgraph are edges with `slot == None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    pub tensor: String,
    pub slot: Option<usize>,
}

/// Where a tensor comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    GraphInput,
    Initializer,
    Node(NodeIndex, usize),
}

/// Everything known about one tensor name.
#[derive(Clone, Debug, Default)]
pub struct ValueInfo {
    /// Inferred or declared type; `None` when unknown.
    pub ty: Option<ValueType>,
    /// The ValueInfoProto as declared in the file (input/output/value_info), written back as is.
    pub declared: Option<ValueInfoProto>,
}

/// A graph: operators, tensors and their metadata.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub name: String,
    pub doc_string: String,
    pub ops: StableDiGraph<Node, Edge>,
    /// Operator order used for export (a topological order once validated).
    pub order: Vec<NodeIndex>,
    /// Graph inputs, in order (may include initializers for IR < 4 models).
    pub inputs: Vec<String>,
    /// Graph outputs, in order.
    pub outputs: Vec<String>,
    /// Names declared in `value_info`, in file order.
    pub value_info_names: Vec<String>,
    /// Initializers by name, in file order.
    pub initializers: IndexMap<String, TensorProto>,
    pub sparse_initializers: Vec<SparseTensorProto>,
    pub quantization_annotation: Vec<TensorAnnotation>,
    pub metadata_props: Vec<StringStringEntryProto>,
    /// Type information per tensor name.
    pub values: HashMap<String, ValueInfo>,
    /// Producer of each node output, rebuilt by [`Graph::relink`].
    producers: HashMap<String, (NodeIndex, usize)>,
}

/// A structural defect found while linking a graph.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error(
        "node '{node}' ({op}) reads tensor '{tensor}', which no node, input or initializer defines"
    )]
    UndefinedTensor {
        node: String,
        op: String,
        tensor: String,
    },
    #[error("tensor '{tensor}' is defined more than once")]
    DuplicateDefinition { tensor: String },
    #[error("the graph has a cycle through node '{node}' ({op})")]
    Cycle { node: String, op: String },
    #[error("graph output '{tensor}' is not defined by any node, input or initializer")]
    UndefinedOutput { tensor: String },
}

impl Graph {
    /// Adds a node at the end of the order. Call [`Graph::relink`] after a batch of edits.
    pub fn add_node(&mut self, node: Node) -> NodeIndex {
        let idx = self.ops.add_node(node);
        self.order.push(idx);
        idx
    }

    pub fn remove_node(&mut self, idx: NodeIndex) -> Option<Node> {
        self.order.retain(|&i| i != idx);
        self.ops.remove_node(idx)
    }

    /// Nodes in export order.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeIndex, &Node)> {
        self.order.iter().map(move |&i| (i, &self.ops[i]))
    }

    /// Indices, in order, of the nodes whose op type is one of `ops`: a snapshot for
    /// rewrites that change the graph while they walk it.
    pub fn indices_of(&self, ops: &[&str]) -> Vec<NodeIndex> {
        self.nodes()
            .filter(|(_, n)| ops.iter().any(|op| n.is(op)))
            .map(|(i, _)| i)
            .collect()
    }

    pub fn node_count(&self) -> usize {
        self.ops.node_count()
    }

    pub fn is_graph_input(&self, name: &str) -> bool {
        self.inputs.iter().any(|n| n == name)
    }

    /// Graph inputs that are not also initializers: the inputs a caller must feed.
    pub fn runtime_inputs(&self) -> Vec<&str> {
        self.inputs
            .iter()
            .filter(|n| !self.initializers.contains_key(*n))
            .map(|s| s.as_str())
            .collect()
    }

    /// Where `name` comes from, if it is defined.
    pub fn source(&self, name: &str) -> Option<Source> {
        if let Some(&(n, s)) = self.producers.get(name) {
            Some(Source::Node(n, s))
        } else if self.is_graph_input(name) && !self.initializers.contains_key(name) {
            Some(Source::GraphInput)
        } else if self.initializers.contains_key(name) {
            Some(Source::Initializer)
        } else {
            None
        }
    }

    pub fn producer(&self, name: &str) -> Option<NodeIndex> {
        self.producers.get(name).map(|p| p.0)
    }

    /// The only node reading the tensor `name`, in one input slot, when `name` is not a
    /// graph output (a rewrite may then fold the reader into the producer).
    pub fn sole_consumer(&self, name: &str) -> Option<NodeIndex> {
        if self.outputs.iter().any(|o| o == name) {
            return None;
        }
        match self.consumers(name)[..] {
            [(i, _)] => Some(i),
            _ => None,
        }
    }

    /// Consumers of the tensor `name`, as (node, input slot) in export order.
    pub fn consumers(&self, name: &str) -> Vec<(NodeIndex, usize)> {
        let mut out = Vec::new();
        for (i, n) in self.nodes() {
            for (s, inp) in n.inputs.iter().enumerate() {
                if inp == name {
                    out.push((i, s));
                }
            }
        }
        out
    }

    pub fn value_type(&self, name: &str) -> Option<&ValueType> {
        self.values.get(name).and_then(|v| v.ty.as_ref())
    }

    pub fn set_value_type(&mut self, name: &str, ty: ValueType) {
        self.values.entry(name.to_string()).or_default().ty = Some(ty);
    }

    /// Rebuilds producer table and edges from node input/output names, checks that every
    /// read tensor is defined exactly once and that the graph is acyclic, and puts `order`
    /// into a topological order that keeps the current order wherever it is already valid.
    pub fn relink(&mut self) -> Result<(), GraphError> {
        self.producers.clear();
        let defined_outside: std::collections::HashSet<&str> = self
            .inputs
            .iter()
            .map(|s| s.as_str())
            .chain(self.initializers.keys().map(|s| s.as_str()))
            .collect();
        for &idx in &self.order {
            for (slot, out) in self.ops[idx].outputs.iter().enumerate() {
                if out.is_empty() {
                    continue;
                }
                if self.producers.insert(out.clone(), (idx, slot)).is_some()
                    || defined_outside.contains(out.as_str())
                {
                    return Err(GraphError::DuplicateDefinition {
                        tensor: out.clone(),
                    });
                }
            }
        }
        self.ops.clear_edges();
        let mut new_edges = Vec::new();
        for &idx in &self.order {
            let node = &self.ops[idx];
            for (slot, inp) in node.inputs.iter().enumerate() {
                if inp.is_empty() {
                    continue;
                }
                match self.producers.get(inp) {
                    Some(&(p, _)) => new_edges.push((
                        p,
                        idx,
                        Edge {
                            tensor: inp.clone(),
                            slot: Some(slot),
                        },
                    )),
                    None if defined_outside.contains(inp.as_str()) => {}
                    None => {
                        return Err(GraphError::UndefinedTensor {
                            node: node.name.clone(),
                            op: node.op_type.clone(),
                            tensor: inp.clone(),
                        })
                    }
                }
            }
            // Subgraphs may read tensors of this graph by name: those are dependencies too.
            for name in node.subgraphs().flat_map(attr::outer_scope_reads) {
                if let Some(&(p, _)) = self.producers.get(&name) {
                    new_edges.push((
                        p,
                        idx,
                        Edge {
                            tensor: name,
                            slot: None,
                        },
                    ));
                }
            }
        }
        for (a, b, e) in new_edges {
            self.ops.add_edge(a, b, e);
        }
        for out in &self.outputs {
            if !self.producers.contains_key(out) && !defined_outside.contains(out.as_str()) {
                return Err(GraphError::UndefinedOutput {
                    tensor: out.clone(),
                });
            }
        }
        self.order = self.stable_topo_order()?;
        Ok(())
    }

    /// Kahn's algorithm, always taking the ready node that comes first in the current order.
    fn stable_topo_order(&self) -> Result<Vec<NodeIndex>, GraphError> {
        let pos: HashMap<NodeIndex, usize> = self
            .order
            .iter()
            .enumerate()
            .map(|(i, &n)| (n, i))
            .collect();
        let mut indeg: HashMap<NodeIndex, usize> = self.order.iter().map(|&n| (n, 0)).collect();
        for e in (&self.ops).edge_references() {
            *indeg.entry(e.target()).or_default() += 1;
        }
        let mut ready: std::collections::BTreeSet<(usize, NodeIndex)> = indeg
            .iter()
            .filter(|(_, &d)| d == 0)
            .map(|(&n, _)| (pos[&n], n))
            .collect();
        let mut out = Vec::with_capacity(self.order.len());
        while let Some(first) = ready.pop_first() {
            let n = first.1;
            out.push(n);
            for e in self.ops.edges(n) {
                let d = indeg.get_mut(&e.target()).expect("edge target is a node");
                *d -= 1;
                if *d == 0 {
                    ready.insert((pos[&e.target()], e.target()));
                }
            }
        }
        if out.len() != self.order.len() {
            let stuck = self
                .order
                .iter()
                .find(|n| indeg[n] > 0)
                .copied()
                .expect("some node is on a cycle");
            let node = &self.ops[stuck];
            return Err(GraphError::Cycle {
                node: node.name.clone(),
                op: node.op_type.clone(),
            });
        }
        Ok(out)
    }

    /// The constant tensor named `name`: an initializer (that is not an overridable graph
    /// input) or the `value` of the Constant node producing it.
    pub fn constant_tensor(&self, name: &str) -> Option<&TensorProto> {
        match self.source(name)? {
            Source::Initializer => self.initializers.get(name),
            Source::Node(idx, 0) if self.ops[idx].is("Constant") => {
                self.ops[idx].attr("value").and_then(|a| a.t.as_ref())
            }
            _ => None,
        }
    }

    /// Every constant tensor of the graph: initializers, then the `value` tensors of
    /// Constant nodes in order (models exported by some frameworks keep all weights there).
    pub fn constant_tensors(&self) -> impl Iterator<Item = &TensorProto> {
        self.initializers.values().chain(
            self.nodes()
                .filter(|(_, n)| n.is("Constant"))
                .filter_map(|(_, n)| n.attr("value"))
                .filter_map(|a| a.t.as_ref()),
        )
    }

    /// The constant tensors inside subgraphs (If/Loop/Scan bodies, at any depth): their
    /// initializers and the `value` of their Constant nodes.
    pub fn subgraph_constant_tensors(&self) -> Vec<&TensorProto> {
        fn walk<'a>(g: &'a onnx_protobuf::GraphProto, out: &mut Vec<&'a TensorProto>) {
            out.extend(g.initializer.iter());
            for n in &g.node {
                for a in &n.attribute {
                    if n.op_type == "Constant" && a.name == "value" {
                        out.extend(a.t.as_ref());
                    }
                    for sub in a.g.as_ref().into_iter().chain(a.graphs.iter()) {
                        walk(sub, out);
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (_, n) in self.nodes() {
            for sub in n.subgraphs() {
                walk(sub, &mut out);
            }
        }
        out
    }

    /// Number of parameters (elements of initializers and Constant tensors, subgraphs
    /// included: a runtime holds those too) and their bytes.
    pub fn parameter_stats(&self) -> (u64, u64) {
        let mut count = 0u64;
        let mut bytes = 0u64;
        for t in self
            .constant_tensors()
            .chain(self.subgraph_constant_tensors())
        {
            count += tensor::element_count(&t.dims);
            bytes += tensor::storage_bytes(t);
        }
        (count, bytes)
    }

    /// Count of nodes per qualified op type, sorted by name.
    pub fn op_histogram(&self) -> BTreeMap<String, usize> {
        let mut h = BTreeMap::new();
        for (_, n) in self.nodes() {
            *h.entry(n.qualified_op()).or_insert(0) += 1;
        }
        h
    }
}
