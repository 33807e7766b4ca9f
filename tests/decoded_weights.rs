//! Large constants that no operator-specific candidate takes (issue 15: `Einsum` with a
//! constant operand, a `MatMul` whose constant is its first operand or a batched
//! `[1, K, N]` weight, a position table added by `Add`, a weight stored in a `Constant` node) are candidates, decoded in the
//! main graph under their own name; the written model validates on onnxruntime.
//! Needs onnxruntime (`scripts/setup.sh`); fails saying so otherwise.

mod common;

use common::build::{
    float_input, lcg, node, seeded_tensor as tensor, serialize, write_seeded_samples,
};
use common::{output_text as text, read_json as json, run_in as run};
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::AttributeProto;

const SEQ: i64 = 64;
const DIM: i64 = 64;
const OUT: i64 = 128;
const LAST: i64 = 32;

/// `x: float[1,64,64]` → Add(pos `[1,64,64]`) → Einsum("bsd,de->bse", we `[64,128]`) →
/// MatMul(ac `[64,64]` as a Constant node, ·) → MatMul(·, b3 `[1,128,32]`, a batched
/// weight) → y `[1,64,32]`.
fn model() -> Vec<u8> {
    let mut next = lcg(5);
    let mut einsum = node("Einsum", &["h", "we"], &["e"]);
    let mut eq = AttributeProto::new();
    eq.name = "equation".into();
    eq.type_ = AttributeType::STRING.into();
    eq.s = b"bsd,de->bse".to_vec();
    einsum.attribute.push(eq);
    let mut constant = node("Constant", &[], &["ac"]);
    let mut value = AttributeProto::new();
    value.name = "value".into();
    value.type_ = AttributeType::TENSOR.into();
    value.t = Some(tensor("ac", vec![SEQ, SEQ], 0.2, &mut next)).into();
    constant.attribute.push(value);
    let mut g = onnx_protobuf::GraphProto::new();
    g.name = "decoded".into();
    g.node = vec![
        node("Add", &["x", "pos"], &["h"]),
        einsum,
        constant,
        node("MatMul", &["ac", "e"], &["m"]),
        node("MatMul", &["m", "b3"], &["y"]),
    ];
    g.initializer = vec![
        tensor("pos", vec![1, SEQ, DIM], 0.5, &mut next),
        tensor("we", vec![DIM, OUT], 0.3, &mut next),
        tensor("b3", vec![1, OUT, LAST], 0.2, &mut next),
    ];
    g.input.push(float_input("x", &[1, SEQ, DIM]));
    g.output.push(float_input("y", &[1, SEQ, LAST]));
    serialize(g, 8)
}

#[test]
fn einsum_first_operand_and_position_tables_are_narrowed_and_validate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("m.onnx"), model()).expect("model");
    write_seeded_samples(&d.join("x"), &[1, SEQ as usize, DIM as usize], 2.0, 17, 4);
    // fp32: pos 16384 + we 32768 + ac 16384 + b3 16384 bytes. int8w everywhere stores a
    // quarter plus one scale per row (and the dims of pos and b3 for the reshape back):
    // 0.2662; fp16 anywhere misses.
    let o = run(
        d,
        &[
            "m.onnx",
            "-o",
            "out.onnx",
            "--inputs",
            "x",
            "--size-budget",
            "0.28",
            "--metric",
            "cosine",
            "--report",
            "r.json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let r = json(&d.join("r.json"));
    let p = &r["precision"];
    let nodes = p["nodes"].as_array().expect("nodes");
    let mut keys: Vec<&str> = nodes.iter().filter_map(|n| n["key"].as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["ac#const", "b3#const", "pos#const", "we#const"],
        "{nodes:?}"
    );
    for n in nodes {
        assert_ne!(n["precision"], "fp32", "{n}");
    }
    let ops: Vec<&str> = nodes.iter().filter_map(|n| n["op"].as_str()).collect();
    for op in ["Add", "Einsum", "MatMul"] {
        assert!(ops.contains(&op), "{op} among {ops:?}");
    }
    assert_eq!(p["weight_bytes_before"], 81920);
    assert!(p["size_fraction"].as_f64().unwrap_or(1.0) <= 0.28, "{p}");

    // Each constant is produced under its own name by its decoding (pos reshaped back to
    // [1, 64, 64]); none is left as a float initializer or Constant node.
    let m = optimize::onnx_io::load_model(&d.join("out.onnx")).expect("load output");
    for name in ["pos", "we", "ac", "b3"] {
        assert!(
            !m.graph.initializers.contains_key(name),
            "{name} is still an initializer"
        );
        let idx = m
            .graph
            .producer(name)
            .unwrap_or_else(|| panic!("nothing produces {name}"));
        let producer = &m.graph.ops[idx];
        assert_ne!(producer.op_type, "Constant", "{name}");
        if name == "pos" || name == "b3" {
            assert_eq!(producer.op_type, "Reshape", "{name}");
        }
    }
    let v = &r["validation"];
    assert_eq!(v["passed"], true, "{v}");
    assert!(v["cosine"].as_f64().unwrap_or(0.0) >= 0.99, "{v}");
}
