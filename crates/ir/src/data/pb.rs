//! Reading and writing single ONNX `TensorProto` files (`.pb`), as found in ONNX's
//! `test_data_set_N/input_K.pb` folders.

use super::HostTensor;
use crate::error::{Error, Result};
use crate::ir::DataType;
use onnx_protobuf::{tensor_proto::DataLocation, Message, TensorProto};
use std::path::Path;

/// Reads a serialized `TensorProto` file; returns the tensor's name (often empty) and values.
pub fn read_tensor_pb(path: &Path) -> Result<(String, HostTensor)> {
    let bytes = crate::bounded_read::read_regular(path, ".pb tensor file")?;
    let proto = TensorProto::parse_from_bytes(&bytes)
        .map_err(|e| Error::input(path, format!("not a serialized ONNX TensorProto: {e}")))?;
    let t = host_from_tensor_proto(&proto).map_err(|m| Error::input(path, m))?;
    Ok((proto.name.clone(), t))
}

/// Writes a host tensor as a serialized `TensorProto` (values in `raw_data`).
pub fn write_tensor_pb(path: &Path, tensor: &HostTensor, name: &str) -> Result<()> {
    tensor
        .check_consistent()
        .map_err(|m| Error::input(path, format!("cannot write tensor: {m}")))?;
    let bytes = tensor_proto_from_host(tensor, name)
        .write_to_bytes()
        .map_err(|e| Error::Internal(format!("cannot serialize tensor '{name}': {e}")))?;
    std::fs::write(path, bytes).map_err(|e| Error::input(path, format!("cannot write file: {e}")))
}

/// Builds a `TensorProto` holding the tensor's values: numeric data in `raw_data`
/// (little-endian, as ONNX requires), strings in `string_data`.
pub fn tensor_proto_from_host(t: &HostTensor, name: &str) -> TensorProto {
    let mut p = TensorProto::new();
    p.name = name.to_string();
    p.data_type = t.dtype as i32;
    p.dims = t.shape.iter().map(|&d| d as i64).collect();
    if t.dtype == DataType::String {
        p.string_data = t.strings.iter().map(|s| s.as_bytes().to_vec()).collect();
    } else {
        p.raw_data = t.bytes.clone();
    }
    p
}

