//! Canonical clean-up that changes no result: removes Identity nodes (rewiring their
//! readers), folds `Shape`/`Size` of constant tensors into int64 constants, removes
//! operators whose outputs nobody reads, and initializers nobody reads. A weight read only
//! by `Shape` (tf2onnx writes such) thus stops counting as weight bytes.
//!
//! Tensors read by name inside subgraphs, graph outputs, and initializers that are also
//! graph inputs (overridable, IR < 4) are never touched.

use crate::pass_manager::{Pass, PassChanges, PassResult};
use onnx_protobuf::TensorProto;
use optimize_ir::error::Result;
use optimize_ir::ir::attr::{outer_scope_reads, AttrExt};
use optimize_ir::ir::{DataType, Model, Node, ValueType};
use petgraph::stable_graph::NodeIndex;
use std::collections::{HashMap, HashSet};

pub struct Cleanup;

impl Pass for Cleanup {
    fn name(&self) -> &'static str {
        "cleanup"
    }

    fn run(&self, model: &mut Model) -> Result<PassResult> {
        let mut changes = PassChanges::default();
        changes.add("removed_identity", remove_identities(model));
        changes.add("folded_constant_shapes", fold_constant_shapes(model)?);
        changes.add("removed_dead_nodes", remove_dead_nodes(model));
        changes.add("removed_initializers", remove_unused_initializers(model));
        Ok(changes.into())
    }
}

