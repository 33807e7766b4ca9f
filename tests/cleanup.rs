//! The clean-up pass removes what cannot change a result, and the result indeed does not change.

mod common;

use common::build::node;
use onnx_protobuf::{GraphProto, TensorProto};
use optimize::data::random_inputs;
use optimize::onnx_io::{model_from_bytes, save_model, ExportOptions};
use optimize::passes::registry::{default_list, PassSettings};
use optimize::runtime::OrtRuntime;
use optimize::validate::input_specs;
use std::collections::HashMap;
use std::path::Path;

fn initializer(name: &str, values: &[f32]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.data_type = 1;
    t.dims = vec![values.len() as i64];
    t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    t
}

/// x → Identity → Identity → Add(b) → Reshape(Shape(big)) → Relu → y, plus a dead Mul
/// branch, an unused initializer, a weight read only by Shape, and an Identity that is
/// itself a graph output (must stay).
fn messy_model() -> Vec<u8> {
    // A weight read only by Shape: its dims are all anybody needs.
    let mut big = initializer("big", &[0.25; 6]);
    big.dims = vec![2, 3];
    let mut g = GraphProto::new();
    g.name = "messy".into();
    g.node = vec![
        node("Identity", &["x"], &["i1"]),
        node("Identity", &["i1"], &["i2"]),
        node("Add", &["i2", "b"], &["s"]),
        node("Mul", &["s", "s"], &["dead1"]),
        node("Neg", &["dead1"], &["dead2"]),
        node("Shape", &["big"], &["big_shape"]),
        node("Reshape", &["s", "big_shape"], &["r"]),
        node("Relu", &["r"], &["y"]),
        node("Identity", &["y"], &["y_copy"]),
    ];
    g.initializer = vec![
        initializer("b", &[0.5, -0.5, 1.0]),
        initializer("unused", &[1.0; 16]),
        big,
    ];
    g.input.push(common::build::float_input("x", &[2, 3]));
    g.output.push(common::build::float_input("y", &[2, 3]));
    g.output.push(common::build::float_input("y_copy", &[2, 3]));
    common::build::serialize(g, 8)
}

#[test]
fn cleanup_removes_identities_dead_nodes_and_unused_initializers_without_changing_outputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let original = dir.path().join("messy.onnx");
    std::fs::write(&original, messy_model()).expect("write");
    let mut model =
        model_from_bytes(&std::fs::read(&original).expect("read"), &original).expect("import");
    let records = default_list(&PassSettings::default())
        .expect("pass list")
        .run(&mut model)
        .expect("passes");
    let c = &records[0].changes;
    assert_eq!(records[0].name, "cleanup");
    assert_eq!(c.get("removed_identity"), Some(&2), "{c:?}");
    assert_eq!(c.get("removed_dead_nodes"), Some(&2), "{c:?}");
    assert_eq!(c.get("folded_constant_shapes"), Some(&1), "{c:?}");
    assert_eq!(c.get("removed_initializers"), Some(&2), "{c:?}");
    assert!(
        !model.graph.initializers.contains_key("big"),
        "a weight read only by Shape must go"
    );
    let ops: Vec<String> = model
        .graph
        .nodes()
        .map(|(_, n)| n.op_type.clone())
        .collect();
    assert_eq!(
        ops,
        ["Add", "Reshape", "Relu", "Identity"],
        "the output Identity must stay"
    );
    assert_eq!(
        model.graph.nodes().next().map(|(_, n)| n.inputs[0].clone()),
        Some("x".to_string())
    );

    // A second run finds nothing more to do.
    let again = default_list(&PassSettings::default())
        .expect("pass list")
        .run(&mut model)
        .expect("passes");
    assert!(!again[0].changed);

    let cleaned = dir.path().join("clean.onnx");
    save_model(&model, &cleaned, &ExportOptions::default()).expect("save");
    assert_same_outputs(&original, &cleaned);
}

fn assert_same_outputs(a: &Path, b: &Path) {
    let rt = OrtRuntime::get().expect("onnxruntime must load: run scripts/setup.sh");
    let model = optimize::onnx_io::load_model(a).expect("load");
    let specs = input_specs(&model, &HashMap::new()).expect("specs");
    let samples = random_inputs(&specs, 11, 3).expect("inputs");
    let (mut sa, mut sb) = (
        rt.session_from_file(a).expect("a"),
        rt.session_from_file(b).expect("b"),
    );
    for s in &samples {
        let (ra, rb) = (
            sa.run(&s.values).expect("run a"),
            sb.run(&s.values).expect("run b"),
        );
        assert_eq!(ra, rb, "outputs changed by the clean-up");
    }
}
