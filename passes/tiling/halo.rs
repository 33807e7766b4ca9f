//! Receptive-field arithmetic along one axis (rows or columns): which input range an
//! output range of a convolution, pooling window, transposed convolution or integer
//! upsampling needs, and the padding a tile of the operator must add so that it computes
//! exactly the rows the whole operator computes there (padding exists only at the image
//! borders; a tile in the interior reads real rows instead).
//!
//! Window rule (Alwani et al., Vela's `_required_size`): with span `e = (k−1)·d + 1`, the
//! output rows `[o0, o1)` read `a = o0·s − p_begin` to `b = (o1−1)·s − p_begin + e`; the
//! tile reads `[max(a,0), min(b,len))` and pads `max(0,−a)` before, `max(0,b−len)` after.
//! For a pooling window in `ceil_mode` the last tile's `b` may pass `len + p_end`: the tile
//! then pads to `b` and runs in floor mode, which gives the same rows.

/// One axis of a sliding window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowAxis {
    pub kernel: i64,
    pub stride: i64,
    pub dilation: i64,
    pub pad_begin: i64,
    pub pad_end: i64,
}

/// An input range `[lo, hi)` (clipped to the tensor) and the padding the tile adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Need {
    pub lo: i64,
    pub hi: i64,
    pub pad_lo: i64,
    pub pad_hi: i64,
}

impl Need {
    /// The range `[lo, hi)` read as is, without padding.
    pub fn plain(lo: i64, hi: i64) -> Need {
        Need {
            lo,
            hi,
            pad_lo: 0,
            pad_hi: 0,
        }
    }
}

impl WindowAxis {
    /// Rows one output row spans: `(k − 1)·d + 1`.
    pub fn span(&self) -> i64 {
        (self.kernel - 1) * self.dilation + 1
    }

    /// The input rows output rows `[o0, o1)` need from an input of `len` rows.
    pub fn input_for(&self, o0: i64, o1: i64, len: i64) -> Need {
        if o1 <= o0 {
            return Need::plain(0, 0);
        }
        let a = o0 * self.stride - self.pad_begin;
        let b = (o1 - 1) * self.stride - self.pad_begin + self.span();
        // The pads count only the rows of [a, b) outside the tensor: a tile lying wholly in
        // the padding (a pad wider than the window's span) pads just what it reads.
        Need {
            lo: a.clamp(0, len),
            hi: b.clamp(0, len),
            pad_lo: (b.min(0) - a).max(0),
            pad_hi: (b - a.max(len)).max(0),
        }
    }

    /// Output rows of the operator over `len` input rows in floor mode with the given pads.
    pub fn out_len(&self, len: i64, pad_lo: i64, pad_hi: i64) -> i64 {
        let num = len + pad_lo + pad_hi - self.span();
        if num < 0 {
            0
        } else {
            num / self.stride + 1
        }
    }

    /// Input rows that output rows `[o0, o1)` of the *transposed* convolution receive
    /// contributions from (`y = x·s − p_begin + i·d`), clipped to `len` inputs. The tile
    /// runs unpadded over them; its first output row is global row `x0·s − p_begin`.
    pub fn transposed_input_for(&self, o0: i64, o1: i64, len: i64) -> (i64, i64) {
        if o1 <= o0 {
            return (0, 0);
        }
        let s = self.stride;
        let x0 = div_ceil(o0 + self.pad_begin - self.span() + 1, s).clamp(0, len);
        let x1 = (div_floor(o1 - 1 + self.pad_begin, s) + 1).clamp(0, len);
        (x0, x1)
    }
}

/// How an upsampling `Resize` maps output coordinates to input ones (ONNX Resize-11+).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coord {
    Asymmetric,
    HalfPixel,
    PytorchHalfPixel,
}

/// Rounding of a nearest-neighbour source coordinate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nearest {
    Floor,
    Ceil,
    RoundPreferFloor,
    RoundPreferCeil,
}

/// One axis of an integer-scale upsampling (`Resize` with scale `scale ≥ 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resample {
    pub scale: i64,
    /// Linear interpolation (else nearest).
    pub linear: bool,
    pub coord: Coord,
    pub nearest: Nearest,
}

impl Resample {
    /// The source coordinate of output row `y` (before clamping), as onnxruntime computes it.
    pub fn source(&self, y: i64, out_len: i64) -> f64 {
        let r = self.scale as f64;
        match self.coord {
            Coord::Asymmetric => y as f64 / r,
            Coord::HalfPixel => (y as f64 + 0.5) / r - 0.5,
            Coord::PytorchHalfPixel if out_len > 1 => (y as f64 + 0.5) / r - 0.5,
            Coord::PytorchHalfPixel => 0.0,
        }
    }

    /// The lowest and highest input rows output row `y` reads.
    pub fn taps(&self, y: i64, in_len: i64, out_len: i64) -> (i64, i64) {
        let x = self.source(y, out_len);
        let last = in_len - 1;
        if self.linear {
            let x = x.clamp(0.0, last as f64);
            let f = x.floor() as i64;
            (f.clamp(0, last), (f + 1).clamp(0, last))
        } else {
            let i = match self.nearest {
                Nearest::Floor => x.floor(),
                Nearest::Ceil => x.ceil(),
                Nearest::RoundPreferFloor => {
                    if x - x.floor() == 0.5 {
                        x.floor()
                    } else {
                        x.round()
                    }
                }
                Nearest::RoundPreferCeil => {
                    if x - x.floor() == 0.5 {
                        x.ceil()
                    } else {
                        x.round()
                    }
                }
            } as i64;
            (i.clamp(0, last), i.clamp(0, last))
        }
    }

