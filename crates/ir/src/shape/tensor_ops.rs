//! Data-movement ops: Constant*, Shape, Reshape, Flatten, Transpose, (Un)Squeeze, Concat,
//! Split, Slice, Gather*, Scatter*, Expand, Tile, Pad, Range, Resize/Upsample,
//! DepthToSpace/SpaceToDepth, TopK, OneHot, NonZero, EyeLike.

use super::constant::{strides, Data, Value};
use super::elementwise::{broadcast, out0};
use super::{
    attr_floats, attr_i, attr_i_or, attr_ints, attr_s, dim_product, known_dims, node_err,
    norm_axes, norm_axis, Ctx, Res, MAX_CONST_ELEMS,
};
use crate::ir::{tensor, DataType, Dim, Node};

pub(crate) fn infer(cx: &mut Ctx, n: &Node, op: &str) -> Res<bool> {
    match op {
        "Constant" => constant(cx, n)?,
        "ConstantOfShape" => constant_of_shape(cx, n)?,
        "Shape" => shape(cx, n),
        "Size" => size(cx, n),
        "Reshape" => reshape(cx, n)?,
        "Flatten" => flatten(cx, n)?,
        "Transpose" => transpose(cx, n)?,
        "Squeeze" => squeeze(cx, n)?,
        "Unsqueeze" => unsqueeze(cx, n)?,
        "Concat" => concat(cx, n)?,
        "Split" => split(cx, n)?,
        "Slice" => slice(cx, n)?,
        "Gather" => gather(cx, n)?,
        "GatherElements" => {
            if let Some(e) = cx.elem(n, 0) {
                cx.set_tensor(n, 0, e, cx.dims(n, 1));
            }
        }
        "GatherND" => gather_nd(cx, n),
        "ScatterND" | "ScatterElements" | "Scatter" => cx.copy_type_only(n, 0, 0),
        "Expand" => expand(cx, n)?,
        "Tile" => tile(cx, n)?,
        "Pad" => pad(cx, n)?,
        "Range" => range(cx, n)?,
        "Resize" | "Upsample" => resize(cx, n, op)?,
        "DepthToSpace" | "SpaceToDepth" => depth_space(cx, n, op)?,
        "TopK" => topk(cx, n)?,
        "NonZero" => {
            let shape = cx
                .rank(n, 0)
                .map(|r| vec![Dim::Known(r as i64), Dim::Unknown]);
            cx.set_tensor(n, 0, DataType::Int64, shape);
        }
        "OneHot" => one_hot(cx, n)?,
        "EyeLike" => {
            let dt = attr_i(n, "dtype")
                .and_then(|d| DataType::from_onnx(d as i32))
                .or_else(|| cx.elem(n, 0));
            if let Some(dt) = dt {
                cx.set_tensor(n, 0, dt, cx.dims(n, 0));
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

impl Ctx {
    /// Output `i` gets input `j`'s type (not its value).
    pub(crate) fn copy_type_only(&mut self, n: &Node, j: usize, i: usize) {
        if let Some(t) = self.ty(n, j).cloned() {
            self.set(n, i, t);
        }
    }
}

fn elem_count(dims: &[i64]) -> u64 {
    tensor::element_count(dims)
}

/// Flat indices of the cartesian product of per-axis selections on a row-major tensor.
pub(crate) fn select(dims: &[i64], sel: &[Vec<usize>]) -> Vec<usize> {
    let st = strides(dims);
    let mut out = vec![0usize];
    for (axis, picks) in sel.iter().enumerate() {
        let mut next = Vec::with_capacity(out.len() * picks.len());
        for &base in &out {
            for &p in picks {
                next.push(base + p * st[axis]);
            }
        }
        out = next;
    }
    out
}

fn constant(cx: &mut Ctx, n: &Node) -> Res {
    let o = out0(n);
    for a in &n.attributes {
        match a.name.as_str() {
            "value" => {
                let Some(t) = a.t.as_ref() else {
                    return Err(node_err(n, o, "attribute 'value' holds no tensor"));
                };
                let Some(elem) = DataType::from_onnx(t.data_type) else {
                    return Err(node_err(n, o, format!("unknown data_type {}", t.data_type)));
                };
                match Value::from_tensor_proto(t) {
                    Some(v) => cx.set_val(n, 0, v),
                    None => cx.set(n, 0, crate::ir::ValueType::tensor(elem, &t.dims)),
                }
            }
            "value_float" => cx.set_val(
                n,
                0,
                Value::new(DataType::Float, vec![], Data::Float(vec![a.f as f64])),
            ),
            "value_floats" => {
                let v: Vec<f64> = a.floats.iter().map(|&x| x as f64).collect();
                cx.set_val(
                    n,
                    0,
                    Value::new(DataType::Float, vec![v.len() as i64], Data::Float(v)),
                )
            }
            "value_int" => cx.set_val(n, 0, Value::int_scalar(DataType::Int64, a.i)),
            "value_ints" => cx.set_val(n, 0, Value::ints_1d(DataType::Int64, known_dims(&a.ints))),
            "value_string" => cx.set(n, 0, crate::ir::ValueType::tensor(DataType::String, &[])),
            "value_strings" => cx.set(
                n,
                0,
                crate::ir::ValueType::tensor(DataType::String, &[a.strings.len() as i64]),
            ),
            "sparse_value" => {
                if let Some(sp) = a.sparse_tensor.as_ref() {
                    let elem = sp
                        .values
                        .as_ref()
                        .and_then(|v| DataType::from_onnx(v.data_type));
                    if let Some(elem) = elem {
                        cx.set(n, 0, crate::ir::ValueType::tensor(elem, &sp.dims));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn constant_of_shape(cx: &mut Ctx, n: &Node) -> Res {
    let (elem, fill) = match n.attr("value").and_then(|a| a.t.as_ref()) {
        Some(t) => {
            let elem = DataType::from_onnx(t.data_type).ok_or_else(|| {
                node_err(
                    n,
                    out0(n),
                    format!("unknown data_type {} in 'value'", t.data_type),
                )
            })?;
            (
                elem,
                Value::from_tensor_proto(t).and_then(|v| v.data.pick(&[0])),
            )
        }
        None => (DataType::Float, Some(Data::Float(vec![0.0]))),
    };
    let shape = match cx.sym_ints(n, 0) {
        Some(s) => Some(s),
        None => cx
            .dims(n, 0)
            .and_then(|d| d.first().and_then(|d| d.known()))
            .map(|r| vec![Dim::Unknown; r as usize]),
    };
    if let Some(s) = &shape {
        if s.iter().any(|d| d.known().is_some_and(|v| v < 0)) {
            return Err(node_err(
                n,
                out0(n),
                format!("negative dimension in shape {s:?}"),
            ));
        }
        if let (Some(st), Some(fill)) = (
            s.iter().map(|d| d.known()).collect::<Option<Vec<i64>>>(),
            &fill,
        ) {
            let count = elem_count(&st);
            if count <= MAX_CONST_ELEMS {
                let data = match fill {
                    Data::Int(v) => Data::Int(vec![v[0].clone(); count as usize]),
                    Data::Float(v) => Data::Float(vec![v[0]; count as usize]),
                };
                cx.set_val(n, 0, Value::new(elem, st, data));
                return Ok(());
            }
        }
    }
    cx.set_tensor(n, 0, elem, shape);
    Ok(())
}

fn shape(cx: &mut Ctx, n: &Node) {
    let Some(ty) = cx.ty(n, 0) else { return };
    let Some(dims) = ty.dims().map(|d| d.to_vec()) else {
        cx.set_tensor(n, 0, DataType::Int64, Some(vec![Dim::Unknown]));
        return;
    };
    let r = dims.len() as i64;
    let clampi = |x: i64| if x < 0 { (x + r).max(0) } else { x.min(r) };
    let start = clampi(attr_i_or(n, "start", 0));
    let end = clampi(attr_i(n, "end").unwrap_or(r));
    let sel: Vec<Dim> = if start < end {
        dims[start as usize..end as usize].to_vec()
    } else {
        vec![]
    };
    cx.set_val(n, 0, Value::ints_1d(DataType::Int64, sel));
}

fn size(cx: &mut Ctx, n: &Node) {
    match cx.dims(n, 0) {
        Some(d) => cx.set_val(
            n,
            0,
            Value::new(DataType::Int64, vec![], Data::Int(vec![dim_product(&d)])),
        ),
        None => cx.set_tensor(n, 0, DataType::Int64, Some(vec![])),
    }
}

/// Reshape's output shape from the input dims and the (possibly symbolic) target.
pub(crate) fn reshape_dims(
    input: Option<&[Dim]>,
    target: &[Dim],
    allowzero: bool,
) -> Result<Vec<Dim>, String> {
    let mut out = Vec::with_capacity(target.len());
    let mut minus_one = None;
    for (i, t) in target.iter().enumerate() {
        match t {
            Dim::Known(0) if !allowzero => match input {
                Some(inp) => match inp.get(i) {
                    Some(d) => out.push(d.clone()),
                    None => {
                        return Err(format!(
                            "shape {target:?} copies dimension {i}, but the input has rank {}",
                            inp.len()
                        ))
                    }
                },
                None => out.push(Dim::Unknown),
            },
            Dim::Known(-1) => {
                if minus_one.is_some() {
                    return Err(format!("shape {target:?} has more than one -1"));
                }
                minus_one = Some(i);
                out.push(Dim::Unknown);
            }
            Dim::Known(v) if *v < -1 => return Err(format!("invalid dimension {v} in shape")),
            d => out.push(d.clone()),
        }
    }
    let Some(inp) = input else { return Ok(out) };
    let (in_known, in_syms, in_unknown) = split_product(inp);
    if let Some(m) = minus_one {
        let others: Vec<Dim> = out
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != m)
            .map(|(_, d)| d.clone())
            .collect();
        let (out_known, out_syms, out_unknown) = split_product(&others);
        if in_unknown || out_unknown {
            return Ok(out);
        }
        let mut rest = in_syms.clone();
        for s in &out_syms {
            match rest.iter().position(|x| x == s) {
                Some(p) => {
                    rest.remove(p);
                }
                None => return Ok(out),
            }
        }
        if out_known == 0 {
            if in_known == 0 {
                out[m] = Dim::Known(0);
                return Ok(out);
            }
            return Err(format!(
                "cannot infer -1 in shape {target:?}: other dims multiply to 0"
            ));
        }
        if in_known % out_known != 0 {
            if rest.is_empty() {
                return Err(format!(
                    "input of {in_known} elements cannot be reshaped to {}",
                    crate::ir::types::fmt_shape(&Some(out.clone()))
                ));
            }
            return Ok(out);
        }
        let ratio = in_known / out_known;
        out[m] = match rest.len() {
            0 => Dim::Known(ratio),
            1 if ratio == 1 => Dim::Sym(rest[0].clone()),
            _ => Dim::Unknown,
        };
    } else if let (Some(a), Some(b)) = (static_of(inp), static_of(&out)) {
        if elem_count(&a) != elem_count(&b) {
            return Err(format!(
                "cannot reshape {a:?} ({} elements) to {b:?}",
                elem_count(&a)
            ));
        }
    }
    Ok(out)
}

/// (product of known dims, symbols, any unknown)
fn split_product(d: &[Dim]) -> (i64, Vec<String>, bool) {
    let mut k = 1i64;
    let mut syms = Vec::new();
    let mut unk = false;
    for x in d {
        match x {
            Dim::Known(v) => k = k.saturating_mul(*v),
            Dim::Sym(s) => syms.push(s.clone()),
            Dim::Unknown => unk = true,
        }
    }
    (k, syms, unk)
}

fn static_of(d: &[Dim]) -> Option<Vec<i64>> {
    d.iter().map(|x| x.known()).collect()
}

fn reshape(cx: &mut Ctx, n: &Node) -> Res {
    let Some(elem) = cx.elem(n, 0) else {
        return Ok(());
    };
    let input = cx.dims(n, 0);
    let target = if cx.opset < 5 {
        attr_ints(n, "shape").map(|v| known_dims(&v))
    } else {
        cx.sym_ints(n, 1)
    };
    let allowzero = attr_i_or(n, "allowzero", 0) != 0;
    let Some(target) = target else {
        let rank = cx
            .dims(n, 1)
            .and_then(|d| d.first().and_then(|x| x.known()));
        cx.set_tensor(n, 0, elem, rank.map(|r| vec![Dim::Unknown; r as usize]));
        return Ok(());
    };
    let out =
        reshape_dims(input.as_deref(), &target, allowzero).map_err(|e| node_err(n, out0(n), e))?;
    if let (Some(v), Some(st)) = (cx.val(n, 0), static_of(&out)) {
        let v = Value::new(elem, st, v.data.clone());
        cx.set_val(n, 0, v);
    } else {
        cx.set_tensor(n, 0, elem, Some(out));
    }
    Ok(())
}

fn flatten(cx: &mut Ctx, n: &Node) -> Res {
    let Some(elem) = cx.elem(n, 0) else {
        return Ok(());
    };
    let Some(d) = cx.dims(n, 0) else {
        cx.set_tensor(n, 0, elem, Some(vec![Dim::Unknown, Dim::Unknown]));
        return Ok(());
    };
    let r = d.len() as i64;
    let axis = attr_i_or(n, "axis", 1);
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a > r {
        return Err(node_err(
            n,
            out0(n),
            format!("axis {axis} is out of range for rank {r}"),
        ));
    }
    let a = a as usize;
    cx.set_tensor(
        n,
        0,
        elem,
        Some(vec![dim_product(&d[..a]), dim_product(&d[a..])]),
    );
    Ok(())
}

fn transpose(cx: &mut Ctx, n: &Node) -> Res {
    let Some(elem) = cx.elem(n, 0) else {
        return Ok(());
    };
    let Some(d) = cx.dims(n, 0) else {
        let shape = attr_ints(n, "perm").map(|p| vec![Dim::Unknown; p.len()]);
        cx.set_tensor(n, 0, elem, shape);
        return Ok(());
    };
    let perm = attr_ints(n, "perm").unwrap_or_else(|| (0..d.len() as i64).rev().collect());
    if perm.len() != d.len() {
        return Err(node_err(
            n,
            out0(n),
            format!("perm {perm:?} does not match rank {}", d.len()),
        ));
    }
    let p = norm_axes(n, out0(n), &perm, d.len())?;
    let out: Vec<Dim> = p.iter().map(|&i| d[i].clone()).collect();
    if let Some(v) = cx.val(n, 0) {
        let st = strides(&v.dims);
        let od: Vec<i64> = p.iter().map(|&i| v.dims[i]).collect();
        let total = elem_count(&od) as usize;
        let mut idx = Vec::with_capacity(total);
        let mut pos = vec![0i64; od.len()];
        for _ in 0..total {
            idx.push(
                pos.iter()
                    .enumerate()
                    .map(|(k, &x)| x as usize * st[p[k]])
                    .sum(),
            );
            for k in (0..od.len()).rev() {
                pos[k] += 1;
                if pos[k] < od[k] {
                    break;
                }
                pos[k] = 0;
            }
        }
        if let Some(data) = v.data.pick(&idx) {
            let v = Value::new(elem, od, data);
            cx.set_val(n, 0, v);
            return Ok(());
        }
    }
    cx.set_tensor(n, 0, elem, Some(out));
    Ok(())
}

/// Axes of Squeeze/Unsqueeze/Reduce*: attribute before `input_from` opset, input 1 after.
/// `Ok(None)` when the axes are an input whose value is unknown.
fn axes_of(cx: &Ctx, n: &Node, input_from: i64) -> Option<Option<Vec<i64>>> {
    if cx.opset < input_from {
        Some(attr_ints(n, "axes"))
    } else if cx.has_input(n, 1) {
        cx.ints(n, 1).map(Some)
    } else {
        Some(None)
    }
}

fn squeeze(cx: &mut Ctx, n: &Node) -> Res {
    let Some(elem) = cx.elem(n, 0) else {
        return Ok(());
    };
    let Some(d) = cx.dims(n, 0) else {
        cx.set_tensor(n, 0, elem, None);
        return Ok(());
    };
    let Some(axes) = axes_of(cx, n, 13) else {
        cx.set_tensor(n, 0, elem, None);
        return Ok(());
    };
    let out: Vec<Dim> = match axes {
        Some(axes) => {
            let ax = norm_axes(n, out0(n), &axes, d.len())?;
            for &a in &ax {
                if let Dim::Known(v) = d[a] {
                    if v != 1 {
                        return Err(node_err(
                            n,
                            out0(n),
                            format!("cannot squeeze axis {a} of size {v}"),
                        ));
                    }
                }
            }
            d.iter()
                .enumerate()
                .filter(|(i, _)| !ax.contains(i))
                .map(|(_, x)| x.clone())
                .collect()
        }
        None => {
            if d.iter().any(|x| x.known().is_none()) {
                cx.set_tensor(n, 0, elem, None);
                return Ok(());
            }
            d.iter().filter(|x| x.known() != Some(1)).cloned().collect()
        }
    };
    set_reshaped(cx, n, elem, out);
    Ok(())
}

/// Sets output 0 to `out`, carrying input 0's value along when known (pure reshapes).
fn set_reshaped(cx: &mut Ctx, n: &Node, elem: DataType, out: Vec<Dim>) {
    if let (Some(v), Some(st)) = (cx.val(n, 0), static_of(&out)) {
        let v = Value::new(elem, st, v.data.clone());
        cx.set_val(n, 0, v);
    } else {
        cx.set_tensor(n, 0, elem, Some(out));
    }
}

fn unsqueeze(cx: &mut Ctx, n: &Node) -> Res {
    let Some(elem) = cx.elem(n, 0) else {
        return Ok(());
    };
    let axes = match axes_of(cx, n, 13) {
        Some(Some(a)) => a,
        Some(None) => return Err(node_err(n, out0(n), "Unsqueeze needs axes")),
        None => {
            let rank = cx
                .dims(n, 1)
                .and_then(|d| d.first().and_then(|x| x.known()));
            let shape = cx
                .rank(n, 0)
                .zip(rank)
                .map(|(r, k)| vec![Dim::Unknown; r + k as usize]);
            cx.set_tensor(n, 0, elem, shape);
            return Ok(());
        }
    };
    let Some(d) = cx.dims(n, 0) else {
        cx.set_tensor(n, 0, elem, None);
        return Ok(());
    };
    let r = d.len() + axes.len();
    let ax = norm_axes(n, out0(n), &axes, r)?;
    let mut out = Vec::with_capacity(r);
    let mut it = d.into_iter();
    for i in 0..r {
        if ax.contains(&i) {
            out.push(Dim::Known(1));
        } else {
            out.push(it.next().unwrap_or(Dim::Unknown));
        }
    }
    set_reshaped(cx, n, elem, out);
    Ok(())
}

fn concat(cx: &mut Ctx, n: &Node) -> Res {
    let idx: Vec<usize> = (0..n.inputs.len())
        .filter(|&i| cx.has_input(n, i))
        .collect();
    let Some(elem) = idx.iter().find_map(|&i| cx.elem(n, i)) else {
        return Ok(());
    };
    let Some(axis) = attr_i(n, "axis").or(if cx.opset < 4 { Some(1) } else { None }) else {
        return Err(node_err(n, out0(n), "Concat needs attribute axis"));
    };
    let all: Option<Vec<Vec<Dim>>> = idx.iter().map(|&i| cx.dims(n, i)).collect();
    let Some(all) = all else {
        let rank = idx.iter().find_map(|&i| cx.rank(n, i));
        cx.set_tensor(n, 0, elem, rank.map(|r| vec![Dim::Unknown; r]));
        return Ok(());
    };
    let Some(first) = all.first() else {
        return Ok(());
    };
    let r = first.len();
    let a = norm_axis(n, out0(n), axis, r)?;
    let mut out = first.clone();
    let mut total = Some(0i64);
    let mut syms = Vec::new();
    for (k, d) in all.iter().enumerate() {
        if d.len() != r {
            return Err(node_err(
                n,
                &n.inputs[idx[k]],
                format!("rank {} differs from rank {r} of the first input", d.len()),
            ));
        }
        for i in 0..r {
            if i == a {
                match &d[i] {
                    Dim::Known(v) => total = total.map(|t| t + v),
                    Dim::Sym(s) => syms.push(s.clone()),
                    Dim::Unknown => total = None,
                }
            } else {
                out[i] = merge_dim(&out[i], &d[i])
                    .map_err(|e| node_err(n, &n.inputs[idx[k]], format!("axis {i}: {e}")))?;
            }
        }
    }
    out[a] = match (total, syms.len()) {
        (Some(t), 0) => Dim::Known(t),
        (Some(0), 1) => Dim::Sym(syms[0].clone()),
        _ => Dim::Unknown,
    };
    // Fold.
    let vals: Option<Vec<&Value>> = idx.iter().map(|&i| cx.val(n, i)).collect();
    if let (Some(vals), Some(st)) = (vals, static_of(&out)) {
        if elem_count(&st) <= MAX_CONST_ELEMS {
            let outer: usize = st[..a].iter().product::<i64>() as usize;
            let mut ints = Vec::new();
            let mut floats = Vec::new();
            let is_int = matches!(vals[0].data, Data::Int(_));
            for o in 0..outer {
                for v in &vals {
                    let chunk: usize = v.dims[a..].iter().product::<i64>() as usize;
                    match &v.data {
                        Data::Int(x) if is_int => {
                            ints.extend_from_slice(x.get(o * chunk..(o + 1) * chunk).unwrap_or(&[]))
                        }
                        d => {
                            for k in o * chunk..(o + 1) * chunk {
                                floats.push(d.f64_at(k).unwrap_or(f64::NAN));
                            }
                        }
                    }
                }
            }
            let data = if is_int {
                Data::Int(ints)
            } else {
                Data::Float(floats)
            };
            if data.len() as u64 == elem_count(&st) {
                cx.set_val(n, 0, Value::new(elem, st, data));
                return Ok(());
            }
        }
    }
    cx.set_tensor(n, 0, elem, Some(out));
    Ok(())
}

/// Two dims that must be equal: the more specific one, or an error when they differ.
pub(crate) fn merge_dim(a: &Dim, b: &Dim) -> Result<Dim, String> {
    Ok(match (a, b) {
        (Dim::Known(x), Dim::Known(y)) if x != y => {
            return Err(format!("sizes {x} and {y} differ"))
        }
        (Dim::Known(x), _) | (_, Dim::Known(x)) => Dim::Known(*x),
        (Dim::Sym(x), _) => Dim::Sym(x.clone()),
        (_, Dim::Sym(y)) => Dim::Sym(y.clone()),
        _ => Dim::Unknown,
    })
}

/// Sizes of Split's outputs along the axis, or `None` when unknown.
pub(crate) fn split_sizes(
    dim: &Dim,
    split: Option<&[i64]>,
    nout: usize,
    num_outputs: Option<i64>,
) -> Result<Vec<Dim>, String> {
    if let Some(s) = split {
        if s.len() != nout {
            return Err(format!(
                "split {s:?} has {} entries for {nout} outputs",
                s.len()
            ));
        }
        if let Dim::Known(d) = dim {
            if s.iter().sum::<i64>() != *d {
                return Err(format!("split {s:?} does not add up to dimension {d}"));
            }
        }
        return Ok(known_dims(s));
    }
    if let Some(k) = num_outputs {
        if k != nout as i64 {
            return Err(format!(
                "num_outputs is {k}, but the node has {nout} outputs"
            ));
        }
    }
    let parts = nout;
    if parts == 0 {
        return Err("Split with no outputs".into());
    }
    match dim {
        Dim::Known(d) => {
            let d = *d as usize;
            let chunk = d.div_ceil(parts);
            if !d.is_multiple_of(parts) && num_outputs.is_none() {
                return Err(format!(
                    "dimension {d} does not split evenly into {parts} outputs"
                ));
            }
            Ok((0..parts)
                .map(|i| Dim::Known(chunk.min(d.saturating_sub(i * chunk)) as i64))
                .collect())
        }
        _ => Ok(vec![Dim::Unknown; parts]),
    }
}

fn split(cx: &mut Ctx, n: &Node) -> Res {
    let Some(elem) = cx.elem(n, 0) else {
        return Ok(());
    };
    let nout = n.outputs.len();
    let Some(d) = cx.dims(n, 0) else {
        for i in 0..nout {
            cx.set_tensor(n, i, elem, None);
        }
        return Ok(());
    };
    let axis = norm_axis(n, out0(n), attr_i_or(n, "axis", 0), d.len())?;
    let split: Option<Vec<i64>> = if cx.has_input(n, 1) {
        match cx.ints(n, 1) {
            Some(s) => Some(s),
            None => {
                for i in 0..nout {
                    let mut o = d.clone();
                    o[axis] = Dim::Unknown;
                    cx.set_tensor(n, i, elem, Some(o));
                }
                return Ok(());
            }
        }
    } else {
        attr_ints(n, "split")
    };
    let sizes = split_sizes(&d[axis], split.as_deref(), nout, attr_i(n, "num_outputs"))
        .map_err(|e| node_err(n, out0(n), e))?;
    let mut offset = 0usize;
    for (i, s) in sizes.into_iter().enumerate() {
        let mut o = d.clone();
        o[axis] = s.clone();
        // Fold 1-D int splits (e.g. of Shape outputs).
        if let (Some(v), Some(k)) = (cx.val(n, 0), s.known()) {
            if v.dims.len() == 1 {
                let idx: Vec<usize> = (offset..offset + k as usize).collect();
                if let Some(data) = v.data.pick(&idx) {
                    let v = Value::new(elem, vec![k], data);
                    cx.set_val(n, i, v);
                    offset += k as usize;
                    continue;
                }
            }
        }
        offset += s.known().unwrap_or(0) as usize;
        cx.set_tensor(n, i, elem, Some(o));
    }
    Ok(())
}

/// Number of elements Slice takes from a dim of size `d` (numpy/ONNX clamping rules),
/// and the first index and step.
pub(crate) fn slice_range(d: i64, start: i64, end: i64, step: i64) -> Result<(i64, i64), String> {
    if step == 0 {
        return Err("slice step is 0".into());
    }
    let d128 = d as i128;
    let mut s = start as i128;
    let mut e = end as i128;
    if s < 0 {
        s += d128;
    }
    if e < 0 {
        e += d128;
    }
    let st = step as i128;
    let (s, len) = if st > 0 {
        let s = s.clamp(0, d128);
        let e = e.clamp(0, d128);
        (s, if e > s { (e - s + st - 1) / st } else { 0 })
    } else {
        let s = s.clamp(0, d128 - 1);
        let e = e.clamp(-1, d128 - 1);
        (
            s,
            if s > e {
                (s - e + (-st) - 1) / (-st)
            } else {
                0
            },
        )
    };
    Ok((s as i64, len as i64))
}

fn slice(cx: &mut Ctx, n: &Node) -> Res {
    let Some(elem) = cx.elem(n, 0) else {
        return Ok(());
    };
    let Some(d) = cx.dims(n, 0) else {
        cx.set_tensor(n, 0, elem, None);
        return Ok(());
    };
    let r = d.len();
    let (starts, ends, axes, steps) = if cx.opset < 10 {
        (
            attr_ints(n, "starts"),
            attr_ints(n, "ends"),
            attr_ints(n, "axes"),
            None,
        )
    } else {
        let axes = if cx.has_input(n, 3) {
            cx.ints(n, 3).map(Some)
        } else {
            Some(None)
        };
        let steps = if cx.has_input(n, 4) {
            cx.ints(n, 4).map(Some)
        } else {
            Some(None)
        };
        match (axes, steps) {
            (Some(a), Some(s)) => (cx.ints(n, 1), cx.ints(n, 2), a, s),
            _ => (None, None, None, None),
        }
    };
    let (Some(starts), Some(ends)) = (starts, ends) else {
        cx.set_tensor(n, 0, elem, Some(vec![Dim::Unknown; r]));
        return Ok(());
    };
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(node_err(
            n,
            out0(n),
            "starts, ends, axes and steps differ in length",
        ));
    }
    let ax = norm_axes(n, out0(n), &axes, r)?;
    let mut out = d.clone();
    let mut sel: Vec<Option<(i64, i64, i64)>> = vec![None; r];
    for (k, &a) in ax.iter().enumerate() {
        match &d[a] {
            Dim::Known(dim) => {
                let (s, len) = slice_range(*dim, starts[k], ends[k], steps[k])
                    .map_err(|e| node_err(n, out0(n), e))?;
                out[a] = Dim::Known(len);
                sel[a] = Some((s, len, steps[k]));
            }
            other => {
                // Full slices keep a symbolic dim.
                let full = steps[k] == 1 && starts[k] == 0 && ends[k] >= i32::MAX as i64;
                out[a] = if full { other.clone() } else { Dim::Unknown };
            }
        }
    }
    if let (Some(v), Some(st)) = (cx.val(n, 0), static_of(&out)) {
        if v.dims.len() == r {
            let picks: Vec<Vec<usize>> = (0..r)
                .map(|a| match sel[a] {
                    Some((s, len, step)) => (0..len).map(|i| (s + i * step) as usize).collect(),
                    None => (0..v.dims[a] as usize).collect(),
                })
                .collect();
            let idx = select(&v.dims, &picks);
            if let Some(data) = v.data.pick(&idx) {
                let v = Value::new(elem, st, data);
                cx.set_val(n, 0, v);
                return Ok(());
            }
        }
    }
    cx.set_tensor(n, 0, elem, Some(out));
    Ok(())
}

fn gather(cx: &mut Ctx, n: &Node) -> Res {
    let Some(elem) = cx.elem(n, 0) else {
        return Ok(());
    };
    let (Some(d), Some(id)) = (cx.dims(n, 0), cx.dims(n, 1)) else {
        let rank = cx
            .rank(n, 0)
            .zip(cx.rank(n, 1))
            .map(|(a, b)| vec![Dim::Unknown; (a + b).saturating_sub(1)]);
        cx.set_tensor(n, 0, elem, rank);
        return Ok(());
    };
    let a = norm_axis(n, out0(n), attr_i_or(n, "axis", 0), d.len())?;
    let mut out: Vec<Dim> = d[..a].to_vec();
    out.extend(id.iter().cloned());
    out.extend(d[a + 1..].iter().cloned());
    if let (Some(v), Some(ix), Some(st)) = (cx.val(n, 0), cx.ints(n, 1), static_of(&out)) {
        let dim = v.dims[a];
        let mut picks_axis = Vec::with_capacity(ix.len());
        for &i in &ix {
            let j = if i < 0 { i + dim } else { i };
            if j < 0 || j >= dim {
                return Err(node_err(
                    n,
                    &n.inputs[1],
                    format!("index {i} is out of range for dimension {dim}"),
                ));
            }
            picks_axis.push(j as usize);
        }
        let picks: Vec<Vec<usize>> = (0..v.dims.len())
            .map(|k| {
                if k == a {
                    picks_axis.clone()
                } else {
                    (0..v.dims[k] as usize).collect()
                }
            })
            .collect();
        let idx = select(&v.dims, &picks);
        if let Some(data) = v.data.pick(&idx) {
            let v = Value::new(elem, st, data);
            cx.set_val(n, 0, v);
            return Ok(());
        }
    }
    cx.set_tensor(n, 0, elem, Some(out));
    Ok(())
}

fn gather_nd(cx: &mut Ctx, n: &Node) {
    let Some(elem) = cx.elem(n, 0) else { return };
    let b = attr_i_or(n, "batch_dims", 0).max(0) as usize;
    let shape = match (cx.dims(n, 0), cx.dims(n, 1)) {
        (Some(d), Some(id)) => id.last().and_then(|x| x.known()).map(|k| {
            let mut o: Vec<Dim> = id[..id.len() - 1].to_vec();
            o.extend(d.iter().skip(b + k as usize).cloned());
            o
        }),
        _ => None,
    };
    cx.set_tensor(n, 0, elem, shape);
}

fn expand(cx: &mut Ctx, n: &Node) -> Res {
    let Some(elem) = cx.elem(n, 0) else {
        return Ok(());
    };
    let Some(target) = cx.sym_ints(n, 1) else {
        let len = cx
            .dims(n, 1)
            .and_then(|d| d.first().and_then(|x| x.known()));
        let shape = match (cx.dims(n, 0), len) {
            (Some(d), Some(l)) => {
                let u = vec![Dim::Unknown; l as usize];
                // A dim other than 1 in the input survives the broadcast.
                let mut out = broadcast(&[&d, &u]).map_err(|e| node_err(n, out0(n), e))?;
                let off = out.len() - d.len();
                for (i, x) in d.iter().enumerate() {
                    if x.known() == Some(1) {
                        out[off + i] = Dim::Unknown;
                    }
                }
                Some(out)
            }
            _ => None,
        };
        cx.set_tensor(n, 0, elem, shape);
        return Ok(());
    };
    let Some(d) = cx.dims(n, 0) else {
        cx.set_tensor(n, 0, elem, None);
        return Ok(());
    };
    let out = broadcast(&[&d, &target]).map_err(|e| node_err(n, out0(n), e))?;
    if let (Some(v), Some(st)) = (cx.val(n, 0), static_of(&out)) {
        if elem_count(&st) <= MAX_CONST_ELEMS {
            let idx = super::constant::broadcast_index(&v.dims, &st);
            if let Some(data) = v.data.pick(&idx) {
                let v = Value::new(elem, st, data);
                cx.set_val(n, 0, v);
                return Ok(());
            }
        }
    }
    cx.set_tensor(n, 0, elem, Some(out));
    Ok(())
}

fn tile(cx: &mut Ctx, n: &Node) -> Res {
    let Some(elem) = cx.elem(n, 0) else {
        return Ok(());
    };
    let Some(d) = cx.dims(n, 0) else {
        cx.set_tensor(n, 0, elem, None);
        return Ok(());
    };
    let Some(rep) = cx.ints(n, 1) else {
        cx.set_tensor(n, 0, elem, Some(vec![Dim::Unknown; d.len()]));
        return Ok(());
    };
    if rep.len() != d.len() {
        return Err(node_err(
            n,
            out0(n),
            format!("repeats {rep:?} do not match rank {}", d.len()),
        ));
    }
    let out = d
        .iter()
        .zip(&rep)
        .map(|(x, &k)| match x {
            Dim::Known(v) => Dim::Known(v.saturating_mul(k)),
            other if k == 1 => other.clone(),
            _ => Dim::Unknown,
        })
        .collect();
    cx.set_tensor(n, 0, elem, Some(out));
    Ok(())
}

fn pad(cx: &mut Ctx, n: &Node) -> Res {
    let Some(elem) = cx.elem(n, 0) else {
        return Ok(());
    };
    let Some(d) = cx.dims(n, 0) else {
        cx.set_tensor(n, 0, elem, None);
        return Ok(());
    };
    let r = d.len();
    let pads = if cx.opset < 11 {
        attr_ints(n, "pads").or_else(|| attr_ints(n, "paddings"))
    } else {
        cx.ints(n, 1)
    };
    let Some(pads) = pads else {
        cx.set_tensor(n, 0, elem, Some(vec![Dim::Unknown; r]));
        return Ok(());
    };
    let axes: Vec<usize> = if cx.opset >= 18 && cx.has_input(n, 3) {
        match cx.ints(n, 3) {
            Some(a) => norm_axes(n, out0(n), &a, r)?,
            None => {
                cx.set_tensor(n, 0, elem, Some(vec![Dim::Unknown; r]));
                return Ok(());
            }
        }
    } else {
        (0..r).collect()
    };
    if pads.len() != 2 * axes.len() {
        return Err(node_err(
            n,
            out0(n),
            format!("pads {pads:?} do not match {} axes", axes.len()),
        ));
    }
    let mut out = d.clone();
    let k = axes.len();
    for (i, &a) in axes.iter().enumerate() {
        let add = pads[i].saturating_add(pads[i + k]);
        out[a] = match &d[a] {
            Dim::Known(v) => {
                let x = v.saturating_add(add);
                if x < 0 {
                    return Err(node_err(
                        n,
                        out0(n),
                        format!("pads {pads:?} make axis {a} negative"),
                    ));
                }
                Dim::Known(x)
            }
            other if add == 0 => other.clone(),
            _ => Dim::Unknown,
        };
    }
    cx.set_tensor(n, 0, elem, Some(out));
    Ok(())
}

fn range(cx: &mut Ctx, n: &Node) -> Res {
    let Some(elem) = cx.elem(n, 0) else {
        return Ok(());
    };
    let (Some(s), Some(l), Some(dl)) = (cx.floats(n, 0), cx.floats(n, 1), cx.floats(n, 2)) else {
        cx.set_tensor(n, 0, elem, Some(vec![Dim::Unknown]));
        return Ok(());
    };
    let (Some(&s), Some(&l), Some(&dl)) = (s.first(), l.first(), dl.first()) else {
        return Err(node_err(
            n,
            out0(n),
            "Range needs scalar start, limit and delta",
        ));
    };
    if dl == 0.0 {
        return Err(node_err(n, out0(n), "Range delta is 0"));
    }
    let count = if elem.is_integer() {
        let (s, l, dl) = (s as i64, l as i64, dl as i64);
        let num = l - s;
        let q = num / dl;
        let q = if num % dl != 0 && ((num < 0) == (dl < 0)) {
            q + 1
        } else {
            q
        };
        q.max(0)
    } else if elem == DataType::Float {
        (((l as f32) - (s as f32)) / (dl as f32)).ceil().max(0.0) as i64
    } else {
        ((l - s) / dl).ceil().max(0.0) as i64
    };
    if count as u64 <= MAX_CONST_ELEMS {
        let data = if elem.is_integer() {
            Data::Int(
                (0..count)
                    .map(|i| Dim::Known(s as i64 + i * dl as i64))
                    .collect(),
            )
        } else {
            Data::Float((0..count).map(|i| s + i as f64 * dl).collect())
        };
        cx.set_val(n, 0, Value::new(elem, vec![count], data));
    } else {
        cx.set_tensor(n, 0, elem, Some(vec![Dim::Known(count)]));
    }
    Ok(())
}

/// Output size of Resize/Upsample from a scale, as onnxruntime computes it (f32).
pub(crate) fn scaled_dim(d: i64, scale: f32) -> i64 {
    (scale * d as f32) as i64
}

fn resize(cx: &mut Ctx, n: &Node, op: &str) -> Res {
    let Some(elem) = cx.elem(n, 0) else {
        return Ok(());
    };
    let Some(d) = cx.dims(n, 0) else {
        cx.set_tensor(n, 0, elem, None);
        return Ok(());
    };
    let r = d.len();
    let unknown = vec![Dim::Unknown; r];
    // (scales, sizes), each: None = absent, Some(None) = present but unknown.
    let nonempty = |cx: &Ctx, i: usize| -> Option<Option<Vec<f64>>> {
        if !cx.has_input(n, i) {
            return None;
        }
        if cx
            .dims(n, i)
            .is_some_and(|d| d.first() == Some(&Dim::Known(0)))
        {
            return None;
        }
        Some(cx.floats(n, i))
    };
    let (scales, sizes) = if op == "Upsample" {
        if cx.opset < 9 {
            (
                attr_floats(n, "scales").map(|v| Some(v.into_iter().map(|x| x as f64).collect())),
                None,
            )
        } else {
            (nonempty(cx, 1), None)
        }
    } else if cx.opset < 11 {
        (nonempty(cx, 1), None)
    } else {
        (nonempty(cx, 2), nonempty(cx, 3))
    };
    let axes: Vec<usize> = match attr_ints(n, "axes") {
        Some(a) if cx.opset >= 18 => norm_axes(n, out0(n), &a, r)?,
        _ => (0..r).collect(),
    };
    let mut out = d.clone();
    if let Some(sizes) = sizes {
        let Some(sizes) = sizes else {
            let mut o = d.clone();
            for &a in &axes {
                o[a] = Dim::Unknown;
            }
            cx.set_tensor(n, 0, elem, Some(o));
            return Ok(());
        };
        if sizes.len() != axes.len() {
            return Err(node_err(
                n,
                out0(n),
                format!("sizes {sizes:?} do not match {} axes", axes.len()),
            ));
        }
        let policy = attr_s(n, "keep_aspect_ratio_policy").unwrap_or("stretch");
        if policy == "stretch" || cx.opset < 18 {
            for (k, &a) in axes.iter().enumerate() {
                out[a] = Dim::Known(sizes[k] as i64);
            }
        } else {
            let mut scale: Option<f32> = None;
            for (k, &a) in axes.iter().enumerate() {
                let Some(v) = d[a].known() else {
                    cx.set_tensor(n, 0, elem, Some(unknown));
                    return Ok(());
                };
                let s = sizes[k] as f32 / v as f32;
                scale = Some(match (scale, policy) {
                    (None, _) => s,
                    (Some(x), "not_larger") => x.min(s),
                    (Some(x), _) => x.max(s),
                });
            }
            let scale = scale.unwrap_or(1.0);
            for &a in &axes {
                if let Some(v) = d[a].known() {
                    out[a] = Dim::Known((scale * v as f32).round() as i64);
                }
            }
        }
    } else if let Some(scales) = scales {
        let Some(scales) = scales else {
            cx.set_tensor(n, 0, elem, Some(unknown));
            return Ok(());
        };
        if scales.len() != axes.len() {
            return Err(node_err(
                n,
                out0(n),
                format!("scales {scales:?} do not match {} axes", axes.len()),
            ));
        }
        for (k, &a) in axes.iter().enumerate() {
            let s = scales[k] as f32;
            out[a] = match &d[a] {
                Dim::Known(v) => Dim::Known(scaled_dim(*v, s)),
                other if s == 1.0 => other.clone(),
                _ => Dim::Unknown,
            };
        }
    } else {
        return Err(node_err(n, out0(n), "Resize needs scales or sizes"));
    }
    cx.set_tensor(n, 0, elem, Some(out));
    Ok(())
}

fn depth_space(cx: &mut Ctx, n: &Node, op: &str) -> Res {
    let Some(elem) = cx.elem(n, 0) else {
        return Ok(());
    };
    let Some(d) = cx.dims(n, 0) else {
        cx.set_tensor(n, 0, elem, Some(vec![Dim::Unknown; 4]));
        return Ok(());
    };
    if d.len() != 4 {
        return Err(node_err(
            n,
            out0(n),
            format!("{op} needs a rank-4 input, got rank {}", d.len()),
        ));
    }
    let b = attr_i(n, "blocksize")
        .ok_or_else(|| node_err(n, out0(n), "missing attribute blocksize"))?;
    if b <= 0 {
        return Err(node_err(n, out0(n), format!("invalid blocksize {b}")));
    }
    let mul = |x: &Dim, k: i64| {
        x.known()
            .map(|v| Dim::Known(v.saturating_mul(k)))
            .unwrap_or(Dim::Unknown)
    };
    let div = |x: &Dim, k: i64| x.known().map(|v| Dim::Known(v / k)).unwrap_or(Dim::Unknown);
    let out = if op == "DepthToSpace" {
        vec![
            d[0].clone(),
            div(&d[1], b * b),
            mul(&d[2], b),
            mul(&d[3], b),
        ]
    } else {
        vec![
            d[0].clone(),
            mul(&d[1], b * b),
            div(&d[2], b),
            div(&d[3], b),
        ]
    };
    cx.set_tensor(n, 0, elem, Some(out));
    Ok(())
}

fn topk(cx: &mut Ctx, n: &Node) -> Res {
    let Some(elem) = cx.elem(n, 0) else {
        return Ok(());
    };
    let Some(d) = cx.dims(n, 0) else {
        cx.set_tensor(n, 0, elem, None);
        cx.set_tensor(n, 1, DataType::Int64, None);
        return Ok(());
    };
    let a = norm_axis(n, out0(n), attr_i_or(n, "axis", -1), d.len())?;
    let k = if cx.opset < 10 {
        attr_i(n, "k")
    } else {
        cx.ints(n, 1).and_then(|v| v.first().copied())
    };
    let mut out = d.clone();
    out[a] = match k {
        Some(k) => {
            if let Dim::Known(v) = d[a] {
                if k > v || k < 0 {
                    return Err(node_err(
                        n,
                        out0(n),
                        format!("k = {k} is out of range for axis size {v}"),
                    ));
                }
            }
            Dim::Known(k)
        }
        None => Dim::Unknown,
    };
    cx.set_tensor(n, 0, elem, Some(out.clone()));
    cx.set_tensor(n, 1, DataType::Int64, Some(out));
    Ok(())
}

fn one_hot(cx: &mut Ctx, n: &Node) -> Res {
    let Some(elem) = cx.elem(n, 2) else {
        return Ok(());
    };
    let Some(d) = cx.dims(n, 0) else {
        cx.set_tensor(n, 0, elem, None);
        return Ok(());
    };
    let r = d.len() + 1;
    let a = norm_axis(n, out0(n), attr_i_or(n, "axis", -1), r)?;
    let depth = cx
        .floats(n, 1)
        .and_then(|v| v.first().copied())
        .map(|x| Dim::Known(x as i64))
        .unwrap_or(Dim::Unknown);
    let mut out = d;
    out.insert(a, depth);
    cx.set_tensor(n, 0, elem, Some(out));
    Ok(())
}
