//! Resource limits for untrusted models, checked before anything is allocated.
//!
//! A model file is untrusted input: a 100-byte file can declare a tensor of 2^40 elements,
//! a dimension product that overflows `u64`, a node with a million inputs, or subgraphs
//! nested thousands deep. [`check_model_proto`] walks the parsed `ModelProto` (before
//! external data is read and before the IR is built) and [`check_inferred`] walks the types
//! shape inference produced (after `--input-shape` bindings): every declared size is
//! computed with checked arithmetic and compared with the memory limit (`--max-memory`,
//! default [`DEFAULT_MAX_MEMORY`]). Each violation is one [`Error::input`] naming the tensor
//! and the limit (exit code 2).

use crate::error::{Error, Result};
use crate::ir::types::static_dims;
use crate::ir::{DataType, Model, ValueType};
use onnx_protobuf::{AttributeProto, GraphProto, ModelProto, TensorProto};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Default for `--max-memory`: 8 GiB.
pub const DEFAULT_MAX_MEMORY: u64 = 8 << 30;
/// Deepest nesting of subgraphs (If/Loop/Scan bodies inside bodies) accepted.
pub const MAX_SUBGRAPH_DEPTH: usize = 24;
/// Most inputs, or outputs, one node may have.
pub const MAX_NODE_IO: usize = 10_000;
/// Most dimensions one tensor may have.
pub const MAX_RANK: usize = 64;

static MAX_MEMORY: AtomicU64 = AtomicU64::new(DEFAULT_MAX_MEMORY);

/// The memory limit in bytes: the largest size any one tensor, or all constant tensors
/// together, may declare.
pub fn max_memory() -> u64 {
    MAX_MEMORY.load(Ordering::Relaxed)
}

/// Sets the process-wide memory limit (the CLI's `--max-memory`).
pub fn set_max_memory(bytes: u64) {
    MAX_MEMORY.store(bytes, Ordering::Relaxed);
}

/// Formats a byte count as `8 GiB`, `512 MiB`, `1.5 KiB` or `100 bytes`.
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (u, s) in UNITS {
        if b >= s {
            return if b.is_multiple_of(s) {
                format!("{} {u}", b / s)
            } else {
                format!("{:.1} {u}", b as f64 / s as f64)
            };
        }
    }
    format!("{b} bytes")
}

/// This machine's memory: RAM plus swap, from `/proc/meminfo` (`None` when unreadable).
pub fn machine_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some(
        kib("MemTotal:")?
            .saturating_add(kib("SwapTotal:").unwrap_or(0))
            .saturating_mul(1024),
    )
}

/// Parses `--max-memory`: a size ([`crate::byte_size::ByteSize`]) no larger than this machine's memory (or
/// the default, on a smaller machine): a limit beyond what the machine holds protects
/// nothing, since a model that size could not be loaded anyway.
pub fn parse_max_memory(s: &str) -> std::result::Result<u64, String> {
    let bytes = crate::byte_size::parse_size(s)?;
    if let Some(machine) = machine_memory() {
        let cap = machine.max(DEFAULT_MAX_MEMORY);
        if bytes > cap {
            return Err(format!(
                "'{s}' is beyond this machine's memory ({}); the limit must be at most that",
                fmt_bytes(cap)
            ));
        }
    }
    Ok(bytes)
}

/// Element count of `dims`: an error for a negative dimension or an overflowing product.
pub fn checked_elements(dims: &[i64]) -> std::result::Result<u64, String> {
    if dims.len() > MAX_RANK {
        return Err(format!("has {} dimensions (limit {MAX_RANK})", dims.len()));
    }
    let mut n: u64 = 1;
    for &d in dims {
        if d < 0 {
            return Err(format!("has a negative dimension {d} in {dims:?}"));
        }
        n = n.checked_mul(d as u64).ok_or_else(|| {
            format!("declares dimensions {dims:?} whose product overflows 64 bits")
        })?;
    }
    Ok(n)
}

/// Bytes `n` elements of `dt` take densely; `None` on overflow (strings count 0 here).
pub fn checked_bytes(dt: DataType, n: u64) -> Option<u64> {
    n.checked_mul(dt.bits() as u64).map(|b| b.div_ceil(8))
}

fn over_limit(what: &str, dt: DataType, dims: &[i64], n: u64, bytes: u64, limit: u64) -> String {
    format!(
        "{what} declares {dt}{dims:?} = {n} elements, {} (over the memory limit of {}; raise it with --max-memory)",
        fmt_bytes(bytes),
        fmt_bytes(limit)
    )
}

struct Walk<'a> {
    path: &'a Path,
    limit: u64,
    /// Bytes declared by all constant tensors so far.
    total: u64,
}

