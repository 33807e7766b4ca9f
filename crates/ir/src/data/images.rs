//! Real image inputs: PNG decoding, crops, bilinear resize and the PP-OCR preprocessing of
//! rapidocr-onnxruntime 1.4.4, so calibration and evaluation can use real photographs (the
//! scikit-image wheel's, extracted into `.deps/images/` by `scripts/setup.sh`) instead of noise.
//!
//! The preprocessing follows rapidocr 1.4.4's Python sources:
//! * images are BGR (rapidocr converts RGB → BGR on load; gray is replicated, alpha is composited
//!   the way its `LoadImage` does);
//! * det (`DetPreProcess`): resize so the shorter side is at least `limit_side_len`
//!   (`limit_type: min`), each side rounded to a multiple of 32, then `(x/255 − 0.5)/0.5`;
//! * rec/cls (`resize_norm_img`): resize to height 48 keeping the aspect ratio (width
//!   `ceil(48·w/h)`, at most the target width), `(x/255 − 0.5)/0.5`, zero-padded on the right.
//!
//! `cv2.resize` (INTER_LINEAR, half-pixel centres, fixed-point weights) is approximated by a float
//! bilinear resize with the same sampling positions; values differ by at most one grey level.

use super::HostTensor;
use crate::error::{Error, Result};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

/// An 8-bit RGB image (row-major, 3 bytes a pixel, alpha already composited).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl Image {
    /// The RGB triple at (x, y).
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = 3 * (y * self.width + x);
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// The image turned by 180° (what the cls model's "180" class means).
    pub fn rotate180(&self) -> Image {
        let mut rgb = Vec::with_capacity(self.rgb.len());
        for px in self.rgb.chunks_exact(3).rev() {
            rgb.extend_from_slice(px);
        }
        Image {
            width: self.width,
            height: self.height,
            rgb,
        }
    }
}

/// Largest image decoded (pixels); guards against absurd headers.
const MAX_PIXELS: usize = 1 << 26;

/// Decodes a PNG of any colour type and bit depth into 8-bit RGB.
pub fn load_png(path: &Path) -> Result<Image> {
    let bytes = crate::bounded_read::read_regular(path, "PNG image")?;
    decode_png(&bytes).map_err(|msg| Error::input(path, msg))
}

/// Decodes PNG bytes (see [`load_png`]).
pub fn decode_png(bytes: &[u8]) -> std::result::Result<Image, String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    // Palette → RGB(A), low bit depths → 8 bits, tRNS → alpha; 16-bit kept and reduced below.
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder
        .read_info()
        .map_err(|e| format!("not a valid PNG: {e}"))?;
    let (w, h) = {
        let info = reader.info();
        (info.width as usize, info.height as usize)
    };
    if w == 0 || h == 0 || w.saturating_mul(h) > MAX_PIXELS {
        return Err(format!("unsupported image size {w}x{h}"));
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| "image too large".to_string())?;
    let mut buf = vec![0u8; size];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("corrupt PNG data: {e}"))?;
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err("palette was not expanded".into()),
    };
    let sample_bytes = match frame.bit_depth {
        png::BitDepth::Sixteen => 2,
        png::BitDepth::Eight => 1,
        other => return Err(format!("bit depth {other:?} was not expanded")),
    };
    let stride = frame.line_size;
    if stride < w * channels * sample_bytes || buf.len() < stride * h {
        return Err("decoded buffer is smaller than the image".into());
    }
    // 16-bit samples keep their high byte (big-endian in PNG), as PIL does when converting to 8 bits.
    let sample = |y: usize, x: usize, c: usize| -> u8 {
        buf[y * stride + (x * channels + c) * sample_bytes]
    };
    let mut gray_alpha = Vec::new();
    let mut rgba = Vec::new();
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            match channels {
                1 => {
                    let g = sample(y, x, 0);
                    rgb.extend_from_slice(&[g, g, g]);
                }
                2 => gray_alpha.push([sample(y, x, 0), sample(y, x, 1)]),
                3 => rgb.extend_from_slice(&[sample(y, x, 0), sample(y, x, 1), sample(y, x, 2)]),
                _ => rgba.push([
                    sample(y, x, 0),
                    sample(y, x, 1),
                    sample(y, x, 2),
                    sample(y, x, 3),
                ]),
            }
        }
    }
    if channels == 2 {
        rgb = composite_gray_alpha(&gray_alpha);
    } else if channels == 4 {
        rgb = composite_rgba(&rgba);
    }
    Ok(Image {
        width: w,
        height: h,
        rgb,
    })
}

