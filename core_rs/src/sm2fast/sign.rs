//! SM2 signing (GB/T 32918.2, SM3, default ID) with a key prepared once,
//! giving byte for byte the signatures of the reference
//! (`sm::PrivateKey::sign`, RustCrypto's `sm2` 0.14):
//!
//! - e = SM3(Z_A ‖ M), taken mod n;
//! - k from RFC 6979's HMAC_DRBG with SM3 as `rfc6979` 0.6 runs it for
//!   `sm2`: seeded with x = d and h = e mod n (32 bytes each, big-endian),
//!   no extra data, a candidate outside [1, n−1] skipped;
//! - (x1, y1) = k·G, r = (e + x1) mod n, s = (1 + d)⁻¹·(k − r·d) mod n;
//! - r = 0, r + k = n or s = 0 is an error, as in the reference, which does
//!   not retry (with k uniform, each has probability about 2⁻²⁵⁶).
//!
//! The key keeps d, (1 + d)⁻¹, the public key, Z_A and the HMAC state that
//! depends on d alone. d and k are secret, so everything that touches them
//! runs in constant time: k·G and d·G read the whole fixed-base table of G
//! with masks (`FixedBaseTable::multiply_ct`) and add with complete
//! formulas, the field inversion is a fixed chain, and the arithmetic mod n
//! is `sm2::Scalar` (fiat-crypto). Only public values (r, s, and whether a
//! DRBG candidate was out of range) decide a branch.

use std::fmt;

use sm2::elliptic_curve::ff::PrimeField;
use sm2::elliptic_curve::ops::Reduce;
use sm2::{FieldBytes, Scalar as ModN};
use sm3::{Digest, Sm3};

use super::generator_table;
use super::limbs;
use super::scalar::{signed_digits_ct, N};
use crate::error::CoreError;
use crate::sm;

/// A private key ready to sign: parse it once, then each signature costs
/// one pass over the G table and about 19 SM3 compressions.
pub struct SigningKey {
    d: ModN,
    inv_one_plus_d: ModN,
    nonces: Nonces,
    public_key: [u8; 65],
    identity_hash: [u8; 32],
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("public_key", &hex::encode(self.public_key)).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// # Errors
    /// `InvalidPrivateKey` unless `private_key` is 32 bytes encoding a
    /// scalar in [1, n−2], with the same messages as `sm::PrivateKey`.
    pub fn from_bytes(private_key: &[u8]) -> Result<SigningKey, CoreError> {
        let d: ModN = *sm::private_scalar(private_key)?;
        // Non-zero except for d = n − 1, which `private_scalar` refused.
        let inv_one_plus_d = Option::<ModN>::from((d + ModN::ONE).invert())
            .ok_or_else(|| CoreError::InvalidPrivateKey("the scalar is n-1, outside [1, n-2]".into()))?;
        let x: [u8; 32] = d.to_repr().into();
        let public = generator_table().multiply_ct(&signed_digits_ct(&limbs::from_be_bytes(&x))).to_affine();
        let public_key = public.to_sec1_uncompressed();
        Ok(SigningKey {
            d,
            inv_one_plus_d,
            nonces: Nonces::new(&x),
            identity_hash: sm::identity_hash(&public_key),
            public_key,
        })
    }

    /// `04 ‖ x ‖ y`.
    #[must_use]
    pub fn public_key(&self) -> &[u8; 65] {
        &self.public_key
    }

    /// Z_A for the default ID.
    #[must_use]
    pub fn identity_hash(&self) -> &[u8; 32] {
        &self.identity_hash
    }

    /// Raw `r ‖ s` over `message`; deterministic.
    ///
    /// # Errors
    /// `Signing` when r = 0, r + k = n or s = 0, where the reference fails too.
    pub fn sign(&self, message: &[u8]) -> Result<[u8; 64], CoreError> {
        self.sign_digest(&sm::message_digest(&self.identity_hash, message))
    }

    /// Raw `r ‖ s` over e = SM3(Z_A ‖ M).
    ///
    /// # Errors
    /// As `sign`.
    pub fn sign_digest(&self, e: &[u8; 32]) -> Result<[u8; 64], CoreError> {
        let e = <ModN as Reduce<FieldBytes>>::reduce(&FieldBytes::from(*e));
        let k = self.nonces.k(&e.to_repr().into(), &N);
        self.sign_with_nonce(&e, &k)
    }

