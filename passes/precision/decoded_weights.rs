//! Weights decoded under their own name: constants read where no operator-specific
//! candidate can take them.
//!
//! * Inside subgraphs: a constant float weight read inside an If/Loop/Scan body at the
//!   weight input of Conv, ConvTranspose, MatMul or Gemm, whether a main-graph initializer
//!   the body captures or an initializer of the body itself (as scripted exports write
//!   them). Key: the weight's name plus [`SUBGRAPH_SUFFIX`].
//! * In the main graph: a large constant (rank ≥ 2, at least [`MIN_MAIN_ELEMENTS`]
//!   elements) read by operators that have no candidate of their own for it: `Einsum`,
//!   `com.microsoft` fused ops (Attention's packed QKV, …), a `MatMul` or `Gemm` with a
//!   constant first operand, position embeddings added by `Add`, … Key: the name plus
//!   [`CONST_SUFFIX`].
//!
//! They are offered in the weight-only formats (fp16, int8w, int4), which need no
//! activation range. The rewrite (`rewrite.rs`) takes the tensor out of where it is stored
//! (an initializer, a Constant node, or the body's initializers) and emits its decoding
//! chain in the main graph with the tensor's own name as the last output, so every reader
//! (a body through the outer scope) reads the decoded tensor unchanged. Every input of the
//! chain is constant, so onnxruntime folds it when the session starts.
//!
//! The formats are per row: per channel of the first axis longer than 1 (a `[1, L, D]`
//! position table is quantized as `[L, D]` and reshaped back; a `[1, N]` weight is one row),
//! as for an embedding table.
//! A Gemm with `transB` (the usual export) or a Conv thus gets one scale per output
//! channel; a `[K, N]` weight one per input row.

use super::candidate::{
    body_host, float_dims, tensor_f32, DecodedSite, OpCandidate, Storage, FORMAT_OP,
};
use super::quantize::stored_bytes;
use super::Precision;
use onnx_protobuf::{GraphProto, NodeProto, TensorProto};
use optimize_ir::ir::attr::outer_scope_reads;
use optimize_ir::ir::tensor::element_count;
use optimize_ir::ir::{Graph, Node, Source};
use std::collections::{BTreeSet, HashMap, HashSet};

/// Appended to the name of a weight read inside a subgraph to make its candidate key.
pub const SUBGRAPH_SUFFIX: &str = "#subgraph";
/// Appended to the name of a main-graph constant to make its candidate key.
pub const CONST_SUFFIX: &str = "#const";
/// Main-graph constants smaller than this stay as they are: not worth the nodes.
pub const MIN_MAIN_ELEMENTS: u64 = 4096;

/// One read of a name at a node input.
struct Read {
    /// The reader's label (in a body: the host's label); relevance looks it up.
    label: String,
    /// How the report names the read: `CONSUMER` or `HOST/ATTRIBUTE/CONSUMER`.
    site: String,
    op: String,
    /// `(host's first output, attribute)` for a read inside a body.
    body: Option<(String, String)>,
}

/// What a scan of the graph and every body found (borrowing the graph's tensors).
#[derive(Default)]
struct Scan<'g> {
    /// Reads that a decoded weight may serve, by name, in the order first seen.
    reads: Vec<(String, Vec<Read>)>,
    /// Names read in any other way (another input in a body, a nested body, a body or
    /// graph output, a graph input): not candidates.
    other_use: HashSet<String>,
    /// Body initializers by name: (host's first output, attribute name, tensor).
    local: HashMap<String, Vec<(String, String, &'g TensorProto)>>,
}

/// The weight input of the ops whose weight a body read may be.
fn body_weight_slot(n: &NodeProto) -> Option<usize> {
    let standard = n.domain.is_empty() || n.domain == "ai.onnx";
    match n.op_type.as_str() {
        "Conv" | "ConvTranspose" | "MatMul" | "Gemm" if standard => Some(1),
        _ => None,
    }
}

