//! Conversion between ONNX `TypeProto` and the IR's `ValueType`.

use crate::ir::{DataType, Dim, Shape, ValueType};
use onnx_protobuf::{
    tensor_shape_proto::{dimension, Dimension},
    type_proto, TensorShapeProto, TypeProto,
};

fn shape_from_proto(s: Option<&TensorShapeProto>) -> Shape {
    let s = s?;
    Some(
        s.dim
            .iter()
            .map(|d| match &d.value {
                Some(dimension::Value::DimValue(v)) if *v >= 0 => Dim::Known(*v),
                Some(dimension::Value::DimParam(p)) if !p.is_empty() => Dim::Sym(p.clone()),
                _ => Dim::Unknown,
            })
            .collect(),
    )
}

fn shape_to_proto(shape: &Shape) -> Option<TensorShapeProto> {
    let dims = shape.as_ref()?;
    let mut s = TensorShapeProto::new();
    for d in dims {
        let mut pd = Dimension::new();
        pd.value = match d {
            Dim::Known(v) => Some(dimension::Value::DimValue(*v)),
            Dim::Sym(p) => Some(dimension::Value::DimParam(p.clone())),
            Dim::Unknown => None,
        };
        s.dim.push(pd);
    }
    Some(s)
}

/// Parses a TypeProto; `None` when the type is absent or says nothing usable.
pub fn value_type_from_proto(t: &TypeProto) -> Option<ValueType> {
    match t.value.as_ref()? {
        type_proto::Value::TensorType(tt) => {
            let shape = shape_from_proto(tt.shape.as_ref());
            match DataType::from_onnx(tt.elem_type) {
                Some(elem) => Some(ValueType::Tensor { elem, shape }),
                None => Some(ValueType::TensorUnknownElem { shape }),
            }
        }
        type_proto::Value::SequenceType(s) => Some(ValueType::Sequence(Box::new(
            value_type_from_proto(s.elem_type.as_ref()?)?,
        ))),
        type_proto::Value::OptionalType(o) => Some(ValueType::Optional(Box::new(
            value_type_from_proto(o.elem_type.as_ref()?)?,
        ))),
        type_proto::Value::MapType(m) => Some(ValueType::Map {
            key: DataType::from_onnx(m.key_type)?,
            value: Box::new(value_type_from_proto(m.value_type.as_ref()?)?),
        }),
        type_proto::Value::SparseTensorType(st) => Some(ValueType::SparseTensor {
            elem: DataType::from_onnx(st.elem_type)?,
            shape: shape_from_proto(st.shape.as_ref()),
        }),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Builds a TypeProto for a value type.
pub fn value_type_to_proto(v: &ValueType) -> TypeProto {
    let mut t = TypeProto::new();
    t.value = Some(match v {
        ValueType::Tensor { elem, shape } => {
            let mut tt = type_proto::Tensor::new();
            tt.elem_type = *elem as i32;
            tt.shape = shape_to_proto(shape).into();
            type_proto::Value::TensorType(tt)
        }
        ValueType::TensorUnknownElem { shape } => {
            let mut tt = type_proto::Tensor::new();
            tt.shape = shape_to_proto(shape).into();
            type_proto::Value::TensorType(tt)
        }
        ValueType::Sequence(e) => {
            let mut s = type_proto::Sequence::new();
            s.elem_type = Some(value_type_to_proto(e)).into();
            type_proto::Value::SequenceType(s)
        }
        ValueType::Optional(e) => {
            let mut o = type_proto::Optional::new();
            o.elem_type = Some(value_type_to_proto(e)).into();
            type_proto::Value::OptionalType(o)
        }
        ValueType::Map { key, value } => {
            let mut m = type_proto::Map::new();
            m.key_type = *key as i32;
            m.value_type = Some(value_type_to_proto(value)).into();
            type_proto::Value::MapType(m)
        }
        ValueType::SparseTensor { elem, shape } => {
            let mut st = type_proto::SparseTensor::new();
            st.elem_type = *elem as i32;
            st.shape = shape_to_proto(shape).into();
            type_proto::Value::SparseTensorType(st)
        }
    });
    t
}
