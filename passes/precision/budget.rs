//! The allocation budget. It lives below the pass, the ILP and the checker, which all read
//! it, so that none of them has to import another for it.

/// The budget the allocation must meet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Budget {
    /// Constant bytes after the rewrite ≤ this fraction of the model's fp32 weight bytes
    /// (initializers and Constant tensors alike).
    SizeFraction(f64),
    /// Mean bits per candidate weight element ≤ this.
    AvgBits(f64),
}

impl Budget {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Budget::SizeFraction(_) => "size_fraction",
            Budget::AvgBits(_) => "avg_bits",
        }
    }
    pub(super) fn value(&self) -> f64 {
        match self {
            Budget::SizeFraction(f) | Budget::AvgBits(f) => *f,
        }
    }
}