impl Walk<'_> {
    fn err(&self, msg: String) -> Error {
        Error::input(self.path, msg)
    }

    /// Checks one TensorProto (initializer, Constant value, attribute tensor): dims,
    /// declared size against the limit, and that its stored data matches its declaration.
    fn tensor(&mut self, t: &TensorProto, what: &str) -> Result<()> {
        let n = checked_elements(&t.dims).map_err(|m| self.err(format!("{what} {m}")))?;
        let Some(dt) = DataType::from_onnx(t.data_type) else {
            return Err(self.err(format!("{what} has unknown data type {}", t.data_type)));
        };
        let bytes = if dt == DataType::String {
            let b: u64 = t.string_data.iter().map(|s| s.len() as u64).sum();
            b.max(n)
        } else {
            checked_bytes(dt, n).ok_or_else(|| {
                self.err(format!(
                    "{what} declares {dt}{:?} whose size in bytes overflows 64 bits",
                    t.dims
                ))
            })?
        };
        if bytes > self.limit {
            return Err(self.err(over_limit(what, dt, &t.dims, n, bytes, self.limit)));
        }
        self.total = self.total.saturating_add(bytes);
        if self.total > self.limit {
            return Err(self.err(format!(
                "constant tensors declare more than the memory limit of {} in all (at {what}; raise it with --max-memory)",
                fmt_bytes(self.limit)
            )));
        }
        self.data_matches(t, dt, n, bytes, what)
    }

    /// The stored values must be of the declared type and count (external data is checked
    /// when it is read).
    fn data_matches(
        &self,
        t: &TensorProto,
        dt: DataType,
        n: u64,
        bytes: u64,
        what: &str,
    ) -> Result<()> {
        if crate::ir::tensor::is_external(t) {
            return Ok(());
        }
        let found: &[(&str, usize)] = &[
            ("raw_data", t.raw_data.len()),
            ("float_data", t.float_data.len()),
            ("int32_data", t.int32_data.len()),
            ("string_data", t.string_data.len()),
            ("int64_data", t.int64_data.len()),
            ("double_data", t.double_data.len()),
            ("uint64_data", t.uint64_data.len()),
        ];
        use DataType::*;
        let expected_field = match dt {
            Float | Complex64 => "float_data",
            Double | Complex128 => "double_data",
            Int64 => "int64_data",
            Uint32 | Uint64 => "uint64_data",
            String => "string_data",
            _ => "int32_data",
        };
        for &(field, len) in found {
            if len == 0 || field == expected_field || (field == "raw_data" && dt != String) {
                continue;
            }
            return Err(self.err(format!(
                "{what} is declared {dt} but holds {field} ({len} values): wrong data for its type"
            )));
        }
        // The typed field must hold exactly as many entries as the dims declare: complex
        // numbers take two, 4-bit types pack two elements per int32_data entry.
        let typed = found
            .iter()
            .find(|(f, _)| *f == expected_field)
            .map_or(0, |&(_, len)| len as u64);
        if typed > 0 {
            let want = match dt {
                Complex64 | Complex128 => n.saturating_mul(2),
                Uint4 | Int4 | Float4E2M1 => n.div_ceil(2),
                _ => n,
            };
            if typed != want {
                return Err(self.err(format!(
                    "{what} declares {dt}{:?} ({want} {expected_field} entries) but holds {typed}",
                    t.dims
                )));
            }
        }
        let holds_any = found.iter().any(|&(_, len)| len > 0);
        if n > 0 && !holds_any {
            return Err(self.err(format!(
                "{what} declares {dt}{:?} ({n} elements) but holds no data",
                t.dims
            )));
        }
        if !t.raw_data.is_empty() && t.raw_data.len() as u64 != bytes {
            return Err(self.err(format!(
                "{what} declares {dt}{:?} ({bytes} bytes) but its raw_data holds {} bytes",
                t.dims,
                t.raw_data.len()
            )));
        }
        Ok(())
    }

    fn graph(&mut self, g: &GraphProto, depth: usize) -> Result<()> {
        if depth > MAX_SUBGRAPH_DEPTH {
            let at = if g.name.is_empty() {
                String::new()
            } else {
                format!(" (at graph '{}')", g.name)
            };
            return Err(self.err(format!(
                "subgraphs are nested more than {MAX_SUBGRAPH_DEPTH} deep{at}"
            )));
        }
        for t in &g.initializer {
            self.tensor(t, &format!("initializer '{}'", t.name))?;
        }
        for s in &g.sparse_initializer {
            if let Some(v) = s.values.as_ref() {
                self.tensor(v, &format!("sparse initializer '{}'", v.name))?;
            }
            if let Some(i) = s.indices.as_ref() {
                self.tensor(i, &format!("sparse initializer indices '{}'", i.name))?;
            }
            let name = s.values.as_ref().map(|v| v.name.as_str()).unwrap_or("");
            checked_elements(&s.dims)
                .map_err(|m| self.err(format!("sparse initializer '{name}' {m}")))?;
        }
        for n in &g.node {
            let label = if n.name.is_empty() {
                format!(
                    "node <unnamed, output '{}'> ({})",
                    n.output.first().map(|s| s.as_str()).unwrap_or(""),
                    n.op_type
                )
            } else {
                format!("node '{}' ({})", n.name, n.op_type)
            };
            if n.input.len() > MAX_NODE_IO {
                return Err(self.err(format!(
                    "{label} has {} inputs (limit {MAX_NODE_IO})",
                    n.input.len()
                )));
            }
            if n.output.len() > MAX_NODE_IO {
                return Err(self.err(format!(
                    "{label} has {} outputs (limit {MAX_NODE_IO})",
                    n.output.len()
                )));
            }
            for a in &n.attribute {
                self.attribute(a, &label, depth)?;
            }
        }
        Ok(())
    }

    fn attribute(&mut self, a: &AttributeProto, label: &str, depth: usize) -> Result<()> {
        let what = format!("{label}, attribute '{}'", a.name);
        if let Some(t) = a.t.as_ref() {
            self.tensor(t, &format!("tensor of {what}"))?;
        }
        for t in &a.tensors {
            self.tensor(t, &format!("tensor of {what}"))?;
        }
        if let Some(s) = a.sparse_tensor.as_ref() {
            if let Some(v) = s.values.as_ref() {
                self.tensor(v, &format!("sparse tensor of {what}"))?;
            }
        }
        for g in a.g.as_ref().into_iter().chain(a.graphs.iter()) {
            self.graph(g, depth + 1)?;
        }
        Ok(())
    }
}

