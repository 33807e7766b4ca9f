//! The wgpu executor on the ops the mixed-precision rewrite emits, against onnxruntime:
//! QuantizeLinear / DequantizeLinear (default domain opsets 10/13/19/21 and com.microsoft;
//! uint8/int8/int16/uint16/int4/uint4; per-tensor, per-axis, blocked; with and without zero
//! points; int32 bias), com.microsoft MatMulNBits (4 and 8 bits), Cast with float16 and
//! float16 initializers, and a QDQ-quantized PP-OCR classifier. Every model is built here,
//! run on both runtimes with the same inputs, and compared:
//! - quantized integer outputs exactly, except ±1 where x/scale lies within 1e-3 of .5 (the
//!   two runtimes may divide differently); ties hit exactly (power-of-two scales) must round
//!   half to even on both;
//! - float outputs within |a − b| ≤ 1e-5 · max(1, |a|).

mod common;

use onnx_protobuf::{
    tensor_shape_proto::{dimension, Dimension},
    type_proto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use optimize::data::HostTensor;
use optimize::ir::DataType;
use optimize::runtime::gpu::WgpuSession;
use optimize::runtime::OrtRuntime;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

// ---------------------------------------------------------------------------------------
// Model building

/// Little-endian element bytes of `vals` as `dt` (4-bit types packed, low nibble first).
fn encode(dt: DataType, vals: &[f64]) -> Vec<u8> {
    match dt {
        DataType::Float => vals
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect(),
        DataType::Float16 => vals
            .iter()
            .flat_map(|&v| half::f16::from_f64(v).to_le_bytes())
            .collect(),
        DataType::Int8 | DataType::Uint8 | DataType::Bool => {
            vals.iter().map(|&v| v as i64 as u8).collect()
        }
        DataType::Int16 | DataType::Uint16 => vals
            .iter()
            .flat_map(|&v| (v as i64 as u16).to_le_bytes())
            .collect(),
        DataType::Int32 | DataType::Uint32 => vals
            .iter()
            .flat_map(|&v| (v as i64 as u32).to_le_bytes())
            .collect(),
        DataType::Int64 => vals
            .iter()
            .flat_map(|&v| (v as i64).to_le_bytes())
            .collect(),
        DataType::Int4 | DataType::Uint4 => vals
            .chunks(2)
            .map(|c| {
                let lo = (c[0] as i64 & 15) as u8;
                let hi = c.get(1).map_or(0, |&v| (v as i64 & 15) as u8);
                lo | (hi << 4)
            })
            .collect(),
        other => panic!("encode: {other} not needed here"),
    }
}

fn tensor(name: &str, dt: DataType, dims: &[usize], vals: &[f64]) -> TensorProto {
    assert_eq!(dims.iter().product::<usize>(), vals.len(), "{name}");
    let mut t = TensorProto::new();
    t.name = name.into();
    t.data_type = dt as i32;
    t.dims = dims.iter().map(|&d| d as i64).collect();
    t.raw_data = encode(dt, vals);
    t
}

fn host(dt: DataType, dims: &[usize], vals: &[f64]) -> HostTensor {
    HostTensor::new(dt, dims.to_vec(), encode(dt, vals))
}

fn vi(name: &str, dt: DataType, dims: &[usize]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    for &d in dims {
        let mut dim = Dimension::new();
        dim.value = Some(dimension::Value::DimValue(d as i64));
        shape.dim.push(dim);
    }
    let mut tt = type_proto::Tensor::new();
    tt.elem_type = dt as i32;
    tt.shape = Some(shape).into();
    let mut t = TypeProto::new();
    t.value = Some(type_proto::Value::TensorType(tt));
    let mut v = ValueInfoProto::new();
    v.name = name.into();
    v.type_ = Some(t).into();
    v
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], attrs: &[(&str, i64)]) -> NodeProto {
    let mut n = common::build::node(op, inputs, outputs);
    for &(k, v) in attrs {
        n.attribute.push(common::build::int_attr(k, v));
    }
    n
}

fn ms(mut n: NodeProto) -> NodeProto {
    n.domain = "com.microsoft".into();
    n
}

/// A graph under construction; `bytes` serializes it (IR 10, so int4 is allowed).
struct Net {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    opset: i64,
}

impl Net {
    fn new(opset: i64) -> Net {
        Net {
            nodes: Vec::new(),
            inits: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            opset,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut g = GraphProto::new();
        g.name = "quant".into();
        g.node = self.nodes.clone();
        g.initializer = self.inits.clone();
        g.input = self.inputs.clone();
        g.output = self.outputs.clone();
        let mut m = ModelProto::new();
        m.ir_version = 10;
        let mut o = OperatorSetIdProto::new();
        o.version = self.opset;
        m.opset_import.push(o);
        let mut o = OperatorSetIdProto::new();
        o.domain = "com.microsoft".into();
        o.version = 1;
        m.opset_import.push(o);
        m.producer_name = "tests".into();
        m.graph = Some(g).into();
        m.write_to_bytes().expect("serialize")
    }
}

type Outputs = Vec<(String, HostTensor)>;

/// Runs `net` on onnxruntime and on the wgpu executor with the same feeds.
fn run_both(what: &str, net: &Net, feeds: &[(String, HostTensor)]) -> (Outputs, Outputs) {
    let bytes = net.bytes();
    let rt = OrtRuntime::get().expect("onnxruntime must load: run scripts/setup.sh");
    let expected = rt
        .session_from_bytes(&bytes, what)
        .and_then(|mut s| s.run(feeds))
        .unwrap_or_else(|e| panic!("{what}: onnxruntime: {e}"));
    let mut model = optimize::onnx_io::model_from_bytes(&bytes, Path::new(what))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    optimize::shape::infer(&mut model, &Default::default())
        .unwrap_or_else(|e| panic!("{what}: shape inference: {e}"));
    let got = WgpuSession::new(&model, None)
        .and_then(|mut s| s.run(feeds))
        .unwrap_or_else(|e| panic!("{what}: wgpu executor: {e}"));
    (expected, got)
}

fn output<'a>(outs: &'a Outputs, name: &str, what: &str) -> &'a HostTensor {
    &outs
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{what}: no output '{name}'"))
        .1
}

