//! Task-aware fidelity: which metric measures each output ([`metric`], picked by [`auto`]
//! unless given), how it is measured and pooled over the validation set ([`measure`]), what
//! the user asked for ([`spec`]), and the gate that compares each output's pooled value
//! with its target ([`gate`]); the calibration hold-out ([`holdout`]). User documentation: `docs/fidelity.md`.

pub mod auto;
pub mod gate;
pub mod holdout;
pub mod measure;
pub mod metric;
pub mod spec;

pub use gate::{FidelityReport, OutputFidelity};
pub use metric::{Metric, MetricChoice};
pub use spec::{FidelitySpec, OutputPlan};
