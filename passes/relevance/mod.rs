//! Relevance: operator-level Layer-wise Relevance Propagation (as DynamicLRP) over any
//! ONNX graph.
//!
//! Forward activations come from one onnxruntime run with every intermediate tensor
//! exposed ([`activations`]). The backward sweep ([`sweep`]) walks the IR in reverse
//! topological order from a target output element, applies one rule per operator
//! ([`rules`]), sums relevance where a tensor feeds several consumers and un-broadcasts it
//! to each operand's shape. Constant and shape-only subgraphs carry no relevance
//! ([`graph_info`]). Rule families per op class and presets are in [`config`]; per-operator
//! scores and the report section in [`scores`]. `optimize explain` (the command) lives in
//! the app layer and calls [`sweep`].

pub mod activations;
pub mod config;
pub mod faithfulness;
pub mod graph_info;
pub mod heatmap;
pub mod rules;
pub mod scores;
pub mod sweep;
pub mod tensor;

pub use config::{Rule, RuleConfig, SoftmaxRule, StartMode};
pub use scores::{summarize, NodeScore, RelevanceSummary};
pub use sweep::{
    explain, explain_from, explain_with, explain_with_times, Coverage, OpTimes, SampleRelevance,
    Start, Target,
};
