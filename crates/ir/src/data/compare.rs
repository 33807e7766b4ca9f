//! Comparing a candidate tensor (the optimized model's output) with a reference.
//!
//! Definitions, per element pair (a = reference, b = candidate, both widened to f64):
//! * equal values (including equal infinities) and NaN against NaN count as no error;
//! * NaN against a number, or an infinity against anything else, is an infinite error;
//! * absolute error: `|a - b|`;
//! * relative error: `|a - b| / max(|a|, |b|, 1e-12)`, which is 0 when both are 0, never
//!   more than 2 for finite values, and symmetric in a and b. Near zero it is large even for
//!   tiny absolute differences, so read it together with the absolute error;
//! * cosine similarity of the flattened tensors over the elements where both values are
//!   finite: exactly 1.0 when every element pair is equal (so also when both are all zeros or
//!   empty), 0.0 when exactly one vector is all zeros, and 0.0 when any element pair has an
//!   infinite error.
//!
//! Complex tensors are compared as their interleaved real and imaginary parts; strings are
//! equal or infinitely different.

use super::HostTensor;
use crate::error::{Error, Result};
use crate::ir::DataType;
use std::fmt;

/// Differences between a reference and a candidate (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Metrics {
    pub max_abs_err: f64,
    pub max_rel_err: f64,
    pub cosine: f64,
    pub elements: usize,
    pub bit_identical: bool,
}

/// Denominator floor of the relative error.
pub const REL_EPS: f64 = 1e-12;

impl Default for Metrics {
    /// The neutral element of [`Metrics::merge`]: no error, cosine 1, no elements, identical.
    fn default() -> Metrics {
        Metrics {
            max_abs_err: 0.0,
            max_rel_err: 0.0,
            cosine: 1.0,
            elements: 0,
            bit_identical: true,
        }
    }
}

impl Metrics {
    /// Combines metrics of several outputs or samples: max of the maxima, min of the cosines,
    /// sum of elements, identical only if all are. Use with `fold(Metrics::default(), Metrics::merge)`.
    pub fn merge(self, other: Metrics) -> Metrics {
        Metrics {
            max_abs_err: self.max_abs_err.max(other.max_abs_err),
            max_rel_err: self.max_rel_err.max(other.max_rel_err),
            cosine: self.cosine.min(other.cosine),
            elements: self.elements + other.elements,
            bit_identical: self.bit_identical && other.bit_identical,
        }
    }
}

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.bit_identical {
            return write!(f, "bit-identical ({} elements)", self.elements);
        }
        write!(
            f,
            "max abs err {:.3e}, max rel err {:.3e}, cosine {:.9} ({} elements)",
            self.max_abs_err, self.max_rel_err, self.cosine, self.elements
        )
    }
}

/// Compares `candidate` with `reference`. Different element types or shapes are an error.
pub fn compare(reference: &HostTensor, candidate: &HostTensor) -> Result<Metrics> {
    if reference.dtype != candidate.dtype || reference.shape != candidate.shape {
        return Err(Error::Validation(format!(
            "type mismatch: reference is {}, candidate is {}",
            reference.type_string(),
            candidate.type_string()
        )));
    }
    for (what, t) in [("reference", reference), ("candidate", candidate)] {
        t.check_consistent()
            .map_err(|m| Error::Internal(format!("malformed {what} tensor: {m}")))?;
    }
    let elements = reference.element_count();
    let bit_identical = reference.bit_identical(candidate);
    if reference.dtype == DataType::String {
        let err = if bit_identical { 0.0 } else { f64::INFINITY };
        let cosine = if bit_identical { 1.0 } else { 0.0 };
        return Ok(Metrics {
            max_abs_err: err,
            max_rel_err: err,
            cosine,
            elements,
            bit_identical,
        });
    }
    let (a, b) = match (numeric(reference), numeric(candidate)) {
        (Some(a), Some(b)) => (a, b),
        _ if bit_identical => {
            return Ok(Metrics {
                elements,
                ..Metrics::default()
            })
        }
        _ => {
            return Err(Error::Validation(format!(
                "cannot compare values of type {} numerically, and they are not bit-identical",
                reference.dtype
            )))
        }
    };
    let mut m = compare_values(&a, &b);
    m.elements = elements;
    m.bit_identical = bit_identical;
    Ok(m)
}

