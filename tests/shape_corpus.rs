//! Shape inference over the whole test corpus: every tensor of every model must get a known
//! dtype and a fully static shape (sequences: a known element type), except the tensors
//! listed in [`UNKNOWABLE`], whose shapes depend on data. Declared shapes in the files
//! (graph outputs, value_info) must agree with the inferred ones wherever both are known.

use optimize::ir::{Dim, ValueType};
use optimize::shape::{self, Bindings};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// (model path relative to `.deps`, tensor, why its shape cannot be known statically).
const UNKNOWABLE: &[(&str, &str, &str)] = &[
    // Expand's target shape is a graph input: the output dims are data.
    (
        "onnx-data/simple/test_expand_shape_model1/model.onnx",
        "Y",
        "Expand target shape is a runtime input",
    ),
    (
        "onnx-data/simple/test_expand_shape_model2/model.onnx",
        "Y",
        "Expand target shape is a runtime input",
    ),
    (
        "onnx-data/simple/test_expand_shape_model3/model.onnx",
        "Y",
        "Expand target shape is a runtime input",
    ),
    (
        "onnx-data/simple/test_expand_shape_model4/model.onnx",
        "Y",
        "Expand target shape is a runtime input",
    ),
    // The input is declared [n] and there is no natural binding; split sizes are a runtime input.
    (
        "onnx-data/simple/test_sequence_model8/model.onnx",
        "X",
        "input declared with symbolic dim 'n'",
    ),
    // Removing stopwords makes the output length depend on the strings.
    (
        "onnx-data/simple/test_strnorm_model_monday_casesensintive_lower/model.onnx",
        "y",
        "stopword removal",
    ),
    (
        "onnx-data/simple/test_strnorm_model_monday_casesensintive_nochangecase/model.onnx",
        "y",
        "stopword removal",
    ),
    (
        "onnx-data/simple/test_strnorm_model_monday_casesensintive_upper/model.onnx",
        "y",
        "stopword removal",
    ),
    (
        "onnx-data/simple/test_strnorm_model_monday_empty_output/model.onnx",
        "y",
        "stopword removal",
    ),
    (
        "onnx-data/simple/test_strnorm_model_monday_insensintive_upper_twodim/model.onnx",
        "y",
        "stopword removal",
    ),
];

/// Input shapes for models with dynamic inputs.
fn bindings_for(rel: &str) -> Bindings {
    let mut b = Bindings::new();
    let x = match rel {
        "models/ch_PP-OCRv4_det_infer.onnx" => Some(vec![1, 3, 640, 640]),
        "models/ch_PP-OCRv4_rec_infer.onnx" => Some(vec![1, 3, 48, 320]),
        "models/ch_ppocr_mobile_v2.0_cls_infer.onnx" => Some(vec![1, 3, 48, 192]),
        _ => None,
    };
    if let Some(x) = x {
        b.insert("x".to_string(), x);
    }
    b
}

fn deps() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".deps")
}

