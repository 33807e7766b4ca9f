//! ONNX files ⇄ IR: parsing, external data, type conversion, and atomic writes.

pub mod export;
pub mod external;
pub mod import;
pub mod limits;
pub mod type_proto;

pub use export::{save_model, to_proto, ExportOptions};
pub use import::{load_model, model_from_bytes, model_from_proto};
