//! Small node builders and a fresh-name source shared by the graph rewrites of this pass
//! (the precision rewrite, the opset upgrade, simplification). They sit below all three so
//! that the opset upgrade need not import the rewrite that calls it.

use onnx_protobuf::{attribute_proto::AttributeType, AttributeProto};
use optimize_ir::ir::{Graph, Node};
use std::collections::HashSet;

pub(crate) fn a_int(name: &str, v: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INT.into();
    a.i = v;
    a
}

/// A default-domain node.
pub(crate) fn node(
    name: &str,
    op: &str,
    ins: &[&str],
    outs: &[&str],
    attrs: Vec<AttributeProto>,
) -> Node {
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
pub(crate) struct Namer {
    used: HashSet<String>,
}

impl Namer {
    pub(crate) fn new(g: &Graph) -> Namer {
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

    pub(crate) fn fresh(&mut self, base: &str) -> String {
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
