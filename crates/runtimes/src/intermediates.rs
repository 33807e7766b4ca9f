//! Exposing intermediate tensors as graph outputs, so one run on a runtime returns them:
//! used to check shape inference against real shapes and to record activations.

use onnx_protobuf::ValueInfoProto;
use optimize_ir::ir::{Model, ValueType};
use optimize_ir::onnx_io::type_proto::value_type_to_proto;

/// A copy of `model` whose outputs also list every node output that is a dense tensor
/// with a known element type (declared with its element type only, so the runtime's own
/// shapes are not constrained). Returns the copy and the names added, in node order.
pub fn expose_intermediates(model: &Model) -> (Model, Vec<String>) {
    expose_selected(model, |_| true)
}

/// [`expose_intermediates`] restricted to the node outputs for which `keep` is true: every
/// exposed tensor is copied out of the runtime and blocks its buffer reuse, so callers that
/// need only some values (the relevance sweep) expose only those.
pub fn expose_selected(model: &Model, keep: impl Fn(&str) -> bool) -> (Model, Vec<String>) {
    let mut m = model.clone();
    let g = &mut m.graph;
    let mut added = Vec::new();
    let existing: std::collections::HashSet<String> = g.outputs.iter().cloned().collect();
    let names: Vec<String> = g
        .nodes()
        .flat_map(|(_, n)| n.outputs.clone())
        .filter(|o| !o.is_empty() && keep(o))
        .collect();
    for name in names {
        if existing.contains(&name) {
            continue;
        }
        let Some(ValueType::Tensor { elem, .. }) = g.value_type(&name).cloned() else {
            continue;
        };
        let mut vi = ValueInfoProto::new();
        vi.name = name.clone();
        vi.type_ = Some(value_type_to_proto(&ValueType::Tensor {
            elem,
            shape: None,
        }))
        .into();
        let entry = g.values.entry(name.clone()).or_default();
        entry.declared = Some(vi);
        g.value_info_names.retain(|v| v != &name);
        g.outputs.push(name.clone());
        added.push(name);
    }
    (m, added)
}

/// Adds the node outputs for which `keep` is true and whose type shape inference does not
/// know (outputs of operators it has no rule for, e.g. `com.microsoft` QLinear* ops) as
/// graph outputs without a type: onnxruntime accepts them and returns their real type and
/// shape. Returns the names added, in node order.
pub fn expose_untyped(model: &mut Model, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let g = &mut model.graph;
    let existing: std::collections::HashSet<String> = g.outputs.iter().cloned().collect();
    let names: Vec<String> = g
        .nodes()
        .flat_map(|(_, n)| n.outputs.clone())
        .filter(|o| !o.is_empty() && keep(o) && !existing.contains(o))
        .filter(|o| g.value_type(o).is_none())
        .collect();
    for name in &names {
        let mut vi = ValueInfoProto::new();
        vi.name = name.clone();
        g.values.entry(name.clone()).or_default().declared = Some(vi);
        g.value_info_names.retain(|v| v != name);
        g.outputs.push(name.clone());
    }
    names
}