/// Checks a parsed model against the limits before it is converted: every constant tensor
/// (initializers, Constant and other attribute tensors, in subgraphs too) has non-negative
/// dimensions whose product and byte size do not overflow and fit the memory limit, all of
/// them together fit it too, data that matches the declared type; subgraph nesting is at
/// most [`MAX_SUBGRAPH_DEPTH`]; nodes have at most [`MAX_NODE_IO`] inputs and outputs.
pub fn check_model_proto(m: &ModelProto, path: &Path) -> Result<()> {
    let mut w = Walk {
        path,
        limit: max_memory(),
        total: 0,
    };
    if let Some(g) = m.graph.as_ref() {
        w.graph(g, 0)?;
    }
    for f in &m.functions {
        for n in &f.node {
            for a in &n.attribute {
                w.attribute(a, &format!("function '{}', node '{}'", f.name, n.name), 0)?;
            }
        }
    }
    Ok(())
}

/// Checks every statically known tensor type of the main graph (graph inputs after
/// `--input-shape` bindings, declared value_info, shape-inferred outputs) against the
/// memory limit, so that nothing later allocates a tensor of that size (validation inputs,
/// constant folding).
pub fn check_inferred(model: &Model, path: &Path) -> Result<()> {
    check_operand_types(model, path)?;
    let limit = max_memory();
    let g = &model.graph;
    let names = g
        .inputs
        .iter()
        .chain(g.outputs.iter())
        .chain(g.nodes().flat_map(|(_, n)| n.outputs.iter()));
    for name in names {
        let Some(ValueType::Tensor { elem, shape }) = g.value_type(name) else {
            continue;
        };
        let Some(dims) = static_dims(shape) else {
            continue;
        };
        let n = checked_elements(&dims)
            .map_err(|m| Error::input(path, format!("tensor '{name}' {m}")))?;
        let bytes = match checked_bytes(*elem, n) {
            Some(b) => b.max(if *elem == DataType::String { n } else { 0 }),
            None => {
                return Err(Error::input(
                    path,
                    format!("tensor '{name}' of type {elem}{dims:?} has a size in bytes that overflows 64 bits"),
                ))
            }
        };
        if bytes > limit {
            return Err(Error::input(
                path,
                over_limit(&format!("tensor '{name}'"), *elem, &dims, n, bytes, limit),
            ));
        }
    }
    Ok(())
}

