//! Offsets for blocks with fixed lifetimes (dynamic storage allocation): the second phase
//! of the residency program and the no-spill plan at M_P.
//!
//! Greedy best fit largest-first (TFLite's order) fragments when the budget equals the
//! peak live bytes: at the peak step the live blocks must tile the scratchpad exactly, and
//! blocks placed earlier elsewhere leave gaps there. So several priority orders are tried
//! — the blocks alive at the most loaded steps first ("hot first"), by size, by area, by
//! lifetime, by start — and, while the best arena still exceeds the budget, a seeded
//! local search moves blocks that end above the budget (and blocks overlapping them in
//! time) earlier in the priority order, keeping every move that does not enlarge the
//! arena (the approach of TVM's USMP hill climb, with best fit as the decoder).

use super::baseline::place_blocks_in_order;
use rand::{Rng, SeedableRng};
use std::time::Instant;

/// `(size, first step, last step)`, steps inclusive.
pub type Block = (u64, usize, usize);

/// Bytes alive at each step (one past the last step of any block).
fn loads(blocks: &[Block]) -> Vec<u64> {
    let steps = blocks.iter().map(|b| b.2 + 1).max().unwrap_or(0);
    super::bounds::interval_loads(steps, blocks.iter().copied())
}

/// The peak of the bytes alive at once: no placement of `blocks` needs less.
pub fn peak_load(blocks: &[Block]) -> u64 {
    loads(blocks).into_iter().max().unwrap_or(0)
}

/// The priority orders tried first.
fn seed_orders(blocks: &[Block]) -> Vec<Vec<usize>> {
    let load = loads(blocks);
    // Hotness: the highest load over the block's lifetime.
    let hot: Vec<u64> = blocks
        .iter()
        .map(|&(_, a, b)| load[a..=b].iter().copied().max().unwrap_or(0))
        .collect();
    let ids: Vec<usize> = (0..blocks.len()).collect();
    let sorted = |key: &dyn Fn(usize) -> (u64, u64, u64)| {
        let mut v = ids.clone();
        v.sort_by_key(|&i| (key(i), i));
        v
    };
    let len = |i: usize| (blocks[i].2 - blocks[i].1 + 1) as u64;
    vec![
        // TFLite greedy by size.
        sorted(&|i| (u64::MAX - blocks[i].0, blocks[i].1 as u64, 0)),
        // Hot first, then by size, then by start.
        sorted(&|i| {
            (
                u64::MAX - hot[i],
                u64::MAX - blocks[i].0,
                blocks[i].1 as u64,
            )
        }),
        // Hot first, longest first.
        sorted(&|i| (u64::MAX - hot[i], u64::MAX - len(i), u64::MAX - blocks[i].0)),
        // By area (bytes × steps).
        sorted(&|i| {
            (
                u64::MAX - blocks[i].0.saturating_mul(len(i)),
                blocks[i].1 as u64,
                0,
            )
        }),
        // By lifetime, then size.
        sorted(&|i| (u64::MAX - len(i), u64::MAX - blocks[i].0, 0)),
        // By start (an online allocator), larger first at equal start.
        sorted(&|i| (blocks[i].1 as u64, u64::MAX - blocks[i].0, 0)),
    ]
}

/// Offsets for `blocks` aiming at an arena of at most `capacity` bytes: the best of the
/// seed orders, then a local search (seeded, at most `limit_s` seconds) while the arena
/// exceeds `capacity`. Returns (offsets, arena bytes); the arena may exceed `capacity`
/// when nothing better was found.
pub fn pack(blocks: &[Block], capacity: u64, limit_s: f64, seed: u64) -> (Vec<u64>, u64) {
    let started = Instant::now();
    if blocks.is_empty() {
        return (Vec::new(), 0);
    }
    let mut best: Option<(Vec<usize>, Vec<u64>, u64)> = None;
    for ord in seed_orders(blocks) {
        let (off, arena) = place_blocks_in_order(blocks, &ord);
        if best.as_ref().is_none_or(|b| arena < b.2) {
            best = Some((ord, off, arena));
        }
        if arena <= capacity {
            break;
        }
    }
    let Some((mut ord, mut off, mut arena)) = best else {
        return (Vec::new(), 0);
    };
    // Local search: while over the capacity, pull blocks that end above it (or that share
    // steps with such a block) towards the front of the priority order.
    let floor = peak_load(blocks);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut pos = vec![0usize; blocks.len()];
    while arena > capacity && arena > floor && started.elapsed().as_secs_f64() < limit_s {
        let over: Vec<usize> = (0..blocks.len())
            .filter(|&i| off[i] + blocks[i].0 > capacity.min(arena - 1))
            .collect();
        if over.is_empty() {
            break;
        }
        let v = over[rng.random_range(0..over.len())];
        // The block to move: the overflowing one, or one sharing steps with it.
        let target = if rng.random_bool(0.5) {
            v
        } else {
            let (_, a, b) = blocks[v];
            let near: Vec<usize> = (0..blocks.len())
                .filter(|&j| j != v && blocks[j].1 <= b && a <= blocks[j].2)
                .collect();
            if near.is_empty() {
                v
            } else {
                near[rng.random_range(0..near.len())]
            }
        };
        for (k, &i) in ord.iter().enumerate() {
            pos[i] = k;
        }
        let from = pos[target];
        if from == 0 {
            continue;
        }
        let to = if rng.random_bool(0.3) {
            0
        } else {
            rng.random_range(0..from)
        };
        let mut cand = ord.clone();
        let x = cand.remove(from);
        cand.insert(to, x);
        let (o2, a2) = place_blocks_in_order(blocks, &cand);
        if a2 <= arena {
            ord = cand;
            off = o2;
            arena = a2;
        }
    }
    (off, arena)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlaps(b: &[Block], off: &[u64]) -> bool {
        (0..b.len()).any(|i| {
            (i + 1..b.len()).any(|j| {
                b[i].1 <= b[j].2
                    && b[j].1 <= b[i].2
                    && off[i] < off[j] + b[j].0
                    && off[j] < off[i] + b[i].0
            })
        })
    }

    /// On random instances the packing never overlaps, never needs more than greedy by
    /// size, and reaches the peak load (no fragmentation) more often.
    #[test]
    fn random_instances_never_overlap_and_beat_greedy() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (mut ours_tight, mut greedy_tight) = (0, 0);
        for _ in 0..60 {
            let n = rng.random_range(5..40);
            let blocks: Vec<Block> = (0..n)
                .map(|_| {
                    let a = rng.random_range(0..30);
                    let l = rng.random_range(0..8);
                    (rng.random_range(1..20) * 4, a, a + l)
                })
                .collect();
            let (_, greedy) = super::super::baseline::greedy_by_size_blocks(&blocks);
            let (off, arena) = pack(&blocks, peak_load(&blocks), 0.05, 3);
            assert!(!overlaps(&blocks, &off));
            assert!(arena <= greedy && arena >= peak_load(&blocks));
            let top = (0..n).map(|i| off[i] + blocks[i].0).max().unwrap_or(0);
            assert_eq!(top, arena);
            ours_tight += (arena == peak_load(&blocks)) as usize;
            greedy_tight += (greedy == peak_load(&blocks)) as usize;
        }
        assert!(
            ours_tight > greedy_tight,
            "tight packings: ours {ours_tight}, greedy {greedy_tight}"
        );
    }
}
