//! String tensors: they never go to the device. The executor carries them on the host from
//! graph inputs through the ops that take strings (`StringNormalizer`) to graph outputs.

use super::attrs::{attr_i, attr_s};
use super::exec::node_error as err;
use optimize_ir::data::HostTensor;
use optimize_ir::error::Result;
use optimize_ir::ir::{DataType, Node};

/// Ops the executor runs on host string tensors.
pub const STRING_OPS: &[&str] = &["StringNormalizer"];

/// True for a default-domain op run on the host over strings.
pub fn is_string_op(n: &Node) -> bool {
    optimize_ir::ir::canonical_domain(&n.domain).is_empty()
        && STRING_OPS.contains(&n.op_type.as_str())
}

/// Locales whose case mapping is Unicode's default one (what Rust's `to_lowercase` and
/// `to_uppercase` do). Others (Turkish dotted i, ...) would need locale tables: an error.
fn default_case_locale(locale: &str) -> bool {
    let l = locale.to_ascii_lowercase();
    let base = l.split(['.', '@']).next().unwrap_or("");
    matches!(base, "" | "c" | "posix" | "en" | "en_us" | "en-us")
}

/// `StringNormalizer` (ONNX opset 10): drops the elements equal to a stopword (compared
/// case-insensitively unless `is_case_sensitive`), then changes case (`LOWER`, `UPPER`,
/// `NONE`). Input `[C]` or `[1, C]`; when every element is dropped the output is one empty
/// string, `[1]` or `[1, 1]`, as onnxruntime and the ONNX reference do.
pub fn string_normalizer(n: &Node, x: &HostTensor) -> Result<HostTensor> {
    if x.dtype != DataType::String {
        return Err(err(
            n,
            format!("input is {}, not a string tensor", x.type_string()),
        ));
    }
    let two_d = match x.shape.as_slice() {
        [_] => false,
        [1, _] => true,
        s => {
            return Err(err(
                n,
                format!("input shape {s:?}: StringNormalizer takes [C] or [1, C]"),
            ))
        }
    };
    let action = attr_s(n, "case_change_action").unwrap_or("NONE");
    if !matches!(action, "LOWER" | "UPPER" | "NONE") {
        return Err(err(
            n,
            format!("case_change_action '{action}' is not LOWER, UPPER or NONE"),
        ));
    }
    let locale = attr_s(n, "locale").unwrap_or("");
    if !default_case_locale(locale) {
        return Err(err(
            n,
            format!(
                "locale '{locale}' is not supported by the wgpu executor (only the default/en_US \
                 case mapping)"
            ),
        ));
    }
    let sensitive = attr_i(n, "is_case_sensitive", 0) != 0;
    let stopwords: Vec<String> = n
        .attr("stopwords")
        .map(|a| {
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default();
    let folded: Vec<String> = stopwords.iter().map(|w| w.to_lowercase()).collect();
    let is_stop = |s: &str| {
        if sensitive {
            stopwords.iter().any(|w| w == s)
        } else {
            let l = s.to_lowercase();
            folded.contains(&l)
        }
    };
    let mut out: Vec<String> = x
        .strings
        .iter()
        .filter(|s| !is_stop(s))
        .map(|s| match action {
            "LOWER" => s.to_lowercase(),
            "UPPER" => s.to_uppercase(),
            _ => s.clone(),
        })
        .collect();
    if out.is_empty() {
        out.push(String::new());
    }
    let shape = if two_d {
        vec![1, out.len()]
    } else {
        vec![out.len()]
    };
    Ok(HostTensor::from_strings(shape, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_protobuf::attribute_proto::AttributeType;
    use onnx_protobuf::AttributeProto;

    fn node(attrs: &[(&str, &[&str])], sensitive: Option<i64>) -> Node {
        let mut n = Node {
            op_type: "StringNormalizer".into(),
            inputs: vec!["x".into()],
            outputs: vec!["y".into()],
            ..Default::default()
        };
        for (name, vals) in attrs {
            let mut a = AttributeProto::new();
            a.name = name.to_string();
            if *name == "stopwords" {
                a.type_ = AttributeType::STRINGS.into();
                a.strings = vals.iter().map(|s| s.as_bytes().to_vec()).collect();
            } else {
                a.type_ = AttributeType::STRING.into();
                a.s = vals[0].as_bytes().to_vec();
            }
            n.attributes.push(a);
        }
        if let Some(v) = sensitive {
            let mut a = AttributeProto::new();
            a.name = "is_case_sensitive".into();
            a.type_ = AttributeType::INT.into();
            a.i = v;
            n.attributes.push(a);
        }
        n
    }

    fn strs(shape: Vec<usize>, v: &[&str]) -> HostTensor {
        HostTensor::from_strings(shape, v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn stopwords_case_and_empty_output() {
        let x = strs(vec![1, 3], &["Monday", "tuesday", "Straße"]);
        let n = node(
            &[
                ("case_change_action", &["UPPER"]),
                ("stopwords", &["monday"]),
            ],
            None,
        );
        let y = string_normalizer(&n, &x).unwrap();
        assert_eq!(y, strs(vec![1, 2], &["TUESDAY", "STRASSE"]));
        // Case-sensitive: "Monday" is not the stopword "monday".
        let n = node(&[("stopwords", &["monday"])], Some(1));
        let y = string_normalizer(&n, &x).unwrap();
        assert_eq!(y, x);
        let n = node(&[("stopwords", &["MONDAY", "Tuesday", "straße"])], None);
        let y = string_normalizer(&n, &x).unwrap();
        assert_eq!(y, strs(vec![1, 1], &[""]));
    }

    #[test]
    fn other_locales_and_shapes_are_errors() {
        let x = strs(vec![2], &["a", "b"]);
        let n = node(&[("locale", &["tr_TR"])], None);
        let e = string_normalizer(&n, &x).unwrap_err().to_string();
        assert!(e.contains("tr_TR"), "{e}");
        let n = node(&[("locale", &["en_US.UTF-8"])], None);
        assert!(string_normalizer(&n, &x).is_ok());
        let x = strs(vec![2, 1], &["a", "b"]);
        assert!(string_normalizer(&node(&[], None), &x).is_err());
    }
}
