//! Shape inference over the whole test corpus: every tensor of every model must get a known
//! dtype and a fully static shape (sequences: a known element type), except the tensors
//! listed in [`UNKNOWABLE`], whose shapes depend on data. Declared shapes in the files
//! (graph outputs, value_info) must agree with the inferred ones wherever both are known.

mod common;

use optimize::ir::{Dim, ValueType};
use optimize::shape;
use std::collections::BTreeMap;

/// (corpus model name, tensor, why its shape cannot be known statically).
const UNKNOWABLE: &[(&str, &str, &str)] = &[
    // Expand's target shape is a graph input: the output dims are data.
    (
        "simple/test_expand_shape_model1",
        "Y",
        "Expand target shape is a runtime input",
    ),
    (
        "simple/test_expand_shape_model2",
        "Y",
        "Expand target shape is a runtime input",
    ),
    (
        "simple/test_expand_shape_model3",
        "Y",
        "Expand target shape is a runtime input",
    ),
    (
        "simple/test_expand_shape_model4",
        "Y",
        "Expand target shape is a runtime input",
    ),
    // The input is declared [n] and there is no natural binding; split sizes are a runtime input.
    (
        "simple/test_sequence_model8",
        "X",
        "input declared with symbolic dim 'n'",
    ),
    // Removing stopwords makes the output length depend on the strings.
    (
        "simple/test_strnorm_model_monday_casesensintive_lower",
        "y",
        "stopword removal",
    ),
    (
        "simple/test_strnorm_model_monday_casesensintive_nochangecase",
        "y",
        "stopword removal",
    ),
    (
        "simple/test_strnorm_model_monday_casesensintive_upper",
        "y",
        "stopword removal",
    ),
    (
        "simple/test_strnorm_model_monday_empty_output",
        "y",
        "stopword removal",
    ),
    (
        "simple/test_strnorm_model_monday_insensintive_upper_twodim",
        "y",
        "stopword removal",
    ),
];

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
    // The shared corpus helper fails (saying to run scripts/setup.sh) when data is missing.
    let models = common::corpus();
    assert_eq!(
        models.len(),
        152,
        "the corpus (onnx backend test data and PP-OCR) has 152 models"
    );
    let mut failures: Vec<String> = Vec::new();
    let mut table: BTreeMap<String, Row> = BTreeMap::new();
    let mut used_exceptions = 0usize;
    for cm in &models {
        let rel = cm.name.as_str();
        let dir = rel.split('/').next().unwrap_or(rel).to_string();
        let mut model = match optimize::onnx_io::import::load_model(&cm.path) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{rel}: load failed: {e}"));
                continue;
            }
        };
        let summary = match shape::infer(&mut model, &cm.bindings) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{rel}: inference failed: {e}"));
                continue;
            }
        };
        let row = table.entry(dir).or_default();
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
