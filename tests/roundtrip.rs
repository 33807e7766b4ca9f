//! Round trip over the whole corpus: import then export with no passes, and check that
//! onnxruntime gives bit-identical outputs for the original and the round-tripped model on
//! the shipped test inputs (seeded random inputs where none ship). Models onnxruntime
//! itself cannot load or feed are reported as skipped with the reason, never as passed.

mod common;

use optimize::data::{load_input_dir, random_inputs, Sample};
use optimize::onnx_io::{load_model, save_model, ExportOptions};
use optimize::runtime::OrtRuntime;
use optimize::shape::infer;
use optimize::validate::input_specs;

enum Outcome {
    Passed,
    Skipped(String),
    Failed(String),
}

fn samples_for(
    m: &common::CorpusModel,
    model: &optimize::ir::Model,
) -> Result<Vec<Sample>, String> {
    let specs = input_specs(model, &m.bindings).map_err(|e| e.to_string())?;
    if let Some(set) = m.test_sets.first() {
        load_input_dir(set, &specs).map_err(|e| e.to_string())
    } else {
        random_inputs(&specs, 7, 1).map_err(|e| e.to_string())
    }
}

fn check(m: &common::CorpusModel, scratch: &std::path::Path) -> Outcome {
    let rt = OrtRuntime::get().expect("onnxruntime must load: run scripts/setup.sh");
    let mut original = match rt.session_from_file(&m.path) {
        Ok(s) => s,
        Err(e) => return Outcome::Skipped(format!("onnxruntime cannot load the original: {e}")),
    };
    let mut model = match load_model(&m.path) {
        Ok(x) => x,
        Err(e) => return Outcome::Failed(format!("import failed: {e}")),
    };
    if let Err(e) = infer(&mut model, &m.bindings) {
        return Outcome::Failed(format!("shape inference failed: {e}"));
    }
    let samples = match samples_for(m, &model) {
        Ok(s) => s,
        Err(e) if e.contains("only tensor inputs") => {
            return Outcome::Skipped(format!("cannot feed inputs: {e}"))
        }
        Err(e) => return Outcome::Failed(format!("inputs: {e}")),
    };
    let out = scratch.join(format!("{}.onnx", m.name.replace('/', "__")));
    if let Err(e) = save_model(&model, &out, &ExportOptions::default()) {
        return Outcome::Failed(format!("export failed: {e}"));
    }
    let mut again = match rt.session_from_file(&out) {
        Ok(s) => s,
        Err(e) => {
            return Outcome::Failed(format!("onnxruntime refuses the round-tripped model: {e}"))
        }
    };
    for s in &samples {
        let a = match original.run(&s.values) {
            Ok(a) => a,
            Err(e) => return Outcome::Skipped(format!("onnxruntime cannot run the original: {e}")),
        };
        let b = match again.run(&s.values) {
            Ok(b) => b,
            Err(e) => return Outcome::Failed(format!("round-tripped model fails to run: {e}")),
        };
        if a.len() != b.len() {
            return Outcome::Failed(format!("{} outputs vs {}", a.len(), b.len()));
        }
        for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
            if na != nb || !ta.bit_identical(tb) {
                return Outcome::Failed(format!(
                    "output '{na}' differs after the round trip (sample {})",
                    s.id
                ));
            }
        }
    }
    Outcome::Passed
}

#[test]
fn round_trip_is_bit_identical_on_onnxruntime() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let models = common::corpus();
    let (mut passed, mut skipped, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for m in &models {
        match check(m, scratch.path()) {
            Outcome::Passed => passed.push(m.name.clone()),
            Outcome::Skipped(r) => skipped.push(format!("{}: {r}", m.name)),
            Outcome::Failed(r) => failed.push(format!("{}: {r}", m.name)),
        }
    }
    println!(
        "round trip over {} models: {} passed, {} failed, {} skipped",
        models.len(),
        passed.len(),
        failed.len(),
        skipped.len()
    );
    for s in &skipped {
        println!("  skipped {s}");
    }
    for f in &failed {
        println!("  FAILED  {f}");
    }
    assert!(
        failed.is_empty(),
        "{} models failed the round trip:\n{}",
        failed.len(),
        failed.join("\n")
    );
    // Every skip must be onnxruntime refusing the original model itself (legacy opset-1/6
    // kernels it no longer ships, training ops); anything else is our failure.
    let not_ort: Vec<&String> = skipped
        .iter()
        .filter(|s| !s.contains("onnxruntime cannot load the original"))
        .collect();
    assert!(
        not_ort.is_empty(),
        "skipped for reasons other than onnxruntime refusing the original: {not_ort:?}"
    );
    assert!(passed.len() + skipped.len() == models.len());
    // docs/testing.md's figures (152 models, 116 passed, 36 skipped).
    assert_eq!(
        (models.len(), passed.len(), skipped.len()),
        (152, 116, 36),
        "(models, passed, skipped) differ from docs/testing.md's"
    );
}
