//! A tensor held in host memory: what runtimes take and return, and what input files load into.

use crate::ir::DataType;

/// Dense tensor values in host memory. Numeric data is stored as little-endian bytes
/// in the element type's natural width (4-bit types are not used here); strings separately.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub dtype: DataType,
    pub shape: Vec<usize>,
    /// Little-endian element bytes (empty for string tensors).
    pub bytes: Vec<u8>,
    /// Values of a string tensor (empty otherwise).
    pub strings: Vec<String>,
}

impl HostTensor {
    pub fn element_count(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> HostTensor {
        HostTensor {
            dtype: DataType::Float,
            shape,
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            strings: Vec::new(),
        }
    }

    pub fn from_i64(shape: Vec<usize>, values: &[i64]) -> HostTensor {
        HostTensor {
            dtype: DataType::Int64,
            shape,
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            strings: Vec::new(),
        }
    }

    /// Values as f64 for comparison; `None` for strings and types without a numeric view.
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        crate::ir::tensor::decode_raw(self.dtype, &self.bytes, self.element_count())
    }

    /// Values as f32 (float tensors only).
    pub fn as_f32(&self) -> Option<Vec<f32>> {
        (self.dtype == DataType::Float).then(|| {
            self.bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
    }

    /// True when both tensors have the same type, shape and exactly the same bytes.
    pub fn bit_identical(&self, other: &HostTensor) -> bool {
        self == other
    }
}

impl HostTensor {
    /// A numeric tensor from little-endian element bytes (not checked against the shape).
    pub fn new(dtype: DataType, shape: Vec<usize>, bytes: Vec<u8>) -> HostTensor {
        HostTensor {
            dtype,
            shape,
            bytes,
            strings: Vec::new(),
        }
    }

    /// A string tensor.
    pub fn from_strings(shape: Vec<usize>, strings: Vec<String>) -> HostTensor {
        HostTensor {
            dtype: DataType::String,
            shape,
            bytes: Vec::new(),
            strings,
        }
    }

    /// Bytes per element in `bytes` for this tensor's type: `None` for strings and the packed
    /// 4-bit types, which a `HostTensor` does not hold.
    pub fn element_width(dtype: DataType) -> Option<usize> {
        let bits = dtype.bits();
        (bits != 0 && bits.is_multiple_of(8)).then_some(bits / 8)
    }

    /// The type and shape as in error messages: `float[1,3,224,224]`, `int64[]` for a scalar.
    pub fn type_string(&self) -> String {
        type_string(self.dtype, &self.shape)
    }

    /// Checks that the stored data matches the type and shape (byte length or string count).
    pub fn check_consistent(&self) -> Result<(), String> {
        let n = self
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or("element count overflows")?;
        if self.dtype == DataType::String {
            if self.strings.len() != n || !self.bytes.is_empty() {
                return Err(format!(
                    "string tensor of shape {:?} holds {} strings",
                    self.shape,
                    self.strings.len()
                ));
            }
            return Ok(());
        }
        let width = HostTensor::element_width(self.dtype).ok_or_else(|| {
            format!(
                "element type {} cannot be held in a host tensor",
                self.dtype
            )
        })?;
        let want = n.checked_mul(width).ok_or("byte size overflows")?;
        if self.bytes.len() != want || !self.strings.is_empty() {
            return Err(format!(
                "{} needs {} bytes but holds {}",
                self.type_string(),
                want,
                self.bytes.len()
            ));
        }
        Ok(())
    }
}

/// A tensor's type and shape as in error messages: `float[1,3,224,224]`.
pub fn type_string(dtype: DataType, shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("{}[{}]", dtype, dims.join(","))
}