/// Names read by any subgraph of any node: those must keep their producers and names.
fn subgraph_reads(model: &Model) -> HashSet<String> {
    model
        .graph
        .nodes()
        .flat_map(|(_, n)| {
            n.subgraphs()
                .flat_map(outer_scope_reads)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn remove_identities(model: &mut Model) -> u64 {
    let protected = subgraph_reads(model);
    let g = &mut model.graph;
    let outputs: HashSet<String> = g.outputs.iter().cloned().collect();
    let mut rename: HashMap<String, String> = HashMap::new();
    let mut doomed = Vec::new();
    for (idx, n) in g.nodes() {
        if n.is("Identity")
            && n.inputs.len() == 1
            && n.outputs.len() == 1
            && !n.inputs[0].is_empty()
        {
            let out = &n.outputs[0];
            if !outputs.contains(out) && !protected.contains(out) {
                rename.insert(out.clone(), n.inputs[0].clone());
                doomed.push(idx);
            }
        }
    }
    let resolve = |mut name: String| {
        while let Some(next) = rename.get(&name) {
            name = next.clone();
        }
        name
    };
    for idx in &doomed {
        g.remove_node(*idx);
    }
    let order = g.order.clone();
    for idx in order {
        let node = &mut g.ops[idx];
        for inp in node.inputs.iter_mut() {
            if rename.contains_key(inp) {
                *inp = resolve(inp.clone());
            }
        }
    }
    for name in rename.keys() {
        g.values.remove(name);
    }
    g.value_info_names.retain(|n| !rename.contains_key(n));
    doomed.len() as u64
}

/// What `Shape` (with its opset-15 `start`/`end`, negative from the back, clamped) or
/// `Size` of a tensor with `dims` returns.
fn shape_value(n: &Node, dims: &[i64]) -> (Vec<i64>, Vec<i64>) {
    if n.op_type == "Size" {
        return (Vec::new(), vec![dims.iter().product()]);
    }
    let rank = dims.len() as i64;
    let at = |name: &str, default: i64| {
        let v = n.attr(name).and_then(|a| a.as_int()).unwrap_or(default);
        (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize
    };
    let (start, end) = (at("start", 0), at("end", rank));
    let v = dims[start..end.max(start)].to_vec();
    (vec![v.len() as i64], v)
}

/// Replaces each `Shape`/`Size` of a constant tensor by an int64 initializer of the same
/// name (not where that name is a graph output: an output stays produced by a node).
/// The constant itself goes when nothing else reads it ([`remove_unused_initializers`]).
fn fold_constant_shapes(model: &mut Model) -> Result<u64> {
    // Before IR 4 every initializer must also be a graph input, which callers could
    // override: such a model keeps its Shape nodes.
    if model.ir_version < 4 {
        return Ok(0);
    }
    let g = &mut model.graph;
    let folds: Vec<(NodeIndex, String, Vec<i64>, Vec<i64>)> = g
        .nodes()
        .filter(|(_, n)| (n.is("Shape") || n.is("Size")) && n.outputs.len() == 1)
        .filter(|(_, n)| !g.outputs.contains(&n.outputs[0]))
        .filter_map(|(i, n)| {
            let dims = &g.constant_tensor(n.inputs.first()?)?.dims;
            let (shape, value) = shape_value(n, dims);
            Some((i, n.outputs[0].clone(), shape, value))
        })
        .collect();
    for (idx, out, shape, value) in &folds {
        g.remove_node(*idx);
        let mut t = TensorProto::new();
        t.name = out.clone();
        t.data_type = DataType::Int64 as i32;
        t.dims = shape.clone();
        t.raw_data = value.iter().flat_map(|v| v.to_le_bytes()).collect();
        g.initializers.insert(out.clone(), t);
        g.set_value_type(out, ValueType::tensor(DataType::Int64, shape));
    }
    if !folds.is_empty() {
        g.relink()
            .map_err(|e| optimize_ir::error::Error::Internal(format!("shape folding: {e}")))?;
    }
    Ok(folds.len() as u64)
}

fn remove_dead_nodes(model: &mut Model) -> u64 {
    let protected = subgraph_reads(model);
    let g = &mut model.graph;
    let mut removed = 0;
    loop {
        let mut read: HashSet<&str> = g.outputs.iter().map(|s| s.as_str()).collect();
        read.extend(protected.iter().map(|s| s.as_str()));
        for (_, n) in g.nodes() {
            read.extend(n.inputs.iter().map(|s| s.as_str()));
        }
        let dead: Vec<_> = g
            .nodes()
            .filter(|(_, n)| {
                n.outputs
                    .iter()
                    .all(|o| o.is_empty() || !read.contains(o.as_str()))
            })
            .map(|(i, _)| i)
            .collect();
        if dead.is_empty() {
            break;
        }
        for idx in dead {
            if let Some(n) = g.remove_node(idx) {
                for o in &n.outputs {
                    g.values.remove(o);
                }
                g.value_info_names.retain(|v| !n.outputs.contains(v));
                removed += 1;
            }
        }
    }
    removed
}

fn remove_unused_initializers(model: &mut Model) -> u64 {
    let protected = subgraph_reads(model);
    let g = &mut model.graph;
    let mut read: HashSet<String> = g.outputs.iter().cloned().collect();
    read.extend(protected);
    read.extend(g.inputs.iter().cloned());
    for (_, n) in g.nodes() {
        read.extend(n.inputs.iter().cloned());
    }
    let unused: Vec<String> = g
        .initializers
        .keys()
        .filter(|k| !read.contains(*k))
        .cloned()
        .collect();
    for k in &unused {
        g.initializers.shift_remove(k);
        g.values.remove(k);
        g.value_info_names.retain(|v| v != k);
    }
    unused.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_protobuf::attribute_proto::AttributeType;
    use onnx_protobuf::AttributeProto;

    fn op(op_type: &str, attrs: &[(&str, i64)]) -> Node {
        let attributes = attrs
            .iter()
            .map(|&(name, v)| {
                let mut a = AttributeProto::new();
                a.name = name.into();
                a.type_ = AttributeType::INT.into();
                a.i = v;
                a
            })
            .collect();
        Node {
            op_type: op_type.into(),
            attributes,
            ..Default::default()
        }
    }

    #[test]
    fn shape_and_size_of_a_constant_follow_the_spec() {
        let dims = [2, 3, 5, 7];
        assert_eq!(
            shape_value(&op("Shape", &[]), &dims),
            (vec![4], dims.to_vec())
        );
        assert_eq!(
            shape_value(&op("Shape", &[("start", 1), ("end", -1)]), &dims),
            (vec![2], vec![3, 5])
        );
        // Out-of-range bounds clamp; an empty slice is a [0] tensor.
        assert_eq!(
            shape_value(&op("Shape", &[("start", -9), ("end", 99)]), &dims),
            (vec![4], dims.to_vec())
        );
        assert_eq!(
            shape_value(&op("Shape", &[("start", 3), ("end", 1)]), &dims),
            (vec![0], vec![])
        );
        assert_eq!(shape_value(&op("Size", &[]), &dims), (vec![], vec![210]));
    }
}