/// Float outputs: |a − b| ≤ tol · max(1, |a|); returns the largest relative error.
fn assert_close(what: &str, expected: &HostTensor, got: &HostTensor, tol: f64) -> f64 {
    assert_eq!(
        (expected.dtype, &expected.shape),
        (got.dtype, &got.shape),
        "{what}: type/shape"
    );
    let a = expected.to_f64().expect("numeric");
    let b = got.to_f64().expect("numeric");
    let mut worst = 0.0f64;
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let r = (x - y).abs() / x.abs().max(1.0);
        assert!(
            r <= tol,
            "{what}: element {i}: onnxruntime {x}, wgpu {y} (relative error {r:.3e} > {tol:.0e})"
        );
        worst = worst.max(r);
    }
    worst
}

/// Quantized outputs: equal, except ±1 where `real[i]` (x/scale in f64) is within 1e-3 of a
/// .5 boundary, where the float rounding of the two runtimes may straddle it. Returns the
/// number of such ±1 differences.
fn assert_quantized(what: &str, expected: &HostTensor, got: &HostTensor, real: &[f64]) -> usize {
    assert_eq!(
        (expected.dtype, &expected.shape),
        (got.dtype, &got.shape),
        "{what}: type/shape"
    );
    let a = expected.to_f64().expect("numeric");
    let b = got.to_f64().expect("numeric");
    let mut off_by_one = 0;
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        if x == y {
            continue;
        }
        let frac = real[i] - real[i].floor();
        assert!(
            (x - y).abs() == 1.0 && (frac - 0.5).abs() < 1e-3,
            "{what}: element {i} (x/scale = {}): onnxruntime {x}, wgpu {y}",
            real[i]
        );
        off_by_one += 1;
    }
    off_by_one
}

/// Index of the scale of element `i` of a tensor of shape `xs` (per-tensor when `ss` has one
/// element, per-axis, or blocked along `axis` with `block`).
fn scale_index(i: usize, xs: &[usize], ss: &[usize], axis: usize, block: usize) -> usize {
    if ss.iter().product::<usize>() <= 1 {
        return 0;
    }
    let inner: usize = xs[axis + 1..].iter().product();
    let a = (i / inner) % xs[axis];
    if block == 0 {
        return a;
    }
    let outer = i / inner / xs[axis];
    (outer * ss[axis] + a / block) * inner + i % inner
}

/// Random float data in [-r, r] with every 5th element an exact tie (k + .5)·`tie_scale`,
/// and a few values far outside the quantized range (saturation).
fn data(rng: &mut ChaCha8Rng, n: usize, r: f64, tie_scale: f64) -> Vec<f64> {
    (0..n)
        .map(|i| match i % 11 {
            0 | 5 => (rng.random_range(-40i32..40) as f64 + 0.5) * tie_scale,
            7 => rng.random_range(-1.0..1.0) * r * 50.0,
            _ => (rng.random_range(-r..r) as f32) as f64,
        })
        .collect()
}

fn qrange(dt: DataType) -> (i64, i64) {
    match dt {
        DataType::Int8 => (-128, 127),
        DataType::Uint8 => (0, 255),
        DataType::Int16 => (-32768, 32767),
        DataType::Uint16 => (0, 65535),
        DataType::Int4 => (-8, 7),
        DataType::Uint4 => (0, 15),
        _ => panic!("{dt}"),
    }
}

/// One Q → DQ round trip: `x: float[xs]` quantized with `scale: float[ss]` (and an optional
/// zero point of type `qt`) along `axis` in blocks of `block` (0: not blocked), then
/// dequantized. Checks q (when onnxruntime can return its type) and the dequantized y.
struct QdqCase {
    opset: i64,
    domain_ms: bool,
    qt: DataType,
    xs: Vec<usize>,
    ss: Vec<usize>,
    axis: i64,
    block: usize,
    zp: bool,
    pow2_scales: bool,
}

