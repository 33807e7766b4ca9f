//! Value types: the dtype and (possibly symbolic) shape of every tensor, and the
//! sequence/optional/map types ONNX also allows on edges.

use super::dtype::DataType;
use std::fmt;

/// One dimension of a tensor shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A known size.
    Known(i64),
    /// A named symbolic size (`dim_param`), e.g. `batch`.
    Sym(String),
    /// Neither a size nor a name is known.
    Unknown,
}

impl Dim {
    pub fn known(&self) -> Option<i64> {
        match self {
            Dim::Known(v) => Some(*v),
            _ => None,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(v) => write!(f, "{v}"),
            Dim::Sym(s) => write!(f, "{s}"),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// A tensor shape; `None` rank means the rank itself is unknown.
pub type Shape = Option<Vec<Dim>>;

/// Formats a shape as `[1,3,224,224]`, `[N,?]` or `[*]` for unknown rank.
pub fn fmt_shape(shape: &Shape) -> String {
    match shape {
        None => "[*]".to_string(),
        Some(dims) => {
            let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
            format!("[{}]", parts.join(","))
        }
    }
}

/// Static sizes of a shape, when every dimension is known.
pub fn static_dims(shape: &Shape) -> Option<Vec<i64>> {
    shape.as_ref()?.iter().map(|d| d.known()).collect()
}

/// The type of a value flowing along an edge.
#[derive(Clone, Debug, PartialEq)]
pub enum ValueType {
    Tensor {
        elem: DataType,
        shape: Shape,
    },
    /// A tensor whose element type is unknown (UNDEFINED in the model).
    TensorUnknownElem {
        shape: Shape,
    },
    Sequence(Box<ValueType>),
    Optional(Box<ValueType>),
    Map {
        key: DataType,
        value: Box<ValueType>,
    },
    SparseTensor {
        elem: DataType,
        shape: Shape,
    },
}

impl ValueType {
    pub fn tensor(elem: DataType, dims: &[i64]) -> ValueType {
        ValueType::Tensor {
            elem,
            shape: Some(dims.iter().map(|&d| Dim::Known(d)).collect()),
        }
    }

    /// Element type of a dense tensor.
    pub fn elem(&self) -> Option<DataType> {
        match self {
            ValueType::Tensor { elem, .. } => Some(*elem),
            _ => None,
        }
    }

    /// Shape of a dense tensor (`None` for other kinds or unknown rank).
    pub fn dims(&self) -> Option<&[Dim]> {
        match self {
            ValueType::Tensor { shape: Some(d), .. } => Some(d),
            _ => None,
        }
    }

    /// Static dims of a dense tensor, when all are known.
    pub fn static_dims(&self) -> Option<Vec<i64>> {
        match self {
            ValueType::Tensor { shape, .. } => static_dims(shape),
            _ => None,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueType::Tensor { elem, shape } => write!(f, "{elem}{}", fmt_shape(shape)),
            ValueType::TensorUnknownElem { shape } => write!(f, "?{}", fmt_shape(shape)),
            ValueType::Sequence(t) => write!(f, "seq({t})"),
            ValueType::Optional(t) => write!(f, "optional({t})"),
            ValueType::Map { key, value } => write!(f, "map({key},{value})"),
            ValueType::SparseTensor { elem, shape } => {
                write!(f, "sparse {elem}{}", fmt_shape(shape))
            }
        }
    }
}
