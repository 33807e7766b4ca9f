//! Relevance (LRP) pass: the acceptance tests of the reference (T1–T8, T10, T11) on tiny
//! models built here and on the corpus models, plus the `optimize explain` command.

mod common;

use ndarray::{ArrayD, IxDyn};
use onnx_protobuf::{
    attribute_proto::AttributeType, tensor_shape_proto::dimension, tensor_shape_proto::Dimension,
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use optimize::data::HostTensor;
use optimize::ir::{DataType, Model};
use optimize::onnx_io::{model_from_proto, save_model, to_proto, ExportOptions};
use optimize::passes::relevance::activations::Activations;
use optimize::passes::relevance::rules::conv::{bn_params, fold_into_conv};
use optimize::passes::relevance::{
    explain, explain_with, Rule, RuleConfig, SampleRelevance, SoftmaxRule, StartMode, Target,
};
use optimize::runtime::OrtRuntime;
use optimize::shape::{infer, Bindings};
use std::path::Path;

// ---------------------------------------------------------------- model building

const F32: i32 = 1;
const F64: i32 = 11;

fn vi(name: &str, dims: Option<&[i64]>, elem: i32) -> ValueInfoProto {
    let mut tt = type_proto::Tensor::new();
    tt.elem_type = elem;
    if let Some(dims) = dims {
        let mut shape = TensorShapeProto::new();
        for &d in dims {
            let mut dim = Dimension::new();
            dim.value = Some(if d < 0 {
                dimension::Value::DimParam("N".into())
            } else {
                dimension::Value::DimValue(d)
            });
            shape.dim.push(dim);
        }
        tt.shape = Some(shape).into();
    }
    let mut t = TypeProto::new();
    t.value = Some(type_proto::Value::TensorType(tt));
    let mut v = ValueInfoProto::new();
    v.name = name.into();
    v.type_ = Some(t).into();
    v
}

fn nd(op: &str, name: &str, ins: &[&str], outs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.name = name.into();
    n.input = ins.iter().map(|s| s.to_string()).collect();
    n.output = outs.iter().map(|s| s.to_string()).collect();
    n.attribute = attrs;
    n
}

fn ai(name: &str, v: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INT.into();
    a.i = v;
    a
}

fn ais(name: &str, v: &[i64]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INTS.into();
    a.ints = v.to_vec();
    a
}

fn af(name: &str, v: f32) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::FLOAT.into();
    a.f = v;
    a
}

fn astr(name: &str, v: &str) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::STRING.into();
    a.s = v.as_bytes().to_vec();
    a
}

fn tensor(name: &str, dims: &[i64], vals: &[f64], elem: i32) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = elem;
    if elem == F64 {
        t.double_data = vals.to_vec();
    } else {
        t.float_data = vals.iter().map(|&v| v as f32).collect();
    }
    t
}

fn ints(name: &str, vals: &[i64]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = vec![vals.len() as i64];
    t.data_type = 7;
    t.int64_data = vals.to_vec();
    t
}

/// A graph under construction.
struct Net {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    bindings: Bindings,
    opset: i64,
}

impl Net {
    fn new(opset: i64) -> Net {
        Net {
            nodes: Vec::new(),
            inits: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            bindings: Bindings::new(),
            opset,
        }
    }
    /// An input; a negative first dim is a symbolic batch bound to 1.
    fn input(mut self, name: &str, dims: &[i64], elem: i32) -> Net {
        self.inputs.push(vi(name, Some(dims), elem));
        if dims.first().is_some_and(|&d| d < 0) {
            let mut b: Vec<i64> = dims.to_vec();
            b[0] = 1;
            self.bindings.insert(name.into(), b);
        }
        self
    }
    fn output(mut self, name: &str, elem: i32) -> Net {
        self.outputs.push(vi(name, None, elem));
        self
    }
    fn init(mut self, t: TensorProto) -> Net {
        self.inits.push(t);
        self
    }
    fn node(mut self, n: NodeProto) -> Net {
        self.nodes.push(n);
        self
    }
    fn build(self) -> Model {
        let mut g = GraphProto::new();
        g.name = "t".into();
        g.node = self.nodes;
        g.initializer = self.inits;
        g.input = self.inputs;
        g.output = self.outputs;
        let mut m = ModelProto::new();
        m.ir_version = 8;
        let mut o = OperatorSetIdProto::new();
        o.version = self.opset;
        m.opset_import.push(o);
        m.graph = Some(g).into();
        let mut model = model_from_proto(m, Path::new("test.onnx")).expect("import");
        infer(&mut model, &self.bindings).expect("shape inference");
        model
    }
}

fn f32_input(name: &str, shape: &[usize], vals: &[f64]) -> (String, HostTensor) {
    let v: Vec<f32> = vals.iter().map(|&x| x as f32).collect();
    (name.to_string(), HostTensor::from_f32(shape.to_vec(), &v))
}

fn f64_input(name: &str, shape: &[usize], vals: &[f64]) -> (String, HostTensor) {
    let bytes = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    (
        name.to_string(),
        HostTensor::new(DataType::Double, shape.to_vec(), bytes),
    )
}

/// Deterministic values in [lo, hi).
fn rnd(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            lo + (hi - lo) * u
        })
        .collect()
}

fn cfg(preset: &str) -> RuleConfig {
    RuleConfig::preset(preset).expect("preset")
}

fn run(
    model: &Model,
    inputs: &[(String, HostTensor)],
    index: Option<usize>,
    c: &RuleConfig,
) -> SampleRelevance {
    explain(
        model,
        inputs,
        &Target {
            output: None,
            index,
        },
        c,
        true,
    )
    .expect("explain")
}

fn rel_of(s: &SampleRelevance, input: &str) -> Vec<f64> {
    s.inputs
        .iter()
        .find(|(n, _)| n == input)
        .map(|(_, r)| r.iter().copied().collect())
        .expect("input relevance")
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}: element {i} is {g}, expected {w}\n got {got:?}\nwant {want:?}"
        );
    }
}

// ---------------------------------------------------------------- T5: golden values

/// Captum's two-layer model: Linear(3→3, W=2 (W[0,0] = w00), no bias) → ReLU →
/// Linear(3→1, W=3). MatMul takes Wᵀ.
fn captum_mlp(w00: f64) -> Model {
    let mut w1 = vec![2.0; 9];
    w1[0] = w00;
    Net::new(17)
        .input("x", &[1, 3], F32)
        .output("y", F32)
        .init(tensor("w1", &[3, 3], &w1, F32))
        .init(tensor("w2", &[3, 1], &[3.0; 3], F32))
        .node(nd("MatMul", "fc1", &["x", "w1"], &["h"], vec![]))
        .node(nd("Relu", "relu", &["h"], &["a"], vec![]))
        .node(nd("MatMul", "fc2", &["a", "w2"], &["y"], vec![]))
        .build()
}