fn check_qdq(c: &QdqCase, seed: u64) -> usize {
    let what = format!(
        "Q/DQ opset {}{} {} x{:?} scale{:?} axis {} block {} zp {}",
        c.opset,
        if c.domain_ms { " com.microsoft" } else { "" },
        c.qt,
        c.xs,
        c.ss,
        c.axis,
        c.block,
        c.zp
    );
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let nx: usize = c.xs.iter().product();
    let ns: usize = c.ss.iter().product();
    let (lo, hi) = qrange(c.qt);
    let span = (hi - lo) as f64;
    let scales: Vec<f64> = (0..ns)
        .map(|_| {
            if c.pow2_scales {
                2f64.powi(rng.random_range(-5..0))
            } else {
                (rng.random_range(0.01..0.1) as f32) as f64
            }
        })
        .collect();
    let zps: Vec<f64> = (0..ns)
        .map(|_| rng.random_range(lo + (span as i64) / 4..=hi - (span as i64) / 4) as f64)
        .collect();
    let tie = if c.pow2_scales { 1.0 / 32.0 } else { 0.0 };
    let x = data(&mut rng, nx, span / 2.0 * 0.05, tie);
    let mut net = Net::new(c.opset);
    net.inits.push(tensor("s", DataType::Float, &c.ss, &scales));
    let mut ins = vec!["x", "s"];
    if c.zp {
        net.inits.push(tensor("z", c.qt, &c.ss, &zps));
        ins.push("z");
    }
    let mut attrs: Vec<(&str, i64)> = Vec::new();
    if ns > 1 {
        attrs.push(("axis", c.axis));
    }
    if c.block > 0 {
        attrs.push(("block_size", c.block as i64));
    }
    let mut q_attrs = attrs.clone();
    if !c.zp && c.qt != DataType::Uint8 {
        q_attrs.push(("output_dtype", c.qt as i64));
    }
    let mut qn = node("QuantizeLinear", &ins, &["q"], &q_attrs);
    let mut dq_ins = vec!["q", "s"];
    if c.zp {
        dq_ins.push("z");
    }
    let mut dqn = node("DequantizeLinear", &dq_ins, &["y"], &attrs);
    if c.domain_ms {
        qn = ms(qn);
        dqn = ms(dqn);
    }
    net.nodes = vec![qn, dqn];
    net.inputs.push(vi("x", DataType::Float, &c.xs));
    let four_bit = matches!(c.qt, DataType::Int4 | DataType::Uint4);
    if !four_bit {
        // onnxruntime hands back no 4-bit tensors; their q is checked through y.
        net.outputs.push(vi("q", c.qt, &c.xs));
    }
    net.outputs.push(vi("y", DataType::Float, &c.xs));
    let feeds = vec![("x".to_string(), host(DataType::Float, &c.xs, &x))];
    let (expected, got) = run_both(&what, &net, &feeds);
    let ax = if c.axis < 0 {
        (c.axis + c.xs.len() as i64) as usize
    } else {
        c.axis as usize
    };
    let real: Vec<f64> = (0..nx)
        .map(|i| x[i] / scales[scale_index(i, &c.xs, &c.ss, ax, c.block)])
        .collect();
    let mut off = 0;
    if !four_bit {
        off += assert_quantized(
            &what,
            output(&expected, "q", &what),
            output(&got, "q", &what),
            &real,
        );
    }
    // y = (q − zp)·s: an off-by-one q moves y by one scale step, nothing else may differ.
    let ey = output(&expected, "y", &what).to_f64().expect("float");
    let gy = output(&got, "y", &what).to_f64().expect("float");
    for i in 0..nx {
        let s = scales[scale_index(i, &c.xs, &c.ss, ax, c.block)];
        let d = (ey[i] - gy[i]).abs();
        let frac = real[i] - real[i].floor();
        let straddle = (frac - 0.5).abs() < 1e-3;
        assert!(
            d <= 1e-5 * ey[i].abs().max(1.0) || (straddle && (d - s).abs() <= 1e-5 * s.max(1.0)),
            "{what}: y[{i}] (x {} / scale {s}): onnxruntime {}, wgpu {}",
            x[i],
            ey[i],
            gy[i]
        );
        if four_bit && d > 1e-5 * ey[i].abs().max(1.0) {
            off += 1;
        }
    }
    if c.pow2_scales {
        assert_eq!(off, 0, "{what}: exact divisions must quantize identically");
    }
    println!("{what}: {nx} elements, {off} off by one at a .5 straddle");
    off
}

// ---------------------------------------------------------------------------------------
// Q / DQ

#[test]
fn quantize_dequantize_per_tensor_across_opsets() {
    let mut seed = 1;
    for opset in [10, 13, 19, 21] {
        let mut types = vec![DataType::Uint8, DataType::Int8];
        if opset >= 21 {
            types.extend([
                DataType::Int16,
                DataType::Uint16,
                DataType::Int4,
                DataType::Uint4,
            ]);
        }
        for qt in types {
            for zp in [true, false] {
                if !zp && qt != DataType::Uint8 && opset < 21 {
                    continue; // without a zero point the output is uint8 before opset 21
                }
                for pow2 in [true, false] {
                    seed += 1;
                    check_qdq(
                        &QdqCase {
                            opset,
                            domain_ms: false,
                            qt,
                            xs: vec![3, 4, 5],
                            ss: vec![],
                            axis: 1,
                            block: 0,
                            zp,
                            pow2_scales: pow2,
                        },
                        seed,
                    );
                }
            }
        }
    }
}

