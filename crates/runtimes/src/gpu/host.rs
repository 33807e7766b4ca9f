//! Host-side values: constants (initializers, `Constant` nodes) and the shape subgraphs
//! that only depend on them and on static shapes (`Shape` → `Gather` → `Concat` → ...),
//! which the executor folds once per session instead of running them on the device.
//!
//! Values are kept as f64, which holds every f32 and every integer below 2^53 exactly.

use onnx_protobuf::TensorProto;
use optimize_ir::error::{Error, Result};
use optimize_ir::ir::attr::AttrExt;
use optimize_ir::ir::{tensor, DataType, Node};

/// A tensor known on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct HVal {
    pub dtype: DataType,
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// Largest folded result (elements) of an op other than Constant/ConstantOfShape.
pub const MAX_FOLD_ELEMS: usize = 1 << 16;

/// Largest folded Constant/ConstantOfShape (elements); larger ones are filled on the device.
pub const MAX_CONST_ELEMS: usize = 1 << 24;

impl HVal {
    pub fn new(dtype: DataType, shape: Vec<usize>, data: Vec<f64>) -> HVal {
        HVal { dtype, shape, data }
    }

    /// Decodes an initializer or a Constant's tensor, 4-bit integers included.
    pub fn from_proto(t: &TensorProto, name: &str) -> Result<HVal> {
        let dtype = DataType::from_onnx(t.data_type).ok_or_else(|| {
            Error::Runtime(format!(
                "wgpu: tensor '{name}' has unknown data type {}",
                t.data_type
            ))
        })?;
        let shape: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
        let n: usize = shape.iter().product();
        let data = match dtype {
            DataType::Int4 | DataType::Uint4 => {
                let signed = dtype == DataType::Int4;
                let nib = |b: u8, hi: bool| -> f64 {
                    let v = if hi { b >> 4 } else { b & 15 };
                    if signed && v >= 8 {
                        v as f64 - 16.0
                    } else {
                        v as f64
                    }
                };
                let bytes: Vec<u8> = if !t.raw_data.is_empty() {
                    t.raw_data.clone()
                } else {
                    t.int32_data.iter().map(|&x| x as u8).collect()
                };
                (0..n)
                    .map(|i| bytes.get(i / 2).map(|&b| nib(b, i % 2 == 1)))
                    .collect::<Option<Vec<f64>>>()
            }
            _ => tensor::to_f64(t),
        }
        .filter(|v| v.len() == n)
        .ok_or_else(|| {
            Error::Runtime(format!(
                "wgpu: cannot decode tensor '{name}' ({dtype}{shape:?})"
            ))
        })?;
        Ok(HVal { dtype, shape, data })
    }

    pub fn ints(&self) -> Vec<i64> {
        self.data.iter().map(|&x| x as i64).collect()
    }
}

/// True for the element types the device holds as f32 (all others are held as i32).
pub fn is_float_class(dt: DataType) -> bool {
    matches!(
        dt,
        DataType::Float | DataType::Float16 | DataType::Double | DataType::Bfloat16
    )
}

/// Row-major strides of a shape, in elements.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Strides of `shape` read as if broadcast to `out` (0 on broadcast dims), right-aligned.
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let st = strides(shape);
    let off = out.len() - shape.len().min(out.len());
    (0..out.len())
        .map(|i| {
            if i < off {
                0
            } else {
                let j = i - off;
                if shape[j] == 1 && out[i] != 1 {
                    0
                } else {
                    st[j]
                }
            }
        })
        .collect()
}

/// Per-axis (start, step) of a Slice over `shape` (opset 1 attributes or opset 10+ inputs).
pub fn slice_plan(
    shape: &[usize],
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<Vec<(i64, i64)>> {
    let rank = shape.len() as i64;
    let mut plan: Vec<(i64, i64)> = vec![(0, 1); shape.len()];
    for (k, (&s, &e)) in starts.iter().zip(ends).enumerate() {
        let a = axes.and_then(|a| a.get(k).copied()).unwrap_or(k as i64);
        let a = if a < 0 { a + rank } else { a };
        if a < 0 || a >= rank {
            return Err(Error::Runtime(format!("Slice axis {a} out of range")));
        }
        let dim = shape[a as usize] as i64;
        let step = steps.and_then(|s| s.get(k).copied()).unwrap_or(1);
        if step == 0 {
            return Err(Error::Runtime("Slice step 0".into()));
        }
        let _ = e;
        let mut start = if s < 0 { s.saturating_add(dim) } else { s };
        start = if step > 0 {
            start.clamp(0, dim)
        } else {
            start.clamp(-1, dim - 1)
        };
        plan[a as usize] = (start, step);
    }
    Ok(plan)
}

fn attr_int(n: &Node, name: &str) -> Option<i64> {
    n.attr(name).and_then(|a| a.as_int())
}

fn norm(axis: i64, rank: usize) -> usize {
    if axis < 0 {
        (axis + rank as i64).max(0) as usize
    } else {
        axis as usize
    }
}

/// Picks `out` elements of `src` by strided indexing: element at out coordinate c reads
/// `base + Σ c_i · strides_i`.
fn strided(src: &[f64], out: &[usize], base: i64, st: &[i64]) -> Option<Vec<f64>> {
    let n: usize = out.iter().product();
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let mut r = i;
        let mut o = base;
        for d in (0..out.len()).rev() {
            let c = r % out[d];
            r /= out[d];
            o += c as i64 * st[d];
        }
        v.push(*src.get(usize::try_from(o).ok()?)?);
    }
    Some(v)
}

