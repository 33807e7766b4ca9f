//! Heatmap PNGs of image-input relevance: channels summed, red for positive, blue for
//! negative, white for zero, scaled by the largest |R|.

use super::tensor::T;
use optimize_ir::error::{Error, Result};
use std::path::Path;

/// True when the relevance has the layout of an image batch [N, C, H, W] with 1 ≤ C ≤ 4.
pub fn is_image(shape: &[usize]) -> bool {
    shape.len() == 4 && (1..=4).contains(&shape[1]) && shape[2] > 1 && shape[3] > 1
}

/// RGB pixels (row-major, H×W×3) of the first image of `r` [N, C, H, W].
pub fn heatmap_rgb(r: &T) -> Result<(u32, u32, Vec<u8>)> {
    let s = r.shape();
    if !is_image(s) {
        return Err(Error::Internal(format!(
            "heatmap of a tensor of shape {s:?}"
        )));
    }
    let (c, h, w) = (s[1], s[2], s[3]);
    let mut sum = vec![0.0f64; h * w];
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                sum[y * w + x] += r[[0, ch, y, x]];
            }
        }
    }
    let m = sum.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let mut px = Vec::with_capacity(h * w * 3);
    for v in sum {
        let t = if m > 0.0 {
            (v / m).clamp(-1.0, 1.0)
        } else {
            0.0
        };
        let fade = (255.0 * (1.0 - t.abs())).round() as u8;
        if t >= 0.0 {
            px.extend([255, fade, fade]);
        } else {
            px.extend([fade, fade, 255]);
        }
    }
    Ok((w as u32, h as u32, px))
}

/// Writes the heatmap of `r` to `path` as an 8-bit RGB PNG.
pub fn write_heatmap(path: &Path, r: &T) -> Result<()> {
    let (w, h, px) = heatmap_rgb(r)?;
    let werr = |e: &dyn std::fmt::Display| Error::input(path, format!("cannot write: {e}"));
    let file = std::fs::File::create(path).map_err(|e| werr(&e))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(|e| werr(&e))?;
    writer.write_image_data(&px).map_err(|e| werr(&e))?;
    writer.finish().map_err(|e| werr(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn};

    #[test]
    fn png_round_trip() {
        let mut r = ArrayD::<f64>::zeros(IxDyn(&[1, 3, 2, 3]));
        r[[0, 0, 0, 0]] = 2.0;
        r[[0, 1, 0, 0]] = 2.0; // channel sum 4 = the maximum
        r[[0, 2, 1, 2]] = -2.0; // half the maximum, negative
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h.png");
        write_heatmap(&p, &r).unwrap();
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&p).unwrap()));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (3, 2));
        assert_eq!(&buf[0..3], &[255, 0, 0]);
        assert_eq!(&buf[3..6], &[255, 255, 255]);
        assert_eq!(&buf[15..18], &[128, 128, 255]);
        assert!(!is_image(&[1, 5, 4, 4]));
    }
}
