//! Reductions over any set of axes, ArgMax/ArgMin.

use super::{attr_i, attr_ints, axis};
use crate::gpu::exec::Exec;
use crate::gpu::host::strides;
use crate::gpu::kernels::wty;
use optimize_ir::error::Result;

pub fn run(ex: &mut Exec, op: &str) -> Result<bool> {
    let n = ex.node;
    let kind: u32 = match op {
        "ReduceSum" => 0,
        "ReduceMean" => 1,
        "ReduceMax" => 2,
        "ReduceMin" => 3,
        "ReduceProd" => 4,
        "ReduceL1" => 5,
        "ReduceL2" => 6,
        "ReduceSumSquare" => 7,
        "ReduceLogSum" => 8,
        "ReduceLogSumExp" => 9,
        "ArgMax" => 10,
        "ArgMin" => 11,
        _ => return Ok(false),
    };
    let s = ex.in_info(0)?.shape.clone();
    if s.len() > 8 {
        return Err(ex.err("rank above 8 is not supported"));
    }
    let arg = kind >= 10;
    let axes: Vec<i64> = if arg {
        vec![attr_i(n, "axis", 0)]
    } else if let Some(a) = attr_ints(n, "axes") {
        a
    } else if ex.has_in(1) {
        ex.host_ints(1)?
    } else {
        Vec::new()
    };
    let mut red: Vec<usize> = axes
        .iter()
        .map(|&a| axis(ex, a, s.len()))
        .collect::<Result<_>>()?;
    if red.is_empty() {
        if attr_i(n, "noop_with_empty_axes", 0) != 0 {
            let count = ex.out_info(0)?.count();
            let (x, y) = (ex.buf(0)?, ex.out(0)?);
            return super::elementwise::unary_raw(ex, "v", "f32", "f32", &x, &y, count, 0, 0)
                .map(|_| true);
        }
        red = (0..s.len()).collect();
    }
    red.sort_unstable();
    red.dedup();
    let st = strides(&s);
    let out_dims: Vec<usize> = s
        .iter()
        .enumerate()
        .map(|(i, &d)| if red.contains(&i) { 1 } else { d })
        .collect();
    let count: usize = out_dims.iter().product();
    let mut p = vec![0u32; 37];
    p[0] = count as u32;
    p[1] = s.len() as u32;
    p[2] = kind;
    for d in 0..s.len() {
        p[3 + d] = out_dims[d] as u32;
        p[11 + d] = st[d] as u32;
    }
    p[19] = red.len() as u32;
    for (k, &a) in red.iter().enumerate() {
        p[20 + k] = s[a] as u32;
        p[28 + k] = st[a] as u32;
    }
    p[36] = attr_i(n, "select_last_index", 0) as u32;
    let to = wty(ex.out_info(0)?.dtype);
    if ex.in_info(0)?.dtype != optimize_ir::ir::DataType::Float
        && !crate::gpu::host::is_float_class(ex.in_info(0)?.dtype)
    {
        return Err(ex.err("integer reductions are not supported"));
    }
    let (x, y) = (ex.buf(0)?, ex.out(0)?);
    ex.dispatch("reduce", &[("TO", to)], &p, &[&x, &y], count)?;
    Ok(true)
}