/// Evaluates `n` on the host when it is a shape-style op over known inputs. `ins[i]` is the
/// known value of input i (None when absent or not known), `out_shapes`/`out_types` the
/// inferred outputs. Returns `None` when the node is not folded.
pub fn fold(
    n: &Node,
    ins: &[Option<&HVal>],
    in_shapes: &[Option<Vec<usize>>],
    out: &[(DataType, Vec<usize>)],
) -> Option<Vec<HVal>> {
    if !n.domain.is_empty() && n.domain != "ai.onnx" {
        return None;
    }
    let op = n.op_type.as_str();
    let (odt, oshape) = out.first()?.clone();
    let count: usize = oshape.iter().product();
    let all_known = n
        .inputs
        .iter()
        .zip(ins)
        .all(|(name, v)| name.is_empty() || v.is_some());
    let big_ok = matches!(op, "Constant" | "ConstantOfShape" | "Shape" | "Size");
    if (count > MAX_FOLD_ELEMS && !big_ok) || count > MAX_CONST_ELEMS {
        return None;
    }
    let mk = |data: Vec<f64>| Some(vec![HVal::new(odt, oshape.clone(), data)]);
    let x = ins.first().copied().flatten();
    match op {
        "Shape" => {
            let s = in_shapes.first()?.as_ref()?;
            let r = s.len();
            let start = norm(attr_int(n, "start").unwrap_or(0), r).min(r);
            let end = norm(attr_int(n, "end").unwrap_or(r as i64), r).min(r);
            mk(s[start..end.max(start)].iter().map(|&d| d as f64).collect())
        }
        "Size" => mk(vec![
            in_shapes.first()?.as_ref()?.iter().product::<usize>() as f64
        ]),
        _ if !all_known => None,
        "Constant" => {
            let a = n.attributes.first()?;
            match a.name.as_str() {
                "value" => HVal::from_proto(a.t.as_ref()?, "").ok().map(|v| vec![v]),
                "value_float" => mk(vec![a.f as f64]),
                "value_int" => mk(vec![a.i as f64]),
                "value_floats" => mk(a.floats.iter().map(|&f| f as f64).collect()),
                "value_ints" => mk(a.ints.iter().map(|&i| i as f64).collect()),
                _ => None,
            }
        }
        "ConstantOfShape" => {
            let v = match n.attr("value").and_then(|a| a.t.as_ref()) {
                Some(t) => *HVal::from_proto(t, "").ok()?.data.first()?,
                None => 0.0,
            };
            mk(vec![v; count])
        }
        "Identity" | "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => {
            let x = x?;
            (x.data.len() == count).then(|| vec![HVal::new(odt, oshape.clone(), x.data.clone())])
        }
        "Cast" => mk(fold_cast(x?, odt)),
        "Gather" => mk(fold_gather(n, x?, ins.get(1).copied().flatten()?, count)?),
        "Concat" => mk(fold_concat(n, ins, &oshape, count)?),
        "Slice" => mk(fold_slice(n, x?, ins, &oshape)?),
        "Add" | "Sub" | "Mul" | "Div" | "Equal" | "Less" | "Greater" | "Max" | "Min" => {
            let (a, b) = (x?, ins.get(1).copied().flatten()?);
            if ins.len() != 2 {
                return None;
            }
            mk(fold_binary(op, a, b, &oshape, odt)?)
        }
        "Range" => {
            let s = *x?.data.first()?;
            let d = *ins.get(2).copied().flatten()?.data.first()?;
            mk((0..count).map(|i| s + i as f64 * d).collect())
        }
        _ => None,
    }
}

/// Cast: each value rounded through the target type.
fn fold_cast(x: &HVal, odt: DataType) -> Vec<f64> {
    x.data
        .iter()
        .map(|&v| match odt {
            DataType::Float => v as f32 as f64,
            DataType::Float16 => half::f16::from_f64(v).to_f64(),
            DataType::Bool => (v != 0.0) as u8 as f64,
            DataType::Double => v,
            dt if dt.is_integer() => v.trunc(),
            _ => v,
        })
        .collect()
}