    /// Steps A4 to A7 for a given k (big-endian, in [1, n−1]).
    pub(super) fn sign_with_nonce(&self, e: &ModN, k_bytes: &[u8; 32]) -> Result<[u8; 64], CoreError> {
        let k = Option::<ModN>::from(ModN::from_repr(FieldBytes::from(*k_bytes))).ok_or(CoreError::Signing)?;
        let point = generator_table().multiply_ct(&signed_digits_ct(&limbs::from_be_bytes(k_bytes)));
        let x1 = point.affine_x().to_be_bytes();
        let r = *e + <ModN as Reduce<FieldBytes>>::reduce(&FieldBytes::from(x1));
        if bool::from(r.is_zero() | (r + k).is_zero()) {
            return Err(CoreError::Signing);
        }
        let s = self.inv_one_plus_d * (k - r * self.d);
        if bool::from(s.is_zero()) {
            return Err(CoreError::Signing);
        }
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&r.to_repr());
        out[32..].copy_from_slice(&s.to_repr());
        Ok(out)
    }
}

/// HMAC-SM3 under one key, with the key's two pad blocks absorbed once.
#[derive(Clone)]
pub(super) struct HmacSm3 {
    inner: Sm3,
    outer: Sm3,
}

impl HmacSm3 {
    pub(super) fn new(key: &[u8; 32]) -> HmacSm3 {
        // The key is shorter than SM3's 64-byte block: zero-padded.
        let (mut ipad, mut opad) = ([0x36u8; 64], [0x5cu8; 64]);
        for ((i, o), k) in ipad.iter_mut().zip(opad.iter_mut()).zip(key) {
            *i ^= k;
            *o ^= k;
        }
        HmacSm3 { inner: Sm3::new_with_prefix(ipad), outer: Sm3::new_with_prefix(opad) }
    }

    pub(super) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        for part in parts {
            inner.update(part);
        }
        self.finish(inner)
    }

    fn finish(&self, inner: Sm3) -> [u8; 32] {
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        outer.finalize().into()
    }
}

/// RFC 6979 section 3.2 (HMAC_DRBG, SM3) for one private key x, in the order
/// `rfc6979` 0.6 runs it: K = 0³², V = 1³²; K = HMAC_K(V ‖ 00 ‖ x ‖ h),
/// V = HMAC_K(V); K = HMAC_K(V ‖ 01 ‖ x ‖ h), V = HMAC_K(V); then each
/// candidate is V = HMAC_K(V), and after a rejected one K = HMAC_K(V ‖ 00),
/// V = HMAC_K(V). The first HMAC's input after K = 0's pad block starts with
/// 64 bytes that depend on x alone (V ‖ 00 ‖ x[..31]); that state is kept,
/// with every HMAC key's pad blocks absorbed once: 15 SM3 compressions per
/// nonce instead of 30.
pub(super) struct Nonces {
    /// HMAC under K = 0³², its inner hash having absorbed V ‖ 00 ‖ x[..31].
    first: HmacSm3,
    x: [u8; 32],
}

const V0: [u8; 32] = [0x01; 32];

impl Nonces {
    pub(super) fn new(x: &[u8; 32]) -> Nonces {
        let mut first = HmacSm3::new(&[0u8; 32]);
        first.inner.update(V0);
        first.inner.update([0x00]);
        first.inner.update(&x[..31]);
        Nonces { first, x: *x }
    }

    /// The first candidate in [1, q − 1] for h (big-endian, already below q,
    /// as bits2octets leaves it). q must be 256 bits long (its top bit set),
    /// so that bits2int is the identity; it is n except in tests, which use
    /// a q that rejects half the candidates to exercise the retry.
    pub(super) fn k(&self, h: &[u8; 32], q: &[u64; 4]) -> [u8; 32] {
        let mut inner = self.first.inner.clone();
        inner.update(&self.x[31..]);
        inner.update(h);
        let key = HmacSm3::new(&self.first.finish(inner));
        let v = key.mac(&[&V0]);
        let mut key = HmacSm3::new(&key.mac(&[&v, &[0x01], &self.x, h]));
        let mut v = key.mac(&[&v]);
        loop {
            v = key.mac(&[&v]);
            // Whether to retry is the only thing decided on k, and it is
            // public in effect (probability about 2⁻³² for q = n).
            let candidate = limbs::from_be_bytes(&v);
            let nonzero = candidate.iter().fold(0, |acc, limb| acc | limb) != 0;
            if nonzero & limbs::less_than(&candidate, q) {
                return v;
            }
            key = HmacSm3::new(&key.mac(&[&v, &[0x00]]));
            v = key.mac(&[&v]);
        }
    }
}
