//! Import+export benchmark: loads a model into the IR and writes it back, N times, and prints
//! the median seconds, this process's peak resident memory (VmHWM) and its peak heap bytes. Run by
//! scripts/bench_io.sh next to Python `onnx.load` + `onnx.save` on the same files.

use optimize::onnx_io::{load_model, save_model, ExportOptions};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Counts live heap bytes and their peak, so the figure is the memory import+export
/// itself needs, apart from the process's code and libraries.
struct CountingAlloc;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

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
        PEAK.load(Ordering::Relaxed)
    );
}
