//! Unit tests: formulas, broadcasting, and small end-to-end graphs.

use super::conv_pool::{transpose_out, window_out, AutoPad, Window};
use super::tensor_ops::{reshape_dims, slice_range};
use super::*;
use crate::ir::{Graph, Model, Node, ValueInfo};
use onnx_protobuf::{attribute_proto::AttributeType, AttributeProto, TensorProto};

fn k(v: i64) -> Dim {
    Dim::Known(v)
}
fn s(name: &str) -> Dim {
    Dim::Sym(name.to_string())
}

#[test]
fn broadcasting() {
    assert_eq!(
        broadcast(&[&[k(2), k(3), k(1)], &[k(4)]]).unwrap(),
        vec![k(2), k(3), k(4)]
    );
    assert_eq!(
        broadcast(&[&[s("batch"), k(3)], &[k(1), k(3)]]).unwrap(),
        vec![s("batch"), k(3)]
    );
    assert_eq!(
        broadcast(&[&[s("batch"), k(1)], &[k(5)]]).unwrap(),
        vec![s("batch"), k(5)]
    );
    assert_eq!(broadcast(&[&[s("a")], &[k(4)]]).unwrap(), vec![k(4)]);
    assert_eq!(broadcast(&[&[s("a")], &[s("a")]]).unwrap(), vec![s("a")]);
    assert_eq!(
        broadcast(&[&[s("a")], &[s("b")]]).unwrap(),
        vec![Dim::Unknown]
    );
    assert_eq!(broadcast(&[&[], &[k(2), k(2)]]).unwrap(), vec![k(2), k(2)]);
    assert_eq!(
        broadcast(&[&[k(1)], &[k(3)], &[k(2), k(1)]]).unwrap(),
        vec![k(2), k(3)]
    );
    assert!(broadcast(&[&[k(2), k(3)], &[k(4)]]).is_err());
}

fn w(kernel: i64, stride: i64, dilation: i64, pb: i64, pe: i64) -> Window {
    Window {
        kernel,
        stride,
        dilation,
        pad_begin: pb,
        pad_end: pe,
    }
}

#[test]
fn conv_pool_sizes() {
    let np = AutoPad::NotSet;
    assert_eq!(window_out(224, w(7, 2, 1, 3, 3), np, false).unwrap(), 112);
    assert_eq!(window_out(10, w(3, 1, 2, 0, 0), np, false).unwrap(), 6);
    assert_eq!(
        window_out(7, w(3, 2, 1, 0, 0), AutoPad::Valid, false).unwrap(),
        3
    );
    assert_eq!(
        window_out(7, w(3, 2, 1, 5, 5), AutoPad::Valid, false).unwrap(),
        3
    );
    assert_eq!(
        window_out(224, w(3, 2, 1, 0, 0), AutoPad::SameUpper, false).unwrap(),
        112
    );
    assert_eq!(
        window_out(225, w(3, 2, 1, 0, 0), AutoPad::SameLower, false).unwrap(),
        113
    );
    // ceil_mode rounds up ...
    assert_eq!(window_out(6, w(3, 2, 1, 0, 0), np, false).unwrap(), 2);
    assert_eq!(window_out(6, w(3, 2, 1, 0, 0), np, true).unwrap(), 3);
    assert_eq!(window_out(112, w(3, 2, 1, 0, 0), np, true).unwrap(), 56);
    // ... but a last window starting inside the padding is dropped.
    assert_eq!(window_out(5, w(2, 2, 1, 1, 1), np, true).unwrap(), 3);
    assert_eq!(window_out(5, w(2, 2, 1, 1, 1), np, false).unwrap(), 3);
    assert!(window_out(2, w(3, 1, 1, 0, 0), np, false).is_err());
    assert!(window_out(5, w(3, 0, 1, 0, 0), np, false).is_err());
    // Transposed convolution.
    assert_eq!(transpose_out(3, w(3, 2, 1, 0, 0), 0, np), 7);
    assert_eq!(transpose_out(3, w(3, 2, 1, 0, 0), 1, np), 8);
    assert_eq!(transpose_out(3, w(3, 2, 1, 1, 1), 0, np), 5);
    assert_eq!(
        transpose_out(5, w(4, 2, 1, 0, 0), 0, AutoPad::SameUpper),
        10
    );
}

