//! Writes PP-OCR calibration (or evaluation) inputs as .npy files: crops of the photographs
//! in the scikit-image wheel (fetched into .deps/images by scripts/setup.sh), preprocessed as
//! rapidocr does. Calibration crops come from one half of the photographs, evaluation crops
//! from the other (see `data::images::split_photographs`), so the two never share a pixel.
//!
//!   cargo run --example ppocr_calib -- KIND OUT_DIR [COUNT] [calib|eval]
//!
//! KIND: cls, rec, or det:SIDE (e.g. det:320). Then `optimize MODEL -o OUT --calib OUT_DIR`.

use optimize::data::images::{crops_from, split_photographs, CropKind};
use optimize::data::npy::write_npy;
use std::path::PathBuf;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: ppocr_calib KIND(cls|rec|det:SIDE) OUT_DIR [COUNT] [calib|eval]";
    let kind = match args.first().map(String::as_str) {
        Some("cls") => CropKind::Cls,
        Some("rec") => CropKind::Rec,
        Some(k) if k.starts_with("det:") => CropKind::Det {
            side: k[4..]
                .parse()
                .map_err(|_| format!("bad det side in '{k}'"))?,
        },
        _ => return Err(usage.into()),
    };
    let out = PathBuf::from(args.get(1).ok_or(usage)?);
    let count: usize = match args.get(2) {
        Some(c) => c.parse().map_err(|_| format!("bad COUNT '{c}'"))?,
        None => 16,
    };
    let half = args.get(3).map(String::as_str).unwrap_or("calib");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let (calib, eval) = split_photographs(&root.join(".deps/images")).map_err(|e| e.to_string())?;
    let photos = match half {
        "calib" => calib,
        "eval" => eval,
        other => return Err(format!("expected calib or eval, got '{other}'")),
    };
    let crops = crops_from(&photos, kind, count, 0).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    for (i, (_, t)) in crops.iter().enumerate() {
        write_npy(&out.join(format!("crop_{i:03}.npy")), t).map_err(|e| e.to_string())?;
    }
    println!("wrote {} {half} crops to {}", crops.len(), out.display());
    Ok(())
}
