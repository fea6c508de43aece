//! SM3 (GB/T 32905) and SM2 signatures (GB/T 32918.2) with the default
//! distinguishing ID, on RustCrypto's `sm2`/`sm3`: the reference
//! implementation that every faster path is tested against.

use sm2::dsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use sm2::dsa::{Signature, SigningKey, VerifyingKey};
use sm2::elliptic_curve::sec1::ToSec1Point;
use sm2::NonZeroScalar;
use sm3::{Digest, Sm3};

use crate::error::CoreError;

/// The default distinguishing ID of GM/T 0009 and credential-v1 section 3.
pub const DEFAULT_ID: &str = "1234567812345678";

/// SM3 digest of `data`.
#[must_use]
pub fn sm3(data: &[u8]) -> [u8; 32] {
    Sm3::digest(data).into()
}

/// `Z_A = SM3(ENTL_A ‖ ID ‖ a ‖ b ‖ x_G ‖ y_G ‖ x_A ‖ y_A)` for the default ID.
/// Computed once per key: it is half the hashing of every verification.
#[must_use]
pub fn identity_hash(public_key: &[u8; 65]) -> [u8; 32] {
    // Curve constants of sm2p256v1 (GB/T 32918.5), big-endian.
    const A: [u8; 32] = hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC");
    const B: [u8; 32] = hex32("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93");
    const XG: [u8; 32] = hex32("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7");
    const YG: [u8; 32] = hex32("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0");
    let entla = u16::try_from(DEFAULT_ID.len() * 8).unwrap_or(u16::MAX);
    let mut h = Sm3::new();
    h.update(entla.to_be_bytes());
    h.update(DEFAULT_ID.as_bytes());
    h.update(A);
    h.update(B);
    h.update(XG);
    h.update(YG);
    h.update(&public_key[1..]);
    h.finalize().into()
}

/// `e = SM3(Z_A ‖ M)`, the value the signature equation works on.
#[must_use]
pub fn message_digest(identity_hash: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut h = Sm3::new_with_prefix(identity_hash);
    h.update(message);
    h.finalize().into()
}

/// The credential-v1 key id: the first four bytes of SM3 of the 65-byte key.
#[must_use]
pub fn key_id(public_key: &[u8; 65]) -> [u8; 4] {
    let d = sm3(public_key);
    [d[0], d[1], d[2], d[3]]
}

/// A public key parsed and checked once (on the curve, not infinity), with
/// its `Z_A`.
#[derive(Clone, Debug)]
pub struct PublicKey {
    sec1: [u8; 65],
    verifying: VerifyingKey,
    identity_hash: [u8; 32],
}

impl PublicKey {
    /// Parse a 65-byte uncompressed SEC1 point.
    ///
    /// # Errors
    /// `InvalidPublicKey` when the bytes are not an uncompressed point on the curve.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, CoreError> {
        let sec1: [u8; 65] = bytes
            .try_into()
            .map_err(|_| CoreError::InvalidPublicKey(format!("expected 65 bytes (04||X||Y), got {}", bytes.len())))?;
        if sec1[0] != 0x04 {
            return Err(CoreError::InvalidPublicKey(format!(
                "expected the uncompressed form starting 04, got {:02x}",
                sec1[0]
            )));
        }
        let verifying = VerifyingKey::from_sec1_bytes(DEFAULT_ID, &sec1)
            .map_err(|_| CoreError::InvalidPublicKey("the point is not on the curve sm2p256v1".into()))?;
        Ok(Self { identity_hash: identity_hash(&sec1), sec1, verifying })
    }

    #[must_use]
    pub fn sec1(&self) -> &[u8; 65] {
        &self.sec1
    }

    #[must_use]
    pub fn identity_hash(&self) -> &[u8; 32] {
        &self.identity_hash
    }

    /// Verify a raw `r‖s` signature over `e` (already `SM3(Z_A ‖ M)`).
    #[must_use]
    pub fn verify_digest(&self, e: &[u8; 32], signature: &[u8; 64]) -> bool {
        // `Signature::from_slice` refuses r or s outside [1, n-1].
        Signature::from_slice(signature).is_ok_and(|sig| self.verifying.verify_prehash(e, &sig).is_ok())
    }

    /// Verify a raw `r‖s` signature over `message`.
    #[must_use]
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.verify_digest(&message_digest(&self.identity_hash, message), signature)
    }
}

/// The secret scalar of a private key.
///
/// # Errors
/// `InvalidPrivateKey` unless `bytes` is 32 bytes encoding a scalar in
/// [1, n-2], the range GB/T 32918.1 gives: at n-1, 1 + d has no inverse
/// and no signature exists.
pub(crate) fn private_scalar(bytes: &[u8]) -> Result<NonZeroScalar, CoreError> {
    const N_MINUS_1: [u8; 32] = hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54122");
    if bytes.len() != 32 {
        return Err(CoreError::InvalidPrivateKey(format!("expected 32 bytes, got {}", bytes.len())));
    }
    // Compared without an early exit, as the key is secret.
    if bytes.iter().zip(N_MINUS_1).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0 {
        return Err(CoreError::InvalidPrivateKey("the scalar is n-1, outside [1, n-2]".into()));
    }
    NonZeroScalar::try_from(bytes).map_err(|_| {
        CoreError::InvalidPrivateKey("the scalar is 0 or not below the group order n, outside [1, n-2]".into())
    })
}

