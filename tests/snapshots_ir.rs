//! Snapshots of `optimize inspect` and of the IR dump for small and real models.
//! Review every change with `cargo insta review`; never accept blindly.

mod common;

use optimize::inspect::inspect_text;
use std::collections::HashMap;

fn model(name: &str) -> common::CorpusModel {
    common::corpus()
        .into_iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} not in the corpus"))
}

fn snapshot_name(name: &str) -> String {
    name.replace(['/', '-'], "_")
}

#[test]
fn inspect_snapshots() {
    for name in [
        "pytorch-converted/test_Conv2d",
        "simple/test_sequence_model1",
        "light/light_squeezenet",
        "ppocr/cls",
        "ppocr/rec",
    ] {
        let m = model(name);
        let text = inspect_text(&m.path, false, &HashMap::new()).expect("inspect");
        insta::assert_snapshot!(format!("inspect_{}", snapshot_name(name)), text);
    }
}

#[test]
fn ir_dump_snapshots() {
    for name in [
        "pytorch-converted/test_Conv2d",
        "simple/test_sequence_model1",
        "light/light_squeezenet",
        "ppocr/cls",
    ] {
        let m = model(name);
        let text = inspect_text(&m.path, true, &m.bindings).expect("dump");
        insta::assert_snapshot!(format!("ir_{}", snapshot_name(name)), text);
    }
}