#[test]
fn t5_golden_values_of_captum() {
    let x = [f32_input("x", &[1, 3], &[1.0, 2.0, 3.0])];
    // (a) ε-rule.
    let s = run(&captum_mlp(2.0), &x, None, &cfg("epsilon"));
    assert_close(&rel_of(&s, "x"), &[18.0, 36.0, 54.0], 1e-6, "T5a");
    assert!((s.input_sum() - 108.0).abs() < 1e-6 && (s.start_value - 108.0).abs() < 1e-6);
    // (b) α1β0 on both layers.
    let mut c = cfg("epsilon");
    c.linear = Rule::AlphaBeta(1.0, 0.0);
    let s = run(&captum_mlp(-2.0), &x, None, &c);
    assert_close(&rel_of(&s, "x"), &[12.0, 33.6, 50.4], 1e-6, "T5b");
    // (c) γ = 1 on the first layer, 0.25 on the second.
    let mut c = cfg("epsilon");
    c.node_rules.insert("fc1".into(), Rule::Gamma(1.0));
    c.node_rules.insert("fc2".into(), Rule::Gamma(0.25));
    let s = run(&captum_mlp(-2.0), &x, None, &c);
    assert_close(
        &rel_of(&s, "x"),
        &[28.0 / 3.0, 104.0 / 3.0, 52.0],
        1e-6,
        "T5c",
    );
    // (d) identity on the first layer, ε on the second.
    let mut c = cfg("epsilon");
    c.node_rules.insert("fc1".into(), Rule::Identity);
    let s = run(&captum_mlp(-2.0), &x, None, &c);
    assert_close(&rel_of(&s, "x"), &[24.0, 36.0, 36.0], 1e-6, "T5d");

    // (e) Linear(2→2, W=5) plus a skip connection; target 1.
    let m = Net::new(17)
        .input("x", &[1, 2], F32)
        .output("y", F32)
        .init(tensor("w", &[2, 2], &[5.0; 4], F32))
        .node(nd("MatMul", "fc", &["x", "w"], &["h"], vec![]))
        .node(nd("Add", "skip", &["h", "x"], &["y"], vec![]))
        .build();
    let s = run(
        &m,
        &[f32_input("x", &[1, 2], &[2.0, 3.0])],
        Some(1),
        &cfg("epsilon"),
    );
    assert_close(&rel_of(&s, "x"), &[10.0, 18.0], 1e-6, "T5e");

    // (f) Linear(3→3, W=0.1) → Tanh (identity) → Linear(3→1, W=0.1).
    let m = Net::new(17)
        .input("x", &[1, 3], F32)
        .output("y", F32)
        .init(tensor("w1", &[3, 3], &[0.1; 9], F32))
        .init(tensor("w2", &[3, 1], &[0.1; 3], F32))
        .node(nd("MatMul", "fc1", &["x", "w1"], &["h"], vec![]))
        .node(nd("Tanh", "tanh", &["h"], &["a"], vec![]))
        .node(nd("MatMul", "fc2", &["a", "w2"], &["y"], vec![]))
        .build();
    let s = run(&m, &x, None, &cfg("epsilon"));
    let got = rel_of(&s, "x");
    for (g, w) in got.iter().zip([0.0269, 0.0537, 0.0806]) {
        assert!((g - w).abs() < 5e-5, "T5f: {got:?}");
    }

    // (g) MaxPool 2×2: winner takes all.
    let m = Net::new(17)
        .input("x", &[1, 1, 2, 2], F32)
        .output("y", F32)
        .node(nd(
            "MaxPool",
            "pool",
            &["x"],
            &["y"],
            vec![ais("kernel_shape", &[2, 2])],
        ))
        .build();
    let s = run(
        &m,
        &[f32_input("x", &[1, 1, 2, 2], &[1.0, 2.0, 5.0, 6.0])],
        None,
        &cfg("epsilon"),
    );
    assert_eq!(rel_of(&s, "x"), vec![0.0, 0.0, 0.0, 6.0], "T5g");

    // (h) Captum's BasicModel_ConvNet_One_Conv on arange(16).
    // Rows of W (4×8) are [1,1,1,1,1,−1,−1,−1]; MatMul takes Wᵀ (8×4).
    let mut fc = Vec::new();
    for i in 0..8 {
        for _ in 0..4 {
            fc.push(if i < 5 { 1.0 } else { -1.0 });
        }
    }
    let m = Net::new(17)
        .input("x", &[1, 1, 4, 4], F32)
        .output("y", F32)
        .init(tensor("cw", &[2, 1, 3, 3], &[1.0; 18], F32))
        .init(tensor("cb", &[2], &[-50.0, -75.0], F32))
        .init(tensor("fw", &[8, 4], &fc, F32))
        .init(ints("shape", &[1, 8]))
        .node(nd("Conv", "conv", &["x", "cw", "cb"], &["c"], vec![]))
        .node(nd("Relu", "relu1", &["c"], &["r"], vec![]))
        .node(nd("Reshape", "flat", &["r", "shape"], &["f"], vec![]))
        .node(nd("MatMul", "fc", &["f", "fw"], &["z"], vec![]))
        .node(nd("Relu", "relu2", &["z"], &["y"], vec![]))
        .build();
    let xs: Vec<f64> = (0..16).map(|v| v as f64).collect();
    let s = run(
        &m,
        &[f32_input("x", &[1, 1, 4, 4], &xs)],
        None,
        &cfg("epsilon"),
    );
    let want = [
        0.0, 1.0, 2.0, 3.0, 0.0, 5.0, 6.0, 7.0, 0.0, 9.0, 10.0, 11.0, 0.0, 0.0, 0.0, 0.0,
    ];
    assert_close(&rel_of(&s, "x"), &want, 1e-6, "T5h");
    assert!(
        (s.start_value - s.input_sum()).abs() < 1e-6,
        "T5h: delta must be 0"
    );
}

// ---------------------------------------------------------------- T1: conservation per op