#[test]
fn quantize_dequantize_per_axis_and_blocked() {
    let cases = [
        // per-axis (opset 13+), positive and negative axis
        (13, DataType::Int8, vec![2, 4, 3, 3], vec![4], 1, 0, true),
        (13, DataType::Uint8, vec![2, 3, 5], vec![5], -1, 0, true),
        (19, DataType::Uint8, vec![6, 7], vec![6], 0, 0, false),
        (21, DataType::Int4, vec![2, 4, 3, 3], vec![4], 1, 0, true),
        (21, DataType::Uint4, vec![5, 3], vec![5], 0, 0, true),
        (21, DataType::Int16, vec![2, 4, 3], vec![4], 1, 0, true),
        // blocked (opset 21): a block count that does not divide the axis, on axis 0 and 1
        (21, DataType::Int8, vec![4, 6, 3], vec![4, 2, 3], 1, 4, true),
        (
            21,
            DataType::Uint8,
            vec![4, 6, 3],
            vec![4, 2, 3],
            1,
            4,
            false,
        ),
        (21, DataType::Int4, vec![33, 5], vec![3, 5], 0, 16, true),
        (21, DataType::Uint4, vec![33, 5], vec![3, 5], 0, 16, true),
        (21, DataType::Int4, vec![5, 40], vec![5, 3], 1, 16, false),
    ];
    let mut seed = 100;
    for (opset, qt, xs, ss, axis, block, zp) in cases {
        for pow2 in [true, false] {
            seed += 1;
            check_qdq(
                &QdqCase {
                    opset,
                    domain_ms: false,
                    qt,
                    xs: xs.clone(),
                    ss: ss.clone(),
                    axis,
                    block,
                    zp,
                    pow2_scales: pow2,
                },
                seed,
            );
        }
    }
}

/// The com.microsoft contrib Q/DQ (what onnxruntime's quantizer emits for int4/16-bit below
/// opset 21): same arithmetic, per-tensor and per-axis.
#[test]
fn quantize_dequantize_com_microsoft_domain() {
    let mut seed = 200;
    for qt in [
        DataType::Uint8,
        DataType::Int8,
        DataType::Int16,
        DataType::Uint16,
        DataType::Int4,
        DataType::Uint4,
    ] {
        for (xs, ss, axis) in [(vec![3, 4, 5], vec![], 1), (vec![2, 4, 3], vec![4], 1)] {
            for pow2 in [true, false] {
                seed += 1;
                check_qdq(
                    &QdqCase {
                        opset: 13,
                        domain_ms: true,
                        qt,
                        xs: xs.clone(),
                        ss: ss.clone(),
                        axis,
                        block: 0,
                        zp: true,
                        pow2_scales: pow2,
                    },
                    seed,
                );
            }
        }
    }
}

/// Constant 4-bit weights (an odd element count, so the last byte is half used) and int32
/// biases dequantized on their own, and as the weights of a QDQ Conv (DQ(x), DQ(W), DQ(B) →
/// Conv → Q → DQ), the pattern onnxruntime fuses to QLinearConv.
#[test]
fn dequantize_constant_weights_and_int32_bias_in_a_qdq_conv() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for (opset, wt, domain_ms) in [
        (13, DataType::Int8, false),
        (21, DataType::Int4, false),
        (21, DataType::Uint4, false),
        (13, DataType::Int4, true),
    ] {
        let what = format!(
            "QDQ Conv opset {opset}{} weights {wt}",
            if domain_ms { " com.microsoft" } else { "" }
        );
        let (lo, hi) = qrange(wt);
        let (co, ci, k) = (5usize, 3usize, 3usize);
        let wn = co * ci * k * k; // 135: odd
        let w: Vec<f64> = (0..wn).map(|_| rng.random_range(lo..=hi) as f64).collect();
        let ws: Vec<f64> = (0..co)
            .map(|_| rng.random_range(0.01..0.05f32) as f64)
            .collect();
        let wz: Vec<f64> = (0..co)
            .map(|_| {
                if lo < 0 {
                    rng.random_range(-2..=2) as f64
                } else {
                    rng.random_range(6..=9) as f64
                }
            })
            .collect();
        let xs_scale = 0.02f64;
        let b: Vec<f64> = (0..co)
            .map(|_| rng.random_range(-3000..3000) as f64)
            .collect();
        let bs: Vec<f64> = ws.iter().map(|s| s * xs_scale).collect();
        let mut net = Net::new(opset);
        net.inits.push(tensor("w_q", wt, &[co, ci, k, k], &w));
        net.inits.push(tensor("w_s", DataType::Float, &[co], &ws));
        net.inits.push(tensor("w_z", wt, &[co], &wz));
        net.inits.push(tensor("b_q", DataType::Int32, &[co], &b));
        net.inits.push(tensor("b_s", DataType::Float, &[co], &bs));
        net.inits
            .push(tensor("x_s", DataType::Float, &[], &[xs_scale]));
        net.inits
            .push(tensor("x_z", DataType::Uint8, &[], &[128.0]));
        net.inits.push(tensor("y_s", DataType::Float, &[], &[0.05]));
        net.inits
            .push(tensor("y_z", DataType::Uint8, &[], &[120.0]));
        let d = |n: NodeProto| if domain_ms { ms(n) } else { n };
        net.nodes = vec![
            d(node("QuantizeLinear", &["x", "x_s", "x_z"], &["x_q"], &[])),
            d(node(
                "DequantizeLinear",
                &["x_q", "x_s", "x_z"],
                &["x_dq"],
                &[],
            )),
            d(node(
                "DequantizeLinear",
                &["w_q", "w_s", "w_z"],
                &["w"],
                &[("axis", 0)],
            )),
            d(node(
                "DequantizeLinear",
                &["b_q", "b_s"],
                &["b"],
                &[("axis", 0)],
            )),
            node("Conv", &["x_dq", "w", "b"], &["c"], &[("group", 1)]),
            d(node("QuantizeLinear", &["c", "y_s", "y_z"], &["c_q"], &[])),
            d(node(
                "DequantizeLinear",
                &["c_q", "y_s", "y_z"],
                &["y"],
                &[],
            )),
        ];
        net.inputs.push(vi("x", DataType::Float, &[1, ci, 6, 7]));
        net.outputs.push(vi("w", DataType::Float, &[co, ci, k, k]));
        net.outputs.push(vi("b", DataType::Float, &[co]));
        net.outputs.push(vi("c", DataType::Float, &[1, co, 4, 5]));
        net.outputs.push(vi("c_q", DataType::Uint8, &[1, co, 4, 5]));
        net.outputs.push(vi("y", DataType::Float, &[1, co, 4, 5]));
        let x: Vec<f64> = (0..ci * 42)
            .map(|_| rng.random_range(-2.0..2.0f32) as f64)
            .collect();
        let feeds = vec![("x".to_string(), host(DataType::Float, &[1, ci, 6, 7], &x))];
        let (expected, got) = run_both(&what, &net, &feeds);
        for name in ["w", "b"] {
            // Dequantized constants: (q − z)·s, one f32 rounding on both sides.
            assert_close(
                &format!("{what}: {name}"),
                output(&expected, name, &what),
                output(&got, name, &what),
                0.0,
            );
        }
        let rc = assert_close(
            &format!("{what}: c"),
            output(&expected, "c", &what),
            output(&got, "c", &what),
            1e-5,
        );
        let c = output(&expected, "c", &what).to_f64().expect("float");
        let real: Vec<f64> = c.iter().map(|v| v / 0.05).collect();
        let off = assert_quantized(
            &format!("{what}: c_q"),
            output(&expected, "c_q", &what),
            output(&got, "c_q", &what),
            &real,
        );
        println!("{what}: conv max rel err {rc:.2e}, {off} outputs off by one at a .5 straddle");
    }
}

