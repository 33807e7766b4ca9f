//! The candidate kinds added for the model families, on the zoo's trained models (issue 15):
//! MiniLM's embedding tables (`Gather` on a constant table) and the GRU encoder's W and R
//! are narrowed at a budget the other weights alone cannot meet, the written model
//! validates, and its size is what the report says. (`tests/subgraph_weights.rs` covers the
//! `If` head; no zoo model has an `Einsum` or fused-op weight: `tests/decoded_weights.rs`.)
//! Needs onnxruntime and the zoo (`scripts/setup.sh`); fails saying so otherwise.

mod common;

use common::{output_text as text, read_json as json, run_in as run};
use std::path::PathBuf;

fn zoo(rel: &str) -> PathBuf {
    let p = common::root().join(".deps/zoo").join(rel);
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh",
        p.display()
    );
    p
}

/// Runs the optimizer on zoo model `model` with its calibration and evaluation sets at
/// `budget`; returns the report.
fn optimize(dir: &std::path::Path, key: &str, model: &str, budget: &str) -> serde_json::Value {
    let (m, calib, eval) = (
        zoo(&format!("{key}/{model}")),
        zoo(&format!("{key}/calib")),
        zoo(&format!("{key}/eval")),
    );
    let path = |p: &PathBuf| p.to_str().expect("utf-8 path").to_string();
    let (m, calib, eval) = (path(&m), path(&calib), path(&eval));
    let o = run(
        dir,
        &[
            &m,
            "-o",
            "out.onnx",
            "--calib",
            &calib,
            "--inputs",
            &eval,
            "--size-budget",
            budget,
            "--report",
            "r.json",
        ],
    );
    assert!(o.status.success(), "{key}: {}", text(&o));
    json(&dir.join("r.json"))
}

/// The report's precision candidates of op `op`.
fn candidates_of<'r>(r: &'r serde_json::Value, op: &str) -> Vec<&'r serde_json::Value> {
    let nodes = r["precision"]["nodes"].as_array().expect("nodes");
    nodes.iter().filter(|n| n["op"] == op).collect()
}

/// MiniLM: the word-embedding table is 52.8 % of the bytes, so 0.30 needs it narrowed.
#[test]
fn minilm_embedding_tables_are_narrowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = optimize(dir.path(), "minilm", "model.onnx", "0.30");
    let p = &r["precision"];
    let tables = candidates_of(&r, "Gather");
    assert_eq!(
        tables.len(),
        3,
        "word, position and token-type tables: {tables:?}"
    );
    let word = tables
        .iter()
        .max_by_key(|n| n["bytes_before"].as_u64().unwrap_or(0))
        .expect("largest table");
    assert_ne!(word["precision"], "fp32", "{word}");
    assert!(p["size_fraction"].as_f64().unwrap_or(1.0) <= 0.30, "{p}");
    let v = &r["validation"];
    assert!(v["cosine"].as_f64().unwrap_or(0.0) >= 0.98, "{v}");
}

/// GRU encoder: W and R of both GRU layers are 84 % of the bytes.
#[test]
fn gru_weights_are_narrowed_and_validate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = optimize(dir.path(), "gru_encoder", "encoder.onnx", "0.30");
    let p = &r["precision"];
    let recurrent = candidates_of(&r, "GRU");
    assert_eq!(recurrent.len(), 4, "W and R of two GRUs: {recurrent:?}");
    for n in &recurrent {
        assert_ne!(n["precision"], "fp32", "{n}");
        assert!(
            n["bytes_after"].as_u64() < n["bytes_before"].as_u64(),
            "{n}"
        );
    }
    assert!(
        recurrent
            .iter()
            .any(|n| n["key"].as_str().is_some_and(|k| k.ends_with("#R"))),
        "an R candidate: {recurrent:?}"
    );
    assert!(p["size_fraction"].as_f64().unwrap_or(1.0) <= 0.30, "{p}");
    assert_eq!(r["validation"]["passed"], true, "{}", r["validation"]);
}