/// rapidocr's `cvt_two_to_three`: gray where alpha > 0, plus (255 − alpha), saturating.
fn composite_gray_alpha(px: &[[u8; 2]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(px.len() * 3);
    for &[g, a] in px {
        let v = if a > 0 { g } else { 0 }.saturating_add(255 - a);
        out.extend_from_slice(&[v, v, v]);
    }
    out
}

/// rapidocr's `cvt_four_to_three`: colour masked by alpha > 0; if the masked image is all black,
/// (255 − alpha) is added, otherwise the masked image is inverted (sic, as rapidocr does).
fn composite_rgba(px: &[[u8; 4]]) -> Vec<u8> {
    let masked: Vec<[u8; 3]> = px
        .iter()
        .map(|&[r, g, b, a]| if a > 0 { [r, g, b] } else { [0, 0, 0] })
        .collect();
    let any_color = masked.iter().any(|p| p.iter().any(|&v| v > 0));
    let mut out = Vec::with_capacity(px.len() * 3);
    for (m, p) in masked.iter().zip(px) {
        for &v in m {
            out.push(if any_color {
                255 - v
            } else {
                v.saturating_add(255 - p[3])
            });
        }
    }
    out
}

/// The `w`×`h` region at (x, y), clipped to the image (at least 1×1).
pub fn crop(img: &Image, x: usize, y: usize, w: usize, h: usize) -> Image {
    let x = x.min(img.width.saturating_sub(1));
    let y = y.min(img.height.saturating_sub(1));
    let w = w.clamp(1, img.width - x);
    let h = h.clamp(1, img.height - y);
    let mut rgb = Vec::with_capacity(w * h * 3);
    for row in y..y + h {
        let start = 3 * (row * img.width + x);
        rgb.extend_from_slice(&img.rgb[start..start + 3 * w]);
    }
    Image {
        width: w,
        height: h,
        rgb,
    }
}

/// Bilinear resize to `w`×`h` with `cv2.resize`'s sampling positions (half-pixel centres,
/// clamped at the border), rounded to 8 bits.
pub fn resize(img: &Image, w: usize, h: usize) -> Image {
    let w = w.max(1);
    let h = h.max(1);
    if w == img.width && h == img.height {
        return img.clone();
    }
    let taps = |dst: usize, src: usize| -> Vec<(usize, usize, f32)> {
        let scale = src as f64 / dst as f64;
        (0..dst)
            .map(|d| {
                let s = ((d as f64 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (s.floor() as usize).min(src - 1);
                let i1 = (i0 + 1).min(src - 1);
                (i0, i1, (s - i0 as f64).clamp(0.0, 1.0) as f32)
            })
            .collect()
    };
    let xs = taps(w, img.width);
    let ys = taps(h, img.height);
    let mut rgb = Vec::with_capacity(w * h * 3);
    for &(y0, y1, fy) in &ys {
        for &(x0, x1, fx) in &xs {
            for c in 0..3 {
                let at = |x: usize, y: usize| img.rgb[3 * (y * img.width + x) + c] as f32;
                let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
                let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
                let v = top * (1.0 - fy) + bottom * fy;
                rgb.push(v.round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    Image {
        width: w,
        height: h,
        rgb,
    }
}

/// NCHW `[1, 3, H, W]` tensor in BGR order with `(x/255 − 0.5)/0.5`, left-aligned in a
/// zero-filled `width` (the part right of the image stays 0).
fn to_bgr_tensor(img: &Image, width: usize) -> HostTensor {
    let (h, w) = (img.height, img.width.min(width));
    let mut values = vec![0f32; 3 * h * width];
    for y in 0..h {
        for x in 0..w {
            let px = img.pixel(x, y);
            for (c, &v) in [px[2], px[1], px[0]].iter().enumerate() {
                values[(c * h + y) * width + x] = (v as f32 / 255.0 - 0.5) / 0.5;
            }
        }
    }
    HostTensor::from_f32(vec![1, 3, h, width], &values)
}

/// The det model's input as rapidocr builds it with `limit_type: min` and `limit_side_len = side`
/// (736 in its config): upscale so the shorter side is at least `side`, round both sides to a
/// multiple of 32, normalize with mean = std = 0.5 in BGR order.
pub fn ppocr_det_input(img: &Image, side: usize) -> HostTensor {
    let (h, w) = (img.height as f64, img.width as f64);
    let ratio = if h.min(w) < side as f64 {
        side as f64 / h.min(w)
    } else {
        1.0
    };
    let round32 = |v: f64| (((v * ratio).floor() / 32.0).round_ties_even() as usize * 32).max(32);
    let resized = resize(img, round32(w), round32(h));
    to_bgr_tensor(&resized, resized.width)
}

/// The rec (48×320) / cls (48×192) input as rapidocr's `resize_norm_img` builds it: height
/// `height`, width `ceil(height·w/h)` capped at `width`, normalized, zero-padded on the right.
/// (rapidocr's rec widens the batch beyond 320 for lines wider than 320/48; with a fixed
/// `width` such lines are squeezed instead, as its cls does.)
pub fn ppocr_line_input(img: &Image, height: usize, width: usize) -> HostTensor {
    let ratio = img.width as f64 / img.height as f64;
    let scaled = (height as f64 * ratio).ceil() as usize;
    let resized_w = scaled.clamp(1, width);
    let resized = resize(img, resized_w, height);
    to_bgr_tensor(&resized, width)
}

/// What [`crops`] generates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CropKind {
    /// Square crops resized to `side`×`side` (a multiple of 32), det preprocessing.
    Det { side: usize },
    /// Wide text-like strips, 48×320 rec preprocessing.
    Rec,
    /// Wide text-like strips, half of them turned by 180°, 48×192 cls preprocessing.
    Cls,
}

/// Photographs with printed text; text-like crops prefer them.
const TEXT_PHOTOS: [&str; 2] = ["page.png", "text.png"];
/// Images smaller than this (shorter side) are skipped: too small for a det crop.
const MIN_SIDE: usize = 150;

/// The usable photographs of `dir` (`*.png`, shorter side ≥ 150), sorted by name.
pub fn photographs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::input(
            dir,
            format!("cannot list images: {e} (run scripts/setup.sh)"),
        )
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::input(dir, e))?.path();
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"))
        {
            let img = load_png(&path)?;
            if img.width.min(img.height) >= MIN_SIDE {
                files.push(path);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::input(
            dir,
            "no PNG photographs (run scripts/setup.sh)",
        ));
    }
    Ok(files)
}

/// Which part of a photograph crops may come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Whole,
    TopHalf,
    BottomHalf,
}

/// A photograph, or one half of it, to crop from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Photo {
    pub path: PathBuf,
    pub part: Part,
}

impl Photo {
    pub fn whole(path: PathBuf) -> Photo {
        Photo {
            path,
            part: Part::Whole,
        }
    }

    /// `page.png`, or `page.png[top]` / `page.png[bottom]` for a half.
    pub fn name(&self) -> String {
        let file = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match self.part {
            Part::Whole => file,
            Part::TopHalf => format!("{file}[top]"),
            Part::BottomHalf => format!("{file}[bottom]"),
        }
    }

    /// The decoded photograph, cut to its part.
    pub fn load(&self) -> Result<Image> {
        let img = load_png(&self.path)?;
        let half = img.height / 2;
        Ok(match self.part {
            Part::Whole => img,
            Part::TopHalf => crop(&img, 0, 0, img.width, half),
            Part::BottomHalf => crop(&img, 0, half, img.width, img.height - half),
        })
    }
}

/// Splits the photographs of `dir` into two disjoint sets (calibration, evaluation): by name,
/// alternately, except the two with text. `page.png` is the only photograph whose text PP-OCR
/// det finds (text.png's noisy lettering gives an empty map), and a calibration that never sees
/// text ranges the det output to ~0 and erases every detection; so page.png's top half goes to
/// calibration and its bottom half (no shared pixel) to evaluation; text.png to calibration.
pub fn split_photographs(dir: &Path) -> Result<(Vec<Photo>, Vec<Photo>)> {
    let (mut calib, mut eval) = (Vec::new(), Vec::new());
    let mut k = 0;
    for path in photographs(dir)? {
        let p = Photo::whole(path);
        match p.name().as_str() {
            "text.png" => calib.push(p),
            "page.png" => {
                calib.push(Photo {
                    path: p.path.clone(),
                    part: Part::TopHalf,
                });
                eval.push(Photo {
                    path: p.path,
                    part: Part::BottomHalf,
                });
            }
            _ => {
                if k % 2 == 0 {
                    calib.push(p)
                } else {
                    eval.push(p)
                }
                k += 1;
            }
        }
    }
    Ok((calib, eval))
}

/// `count` deterministic crops from every usable photograph of `dir` (see [`crops_from`]).
pub fn crops(
    dir: &Path,
    kind: CropKind,
    count: usize,
    seed: u64,
) -> Result<Vec<(String, HostTensor)>> {
    let photos: Vec<Photo> = photographs(dir)?.into_iter().map(Photo::whole).collect();
    crops_from(&photos, kind, count, seed)
}

/// `count` crops of the given photographs, preprocessed for `kind`, deterministic for `seed`.
/// Each is named `photo.png@x,y,wxh` (plus `,rot180` for turned cls crops; x, y within the part).
/// Half the crops come from the photographs with text (when present), so det maps and rec
/// sequences are not empty; text-like kinds are strips 24–64 px high (as a detected line would
/// be) and 2–6.5 times as wide; det crops are squares of a third to all of the shorter side.
pub fn crops_from(
    files: &[Photo],
    kind: CropKind,
    count: usize,
    seed: u64,
) -> Result<Vec<(String, HostTensor)>> {
    if files.is_empty() {
        return Err(Error::Usage("no photographs to crop from".into()));
    }
    if let CropKind::Det { side } = kind {
        if side == 0 || side % 32 != 0 {
            return Err(Error::Usage(format!(
                "det crop side {side} is not a positive multiple of 32"
            )));
        }
    }
    let images: Vec<(String, Image)> = files
        .iter()
        .map(|p| p.load().map(|img| (p.name(), img)))
        .collect::<Result<_>>()?;
    let text: Vec<usize> = (0..images.len())
        .filter(|&i| TEXT_PHOTOS.iter().any(|t| images[i].0.starts_with(t)))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut uniform = |n: usize| -> usize { (rng.next_u64() % n.max(1) as u64) as usize };
    let mut out = Vec::with_capacity(count);
    for k in 0..count {
        let line = !matches!(kind, CropKind::Det { .. });
        let idx = if !text.is_empty() && k % 2 == 0 {
            text[uniform(text.len())]
        } else {
            uniform(images.len())
        };
        let (name, img) = &images[idx];
        let (cw, ch) = if line {
            let ch = (24 + uniform(41)).min(img.height);
            let aspect10 = 20 + uniform(46); // 2.0 .. 6.5
            ((ch * aspect10 / 10).clamp(1, img.width), ch)
        } else {
            let short = img.width.min(img.height);
            let lo = (short / 3).max(32).min(short);
            let s = lo + uniform(short - lo + 1);
            (s, s)
        };
        let x = uniform(img.width - cw + 1);
        let y = uniform(img.height - ch + 1);
        let piece = crop(img, x, y, cw, ch);
        let mut label = format!("{name}@{x},{y},{cw}x{ch}");
        let tensor = match kind {
            CropKind::Det { side } => ppocr_det_input(&resize(&piece, side, side), side),
            CropKind::Rec => ppocr_line_input(&piece, 48, 320),
            CropKind::Cls => {
                let piece = if uniform(2) == 1 {
                    label.push_str(",rot180");
                    piece.rotate180()
                } else {
                    piece
                };
                ppocr_line_input(&piece, 48, 192)
            }
        };
        out.push((label, tensor));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(
        w: u32,
        h: u32,
        color: png::ColorType,
        depth: png::BitDepth,
        data: &[u8],
        palette: Option<Vec<u8>>,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(color);
            enc.set_depth(depth);
            if let Some(p) = palette {
                enc.set_palette(p);
            }
            let mut wr = enc.write_header().unwrap();
            wr.write_image_data(data).unwrap();
        }
        out
    }

    #[test]
    fn decodes_every_color_type() {
        use png::{BitDepth as D, ColorType as C};
        let gray = decode_png(&encode(2, 1, C::Grayscale, D::Eight, &[10, 200], None)).unwrap();
        assert_eq!(gray.rgb, vec![10, 10, 10, 200, 200, 200]);
        let rgb = decode_png(&encode(1, 1, C::Rgb, D::Eight, &[1, 2, 3], None)).unwrap();
        assert_eq!(rgb.rgb, vec![1, 2, 3]);
        let rgb16 =
            decode_png(&encode(1, 1, C::Rgb, D::Sixteen, &[1, 9, 2, 9, 3, 9], None)).unwrap();
        assert_eq!(rgb16.rgb, vec![1, 2, 3]);
        let pal = decode_png(&encode(
            2,
            1,
            C::Indexed,
            D::Eight,
            &[1, 0],
            Some(vec![5, 6, 7, 50, 60, 70]),
        ))
        .unwrap();
        assert_eq!(pal.rgb, vec![50, 60, 70, 5, 6, 7]);
        // Gray+alpha: opaque keeps gray, transparent becomes white (255 − 0 added to 0).
        let ga = decode_png(&encode(
            2,
            1,
            C::GrayscaleAlpha,
            D::Eight,
            &[40, 255, 40, 0],
            None,
        ))
        .unwrap();
        assert_eq!(ga.rgb, vec![40, 40, 40, 255, 255, 255]);
        // RGBA with colour: rapidocr inverts the masked image.
        let rgba = decode_png(&encode(1, 1, C::Rgba, D::Eight, &[10, 20, 30, 255], None)).unwrap();
        assert_eq!(rgba.rgb, vec![245, 235, 225]);
        let gray4 = decode_png(&encode(2, 1, C::Grayscale, D::Four, &[0x0F], None)).unwrap();
        assert_eq!(gray4.width, 2);
        assert!(decode_png(b"not a png").is_err());
    }

    #[test]
    fn crop_resize_and_rotate() {
        let img = Image {
            width: 4,
            height: 2,
            rgb: (0..24).collect(),
        };
        let c = crop(&img, 1, 1, 2, 5);
        assert_eq!((c.width, c.height), (2, 1));
        assert_eq!(c.rgb, vec![15, 16, 17, 18, 19, 20]);
        // Same size is the identity; 2× upscale of a 2-pixel ramp interpolates at quarter points.
        assert_eq!(resize(&img, 4, 2), img);
        let ramp = Image {
            width: 2,
            height: 1,
            rgb: vec![0, 0, 0, 100, 100, 100],
        };
        let up = resize(&ramp, 4, 1);
        assert_eq!(
            up.rgb.chunks(3).map(|p| p[0]).collect::<Vec<_>>(),
            vec![0, 25, 75, 100]
        );
        assert_eq!(img.rotate180().rotate180(), img);
        assert_eq!(img.rotate180().pixel(0, 0), img.pixel(3, 1));
    }

    #[test]
    fn ppocr_preprocessing_matches_rapidocr() {
        // A 10×40 strip: rec width ceil(48·4) = 192 ≤ 320, padded with zeros to 320.
        let img = Image {
            width: 40,
            height: 10,
            rgb: [255u8, 0, 0].repeat(400),
        };
        let t = ppocr_line_input(&img, 48, 320);
        assert_eq!(t.shape, vec![1, 3, 48, 320]);
        let v = t.as_f32().unwrap();
        // BGR: channel 0 is blue (0 → −1), channel 2 is red (255 → 1); the padding is 0.
        assert_eq!(v[0], -1.0);
        assert_eq!(v[2 * 48 * 320], 1.0);
        assert_eq!(v[191], -1.0);
        assert_eq!(v[192], 0.0);
        // cls caps the width at 192.
        let wide = Image {
            width: 100,
            height: 10,
            rgb: vec![128; 3000],
        };
        assert_eq!(ppocr_line_input(&wide, 48, 192).shape, vec![1, 3, 48, 192]);
        // det: 100×50 with limit 64 → ratio 64/50, sides 128×64 rounded to multiples of 32.
        let d = ppocr_det_input(&wide, 64);
        assert_eq!(d.shape, vec![1, 3, 64, 640]);
        let small = Image {
            width: 100,
            height: 50,
            rgb: vec![0; 15000],
        };
        assert_eq!(ppocr_det_input(&small, 64).shape, vec![1, 3, 64, 128]);
    }

    #[test]
    fn crops_are_deterministic_and_disjoint_sets() {
        // The workspace root, two levels above this crate (crates/ir).
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.deps/images");
        let (calib, eval) =
            split_photographs(&dir).expect("photographs missing: run scripts/setup.sh");
        assert!(!calib.is_empty() && !eval.is_empty());
        assert!(calib.iter().all(|p| !eval.contains(p)));
        // Only page.png is in both sets, as disjoint halves.
        let shared: Vec<String> = calib
            .iter()
            .filter(|c| eval.iter().any(|e| e.path == c.path))
            .map(Photo::name)
            .collect();
        assert_eq!(shared, vec!["page.png[top]".to_string()]);
        let top = calib
            .iter()
            .find(|p| p.part == Part::TopHalf)
            .unwrap()
            .load()
            .unwrap();
        let bottom = eval
            .iter()
            .find(|p| p.part == Part::BottomHalf)
            .unwrap()
            .load()
            .unwrap();
        let whole = load_png(&dir.join("page.png")).unwrap();
        assert_eq!(top.height + bottom.height, whole.height);
        assert_eq!(bottom.pixel(0, 0), whole.pixel(0, top.height));
        let a = crops_from(&calib, CropKind::Cls, 6, 3).unwrap();
        let b = crops_from(&calib, CropKind::Cls, 6, 3).unwrap();
        assert_eq!(a, b);
        assert!(a.iter().all(|(_, t)| t.shape == vec![1, 3, 48, 192]));
        let d = crops_from(&eval, CropKind::Det { side: 64 }, 2, 1).unwrap();
        assert!(d.iter().all(|(_, t)| t.shape == vec![1, 3, 64, 64]));
        let r = crops(&dir, CropKind::Rec, 3, 0).unwrap();
        assert!(r.iter().all(|(_, t)| t.shape == vec![1, 3, 48, 320]));
        assert!(crops_from(&calib, CropKind::Det { side: 50 }, 1, 0).is_err());
    }
}
