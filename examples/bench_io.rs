//! Import+export benchmark: loads a model into the IR and writes it back, N times, and prints
//! the median seconds, this process's peak resident memory (VmHWM) and its peak heap bytes. Run by
//! scripts/bench_io.sh next to Python `onnx.load` + `onnx.save` on the same files.

use optimize::onnx_io::{load_model, save_model, ExportOptions};
use std::path::PathBuf;
use std::time::Instant;

#[path = "common/memory.rs"]
mod memory;
use memory::{peak_heap_bytes, peak_rss_bytes};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(model), Some(out)) = (args.next(), args.next()) else {
        eprintln!("usage: bench_io MODEL OUT [ITERATIONS]");
        std::process::exit(2);
    };
    let iterations: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let (model, out) = (PathBuf::from(model), PathBuf::from(out));
    let mut times = Vec::new();
    for _ in 0..iterations {
        let start = Instant::now();
        let m = match load_model(&model) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        };
        if let Err(e) = save_model(&m, &out, &ExportOptions::default()) {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{:.4} {} {}",
        times[times.len() / 2],
        peak_rss_bytes(),
        peak_heap_bytes()
    );
}
