//! A stable, readable text dump of the IR, used by `optimize inspect --ir` and snapshot tests.
//!
//! Initializer data is shown as a short content hash, never as values, so dumps stay small
//! and change exactly when the data does.

use super::attr::AttrExt;
use super::tensor::storage_bytes;
use super::{canonical_domain, DataType, Model, Node};
use onnx_protobuf::{attribute_proto::AttributeType, AttributeProto, Message, TensorProto};
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// First 12 hex digits of the SHA-256 of a tensor's stored values.
pub fn tensor_digest(t: &TensorProto) -> String {
    let mut h = Sha256::new();
    if !t.raw_data.is_empty() {
        h.update(&t.raw_data);
    } else {
        let mut copy = t.clone();
        copy.name.clear();
        copy.doc_string.clear();
        h.update(copy.write_to_bytes().unwrap_or_default());
    }
    let d = h.finalize();
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

fn tensor_summary(t: &TensorProto) -> String {
    let dt = DataType::from_onnx(t.data_type)
        .map(|d| d.name())
        .unwrap_or("undefined");
    let dims: Vec<String> = t.dims.iter().map(|d| d.to_string()).collect();
    format!(
        "{dt}[{}] sha={} ({} bytes)",
        dims.join(","),
        tensor_digest(t),
        storage_bytes(t)
    )
}

fn fmt_attr(a: &AttributeProto) -> String {
    let v = match a.kind() {
        AttributeType::FLOAT => format!("{:?}", a.f),
        AttributeType::INT => a.i.to_string(),
        AttributeType::STRING => format!("{:?}", String::from_utf8_lossy(&a.s)),
        AttributeType::TENSOR => a.t.as_ref().map(tensor_summary).unwrap_or_default(),
        AttributeType::GRAPH => {
            a.g.as_ref()
                .map(|g| format!("graph {:?} ({} nodes)", g.name, g.node.len()))
                .unwrap_or_default()
        }
        AttributeType::FLOATS => format!("{:?}", a.floats),
        AttributeType::INTS => format!("{:?}", a.ints),
        AttributeType::STRINGS => {
            format!(
                "{:?}",
                a.strings
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<Vec<_>>()
            )
        }
        AttributeType::TENSORS => format!(
            "[{}]",
            a.tensors
                .iter()
                .map(tensor_summary)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        AttributeType::GRAPHS => format!("[{} graphs]", a.graphs.len()),
        AttributeType::SPARSE_TENSOR => "sparse tensor".to_string(),
        AttributeType::SPARSE_TENSORS => format!("[{} sparse tensors]", a.sparse_tensors.len()),
        AttributeType::TYPE_PROTO => "type".to_string(),
        AttributeType::TYPE_PROTOS => format!("[{} types]", a.type_protos.len()),
        AttributeType::UNDEFINED => {
            if a.ref_attr_name.is_empty() {
                "undefined".to_string()
            } else {
                format!("@{}", a.ref_attr_name)
            }
        }
    };
    format!("{}={v}", a.name)
}

fn fmt_value(m: &Model, name: &str) -> String {
    if name.is_empty() {
        return "_".to_string();
    }
    match m.graph.value_type(name) {
        Some(t) => format!("{name}: {t}"),
        None => format!("{name}: ?"),
    }
}

fn fmt_node(m: &Model, pos: usize, n: &Node) -> String {
    let mut s = format!("  #{pos} {}", n.qualified_op());
    if !n.name.is_empty() {
        let _ = write!(s, " {:?}", n.name);
    }
    let ins: Vec<String> = n
        .inputs
        .iter()
        .map(|i| {
            if i.is_empty() {
                "_".to_string()
            } else {
                i.clone()
            }
        })
        .collect();
    let outs: Vec<String> = n.outputs.iter().map(|o| fmt_value(m, o)).collect();
    let _ = write!(s, " ({}) -> ({})", ins.join(", "), outs.join(", "));
    let mut attrs: Vec<&AttributeProto> = n.attributes.iter().collect();
    attrs.sort_by(|a, b| a.name.cmp(&b.name));
    if !attrs.is_empty() {
        let _ = write!(
            s,
            " {{{}}}",
            attrs
                .iter()
                .map(|a| fmt_attr(a))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    s
}

/// The full dump: header, inputs, outputs, initializers, then nodes in order.
pub fn dump(m: &Model) -> String {
    let g = &m.graph;
    let mut s = String::new();
    let opsets: Vec<String> = m
        .opsets
        .iter()
        .map(|(d, v)| {
            format!(
                "{}={v}",
                if canonical_domain(d).is_empty() {
                    "ai.onnx"
                } else {
                    d.as_str()
                }
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "model ir_version={} opsets=[{}] producer={:?}",
        m.ir_version,
        opsets.join(", "),
        m.producer_name
    );
    let _ = writeln!(
        s,
        "graph {:?}: {} nodes, {} initializers",
        g.name,
        g.node_count(),
        g.initializers.len()
    );
    let _ = writeln!(s, "inputs:");
    for i in g.runtime_inputs() {
        let _ = writeln!(s, "  {}", fmt_value(m, i));
    }
    let _ = writeln!(s, "outputs:");
    for o in &g.outputs {
        let _ = writeln!(s, "  {}", fmt_value(m, o));
    }
    let (count, bytes) = g.parameter_stats();
    let _ = writeln!(s, "initializers: {count} parameters, {bytes} bytes");
    for (name, t) in &g.initializers {
        let _ = writeln!(s, "  {name}: {}", tensor_summary(t));
    }
    let _ = writeln!(s, "nodes:");
    for (pos, (_, n)) in g.nodes().enumerate() {
        let _ = writeln!(s, "{}", fmt_node(m, pos, n));
    }
    if !m.functions.is_empty() {
        let _ = writeln!(s, "functions:");
        for f in &m.functions {
            let _ = writeln!(s, "  {}::{} ({} nodes)", f.domain, f.name, f.node.len());
        }
    }
    s
}
