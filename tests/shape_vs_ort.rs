//! Shape inference checked against the shapes onnxruntime actually produces: every
//! intermediate tensor is exposed as a graph output, the model runs once, and each
//! inferred static shape and dtype must equal the real one.

mod common;

use optimize::data::{load_input_dir, random_inputs};
use optimize::onnx_io::{save_model, ExportOptions};
use optimize::runtime::intermediates::expose_intermediates;
use optimize::runtime::OrtRuntime;
use optimize::validate::input_specs;

/// Tensors whose shape depends on input *values*, so no static inference can know it:
/// (model, tensor, why). Their inferred type must still agree with onnxruntime where known.
const DATA_DEPENDENT: &[(&str, &str, &str)] = &[
    (
        "simple/test_expand_shape_model1",
        "Y",
        "Expand's target shape is a graph input",
    ),
    (
        "simple/test_expand_shape_model2",
        "Y",
        "Expand's target shape is a graph input",
    ),
    (
        "simple/test_expand_shape_model3",
        "Y",
        "Expand's target shape is a graph input",
    ),
    (
        "simple/test_expand_shape_model4",
        "Y",
        "Expand's target shape is a graph input",
    ),
    (
        "simple/test_strnorm_model_monday_casesensintive_lower",
        "y",
        "stopword removal depends on the strings",
    ),
    (
        "simple/test_strnorm_model_monday_casesensintive_nochangecase",
        "y",
        "stopword removal depends on the strings",
    ),
    (
        "simple/test_strnorm_model_monday_casesensintive_upper",
        "y",
        "stopword removal depends on the strings",
    ),
    (
        "simple/test_strnorm_model_monday_empty_output",
        "y",
        "stopword removal depends on the strings",
    ),
    (
        "simple/test_strnorm_model_monday_insensintive_upper_twodim",
        "y",
        "stopword removal depends on the strings",
    ),
];

/// True when every dim the inference knows equals the real one (same rank).
fn consistent(t: &optimize::ir::ValueType, real: &[i64]) -> bool {
    t.dims().is_some_and(|d| {
        d.len() == real.len()
            && d.iter()
                .zip(real)
                .all(|(a, b)| a.known().is_none_or(|k| k == *b))
    })
}

#[test]
fn inferred_shapes_match_onnxruntime() {
    let rt = OrtRuntime::get().expect("onnxruntime must load: run scripts/setup.sh");
    let scratch = tempfile::tempdir().expect("tempdir");
    let (mut models_checked, mut tensors_checked, mut skipped) = (0usize, 0usize, Vec::new());
    let corpus = common::corpus();
    assert_eq!(corpus.len(), 152, "the corpus has 152 models");
    let mut mismatches = Vec::new();
    let mut data_dependent_seen = 0usize;
    for m in corpus {
        if rt.session_from_file(&m.path).is_err() {
            skipped.push(format!("{}: onnxruntime cannot load the original", m.name));
            continue;
        }
        let model =
            optimize::pipeline::load_and_infer(&m.path, &m.bindings).expect("import + inference");
        let (exposed, names) = expose_intermediates(&model);
        let path = scratch
            .path()
            .join(format!("{}.onnx", m.name.replace('/', "__")));
        save_model(&exposed, &path, &ExportOptions::default()).expect("export");
        let mut session = match rt.session_from_file(&path) {
            Ok(s) => s,
            Err(e) => {
                mismatches.push(format!(
                    "{}: onnxruntime refuses the model with exposed intermediates: {e}",
                    m.name
                ));
                continue;
            }
        };
        let specs = input_specs(&model, &m.bindings).expect("input specs");
        let sample = match m.test_sets.first() {
            Some(set) => load_input_dir(set, &specs).expect("test inputs"),
            None => random_inputs(&specs, 3, 1).expect("random inputs"),
        };
        // onnxruntime loaded the original: a failing run of the exposed model is a defect
        // of ours (an exposed tensor with a wrong declared type, say), not a skip.
        let outputs = match session.run(&sample[0].values) {
            Ok(o) => o,
            Err(e) => {
                mismatches.push(format!(
                    "{}: onnxruntime cannot run the model with exposed intermediates: {e}",
                    m.name
                ));
                continue;
            }
        };
        models_checked += 1;
        for (name, actual) in &outputs {
            if !names.contains(name) && !model.graph.outputs.contains(name) {
                continue;
            }
            let inferred = model.graph.value_type(name);
            let want_dims: Vec<i64> = actual.shape.iter().map(|&d| d as i64).collect();
            let data_dependent = DATA_DEPENDENT
                .iter()
                .any(|(mm, t, _)| *mm == m.name && t == name);
            match inferred {
                Some(t)
                    if t.elem() == Some(actual.dtype)
                        && t.static_dims().as_deref() == Some(&want_dims[..]) =>
                {
                    assert!(
                        !data_dependent,
                        "{}: '{name}' is listed as data-dependent but is inferred statically",
                        m.name
                    );
                    tensors_checked += 1
                }
                Some(t)
                    if data_dependent
                        && t.elem() == Some(actual.dtype)
                        && consistent(t, &want_dims) =>
                {
                    data_dependent_seen += 1
                }
                other => mismatches.push(format!(
                    "{}: tensor '{name}': inferred {}, onnxruntime gives {}{:?}",
                    m.name,
                    other
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "nothing".into()),
                    actual.dtype,
                    want_dims
                )),
            }
        }
    }
    println!(
        "shape inference vs onnxruntime: {models_checked} models, {tensors_checked} tensors agree exactly, \
         {data_dependent_seen} data-dependent tensors consistent (rank, dtype, known dims), {} mismatches, {} models skipped",
        mismatches.len(),
        skipped.len()
    );
    for s in &skipped {
        println!("  skipped {s}");
    }
    for x in &mismatches {
        println!("  MISMATCH {x}");
    }
    assert!(
        mismatches.is_empty(),
        "{} tensors disagree with onnxruntime",
        mismatches.len()
    );
    assert_eq!(
        data_dependent_seen,
        DATA_DEPENDENT.len(),
        "every listed data-dependent tensor must be seen and consistent"
    );
    // docs/testing.md's figures (116 models, 6238 tensors agree exactly); the other 36 of
    // the 152 corpus models are those onnxruntime 1.31 cannot load (legacy opset-1/6 forms,
    // training ops), the same 36 tests/roundtrip.rs lists.
    assert_eq!(
        (models_checked, tensors_checked, skipped.len()),
        (116, 6238, 36),
        "checked (models, tensors, models onnxruntime cannot load) differ from docs/testing.md's"
    );
}
