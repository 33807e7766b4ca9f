//! Helpers over `TensorProto`: sizes, and decoding values for analyses.

use super::dtype::DataType;
use onnx_protobuf::{tensor_proto::DataLocation, TensorProto};

/// Product of dims (1 for a scalar); saturates instead of overflowing.
pub fn element_count(dims: &[i64]) -> u64 {
    dims.iter()
        .fold(1u64, |acc, &d| acc.saturating_mul(d.max(0) as u64))
}

/// Bytes the tensor's values take when stored densely (strings: their byte lengths).
pub fn storage_bytes(t: &TensorProto) -> u64 {
    match DataType::from_onnx(t.data_type) {
        Some(DataType::String) => t.string_data.iter().map(|s| s.len() as u64).sum(),
        Some(dt) => dt.storage_bytes(element_count(&t.dims)),
        None => 0,
    }
}

pub fn is_external(t: &TensorProto) -> bool {
    t.data_location.enum_value() == Ok(DataLocation::EXTERNAL)
}

/// Reads a tensor's values as f64, whichever field they are stored in.
/// Returns `None` for types that have no numeric meaning here (strings, complex, 4/8-bit floats).
pub fn to_f64(t: &TensorProto) -> Option<Vec<f64>> {
    let dt = DataType::from_onnx(t.data_type)?;
    let n = element_count(&t.dims) as usize;
    if !t.raw_data.is_empty() {
        return decode_raw(dt, &t.raw_data, n);
    }
    let v: Vec<f64> = match dt {
        DataType::Float => t.float_data.iter().map(|&x| x as f64).collect(),
        DataType::Double => t.double_data.clone(),
        DataType::Int64 => t.int64_data.iter().map(|&x| x as f64).collect(),
        DataType::Uint64 | DataType::Uint32 => t.uint64_data.iter().map(|&x| x as f64).collect(),
        DataType::Int32
        | DataType::Int16
        | DataType::Int8
        | DataType::Uint16
        | DataType::Uint8
        | DataType::Bool => t.int32_data.iter().map(|&x| x as f64).collect(),
        DataType::Float16 => t
            .int32_data
            .iter()
            .map(|&x| half::f16::from_bits(x as u16).to_f64())
            .collect(),
        DataType::Bfloat16 => t
            .int32_data
            .iter()
            .map(|&x| half::bf16::from_bits(x as u16).to_f64())
            .collect(),
        _ => return None,
    };
    (v.len() == n).then_some(v)
}

/// Reads integer tensors (shape operands, axes, indices) as i64.
pub fn to_i64(t: &TensorProto) -> Option<Vec<i64>> {
    let dt = DataType::from_onnx(t.data_type)?;
    if !dt.is_integer() && dt != DataType::Bool {
        return to_f64(t).map(|v| v.into_iter().map(|x| x as i64).collect());
    }
    let n = element_count(&t.dims) as usize;
    if !t.raw_data.is_empty() {
        if dt == DataType::Int64 {
            if t.raw_data.len() != n * 8 {
                return None;
            }
            return Some(
                t.raw_data
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect(),
            );
        }
        return decode_raw(dt, &t.raw_data, n).map(|v| v.into_iter().map(|x| x as i64).collect());
    }
    let v: Vec<i64> = match dt {
        DataType::Int64 => t.int64_data.clone(),
        DataType::Uint64 | DataType::Uint32 => t.uint64_data.iter().map(|&x| x as i64).collect(),
        _ => t.int32_data.iter().map(|&x| x as i64).collect(),
    };
    (v.len() == n).then_some(v)
}

/// Decodes little-endian raw bytes of `n` elements into f64.
pub fn decode_raw(dt: DataType, raw: &[u8], n: usize) -> Option<Vec<f64>> {
    let width = dt.bits() / 8;
    if width == 0 || !dt.bits().is_multiple_of(8) || raw.len() != n * width {
        return None;
    }
    let v = raw.chunks_exact(width);
    Some(match dt {
        DataType::Float => v
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        DataType::Double => v
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect(),
        DataType::Float16 => v
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        DataType::Bfloat16 => v
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        DataType::Int8 => v.map(|c| c[0] as i8 as f64).collect(),
        DataType::Uint8 | DataType::Bool => v.map(|c| c[0] as f64).collect(),
        DataType::Int16 => v.map(|c| i16::from_le_bytes([c[0], c[1]]) as f64).collect(),
        DataType::Uint16 => v.map(|c| u16::from_le_bytes([c[0], c[1]]) as f64).collect(),
        DataType::Int32 => v
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        DataType::Uint32 => v
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        DataType::Int64 => v
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64)
            .collect(),
        DataType::Uint64 => v
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64)
            .collect(),
        _ => return None,
    })
}

/// A float32 tensor's values and dims (`None` for another element type).
pub fn tensor_f32(t: &TensorProto) -> Option<(Vec<f32>, Vec<usize>)> {
    if DataType::from_onnx(t.data_type) != Some(DataType::Float) {
        return None;
    }
    let v = to_f64(t)?;
    let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
    Some((v.into_iter().map(|x| x as f32).collect(), dims))
}

/// A constant float tensor's values and dims (`None` if not constant or not float32).
pub fn constant_f32(g: &super::Graph, name: &str) -> Option<(Vec<f32>, Vec<usize>)> {
    tensor_f32(g.constant_tensor(name)?)
}
