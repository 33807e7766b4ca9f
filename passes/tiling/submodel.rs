//! Cutting a sub-model: keep only what some tensors need and make them the outputs (the
//! tests and the benchmark cut VGG-19's first five convolution layers this way, as in
//! Alwani et al.).

use crate::pass_manager::Pass;
use optimize_ir::ir::Model;

/// Makes `outputs` the graph's outputs and removes every node they do not need.
pub fn cut(model: &mut Model, outputs: &[&str]) -> Result<(), String> {
    let g = &mut model.graph;
    for &o in outputs {
        if g.source(o).is_none() {
            return Err(format!("tensor '{o}' is not defined in the model"));
        }
    }
    g.outputs = outputs.iter().map(|s| s.to_string()).collect();
    crate::cleanup::Cleanup
        .run(model)
        .map_err(|e| e.to_string())?;
    model.graph.relink().map_err(|e| e.to_string())
}

/// Replaces every ConstantOfShape of a constant shape by the initializer it makes (the light
/// models of the onnx wheel carry their weights this way; the mixed-precision pass only
/// quantizes weights it can read). Returns how many were replaced.
pub fn materialize_filled_constants(model: &mut Model) -> Result<usize, String> {
    use optimize_ir::ir::attr::AttrExt;
    use optimize_ir::ir::DataType;
    let g = &mut model.graph;
    let mut done = 0;
    for idx in g.indices_of(&["ConstantOfShape"]) {
        let n = g.ops[idx].clone();
        let Some(shape) = n.inputs.first().and_then(|s| g.initializers.get(s)) else {
            continue;
        };
        let Some(dims) = optimize_ir::ir::tensor::to_i64(shape) else {
            continue;
        };
        let value = n.attr("value").and_then(|a| a.t.as_ref());
        let dt = value
            .and_then(|t| DataType::from_onnx(t.data_type))
            .unwrap_or(DataType::Float);
        let fill = value
            .and_then(optimize_ir::ir::tensor::to_f64)
            .and_then(|v| v.first().copied())
            .unwrap_or(0.0);
        if dt != DataType::Float || n.attr("value").is_some_and(|a| a.as_str().is_some()) {
            continue;
        }
        let count: i64 = dims.iter().product();
        let mut t = onnx_protobuf::TensorProto::new();
        t.name = n.outputs[0].clone();
        t.data_type = DataType::Float as i32;
        t.dims = dims;
        t.raw_data = std::iter::repeat_n((fill as f32).to_le_bytes(), count.max(0) as usize)
            .flatten()
            .collect();
        g.remove_node(idx);
        g.initializers.insert(t.name.clone(), t);
        done += 1;
    }
    g.relink().map_err(|e| e.to_string())?;
    Ok(done)
}