#[test]
fn reshape_zero_and_minus_one() {
    let inp = [k(2), k(3), k(4)];
    assert_eq!(
        reshape_dims(Some(&inp), &[k(0), k(-1)], false).unwrap(),
        vec![k(2), k(12)]
    );
    assert_eq!(
        reshape_dims(Some(&inp), &[k(-1)], false).unwrap(),
        vec![k(24)]
    );
    assert_eq!(
        reshape_dims(Some(&inp), &[k(4), k(0), k(-1)], false).unwrap(),
        vec![k(4), k(3), k(2)]
    );
    assert!(reshape_dims(Some(&inp), &[k(5), k(-1)], false).is_err());
    assert!(reshape_dims(Some(&inp), &[k(-1), k(-1)], false).is_err());
    assert!(reshape_dims(Some(&inp), &[k(5), k(5)], false).is_err());
    // allowzero keeps a literal 0.
    assert_eq!(
        reshape_dims(Some(&[k(0), k(3)]), &[k(3), k(0)], true).unwrap(),
        vec![k(3), k(0)]
    );
    // Symbolic dims cancel out.
    let sym = [s("batch"), k(3), k(4)];
    assert_eq!(
        reshape_dims(Some(&sym), &[k(0), k(-1)], false).unwrap(),
        vec![s("batch"), k(12)]
    );
    assert_eq!(
        reshape_dims(Some(&sym), &[k(-1), k(12)], false).unwrap(),
        vec![s("batch"), k(12)]
    );
    assert_eq!(
        reshape_dims(Some(&sym), &[k(-1), k(6)], false).unwrap(),
        vec![Dim::Unknown, k(6)]
    );
    assert_eq!(
        reshape_dims(Some(&sym), &[s("batch"), k(-1)], false).unwrap(),
        vec![s("batch"), k(12)]
    );
    assert_eq!(
        reshape_dims(None, &[k(2), k(-1)], false).unwrap(),
        vec![k(2), Dim::Unknown]
    );
}

#[test]
fn slice_indices() {
    assert_eq!(slice_range(10, 0, i64::MAX, 1).unwrap(), (0, 10));
    assert_eq!(slice_range(10, -3, -1, 1).unwrap(), (7, 2));
    assert_eq!(slice_range(10, 2, 9, 3).unwrap(), (2, 3));
    assert_eq!(slice_range(10, 20, 30, 1).unwrap(), (10, 0));
    assert_eq!(slice_range(10, -100, 3, 1).unwrap(), (0, 3));
    assert_eq!(slice_range(10, -1, i64::MIN, -1).unwrap(), (9, 10));
    assert_eq!(slice_range(10, 8, 2, -2).unwrap(), (8, 3));
    assert_eq!(slice_range(10, 100, -100, -3).unwrap(), (9, 4));
    assert_eq!(slice_range(10, 3, 5, -1).unwrap(), (3, 0));
    assert!(slice_range(10, 0, 5, 0).is_err());
}

// ------------------------------------------------------------------ small graphs

fn attr_ints_(name: &str, v: &[i64]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INTS.into();
    a.ints = v.to_vec();
    a
}
fn attr_int_(name: &str, v: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INT.into();
    a.i = v;
    a
}
fn attr_str_(name: &str, v: &str) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::STRING.into();
    a.s = v.as_bytes().to_vec();
    a
}

fn init_i64(name: &str, dims: &[i64], v: &[i64]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.data_type = DataType::Int64 as i32;
    t.dims = dims.to_vec();
    t.int64_data = v.to_vec();
    t
}
fn init_f32(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.data_type = DataType::Float as i32;
    t.dims = dims.to_vec();
    t.float_data = v.to_vec();
    t
}

