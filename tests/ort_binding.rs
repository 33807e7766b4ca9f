//! The onnxruntime binding with outputs that share an input's buffer (issue 19, case 5): a
//! graph output that is a graph input, and graphs without nodes. Before the fix the inputs
//! were freed when `run` returned and such outputs read freed memory (max_abs_err from 1e13
//! to 1e32, different on every run). Each model runs 20 times through both the copying
//! and the buffer-keeping entry points; every output must equal the expected values exactly.

mod common;

use common::build::{float_input, node, serialize};
use onnx_protobuf::{GraphProto, TensorProto};
use optimize::data::HostTensor;
use optimize::runtime::OrtRuntime;

fn x_values(k: usize) -> Vec<f32> {
    (0..6)
        .map(|i| (i as f32 - 2.5) * (k as f32 + 1.25))
        .collect()
}

/// `x: float[2,3]` in; the outputs named by `outputs`, produced by `nodes`.
fn graph(
    nodes: Vec<onnx_protobuf::NodeProto>,
    outputs: &[&str],
    inits: Vec<TensorProto>,
) -> Vec<u8> {
    let mut g = GraphProto::new();
    g.name = "alias".into();
    g.node = nodes;
    g.input.push(float_input("x", &[2, 3]));
    for o in outputs {
        g.output.push(float_input(o, &[2, 3]));
    }
    g.initializer = inits;
    serialize(g, 8)
}

fn weights() -> TensorProto {
    let mut w = TensorProto::new();
    w.name = "w".into();
    w.data_type = 1;
    w.dims = vec![2, 3];
    w.raw_data = (0..6)
        .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
        .collect();
    w
}

fn relu(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| x.max(0.0)).collect()
}

/// (name, model, expected outputs for input values `x`).
type Case = (&'static str, Vec<u8>, fn(&[f32]) -> Vec<Vec<f32>>);

fn cases() -> Vec<Case> {
    vec![
        (
            "no nodes, output is the input",
            graph(vec![], &["x"], vec![]),
            |x| vec![x.to_vec()],
        ),
        (
            "the input listed twice as output, and a Relu",
            graph(vec![node("Relu", &["x"], &["y"])], &["x", "y", "x"], vec![]),
            |x| vec![x.to_vec(), relu(x), x.to_vec()],
        ),
        (
            "no nodes, outputs are the input and an initializer",
            graph(vec![], &["x", "w"], vec![weights()]),
            |x| vec![x.to_vec(), (0..6).map(|i| i as f32 * 0.5).collect()],
        ),
        (
            "an Identity of the input next to the input itself",
            graph(vec![node("Identity", &["x"], &["i"])], &["i", "x"], vec![]),
            |x| vec![x.to_vec(), x.to_vec()],
        ),
    ]
}

#[test]
fn outputs_aliasing_inputs_are_read_correctly_20_times() {
    let rt = OrtRuntime::get().expect("onnxruntime (run scripts/setup.sh)");
    for (name, bytes, expected) in cases() {
        let mut session = rt.session_from_bytes(&bytes, name).expect(name);
        for k in 0..20 {
            let xv = x_values(k);
            let input = vec![("x".to_string(), HostTensor::from_f32(vec![2, 3], &xv))];
            let want = expected(&xv);
            // Copies out while the inputs are alive.
            let got = session.run(&input).expect("run");
            assert_eq!(got.len(), want.len(), "{name}");
            for ((out, t), w) in got.iter().zip(&want) {
                assert_eq!(
                    t.as_f32().as_deref(),
                    Some(w.as_slice()),
                    "{name}: {out}, run {k}"
                );
            }
            // Keeps onnxruntime's values past `run`; allocations in between would reuse
            // freed input memory if the inputs were not kept alive with them.
            let kept = session.run_kept(&input).expect("run_kept");
            drop(input);
            let noise: Vec<Vec<f32>> = (0..64).map(|i| vec![i as f32; 6]).collect();
            for ((out, t), w) in kept.iter().zip(&want) {
                assert_eq!(
                    t.f32s(),
                    Some(w.as_slice()),
                    "{name}: {out} (kept), run {k}"
                );
            }
            drop(noise);
        }
    }
}