// ---------------------------------------------------------------------------------------
// MatMulNBits

/// `Y = A · dequant(B)ᵀ (+ bias)` with B packed `[N, k_blocks, block·bits/8]`, low bits first.
#[test]
fn matmul_nbits_matches_onnxruntime() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut cases = Vec::new();
    for bits in [4usize, 8] {
        for block in [16usize, 32] {
            for zp in [false, true] {
                for bias in [false, true] {
                    cases.push((bits, block, zp, bias));
                }
            }
        }
    }
    for (ci, (bits, block, zp, bias)) in cases.into_iter().enumerate() {
        // K not a multiple of the block (the last block is padded); A with batch dims.
        let (k, n) = (40usize, 6usize);
        let a_shape: Vec<usize> = if ci % 2 == 0 {
            vec![2, 3, k]
        } else {
            vec![5, k]
        };
        let what = format!(
            "MatMulNBits bits {bits} block {block} zero points {zp} bias {bias} A{a_shape:?}"
        );
        let kb = k.div_ceil(block);
        let blob = block * bits / 8;
        let bvals: Vec<f64> = (0..n * kb * blob)
            .map(|_| rng.random_range(0..=255) as f64)
            .collect();
        let scales: Vec<f64> = (0..n * kb)
            .map(|_| rng.random_range(0.005..0.05f32) as f64)
            .collect();
        let mut net = Net::new(21);
        net.inits
            .push(tensor("B", DataType::Uint8, &[n, kb, blob], &bvals));
        net.inits
            .push(tensor("scales", DataType::Float, &[n * kb], &scales));
        let mut ins = vec!["A", "B", "scales"];
        if zp {
            let per_byte = 8 / bits;
            let zn = n * kb.div_ceil(per_byte);
            let zv: Vec<f64> = (0..zn).map(|_| rng.random_range(0..=255) as f64).collect();
            net.inits.push(tensor("zp", DataType::Uint8, &[zn], &zv));
            ins.push("zp");
        } else if bias {
            ins.push("");
        }
        if bias {
            let bv: Vec<f64> = (0..n)
                .map(|_| rng.random_range(-1.0..1.0f32) as f64)
                .collect();
            net.inits.push(tensor("bias", DataType::Float, &[n], &bv));
            ins.push(""); // g_idx
            ins.push("bias");
        }
        net.nodes = vec![ms(node(
            "MatMulNBits",
            &ins,
            &["Y"],
            &[
                ("K", k as i64),
                ("N", n as i64),
                ("bits", bits as i64),
                ("block_size", block as i64),
                ("accuracy_level", 0),
            ],
        ))];
        let mut y_shape = a_shape.clone();
        *y_shape.last_mut().expect("rank") = n;
        net.inputs.push(vi("A", DataType::Float, &a_shape));
        net.outputs.push(vi("Y", DataType::Float, &y_shape));
        let an: usize = a_shape.iter().product();
        let a: Vec<f64> = (0..an)
            .map(|_| rng.random_range(-1.0..1.0f32) as f64)
            .collect();
        let feeds = vec![("A".to_string(), host(DataType::Float, &a_shape, &a))];
        let (expected, got) = run_both(&what, &net, &feeds);
        let r = assert_close(
            &what,
            output(&expected, "Y", &what),
            output(&got, "Y", &what),
            1e-5,
        );
        println!("{what}: max rel err {r:.2e}");
    }
}

