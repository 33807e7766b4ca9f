//! Single-operator errors measured on suffixes (issue 15: "calibration and error
//! measurement must not scale as operators × samples full runs when one collect run per
//! sample can serve") equal the whole-model measurements they replace: on PP-OCR cls
//! (int8 QDQ units, int4 chains, fp16) and on
//! the wake-word head whose `If` branch reads narrowed weights from the outer scope.
//! Needs onnxruntime and the zoo (`scripts/setup.sh`); fails saying so otherwise.

mod common;

use optimize::data::load_input_dir;
use optimize::passes::precision::calibrate::{calibrate, CalibMethod};
use optimize::passes::precision::candidates::candidates;
use optimize::passes::precision::sensitivity::{error_table, ErrorTable, MeasureOptions};
use optimize::passes::precision::Precision;
use optimize::validate::input_specs;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

fn table(model: &Path, data: &Path, bindings: &[(&str, Vec<i64>)], suffix: bool) -> ErrorTable {
    for p in [model, data] {
        assert!(
            p.exists(),
            "{} is missing: run scripts/setup.sh",
            p.display()
        );
    }
    let bindings: HashMap<String, Vec<i64>> = bindings
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let m = optimize::pipeline::load_and_infer(model, &bindings).expect("load");
    let cands = candidates(&m);
    assert!(!cands.is_empty(), "{}: no candidates", model.display());
    let specs = input_specs(&m, &bindings).expect("specs");
    let samples = load_input_dir(data, &specs).expect("samples");
    let samples = &samples[..2];
    let tensors: Vec<String> = cands
        .iter()
        .filter(|c| c.bytes_at(Precision::Int8).is_some())
        .flat_map(|c| c.activation_inputs.iter().chain(&c.outputs).cloned())
        .collect();
    let calib = calibrate(&m, samples, &tensors, CalibMethod::MinMax).expect("calibrate");
    let relevance: BTreeMap<String, f64> = cands.iter().map(|c| (c.key.clone(), 1.0)).collect();
    let opts = MeasureOptions {
        measure: true,
        samples: 2,
        max_measurements: 10_000,
        time_limit_s: 1e9,
        suffix,
    };
    error_table(&m, &cands, &calib, relevance, samples, &opts).expect("error table")
}

fn assert_same(what: &str, suffix: &ErrorTable, whole: &ErrorTable) {
    assert!(
        suffix.suffix_measured,
        "{what}: the suffix path was not taken"
    );
    assert!(!whole.suffix_measured, "{what}");
    assert!(whole.measured > 0, "{what}: nothing measured");
    assert_eq!(suffix.measured, whole.measured, "{what}: measured counts");
    for (k, w) in &whole.entries {
        let s = &suffix.entries[k];
        let (Some(a), Some(b)) = (s.measured, w.measured) else {
            assert_eq!(s.measured, w.measured, "{what}: {k:?}");
            continue;
        };
        assert!(
            (a - b).abs() <= 1e-6 * b.abs().max(1e-9),
            "{what}: {k:?}: suffix {a} vs whole model {b}"
        );
    }
}

#[test]
fn suffix_measurements_equal_whole_model_measurements() {
    let root = common::root().join(".deps");
    let cls = root.join("models/ch_ppocr_mobile_v2.0_cls_infer.onnx");
    let lines = root.join("zoo/ppocr_text/cls/calib");
    let shape = [("x", vec![1, 3, 48, 192])];
    let (s, w) = (
        table(&cls, &lines, &shape, true),
        table(&cls, &lines, &shape, false),
    );
    assert_same("ppocr cls", &s, &w);

    let jarvis = root.join("zoo/jarvis/hey_jarvis_branch_init.onnx");
    let clips = root.join("zoo/jarvis/calib");
    let (s, w) = (
        table(&jarvis, &clips, &[], true),
        table(&jarvis, &clips, &[], false),
    );
    assert!(
        s.entries.keys().any(|(k, _)| k.ends_with("#subgraph")),
        "jarvis: no subgraph candidate"
    );
    assert_same("jarvis", &s, &w);
}
