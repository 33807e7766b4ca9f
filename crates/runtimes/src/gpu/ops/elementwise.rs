//! Elementwise ops: unary activations, Cast, broadcasting binary ops, variadic ops, Where.

use super::{attr_f, attr_i, f};
use crate::gpu::exec::Exec;
use crate::gpu::host::{broadcast_strides, is_float_class};
use crate::gpu::kernels::wty;
use optimize_ir::error::Result;
use optimize_ir::ir::DataType;
use std::sync::Arc;

fn unary_expr(op: &str, float: bool) -> Option<&'static str> {
    Some(match (op, float) {
        ("Relu", true) => "max(v, 0.0)",
        ("Relu", false) => "max(v, 0)",
        ("Sigmoid", true) => "1.0 / (1.0 + exp(-v))",
        ("HardSigmoid", true) => "clamp(al * v + be, 0.0, 1.0)",
        ("HardSwish", true) => "v * clamp(v / 6.0 + 0.5, 0.0, 1.0)",
        ("Tanh", true) => "tanh(clamp(v, -15.0, 15.0))",
        ("Exp", true) => "exp(v)",
        ("Log", true) => "log(v)",
        ("Sqrt", true) => "sqrt(v)",
        ("Abs", _) => "abs(v)",
        ("Neg", _) => "-v",
        ("Reciprocal", true) => "1.0 / v",
        ("Floor", true) => "floor(v)",
        ("Ceil", true) => "ceil(v)",
        ("Round", true) => "round(v)",
        ("Erf", true) => "erf_approx(v)",
        ("Elu", true) => "select(al * (exp(v) - 1.0), v, v >= 0.0)",
        ("Selu", true) => "be * select(al * (exp(v) - 1.0), v, v > 0.0)",
        ("LeakyRelu", true) => "select(al * v, v, v >= 0.0)",
        ("ThresholdedRelu", true) => "select(0.0, v, v > al)",
        ("Softplus", true) => "select(log(1.0 + exp(v)), v, v > 30.0)",
        ("Softsign", true) => "v / (1.0 + abs(v))",
        ("Sign", _) => "sign(v)",
        ("Shrink", true) => "select(select(0.0, v + be, v < -al), v - be, v > al)",
        ("Clip", true) => "clamp(v, al, be)",
        ("Clip", false) => "clamp(v, bitcast<i32>(p[1]), bitcast<i32>(p[2]))",
        ("Not", false) => "1 - v",
        ("Sin", true) => "sin(v)",
        ("Cos", true) => "cos(v)",
        ("Gelu", true) => "0.5 * v * (1.0 + erf_approx(v * 0.70710678118654752))",
        ("Mish", true) => "v * tanh(clamp(select(log(1.0 + exp(v)), v, v > 30.0), -15.0, 15.0))",
        ("Identity" | "Dropout", _) => "v",
        ("Scale", true) => "v * al",
        _ => return None,
    })
}

/// Records y = EXPR(x) over `n` elements.
#[allow(clippy::too_many_arguments)]
pub fn unary_raw(
    ex: &mut Exec,
    expr: &str,
    ti: &str,
    to: &str,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    n: usize,
    al: u32,
    be: u32,
) -> Result<()> {
    ex.dispatch(
        "unary",
        &[("EXPR", expr), ("TI", ti), ("TO", to)],
        &[n as u32, al, be],
        &[x, y],
        n,
    )
}

fn cast_expr(from: DataType, to: DataType) -> &'static str {
    let ff = is_float_class(from);
    match (ff, is_float_class(to), to) {
        (true, true, DataType::Float16) => "to_f16(v)",
        (true, true, DataType::Bfloat16) => "to_bf16(v)",
        (true, true, _) => "v",
        (false, true, DataType::Float16) => "to_f16(f32(v))",
        (false, true, DataType::Bfloat16) => "to_bf16(f32(v))",
        (false, true, _) => "f32(v)",
        (true, false, DataType::Bool) => "select(0, 1, v != 0.0)",
        (true, false, _) => "i32(trunc(v))",
        (false, false, DataType::Bool) => "select(0, 1, v != 0)",
        (false, false, DataType::Uint8) => "v & 255",
        (false, false, DataType::Int8) => "(v << 24u) >> 24u",
        (false, false, _) => "v",
    }
}