/// Values as f64, complex types as interleaved parts.
fn numeric(t: &HostTensor) -> Option<Vec<f64>> {
    match t.dtype {
        DataType::Complex64 => Some(
            t.bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
        ),
        DataType::Complex128 => Some(
            t.bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        _ => t.to_f64(),
    }
}

/// Metrics of two equally long value vectors (`elements` and `bit_identical` left for the caller).
pub fn compare_values(a: &[f64], b: &[f64]) -> Metrics {
    let (mut max_abs, mut max_rel) = (0.0f64, 0.0f64);
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    let mut non_finite_mismatch = false;
    let mut any_difference = false;
    for (&x, &y) in a.iter().zip(b) {
        if x == y || (x.is_nan() && y.is_nan()) {
            if x.is_finite() {
                dot += x * y;
                na += x * x;
                nb += y * y;
            }
            continue;
        }
        any_difference = true;
        if !x.is_finite() || !y.is_finite() {
            non_finite_mismatch = true;
            max_abs = f64::INFINITY;
            max_rel = f64::INFINITY;
            continue;
        }
        let d = (x - y).abs();
        max_abs = max_abs.max(d);
        max_rel = max_rel.max(d / x.abs().max(y.abs()).max(REL_EPS));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    let cosine = if non_finite_mismatch {
        0.0
    } else if !any_difference || (na == 0.0 && nb == 0.0) {
        1.0
    } else if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        cosine_of(a, b, dot, na, nb)
    };
    Metrics {
        max_abs_err: max_abs,
        max_rel_err: max_rel,
        cosine,
        elements: a.len(),
        bit_identical: false,
    }
}

/// Cosine from accumulated sums; recomputed on scaled values when the sums overflowed.
fn cosine_of(a: &[f64], b: &[f64], mut dot: f64, mut na: f64, mut nb: f64) -> f64 {
    if !(dot.is_finite() && na.is_finite() && nb.is_finite()) {
        let finite = |v: &&f64| v.is_finite();
        let scale = a
            .iter()
            .chain(b)
            .filter(finite)
            .fold(0.0f64, |m, v| m.max(v.abs()));
        (dot, na, nb) = (0.0, 0.0, 0.0);
        for (&x, &y) in a.iter().zip(b) {
            if x.is_finite() && y.is_finite() {
                let (x, y) = (x / scale, y / scale);
                dot += x * y;
                na += x * x;
                nb += y * y;
            }
        }
    }
    (dot / (na.sqrt() * nb.sqrt())).clamp(-1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: &[f32]) -> HostTensor {
        HostTensor::from_f32(vec![v.len()], v)
    }

    #[test]
    fn identical() {
        let m = compare(&f(&[1.0, -2.0, 0.0]), &f(&[1.0, -2.0, 0.0])).unwrap();
        assert_eq!(
            m,
            Metrics {
                elements: 3,
                ..Metrics::default()
            }
        );
        assert!(m.to_string().starts_with("bit-identical"));
    }

    #[test]
    fn errors_and_cosine() {
        let m = compare(&f(&[1.0, 2.0, 0.0, 4.0]), &f(&[1.5, 2.0, 0.0, -4.0])).unwrap();
        assert_eq!(m.max_abs_err, 8.0);
        assert_eq!(m.max_rel_err, 2.0);
        assert!(!m.bit_identical);
        let dot = 1.5 + 4.0 - 16.0;
        let want = dot / ((1.0f64 + 4.0 + 16.0).sqrt() * (2.25f64 + 4.0 + 16.0).sqrt());
        assert!((m.cosine - want).abs() < 1e-12);
        let m = compare(&f(&[2.0]), &f(&[1.0])).unwrap();
        assert_eq!(m.max_rel_err, 0.5);
        let big = |v: &[f64]| {
            HostTensor::new(
                DataType::Double,
                vec![v.len()],
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        };
        let m = compare(&big(&[1e300, -1e300]), &big(&[1e300, -0.9e300])).unwrap();
        assert!(m.cosine > 0.99 && m.cosine < 1.0, "{m:?}");
    }

    #[test]
    fn zeros_and_nans() {
        assert_eq!(
            compare(&f(&[0.0, 0.0]), &f(&[0.0, -0.0])).unwrap().cosine,
            1.0
        );
        let m = compare(&f(&[0.0, 0.0]), &f(&[0.0, 1e-3])).unwrap();
        assert_eq!((m.cosine, m.max_rel_err), (0.0, 1.0));
        let m = compare(
            &f(&[f32::NAN, 1.0, f32::INFINITY]),
            &f(&[f32::NAN, 1.0, f32::INFINITY]),
        )
        .unwrap();
        assert_eq!((m.max_abs_err, m.max_rel_err, m.cosine), (0.0, 0.0, 1.0));
        let m = compare(&f(&[f32::NAN, 1.0]), &f(&[0.0, 1.0])).unwrap();
        assert_eq!(
            (m.max_abs_err, m.max_rel_err, m.cosine),
            (f64::INFINITY, f64::INFINITY, 0.0)
        );
        let m = compare(&f(&[f32::INFINITY]), &f(&[f32::NEG_INFINITY])).unwrap();
        assert_eq!(m.max_abs_err, f64::INFINITY);
        let m = compare(&f(&[]), &f(&[])).unwrap();
        assert_eq!((m.cosine, m.elements, m.bit_identical), (1.0, 0, true));
    }

    #[test]
    fn mismatches_are_errors() {
        let err = compare(
            &f(&[1.0, 2.0]),
            &HostTensor::from_f32(vec![2, 1], &[1.0, 2.0]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "validation failed: type mismatch: reference is float[2], candidate is float[2,1]"
        );
        assert!(compare(&f(&[1.0]), &HostTensor::from_i64(vec![1], &[1])).is_err());
    }

    #[test]
    fn other_types() {
        let a = HostTensor::from_i64(vec![2], &[5, -3]);
        let m = compare(&a, &HostTensor::from_i64(vec![2], &[5, -4])).unwrap();
        assert_eq!(m.max_abs_err, 1.0);
        let s = |v: &str| HostTensor::from_strings(vec![1], vec![v.to_string()]);
        assert!(compare(&s("a"), &s("a")).unwrap().bit_identical);
        assert_eq!(
            compare(&s("a"), &s("b")).unwrap().max_abs_err,
            f64::INFINITY
        );
        let h = |v: f32| {
            HostTensor::new(
                DataType::Float16,
                vec![1],
                half::f16::from_f32(v).to_le_bytes().to_vec(),
            )
        };
        assert_eq!(compare(&h(1.0), &h(1.5)).unwrap().max_abs_err, 0.5);
    }

    #[test]
    fn merge_folds() {
        let a = Metrics {
            max_abs_err: 1.0,
            max_rel_err: 0.1,
            cosine: 0.99,
            elements: 3,
            bit_identical: false,
        };
        let b = Metrics {
            max_abs_err: 0.5,
            max_rel_err: 0.2,
            cosine: 0.999,
            elements: 4,
            bit_identical: true,
        };
        let m = [a, b].into_iter().fold(Metrics::default(), Metrics::merge);
        assert_eq!(
            m,
            Metrics {
                max_abs_err: 1.0,
                max_rel_err: 0.2,
                cosine: 0.99,
                elements: 7,
                bit_identical: false
            }
        );
        assert_eq!([b].into_iter().fold(Metrics::default(), Metrics::merge), b);
    }
}