    /// Input rows `[i0, i1)` whose upsampling, cropped to `[o0 − i0·scale, o1 − i0·scale)`,
    /// gives output rows `[o0, o1)` exactly (the source coordinates shift by `i0` and no
    /// tap of the crop falls outside the tile).
    pub fn input_for(&self, o0: i64, o1: i64, in_len: i64, out_len: i64) -> (i64, i64) {
        if o1 <= o0 {
            return (0, 0);
        }
        let (lo, _) = self.taps(o0, in_len, out_len);
        let (_, hi) = self.taps(o1 - 1, in_len, out_len);
        (lo, (hi + 1).min(in_len))
    }
}

pub fn div_floor(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

pub fn div_ceil(a: i64, b: i64) -> i64 {
    -((-a).div_euclid(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force: the hull of every tap of every output row, and the taps outside.
    fn brute(w: &WindowAxis, o0: i64, o1: i64, len: i64) -> Need {
        let (mut first, mut last) = (i64::MAX, i64::MIN);
        for o in o0..o1 {
            for i in 0..w.kernel {
                let r = o * w.stride - w.pad_begin + i * w.dilation;
                first = first.min(r);
                last = last.max(r);
            }
        }
        // Rows of the hull [first, last] below 0 and at or past `len`.
        let hull = first..=last;
        Need {
            lo: first.clamp(0, len),
            hi: (last + 1).clamp(0, len),
            pad_lo: hull.clone().filter(|&r| r < 0).count() as i64,
            pad_hi: hull.filter(|&r| r >= len).count() as i64,
        }
    }

    #[test]
    fn vela_pyramid_height() {
        // conv3, conv3, pool2/s2, conv3, conv3 (no padding) with t = 1 needs 14 rows.
        let conv = WindowAxis {
            kernel: 3,
            stride: 1,
            dilation: 1,
            pad_begin: 0,
            pad_end: 0,
        };
        let pool = WindowAxis {
            kernel: 2,
            stride: 2,
            ..conv
        };
        let mut range = (0, 1);
        for w in [conv, conv, pool, conv, conv].iter().rev() {
            let n = w.input_for(range.0, range.1, 1000);
            range = (n.lo, n.hi);
        }
        assert_eq!(range.1 - range.0, 14);
    }

    #[test]
    fn window_matches_brute_force() {
        for k in 1..5 {
            for s in 1..4 {
                for d in 1..3 {
                    for p in 0..3 {
                        let w = WindowAxis {
                            kernel: k,
                            stride: s,
                            dilation: d,
                            pad_begin: p,
                            pad_end: p,
                        };
                        let len = 17;
                        let out = w.out_len(len, p, p);
                        for o0 in 0..out {
                            for o1 in o0 + 1..=out {
                                let n = w.input_for(o0, o1, len);
                                assert_eq!(n, brute(&w, o0, o1, len), "{w:?} [{o0},{o1})");
                                // The tile over the clipped rows yields exactly o1 − o0 rows.
                                assert_eq!(w.out_len(n.hi - n.lo, n.pad_lo, n.pad_hi), o1 - o0);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn transposed_covers_every_contribution() {
        let w = WindowAxis {
            kernel: 3,
            stride: 2,
            dilation: 1,
            pad_begin: 1,
            pad_end: 1,
        };
        let len = 9;
        let out = (len - 1) * 2 + 3 - 2;
        for o0 in 0..out {
            for o1 in o0 + 1..=out {
                let (x0, x1) = w.transposed_input_for(o0, o1, len);
                for x in 0..len {
                    let touches = (0..3).any(|i| (o0..o1).contains(&(x * 2 - 1 + i)));
                    if touches {
                        assert!(x0 <= x && x < x1, "[{o0},{o1}) misses input {x}");
                    }
                }
                assert!(x0 * 2 - 1 <= o0 && o1 <= (x1 - 1) * 2 - 1 + 3);
            }
        }
    }

    #[test]
    fn resize_taps_shift_with_the_tile() {
        for linear in [false, true] {
            for coord in [Coord::Asymmetric, Coord::HalfPixel] {
                let r = Resample {
                    scale: 2,
                    linear,
                    coord,
                    nearest: Nearest::Floor,
                };
                let (len, out) = (10, 20);
                for o0 in 0..out {
                    for o1 in o0 + 1..=out {
                        let (i0, i1) = r.input_for(o0, o1, len, out);
                        let tile_out = (i1 - i0) * 2;
                        for y in o0..o1 {
                            // The tile's own taps, shifted back, equal the whole's taps.
                            let (a, b) = r.taps(y, len, out);
                            let (ta, tb) = r.taps(y - i0 * 2, i1 - i0, tile_out);
                            assert_eq!((ta + i0, tb + i0), (a, b), "{r:?} y={y} [{i0},{i1})");
                        }
                    }
                }
            }
        }
    }
}
