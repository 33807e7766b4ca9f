//! Fused-layer tiling: when the scratchpad is smaller than what one operator needs whole
//! (M_R), run chains and sub-graphs of spatial operators (convolutions, pooling,
//! elementwise, Resize, channel Concat) as cascades, stripe by stripe along H and band by
//! band along W, so only small rings of rows stay on chip (after Alwani et al., "Fused-layer
//! CNN accelerators", and Arm Vela's cascades; see `shared/reference/tiling.md`).
//!
//! * [`halo`]: receptive-field arithmetic; [`classify`]: which operators tile, and how;
//! * [`graph`]: the tiling view of a model; [`segment`]: one cascade's structure;
//! * [`simulate`]: the pull schedule of a cascade (ring sizes, traffic, events);
//! * [`search`]: the dynamic program over cascade boundaries and cuts;
//!   [`baselines`]: layer by layer and greedy (Vela-style) cascades;
//! * [`residency`]: which boundary tensors stay on chip (an ILP), and placement;
//! * [`assemble`]: the plan ([`plan`]); [`check`]: the independent checker;
//! * [`run`]: everything together; [`rewrite`]: the tiled ONNX graph;
//! * [`pass`]: the scheduling pass that tiles below M_R; [`report`]: its report section.

pub mod assemble;
pub mod baselines;
pub mod check;
pub mod classify;
pub mod graph;
pub mod grow;
pub mod halo;
pub mod pass;
pub mod plan;
pub mod report;
pub mod residency;
pub mod rewrite;
pub mod run;
pub mod search;
pub mod segment;
pub mod simulate;
pub mod submodel;
pub mod verify;

pub use pass::TiledSchedulePass;
