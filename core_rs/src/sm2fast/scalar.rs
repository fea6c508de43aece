//! Integers modulo the group order n. Verification needs only range checks,
//! addition, subtraction and digit recoding here, never a multiplication.
//! (Signing does its few products mod n with `sm2::Scalar`, fiat-crypto's
//! constant-time arithmetic; it needs only `signed_digits_ct` from here.)

use super::limbs;

/// The order of the base point G, little-endian limbs.
pub(crate) const N: [u64; 4] =
    [0x53bb_f409_39d5_4123, 0x7203_df6b_21c6_052b, 0xffff_ffff_ffff_ffff, 0xffff_fffe_ffff_ffff];

/// Number of signed base-256 digits: 32 bytes plus a final carry.
pub(crate) const DIGITS: usize = 33;

/// A canonical residue mod n (always < n).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Scalar([u64; 4]);

impl Scalar {
    /// Parses a big-endian value that must lie in [1, n−1], the range the
    /// standard requires of r and s.
    pub(crate) fn from_be_bytes_nonzero(bytes: &[u8; 32]) -> Option<Scalar> {
        let v = limbs::from_be_bytes(bytes);
        (v != [0; 4] && limbs::less_than(&v, &N)).then_some(Scalar(v))
    }

    /// e mod n. Any 256-bit value is below 2n, so one subtraction suffices.
    pub(crate) fn reduce_be_bytes(bytes: &[u8; 32]) -> Scalar {
        let v = limbs::from_be_bytes(bytes);
        let (d, borrow) = limbs::sub(&v, &N);
        Scalar(if borrow == 1 { v } else { d })
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.0 == [0; 4]
    }

    pub(crate) fn add(&self, other: &Scalar) -> Scalar {
        // Both < n < 2^256, so the sum is < 2n and one subtraction reduces it.
        let (s, carry) = limbs::add(&self.0, &other.0);
        let (d, borrow) = limbs::sub(&s, &N);
        Scalar(if carry == 0 && borrow == 1 { s } else { d })
    }

    pub(crate) fn sub(&self, other: &Scalar) -> Scalar {
        let (d, borrow) = limbs::sub(&self.0, &other.0);
        Scalar(if borrow == 1 { limbs::add(&d, &N).0 } else { d })
    }

    pub(crate) fn limbs(&self) -> [u64; 4] {
        self.0
    }

    /// The integer self + n, or `None` when it does not fit in 256 bits.
    pub(crate) fn plus_n(&self) -> Option<[u64; 4]> {
        let (s, carry) = limbs::add(&self.0, &N);
        (carry == 0).then_some(s)
    }

    /// Signed base-256 digits d_i ∈ [−127, 128] with Σ d_i·256^i = self.
    /// Signed digits halve the fixed-base tables (a negative digit costs only
    /// a negated y) at the price of one extra window for the final carry.
    pub(crate) fn signed_digits(&self) -> [i16; DIGITS] {
        let mut digits = [0i16; DIGITS];
        let mut carry = 0i16;
        for (i, digit) in digits.iter_mut().take(DIGITS - 1).enumerate() {
            let v = ((self.0[i / 8] >> (8 * (i % 8))) & 0xff) as i16 + carry;
            carry = i16::from(v > 128);
            *digit = v - (carry << 8);
        }
        digits[DIGITS - 1] = carry;
        digits
    }
}

/// The digits of `Scalar::signed_digits` for a secret value below n, with
/// no branch or table index that depends on it: the carry is the sign bit
/// of 128 − v rather than a comparison.
pub(crate) fn signed_digits_ct(value: &[u64; 4]) -> [i16; DIGITS] {
    let mut digits = [0i16; DIGITS];
    let mut carry = 0i16;
    for (i, digit) in digits.iter_mut().take(DIGITS - 1).enumerate() {
        // Wrapping operations (none can wrap) so that no overflow check
        // branches on the value either.
        let v = (((value[i / 8] >> (8 * (i % 8))) & 0xff) as i16).wrapping_add(carry); // 0..=256
        carry = (128i16.wrapping_sub(v) >> 15) & 1; // 1 iff v > 128
        *digit = v.wrapping_sub(carry << 8);
    }
    digits[DIGITS - 1] = carry;
    digits
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sm2::elliptic_curve::bigint::{NonZero, U512};
    use sm2::U256;

    fn order() -> NonZero<U256> {
        NonZero::<U256>::new_unwrap(U256::from_be_hex(
            "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123",
        ))
    }

    fn to_big(s: &Scalar) -> U256 {
        U256::from_be_slice(&limbs::to_be_bytes(&s.0))
    }

    #[test]
    fn range_checks_at_the_edges() {
        let n_be = limbs::to_be_bytes(&N);
        let mut below = n_be;
        below[31] -= 1;
        assert!(Scalar::from_be_bytes_nonzero(&[0; 32]).is_none());
        assert!(Scalar::from_be_bytes_nonzero(&n_be).is_none());
        assert!(Scalar::from_be_bytes_nonzero(&[0xff; 32]).is_none());
        assert!(Scalar::from_be_bytes_nonzero(&below).is_some());
        assert!(Scalar::reduce_be_bytes(&n_be).is_zero());
        assert_eq!(Scalar::reduce_be_bytes(&below).0, limbs::from_be_bytes(&below));
        let one = Scalar([1, 0, 0, 0]);
        assert!(Scalar::reduce_be_bytes(&below).add(&one).is_zero());
        assert!(one.plus_n().is_some());
        assert!(Scalar::reduce_be_bytes(&below).plus_n().is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(if cfg!(debug_assertions) { 512 } else { 4096 }))]

        #[test]
        fn agrees_with_generic_modular_arithmetic(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
            let n = order();
            let (sa, sb) = (Scalar::reduce_be_bytes(&a), Scalar::reduce_be_bytes(&b));
            let (ba, bb) = (U256::from_be_slice(&a) % n, U256::from_be_slice(&b) % n);
            prop_assert_eq!(to_big(&sa), ba);
            prop_assert_eq!(to_big(&sa.add(&sb)), ba.add_mod(&bb, &n));
            prop_assert_eq!(to_big(&sa.sub(&sb)), ba.sub_mod(&bb, &n));
        }

        #[test]
        fn signed_digits_recompose(a in any::<[u8; 32]>()) {
            let s = Scalar::reduce_be_bytes(&a);
            let digits = s.signed_digits();
            prop_assert_eq!(signed_digits_ct(&s.limbs()), digits);
            // Horner's rule in 512 bits, most significant digit first, so the
            // carry digit's weight 2^256 is not lost to wrapping.
            let mut acc = U512::ZERO;
            let mut negative = U512::ZERO;
            for &d in digits.iter().rev() {
                prop_assert!((-127..=128).contains(&d));
                acc = acc.shl_vartime(8);
                negative = negative.shl_vartime(8);
                if d >= 0 {
                    acc = acc.wrapping_add(&U512::from_u64(d as u64));
                } else {
                    negative = negative.wrapping_add(&U512::from_u64((-d) as u64));
                }
            }
            prop_assert_eq!(acc.wrapping_sub(&negative), to_big(&s).resize::<{ U512::LIMBS }>());
        }
    }
}