// ---------------------------------------------------------------------------------------
// Cast and float16

/// fp32 → fp16 → fp32 casts (ties, overflow to inf, subnormals, −0), fp16 initializers
/// (the mixed-precision pass's storage-only pattern: fp16 weight → Cast → fp32 op), fp16
/// graph inputs, and float → integer casts: all bit-identical to onnxruntime.
///
/// Arithmetic on fp16 tensors is rounded to half precision after every op (ONNX semantics,
/// and what a GPU computing in fp16 does). onnxruntime's CPU provider instead runs a chain of
/// fp16 ops in f32 between the casts it inserts, rounding once at the end; so the chain is
/// checked bit-exactly against a host computation of the ONNX semantics and within one
/// fp16 step of onnxruntime.
#[test]
fn cast_and_float16_match_onnxruntime() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let n = 64usize;
    let mut x: Vec<f64> = (0..n)
        .map(|_| rng.random_range(-300.0..300.0f32) as f64)
        .collect();
    // Exact fp16 ties, values that overflow fp16, subnormal fp16 values, and a negative zero.
    x[0] = 1.0 + 2f64.powi(-11);
    x[1] = 1.0 + 3.0 * 2f64.powi(-11);
    x[2] = 70000.0;
    x[3] = -65520.0;
    x[4] = 65519.0;
    x[5] = 3.0e-6;
    x[6] = -7.5e-8;
    x[7] = -0.0;
    x[8] = 2f64.powi(-25);
    x[9] = 2.5;
    x[10] = -3.5;
    x[11] = 2049.0;
    x[12] = 2051.0;
    let w16: Vec<f64> = (0..n)
        .map(|_| half::f16::from_f32(rng.random_range(-2.0..2.0f32)).to_f64())
        .collect();
    let x16: Vec<f64> = (0..n)
        .map(|_| half::f16::from_f32(rng.random_range(-30.0..30.0f32)).to_f64())
        .collect();
    // Integer casts of out-of-range floats are undefined in ONNX: `xs` stays in int8 range.
    let xs: Vec<f64> = (0..n)
        .map(|_| rng.random_range(-127.9..127.9f32) as f64)
        .collect();
    let mut net = Net::new(17);
    net.inits.push(tensor("w16", DataType::Float16, &[n], &w16));
    let to = |dt: DataType| ("to", dt as i64);
    net.nodes = vec![
        node("Cast", &["x"], &["h"], &[to(DataType::Float16)]),
        node("Cast", &["w16"], &["w32"], &[to(DataType::Float)]),
        node("Mul", &["x", "w32"], &["xw"], &[]),
        node("Cast", &["x16"], &["x16f"], &[to(DataType::Float)]),
        node("Mul", &["x16", "w16"], &["hm"], &[]),
        node("Add", &["hm", "x16"], &["ha"], &[]),
        node("Cast", &["xs"], &["i8"], &[to(DataType::Int8)]),
        node("Abs", &["xs"], &["xa"], &[]),
        node("Cast", &["xa"], &["u8"], &[to(DataType::Uint8)]),
        node("Cast", &["x"], &["i32"], &[to(DataType::Int32)]),
        node("Cast", &["x"], &["i64"], &[to(DataType::Int64)]),
        node("Cast", &["x"], &["b"], &[to(DataType::Bool)]),
        node("Cast", &["i64"], &["f_from_i"], &[to(DataType::Float)]),
        node("Cast", &["i8"], &["h_from_i"], &[to(DataType::Float16)]),
    ];
    net.inputs.push(vi("x", DataType::Float, &[n]));
    net.inputs.push(vi("x16", DataType::Float16, &[n]));
    net.inputs.push(vi("xs", DataType::Float, &[n]));
    let exact = [
        ("h", DataType::Float16),
        ("xw", DataType::Float),
        ("x16f", DataType::Float),
        ("i8", DataType::Int8),
        ("u8", DataType::Uint8),
        ("i32", DataType::Int32),
        ("i64", DataType::Int64),
        ("b", DataType::Bool),
        ("f_from_i", DataType::Float),
        ("h_from_i", DataType::Float16),
    ];
    for (name, dt) in exact {
        net.outputs.push(vi(name, dt, &[n]));
    }
    net.outputs.push(vi("ha", DataType::Float16, &[n]));
    let feeds = vec![
        ("x".to_string(), host(DataType::Float, &[n], &x)),
        ("x16".to_string(), host(DataType::Float16, &[n], &x16)),
        ("xs".to_string(), host(DataType::Float, &[n], &xs)),
    ];
    let what = "Cast/float16";
    let (expected, got) = run_both(what, &net, &feeds);
    for (name, _) in exact {
        let e = output(&expected, name, what);
        let g = output(&got, name, what);
        assert!(
            e.bit_identical(g),
            "{what}: output {name}: onnxruntime {:?}\nwgpu {:?}",
            e.to_f64(),
            g.to_f64()
        );
    }
    let e = output(&expected, "ha", what).to_f64().expect("fp16");
    let g = output(&got, "ha", what).to_f64().expect("fp16");
    let f16 = |v: f64| half::f16::from_f64(v).to_f64();
    let mut steps = 0;
    for i in 0..n {
        let onnx = f16(f16(x16[i] * w16[i]) + x16[i]);
        assert_eq!(
            g[i], onnx,
            "{what}: ha[{i}] = fp16(fp16({} · {}) + {})",
            x16[i], w16[i], x16[i]
        );
        // Apart by at most the rounding of the intermediate product and of the sum.
        let ulp = |v: f64| v.abs().max(6.1e-5) * 2f64.powi(-10);
        let bound = ulp(x16[i] * w16[i]) / 2.0 + ulp(e[i]);
        assert!(
            (e[i] - g[i]).abs() <= bound,
            "{what}: ha[{i}]: onnxruntime {}, wgpu {} (further apart than the two roundings)",
            e[i],
            g[i]
        );
        steps += (e[i] != g[i]) as usize;
    }
    println!(
        "{what}: {} outputs bit-identical to onnxruntime; fp16 chain exact to ONNX semantics, \
         {steps}/{n} elements differ from onnxruntime's f32 chain (within its roundings)",
        exact.len()
    );
}