/// Decodes a `TensorProto`'s values, whichever field holds them. External data and
/// segments are refused (test data never uses them). Errors are plain messages.
pub fn host_from_tensor_proto(p: &TensorProto) -> Result<HostTensor, String> {
    let dtype = DataType::from_onnx(p.data_type)
        .ok_or_else(|| format!("unknown or undefined data_type {}", p.data_type))?;
    if p.data_location.enum_value() == Ok(DataLocation::EXTERNAL) {
        return Err(
            "tensor data is stored externally, which is not supported for input data".into(),
        );
    }
    if p.segment.is_some() {
        return Err("segmented tensors are not supported".into());
    }
    let shape = p
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| format!("negative dimension {d} in dims {:?}", p.dims))
        })
        .collect::<Result<Vec<usize>, String>>()?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("element count overflows")?;
    let count_err = |field: &str, have: usize| {
        format!("dims {:?} need {n} values but {field} holds {have}", p.dims)
    };

    if dtype == DataType::String {
        if p.string_data.len() != n {
            return Err(count_err("string_data", p.string_data.len()));
        }
        let strings = p
            .string_data
            .iter()
            .map(|b| {
                String::from_utf8(b.clone())
                    .map_err(|_| "a string value is not valid UTF-8".to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(HostTensor::from_strings(shape, strings));
    }
    let width = HostTensor::element_width(dtype).ok_or_else(|| {
        format!("element type {dtype} (packed 4-bit) is not supported for input data")
    })?;
    let want = n.checked_mul(width).ok_or("data size overflows")?;

    let mut bytes: Vec<u8> = if !p.raw_data.is_empty() || n == 0 {
        if p.raw_data.len() != want {
            return Err(format!(
                "{dtype} dims {:?} need {want} bytes but raw_data holds {}",
                p.dims,
                p.raw_data.len()
            ));
        }
        p.raw_data.clone()
    } else {
        use DataType::*;
        let check = |field: &str, have: usize| {
            if have == n {
                Ok(())
            } else {
                Err(count_err(field, have))
            }
        };
        match dtype {
            Float => {
                check("float_data", p.float_data.len())?;
                p.float_data.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
            Complex64 => {
                if p.float_data.len() != 2 * n {
                    return Err(count_err("float_data (pairs)", p.float_data.len() / 2));
                }
                p.float_data.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
            Double => {
                check("double_data", p.double_data.len())?;
                p.double_data.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
            Complex128 => {
                if p.double_data.len() != 2 * n {
                    return Err(count_err("double_data (pairs)", p.double_data.len() / 2));
                }
                p.double_data.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
            Int64 => {
                check("int64_data", p.int64_data.len())?;
                p.int64_data.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
            Uint32 => {
                check("uint64_data", p.uint64_data.len())?;
                p.uint64_data
                    .iter()
                    .flat_map(|&v| (v as u32).to_le_bytes())
                    .collect()
            }
            Uint64 => {
                check("uint64_data", p.uint64_data.len())?;
                p.uint64_data.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
            Int32 => {
                check("int32_data", p.int32_data.len())?;
                p.int32_data.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
            // 16-bit types (including float16/bfloat16 bit patterns) in int32_data.
            Int16 | Uint16 | Float16 | Bfloat16 => {
                check("int32_data", p.int32_data.len())?;
                p.int32_data
                    .iter()
                    .flat_map(|&v| (v as u16).to_le_bytes())
                    .collect()
            }
            // 8-bit types (including bool and float8 bit patterns) in int32_data.
            Int8 | Uint8 | Bool | Float8E4M3FN | Float8E4M3FNUZ | Float8E5M2 | Float8E5M2FNUZ => {
                check("int32_data", p.int32_data.len())?;
                p.int32_data.iter().map(|&v| v as u8).collect()
            }
            String | Uint4 | Int4 | Float4E2M1 => {
                return Err(format!("element type {dtype} is not supported"))
            }
        }
    };
    if dtype == DataType::Bool {
        for b in &mut bytes {
            *b = (*b != 0) as u8;
        }
    }
    Ok(HostTensor::new(dtype, shape, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_data_and_raw_data_agree() {
        let mut a = TensorProto::new();
        a.data_type = DataType::Float as i32;
        a.dims = vec![2, 2];
        a.float_data = vec![1.0, -2.0, 3.5, 0.0];
        let from_typed = host_from_tensor_proto(&a).unwrap();
        let b = tensor_proto_from_host(&from_typed, "x");
        assert!(b.float_data.is_empty() && b.raw_data.len() == 16);
        assert_eq!(b.name, "x");
        let from_raw = host_from_tensor_proto(&b).unwrap();
        assert_eq!(from_typed, from_raw);
        assert_eq!(from_raw.as_f32().unwrap(), vec![1.0, -2.0, 3.5, 0.0]);
    }

    #[test]
    fn int32_data_narrow_types() {
        let mut p = TensorProto::new();
        p.dims = vec![3];
        p.int32_data = vec![-1, 2, -128];
        p.data_type = DataType::Int8 as i32;
        assert_eq!(
            host_from_tensor_proto(&p).unwrap().to_f64().unwrap(),
            vec![-1.0, 2.0, -128.0]
        );
        p.data_type = DataType::Int16 as i32;
        assert_eq!(
            host_from_tensor_proto(&p).unwrap().to_f64().unwrap(),
            vec![-1.0, 2.0, -128.0]
        );
        p.int32_data = vec![0, 1, 5];
        p.data_type = DataType::Bool as i32;
        assert_eq!(host_from_tensor_proto(&p).unwrap().bytes, vec![0, 1, 1]);
        p.int32_data = [1.5f32, -2.0, 0.25]
            .iter()
            .map(|&v| half::f16::from_f32(v).to_bits() as i32)
            .collect();
        p.data_type = DataType::Float16 as i32;
        assert_eq!(
            host_from_tensor_proto(&p).unwrap().to_f64().unwrap(),
            vec![1.5, -2.0, 0.25]
        );
        p.data_type = DataType::Uint16 as i32;
        p.int32_data = vec![65535, 0, 1];
        assert_eq!(
            host_from_tensor_proto(&p).unwrap().to_f64().unwrap(),
            vec![65535.0, 0.0, 1.0]
        );
    }

    #[test]
    fn wide_typed_fields() {
        let mut p = TensorProto::new();
        p.dims = vec![2];
        p.data_type = DataType::Int64 as i32;
        p.int64_data = vec![-5, 1 << 40];
        assert_eq!(
            host_from_tensor_proto(&p).unwrap(),
            HostTensor::from_i64(vec![2], &[-5, 1 << 40])
        );
        p.data_type = DataType::Double as i32;
        p.double_data = vec![0.5, -1.0];
        assert_eq!(
            host_from_tensor_proto(&p).unwrap().to_f64().unwrap(),
            vec![0.5, -1.0]
        );
        p.data_type = DataType::Uint64 as i32;
        p.uint64_data = vec![u64::MAX, 3];
        assert_eq!(
            host_from_tensor_proto(&p).unwrap().bytes[..8],
            u64::MAX.to_le_bytes()
        );
        p.data_type = DataType::Uint32 as i32;
        assert_eq!(host_from_tensor_proto(&p).unwrap().bytes.len(), 8);
    }

    #[test]
    fn strings_and_scalars() {
        let t = HostTensor::from_strings(vec![2], vec!["a".into(), "bé".into()]);
        let p = tensor_proto_from_host(&t, "s");
        assert_eq!(host_from_tensor_proto(&p).unwrap(), t);
        let scalar = HostTensor::from_f32(vec![], &[3.0]);
        let p = tensor_proto_from_host(&scalar, "");
        assert!(p.dims.is_empty());
        assert_eq!(host_from_tensor_proto(&p).unwrap(), scalar);
    }

    #[test]
    fn bad_protos_are_errors() {
        let mut p = TensorProto::new();
        p.dims = vec![3];
        assert!(host_from_tensor_proto(&p)
            .unwrap_err()
            .contains("data_type"));
        p.data_type = DataType::Float as i32;
        assert!(host_from_tensor_proto(&p)
            .unwrap_err()
            .contains("need 3 values"));
        p.raw_data = vec![0; 8];
        assert!(host_from_tensor_proto(&p)
            .unwrap_err()
            .contains("need 12 bytes"));
        p.dims = vec![-1];
        assert!(host_from_tensor_proto(&p).unwrap_err().contains("negative"));
    }

    #[test]
    fn file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input_0.pb");
        let t = HostTensor::from_f32(vec![1, 3], &[1.0, 2.0, 3.0]);
        write_tensor_pb(&path, &t, "x").unwrap();
        let (name, back) = read_tensor_pb(&path).unwrap();
        assert_eq!((name.as_str(), back), ("x", t));
        std::fs::write(&path, b"\xff\xff\xff garbage").unwrap();
        let err = read_tensor_pb(&path).unwrap_err().to_string();
        assert!(
            err.contains("input_0.pb") && err.contains("TensorProto"),
            "{err}"
        );
    }
}
