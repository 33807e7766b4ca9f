//! LSTM, GRU and RNN weights are candidates of the mixed-precision pass (issue 15): W and R
//! of each node are two candidates (keys `<output>` and `<output>#R`), offered fp16 and
//! weight-only int8 with one scale per direction and gate row; B stays fp32. A hand-built
//! model with a bidirectional LSTM and a GRU without its Y output, at a budget that only
//! int8w everywhere meets, validates on onnxruntime.
//! Needs onnxruntime (`scripts/setup.sh`); fails saying so otherwise.

mod common;

use common::build::{
    float_input, int_attr, lcg, node, seeded_tensor as tensor, serialize, write_seeded_samples,
};
use common::{output_text as text, read_json as json, run_in as run};
use std::collections::BTreeMap;

const SEQ: i64 = 5;
const BATCH: i64 = 2;
const INPUT: i64 = 16;
/// LSTM: bidirectional, 4 gates of 32.
const LSTM_H: i64 = 32;
/// GRU: forward, 3 gates of 24.
const GRU_H: i64 = 24;

fn str_attr(name: &str, v: &str) -> onnx_protobuf::AttributeProto {
    let mut a = onnx_protobuf::AttributeProto::new();
    a.name = name.to_string();
    a.type_ = onnx_protobuf::attribute_proto::AttributeType::STRING.into();
    a.s = v.as_bytes().to_vec();
    a
}

/// `x: float[5,2,16]` → bidirectional LSTM (outputs Y `ly`, Y_h `lh`) and, beside it, a
/// forward GRU whose Y is left out (outputs `""`, `gh`).
fn recurrent_model() -> Vec<u8> {
    let mut next = lcg(7);
    let mut lstm = node("LSTM", &["x", "lw", "lr", "lb"], &["ly", "lh"]);
    lstm.attribute.push(int_attr("hidden_size", LSTM_H));
    lstm.attribute.push(str_attr("direction", "bidirectional"));
    let mut gru = node("GRU", &["x", "gw", "gr", "gb"], &["", "gh"]);
    gru.attribute.push(int_attr("hidden_size", GRU_H));
    gru.attribute.push(int_attr("linear_before_reset", 1));
    let mut g = onnx_protobuf::GraphProto::new();
    g.name = "recurrent".into();
    g.node = vec![lstm, gru];
    g.initializer = vec![
        tensor("lw", vec![2, 4 * LSTM_H, INPUT], 0.6, &mut next),
        tensor("lr", vec![2, 4 * LSTM_H, LSTM_H], 0.4, &mut next),
        tensor("lb", vec![2, 8 * LSTM_H], 0.2, &mut next),
        tensor("gw", vec![1, 3 * GRU_H, INPUT], 0.6, &mut next),
        tensor("gr", vec![1, 3 * GRU_H, GRU_H], 0.4, &mut next),
        tensor("gb", vec![1, 6 * GRU_H], 0.2, &mut next),
    ];
    g.input.push(float_input("x", &[SEQ, BATCH, INPUT]));
    g.output.push(float_input("ly", &[SEQ, 2, BATCH, LSTM_H]));
    g.output.push(float_input("gh", &[1, BATCH, GRU_H]));
    serialize(g, 8)
}

#[test]
fn recurrent_w_and_r_are_narrowed_per_gate_row_and_validate_on_onnxruntime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("rnn.onnx"), recurrent_model()).expect("model");
    let shape = [SEQ as usize, BATCH as usize, INPUT as usize];
    write_seeded_samples(&d.join("x"), &shape, 3.0, 99, 4);
    // W/R in fp32: 16384 + 32768 + 4608 + 6912 bytes, the biases 2624 (4 %). int8w on all
    // four is 0.3226 of the whole; fp16 anywhere misses 0.33.
    let o = run(
        d,
        &[
            "rnn.onnx",
            "-o",
            "out.onnx",
            "--calib",
            "x",
            "--inputs",
            "x",
            "--size-budget",
            "0.33",
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
    let by_key: BTreeMap<&str, &serde_json::Value> = nodes
        .iter()
        .map(|n| (n["key"].as_str().expect("key"), n))
        .collect();
    let keys: Vec<&str> = by_key.keys().copied().collect();
    assert_eq!(
        keys,
        ["gh", "gh#R", "ly", "ly#R"],
        "W and R of each node: {nodes:?}"
    );
    for (k, n) in &by_key {
        assert_eq!(n["precision"], "int8w", "{k}: {n}");
        let name = n["name"].as_str().expect("name");
        assert!(
            name == "LSTM_ly" || name == "GRU_",
            "{k} is named by its node: {name}"
        );
    }
    // Bytes are measured on the emitted tensors: int8 values + one f32 scale per row.
    assert_eq!(by_key["ly"]["bytes_after"], 2 * 128 * 16 + 4 * 2 * 128);
    assert_eq!(by_key["ly#R"]["bytes_after"], 2 * 128 * 32 + 4 * 2 * 128);
    assert_eq!(by_key["gh#R"]["bytes_after"], 72 * 24 + 4 * 72);
    let frac = p["size_fraction"].as_f64().expect("fraction");
    assert!(frac <= 0.33 + 1e-9, "{frac}");

    // The written model: W and R as int8 beside per-(direction, row) scales
    // [D, gates·H, 1]; the biases still fp32 initializers; no activation QDQ.
    let m = optimize::onnx_io::load_model(&d.join("out.onnx")).expect("load output");
    let dims_of = |dt: i32| -> Vec<Vec<i64>> {
        let mut v: Vec<Vec<i64>> = m
            .graph
            .initializers
            .values()
            .filter(|t| t.data_type == dt)
            .map(|t| t.dims.clone())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        dims_of(3),
        vec![
            vec![1, 72, 16],
            vec![1, 72, 24],
            vec![2, 128, 16],
            vec![2, 128, 32]
        ],
        "int8 W and R"
    );
    let floats = dims_of(1);
    for want in [vec![1, 72, 1], vec![2, 128, 1], vec![2, 256], vec![1, 144]] {
        assert!(floats.contains(&want), "no float {want:?} among {floats:?}");
    }
    for (_, n) in m.graph.nodes() {
        assert!(
            !n.op_type.contains("Quantize"),
            "activation QDQ around a recurrent op: {}",
            n.op_type
        );
    }
    let v = &r["validation"];
    assert_eq!(v["passed"], true, "{v}");
    assert!(v["cosine"].as_f64().unwrap_or(0.0) >= 0.99, "{v}");
}
