//! Dynamic batch dimensions: a model input whose leading dimension is symbolic and named
//! like a batch (`batch`, `batch_size`, `N`, `B`, `bs`, `None`, `unk__…`, or unnamed `?`),
//! with every other dimension known, is bound to batch 1 when no data says otherwise (no
//! `--inputs`, no `--calib`, no `--input-shape` for it). Other unknown dimensions still
//! need data or `--input-shape`, with the data layer's error.

use crate::ir::{Dim, Model};
use std::collections::HashMap;

/// One input bound this way: its name, the dims it now has, and the symbol that was bound.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchBinding {
    pub input: String,
    pub dims: Vec<i64>,
    pub symbol: String,
}

/// Whether a dimension looks like a batch: unnamed, or named like one.
fn is_batch(d: &Dim) -> bool {
    match d {
        Dim::Unknown => true,
        Dim::Sym(s) => {
            let s = s.to_ascii_lowercase();
            matches!(s.as_str(), "n" | "b" | "bs" | "none" | "?" | "-1")
                || s.starts_with("batch")
                || s.starts_with("unk__")
        }
        Dim::Known(_) => false,
    }
}

/// The bindings to add for `model`'s runtime inputs that `given` does not bind.
pub fn batch_bindings(model: &Model, given: &HashMap<String, Vec<i64>>) -> Vec<BatchBinding> {
    let g = &model.graph;
    let mut out = Vec::new();
    for name in g.runtime_inputs() {
        if given.contains_key(name) {
            continue;
        }
        let Some(dims) = g.value_type(name).and_then(|t| t.dims()) else {
            continue;
        };
        let Some((first, rest)) = dims.split_first() else {
            continue;
        };
        if rest.is_empty() || !is_batch(first) {
            continue;
        }
        let Some(rest): Option<Vec<i64>> = rest.iter().map(Dim::known).collect() else {
            continue;
        };
        let mut bound = vec![1];
        bound.extend(rest);
        out.push(BatchBinding {
            input: name.to_string(),
            dims: bound,
            symbol: first.to_string(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_names() {
        for d in [
            Dim::Unknown,
            Dim::Sym("batch".into()),
            Dim::Sym("N".into()),
            Dim::Sym("batch_size".into()),
            Dim::Sym("unk__312".into()),
        ] {
            assert!(is_batch(&d), "{d:?}");
        }
        for d in [
            Dim::Known(1),
            Dim::Sym("seq".into()),
            Dim::Sym("height".into()),
        ] {
            assert!(!is_batch(&d), "{d:?}");
        }
    }
}