struct B {
    m: Model,
}

impl B {
    fn new(opset: i64) -> B {
        B {
            m: Model {
                opsets: vec![(String::new(), opset)],
                graph: Graph::default(),
                ..Default::default()
            },
        }
    }
    fn input(mut self, name: &str, elem: DataType, dims: Vec<Dim>) -> B {
        self.m.graph.inputs.push(name.into());
        self.m.graph.values.insert(
            name.into(),
            ValueInfo {
                ty: Some(ValueType::Tensor {
                    elem,
                    shape: Some(dims),
                }),
                declared: None,
            },
        );
        self
    }
    fn init(mut self, t: TensorProto) -> B {
        self.m.graph.initializers.insert(t.name.clone(), t);
        self
    }
    fn node(mut self, op: &str, ins: &[&str], outs: &[&str], attrs: Vec<AttributeProto>) -> B {
        self.m.graph.add_node(Node {
            name: format!("n{}", self.m.graph.node_count()),
            op_type: op.into(),
            inputs: ins.iter().map(|s| s.to_string()).collect(),
            outputs: outs.iter().map(|s| s.to_string()).collect(),
            attributes: attrs,
            ..Default::default()
        });
        self
    }
    fn run(mut self, b: &Bindings) -> (Model, InferenceSummary) {
        self.m.graph.relink().expect("valid test graph");
        let s = infer(&mut self.m, b).expect("inference succeeds");
        (self.m, s)
    }
}

fn ty(m: &Model, name: &str) -> String {
    m.graph
        .value_type(name)
        .map(|t| t.to_string())
        .unwrap_or_else(|| "NONE".into())
}

#[test]
fn symbolic_batch_through_shape_arithmetic() {
    let (m, s) = B::new(13)
        .input("x", DataType::Float, vec![s("batch"), k(3), k(4), k(4)])
        .init(init_i64("zero", &[], &[0]))
        .init(init_i64("ax0", &[1], &[0]))
        .init(init_i64("minus1", &[1], &[-1]))
        .node("Shape", &["x"], &["shp"], vec![])
        .node("Gather", &["shp", "zero"], &["b"], vec![])
        .node("Unsqueeze", &["b", "ax0"], &["b1"], vec![])
        .node(
            "Concat",
            &["b1", "minus1"],
            &["target"],
            vec![attr_int_("axis", 0)],
        )
        .node("Reshape", &["x", "target"], &["y"], vec![])
        .node("Relu", &["y"], &["z"], vec![])
        .node("Add", &["z", "z"], &["out"], vec![])
        .run(&Bindings::new());
    assert_eq!(ty(&m, "shp"), "int64[4]");
    assert_eq!(ty(&m, "b"), "int64[]");
    assert_eq!(ty(&m, "target"), "int64[2]");
    assert_eq!(ty(&m, "y"), "float[batch,48]");
    assert_eq!(ty(&m, "out"), "float[batch,48]");
    assert!(s.unknown.is_empty());
    assert_eq!(s.tensors, 3 + 1 + 7);
    assert_eq!(s.fully_static, s.tensors - 4);
}

