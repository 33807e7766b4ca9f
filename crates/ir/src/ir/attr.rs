//! Reading attributes (kept as `AttributeProto`) and walking subgraphs.

use onnx_protobuf::{attribute_proto::AttributeType, AttributeProto, GraphProto};
use std::collections::HashSet;

/// Typed views of an attribute's value.
pub trait AttrExt {
    fn kind(&self) -> AttributeType;
    fn as_int(&self) -> Option<i64>;
    fn as_float(&self) -> Option<f32>;
    fn as_ints(&self) -> Option<&[i64]>;
    fn as_floats(&self) -> Option<&[f32]>;
    fn as_str(&self) -> Option<&str>;
}

impl AttrExt for AttributeProto {
    fn kind(&self) -> AttributeType {
        self.type_.enum_value().unwrap_or(AttributeType::UNDEFINED)
    }
    fn as_int(&self) -> Option<i64> {
        (self.kind() == AttributeType::INT).then_some(self.i)
    }
    fn as_float(&self) -> Option<f32> {
        (self.kind() == AttributeType::FLOAT).then_some(self.f)
    }
    fn as_ints(&self) -> Option<&[i64]> {
        (self.kind() == AttributeType::INTS).then_some(self.ints.as_slice())
    }
    fn as_floats(&self) -> Option<&[f32]> {
        (self.kind() == AttributeType::FLOATS).then_some(self.floats.as_slice())
    }
    fn as_str(&self) -> Option<&str> {
        if self.kind() == AttributeType::STRING {
            std::str::from_utf8(&self.s).ok()
        } else {
            None
        }
    }
}

/// Names read inside `g` (and its nested subgraphs) that `g` does not define itself:
/// the outer-scope tensors it captures, in first-use order.
pub fn outer_scope_reads(g: &GraphProto) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    collect_outer(g, &HashSet::new(), &mut out, &mut seen);
    out
}

fn collect_outer(
    g: &GraphProto,
    enclosing: &HashSet<String>,
    out: &mut Vec<String>,
    seen: &mut HashSet<String>,
) {
    let mut defined: HashSet<String> = enclosing.clone();
    defined.extend(g.input.iter().map(|v| v.name.clone()));
    defined.extend(g.initializer.iter().map(|t| t.name.clone()));
    defined.extend(
        g.sparse_initializer
            .iter()
            .filter_map(|s| s.values.as_ref().map(|v| v.name.clone())),
    );
    for n in &g.node {
        for i in &n.input {
            if !i.is_empty() && !defined.contains(i) && seen.insert(i.clone()) {
                out.push(i.clone());
            }
        }
        for a in &n.attribute {
            for sub in a.g.as_ref().into_iter().chain(a.graphs.iter()) {
                collect_outer(sub, &defined, out, seen);
            }
        }
        defined.extend(n.output.iter().filter(|o| !o.is_empty()).cloned());
    }
    for o in &g.output {
        if !defined.contains(&o.name) && seen.insert(o.name.clone()) {
            out.push(o.name.clone());
        }
    }
}

/// Depth of subgraph nesting below `g` (0 when it has none).
pub fn subgraph_depth(g: &GraphProto) -> usize {
    g.node
        .iter()
        .flat_map(|n| n.attribute.iter())
        .flat_map(|a| a.g.as_ref().into_iter().chain(a.graphs.iter()))
        .map(|s| 1 + subgraph_depth(s))
        .max()
        .unwrap_or(0)
}
