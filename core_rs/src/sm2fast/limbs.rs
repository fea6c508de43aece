//! 256-bit integers as four little-endian 64-bit limbs: the carry primitives
//! shared by the field (mod p) and scalar (mod n) code.

/// acc + a·b + carry never overflows 128 bits: (2^64−1)² + 2·(2^64−1) = 2^128 − 1.
/// The wrapping operations only tell the compiler so: the workspace builds
/// release with overflow checks, which would otherwise guard every product.
#[inline(always)]
pub(crate) fn mac(acc: u64, a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = (a as u128).wrapping_mul(b as u128).wrapping_add(acc as u128).wrapping_add(carry as u128);
    (t as u64, (t >> 64) as u64)
}

/// Sum and carry out (0 or 1) for a carry in of 0 or 1. Written with
/// `overflowing_add` because LLVM turns this shape into an `adc` chain.
#[inline(always)]
pub(crate) fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    let (s, c1) = a.overflowing_add(b);
    let (s, c2) = s.overflowing_add(carry);
    (s, u64::from(c1 | c2))
}

/// Difference and borrow out (0 or 1) for a borrow in of 0 or 1.
#[inline(always)]
pub(crate) fn sbb(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    let (d, b1) = a.overflowing_sub(b);
    let (d, b2) = d.overflowing_sub(borrow);
    (d, u64::from(b1 | b2))
}

/// a + b with the carry out of the top limb.
#[inline(always)]
pub(crate) fn add(a: &[u64; 4], b: &[u64; 4]) -> ([u64; 4], u64) {
    let mut s = [0u64; 4];
    let mut carry = 0;
    for i in 0..4 {
        (s[i], carry) = adc(a[i], b[i], carry);
    }
    (s, carry)
}

/// a − b mod 2^256 with the borrow out of the top limb.
#[inline(always)]
pub(crate) fn sub(a: &[u64; 4], b: &[u64; 4]) -> ([u64; 4], u64) {
    let mut d = [0u64; 4];
    let mut borrow = 0;
    for i in 0..4 {
        (d[i], borrow) = sbb(a[i], b[i], borrow);
    }
    (d, borrow)
}

pub(crate) fn less_than(a: &[u64; 4], b: &[u64; 4]) -> bool {
    sub(a, b).1 == 1
}

/// Big-endian bytes to little-endian limbs.
pub(crate) fn from_be_bytes(bytes: &[u8; 32]) -> [u64; 4] {
    let mut v = [0u64; 4];
    for (limb, chunk) in v.iter_mut().zip(bytes.rchunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        *limb = u64::from_be_bytes(word);
    }
    v
}

/// Little-endian limbs to big-endian bytes.
pub(crate) fn to_be_bytes(v: &[u64; 4]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, limb) in out.rchunks_exact_mut(8).zip(v) {
        chunk.copy_from_slice(&limb.to_be_bytes());
    }
    out
}