/// Ops whose listed inputs must all have one element type (ONNX type constraint `T`),
/// and which compute on numbers (no strings).
const SAME_NUMERIC: &[(&str, &[usize])] = &[
    ("Add", &[0, 1]),
    ("Sub", &[0, 1]),
    ("Mul", &[0, 1]),
    ("Div", &[0, 1]),
    ("MatMul", &[0, 1]),
    ("Gemm", &[0, 1, 2]),
    ("Conv", &[0, 1, 2]),
    ("ConvTranspose", &[0, 1, 2]),
    ("BatchNormalization", &[0]),
    ("Max", &[]),
    ("Min", &[]),
    ("Sum", &[]),
    ("Mean", &[]),
    ("Relu", &[0]),
    ("Sigmoid", &[0]),
    ("Tanh", &[0]),
    ("Exp", &[0]),
    ("Log", &[0]),
    ("Sqrt", &[0]),
    ("Neg", &[0]),
    ("Abs", &[0]),
    ("Softmax", &[0]),
    ("LeakyRelu", &[0]),
    ("MaxPool", &[0]),
    ("AveragePool", &[0]),
    ("GlobalAveragePool", &[0]),
    ("ReduceMean", &[0]),
    ("ReduceSum", &[0]),
];

/// Checks the inferred element types of the operands of common arithmetic ops: a string
/// (or bool) tensor where numbers are expected, or operands of different types, are
/// refused with the node, the tensor and the types named.
fn check_operand_types(model: &Model, path: &Path) -> Result<()> {
    let g = &model.graph;
    for (_, n) in g.nodes() {
        if !crate::ir::canonical_domain(&n.domain).is_empty() {
            continue;
        }
        let Some((_, idx)) = SAME_NUMERIC.iter().find(|(op, _)| *op == n.op_type) else {
            continue;
        };
        let slots: Vec<usize> = if idx.is_empty() {
            (0..n.inputs.len()).collect()
        } else {
            idx.to_vec()
        };
        let mut first: Option<(&str, DataType)> = None;
        for i in slots {
            let Some(name) = n.inputs.get(i).filter(|s| !s.is_empty()) else {
                continue;
            };
            let Some(elem) = g.value_type(name).and_then(|t| t.elem()) else {
                continue;
            };
            let label = if n.name.is_empty() {
                format!("node <unnamed> ({})", n.op_type)
            } else {
                format!("node '{}' ({})", n.name, n.op_type)
            };
            if matches!(elem, DataType::String | DataType::Bool) {
                return Err(Error::input(
                    path,
                    format!(
                        "{label}: input '{name}' is a {elem} tensor, but {} needs numbers",
                        n.op_type
                    ),
                ));
            }
            match first {
                None => first = Some((name, elem)),
                Some((fname, felem)) if felem != elem => {
                    return Err(Error::input(
                        path,
                        format!(
                            "{label}: inputs '{fname}' ({felem}) and '{name}' ({elem}) must have the same type"
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// Nesting depth of protobuf messages the parser accepts (rust-protobuf's default).
pub const PROTOBUF_RECURSION_LIMIT: u32 = 100;

/// The error for a file protobuf cannot parse; messages nested past the parser's recursion
/// limit (deeply nested subgraphs or types) get a specific explanation.
pub fn parse_error(path: &Path, e: protobuf::Error) -> Error {
    let text = e.to_string();
    if text.contains("New limit must not be greater") || text.contains("Truncated message") {
        // A length prefix that claims more bytes than remain: the file was cut short.
        Error::input(
            path,
            "not a valid ONNX model: the file is truncated (a message claims more bytes than the file holds)",
        )
    } else if text.contains("recursion limit") {
        Error::input(
            path,
            format!(
                "not a valid ONNX model: messages are nested more than {PROTOBUF_RECURSION_LIMIT} levels deep (subgraphs or types nested too deeply; at most {MAX_SUBGRAPH_DEPTH} levels of subgraphs are accepted)"
            ),
        )
    } else {
        Error::input(
            path,
            format!("not a valid ONNX model (protobuf parse failed: {text})"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_format() {
        assert_eq!(fmt_bytes(8 << 30), "8 GiB");
        assert_eq!(fmt_bytes(1536), "1.5 KiB");
        assert_eq!(fmt_bytes(12), "12 bytes");
    }

    #[test]
    fn element_counts_are_checked() {
        assert_eq!(checked_elements(&[]), Ok(1));
        assert_eq!(checked_elements(&[2, 3, 4]), Ok(24));
        assert_eq!(checked_elements(&[0, i64::MAX]), Ok(0));
        assert!(checked_elements(&[-1, 3]).unwrap_err().contains("negative"));
        assert!(checked_elements(&[1 << 40, 1 << 40])
            .unwrap_err()
            .contains("overflows"));
        assert!(checked_elements(&[1; 65]).is_err());
        assert_eq!(checked_bytes(DataType::Float, 1 << 62), None);
        assert_eq!(checked_bytes(DataType::Int4, 3), Some(2));
    }
}
