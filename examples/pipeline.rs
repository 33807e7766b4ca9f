//! Running the optimizer from Rust (for a `build.rs` or another program): the same default
//! pipeline as `optimize MODEL -o OUT`, with the report in hand.
//!
//! cargo run --example pipeline -- MODEL OUT [NAME=DIMS ...]

use optimize::{run_pipeline, PipelineOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: pipeline MODEL OUT [NAME=DIMS ...]");
        std::process::exit(2);
    }
    let mut opts = PipelineOptions::new(&args[0], &args[1]);
    match optimize::data::parse_input_shapes(&args[2..]) {
        Ok(b) => opts.bindings = b,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(e.exit_code());
        }
    }
    let outcome = match run_pipeline(&opts) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(e.exit_code());
        }
    };
    let r = &outcome.report;
    let validated = r.validation.as_ref().is_some_and(|v| v.passed);
    println!(
        "{} nodes -> {} nodes, validated: {validated}",
        r.model.nodes,
        r.output.as_ref().map_or(0, |o| o.nodes)
    );
    if let Err(e) = outcome.into_result() {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