fn proto_name(n: &NodeProto) -> String {
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

impl<'g> Scan<'g> {
    fn read(&mut self, name: &str, r: Read) {
        match self.reads.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => v.push(r),
            None => self.reads.push((name.to_string(), vec![r])),
        }
    }

    /// One body directly under host `host` (first output, label), attribute `attr`.
    fn body(&mut self, host: (&str, &str), attr: &str, body: &'g GraphProto) {
        for t in &body.initializer {
            self.local.entry(t.name.clone()).or_default().push((
                host.0.to_string(),
                attr.to_string(),
                t,
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
                if body_weight_slot(n) == Some(slot) {
                    let r = Read {
                        label: host.1.to_string(),
                        site: format!("{}/{attr}/{}", host.1, proto_name(n)),
                        op: n.op_type.clone(),
                        body: Some((host.0.to_string(), attr.to_string())),
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

    /// One main-graph node: its reads, and the bodies it holds.
    fn node(&mut self, n: &'g Node) {
        let label = crate::relevance::sweep::node_label(n);
        for i in n.inputs.iter().filter(|i| !i.is_empty()) {
            let r = Read {
                label: label.clone(),
                site: label.clone(),
                op: n.qualified_op(),
                body: None,
            };
            self.read(i, r);
        }
        let Some(host) = n.outputs.first().filter(|o| !o.is_empty()) else {
            self.other_use
                .extend(n.subgraphs().flat_map(outer_scope_reads));
            return;
        };
        for a in &n.attributes {
            if let Some(body) = a.g.as_ref() {
                self.body((host, &label), &a.name, body);
            }
            for body in &a.graphs {
                // Bodies in a list attribute (custom ops): read, never rewritten.
                self.other_use.extend(outer_scope_reads(body));
            }
        }
    }
}

fn scan(g: &Graph) -> Scan<'_> {
    let mut s = Scan::default();
    for (_, n) in g.nodes() {
        s.node(n);
    }
    s.other_use.extend(g.outputs.iter().cloned());
    s.other_use.extend(g.inputs.iter().cloned());
    s
}

/// The tensor `name` and where it is stored, when it is stored in one place only.
fn storage<'a>(
    g: &'a Graph,
    s: &Scan<'a>,
    name: &str,
    reads: &[Read],
) -> Option<(&'a TensorProto, Storage)> {
    let local = s.local.get(name).map(Vec::as_slice).unwrap_or_default();
    let main = g.constant_tensor(name).map(|t| match g.source(name) {
        Some(Source::Initializer) => (t, Storage::Initializer),
        _ => (t, Storage::ConstantNode),
    });
    match (local, main) {
        ([(host, attr, t)], None) if g.source(name).is_none() && g.value_type(name).is_none() => {
            // Every read must be in that very body.
            let here = Some((host.clone(), attr.clone()));
            reads.iter().all(|r| r.body == here).then(|| {
                let storage = Storage::Body {
                    host: host.clone(),
                    attr: attr.clone(),
                };
                (*t, storage)
            })
        }
        ([], main) => main,
        _ => None,
    }
}

/// The decoded-weight candidates, in the order first read. `taken` are the weights that
/// operator-specific candidates already hold (their readers are not looked at again).
pub fn decoded_candidates(g: &Graph, taken: &HashSet<&str>) -> Vec<OpCandidate> {
    let s = scan(g);
    let mut out = Vec::new();
    for (name, reads) in &s.reads {
        if s.other_use.contains(name) || taken.contains(name.as_str()) {
            continue;
        }
        let Some((tensor, storage)) = storage(g, &s, name, reads) else {
            continue;
        };
        let in_body = reads.iter().any(|r| r.body.is_some());
        if !in_body && element_count(&tensor.dims) < MIN_MAIN_ELEMENTS {
            continue;
        }
        let suffix = if in_body {
            SUBGRAPH_SUFFIX
        } else {
            CONST_SUFFIX
        };
        let key = format!("{name}{suffix}");
        if g.source(&key).is_some() || g.value_type(&key).is_some() {
            continue;
        }
        out.extend(candidate(name, key, tensor, storage, reads));
    }
    out
}

/// The per-row view of `dims`: from the first axis longer than 1 on, keeping two axes at
/// least (`[1, 64]` stays one row of 64).
pub fn row_view(dims: &[i64]) -> Vec<usize> {
    let first_long = dims.iter().position(|&d| d != 1).unwrap_or(dims.len());
    let start = first_long.min(dims.len().saturating_sub(2));
    dims[start..].iter().map(|&d| d.max(0) as usize).collect()
}

fn candidate(
    name: &str,
    key: String,
    t: &TensorProto,
    storage: Storage,
    reads: &[Read],
) -> Option<OpCandidate> {
    float_dims(t)?;
    let view = row_view(&t.dims);
    if view.len() < 2 {
        return None;
    }
    // A mask of -inf (or a NaN) has no scale; leave it as it is.
    let (values, _) = tensor_f32(t)?;
    if values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    // A view other than the stored dims is reshaped back: its int64 dims are stored too.
    let reshape_bytes = if view.len() == t.dims.len() {
        0
    } else {
        8 * t.dims.len() as u64
    };
    let first = reads.first()?;
    let formats = [
        Precision::Fp32,
        Precision::Fp16,
        Precision::Int8W,
        Precision::Int4,
    ];
    let options = formats
        .into_iter()
        .map(|p| {
            let extra = if p == Precision::Fp32 {
                0
            } else {
                reshape_bytes
            };
            (p, stored_bytes(FORMAT_OP, &view, 0, 0, p) + extra)
        })
        .collect();
    let ops: BTreeSet<&str> = reads.iter().map(|r| r.op.as_str()).collect();
    Some(OpCandidate {
        key,
        node_name: first.site.clone(),
        label: first.label.clone(),
        op: ops.into_iter().collect::<Vec<_>>().join("+"),
        weight: name.to_string(),
        weight_slot: 0,
        fp32_bytes: 4 * element_count(&t.dims),
        weight_shape: view,
        bias: None,
        options,
        activation_inputs: Vec::new(),
        outputs: Vec::new(),
        channel_axis: 0,
        decoded: Some(DecodedSite {
            storage,
            dims: t.dims.clone(),
        }),
    })
}

/// Takes decoded weight `name` out of where `site` says it is stored and returns it: the
/// name is then free for the decoding chain to produce.
pub fn take(g: &mut Graph, site: &DecodedSite, name: &str) -> Option<TensorProto> {
    match &site.storage {
        Storage::Initializer => {
            g.inputs.retain(|i| i != name);
            g.initializers.shift_remove(name)
        }
        Storage::ConstantNode => {
            let t = g.constant_tensor(name)?.clone();
            let idx = g.producer(name)?;
            g.remove_node(idx);
            Some(t)
        }
        Storage::Body { host, attr } => {
            let idx = body_host(g, host)?;
            let a = g.ops[idx].attributes.iter_mut().find(|a| &a.name == attr)?;
            let body = a.g.as_mut()?;
            let pos = body.initializer.iter().position(|t| t.name == name)?;
            body.value_info.retain(|v| v.name != name);
            Some(body.initializer.remove(pos))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::row_view;

    #[test]
    fn rows_start_at_the_first_long_axis_but_keep_two_axes() {
        assert_eq!(row_view(&[1, 64, 32]), vec![64, 32]);
        assert_eq!(row_view(&[1, 1, 64]), vec![1, 64]);
        assert_eq!(row_view(&[1, 64]), vec![1, 64]);
        assert_eq!(row_view(&[8, 1, 3, 3]), vec![8, 1, 3, 3]);
        assert_eq!(row_view(&[5]), vec![5]);
    }
}