// ---------------------------------------------------------------------------------------
// A real model in QDQ form

/// PP-OCR's text-orientation classifier with BatchNorm folded and every Conv rewritten by
/// the mixed-precision pass's rewrite to QDQ int8 (uint8 activations calibrated on two
/// pages, int8 per-channel weights, int32 bias), and its classifier head to int4
/// MatMulNBits when the rewrite offers it: the quantized model runs on both runtimes.
#[test]
fn ppocr_cls_quantized_qdq_matches_onnxruntime() {
    let worst = quantized_ppocr("ppocr/cls", None, Some(1e-2));
    println!("quantized ppocr/cls worst max relative error vs onnxruntime: {worst:.3e}");
}

/// PP-OCR det (bound to 1x3x320x320: 640x640 takes minutes on lavapipe), quantized as cls
/// above. Its output is a per-pixel text probability after a sigmoid, and 62 quantized
/// Convs in series make single pixels sensitive to ±1 flips of Q roundings at .5 (from the
/// runtimes' different Conv summation orders): measured, onnxruntime moves by up to 0.72
/// (mean 7.8e-3) when the page moves by one ulp. The bound is that sensitivity, measured in
/// the same run: wgpu may not differ from onnxruntime more (max and mean |a − b|) than
/// onnxruntime differs from itself on the nudged page; and the cosine must stay ≥ 0.999.
#[test]
fn ppocr_det_quantized_qdq_matches_onnxruntime() {
    let worst = quantized_ppocr("ppocr/det", Some(vec![1, 3, 320, 320]), None);
    println!("quantized ppocr/det worst max relative error vs onnxruntime: {worst:.3e}");
}

/// (mean |a − b|, elements differing by more than 1e-3, max |a − b|) of two outputs.
fn spread(a: &HostTensor, b: &HostTensor) -> (f64, usize, f64) {
    let (a, b) = (a.to_f64().expect("numeric"), b.to_f64().expect("numeric"));
    let d: Vec<f64> = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).collect();
    let mean = d.iter().sum::<f64>() / d.len().max(1) as f64;
    (
        mean,
        d.iter().filter(|&&x| x > 1e-3).count(),
        d.iter().copied().fold(0.0, f64::max),
    )
}

