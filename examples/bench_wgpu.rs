//! Time per inference of a model on the wgpu executor and on onnxruntime CPU, same inputs.
//! Usage: bench_wgpu MODEL NAME=AxBxC N  → prints "wgpu_s ort_s device max_rel_err".

use optimize::data::HostTensor;
use optimize::onnx_io::load_model;
use optimize::runtime::gpu::WgpuSession;
use optimize::runtime::OrtRuntime;
use optimize::shape::infer;
use std::collections::HashMap;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        return Err("usage: bench_wgpu MODEL NAME=AxBxC N".into());
    }
    let path = std::path::Path::new(&args[1]);
    let (name, dims) = args[2]
        .split_once('=')
        .ok_or("binding must be NAME=AxBxC")?;
    let dims: Vec<i64> = dims
        .split('x')
        .map(|d| d.parse::<i64>())
        .collect::<Result<_, _>>()?;
    let n: usize = args[3].parse()?;
    let mut model = load_model(path)?;
    let bindings = HashMap::from([(name.to_string(), dims.clone())]);
    infer(&mut model, &bindings)?;
    let count: usize = dims.iter().map(|&d| d as usize).product();
    let values: Vec<f32> = (0..count)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let feed = vec![(
        name.to_string(),
        HostTensor::from_f32(dims.iter().map(|&d| d as usize).collect(), &values),
    )];
    let mut s = WgpuSession::new(&model, None)?;
    let warm = s.run(&feed)?; // compiles the pipelines, fills the buffer pool
    let mut wt = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        s.run(&feed)?;
        wt.push(t.elapsed().as_secs_f64());
    }
    let mut o = OrtRuntime::get()?.session_from_file(path)?;
    let reference = o.run(&feed)?;
    let mut ot = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        o.run(&feed)?;
        ot.push(t.elapsed().as_secs_f64());
    }
    let mut worst = 0.0f64;
    for ((_, a), (_, b)) in reference.iter().zip(&warm) {
        if let (Some(a), Some(b)) = (a.to_f64(), b.to_f64()) {
            for (x, y) in a.iter().zip(&b) {
                worst = worst.max((x - y).abs() / x.abs().max(1.0));
            }
        }
    }
    println!(
        "{:.4} {:.4} {:.3e} {}",
        median(wt),
        median(ot),
        worst,
        s.device_description().replace(' ', "_")
    );
    Ok(())
}
