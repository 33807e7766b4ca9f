//! Known values of small tensors, for evaluating shape operands.
//!
//! Integers are kept as [`Dim`]s so that a `Shape` of a symbolically shaped tensor can flow
//! through Gather/Concat/Unsqueeze/... into a Reshape with its symbols intact.

use crate::ir::{tensor, DataType, Dim, ValueType};
use onnx_protobuf::TensorProto;

/// Element values: integers (bool as 0/1), possibly symbolic, or floats.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    Int(Vec<Dim>),
    Float(Vec<f64>),
}

impl Data {
    pub fn len(&self) -> usize {
        match self {
            Data::Int(v) => v.len(),
            Data::Float(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Picks elements by index (for Gather/Slice/Transpose-like reorderings).
    pub fn pick(&self, idx: &[usize]) -> Option<Data> {
        Some(match self {
            Data::Int(v) => Data::Int(
                idx.iter()
                    .map(|&i| v.get(i).cloned())
                    .collect::<Option<_>>()?,
            ),
            Data::Float(v) => Data::Float(
                idx.iter()
                    .map(|&i| v.get(i).copied())
                    .collect::<Option<_>>()?,
            ),
        })
    }

    /// Element `i` as f64 when known.
    pub fn f64_at(&self, i: usize) -> Option<f64> {
        match self {
            Data::Int(v) => v.get(i)?.known().map(|x| x as f64),
            Data::Float(v) => v.get(i).copied(),
        }
    }
}

/// A tensor with known dims and values.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub elem: DataType,
    pub dims: Vec<i64>,
    pub data: Data,
}

fn is_int_like(dt: DataType) -> bool {
    dt.is_integer() || dt == DataType::Bool
}

impl Value {
    /// Builds a value, converting the data to the representation `elem` wants
    /// (integers truncate toward zero, bool is `!= 0`).
    pub fn new(elem: DataType, dims: Vec<i64>, data: Data) -> Value {
        let data = convert(data, elem);
        Value { elem, dims, data }
    }

    pub fn int_scalar(elem: DataType, v: i64) -> Value {
        Value::new(elem, vec![], Data::Int(vec![Dim::Known(v)]))
    }

    pub fn ints_1d(elem: DataType, v: Vec<Dim>) -> Value {
        Value::new(elem, vec![v.len() as i64], Data::Int(v))
    }

    pub fn value_type(&self) -> ValueType {
        ValueType::tensor(self.elem, &self.dims)
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// All values as known integers.
    pub fn ints(&self) -> Option<Vec<i64>> {
        match &self.data {
            Data::Int(v) => v.iter().map(|d| d.known()).collect(),
            Data::Float(v) => Some(v.iter().map(|&x| x as i64).collect()),
        }
    }

    /// Values as integers, some possibly symbolic.
    pub fn sym_ints(&self) -> Option<Vec<Dim>> {
        match &self.data {
            Data::Int(v) => Some(v.clone()),
            Data::Float(v) => Some(v.iter().map(|&x| Dim::Known(x as i64)).collect()),
        }
    }

    pub fn floats(&self) -> Option<Vec<f64>> {
        match &self.data {
            Data::Int(v) => v.iter().map(|d| d.known().map(|x| x as f64)).collect(),
            Data::Float(v) => Some(v.clone()),
        }
    }

    /// Decodes a small numeric initializer or Constant value.
    pub fn from_tensor_proto(t: &TensorProto) -> Option<Value> {
        let elem = DataType::from_onnx(t.data_type)?;
        if tensor::is_external(t) || tensor::element_count(&t.dims) > super::MAX_CONST_ELEMS {
            return None;
        }
        let data = if is_int_like(elem) {
            Data::Int(tensor::to_i64(t)?.into_iter().map(Dim::Known).collect())
        } else if elem.is_float() {
            Data::Float(tensor::to_f64(t)?)
        } else {
            return None;
        };
        Some(Value {
            elem,
            dims: t.dims.clone(),
            data,
        })
    }

    /// The same data as another element type (Cast).
    pub fn cast(&self, to: DataType) -> Option<Value> {
        if !(is_int_like(to) || to.is_float()) {
            return None;
        }
        Some(Value::new(to, self.dims.clone(), self.data.clone()))
    }
}

/// Converts data to what `elem` stores.
pub fn convert(data: Data, elem: DataType) -> Data {
    if elem == DataType::Bool {
        return match data {
            Data::Int(v) => Data::Int(
                v.into_iter()
                    .map(|d| match d {
                        Dim::Known(x) => Dim::Known((x != 0) as i64),
                        _ => Dim::Unknown,
                    })
                    .collect(),
            ),
            Data::Float(v) => Data::Int(
                v.into_iter()
                    .map(|x| Dim::Known((x != 0.0) as i64))
                    .collect(),
            ),
        };
    }
    if is_int_like(elem) {
        match data {
            Data::Int(v) => Data::Int(v),
            Data::Float(v) => Data::Int(
                v.into_iter()
                    .map(|x| {
                        if x.is_finite() {
                            Dim::Known(x.trunc() as i64)
                        } else {
                            Dim::Unknown
                        }
                    })
                    .collect(),
            ),
        }
    } else {
        match data {
            Data::Float(v) => {
                if elem == DataType::Float {
                    Data::Float(v.into_iter().map(|x| x as f32 as f64).collect())
                } else {
                    Data::Float(v)
                }
            }
            Data::Int(v) => Data::Float(
                v.into_iter()
                    .map(|d| d.known().map(|x| x as f64).unwrap_or(f64::NAN))
                    .collect(),
            ),
        }
    }
}

/// Strides of a row-major tensor.
pub fn strides(dims: &[i64]) -> Vec<usize> {
    let mut s = vec![1usize; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1].max(0) as usize;
    }
    s
}

/// Flat indices into `from` for broadcasting it to `to` (numpy rules; `to` already valid).
pub fn broadcast_index(from: &[i64], to: &[i64]) -> Vec<usize> {
    let total = tensor::element_count(to) as usize;
    let fs = strides(from);
    let off = to.len() - from.len();
    let mut out = Vec::with_capacity(total);
    let mut idx = vec![0i64; to.len()];
    for _ in 0..total {
        let mut flat = 0usize;
        for (k, &f) in from.iter().enumerate() {
            let i = idx[k + off];
            if f != 1 {
                flat += i as usize * fs[k];
            }
        }
        out.push(flat);
        for k in (0..to.len()).rev() {
            idx[k] += 1;
            if idx[k] < to[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}
