//! The pass manager: runs named passes over the IR in order, re-verifies the graph after
//! each one, times them, records what each changed, and turns a panic inside a pass into an
//! internal error that names the pass.

use crate::error::{Error, Result};
use crate::ir::Model;
use serde::Serialize;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

/// What a pass reports about its run: counts of what it changed, keyed by a short label
/// (`removed_nodes`, `removed_initializers`, ...). Empty means nothing changed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PassChanges(pub BTreeMap<String, u64>);

impl PassChanges {
    pub fn add(&mut self, what: &str, n: u64) {
        if n > 0 {
            *self.0.entry(what.to_string()).or_insert(0) += n;
        }
    }
    pub fn changed(&self) -> bool {
        !self.0.is_empty()
    }
}

/// A transformation of the IR with a name. Passes see only the model (and what they are
/// constructed with); analyses they need are computed through public IR APIs.
pub trait Pass {
    fn name(&self) -> &'static str;
    fn run(&self, model: &mut Model) -> Result<PassChanges>;
}

/// One pass's entry in the report.
#[derive(Clone, Debug, Serialize)]
pub struct PassRecord {
    pub name: String,
    pub seconds: f64,
    pub changed: bool,
    pub changes: BTreeMap<String, u64>,
}

#[derive(Default)]
pub struct PassManager {
    passes: Vec<Box<dyn Pass>>,
}

impl PassManager {
    pub fn new() -> PassManager {
        PassManager::default()
    }

    pub fn add(&mut self, pass: impl Pass + 'static) -> &mut Self {
        self.passes.push(Box::new(pass));
        self
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    /// Runs every pass in order; stops at the first failure.
    pub fn run(&self, model: &mut Model) -> Result<Vec<PassRecord>> {
        let mut records = Vec::new();
        for pass in &self.passes {
            let start = Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(|| pass.run(model))).map_err(|p| {
                Error::Internal(format!(
                    "pass '{}' panicked: {}",
                    pass.name(),
                    panic_message(&p)
                ))
            })??;
            model.graph.relink().map_err(|e| {
                Error::Internal(format!("pass '{}' left an invalid graph: {e}", pass.name()))
            })?;
            records.push(PassRecord {
                name: pass.name().to_string(),
                seconds: start.elapsed().as_secs_f64(),
                changed: outcome.changed(),
                changes: outcome.0,
            });
        }
        Ok(records)
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}
