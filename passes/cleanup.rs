//! Canonical clean-up that changes no result: removes Identity nodes (rewiring their
//! readers), operators whose outputs nobody reads, and initializers nobody reads.
//!
//! Tensors read by name inside subgraphs, graph outputs, and initializers that are also
//! graph inputs (overridable, IR < 4) are never touched.

use crate::error::Result;
use crate::ir::attr::outer_scope_reads;
use crate::ir::Model;
use crate::pass_manager::{Pass, PassChanges};
use std::collections::{HashMap, HashSet};

pub struct Cleanup;

impl Pass for Cleanup {
    fn name(&self) -> &'static str {
        "cleanup"
    }

    fn run(&self, model: &mut Model) -> Result<PassChanges> {
        let mut changes = PassChanges::default();
        changes.add("removed_identity", remove_identities(model));
        changes.add("removed_dead_nodes", remove_dead_nodes(model));
        changes.add("removed_initializers", remove_unused_initializers(model));
        Ok(changes)
    }
}

/// Names read by any subgraph of any node: those must keep their producers and names.
fn subgraph_reads(model: &Model) -> HashSet<String> {
    model
        .graph
        .nodes()
        .flat_map(|(_, n)| {
            n.subgraphs()
                .flat_map(outer_scope_reads)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn remove_identities(model: &mut Model) -> u64 {
    let protected = subgraph_reads(model);
    let g = &mut model.graph;
    let outputs: HashSet<String> = g.outputs.iter().cloned().collect();
    let mut rename: HashMap<String, String> = HashMap::new();
    let mut doomed = Vec::new();
    for (idx, n) in g.nodes() {
        if n.is("Identity")
            && n.inputs.len() == 1
            && n.outputs.len() == 1
            && !n.inputs[0].is_empty()
        {
            let out = &n.outputs[0];
            if !outputs.contains(out) && !protected.contains(out) {
                rename.insert(out.clone(), n.inputs[0].clone());
                doomed.push(idx);
            }
        }
    }
    let resolve = |mut name: String| {
        while let Some(next) = rename.get(&name) {
            name = next.clone();
        }
        name
    };
    for idx in &doomed {
        g.remove_node(*idx);
    }
    let order = g.order.clone();
    for idx in order {
        let node = &mut g.ops[idx];
        for inp in node.inputs.iter_mut() {
            if rename.contains_key(inp) {
                *inp = resolve(inp.clone());
            }
        }
    }
    for name in rename.keys() {
        g.values.remove(name);
    }
    g.value_info_names.retain(|n| !rename.contains_key(n));
    doomed.len() as u64
}

fn remove_dead_nodes(model: &mut Model) -> u64 {
    let protected = subgraph_reads(model);
    let g = &mut model.graph;
    let mut removed = 0;
    loop {
        let mut read: HashSet<&str> = g.outputs.iter().map(|s| s.as_str()).collect();
        read.extend(protected.iter().map(|s| s.as_str()));
        for (_, n) in g.nodes() {
            read.extend(n.inputs.iter().map(|s| s.as_str()));
        }
        let dead: Vec<_> = g
            .nodes()
            .filter(|(_, n)| {
                n.outputs
                    .iter()
                    .all(|o| o.is_empty() || !read.contains(o.as_str()))
            })
            .map(|(i, _)| i)
            .collect();
        if dead.is_empty() {
            break;
        }
        for idx in dead {
            if let Some(n) = g.remove_node(idx) {
                for o in &n.outputs {
                    g.values.remove(o);
                }
                g.value_info_names.retain(|v| !n.outputs.contains(v));
                removed += 1;
            }
        }
    }
    removed
}

fn remove_unused_initializers(model: &mut Model) -> u64 {
    let protected = subgraph_reads(model);
    let g = &mut model.graph;
    let mut read: HashSet<String> = g.outputs.iter().cloned().collect();
    read.extend(protected);
    read.extend(g.inputs.iter().cloned());
    for (_, n) in g.nodes() {
        read.extend(n.inputs.iter().cloned());
    }
    let unused: Vec<String> = g
        .initializers
        .keys()
        .filter(|k| !read.contains(*k))
        .cloned()
        .collect();
    for k in &unused {
        g.initializers.shift_remove(k);
        g.values.remove(k);
        g.value_info_names.retain(|v| v != k);
    }
    unused.len() as u64
}