/// One single-op (or few-op) model per rule that conserves relevance.
/// A named test model and its inputs.
type Case = (&'static str, Model, Vec<(String, HostTensor)>);

fn conservation_cases() -> Vec<Case> {
    let pos = |n: usize, seed: u64| rnd(n, seed, 0.5, 1.5);
    let mut v = Vec::new();
    let x4 = |seed: u64| vec![f32_input("x", &[1, 2, 4, 4], &pos(32, seed))];
    let unary = |op: &str, attrs: Vec<AttributeProto>| {
        Net::new(17)
            .input("x", &[1, 2, 4, 4], F32)
            .output("y", F32)
            .node(nd(op, op, &["x"], &["y"], attrs))
            .build()
    };
    v.push((
        "Conv",
        Net::new(17)
            .input("x", &[1, 2, 4, 4], F32)
            .output("y", F32)
            .init(tensor("w", &[4, 1, 3, 3], &pos(36, 7), F32))
            .node(nd(
                "Conv",
                "conv",
                &["x", "w"],
                &["y"],
                vec![
                    ai("group", 2),
                    ais("pads", &[1, 1, 1, 1]),
                    ais("strides", &[2, 1]),
                ],
            ))
            .build(),
        x4(1),
    ));
    v.push((
        "ConvTranspose",
        Net::new(17)
            .input("x", &[1, 2, 4, 4], F32)
            .output("y", F32)
            .init(tensor("w", &[2, 3, 2, 2], &pos(24, 8), F32))
            .node(nd(
                "ConvTranspose",
                "convt",
                &["x", "w"],
                &["y"],
                vec![ais("strides", &[2, 2])],
            ))
            .build(),
        x4(2),
    ));
    v.push((
        "Gemm",
        Net::new(17)
            .input("x", &[2, 5], F32)
            .output("y", F32)
            .init(tensor("w", &[3, 5], &pos(15, 9), F32))
            .node(nd(
                "Gemm",
                "gemm",
                &["x", "w"],
                &["y"],
                vec![ai("transB", 1), af("alpha", 0.5)],
            ))
            .build(),
        vec![f32_input("x", &[2, 5], &pos(10, 3))],
    ));
    v.push((
        "MatMul act×act",
        Net::new(17)
            .input("a", &[2, 3, 4], F32)
            .input("b", &[4, 5], F32)
            .output("y", F32)
            .node(nd("MatMul", "mm", &["a", "b"], &["y"], vec![]))
            .build(),
        vec![
            f32_input("a", &[2, 3, 4], &pos(24, 4)),
            f32_input("b", &[4, 5], &pos(20, 5)),
        ],
    ));
    for op in ["Add", "Mul", "Sub", "Div", "Max", "Min", "Sum", "Mean"] {
        v.push((
            op,
            Net::new(17)
                .input("a", &[1, 2, 4, 4], F32)
                .input("b", &[2, 1, 4], F32)
                .output("y", F32)
                .node(nd(op, op, &["a", "b"], &["y"], vec![]))
                .build(),
            vec![
                f32_input("a", &[1, 2, 4, 4], &rnd(32, 6, 2.0, 3.0)),
                f32_input("b", &[2, 1, 4], &pos(8, 7)),
            ],
        ));
    }
    for (op, attrs) in [
        ("Relu", vec![]),
        ("Sigmoid", vec![]),
        ("Softmax", vec![ai("axis", 1)]),
        (
            "MaxPool",
            vec![
                ais("kernel_shape", &[3, 3]),
                ais("pads", &[1, 1, 1, 1]),
                ais("strides", &[2, 2]),
            ],
        ),
        (
            "AveragePool",
            vec![
                ais("kernel_shape", &[2, 3]),
                ais("pads", &[0, 1, 1, 1]),
                ai("count_include_pad", 1),
            ],
        ),
        ("GlobalAveragePool", vec![]),
        ("GlobalMaxPool", vec![]),
        ("ReduceMax", vec![ai("keepdims", 0)]),
        ("Flatten", vec![ai("axis", 2)]),
        ("Transpose", vec![ais("perm", &[0, 2, 3, 1])]),
        ("SpaceToDepth", vec![ai("blocksize", 2)]),
        ("LRN", vec![ai("size", 3)]),
        ("InstanceNormalization", vec![]),
        ("Split", vec![ai("axis", 2)]),
    ] {
        if op == "InstanceNormalization" {
            let m = Net::new(17)
                .input("x", &[1, 2, 4, 4], F32)
                .output("y", F32)
                .init(tensor("s", &[2], &[1.0, 2.0], F32))
                .init(tensor("b", &[2], &[0.5, -0.5], F32))
                .node(nd(op, op, &["x", "s", "b"], &["y"], attrs))
                .build();
            v.push((op, m, x4(11)));
            continue;
        }
        if op == "Split" {
            let m = Net::new(17)
                .input("x", &[1, 2, 4, 4], F32)
                .output("y", F32)
                .node(nd(op, op, &["x"], &["p", "q"], attrs))
                .node(nd("Mul", "join", &["p", "q"], &["y"], vec![]))
                .build();
            v.push(("Split+Mul", m, x4(12)));
            continue;
        }
        v.push((op, unary(op, attrs), x4(13)));
    }
    for (op, extra, attrs) in [
        ("ReduceMean", ints("axes", &[1, 3]), vec![]),
        ("ReduceSum", ints("axes", &[-1]), vec![ai("keepdims", 0)]),
        ("Reshape", ints("axes", &[4, 8]), vec![]),
        ("Unsqueeze", ints("axes", &[0]), vec![]),
        ("Tile", ints("axes", &[1, 2, 1, 3]), vec![]),
        ("Expand", ints("axes", &[3, 2, 4, 4]), vec![]),
        (
            "Pad",
            ints("axes", &[0, 0, 1, 2, 0, 0, 2, 1]),
            vec![astr("mode", "reflect")],
        ),
    ] {
        let m = Net::new(18)
            .input("x", &[1, 2, 4, 4], F32)
            .output("y", F32)
            .init(extra)
            .node(nd(op, op, &["x", "axes"], &["y"], attrs))
            .build();
        v.push((op, m, x4(14)));
    }
    v.push((
        "Slice",
        Net::new(17)
            .input("x", &[1, 2, 4, 4], F32)
            .output("y", F32)
            .init(ints("st", &[3, 1]))
            .init(ints("en", &[0, 4]))
            .init(ints("ax", &[2, 3]))
            .init(ints("sp", &[-1, 2]))
            .node(nd(
                "Slice",
                "slice",
                &["x", "st", "en", "ax", "sp"],
                &["y"],
                vec![],
            ))
            .build(),
        x4(15),
    ));
    v.push((
        "Gather",
        Net::new(17)
            .input("x", &[1, 2, 4, 4], F32)
            .output("y", F32)
            .init(ints("idx", &[3, 0, 3, -1]))
            .node(nd(
                "Gather",
                "gather",
                &["x", "idx"],
                &["y"],
                vec![ai("axis", 2)],
            ))
            .build(),
        x4(16),
    ));
    v.push((
        "Concat",
        Net::new(17)
            .input("a", &[1, 2, 4, 4], F32)
            .input("b", &[1, 3, 4, 4], F32)
            .output("y", F32)
            .node(nd(
                "Concat",
                "cat",
                &["a", "b"],
                &["y"],
                vec![ai("axis", 1)],
            ))
            .build(),
        vec![
            f32_input("a", &[1, 2, 4, 4], &pos(32, 17)),
            f32_input("b", &[1, 3, 4, 4], &pos(48, 18)),
        ],
    ));
    for (mode, coord) in [
        ("nearest", "asymmetric"),
        ("linear", "half_pixel"),
        ("linear", "align_corners"),
    ] {
        let m = Net::new(13)
            .input("x", &[1, 2, 4, 4], F32)
            .output("y", F32)
            .init(tensor("sc", &[4], &[1.0, 1.0, 2.0, 1.5], F32))
            .node(nd(
                "Resize",
                "resize",
                &["x", "", "sc"],
                &["y"],
                vec![
                    astr("mode", mode),
                    astr("coordinate_transformation_mode", coord),
                ],
            ))
            .build();
        v.push(("Resize", m, x4(19)));
    }
    v.push((
        "Where",
        Net::new(17)
            .input("a", &[2, 4], F32)
            .input("b", &[2, 4], F32)
            .output("y", F32)
            .init(tensor("zero", &[], &[1.0], F32))
            .node(nd("Greater", "gt", &["a", "zero"], &["c"], vec![]))
            .node(nd("Where", "where", &["c", "a", "b"], &["y"], vec![]))
            .build(),
        vec![
            f32_input("a", &[2, 4], &pos(8, 20)),
            f32_input("b", &[2, 4], &pos(8, 21)),
        ],
    ));
    v.push((
        "DepthToSpace",
        Net::new(17)
            .input("x", &[1, 8, 2, 2], F32)
            .output("y", F32)
            .node(nd(
                "DepthToSpace",
                "d2s",
                &["x"],
                &["y"],
                vec![ai("blocksize", 2), astr("mode", "CRD")],
            ))
            .build(),
        vec![f32_input("x", &[1, 8, 2, 2], &pos(32, 22))],
    ));
    v
}

#[test]
fn t1_conservation_per_op() {
    let c = cfg("lrp0");
    let mut checked = 0;
    for (name, model, inputs) in conservation_cases() {
        let out = &model.graph.outputs[0];
        let n_out: usize = Activations::collect(&model, &inputs)
            .expect("run")
            .shape(out)
            .expect("output")
            .iter()
            .product();
        // Every output element, one at a time.
        for k in 0..n_out.min(12) {
            let s = run(&model, &inputs, Some(k * n_out / n_out.min(12)), &c);
            let (a, b) = (s.start_value, s.input_sum());
            assert!(
                (a - b).abs() <= 1e-9 * (1.0 + a.abs()),
                "T1 {name}: output {k}: start {a}, input relevance {b}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} cases");
}

// ---------------------------------------------------------------- T6, T2: dense Jacobian

/// Dense Jacobian (out × in) and offset of a model with one input `x` [N, …] and
/// one output, from one onnxruntime run on the basis vectors and on zero.
fn jacobian(model: &Model, in_shape: &[usize]) -> (Vec<Vec<f64>>, Vec<f64>) {
    let n: usize = in_shape.iter().product();
    let mut data = vec![0.0f32; (n + 1) * n];
    for i in 0..n {
        data[i * n + i] = 1.0;
    }
    let mut shape = in_shape.to_vec();
    shape[0] = n + 1;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.onnx");
    save_model(model, &p, &ExportOptions::default()).unwrap();
    let mut sess = OrtRuntime::get().unwrap().session_from_file(&p).unwrap();
    let out = sess
        .run(&[("x".to_string(), HostTensor::from_f32(shape, &data))])
        .unwrap();
    let y = out[0].1.to_f64().unwrap();
    let m = y.len() / (n + 1);
    let b: Vec<f64> = y[n * m..].to_vec();
    let mut j = vec![vec![0.0; n]; m];
    for i in 0..n {
        for k in 0..m {
            j[k][i] = y[i * m + k] - b[k];
        }
    }
    (j, b)
}

fn stab(z: f64, eps: f64) -> f64 {
    if z >= 0.0 {
        z + eps
    } else {
        z - eps
    }
}

/// The reference rules of zennit's tests, written with the dense matrix; relevance `rk`
/// at output `k`.
fn dense_rule(
    rule: Rule,
    eps: f64,
    j: &[Vec<f64>],
    b: &[f64],
    x: &[f64],
    k: usize,
    rk: f64,
) -> Vec<f64> {
    let w = &j[k];
    let p = |v: f64| v.max(0.0);
    let ng = |v: f64| v.min(0.0);
    let n = x.len();
    match rule {
        Rule::Epsilon => {
            let z: f64 = (0..n).map(|i| w[i] * x[i]).sum::<f64>() + b[k];
            (0..n).map(|i| x[i] * w[i] * rk / stab(z, eps)).collect()
        }
        Rule::ZPlus => {
            let c: Vec<f64> = (0..n)
                .map(|i| p(w[i]) * p(x[i]) + ng(w[i]) * ng(x[i]))
                .collect();
            let z: f64 = c.iter().sum();
            c.iter().map(|ci| ci * rk / stab(z, eps)).collect()
        }
        Rule::Gamma(g) => {
            let z: f64 = (0..n).map(|i| w[i] * x[i]).sum::<f64>() + b[k];
            let (wa, wb): (Vec<f64>, Vec<f64>) = (
                w.iter().map(|&v| v + g * p(v)).collect(),
                w.iter().map(|&v| v + g * ng(v)).collect(),
            );
            let (c, bias): (Vec<f64>, f64) = if z >= 0.0 {
                (
                    (0..n).map(|i| p(x[i]) * wa[i] + ng(x[i]) * wb[i]).collect(),
                    b[k] + g * p(b[k]),
                )
            } else {
                (
                    (0..n).map(|i| p(x[i]) * wb[i] + ng(x[i]) * wa[i]).collect(),
                    b[k] + g * ng(b[k]),
                )
            };
            let zz: f64 = c.iter().sum::<f64>() + bias;
            c.iter().map(|ci| ci * rk / stab(zz, eps)).collect()
        }
        Rule::AlphaBeta(a, bt) => {
            let cp: Vec<f64> = (0..n)
                .map(|i| p(w[i]) * p(x[i]) + ng(w[i]) * ng(x[i]))
                .collect();
            let cn: Vec<f64> = (0..n)
                .map(|i| ng(w[i]) * p(x[i]) + p(w[i]) * ng(x[i]))
                .collect();
            let (zp, zn): (f64, f64) = (cp.iter().sum(), cn.iter().sum());
            let sp = if stab(zp, eps) == 0.0 {
                0.0
            } else {
                rk / stab(zp, eps)
            };
            let sn = if stab(zn, eps) == 0.0 {
                0.0
            } else {
                rk / stab(zn, eps)
            };
            (0..n).map(|i| a * cp[i] * sp - bt * cn[i] * sn).collect()
        }
        Rule::ZBox(l, h) => {
            let c: Vec<f64> = (0..n)
                .map(|i| x[i] * w[i] - l * p(w[i]) - h * ng(w[i]))
                .collect();
            let z: f64 = c.iter().sum();
            c.iter().map(|ci| ci * rk / stab(z, eps)).collect()
        }
        Rule::Identity => unreachable!("not compared"),
    }
}

fn conv_model(
    op: &str,
    x: &[i64],
    w: &[i64],
    attrs: Vec<AttributeProto>,
    seed: u64,
    bias: bool,
) -> Model {
    let wn: usize = w.iter().product::<i64>() as usize;
    let cout = if op == "Conv" {
        w[0]
    } else {
        w[1] * attrs
            .iter()
            .find(|a| a.name == "group")
            .map(|a| a.i)
            .unwrap_or(1)
    };
    let mut xd = x.to_vec();
    xd[0] = -1;
    Net::new(17)
        .input("x", &xd, F32)
        .output("y", F32)
        .init(tensor("w", w, &rnd(wn, seed, -1.0, 1.0), F32))
        .init(tensor(
            "b",
            &[cout],
            &rnd(cout as usize, seed + 1, -0.5, 0.5),
            F32,
        ))
        .node(nd(
            op,
            "conv",
            if bias { &["x", "w", "b"] } else { &["x", "w"] },
            &["y"],
            attrs,
        ))
        .build()
}

#[test]
fn t6_t2_conv_rules_match_the_dense_jacobian_reference() {
    type ConvCase = (&'static str, Vec<i64>, Vec<i64>, Vec<AttributeProto>);
    let cases: Vec<ConvCase> = vec![
        (
            "Conv",
            vec![1, 2, 5, 5],
            vec![3, 2, 3, 3],
            vec![ais("pads", &[1, 1, 1, 1]), ais("strides", &[2, 2])],
        ),
        (
            "Conv",
            vec![1, 4, 6, 5],
            vec![4, 2, 2, 3],
            vec![
                ai("group", 2),
                ais("pads", &[2, 0, 1, 1]),
                ais("strides", &[1, 2]),
                ais("dilations", &[2, 1]),
            ],
        ),
        (
            "Conv",
            vec![1, 3, 5, 5],
            vec![3, 1, 3, 3],
            vec![ai("group", 3), astr("auto_pad", "SAME_UPPER")],
        ),
        (
            "Conv",
            vec![1, 2, 7],
            vec![2, 2, 3],
            vec![
                ais("pads", &[1, 2]),
                ais("strides", &[2]),
                ais("dilations", &[2]),
            ],
        ),
        // Depthwise (the direct-loop path) with stride, dilation and uneven pads.
        (
            "Conv",
            vec![1, 3, 7, 6],
            vec![3, 1, 3, 2],
            vec![
                ai("group", 3),
                ais("pads", &[1, 0, 2, 1]),
                ais("strides", &[2, 1]),
                ais("dilations", &[2, 2]),
            ],
        ),
        (
            "ConvTranspose",
            vec![1, 2, 3, 4],
            vec![2, 1, 3, 3],
            vec![
                ai("group", 2),
                ais("pads", &[1, 0, 1, 1]),
                ais("strides", &[2, 1]),
            ],
        ),
        (
            "ConvTranspose",
            vec![1, 4, 3, 3],
            vec![4, 1, 3, 3],
            vec![
                ai("group", 2),
                ais("pads", &[1, 1, 1, 1]),
                ais("strides", &[2, 2]),
                ais("output_padding", &[1, 1]),
            ],
        ),
    ];
    let rules = [
        Rule::Epsilon,
        Rule::ZPlus,
        Rule::Gamma(0.5),
        Rule::AlphaBeta(2.0, 1.0),
        Rule::ZBox(-1.0, 1.0),
    ];
    for (ci, (op, xs, ws, attrs)) in cases.into_iter().enumerate() {
        let model = conv_model(op, &xs, &ws, attrs.clone(), 30 + ci as u64, true);
        let in_shape: Vec<usize> = xs.iter().map(|&d| d as usize).collect();
        // The weights from the bias-free twin (exact), the bias from the output at zero.
        let (j, _) = jacobian(
            &conv_model(op, &xs, &ws, attrs, 30 + ci as u64, false),
            &in_shape,
        );
        let (_, b) = jacobian(&model, &in_shape);
        let n: usize = in_shape.iter().product();
        let x = rnd(n, 40 + ci as u64, -1.0, 1.0);
        let inputs = [f32_input("x", &in_shape, &x)];
        let x: Vec<f64> = x.iter().map(|&v| v as f32 as f64).collect();
        let acts = Activations::collect(&model, &inputs).unwrap();
        for rule in rules {
            let mut c = cfg("epsilon");
            c.eps = 1e-3;
            c.conv = rule;
            for k in 0..j.len() {
                let s = explain_with(
                    &model,
                    &acts,
                    &Target {
                        output: None,
                        index: Some(k),
                    },
                    &c,
                    true,
                )
                .unwrap();
                let got = rel_of(&s, "x");
                let want = dense_rule(rule, c.eps, &j, &b, &x, k, s.start_value);
                assert_close(
                    &got,
                    &want,
                    1e-6,
                    &format!("T6 {op} case {ci} {rule} output {k}"),
                );
                if rule == Rule::Epsilon {
                    // T2: ΣR_in + b_k·R_k/stab(z_k) = z_k·R_k/stab(z_k).
                    let z: f64 = (0..n).map(|i| j[k][i] * x[i]).sum::<f64>() + b[k];
                    let lhs = s.input_sum() + b[k] * s.start_value / stab(z, c.eps);
                    let rhs = z * s.start_value / stab(z, c.eps);
                    assert!(
                        (lhs - rhs).abs() < 1e-9 * (1.0 + rhs.abs()),
                        "T2 {op} case {ci} output {k}: {lhs} vs {rhs}"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------- T3: global conservation

#[test]
fn t3_bias_free_relu_cnn_conserves_the_logit() {
    let m = Net::new(17)
        .input("x", &[1, 3, 8, 8], F32)
        .output("y", F32)
        .init(tensor("w1", &[4, 3, 3, 3], &rnd(108, 50, -1.0, 1.0), F32))
        .init(tensor("w2", &[6, 4, 3, 3], &rnd(216, 51, -1.0, 1.0), F32))
        .init(tensor("fw", &[6, 5], &rnd(30, 52, -1.0, 1.0), F32))
        .init(ints("shape", &[1, 6]))
        .node(nd(
            "Conv",
            "c1",
            &["x", "w1"],
            &["a"],
            vec![ais("pads", &[1, 1, 1, 1])],
        ))
        .node(nd("Relu", "r1", &["a"], &["b"], vec![]))
        .node(nd(
            "MaxPool",
            "p1",
            &["b"],
            &["c"],
            vec![ais("kernel_shape", &[2, 2]), ais("strides", &[2, 2])],
        ))
        .node(nd(
            "Conv",
            "c2",
            &["c", "w2"],
            &["d"],
            vec![ais("strides", &[1, 1])],
        ))
        .node(nd("Relu", "r2", &["d"], &["e"], vec![]))
        .node(nd("GlobalAveragePool", "gap", &["e"], &["f"], vec![]))
        .node(nd("Reshape", "flat", &["f", "shape"], &["g"], vec![]))
        .node(nd("Gemm", "fc", &["g", "fw"], &["y"], vec![]))
        .build();
    let x = rnd(192, 53, -1.0, 1.0);
    let s = run(
        &m,
        &[f32_input("x", &[1, 3, 8, 8], &x)],
        None,
        &cfg("epsilon"),
    );
    let (a, b) = (s.start_value, s.input_sum());
    assert!(a > 0.0, "the argmax logit is positive here");
    assert!(
        (a - b).abs() < 1e-6 * a.abs(),
        "T3: logit {a}, input relevance {b}"
    );
}

// ---------------------------------------------------------------- T4: LRP-0 = gradient × input

#[test]
fn t4_lrp0_equals_gradient_times_input_with_biases() {
    let d = F64;
    let m = Net::new(18)
        .input("x", &[1, 16], d)
        .output("y", d)
        .init(tensor("w1", &[16, 32], &rnd(512, 60, -1.0, 1.0), d))
        .init(tensor("b1", &[32], &rnd(32, 61, -0.5, 0.5), d))
        .init(ints("s4", &[1, 2, 4, 4]))
        .init(ints("s2", &[1, 8]))
        .init(tensor("w2", &[8, 6], &rnd(48, 62, -1.0, 1.0), d))
        .init(tensor("b2", &[6], &rnd(6, 63, -0.5, 0.5), d))
        .init(tensor("w3", &[6, 3], &rnd(18, 64, -1.0, 1.0), d))
        .init(tensor("b3", &[3], &rnd(3, 65, -0.5, 0.5), d))
        .init(tensor("w4", &[8, 3], &rnd(24, 66, -1.0, 1.0), d))
        .init(ints("ax", &[1]))
        .node(nd("Gemm", "fc1", &["x", "w1", "b1"], &["a"], vec![]))
        .node(nd("Relu", "r1", &["a"], &["b"], vec![]))
        .node(nd("Reshape", "to4", &["b", "s4"], &["c"], vec![]))
        .node(nd(
            "MaxPool",
            "pool",
            &["c"],
            &["p"],
            vec![ais("kernel_shape", &[2, 2]), ais("strides", &[2, 2])],
        ))
        .node(nd("Reshape", "to2", &["p", "s2"], &["h"], vec![]))
        .node(nd("Gemm", "fc2", &["h", "w2", "b2"], &["e"], vec![]))
        .node(nd("Relu", "r2", &["e"], &["f"], vec![]))
        .node(nd("Gemm", "fc3", &["f", "w3", "b3"], &["g"], vec![]))
        .node(nd("MatMul", "skip", &["h", "w4"], &["k"], vec![]))
        .node(nd("Add", "res", &["g", "k"], &["y0"], vec![]))
        .node(nd("ReduceMean", "mean", &["y0", "ax"], &["m"], vec![]))
        .node(nd("Add", "y", &["y0", "m"], &["y"], vec![]))
        .build();
    let x = rnd(16, 67, -1.0, 1.0);
    let s = run(&m, &[f64_input("x", &[1, 16], &x)], None, &cfg("lrp0"));
    // Central differences in f64: exact up to rounding on a piecewise-linear function.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.onnx");
    save_model(&m, &p, &ExportOptions::default()).unwrap();
    let mut sess = OrtRuntime::get().unwrap().session_from_file(&p).unwrap();
    let k = s.target_index;
    let mut f = |v: &[f64]| -> f64 {
        let out = sess.run(&[f64_input("x", &[1, 16], v)]).unwrap();
        out[0].1.to_f64().unwrap()[k]
    };
    let h = 1e-6;
    let mut gxi = Vec::new();
    for i in 0..16 {
        let mut a = x.clone();
        let mut b = x.clone();
        a[i] += h;
        b[i] -= h;
        gxi.push(x[i] * (f(&a) - f(&b)) / (2.0 * h));
    }
    assert_close(&rel_of(&s, "x"), &gxi, 1e-6, "T4 LRP-0 vs gradient×input");
    assert!(
        gxi.iter().any(|v| v.abs() > 1e-3),
        "the gradient is not trivial"
    );
}

// ---------------------------------------------------------------- T11: BatchNorm folding

/// The textbook BatchNorm fold into the Conv before it, computed here (not with the
/// crate's `fold_into_conv`): k = γ/√(σ² + ε), W' = k·W per output channel, b' = k·(b − μ)
/// + β, from the parameters as the model stores them (f32).
fn textbook_fold(
    w: &[f64],
    b: &[f64],
    gamma: &[f64],
    beta: &[f64],
    mean: &[f64],
    var: &[f64],
    eps: f32,
) -> (Vec<f64>, Vec<f64>) {
    let f = |v: f64| v as f32 as f64;
    let c = gamma.len();
    let per = w.len() / c;
    let k: Vec<f64> = (0..c)
        .map(|i| f(gamma[i]) / (f(var[i]) + eps as f64).sqrt())
        .collect();
    let w2 = (0..w.len()).map(|i| k[i / per] * f(w[i])).collect();
    let b2 = (0..c)
        .map(|i| k[i] * (f(b[i]) - f(mean[i])) + f(beta[i]))
        .collect();
    (w2, b2)
}

fn conv_bn_params() -> [Vec<f64>; 6] {
    [
        rnd(54, 70, -1.0, 1.0),
        rnd(3, 71, -0.5, 0.5),
        rnd(3, 72, 0.5, 1.5),
        rnd(3, 73, -0.5, 0.5),
        rnd(3, 74, -0.5, 0.5),
        rnd(3, 75, 0.5, 2.0),
    ]
}

/// The crate's fold (used by the relevance sweep) equals the textbook fold.
#[test]
fn t11_fold_into_conv_is_the_textbook_fold() {
    let [w, b, sc, bb, mu, var] = conv_bn_params();
    let f = |v: &[f64], s: &[usize]| {
        ArrayD::from_shape_vec(IxDyn(s), v.iter().map(|&x| x as f32 as f64).collect()).unwrap()
    };
    let (k, sh) = bn_params(
        &f(&sc, &[3]),
        &f(&bb, &[3]),
        &f(&mu, &[3]),
        &f(&var, &[3]),
        1e-3f32 as f64,
    )
    .unwrap();
    let (w2, b2) = fold_into_conv(&f(&w, &[3, 2, 3, 3]), Some(&f(&b, &[3])), &k, &sh).unwrap();
    let (tw, tb) = textbook_fold(&w, &b, &sc, &bb, &mu, &var, 1e-3);
    assert_close(&w2.iter().copied().collect::<Vec<_>>(), &tw, 1e-12, "W'");
    assert_close(&b2.iter().copied().collect::<Vec<_>>(), &tb, 1e-12, "b'");
}

fn conv_bn(with_bn: bool) -> Model {
    let [w, b, sc, bb, mu, var] = conv_bn_params();
    let net = Net::new(17).input("x", &[1, 2, 5, 5], F32).output("y", F32);
    if with_bn {
        net.init(tensor("w", &[3, 2, 3, 3], &w, F32))
            .init(tensor("b", &[3], &b, F32))
            .init(tensor("sc", &[3], &sc, F32))
            .init(tensor("bb", &[3], &bb, F32))
            .init(tensor("mu", &[3], &mu, F32))
            .init(tensor("var", &[3], &var, F32))
            .node(nd(
                "Conv",
                "conv",
                &["x", "w", "b"],
                &["c"],
                vec![ais("pads", &[1, 1, 1, 1])],
            ))
            .node(nd(
                "BatchNormalization",
                "bn",
                &["c", "sc", "bb", "mu", "var"],
                &["y"],
                vec![af("epsilon", 1e-3)],
            ))
            .build()
    } else {
        let (w2, b2) = textbook_fold(&w, &b, &sc, &bb, &mu, &var, 1e-3);
        net.init(tensor("w", &[3, 2, 3, 3], &w2, F32))
            .init(tensor("b", &[3], &b2, F32))
            .node(nd(
                "Conv",
                "conv",
                &["x", "w", "b"],
                &["y"],
                vec![ais("pads", &[1, 1, 1, 1])],
            ))
            .build()
    }
}

#[test]
fn t11_batchnorm_folding_preserves_outputs_and_relevance() {
    let x = [f32_input("x", &[1, 2, 5, 5], &rnd(50, 76, -1.0, 1.0))];
    let (a, b) = (conv_bn(true), conv_bn(false));
    let ya = Activations::collect(&a, &x).unwrap().get("y").unwrap();
    let yb = Activations::collect(&b, &x).unwrap().get("y").unwrap();
    let diff = (&ya - &yb).iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(diff < 1e-5, "T11: folded Conv differs by {diff}");
    let c = cfg("epsilon");
    for k in [0, 17, 40, 74] {
        let ra = rel_of(&run(&a, &x, Some(k), &c), "x");
        let rb = rel_of(&run(&b, &x, Some(k), &c), "x");
        assert_close(
            &ra,
            &rb,
            1e-4,
            &format!("T11 relevance with BN folded, output {k}"),
        );
    }
    // Under ε the standalone BN rule composes to the same relevance (k·c/stab(y) then
    // Wᵀ(·/c) is W'ᵀ(R/y)); under γ the boost acts on W' or on W, so folding matters.
    let mut nf = c.clone();
    nf.fold_batchnorm = false;
    let ra = rel_of(&run(&a, &x, Some(17), &nf), "x");
    let rb = rel_of(&run(&b, &x, Some(17), &c), "x");
    assert_close(&ra, &rb, 1e-4, "T11 ε without folding");
    let mut g = cfg("cnn");
    let ga = rel_of(&run(&a, &x, Some(17), &g), "x");
    let gb = rel_of(&run(&b, &x, Some(17), &g), "x");
    assert_close(&ga, &gb, 1e-4, "T11 γ with BN folded");
    g.fold_batchnorm = false;
    let gn = rel_of(&run(&a, &x, Some(17), &g), "x");
    assert!(
        gn.iter()
            .zip(&gb)
            .any(|(p, q)| (p - q).abs() > 1e-4 * (1.0 + q.abs())),
        "γ without folding should differ"
    );
}

// ---------------------------------------------------------------- T10: no side effects

#[test]
fn t10_no_side_effects_and_repeatable() {
    let m = conv_bn(true);
    let before = to_proto(&m, &ExportOptions::default());
    let x = [f32_input("x", &[1, 2, 5, 5], &rnd(50, 80, -1.0, 1.0))];
    let y0 = Activations::collect(&m, &x).unwrap().get("y").unwrap();
    let r1 = run(&m, &x, None, &cfg("cnn"));
    let r2 = run(&m, &x, None, &cfg("cnn"));
    assert_eq!(
        to_proto(&m, &ExportOptions::default()),
        before,
        "the model changed"
    );
    let y1 = Activations::collect(&m, &x).unwrap().get("y").unwrap();
    assert_eq!(y0, y1, "outputs changed");
    assert_eq!(r1.inputs, r2.inputs, "repeated runs differ");
    assert_eq!(r1.nodes, r2.nodes);
}

// ---------------------------------------------------------------- T7, T8 on the corpus

fn corpus_input(m: &Model, bindings: &Bindings) -> Vec<(String, HostTensor)> {
    let specs = optimize::validate::input_specs(m, bindings).expect("input specs");
    optimize::data::random_inputs(&specs, 3, 1).expect("random inputs")[0]
        .values
        .clone()
}

#[test]
fn t7_uniform_rule_loses_nothing_on_real_models() {
    let models: Vec<common::CorpusModel> = common::onnx_backend_models()
        .into_iter()
        .filter(|m| {
            [
                "light/light_inception_v1",
                "light/light_shufflenet",
                "light/light_squeezenet",
            ]
            .contains(&m.name.as_str())
        })
        .chain(
            common::ppocr_models()
                .into_iter()
                .filter(|m| m.name != "ppocr/det"),
        )
        .collect();
    assert_eq!(
        models.len(),
        5,
        "corpus models are missing: run scripts/setup.sh"
    );
    for cm in models {
        let model = optimize::pipeline::load_and_infer(&cm.path, &cm.bindings).expect("load");
        let x = corpus_input(&model, &cm.bindings);
        let s = explain(&model, &x, &Target::default(), &cfg("uniform"), false).expect("explain");
        let (a, b) = (s.start_value, s.input_sum());
        assert!(a != 0.0, "{}: zero start", cm.name);
        assert!(
            (a - b).abs() <= 1e-9 * a.abs(),
            "T7 {}: start {a}, inputs {b}",
            cm.name
        );
    }
}

#[test]
fn t8_coverage_over_light_and_ppocr_models() {
    let models: Vec<common::CorpusModel> = common::onnx_backend_models()
        .into_iter()
        .filter(|m| m.name.starts_with("light/"))
        .chain(common::ppocr_models())
        .collect();
    assert_eq!(
        models.len(),
        12,
        "corpus models are missing: run scripts/setup.sh"
    );
    let (mut nodes, mut covered) = (0usize, 0usize);
    println!(
        "{:<28} {:>6} {:>8} {:>9} {:>8} {:>9}  start → Σ input relevance",
        "model", "nodes", "covered", "constant", "on_path", "coverage"
    );
    for cm in models {
        let model = optimize::pipeline::load_and_infer(&cm.path, &cm.bindings).expect("load");
        let x = corpus_input(&model, &cm.bindings);
        let s = explain(&model, &x, &Target::default(), &cfg("epsilon"), false).expect("explain");
        let c = &s.coverage;
        println!(
            "{:<28} {:>6} {:>8} {:>9} {:>8} {:>8.3}%  {:.4e} → {:.4e} {}",
            cm.name,
            c.nodes,
            c.covered,
            c.constant,
            c.on_path,
            100.0 * c.fraction(),
            s.start_value,
            s.input_sum(),
            if c.uncovered_ops.is_empty() {
                String::new()
            } else {
                format!("uncovered: {:?}", c.uncovered_ops)
            }
        );
        assert_eq!(c.nodes, model.graph.node_count());
        assert!(
            c.uncovered_ops.is_empty() && c.uncovered_nodes.is_empty(),
            "{}: uncovered nodes {:?}",
            cm.name,
            c.uncovered_nodes
        );
        assert_eq!(c.covered, c.constant + c.ruled, "{}", cm.name);
        assert_eq!(c.covered, c.nodes, "{}: not every node is covered", cm.name);
        assert!(c.on_path > 0, "{}: no node on a data path", cm.name);
        assert!(
            s.input_sum().is_finite(),
            "{}: relevance is not finite",
            cm.name
        );
        nodes += c.nodes;
        covered += c.covered;
    }
    println!(
        "total: {covered}/{nodes} nodes covered ({:.3}%)",
        100.0 * covered as f64 / nodes as f64
    );
    // docs/testing.md's figure: 6123/6123 nodes over these twelve models.
    assert_eq!(
        (covered, nodes),
        (6123, 6123),
        "coverage differs from docs/testing.md's 6123/6123"
    );
}

// ---------------------------------------------------------------- unknown ops, bad input, CLI

fn cumsum_model() -> Model {
    Net::new(17)
        .input("x", &[1, 3, 4, 4], F32)
        .output("y", F32)
        .init(ints("ax", &[2]))
        .init(tensor(
            "w",
            &[2, 3, 1, 1],
            &[1.0, -1.0, 0.5, 0.2, 0.3, 0.4],
            F32,
        ))
        .node(nd("CumSum", "cumsum", &["x", "ax"], &["c"], vec![]))
        .node(nd("Conv", "conv", &["c", "w"], &["y"], vec![]))
        .build()
}

#[test]
fn unknown_ops_fail_under_strict_and_split_evenly_otherwise() {
    let m = cumsum_model();
    let x = [f32_input("x", &[1, 3, 4, 4], &rnd(48, 90, 0.5, 1.5))];
    let t = Target::default();
    let err = explain(&m, &x, &t, &cfg("epsilon"), true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("'CumSum'") && err.contains("cumsum"), "{err}");
    let s = explain(&m, &x, &t, &cfg("lrp0"), false).unwrap();
    assert_eq!(s.coverage.uncovered_ops.get("CumSum"), Some(&1));
    assert_eq!(s.coverage.nodes, 2);
    assert_eq!(s.coverage.covered, 1);
    // The even split conserves, and every input element gets the same share.
    let r = rel_of(&s, "x");
    assert!((s.input_sum() - s.start_value).abs() < 1e-9 * s.start_value.abs());
    assert!(r.iter().all(|v| (v - r[0]).abs() < 1e-12));
}

#[test]
fn bad_targets_and_models_give_clear_errors() {
    let m = captum_mlp(2.0);
    let x = [f32_input("x", &[1, 3], &[1.0, 2.0, 3.0])];
    let err = explain(
        &m,
        &x,
        &Target {
            output: None,
            index: Some(1),
        },
        &cfg("epsilon"),
        false,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("out of range") && err.exit_code() == 2,
        "{err}"
    );
    let err = explain(
        &m,
        &x,
        &Target {
            output: Some("nope".into()),
            index: None,
        },
        &cfg("epsilon"),
        false,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("'nope'") && err.exit_code() == 2,
        "{err}"
    );
    let argmax = Net::new(17)
        .input("x", &[1, 3], F32)
        .output("y", 7)
        .node(nd("ArgMax", "am", &["x"], &["y"], vec![ai("axis", 1)]))
        .build();
    let err = explain(&argmax, &x, &Target::default(), &cfg("epsilon"), false).unwrap_err();
    assert!(
        err.to_string().contains("no float output") && err.exit_code() == 2,
        "{err}"
    );
}

#[test]
fn explain_cli_writes_relevance_heatmap_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let model_path = dir.path().join("cnn.onnx");
    save_model(&conv_bn(true), &model_path, &ExportOptions::default()).unwrap();
    let inputs = dir.path().join("inputs");
    std::fs::create_dir(&inputs).unwrap();
    let x: Vec<f32> = rnd(50, 95, -1.0, 1.0).iter().map(|&v| v as f32).collect();
    optimize::data::write_npy(
        &inputs.join("a.npy"),
        &HostTensor::from_f32(vec![1, 2, 5, 5], &x),
    )
    .unwrap();
    let out = dir.path().join("out");
    let report = dir.path().join("report.json");
    let res = std::process::Command::new(common::optimize_bin())
        .args([
            "explain",
            model_path.to_str().unwrap(),
            "--inputs",
            inputs.to_str().unwrap(),
            "--target",
            "3",
            "--preset",
            "cnn",
        ])
        .args([
            "--out",
            out.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(
        res.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(stdout.contains("coverage: 2/2 nodes (100.00%)"), "{stdout}");
    assert!(
        stdout.contains("conv") && stdout.contains("R_W share"),
        "{stdout}"
    );
    let r = optimize::data::read_npy(&out.join("a.x.relevance.npy")).unwrap();
    assert_eq!(r.shape, vec![1, 2, 5, 5]);
    assert!(out.join("a.x.heatmap.png").is_file());
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let rel = &j["relevance"];
    assert_eq!(rel["coverage"]["nodes"], 2);
    assert_eq!(rel["coverage"]["covered"], 2);
    assert_eq!(rel["conservation"][0]["index"], 3);
    let shares: f64 = rel["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["relevance_share"].as_f64().unwrap())
        .sum();
    assert!(
        (shares - 1.0).abs() < 1e-9,
        "relevance shares sum to {shares}"
    );
    let conv = rel["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "conv")
        .unwrap();
    assert!((conv["weight_relevance_share"].as_f64().unwrap() - 1.0).abs() < 1e-9);

    // Bad input: wrong shape, target out of range, unknown preset.
    optimize::data::write_npy(
        &inputs.join("a.npy"),
        &HostTensor::from_f32(vec![1, 2, 4, 5], &x[..40]),
    )
    .unwrap();
    let res = std::process::Command::new(common::optimize_bin())
        .args([
            "explain",
            model_path.to_str().unwrap(),
            "--inputs",
            inputs.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(
        err.contains("a.npy") && err.contains("float[1,2,5,5]"),
        "{err}"
    );
    for (flag, val, msg) in [
        ("--target", "75", "out of range"),
        ("--preset", "fancy", "unknown preset"),
    ] {
        let res = std::process::Command::new(common::optimize_bin())
            .args(["explain", model_path.to_str().unwrap(), flag, val])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(2), "{flag} {val}: {err}");
        assert!(err.contains(msg), "{flag} {val}: {err}");
    }
}

#[test]
fn softmax_rules_and_attention_patterns() {
    // x·Wq → softmax(q·kᵀ)·v with a final Softmax: the sweep starts at the logits.
    let m = Net::new(17)
        .input("x", &[1, 4, 3], F32)
        .output("y", F32)
        .init(tensor("wq", &[3, 3], &rnd(9, 100, -1.0, 1.0), F32))
        .init(tensor("wk", &[3, 3], &rnd(9, 101, -1.0, 1.0), F32))
        .init(ints("perm", &[0, 2, 1]))
        .node(nd("MatMul", "q", &["x", "wq"], &["q"], vec![]))
        .node(nd("MatMul", "k", &["x", "wk"], &["k"], vec![]))
        .node(nd(
            "Transpose",
            "kt",
            &["k"],
            &["kt"],
            vec![ais("perm", &[0, 2, 1])],
        ))
        .node(nd("MatMul", "qk", &["q", "kt"], &["s"], vec![]))
        .node(nd("Softmax", "attn", &["s"], &["a"], vec![ai("axis", -1)]))
        .node(nd("MatMul", "av", &["a", "x"], &["o"], vec![]))
        .node(nd("Softmax", "final", &["o"], &["y"], vec![ai("axis", -1)]))
        .build();
    let x = [f32_input("x", &[1, 4, 3], &rnd(12, 102, -1.0, 1.0))];
    let s = run(&m, &x, None, &cfg("epsilon"));
    assert_ne!(s.start_tensor, "y", "the final softmax is skipped");
    assert!(
        (s.start_value - s.input_sum()).abs() < 1e-6 * s.start_value.abs().max(1.0),
        "identity softmax conserves: {} vs {}",
        s.start_value,
        s.input_sum()
    );
    let mut stop = cfg("epsilon");
    stop.softmax = SoftmaxRule::Stop;
    let st = run(&m, &x, None, &stop);
    let attn = run(&m, &x, None, &cfg("transformer"));
    assert!(st.input_sum().is_finite() && attn.input_sum().is_finite());
    assert_ne!(rel_of(&st, "x"), rel_of(&s, "x"));
    assert_ne!(rel_of(&attn, "x"), rel_of(&s, "x"));
    let mut one = cfg("epsilon");
    one.start = StartMode::One;
    assert_eq!(run(&m, &x, None, &one).start_value, 1.0);
}

/// AttnLRP golden values computed by hand. (a) y = softmax(x)·W with x = 1 + [0, ln 2, ln 5],
/// so s = [1, 2, 5]/8, and W = [4, −2, 8]ᵀ: y = 5. The ε-rule on the constant-weight MatMul
/// gives R_s = s ⊙ W · (y / y) = [0.5, −0.5, 5]; AttnLRP's softmax rule
/// R_x = x ⊙ (R_s − s·ΣR_s) gives [1·(0.5 − 0.625), (1 + ln 2)(−0.5 − 1.25),
/// (1 + ln 5)(5 − 3.125)]; the identity rule passes R_s through; stop gives zeros.
/// (b) The bilinear rule for two activations a = [1, 2], b = [3, −1]ᵀ, y = a·b = 1:
/// R_a = a ⊙ (R / 2y)·bᵀ = [1.5, −1], R_b = b ⊙ aᵀ·(R / 2y) = [1.5, −1].
#[test]
fn attnlrp_golden_values_by_hand() {
    let (l2, l5) = (2f64.ln(), 5f64.ln());
    let m = Net::new(17)
        .input("x", &[1, 3], F32)
        .output("y", F32)
        .init(tensor("w", &[3, 1], &[4.0, -2.0, 8.0], F32))
        .node(nd("Softmax", "sm", &["x"], &["s"], vec![ai("axis", -1)]))
        .node(nd("MatMul", "mm", &["s", "w"], &["y"], vec![]))
        .build();
    let x = [f32_input("x", &[1, 3], &[1.0, 1.0 + l2, 1.0 + l5])];
    let attn = run(&m, &x, None, &cfg("transformer"));
    assert!(
        (attn.start_value - 5.0).abs() < 1e-5,
        "{}",
        attn.start_value
    );
    let want = [
        -0.125,
        (1.0 + l2) * (-0.5 - 1.25),
        (1.0 + l5) * (5.0 - 3.125),
    ];
    assert_close(&rel_of(&attn, "x"), &want, 1e-5, "AttnLRP softmax");
    let ident = run(&m, &x, None, &cfg("epsilon"));
    assert_close(
        &rel_of(&ident, "x"),
        &[0.5, -0.5, 5.0],
        1e-5,
        "identity softmax",
    );
    let mut stop = cfg("epsilon");
    stop.softmax = SoftmaxRule::Stop;
    assert_close(
        &rel_of(&run(&m, &x, None, &stop), "x"),
        &[0.0; 3],
        0.0,
        "stop",
    );

    let bil = Net::new(17)
        .input("a", &[1, 2], F32)
        .input("b", &[2, 1], F32)
        .output("y", F32)
        .node(nd("MatMul", "ab", &["a", "b"], &["y"], vec![]))
        .build();
    let ab = [
        f32_input("a", &[1, 2], &[1.0, 2.0]),
        f32_input("b", &[2, 1], &[3.0, -1.0]),
    ];
    let r = run(&bil, &ab, None, &cfg("transformer"));
    assert_close(&rel_of(&r, "a"), &[1.5, -1.0], 1e-6, "bilinear R_a");
    assert_close(&rel_of(&r, "b"), &[1.5, -1.0], 1e-6, "bilinear R_b");
}

// ---------------------------------------------------------------- z^B on the first conv

#[test]
fn zbox_first_conv_conserves_and_matches_the_dense_reference() {
    let (xs, ws) = (vec![1i64, 2, 5, 5], vec![3i64, 2, 3, 3]);
    let attrs = vec![ais("pads", &[1, 0, 1, 2]), ais("strides", &[2, 1])];
    let model = conv_model("Conv", &xs, &ws, attrs.clone(), 120, true);
    let in_shape: Vec<usize> = xs.iter().map(|&d| d as usize).collect();
    let (j, _) = jacobian(&conv_model("Conv", &xs, &ws, attrs, 120, false), &in_shape);
    let n: usize = in_shape.iter().product();
    let x = rnd(n, 121, -1.0, 1.0);
    let inputs = [f32_input("x", &in_shape, &x)];
    let x: Vec<f64> = x.iter().map(|&v| v as f32 as f64).collect();
    let acts = Activations::collect(&model, &inputs).unwrap();
    let (low, high) = (-1.0, 1.0);
    let mut c = cfg("epsilon");
    c.eps = 0.0;
    c.first_conv = Some(Rule::ZBox(low, high));
    let plain = cfg("epsilon");
    for k in [0, 7, j.len() - 1] {
        let t = Target {
            output: None,
            index: Some(k),
        };
        let s = explain_with(&model, &acts, &t, &c, true).unwrap();
        // Conservation at ε = 0, biases included (b − b⁺ − b⁻ = 0).
        assert!(
            (s.input_sum() - s.start_value).abs() < 1e-9 * (1.0 + s.start_value.abs()),
            "z^B output {k}: start {} vs Σ input relevance {}",
            s.start_value,
            s.input_sum()
        );
        // Dense reference: R_i = (x_i J_ki − l J⁺_ki − h J⁻_ki) · R_k / z_k.
        let terms: Vec<f64> = (0..n)
            .map(|i| x[i] * j[k][i] - low * j[k][i].max(0.0) - high * j[k][i].min(0.0))
            .collect();
        let z: f64 = terms.iter().sum();
        let want: Vec<f64> = terms.iter().map(|t| t * s.start_value / z).collect();
        assert_close(&rel_of(&s, "x"), &want, 1e-6, &format!("z^B output {k}"));
        // And it is a different rule from ε.
        let e = explain_with(&model, &acts, &t, &plain, true).unwrap();
        assert!(rel_of(&e, "x")
            .iter()
            .zip(rel_of(&s, "x"))
            .any(|(a, b)| (a - b).abs() > 1e-6 * (1.0 + a.abs())));
    }
}

// ---------------------------------------------------------------- the f32 fast path

/// Large MatMul/Gemm layers with a constant weight run their products in f32 (and MatMul
/// takes z from the recorded output); they must agree with the exact f64 path.
#[test]
fn fast_f32_matmul_and_gemm_match_the_exact_path() {
    use optimize::passes::relevance::config::FAST_MIN_MACS;
    let (m_rows, k, n) = (40usize, 120usize, 80usize);
    let m = Net::new(17)
        .input("x", &[1, m_rows as i64, k as i64], F32)
        .output("y", F32)
        .init(tensor(
            "w",
            &[k as i64, n as i64],
            &rnd(k * n, 90, -0.3, 0.3),
            F32,
        ))
        .init(tensor(
            "w2",
            &[n as i64, 128],
            &rnd(n * 128, 91, -0.3, 0.3),
            F32,
        ))
        .init(tensor("b2", &[128], &rnd(128, 92, -0.5, 0.5), F32))
        .init(ints("sh", &[m_rows as i64, n as i64]))
        .node(nd("MatMul", "mm", &["x", "w"], &["a"], vec![]))
        .node(nd("Relu", "r", &["a"], &["h"], vec![]))
        .node(nd("Reshape", "rs", &["h", "sh"], &["h2"], vec![]))
        .node(nd("Gemm", "g", &["h2", "w2", "b2"], &["y"], vec![]))
        .build();
    assert!(
        m_rows * k * n >= FAST_MIN_MACS && m_rows * n * 128 >= FAST_MIN_MACS,
        "both layers must take the fast path"
    );
    let x = [f32_input(
        "x",
        &[1, m_rows, k],
        &rnd(m_rows * k, 93, -1.0, 1.0),
    )];
    fast_and_exact_agree(&m, &x, &[0, 77, 2000]);
}

/// Large convolutions run their products in f32 and take z from the recorded output (BN
/// folded); the result must agree with the exact f64 path to f32 accuracy, under ε and
/// under the default (γ with a relative stabilizer). The net has a padded 3×3 conv on an
/// input with negative values, a depthwise conv on a ReLU output and one on values of both
/// signs, a pointwise (1×1) conv on a ReLU output (columns read in place, both γ products
/// in one image), a strided depthwise conv, and a strided conv.
#[test]
fn fast_f32_convolutions_match_the_exact_path() {
    use optimize::passes::relevance::config::FAST_MIN_MACS;
    let (c1, c2) = (8usize, 16usize);
    let m = Net::new(17)
        .input("x", &[1, c1 as i64, 24, 24], F32)
        .output("y", F32)
        .init(tensor("w1", &[16, 8, 3, 3], &rnd(1152, 80, -0.3, 0.3), F32))
        .init(tensor("b1", &[16], &rnd(16, 81, -0.5, 0.5), F32))
        .init(tensor("sc", &[16], &rnd(16, 82, 0.5, 1.5), F32))
        .init(tensor("bb", &[16], &rnd(16, 83, -0.5, 0.5), F32))
        .init(tensor("mu", &[16], &rnd(16, 84, -0.5, 0.5), F32))
        .init(tensor("var", &[16], &rnd(16, 85, 0.5, 2.0), F32))
        .init(tensor("w2", &[4, 32, 3, 3], &rnd(1152, 86, -0.3, 0.3), F32))
        .init(tensor("wd", &[16, 1, 7, 7], &rnd(784, 88, -0.3, 0.3), F32))
        .init(tensor("wd2", &[16, 1, 7, 7], &rnd(784, 96, -0.3, 0.3), F32))
        .init(tensor("wp", &[32, 16, 1, 1], &rnd(512, 94, -0.3, 0.3), F32))
        .init(tensor(
            "wd3",
            &[32, 1, 9, 9],
            &rnd(2592, 97, -0.3, 0.3),
            F32,
        ))
        .init(tensor("bp", &[32], &rnd(32, 95, -0.2, 0.2), F32))
        .node(nd(
            "Conv",
            "c1",
            &["x", "w1", "b1"],
            &["a"],
            vec![ais("pads", &[1, 1, 1, 1])],
        ))
        .node(nd(
            "BatchNormalization",
            "bn",
            &["a", "sc", "bb", "mu", "var"],
            &["b"],
            vec![af("epsilon", 1e-3)],
        ))
        .node(nd("Relu", "r", &["b"], &["h"], vec![]))
        .node(nd(
            "Conv",
            "dw",
            &["h", "wd"],
            &["hd"],
            vec![ai("group", 16), ais("pads", &[3, 3, 3, 3])],
        ))
        .node(nd(
            "Conv",
            "dw2",
            &["hd", "wd2"],
            &["hd2"],
            vec![ai("group", 16), ais("pads", &[3, 3, 3, 3])],
        ))
        .node(nd("Relu", "r2", &["hd2"], &["hr"], vec![]))
        .node(nd("Conv", "pw", &["hr", "wp", "bp"], &["hp"], vec![]))
        .node(nd(
            "Conv",
            "dw3",
            &["hp", "wd3"],
            &["hd3"],
            vec![
                ai("group", 32),
                ais("pads", &[4, 4, 4, 4]),
                ais("strides", &[2, 2]),
            ],
        ))
        .node(nd(
            "Conv",
            "c2",
            &["hd3", "w2"],
            &["y"],
            vec![ais("pads", &[1, 1, 1, 1]), ais("strides", &[2, 2])],
        ))
        .build();
    assert!(
        c2 * 24 * 24 * c1 * 9 >= FAST_MIN_MACS
            && c2 * 24 * 24 * 49 >= FAST_MIN_MACS
            && 2 * c2 * 24 * 24 * c2 >= FAST_MIN_MACS
            && 2 * c2 * 12 * 12 * 81 >= FAST_MIN_MACS,
        "c1, the depthwise dw, dw2 and dw3 and the pointwise pw must take the fast path"
    );
    let x = [f32_input("x", &[1, 8, 24, 24], &rnd(4608, 87, -1.0, 1.0))];
    fast_and_exact_agree(&m, &x, &[0, 77, 143]);
}

/// Under the ε (ε = 1e-3) and the default rules, the relevance of input `x` for each target
/// output is the same (to 1e-4 of its largest value, and in total) whether large layers take
/// the f32 fast path or all stay in exact f64.
fn fast_and_exact_agree(m: &Model, x: &[(String, HostTensor)], targets: &[usize]) {
    let mut eps = cfg("epsilon");
    eps.eps = 1e-3;
    for (name, fast) in [("epsilon", eps), ("auto", cfg("auto"))] {
        let mut exact = fast.clone();
        exact.fast_min_macs = usize::MAX;
        for &k in targets {
            let rf = run(m, x, Some(k), &fast);
            let re = run(m, x, Some(k), &exact);
            let (a, b) = (rel_of(&rf, "x"), rel_of(&re, "x"));
            let scale = b.iter().fold(0.0f64, |s, v| s.max(v.abs()));
            let diff = a
                .iter()
                .zip(&b)
                .fold(0.0f64, |s, (p, q)| s.max((p - q).abs()));
            assert!(
                scale > 0.0 && diff <= 1e-4 * scale,
                "{name} output {k}: fast and exact relevance differ by {diff} (scale {scale})"
            );
            let (sa, sb) = (rf.input_sum(), re.input_sum());
            assert!(
                (sa - sb).abs() <= 1e-4 * (sb.abs() + scale),
                "{name} output {k}: Σ relevance {sa} (fast) vs {sb} (exact)"
            );
            // The weight relevance Σ|R_W| of every layer, summed without the f64 gradient
            // on the fast path.
            for (f, e) in rf.nodes.iter().zip(&re.nodes) {
                assert_eq!(f.name, e.name);
                assert!(
                    (f.weight_abs - e.weight_abs).abs() <= 1e-4 * e.weight_abs.max(1e-12),
                    "{name} output {k}, node {}: Σ|R_W| {} (fast) vs {} (exact)",
                    f.name,
                    f.weight_abs,
                    e.weight_abs
                );
            }
        }
    }
}
