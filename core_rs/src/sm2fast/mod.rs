//! Fast SM2 signature verification and signing (GB/T 32918.2) specialised
//! to sm2p256v1.
//!
//! Each trusted public key gets its own fixed-base table (`PreparedKey`), and
//! the generator's table is built once per process, so s·G + t·P_A costs at
//! most 66 mixed additions and no doublings. All inputs of verification are
//! public, so the point arithmetic there is variable-time.
//!
//! `SigningKey` signs with the same G table but in constant time (the
//! scalars are secret): see `sign.rs`.

mod field;
mod limbs;
mod point;
mod scalar;
mod sign;
mod table;

#[cfg(test)]
mod sign_tests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::OnceLock;

use field::Fe;
use point::{Affine, Jacobian};
use scalar::Scalar;
use table::FixedBaseTable;

pub use sign::SigningKey;

/// A validated SM2 public key with its precomputed multiples (about 256 KiB).
pub struct PreparedKey {
    table: FixedBaseTable,
}

impl fmt::Debug for PreparedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedKey").finish_non_exhaustive()
    }
}

fn generator_table() -> &'static FixedBaseTable {
    static TABLE: OnceLock<FixedBaseTable> = OnceLock::new();
    TABLE.get_or_init(|| FixedBaseTable::new(&Affine::generator()))
}

impl PreparedKey {
    /// Accepts `04 ‖ x ‖ y` where (x, y) is a point on sm2p256v1 with both
    /// coordinates below p; anything else, including infinity, is `None`.
    pub fn new(public_key_sec1_uncompressed: &[u8; 65]) -> Option<PreparedKey> {
        let (&tag, coordinates) = public_key_sec1_uncompressed.split_first()?;
        let (x, y) = coordinates.split_at(32);
        if tag != 0x04 {
            return None;
        }
        let point = Affine::from_coordinates(x.try_into().ok()?, y.try_into().ok()?)?;
        Some(PreparedKey { table: FixedBaseTable::new(&point) })
    }

    /// Verifies (r, s) over the digest e = SM3(Z_A ‖ M), all big-endian:
    /// valid iff 1 ≤ r, s ≤ n−1, t = (r + s) mod n ≠ 0, (x1, y1) = s·G + t·P_A
    /// is finite, and r = (e + x1) mod n.
    pub fn verify_prehash(&self, e: &[u8; 32], r: &[u8; 32], s: &[u8; 32]) -> bool {
        let (Some(r), Some(s)) = (Scalar::from_be_bytes_nonzero(r), Scalar::from_be_bytes_nonzero(s)) else {
            return false;
        };
        let t = r.add(&s);
        if t.is_zero() {
            return false;
        }
        let sum = generator_table().accumulate(Jacobian::infinity(), &s.signed_digits());
        let sum = self.table.accumulate(sum, &t.signed_digits());
        r_matches(&sum, &r, &Scalar::reduce_be_bytes(e))
    }
}

/// Whether `sum` is finite and r = (e + x1) mod n for its affine x1.
fn r_matches(sum: &Jacobian, r: &Scalar, e: &Scalar) -> bool {
    // r = (e + x1) mod n  ⇔  x1 ≡ c = (r − e) mod n, and since x1 < p < 2n
    // the integer x1 is c or, when that is still below p, c + n.
    let c = r.sub(e);
    let first = Fe::from_limbs_mod_p(c.limbs());
    match c.plus_n().and_then(Fe::from_limbs) {
        Some(second) => sum.affine_x_is_one_of(&[first, second]),
        None => sum.affine_x_is_one_of(&[first]),
    }
}