/// Gather of `x` along its axis by the indices `idx` (negative ones from the end); `None`
/// when an index is out of range.
fn fold_gather(n: &Node, x: &HVal, idx: &HVal, count: usize) -> Option<Vec<f64>> {
    let axis = norm(attr_int(n, "axis").unwrap_or(0), x.shape.len());
    let len = *x.shape.get(axis)?;
    let inner: usize = x.shape[axis + 1..].iter().product();
    let outer: usize = x.shape[..axis].iter().product();
    let mut data = Vec::with_capacity(count);
    for o in 0..outer {
        for &j in &idx.data {
            let j = if j < 0.0 {
                j as i64 + len as i64
            } else {
                j as i64
            };
            if j < 0 || j as usize >= len {
                return None;
            }
            let b = (o * len + j as usize) * inner;
            data.extend_from_slice(x.data.get(b..b + inner)?);
        }
    }
    Some(data)
}

/// Concat of the known inputs along the axis.
fn fold_concat(
    n: &Node,
    ins: &[Option<&HVal>],
    oshape: &[usize],
    count: usize,
) -> Option<Vec<f64>> {
    let axis = norm(attr_int(n, "axis")?, oshape.len());
    let outer: usize = oshape[..axis].iter().product();
    let parts: Vec<&HVal> = ins.iter().filter_map(|v| *v).collect();
    let mut data = Vec::with_capacity(count);
    for o in 0..outer {
        for p in &parts {
            let chunk: usize = p.shape[axis.min(p.shape.len())..].iter().product();
            data.extend_from_slice(p.data.get(o * chunk..(o + 1) * chunk)?);
        }
    }
    Some(data)
}

/// Slice of `x`: starts/ends/axes/steps from the inputs (opset 10+) or the attributes.
fn fold_slice(n: &Node, x: &HVal, ins: &[Option<&HVal>], oshape: &[usize]) -> Option<Vec<f64>> {
    let (starts, ends, axes, steps) = if ins.len() > 1 {
        (
            ins.get(1).copied().flatten()?.ints(),
            ins.get(2).copied().flatten()?.ints(),
            ins.get(3).copied().flatten().map(|v| v.ints()),
            ins.get(4).copied().flatten().map(|v| v.ints()),
        )
    } else {
        (
            n.attr("starts")?.as_ints()?.to_vec(),
            n.attr("ends")?.as_ints()?.to_vec(),
            n.attr("axes").and_then(|a| a.as_ints()).map(|a| a.to_vec()),
            None,
        )
    };
    let plan = slice_plan(&x.shape, &starts, &ends, axes.as_deref(), steps.as_deref()).ok()?;
    let st = strides(&x.shape);
    let base: i64 = plan.iter().zip(&st).map(|((s, _), &k)| s * k as i64).sum();
    let ss: Vec<i64> = plan
        .iter()
        .zip(&st)
        .map(|((_, step), &k)| step * k as i64)
        .collect();
    strided(&x.data, oshape, base, &ss)
}

/// A broadcasting binary op: integer division truncates (0 for a zero divisor), float
/// results round through f32 as the device computes them.
fn fold_binary(op: &str, a: &HVal, b: &HVal, oshape: &[usize], odt: DataType) -> Option<Vec<f64>> {
    let sa = broadcast_strides(&a.shape, oshape);
    let sb = broadcast_strides(&b.shape, oshape);
    let va = strided(
        &a.data,
        oshape,
        0,
        &sa.iter().map(|&s| s as i64).collect::<Vec<_>>(),
    )?;
    let vb = strided(
        &b.data,
        oshape,
        0,
        &sb.iter().map(|&s| s as i64).collect::<Vec<_>>(),
    )?;
    let int = !is_float_class(a.dtype);
    let data = va
        .iter()
        .zip(&vb)
        .map(|(&p, &q)| match op {
            "Add" => p + q,
            "Sub" => p - q,
            "Mul" => p * q,
            "Div" if int => {
                if q == 0.0 {
                    0.0
                } else {
                    (p / q).trunc()
                }
            }
            "Div" => ((p as f32) / (q as f32)) as f64,
            "Equal" => (p == q) as u8 as f64,
            "Less" => (p < q) as u8 as f64,
            "Greater" => (p > q) as u8 as f64,
            "Max" => p.max(q),
            _ => p.min(q),
        })
        .map(|v| {
            if int || odt == DataType::Bool {
                v
            } else {
                v as f32 as f64
            }
        })
        .collect();
    Some(data)
}
