//! Shape inference on the layers of the model families people bring (docs/zoo.md): LSTM
//! (ddddocr), GRU (the seq2seq encoder; its decoder is one unrolled step) and com.microsoft MultiHeadAttention
//! (MiniLM). Every intermediate tensor is exposed, the model runs on onnxruntime on a real
//! evaluation sample, and each tensor whose type we infer must agree with what onnxruntime
//! produces; the recurrent and attention outputs must be inferred with static shapes.

mod common;

use optimize::data::load_input_dir;
use optimize::onnx_io::{save_model, ExportOptions};
use optimize::runtime::intermediates::expose_intermediates;
use optimize::runtime::OrtRuntime;
use optimize::validate::input_specs;
use std::collections::HashMap;

/// (key, model under .deps, its evaluation inputs, the op types whose outputs must be typed).
const CASES: &[(&str, &str, &str, &[&str])] = &[
    (
        "ddddocr",
        "zoo/ddddocr/common.onnx",
        "zoo/ddddocr/eval",
        &["LSTM"],
    ),
    (
        "gru_encoder",
        "zoo/gru_encoder/encoder.onnx",
        "zoo/gru_encoder/eval",
        &["GRU"],
    ),
    (
        "minilm",
        "zoo/minilm/model.onnx",
        "zoo/minilm/eval",
        &["MultiHeadAttention"],
    ),
];

#[test]
fn recurrent_and_attention_outputs_match_onnxruntime() {
    let deps = common::root().join(".deps");
    let rt = OrtRuntime::get().expect("onnxruntime must load: run scripts/setup.sh");
    let scratch = tempfile::tempdir().expect("tempdir");
    for &(key, model, eval, ops) in CASES {
        let path = deps.join(model);
        assert!(
            path.is_file(),
            "{} is missing: run scripts/setup.sh",
            path.display()
        );
        // Bind every input's dims to the first evaluation sample's.
        let raw = optimize::onnx_io::load_model(&path).unwrap_or_else(|e| panic!("{key}: {e}"));
        let specs = input_specs(&raw, &HashMap::new()).unwrap_or_else(|e| panic!("{key}: {e}"));
        let samples =
            load_input_dir(&deps.join(eval), &specs).unwrap_or_else(|e| panic!("{key}: {e}"));
        let sample = &samples[0];
        let bindings: HashMap<String, Vec<i64>> = sample
            .values
            .iter()
            .map(|(n, t)| (n.clone(), t.shape.iter().map(|&d| d as i64).collect()))
            .collect();
        let m = optimize::pipeline::load_and_infer(&path, &bindings)
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        let mut must: Vec<String> = Vec::new();
        for (_, n) in m.graph.nodes() {
            if ops.contains(&n.op_type.as_str()) {
                must.extend(n.outputs.iter().filter(|o| !o.is_empty()).cloned());
            }
        }
        assert!(!must.is_empty(), "{key}: no {ops:?} node");
        let (exposed, _) = expose_intermediates(&m);
        let file = scratch.path().join(format!("{key}.onnx"));
        save_model(&exposed, &file, &ExportOptions::default()).expect("export");
        let mut session = rt
            .session_from_file(&file)
            .unwrap_or_else(|e| panic!("{key}: exposed model: {e}"));
        let outputs = session
            .run(&sample.values)
            .unwrap_or_else(|e| panic!("{key}: exposed model run: {e}"));
        let (mut agreed, mut bad) = (0usize, Vec::new());
        for (name, actual) in &outputs {
            let Some(t) = m.graph.value_type(name) else {
                continue;
            };
            let want: Vec<i64> = actual.shape.iter().map(|&d| d as i64).collect();
            let same_type = t.elem() == Some(actual.dtype);
            let same_shape = t.static_dims().as_deref() == Some(&want[..]);
            if same_type && (same_shape || (!must.contains(name) && t.static_dims().is_none())) {
                agreed += 1;
            } else {
                bad.push(format!(
                    "'{name}': inferred {t}, onnxruntime {}{want:?}",
                    actual.dtype
                ));
            }
        }
        for name in &must {
            let t = m.graph.value_type(name);
            assert!(
                t.is_some_and(|t| t.static_dims().is_some()),
                "{key}: '{name}' ({ops:?}) is not inferred with a static shape: {t:?}"
            );
            assert!(
                outputs.iter().any(|(n, _)| n == name),
                "{key}: onnxruntime did not return '{name}'"
            );
        }
        println!(
            "{key:<12} {agreed} tensors agree with onnxruntime ({} from {ops:?})",
            must.len()
        );
        assert!(bad.is_empty(), "{key}: {}", bad.join("; "));
    }
}
