//! Attribute readers with the defaults the op code passes. Shared by the op files and the
//! host-side string ops, below both so that neither imports the other for them.

use optimize_ir::ir::attr::AttrExt;
use optimize_ir::ir::Node;

pub fn attr_i(n: &Node, name: &str, default: i64) -> i64 {
    n.attr(name).and_then(|a| a.as_int()).unwrap_or(default)
}

pub fn attr_f(n: &Node, name: &str, default: f32) -> f32 {
    n.attr(name).and_then(|a| a.as_float()).unwrap_or(default)
}

pub fn attr_ints(n: &Node, name: &str) -> Option<Vec<i64>> {
    n.attr(name).and_then(|a| a.as_ints()).map(|v| v.to_vec())
}

pub fn attr_s<'a>(n: &'a Node, name: &str) -> Option<&'a str> {
    n.attr(name).and_then(|a| a.as_str())
}