/// Every corpus model as (directory label, path relative to `.deps`).
fn corpus() -> Vec<(String, String)> {
    let root = deps();
    let mut out = Vec::new();
    for dir in ["light", "pytorch-converted", "pytorch-operator", "simple"] {
        let d = root.join("onnx-data").join(dir);
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            let model = if p.is_dir() {
                p.join("model.onnx")
            } else {
                p.clone()
            };
            if model.extension().is_some_and(|e| e == "onnx") && model.is_file() {
                let rel = model
                    .strip_prefix(&root)
                    .unwrap_or(&model)
                    .to_string_lossy()
                    .into_owned();
                out.push((dir.to_string(), rel));
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(root.join("models")) {
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            if p.extension().is_some_and(|e| e == "onnx") {
                let rel = p
                    .strip_prefix(&root)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .into_owned();
                out.push(("models".to_string(), rel));
            }
        }
    }
    out
}

/// Why `ty` is not acceptable as a fully inferred type, if it is not.
fn defect(ty: Option<&ValueType>) -> Option<String> {
    match ty {
        None => Some("no type".into()),
        Some(ValueType::Tensor { shape: Some(d), .. })
            if d.iter().all(|x| matches!(x, Dim::Known(_))) =>
        {
            None
        }
        Some(ValueType::Sequence(e)) if e.elem().is_some() => None,
        Some(other) => Some(format!("not fully static: {other}")),
    }
}

#[derive(Default)]
struct Row {
    models: usize,
    tensors: usize,
    fully_static: usize,
    unknowable: usize,
}

#[test]
fn corpus_shapes_are_static() {
    let models = corpus();
    if models.is_empty() {
        eprintln!(
            "shape_corpus: no corpus under {} — skipped",
            deps().display()
        );
        return;
    }
    let mut failures: Vec<String> = Vec::new();
    let mut table: BTreeMap<String, Row> = BTreeMap::new();
    let mut used_exceptions = 0usize;
    for (dir, rel) in &models {
        let path = deps().join(rel);
        let mut model = match optimize::onnx_io::import::load_model(&path) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{rel}: load failed: {e}"));
                continue;
            }
        };
        let summary = match shape::infer(&mut model, &bindings_for(rel)) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{rel}: inference failed: {e}"));
                continue;
            }
        };
        let row = table.entry(dir.clone()).or_default();
        row.models += 1;
        row.tensors += summary.tensors;
        row.fully_static += summary.fully_static;
        let g = &model.graph;
        let mut names: Vec<&String> = g.inputs.iter().chain(g.initializers.keys()).collect();
        for (_, n) in g.nodes() {
            names.extend(n.outputs.iter().filter(|o| !o.is_empty()));
        }
        for name in names {
            let ty = g.value_type(name);
            let excused = UNKNOWABLE.iter().find(|(m, t, _)| *m == rel && *t == name);
            match (defect(ty), excused) {
                (Some(why), None) => failures.push(format!("{rel}: tensor '{name}': {why}")),
                (None, Some((_, _, reason))) => failures.push(format!(
                    "{rel}: tensor '{name}' is listed as unknowable ({reason}) but was inferred as {}; update UNKNOWABLE",
                    ty.map(|t| t.to_string()).unwrap_or_default()
                )),
                (Some(_), Some(_)) => {
                    row.unknowable += 1;
                    used_exceptions += 1;
                    if ty.is_none() {
                        failures.push(format!("{rel}: tensor '{name}' has no type at all"));
                    }
                }
                (None, None) => {}
            }
            // Declared shapes must agree wherever both sides are known.
            if let (
                Some(ValueType::Tensor {
                    elem,
                    shape: Some(dims),
                }),
                Some(decl),
            ) = (
                ty,
                g.values
                    .get(name.as_str())
                    .and_then(|v| v.declared.as_ref())
                    .and_then(|d| d.type_.as_ref()),
            ) {
                if let Some(ValueType::Tensor {
                    elem: de,
                    shape: dshape,
                }) = optimize::onnx_io::type_proto::value_type_from_proto(decl)
                {
                    if de != *elem {
                        failures.push(format!(
                            "{rel}: tensor '{name}': inferred {elem}, declared {de}"
                        ));
                    }
                    if let Some(dd) = dshape {
                        let mismatch = dd.len() != dims.len()
                            || dd.iter().zip(dims).any(
                                |(a, b)| matches!((a, b), (Dim::Known(x), Dim::Known(y)) if x != y),
                            );
                        if mismatch {
                            failures.push(format!(
                                "{rel}: tensor '{name}': inferred {}, declared {}",
                                optimize::ir::types::fmt_shape(&Some(dims.clone())),
                                optimize::ir::types::fmt_shape(&Some(dd))
                            ));
                        }
                    }
                }
            }
        }
    }
    println!(
        "{:<20} {:>7} {:>9} {:>9} {:>11}",
        "directory", "models", "tensors", "static", "unknowable"
    );
    let mut total = Row::default();
    for (dir, r) in &table {
        println!(
            "{dir:<20} {:>7} {:>9} {:>9} {:>11}",
            r.models, r.tensors, r.fully_static, r.unknowable
        );
        total.models += r.models;
        total.tensors += r.tensors;
        total.fully_static += r.fully_static;
        total.unknowable += r.unknowable;
    }
    println!(
        "{:<20} {:>7} {:>9} {:>9} {:>11}",
        "total", total.models, total.tensors, total.fully_static, total.unknowable
    );
    if used_exceptions != UNKNOWABLE.len() {
        failures.push(format!(
            "UNKNOWABLE lists {} tensors but only {used_exceptions} were found in the corpus",
            UNKNOWABLE.len()
        ));
    }
    assert!(
        failures.is_empty(),
        "{} shape inference failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
