//! Fixed-base tables: for a base B and each window i < 32, the affine
//! multiples k·256^i·B for k = 1..=128, plus 256^32·B for the carry digit.
//! With signed base-256 digits a scalar multiple is then at most 33 mixed
//! additions and no doublings. One table is 32·128 + 1 points of 64 bytes,
//! 256 KiB: the G table and one key's table fit L2 together.

use super::point::{batch_to_affine, Affine, Jacobian};
use super::scalar::DIGITS;

const WINDOWS: usize = DIGITS - 1;
const PER_WINDOW: usize = 128;

pub(crate) struct FixedBaseTable {
    /// Window i's multiple k·256^i·B is at index i·PER_WINDOW + k − 1.
    entries: Vec<Affine>,
    /// 256^32·B, the weight of the final carry digit.
    top: Affine,
}

impl FixedBaseTable {
    /// Builds the table; `base` must be a finite point of order n, so that
    /// no multiple k·256^i·B (0 < k·256^i < n) is infinity.
    pub(crate) fn new(base: &Affine) -> FixedBaseTable {
        let mut entries = Vec::with_capacity(WINDOWS * PER_WINDOW);
        let mut window_base = *base;
        let mut window = Vec::with_capacity(PER_WINDOW + 1);
        for _ in 0..WINDOWS {
            window.clear();
            let mut multiple = Jacobian::from_affine(&window_base);
            window.push(multiple);
            for _ in 1..PER_WINDOW {
                multiple = multiple.add_affine(&window_base);
                window.push(multiple);
            }
            // 2·128·B_i = B_(i+1), normalised in the same batch inversion.
            window.push(multiple.double());
            let mut affine = batch_to_affine(&window);
            window_base = affine.pop().unwrap_or(window_base);
            entries.extend(affine);
        }
        FixedBaseTable { entries, top: window_base }
    }

    /// acc + Σ digits[i]·256^i·B, digits as from `Scalar::signed_digits`.
    pub(crate) fn accumulate(&self, mut acc: Jacobian, digits: &[i16; DIGITS]) -> Jacobian {
        let windows = self.entries.chunks_exact(PER_WINDOW);
        for (&digit, window) in digits.iter().zip(windows) {
            let Some(entry) = window.get(usize::from(digit.unsigned_abs()).wrapping_sub(1)) else {
                continue; // digit 0
            };
            acc = if digit < 0 { acc.add_affine(&entry.neg()) } else { acc.add_affine(entry) };
        }
        if digits[WINDOWS] != 0 {
            acc = acc.add_affine(&self.top);
        }
        acc
    }
}