fn binary_expr(op: &str, float: bool, fmod: bool) -> Option<&'static str> {
    Some(match (op, float) {
        ("Add" | "Sum", _) => "a + b",
        ("Sub", _) => "a - b",
        ("Mul", _) => "a * b",
        ("Div", true) => "a / b",
        ("Div", false) => "select(a / b, 0, b == 0)",
        ("Max", _) => "max(a, b)",
        ("Min", _) => "min(a, b)",
        ("PRelu", true) => "select(a * b, a, a >= 0.0)",
        ("Equal", _) => "select(0, 1, a == b)",
        ("Less", _) => "select(0, 1, a < b)",
        ("Greater", _) => "select(0, 1, a > b)",
        ("LessOrEqual", _) => "select(0, 1, a <= b)",
        ("GreaterOrEqual", _) => "select(0, 1, a >= b)",
        ("And", false) => "a & b",
        ("Or", false) => "a | b",
        ("Xor", false) => "a ^ b",
        ("Mod", true) => "a - b * trunc(a / b)",
        ("Mod", false) if fmod => "a % b",
        ("Mod", false) => "select(a % b + b, a % b, (a % b == 0) || ((a % b < 0) == (b < 0)))",
        _ => return None,
    })
}

/// Records y = EXPR(a, b) with broadcasting of shapes `sa`, `sb` to `out`.
#[allow(clippy::too_many_arguments)]
pub fn binary_raw(
    ex: &mut Exec,
    expr: &str,
    types: (&str, &str, &str),
    a: (&wgpu::Buffer, &[usize]),
    b: (&wgpu::Buffer, &[usize]),
    y: &wgpu::Buffer,
    out: &[usize],
) -> Result<()> {
    if out.len() > 8 {
        return Err(ex.err("rank above 8 is not supported"));
    }
    let n: usize = out.iter().product();
    let mut p = vec![0u32; 26];
    p[0] = n as u32;
    p[1] = out.len() as u32;
    let st_a = broadcast_strides(a.1, out);
    let st_b = broadcast_strides(b.1, out);
    for d in 0..out.len() {
        p[2 + d] = out[d] as u32;
        p[10 + d] = st_a[d] as u32;
        p[18 + d] = st_b[d] as u32;
    }
    ex.dispatch(
        "binary",
        &[
            ("EXPR", expr),
            ("TA", types.0),
            ("TB", types.1),
            ("TO", types.2),
        ],
        &p,
        &[a.0, b.0, y],
        n,
    )
}

pub fn run(ex: &mut Exec, op: &str) -> Result<bool> {
    let n = ex.node;
    match op {
        "Cast" | "CastLike" => {
            let (from, to) = (ex.in_info(0)?.dtype, ex.out_info(0)?.dtype);
            let count = ex.out_info(0)?.count();
            let (x, y) = (ex.buf(0)?, ex.out(0)?);
            unary_raw(
                ex,
                cast_expr(from, to),
                wty(from),
                wty(to),
                &x,
                &y,
                count,
                0,
                0,
            )?;
        }
        "Where" => {
            let out = ex.out_info(0)?.shape.clone();
            if out.len() > 8 {
                return Err(ex.err("rank above 8 is not supported"));
            }
            let shapes: Vec<Vec<usize>> = (0..3)
                .map(|i| ex.in_info(i).map(|t| t.shape.clone()))
                .collect::<Result<_>>()?;
            let count: usize = out.iter().product();
            let mut p = vec![0u32; 34];
            p[0] = count as u32;
            p[1] = out.len() as u32;
            for (k, s) in shapes.iter().enumerate() {
                let st = broadcast_strides(s, &out);
                for d in 0..out.len() {
                    p[10 + 8 * k + d] = st[d] as u32;
                }
            }
            for (d, &v) in out.iter().enumerate() {
                p[2 + d] = v as u32;
            }
            let (c, a, b, y) = (ex.buf(0)?, ex.buf(1)?, ex.buf(2)?, ex.out(0)?);
            ex.dispatch("where", &[], &p, &[&c, &a, &b, &y], count)?;
        }
        "Sum" | "Mean" | "Max" | "Min" if ex.n_in() != 2 => variadic(ex, op)?,
        _ if unary_expr(op, true).is_some() || op == "Not" || op == "Relu" => {
            let dt = ex.in_info(0)?.dtype;
            let float = is_float_class(dt);
            let expr = unary_expr(op, float)
                .ok_or_else(|| ex.err(format!("not supported for element type {dt}")))?;
            let opset = ex.plan.opset;
            let (al, be): (u32, u32) = match op {
                "HardSigmoid" => (f(attr_f(n, "alpha", 0.2)), f(attr_f(n, "beta", 0.5))),
                "Elu" => (f(attr_f(n, "alpha", 1.0)), 0),
                "Selu" => (
                    f(attr_f(n, "alpha", 1.673_263_2)),
                    f(attr_f(n, "gamma", 1.050_701)),
                ),
                "LeakyRelu" => (f(attr_f(n, "alpha", 0.01)), 0),
                "ThresholdedRelu" => (f(attr_f(n, "alpha", 1.0)), 0),
                "Shrink" => (f(attr_f(n, "lambd", 0.5)), f(attr_f(n, "bias", 0.0))),
                "Clip" if opset < 11 => {
                    (f(attr_f(n, "min", f32::MIN)), f(attr_f(n, "max", f32::MAX)))
                }
                "Clip" => {
                    let bound = |ex: &Exec, i: usize, dflt: f64| -> Result<f64> {
                        if !ex.has_in(i) {
                            return Ok(dflt);
                        }
                        ex.host(i)
                            .and_then(|v| v.data.first().copied())
                            .ok_or_else(|| ex.err(format!("bound {i} must be a constant")))
                    };
                    if float {
                        (
                            f(bound(ex, 1, f32::MIN as f64)? as f32),
                            f(bound(ex, 2, f32::MAX as f64)? as f32),
                        )
                    } else {
                        (
                            (bound(ex, 1, i32::MIN as f64)? as i32) as u32,
                            (bound(ex, 2, i32::MAX as f64)? as i32) as u32,
                        )
                    }
                }
                _ => (0, 0),
            };
            let count = ex.out_info(0)?.count();
            let t = wty(dt);
            let (x, y) = (ex.buf(0)?, ex.out(0)?);
            unary_raw(ex, expr, t, t, &x, &y, count, al, be)?;
            if op == "Dropout" && ex.has_out(1) {
                let m = ex.out(1)?;
                let cnt = ex.out_info(1)?.count();
                ex.dispatch("fill", &[], &[cnt as u32, 1], &[&m], cnt)?;
            }
        }
        _ if op != "Pow"
            && binary_expr(op, true, false)
                .or(binary_expr(op, false, false))
                .is_none() =>
        {
            return Ok(false)
        }
        _ => {
            let (ta, tb) = (ex.in_info(0)?.dtype, ex.in_info(1)?.dtype);
            let float = is_float_class(ta);
            let fmod = attr_i(n, "fmod", 0) != 0;
            let expr = if op == "Pow" {
                match (float, is_float_class(tb)) {
                    (true, true) => "pow_f(a, b)",
                    (true, false) => "pow_f(a, f32(b))",
                    (false, true) => "i32(pow_f(f32(a), b))",
                    (false, false) => "i32(pow_f(f32(a), f32(b)))",
                }
            } else {
                match binary_expr(op, float, fmod) {
                    Some(e) => e,
                    None => return Ok(false),
                }
            };
            let to = ex.out_info(0)?.dtype;
            let (sa, sb) = (ex.in_info(0)?.shape.clone(), ex.in_info(1)?.shape.clone());
            let out = ex.out_info(0)?.shape.clone();
            let (a, b, y) = (ex.buf(0)?, ex.buf(1)?, ex.out(0)?);
            binary_raw(
                ex,
                expr,
                (wty(ta), wty(tb), wty(to)),
                (&a, &sa),
                (&b, &sb),
                &y,
                &out,
            )?;
        }
    }
    Ok(true)
}