/// Quantizes PP-OCR model `name` (input bound to `dims` if given) as described above, runs
/// it on both runtimes, asserts the max relative error is within `tol` (or, without one,
/// the max and mean |a − b| within onnxruntime's own under a one-ulp nudge of the input)
/// and the cosine at least 0.999, and returns the max relative error.
fn quantized_ppocr(name: &str, dims: Option<Vec<i64>>, tol: Option<f64>) -> f64 {
    use optimize::data::Sample;
    use optimize::passes::fold_batchnorm::fold_batchnorm;
    use optimize::passes::precision::calibrate::{calibrate, CalibMethod};
    use optimize::passes::precision::candidates::candidates;
    use optimize::passes::precision::rewrite::apply;
    use optimize::passes::precision::{Assignment, Precision};

    let mut m = common::ppocr_models()
        .into_iter()
        .find(|m| m.name == name)
        .expect("PP-OCR model");
    if let Some(d) = dims {
        m.bindings.insert("x".into(), d);
    }
    let dims = m.bindings["x"].clone();
    let (h, w) = (dims[2] as usize, dims[3] as usize);
    let mut model =
        optimize::onnx_io::load_model(&m.path).unwrap_or_else(|e| panic!("{}: {e}", m.name));
    optimize::shape::infer(&mut model, &m.bindings).expect("shapes");
    let folded = fold_batchnorm(&mut model).expect("fold BatchNorm");
    optimize::shape::infer(&mut model, &m.bindings).expect("shapes after folding");
    let cands = candidates(&model);
    let mut assignment = Assignment::new();
    for c in &cands {
        let want = if c.op == "Conv" {
            Precision::Int8
        } else {
            Precision::Int4
        };
        if c.bytes_at(want).is_some() {
            assignment.insert(c.key.clone(), want);
        }
    }
    let int8 = assignment
        .values()
        .filter(|p| **p == Precision::Int8)
        .count();
    let int4 = assignment
        .values()
        .filter(|p| **p == Precision::Int4)
        .count();
    assert!(
        int8 >= 20,
        "only {int8} Convs offered int8 of {} candidates",
        cands.len()
    );
    let tensors: Vec<String> = cands
        .iter()
        .filter(|c| assignment.get(&c.key) == Some(&Precision::Int8))
        .flat_map(|c| c.activation_inputs.iter().chain(&c.outputs).cloned())
        .collect();
    let samples: Vec<Sample> = (0..2)
        .map(|k| Sample {
            id: format!("page_{k}"),
            values: vec![("x".to_string(), common::text_page(h, w, 5 + k * 7))],
        })
        .collect();
    let cal = calibrate(&model, &samples, &tensors, CalibMethod::MinMax).expect("calibration");
    let stats = apply(&mut model, &assignment, &cal.ranges).expect("rewrite");
    let qdq = model
        .graph
        .nodes()
        .filter(|(_, n)| n.op_type == "QuantizeLinear" || n.op_type == "DequantizeLinear")
        .count();
    assert!(qdq >= 3 * int8, "{qdq} Q/DQ nodes for {int8} int8 Convs");
    let bytes = optimize::onnx_io::export::to_bytes(&model, &Default::default()).expect("export");
    let feed = vec![("x".to_string(), common::text_page(h, w, 0))];
    let rt = OrtRuntime::get().expect("onnxruntime must load: run scripts/setup.sh");
    let mut ort = rt
        .session_from_bytes(&bytes, name)
        .unwrap_or_else(|e| panic!("{name}: onnxruntime on the quantized model: {e}"));
    let expected = ort
        .run(&feed)
        .unwrap_or_else(|e| panic!("{name}: onnxruntime on the quantized model: {e}"));
    // The model's own sensitivity to f32 rounding: onnxruntime on the page with every pixel
    // moved by one ulp, a change of the size of a different summation order. Q roundings
    // that straddle .5 then flip as they do between the two runtimes.
    let nudged: Vec<f32> = feed[0]
        .1
        .as_f32()
        .expect("f32 page")
        .iter()
        .map(|&v| f32::from_bits(v.to_bits() + 1))
        .collect();
    let nudged = vec![(
        "x".to_string(),
        HostTensor::from_f32(feed[0].1.shape.clone(), &nudged),
    )];
    let noise = ort.run(&nudged).expect("onnxruntime on the nudged page");
    let mut reloaded =
        optimize::onnx_io::model_from_bytes(&bytes, Path::new(name)).expect("reload");
    optimize::shape::infer(&mut reloaded, &m.bindings).expect("shapes of the quantized model");
    let mut s = WgpuSession::new(&reloaded, None)
        .unwrap_or_else(|e| panic!("{name}: wgpu cannot open the quantized model: {e}"));
    let got = s
        .run(&feed)
        .unwrap_or_else(|e| panic!("{name}: wgpu cannot run the quantized model: {e}"));
    let mut worst = 0.0f64;
    for (out, e) in &expected {
        let g = output(&got, out, name);
        let metrics = optimize::data::compare(e, g).expect("same shapes");
        let (mean_abs, above, max_abs) = spread(e, g);
        let n = output(&noise, out, name);
        let (noise_mean, noise_above, noise_max) = spread(e, n);
        println!(
            "{name}: output {out}: wgpu vs onnxruntime: mean |a-b| {mean_abs:.3e}, max {max_abs:.3e}, \
             {above} of {} elements differ by more than 1e-3; onnxruntime vs itself on the page \
             nudged by one ulp: mean {noise_mean:.3e}, max {noise_max:.3e}, {noise_above} elements \
             above 1e-3",
            e.element_count()
        );
        let r = match tol {
            Some(tol) => assert_close(&format!("quantized {name}: {out}"), e, g, tol),
            None => {
                assert!(
                    max_abs <= noise_max && mean_abs <= noise_mean,
                    "quantized {name}: {out}: wgpu differs from onnxruntime by max {max_abs:.3e}, \
                     mean {mean_abs:.3e}, more than onnxruntime from itself on a nudged page \
                     (max {noise_max:.3e}, mean {noise_mean:.3e})"
                );
                assert_close(&format!("quantized {name}: {out}"), e, g, f64::INFINITY)
            }
        };
        println!(
            "{name} {dims:?}, {folded} BatchNorms folded, {int8} Convs int8 QDQ, {int4} ops int4, \
             {qdq} Q/DQ nodes, {} nodes rewritten: output {out} {}: wgpu vs onnxruntime max rel \
             err {r:.3e} (|a-b|/max(1,|a|)), max_abs_err {:.3e}, cosine {:.6} on {}",
            stats.nodes.len(),
            e.type_string(),
            metrics.max_abs_err,
            metrics.cosine,
            s.device_description()
        );
        assert!(
            metrics.cosine >= 0.999,
            "quantized {name}: {out}: cosine {:.6} below 0.999",
            metrics.cosine
        );
        worst = worst.max(r);
    }
    worst
}