/// A private key for the issuer side (demo, tests), on RustCrypto: the
/// reference. Receipts are signed with `sm2fast::SigningKey`, which gives
/// the same bytes.
pub struct PrivateKey {
    signing: SigningKey,
    public: PublicKey,
}

impl PrivateKey {
    /// # Errors
    /// `InvalidPrivateKey` unless `bytes` is 32 bytes encoding a scalar in
    /// [1, n-2] (see `private_scalar`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CoreError> {
        let signing = SigningKey::from_nonzero_scalar(DEFAULT_ID, private_scalar(bytes)?)
            .map_err(|_| CoreError::InvalidPrivateKey("the default ID was refused".into()))?;
        let point = signing.verifying_key().as_affine().to_sec1_point(false);
        let public = PublicKey::from_sec1(point.as_bytes())?;
        Ok(Self { signing, public })
    }

    /// A fresh key from the operating system's random source.
    ///
    /// # Errors
    /// `Random` when the OS has no randomness to give.
    pub fn generate() -> Result<(Self, [u8; 32]), CoreError> {
        loop {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| CoreError::Random(e.to_string()))?;
            if let Ok(key) = Self::from_bytes(&bytes) {
                return Ok((key, bytes));
            }
        }
    }

    #[must_use]
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Sign `message` (nonce by RFC 6979), raw `r‖s`.
    ///
    /// # Errors
    /// `Signing` in the negligible case the signer finds no valid nonce.
    pub fn sign(&self, message: &[u8]) -> Result<[u8; 64], CoreError> {
        let e = message_digest(&self.public.identity_hash, message);
        let sig: Signature = self.signing.sign_prehash(&e).map_err(|_| CoreError::Signing)?;
        let mut out = [0u8; 64];
        out.copy_from_slice(&sig.to_bytes());
        Ok(out)
    }
}

const fn hex32(s: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("not upper-case hex"),
        }
    }
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = nibble(b[2 * i]) << 4 | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.split_whitespace().collect::<String>()).unwrap()
    }

    #[test]
    fn sm3_standard_examples() {
        // GB/T 32905-2016 appendix A.
        assert_eq!(hex::encode(sm3(b"abc")), "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
        assert_eq!(
            hex::encode(sm3(&b"abcd".repeat(16))),
            "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
        );
    }

    #[test]
    fn sm2_standard_signature_example() {
        // GB/T 32918.5-2017 (GM/T 0003.5-2012) appendix A.2 on the recommended curve:
        // the key pair, the default ID, message "message digest", Z_A, e and (r, s).
        let private = unhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8");
        let public = unhex(
            "04 09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020
                CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13",
        );
        let z = unhex("B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3");
        let e = unhex("F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640");
        let rs: [u8; 64] = unhex(
            "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
             B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA",
        )
        .try_into()
        .unwrap();
        let key = PublicKey::from_sec1(&public).unwrap();
        assert_eq!(key.identity_hash().as_slice(), z.as_slice());
        assert_eq!(message_digest(key.identity_hash(), b"message digest").as_slice(), e.as_slice());
        assert!(key.verify(b"message digest", &rs));
        assert!(!key.verify(b"message digesT", &rs));
        assert_eq!(PrivateKey::from_bytes(&private).unwrap().public_key().sec1().as_slice(), public.as_slice());
    }

    #[test]
    fn sign_then_verify_with_default_id() {
        let (key, _) = PrivateKey::generate().unwrap();
        let msg = b"credential-v1 signed bytes";
        let sig = key.sign(msg).unwrap();
        assert!(key.public_key().verify(msg, &sig));
        assert!(!key.public_key().verify(b"another message", &sig));
        let mut bad = sig;
        bad[63] ^= 1;
        assert!(!key.public_key().verify(msg, &bad));
    }

    #[test]
    fn refuses_bad_keys() {
        assert!(PublicKey::from_sec1(&[4u8; 64]).is_err());
        let mut off = [0u8; 65];
        off[0] = 4;
        off[64] = 1;
        assert!(PublicKey::from_sec1(&off).is_err());
        assert!(PrivateKey::from_bytes(&[0u8; 32]).is_err());
        assert!(PrivateKey::from_bytes(&[0xFFu8; 32]).is_err());
        assert!(
            PrivateKey::from_bytes(&hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54122")).is_err()
        );
        assert!(
            PrivateKey::from_bytes(&hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54121")).is_ok()
        );
        assert!(PrivateKey::from_bytes(&[1u8; 31]).is_err());
    }

    #[test]
    fn zero_and_out_of_range_signatures_are_refused() {
        let (key, _) = PrivateKey::generate().unwrap();
        assert!(!key.public_key().verify(b"m", &[0u8; 64]));
        assert!(!key.public_key().verify(b"m", &[0xFFu8; 64]));
    }
}
