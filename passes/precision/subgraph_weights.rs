//! Weights read inside subgraphs (If/Loop/Scan bodies) as candidates.
//!
//! A constant float weight read inside a body at the weight input of Conv, ConvTranspose,
//! MatMul or Gemm is a candidate, whether it is an initializer of the main graph that the
//! body captures or an initializer of the body itself (as scripted exports write them).
//! It is offered in the weight-only formats (fp16, int8w, int4), which need no activation
//! range, so nothing inside the body has to be calibrated.
//!
//! The rewrite (`rewrite.rs`) moves such a weight out of the body: its decoding chain is
//! emitted in the main graph under the weight's own name, and the body reads the decoded
//! tensor from the outer scope. Every input of the chain is constant, so onnxruntime folds
//! it when the session starts and the body runs on float weights as before.
//!
//! The formats are per row (axis 0), as for an embedding table, whatever the consumer:
//! a Gemm with `transB` (the usual export) or a Conv then gets one scale per output
//! channel; a `[K, N]` MatMul weight gets one per input row.

use super::candidates::OpCandidate;
use super::quantize::stored_bytes;
use super::Precision;
use crate::ir::attr::outer_scope_reads;
use crate::ir::tensor::element_count;
use crate::ir::{DataType, Graph, Source};
use onnx_protobuf::{GraphProto, NodeProto, TensorProto};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Appended to a subgraph weight's name to make its candidate key.
pub const SUBGRAPH_SUFFIX: &str = "#subgraph";

/// The number format a subgraph weight is stored in: per row, like a Gather table.
pub const FORMAT_OP: &str = "Gather";

/// Where a subgraph weight lives.
#[derive(Clone, Debug, PartialEq)]
pub struct SubgraphSite {
    /// The first output of the main-graph node holding the body (If/Loop/Scan).
    pub host: String,
    /// The body's attribute name when the weight is the body's own initializer; `None`
    /// when it is a main-graph initializer the body reads from the outer scope.
    pub body_attr: Option<String>,
}

/// One read of a name inside a body, at a node input.
struct Read {
    host: String,
    host_label: String,
    attr: String,
    consumer: String,
    op: String,
}

/// What a scan of every body found.
#[derive(Default)]
struct Scan {
    /// Reads at a weight input, by name, in the order first seen.
    weight_reads: Vec<(String, Vec<Read>)>,
    /// Names read in any other way (another input, a nested body, a body output, the
    /// main graph): not candidates.
    other_use: HashSet<String>,
    /// Body initializers by name: (host's first output, attribute name, tensor).
    local: HashMap<String, Vec<(String, String, TensorProto)>>,
}

/// The weight input of the ops whose weight a subgraph candidate may be.
fn weight_slot(n: &NodeProto) -> Option<usize> {
    let standard = n.domain.is_empty() || n.domain == "ai.onnx";
    match n.op_type.as_str() {
        "Conv" | "ConvTranspose" | "MatMul" | "Gemm" if standard => Some(1),
        _ => None,
    }
}

fn consumer_name(n: &NodeProto) -> String {
    if n.name.is_empty() {
        format!(
            "{}<{}>",
            n.op_type,
            n.output.first().cloned().unwrap_or_default()
        )
    } else {
        n.name.clone()
    }
}

impl Scan {
    fn read(&mut self, name: &str, r: Read) {
        match self.weight_reads.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => v.push(r),
            None => self.weight_reads.push((name.to_string(), vec![r])),
        }
    }

    /// One body directly under host `host` (attribute `attr`).
    fn body(&mut self, host: (&str, &str), attr: &str, body: &GraphProto) {
        for t in &body.initializer {
            self.local.entry(t.name.clone()).or_default().push((
                host.0.to_string(),
                attr.to_string(),
                t.clone(),
            ));
        }
        // A body input of the same name as an initializer makes it overridable.
        self.other_use
            .extend(body.input.iter().map(|v| v.name.clone()));
        self.other_use
            .extend(body.output.iter().map(|v| v.name.clone()));
        for n in &body.node {
            for (slot, i) in n.input.iter().enumerate() {
                if i.is_empty() {
                    continue;
                }
                if weight_slot(n) == Some(slot) {
                    let r = Read {
                        host: host.0.to_string(),
                        host_label: host.1.to_string(),
                        attr: attr.to_string(),
                        consumer: consumer_name(n),
                        op: n.op_type.clone(),
                    };
                    self.read(i, r);
                } else {
                    self.other_use.insert(i.clone());
                }
            }
            for a in &n.attribute {
                for sub in a.g.as_ref().into_iter().chain(a.graphs.iter()) {
                    self.other_use.extend(outer_scope_reads(sub));
                    self.other_use
                        .extend(sub.initializer.iter().map(|t| t.name.clone()));
                }
            }
            self.other_use.extend(n.output.iter().cloned());
        }
    }
}