/// Sum/Mean/Max/Min over any number of inputs: a chain of binary ops.
fn variadic(ex: &mut Exec, op: &str) -> Result<()> {
    let dt = ex.in_info(0)?.dtype;
    let float = is_float_class(dt);
    let t = wty(dt);
    let out = ex.out_info(0)?.shape.clone();
    let count: usize = out.iter().product();
    let expr = binary_expr(if op == "Mean" { "Sum" } else { op }, float, false)
        .ok_or_else(|| ex.err("unsupported"))?;
    let y = ex.out(0)?;
    let k = ex.n_in();
    if k == 1 {
        let x = ex.buf(0)?;
        let s = ex.in_info(0)?.shape.clone();
        let one = ex.dummy();
        binary_raw(ex, "a", (t, t, t), (&x, &s), (&one, &[]), &y, &out)?;
    } else {
        let max = ex.rt.gpu.max_binding_bytes();
        let mut acc: Option<(Arc<wgpu::Buffer>, Vec<usize>)> = None;
        let mut temps = Vec::new();
        for i in 0..k {
            let x = ex.buf(i)?;
            let s = ex.in_info(i)?.shape.clone();
            match acc.take() {
                None => acc = Some((x, s)),
                Some((a, sa)) => {
                    let dst = if i + 1 == k && op != "Mean" {
                        y.clone()
                    } else {
                        let b = ex.rt.pool.take(&ex.rt.gpu.device, count as u64 * 4, max);
                        temps.push(b.clone());
                        b
                    };
                    binary_raw(ex, expr, (t, t, t), (&a, &sa), (&x, &s), &dst, &out)?;
                    acc = Some((dst, out.clone()));
                }
            }
        }
        if op == "Mean" {
            let (a, _) = acc.ok_or_else(|| ex.err("no inputs"))?;
            unary_raw(ex, "v * al", t, t, &a, &y, count, f(1.0 / k as f32), 0)?;
        }
        for b in temps {
            ex.rt.pool.give(b);
        }
    }
    Ok(())
}