#[test]
fn bindings_make_shapes_static() {
    let build = || {
        B::new(13)
            .input(
                "x",
                DataType::Float,
                vec![s("batch"), k(3), Dim::Unknown, Dim::Unknown],
            )
            .node("GlobalAveragePool", &["x"], &["g"], vec![])
            .node("Flatten", &["g"], &["f"], vec![])
    };
    let mut b = Bindings::new();
    b.insert("x".into(), vec![2, 3, 32, 32]);
    let (m, s) = build().run(&b);
    assert_eq!(ty(&m, "x"), "float[2,3,32,32]");
    assert_eq!(ty(&m, "f"), "float[2,3]");
    assert_eq!(s.fully_static, s.tensors);

    let mut m = build().m;
    m.graph.relink().unwrap();
    let mut bad = Bindings::new();
    bad.insert("nope".into(), vec![1]);
    assert!(matches!(
        infer(&mut m, &bad),
        Err(ShapeError::UnknownInput { .. })
    ));
    let mut bad = Bindings::new();
    bad.insert("x".into(), vec![1, 3, 4]);
    assert!(matches!(
        infer(&mut m, &bad),
        Err(ShapeError::BindingRank { .. })
    ));
    let mut bad = Bindings::new();
    bad.insert("x".into(), vec![1, 4, 4, 4]);
    let e = infer(&mut m, &bad).unwrap_err();
    assert!(
        matches!(
            e,
            ShapeError::BindingConflict {
                axis: 1,
                value: 4,
                declared: 3,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn contradictory_shapes_name_node_and_tensor() {
    let mut m = B::new(13)
        .input("a", DataType::Float, vec![k(2), k(3)])
        .input("b", DataType::Float, vec![k(4)])
        .node("Add", &["a", "b"], &["c"], vec![])
        .m;
    m.graph.relink().unwrap();
    let e = infer(&mut m, &Bindings::new()).unwrap_err().to_string();
    assert!(
        e.contains("'n0'") && e.contains("'c'") && e.contains("Add"),
        "{e}"
    );
}

#[test]
fn pool_dropout_batchnorm_outputs() {
    let (m, _) = B::new(12)
        .input("x", DataType::Float, vec![k(1), k(2), k(7), k(7)])
        .init(init_f32("sc", &[2], &[1.0, 1.0]))
        .node(
            "MaxPool",
            &["x"],
            &["p", "idx"],
            vec![
                attr_ints_("kernel_shape", &[2, 2]),
                attr_ints_("strides", &[2, 2]),
                attr_int_("ceil_mode", 1),
            ],
        )
        .node("Dropout", &["x"], &["d", "mask"], vec![])
        .node(
            "BatchNormalization",
            &["x", "sc", "sc", "sc", "sc"],
            &["y", "rm", "rv"],
            vec![],
        )
        .node(
            "AveragePool",
            &["x"],
            &["ap"],
            vec![
                attr_ints_("kernel_shape", &[3, 3]),
                attr_str_("auto_pad", "SAME_UPPER"),
            ],
        )
        .run(&Bindings::new());
    assert_eq!(ty(&m, "p"), "float[1,2,4,4]");
    assert_eq!(ty(&m, "idx"), "int64[1,2,4,4]");
    assert_eq!(ty(&m, "mask"), "bool[1,2,7,7]");
    assert_eq!(ty(&m, "rm"), "float[2]");
    assert_eq!(ty(&m, "ap"), "float[1,2,7,7]");

    let (m, _) = B::new(9)
        .input("x", DataType::Float, vec![k(1), k(2)])
        .node("Dropout", &["x"], &["d", "mask"], vec![])
        .run(&Bindings::new());
    assert_eq!(ty(&m, "mask"), "float[1,2]");
}

#[test]
fn opset_dependent_axes_and_splits() {
    // Unsqueeze/Squeeze axes as attribute (opset 11) and as input (opset 13).
    let (m, _) = B::new(11)
        .input("x", DataType::Float, vec![k(3), k(4)])
        .node(
            "Unsqueeze",
            &["x"],
            &["u"],
            vec![attr_ints_("axes", &[0, -1])],
        )
        .node("Squeeze", &["u"], &["q"], vec![attr_ints_("axes", &[0])])
        .node(
            "ReduceSum",
            &["x"],
            &["r"],
            vec![attr_ints_("axes", &[1]), attr_int_("keepdims", 0)],
        )
        .node(
            "Split",
            &["x"],
            &["s0", "s1"],
            vec![attr_int_("axis", 1), attr_ints_("split", &[1, 3])],
        )
        .node("Slice", &["x"], &["sl"], vec![])
        .run(&Bindings::new());
    assert_eq!(ty(&m, "u"), "float[1,3,4,1]");
    assert_eq!(ty(&m, "q"), "float[3,4,1]");
    assert_eq!(ty(&m, "r"), "float[3]");
    assert_eq!(ty(&m, "s1"), "float[3,3]");

    let (m, _) = B::new(18)
        .input("x", DataType::Float, vec![k(3), k(10)])
        .init(init_i64("axes", &[1], &[1]))
        .init(init_i64("starts", &[1], &[-1]))
        .init(init_i64("ends", &[1], &[i64::MIN]))
        .init(init_i64("steps", &[1], &[-3]))
        .node("Unsqueeze", &["x", "axes"], &["u"], vec![])
        .node("ReduceMean", &["x", "axes"], &["r"], vec![])
        .node(
            "Split",
            &["x"],
            &["a", "b", "c"],
            vec![attr_int_("axis", 1), attr_int_("num_outputs", 3)],
        )
        .node(
            "Slice",
            &["x", "starts", "ends", "axes", "steps"],
            &["sl"],
            vec![],
        )
        .node("TopK", &["x", "axes"], &["tv", "ti"], vec![])
        .run(&Bindings::new());
    assert_eq!(ty(&m, "u"), "float[3,1,10]");
    assert_eq!(ty(&m, "r"), "float[3,1]");
    assert_eq!(ty(&m, "a"), "float[3,4]");
    assert_eq!(ty(&m, "c"), "float[3,2]");
    assert_eq!(ty(&m, "sl"), "float[3,4]");
    assert_eq!(ty(&m, "ti"), "int64[3,1]");
}

#[test]
fn pad_resize_expand_constant_of_shape() {
    let (m, _) = B::new(13)
        .input("x", DataType::Float, vec![k(1), k(3), k(5), k(6)])
        .init(init_i64("pads", &[8], &[0, 0, 1, 2, 0, 0, 3, 4]))
        .init(init_f32("scales", &[4], &[1.0, 1.0, 2.0, 0.5]))
        .init(init_i64("shape", &[4], &[2, 1, 1, 1]))
        .node("Pad", &["x", "pads"], &["p"], vec![])
        .node("Resize", &["x", "", "scales"], &["r"], vec![])
        .node("Shape", &["r"], &["rs"], vec![])
        .node("ConstantOfShape", &["rs"], &["c"], vec![])
        .node("Expand", &["x", "shape"], &["e"], vec![])
        .node("Range", &["zero_f", "ten_f", "three_f"], &["rg"], vec![])
        .init(init_f32("zero_f", &[], &[0.0]))
        .init(init_f32("ten_f", &[], &[10.0]))
        .init(init_f32("three_f", &[], &[3.0]))
        .run(&Bindings::new());
    assert_eq!(ty(&m, "p"), "float[1,3,9,12]");
    assert_eq!(ty(&m, "r"), "float[1,3,10,3]");
    assert_eq!(ty(&m, "c"), "float[1,3,10,3]");
    assert_eq!(ty(&m, "e"), "float[2,3,5,6]");
    assert_eq!(ty(&m, "rg"), "float[4]");

    // Pad with the pads attribute before opset 11; Upsample with scales attribute at opset 7.
    let (m, _) = B::new(7)
        .input("x", DataType::Float, vec![k(1), k(1), k(2), k(3)])
        .node(
            "Pad",
            &["x"],
            &["p"],
            vec![attr_ints_("pads", &[0, 0, 1, 1, 0, 0, 1, 1])],
        )
        .run(&Bindings::new());
    assert_eq!(ty(&m, "p"), "float[1,1,4,5]");
}

#[test]
fn matmul_gemm_conv() {
    let (m, _) = B::new(13)
        .input("a", DataType::Float, vec![s("n"), k(8), k(16)])
        .input("v", DataType::Float, vec![k(16)])
        .init(init_f32("w", &[16, 4], &[0.0; 64]))
        .init(init_f32("g", &[5, 16], &[0.0; 80]))
        .input("x", DataType::Float, vec![k(1), k(3), k(32), k(32)])
        .init(init_f32("cw", &[8, 3, 3, 3], &[0.0; 216]))
        .node("MatMul", &["a", "w"], &["mm"], vec![])
        .node("MatMul", &["a", "v"], &["mv"], vec![])
        .node("Gemm", &["v2", "g"], &["gm"], vec![attr_int_("transB", 1)])
        .node("Reshape", &["v", "shp"], &["v2"], vec![])
        .init(init_i64("shp", &[2], &[1, -1]))
        .node(
            "Conv",
            &["x", "cw"],
            &["c"],
            vec![
                attr_ints_("strides", &[2, 2]),
                attr_ints_("pads", &[1, 1, 1, 1]),
            ],
        )
        .node(
            "ConvTranspose",
            &["c", "tw"],
            &["ct"],
            vec![attr_ints_("strides", &[2, 2])],
        )
        .init(init_f32("tw", &[8, 2, 2, 2], &[0.0; 64]))
        .run(&Bindings::new());
    assert_eq!(ty(&m, "mm"), "float[n,8,4]");
    assert_eq!(ty(&m, "mv"), "float[n,8]");
    assert_eq!(ty(&m, "gm"), "float[1,5]");
    assert_eq!(ty(&m, "c"), "float[1,8,16,16]");
    assert_eq!(ty(&m, "ct"), "float[1,2,32,32]");
}

#[test]
fn sequences_track_elements() {
    let (m, _) = B::new(12)
        .input("x", DataType::Float, vec![k(2), k(3)])
        .input("y", DataType::Float, vec![k(4), k(3)])
        .init(init_i64("zero", &[], &[0]))
        .node("SequenceEmpty", &[], &["e"], vec![])
        .node("SequenceInsert", &["e", "x"], &["s1"], vec![])
        .node("SequenceInsert", &["s1", "y", "zero"], &["s2"], vec![])
        .node("SequenceAt", &["s2", "zero"], &["at"], vec![])
        .node("SequenceLength", &["s2"], &["len"], vec![])
        .node(
            "ConcatFromSequence",
            &["s2"],
            &["cat"],
            vec![attr_int_("axis", 0)],
        )
        .node(
            "SplitToSequence",
            &["x"],
            &["sp"],
            vec![attr_int_("axis", 1), attr_int_("keepdims", 0)],
        )
        .run(&Bindings::new());
    assert_eq!(ty(&m, "s2"), "seq(float[?,3])");
    assert_eq!(ty(&m, "at"), "float[4,3]");
    assert_eq!(ty(&m, "len"), "int64[]");
    assert_eq!(ty(&m, "cat"), "float[6,3]");
    assert_eq!(ty(&m, "sp"), "seq(float[2])");
}

#[test]
fn unknown_ops_stay_unknown_and_declared_is_untouched() {
    let mut b = B::new(13)
        .input("x", DataType::Float, vec![k(2)])
        .node("Relu", &["x"], &["r"], vec![])
        .node("MysteryOp", &["r"], &["q"], vec![])
        .node("Relu", &["q"], &["z"], vec![]);
    b.m.graph
        .node_mut_for_test_domain("MysteryOp", "com.example");
    let (m, s) = b.run(&Bindings::new());
    assert_eq!(s.unknown, vec!["q".to_string(), "z".to_string()]);
    assert_eq!(ty(&m, "r"), "float[2]");
    assert!(m.graph.values["x"].declared.is_none());
}

impl Graph {
    fn node_mut_for_test_domain(&mut self, op: &str, domain: &str) {
        for &i in &self.order {
            if self.ops[i].op_type == op {
                self.ops[i].domain = domain.to_string();
            }
        }
    }
}
