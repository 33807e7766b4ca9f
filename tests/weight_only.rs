//! Without calibration data only weight-only formats are offered (issue 16): the output has
//! no QuantizeLinear/DequantizeLinear at all, its report and summary say why, and
//! `--calib-random` opts back into int8 activations calibrated on noise. Embedding tables
//! (Gather on a constant table) are candidates and are stored per row in int8 or int4.
//! Needs `scripts/setup.sh` (PP-OCR models, onnxruntime); fails saying so otherwise.

mod common;

use common::build::{float_input, lcg, node, seeded_tensor, serialize};
use optimize::data::npy::write_npy;
use optimize::data::HostTensor;
use std::path::Path;

use common::{output_text as text, read_json as json, run_in as run};

/// How many nodes of each op type the written model has (subgraphs included).
fn op_count(path: &Path, op: &str) -> usize {
    let m = optimize::onnx_io::load_model(path).unwrap_or_else(|e| panic!("{e}"));
    m.graph.nodes().filter(|(_, n)| n.op_type == op).count()
}

fn cls_model() -> common::CorpusModel {
    common::ppocr_models()
        .into_iter()
        .find(|m| m.name.contains("cls"))
        .expect("PP-OCR cls in the corpus (run scripts/setup.sh)")
}

#[test]
fn without_calib_a_cnn_gets_weight_only_formats_and_the_report_says_why() {
    let cls = cls_model();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let model = cls.path.to_str().expect("utf8");
    let o = run(
        d,
        &[
            model,
            "-o",
            "wo.onnx",
            "--input-shape",
            "x=1x3x48x192",
            "--report",
            "wo.json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let summary = text(&o);
    assert!(
        summary.contains("weight-only formats: no --calib"),
        "the summary says why: {summary}"
    );
    assert!(
        !summary.contains("activation ranges come from"),
        "no random-calibration warning when nothing is calibrated: {summary}"
    );
    for op in ["QuantizeLinear", "DequantizeLinear", "QLinearConv"] {
        assert_eq!(
            op_count(&d.join("wo.onnx"), op),
            0,
            "{op} in a weight-only output"
        );
    }
    let r = json(&d.join("wo.json"));
    let p = &r["precision"];
    assert_eq!(p["formats"]["mode"], "weight-only", "{}", p["formats"]);
    assert!(
        p["formats"]["why"]
            .as_str()
            .is_some_and(|w| w.contains("--calib") && w.contains("--calib-random")),
        "{}",
        p["formats"]
    );
    let nodes = p["nodes"].as_array().expect("nodes");
    let lossy: Vec<&str> = nodes
        .iter()
        .filter_map(|n| n["precision"].as_str())
        .filter(|&q| q != "fp32")
        .collect();
    assert!(!lossy.is_empty(), "nothing was narrowed");
    assert!(
        lossy.iter().all(|&q| q != "int8"),
        "an activation-quantizing format without data: {lossy:?}"
    );
    assert!(lossy.contains(&"int8w"), "no weight-only int8: {lossy:?}");
    let frac = p["size_fraction"].as_f64().expect("size fraction");
    assert!(frac <= 0.30 + 1e-9, "the default budget holds: {frac}");

    // --calib-random opts back into int8 activations, with its warning.
    let o = run(
        d,
        &[
            model,
            "-o",
            "rand.onnx",
            "--input-shape",
            "x=1x3x48x192",
            "--calib-random",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("activation ranges come from"),
        "{}",
        text(&o)
    );
    assert!(op_count(&d.join("rand.onnx"), "QuantizeLinear") > 0);

    // It is a usage error beside --calib.
    let o = run(
        d,
        &[model, "-o", "bad.onnx", "--calib", ".", "--calib-random"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!d.join("bad.onnx").exists());
}

const VOCAB: i64 = 1000;
const DIM: i64 = 64;

/// `y = MatMul(Gather(table, ids), w)`: ids int64[2,5], table float[1000,64], w float[64,32].
fn embedding_model() -> Vec<u8> {
    let mut next = lcg(12345);
    let mut g = onnx_protobuf::GraphProto::new();
    g.name = "embed".into();
    g.node = vec![
        node("Gather", &["table", "ids"], &["e"]),
        node("MatMul", &["e", "w"], &["y"]),
    ];
    g.initializer
        .push(seeded_tensor("table", vec![VOCAB, DIM], 1.0, &mut next));
    g.initializer
        .push(seeded_tensor("w", vec![DIM, 32], 1.0, &mut next));
    let mut ids = float_input("ids", &[2, 5]);
    if let Some(onnx_protobuf::type_proto::Value::TensorType(t)) =
        ids.type_.as_mut().and_then(|t| t.value.as_mut())
    {
        t.elem_type = 7;
    }
    g.input.push(ids);
    g.output.push(float_input("y", &[2, 5, 32]));
    serialize(g, 8)
}

#[test]
fn an_embedding_table_is_a_candidate_and_is_stored_per_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("embed.onnx"), embedding_model()).expect("model");
    // Real ids over the whole table (random inputs only reach the first rows).
    let inputs = d.join("ids");
    std::fs::create_dir_all(&inputs).expect("mkdir");
    for s in 0..4i64 {
        let ids: Vec<i64> = (0..10).map(|i| (s * 251 + i * 97) % VOCAB).collect();
        write_npy(
            &inputs.join(format!("s{s}.npy")),
            &HostTensor::from_i64(vec![2, 5], &ids),
        )
        .expect("npy");
    }
    let o = run(
        d,
        &[
            "embed.onnx",
            "-o",
            "out.onnx",
            "--size-budget",
            "0.2",
            "--inputs",
            "ids",
            "--metric",
            "cosine",
            "--report",
            "r.json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let r = json(&d.join("r.json"));
    let nodes = r["precision"]["nodes"].as_array().expect("nodes");
    let gather = nodes
        .iter()
        .find(|n| n["op"] == "Gather")
        .unwrap_or_else(|| panic!("the Gather is not a candidate: {nodes:?}"));
    let q = gather["precision"].as_str().expect("precision");
    assert!(
        q == "int8w" || q == "int4",
        "the 256 KB table dominates the bytes, so a 0.2 budget narrows it: {q}"
    );
    let frac = r["precision"]["size_fraction"].as_f64().expect("fraction");
    assert!(frac <= 0.2 + 1e-9, "{frac}");
    // The table is stored as 8 or 4 bits (an int8 tensor, or uint8 nibbles) beside one
    // scale per row, and validation on the real ids passes.
    let m = optimize::onnx_io::load_model(&d.join("out.onnx")).expect("load output");
    let narrow = m.graph.initializers.values().any(|t| {
        (t.data_type == 3 || t.data_type == 2)
            && t.dims.first() == Some(&if q == "int4" { VOCAB / 2 } else { VOCAB })
            && t.dims.get(1) == Some(&DIM)
    });
    assert!(narrow, "no narrow table among the initializers");
    let per_row = m
        .graph
        .initializers
        .values()
        .any(|t| t.data_type == 1 && t.dims == vec![VOCAB, 1]);
    assert!(per_row, "no per-row scales [1000, 1]");
    let v = &r["validation"];
    assert_eq!(v["passed"], true, "{v}");
    assert!(v["cosine"].as_f64().unwrap_or(0.0) > 0.99, "{v}");
}
