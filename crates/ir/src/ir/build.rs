//! Helpers of the passes that rewrite the graph (BatchNorm folding, simplification, the
//! opset upgrade, the precision rewrite): node and tensor builders, a fresh-name source,
//! and the removal of constants and type entries a rewrite left unread. Written once here,
//! below every pass.

use super::attr::outer_scope_reads;
use super::{DataType, Graph, Node, ValueType};
use crate::error::{Error, Result};
use onnx_protobuf::{attribute_proto::AttributeType, AttributeProto, TensorProto};
use std::collections::{BTreeSet, HashSet};

pub fn a_int(name: &str, v: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INT.into();
    a.i = v;
    a
}

/// A default-domain node.
pub fn node(name: &str, op: &str, ins: &[&str], outs: &[&str], attrs: Vec<AttributeProto>) -> Node {
    Node {
        name: name.to_string(),
        op_type: op.to_string(),
        inputs: ins.iter().map(|s| s.to_string()).collect(),
        outputs: outs.iter().map(|s| s.to_string()).collect(),
        attributes: attrs,
        ..Default::default()
    }
}

/// Fresh tensor/node names: `base` if unused, else `base_1`, `base_2`, ... Deterministic,
/// since the bases derive from existing names and the graph is walked in order.
pub struct Namer {
    used: HashSet<String>,
}

impl Namer {
    pub fn new(g: &Graph) -> Namer {
        let mut used: HashSet<String> = g.inputs.iter().cloned().collect();
        used.extend(g.outputs.iter().cloned());
        used.extend(g.initializers.keys().cloned());
        used.extend(g.values.keys().cloned());
        for (_, n) in g.nodes() {
            used.extend(n.outputs.iter().cloned());
            used.extend(n.inputs.iter().cloned());
            used.insert(n.name.clone());
        }
        Namer { used }
    }

    pub fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut i = 1;
        while self.used.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.used.insert(name.clone());
        name
    }
}

/// A tensor with little-endian raw data.
pub fn raw_tensor(name: &str, dt: DataType, dims: &[i64], raw: Vec<u8>) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.to_string();
    t.data_type = dt as i32;
    t.dims = dims.to_vec();
    t.raw_data = raw;
    t
}

/// A float32 tensor of `v`.
pub fn f32_tensor(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    raw_tensor(
        name,
        DataType::Float,
        dims,
        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    )
}

/// An int64 tensor of `v`, one-dimensional (shapes, axes, starts and ends).
pub fn i64_tensor(name: &str, v: &[i64]) -> TensorProto {
    raw_tensor(
        name,
        DataType::Int64,
        &[v.len() as i64],
        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    )
}

/// Sets `name`'s type to `like`'s shape with element type `elem` (a Q's output is `like`
/// in uint8, a DQ's `like` in float).
pub fn set_type_like(g: &mut Graph, name: &str, like: &str, elem: DataType) {
    let shape = match g.value_type(like) {
        Some(ValueType::Tensor { shape, .. }) => shape.clone(),
        _ => None,
    };
    g.set_value_type(name, ValueType::Tensor { elem, shape });
}

/// Adds `t` as an initializer, with its type entry.
pub fn add_initializer(g: &mut Graph, t: TensorProto) {
    let dt = DataType::from_onnx(t.data_type).unwrap_or(DataType::Float);
    g.set_value_type(&t.name, ValueType::tensor(dt, &t.dims));
    g.initializers.insert(t.name.clone(), t);
}

/// [`Graph::relink`] after a rewrite: a failure is a bug of the rewrite `what`.
pub fn relink_after(g: &mut Graph, what: &str) -> Result<()> {
    g.relink()
        .map_err(|e| Error::Internal(format!("{what} broke the graph: {e}")))
}

/// Names read by some node (inside its subgraphs too) or listed as graph outputs.
pub fn used_names(g: &Graph) -> HashSet<String> {
    let mut s: HashSet<String> = g.outputs.iter().cloned().collect();
    for (_, n) in g.nodes() {
        s.extend(n.inputs.iter().cloned());
        s.extend(n.subgraphs().flat_map(outer_scope_reads));
    }
    s
}

/// Removes the constants among `names` nobody reads any more: initializers (and their
/// graph-input entry, for IR < 4 models) and Constant nodes.
pub fn remove_dead_constants(g: &mut Graph, names: &BTreeSet<String>) {
    let used = used_names(g);
    for name in names {
        if used.contains(name) {
            continue;
        }
        if g.initializers.shift_remove(name).is_some() {
            g.inputs.retain(|i| i != name);
            g.values.remove(name);
            continue;
        }
        let found = g
            .nodes()
            .find(|(_, n)| n.is("Constant") && n.outputs.first() == Some(name))
            .map(|(i, _)| i);
        if let Some(i) = found {
            g.remove_node(i);
            g.values.remove(name);
        }
    }
}

/// Drops type entries of tensors that no longer exist.
pub fn prune_values(g: &mut Graph) {
    let mut live: HashSet<String> = g.inputs.iter().cloned().collect();
    live.extend(g.outputs.iter().cloned());
    live.extend(g.initializers.keys().cloned());
    for (_, n) in g.nodes() {
        live.extend(n.outputs.iter().cloned());
        live.extend(n.inputs.iter().cloned());
        live.extend(n.subgraphs().flat_map(outer_scope_reads));
    }
    g.values.retain(|k, _| live.contains(k));
    g.value_info_names.retain(|k| live.contains(k));
}
