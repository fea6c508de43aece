//! Fixed-base tables: for a base B and each window i < 32, the affine
//! multiples k·256^i·B for k = 1..=128, plus 256^32·B for the carry digit.
//! With signed base-256 digits a scalar multiple is then at most 33 mixed
//! additions and no doublings. One table is 32·128 + 1 points of 64 bytes,
//! 256 KiB: the G table and one key's table fit L2 together.

use super::point::{batch_to_affine, Affine, Jacobian, Projective};
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
    /// Variable-time: the digit picks the entry read and whether to add at
    /// all. For public scalars only (verification); see `multiply_ct`.
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

    /// Σ digits[i]·256^i·B for secret digits (signing), as from
    /// `signed_digits_ct`, in constant time: every window reads all of its
    /// 128 entries and keeps the wanted one with masks (no index or branch
    /// depends on a digit), negates it with a mask, and is always added
    /// with the complete formula, the sum being discarded by mask when the
    /// digit is 0. Costs 33 complete additions and a scan of the whole
    /// table (256 KiB).
    pub(crate) fn multiply_ct(&self, digits: &[i16; DIGITS]) -> Projective {
        let mut acc = Projective::identity();
        let windows = self.entries.chunks_exact(PER_WINDOW);
        for (&digit, window) in digits.iter().zip(windows) {
            let (entry, nonzero) = select_ct(window, digit);
            acc = Projective::select(&acc, &acc.add_affine_complete(&entry), nonzero);
        }
        // The carry digit is 0 or 1.
        let top = u64::from(digits[WINDOWS].unsigned_abs() & 1).wrapping_neg();
        let entry = Affine::from_raw(self.top.raw().map(|limb| limb & top));
        Projective::select(&acc, &acc.add_affine_complete(&entry), top)
    }
}

/// ±window[|digit| − 1] for digit ∈ [−128, 128], and a mask that is all ones
/// unless digit is 0 (the point is then (0, 0), to be discarded). Constant
/// time: all entries are read, and one survives the masks.
#[inline(always)]
fn select_ct(window: &[Affine], digit: i16) -> (Affine, u64) {
    let sign = digit >> 15; // −1 if negative, else 0
    let magnitude = u64::from((digit ^ sign).wrapping_sub(sign).unsigned_abs()); // 0..=128
    let mut picked = [0u64; 8];
    for (k, entry) in (1u64..).zip(window) {
        // All ones iff k == magnitude: (k ^ m) − 1 borrows into bit 63 only from 0.
        let mask = (((k ^ magnitude).wrapping_sub(1)) >> 63).wrapping_neg();
        let limbs = entry.raw();
        for (p, l) in picked.iter_mut().zip(limbs) {
            *p |= l & mask;
        }
    }
    let nonzero = ((magnitude.wrapping_sub(1)) >> 63).wrapping_sub(1); // 0 iff magnitude == 0
    let sign_mask = u64::from(sign.unsigned_abs() & 1).wrapping_neg();
    (Affine::from_raw(picked).negate_if(sign_mask), nonzero)
}
