//! Calibration data is not validation data: when only `--calib DIR` is given, a seeded
//! quarter of its samples (at least [`MIN_HELD_OUT`]) is held out of calibration and error
//! measurement. Validation (and the search) runs on those and on every other sample the
//! calibration does not use ([`validation_indices`]): more held-apart samples make the
//! search's choice less of a lucky pass. Folders with fewer than 2 × [`MIN_HELD_OUT`]
//! samples are not split (the report says so).

use rand::seq::SliceRandom;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The fewest samples held out, and the fewest left for calibration.
pub const MIN_HELD_OUT: usize = 4;

/// Mixed into `--seed` so the split does not correlate with other seeded draws.
const SALT: u64 = 0x0068_6f6c_646f_7574; // "holdout"

/// The indices (ascending) of the samples held out of `n` for validation: a quarter,
/// rounded up, at least [`MIN_HELD_OUT`], chosen by `seed`; `None` when `n` is below
/// 2 × [`MIN_HELD_OUT`].
pub fn held_out(n: usize, seed: u64) -> Option<Vec<usize>> {
    if n < 2 * MIN_HELD_OUT {
        return None;
    }
    let k = n.div_ceil(4).max(MIN_HELD_OUT);
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ SALT));
    let mut out = idx[..k].to_vec();
    out.sort_unstable();
    Some(out)
}

/// The validation samples of a split folder of `n` (ascending): the held-out quarter plus
/// every sample of the remaining pool after the first `calib_used` (which calibrate; 0: the
/// whole pool calibrates). `None` when the folder is not split.
pub fn validation_indices(n: usize, seed: u64, calib_used: usize) -> Option<Vec<usize>> {
    let mut out = held_out(n, seed)?;
    if calib_used > 0 {
        let pool: Vec<usize> = (0..n).filter(|i| out.binary_search(i).is_err()).collect();
        out.extend(pool.into_iter().skip(calib_used));
        out.sort_unstable();
    }
    Some(out)
}

/// The rule, for the report.
pub fn rule() -> String {
    format!(
        "a quarter of the --calib samples (rounded up, at least {MIN_HELD_OUT}), chosen by --seed, is held out of calibration; it and every other sample calibration does not use validate the output and the search; folders under {} samples are not split",
        2 * MIN_HELD_OUT
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeded_quarter() {
        assert_eq!(held_out(7, 0), None);
        let h = held_out(8, 0).unwrap();
        assert_eq!(h.len(), 4);
        let h = held_out(20, 0).unwrap();
        assert_eq!(h.len(), 5);
        assert!(h.windows(2).all(|w| w[0] < w[1]) && h[4] < 20);
        assert_eq!(held_out(20, 0), Some(h.clone()), "deterministic");
        assert_ne!(held_out(20, 1), Some(h), "the seed chooses");
        assert_eq!(held_out(21, 3).unwrap().len(), 6);
    }

    #[test]
    fn validation_adds_the_pool_calibration_does_not_use() {
        let held = held_out(20, 0).unwrap();
        let v = validation_indices(20, 0, 8).unwrap();
        // 5 held out, 15 in the pool, 8 of them calibrate: 5 + 7 validate.
        assert_eq!(v.len(), 12);
        assert!(held.iter().all(|i| v.contains(i)));
        let pool: Vec<usize> = (0..20).filter(|i| !held.contains(i)).collect();
        assert!(
            pool[..8].iter().all(|i| !v.contains(i)),
            "calibration never validates"
        );
        assert!(pool[8..].iter().all(|i| v.contains(i)));
        assert_eq!(validation_indices(20, 0, 0), Some(held));
        assert_eq!(validation_indices(7, 0, 2), None);
    }
}