fn scan(g: &Graph) -> Scan {
    let mut s = Scan::default();
    for (_, n) in g.nodes() {
        s.other_use.extend(n.inputs.iter().cloned());
        s.other_use.extend(n.outputs.iter().cloned());
        let Some(host) = n.outputs.first().filter(|o| !o.is_empty()) else {
            continue;
        };
        let label = crate::passes::relevance::sweep::node_label(n);
        for a in &n.attributes {
            if let Some(body) = a.g.as_ref() {
                s.body((host, &label), &a.name, body);
            }
            for body in &a.graphs {
                // Bodies in a list attribute (custom ops): read, never rewritten.
                s.other_use.extend(outer_scope_reads(body));
            }
        }
    }
    s.other_use.extend(g.outputs.iter().cloned());
    s.other_use.extend(g.inputs.iter().cloned());
    s
}

/// The weights read only at weight inputs inside bodies, each a candidate (in the order
/// first read).
pub fn subgraph_candidates(g: &Graph) -> Vec<OpCandidate> {
    let s = scan(g);
    let mut out = Vec::new();
    for (name, reads) in &s.weight_reads {
        if s.other_use.contains(name) {
            continue;
        }
        let local = s.local.get(name).map(Vec::as_slice).unwrap_or_default();
        let main = (g.source(name) == Some(Source::Initializer))
            .then(|| g.initializers.get(name))
            .flatten();
        let (tensor, body_attr) = match (local, main) {
            ([(host, attr, t)], None) if g.value_type(name).is_none() => {
                // Every read must be in that very body.
                if reads.iter().any(|r| &r.host != host || &r.attr != attr) {
                    continue;
                }
                (t, Some(attr.clone()))
            }
            ([], Some(t)) => (t, None),
            _ => continue,
        };
        let key = format!("{name}{SUBGRAPH_SUFFIX}");
        if g.source(&key).is_some() || g.value_type(&key).is_some() {
            continue;
        }
        if let Some(c) = candidate(name, key, tensor, body_attr, reads) {
            out.push(c);
        }
    }
    out
}

fn candidate(
    name: &str,
    key: String,
    t: &TensorProto,
    body_attr: Option<String>,
    reads: &[Read],
) -> Option<OpCandidate> {
    let shape: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
    let float = DataType::from_onnx(t.data_type) == Some(DataType::Float);
    if !float || shape.len() < 2 || shape.contains(&0) {
        return None;
    }
    let first = reads.first()?;
    let formats = [
        Precision::Fp32,
        Precision::Fp16,
        Precision::Int8W,
        Precision::Int4,
    ];
    let options = formats
        .into_iter()
        .map(|p| (p, stored_bytes(FORMAT_OP, &shape, 0, 0, p)))
        .collect();
    let ops: BTreeMap<&str, ()> = reads.iter().map(|r| (r.op.as_str(), ())).collect();
    Some(OpCandidate {
        key,
        node_name: format!("{}/{}/{}", first.host_label, first.attr, first.consumer),
        label: first.host_label.clone(),
        op: ops.into_keys().collect::<Vec<_>>().join("+"),
        weight: name.to_string(),
        weight_slot: 1,
        fp32_bytes: 4 * element_count(&t.dims),
        weight_shape: shape,
        bias: None,
        options,
        activation_inputs: Vec::new(),
        outputs: Vec::new(),
        channel_axis: 0,
        subgraph: Some(SubgraphSite {
            host: first.host.clone(),
            body_attr,
        }),
    })
}

/// Subgraph weight `name` where `site` says it is stored.
pub fn stored<'a>(g: &'a Graph, site: &SubgraphSite, name: &str) -> Option<&'a TensorProto> {
    let Some(attr) = &site.body_attr else {
        return g.initializers.get(name);
    };
    let (_, host) = g
        .nodes()
        .find(|(_, n)| n.outputs.first() == Some(&site.host))?;
    let body = host
        .attributes
        .iter()
        .find(|a| &a.name == attr)?
        .g
        .as_ref()?;
    body.initializer.iter().find(|t| t.name == name)
}

/// Removes body initializer `name` from attribute `attr` of `host`'s node and returns it.
pub fn take_body_initializer(
    node: &mut crate::ir::Node,
    attr: &str,
    name: &str,
) -> Option<TensorProto> {
    let a = node.attributes.iter_mut().find(|a| a.name == attr)?;
    let body = a.g.as_mut()?;
    let pos = body.initializer.iter().position(|t| t.name == name)?;
    body.value_info.retain(|v| v.name != name);
    Some(body.initializer.remove(pos))
}
