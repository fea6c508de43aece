//! `SigningKey` against the reference signer (`sm::PrivateKey`, RustCrypto's
//! `sm2` 0.14): the same bytes on random keys and messages, signatures that
//! both verifiers accept, the GB/T 32918.5 worked example, the RFC 6979
//! nonces against the `rfc6979` crate (retry path included), and the error
//! cases.

use super::limbs;
use super::scalar::{signed_digits_ct, N};
use super::sign::{HmacSm3, Nonces};
use super::{generator_table, PreparedKey, SigningKey};
use crate::sm::{self, PrivateKey, PublicKey};
use proptest::prelude::*;
use sm2::dsa::signature::hazmat::PrehashSigner;
use sm2::dsa::Signature;
use sm2::elliptic_curve::ff::PrimeField;
use sm2::elliptic_curve::ops::Reduce;
use sm2::elliptic_curve::sec1::ToSec1Point;
use sm2::elliptic_curve::Group;
use sm2::{FieldBytes, ProjectivePoint, Scalar as ModN, U256};
use sm3::Sm3;

/// Random cases per proptest: at least 10,000 in release; debug builds of
/// the reference are slow, so plain `cargo test` checks fewer.
const CASES: u32 = if cfg!(debug_assertions) { 200 } else { 10_000 };

fn unhex<const LEN: usize>(s: &str) -> [u8; LEN] {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap().try_into().unwrap()
}

const N_HEX: &str = "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123";

fn n_minus(k: u8) -> [u8; 32] {
    let mut n: [u8; 32] = unhex(N_HEX);
    n[31] -= k; // n ends in 0x23
    n
}

fn small(v: u8) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[31] = v;
    out
}

/// Signs with both, checks the bytes are equal and that the reference and
/// the fast verifier (given) accept the signature; returns it.
fn check_against_reference(secret: &[u8; 32], message: &[u8], prepared: Option<&PreparedKey>) -> [u8; 64] {
    let fast = SigningKey::from_bytes(secret).expect("valid key");
    let reference = PrivateKey::from_bytes(secret).expect("valid key");
    assert_eq!(fast.public_key(), reference.public_key().sec1(), "public key of {}", hex::encode(secret));
    assert_eq!(fast.identity_hash(), reference.public_key().identity_hash());
    let sig = fast.sign(message).expect("signing succeeds");
    assert_eq!(
        hex::encode(sig),
        hex::encode(reference.sign(message).unwrap()),
        "key {} message {}",
        hex::encode(secret),
        hex::encode(message)
    );
    assert!(reference.public_key().verify(message, &sig));
    let built;
    let prepared = match prepared {
        Some(p) => p,
        None => {
            built = PreparedKey::new(fast.public_key()).expect("a valid public key");
            &built
        }
    };
    let e = sm::message_digest(fast.identity_hash(), message);
    let (r, s) = sig.split_at(32);
    assert!(prepared.verify_prehash(&e, r.try_into().unwrap(), s.try_into().unwrap()));
    sig
}

fn valid_secret() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>().prop_filter("a scalar in [1, n-2]", |d| sm::private_scalar(d).is_ok())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// A fresh random key and message per case: same bytes as the
    /// reference, accepted by the reference and by `PreparedKey`.
    #[test]
    fn same_signatures_as_the_reference(secret in valid_secret(), message in prop::collection::vec(any::<u8>(), 0..300)) {
        check_against_reference(&secret, &message, None);
    }

    /// The nonce generator against the `rfc6979` crate as `sm2` calls it
    /// (q = n), and with a q just above 2^255, where about half of the
    /// candidates are rejected, so the retry path runs too.
    #[test]
    fn nonces_match_rfc6979(x in any::<[u8; 32]>(), h in any::<[u8; 32]>(), low in any::<u64>()) {
        for q_hex in [N_HEX.to_owned(), format!("8{:047X}{:016X}", 0, low | 1)] {
            let q = U256::from_be_hex(&q_hex);
            let q_limbs = limbs::from_be_bytes(&unhex(&q_hex));
            // bits2octets leaves h as h mod q; both sides get that value.
            let h_big = U256::from_be_slice(&h);
            let h: [u8; 32] = if h_big < q { h } else { h_big.wrapping_sub(&q).to_be_bytes().into() };
            let mut expected = [0u8; 32];
            rfc6979::KGenerator::<Sm3, U256>::new(&x, &h, &[], &q).fill_next_k(&mut expected);
            prop_assert_eq!(Nonces::new(&x).k(&h, &q_limbs), expected);
        }
    }
}

#[test]
fn same_signatures_on_edge_keys_and_messages() {
    let keys = [
        small(1),
        small(2),
        small(0x80),
        n_minus(2),
        n_minus(3),
        [0x80; 32],
        [0x81; 32],
        [0x7f; 32],
        unhex("8000000000000000000000000000000000000000000000000000000000000000"),
        unhex("00000000000000000000000000000000000000000000000000000000000000FF"),
        unhex("45f1185bd2b13fd3e54addbfb9ca15588d2f9bdc1b8c11287a5388bc36c48716"),
    ];
    let long = vec![0xa5u8; 1000];
    let messages: [&[u8]; 6] = [b"", b"a", &[0u8; 55], &[0u8; 64], b"message digest", &long];
    for key in &keys {
        let prepared = PreparedKey::new(SigningKey::from_bytes(key).unwrap().public_key()).unwrap();
        for message in messages {
            check_against_reference(key, message, Some(&prepared));
        }
    }
}

/// Digests at and past n go through e mod n (and h = e mod n) as in the reference.
#[test]
fn same_signatures_on_edge_digests() {
    let secret: [u8; 32] = unhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8");
    let fast = SigningKey::from_bytes(&secret).unwrap();
    let reference = sm2::dsa::SigningKey::from_slice(sm::DEFAULT_ID, &secret).unwrap();
    let mut n_plus_1: [u8; 32] = unhex(N_HEX);
    n_plus_1[31] += 1;
    for e in [[0u8; 32], small(1), n_minus(1), unhex(N_HEX), n_plus_1, [0xff; 32]] {
        let sig: Signature = reference.sign_prehash(&e).unwrap();
        assert_eq!(fast.sign_digest(&e).unwrap().as_slice(), sig.to_bytes().as_slice(), "e = {}", hex::encode(e));
    }
}

/// GB/T 32918.5-2017 appendix A.2: with the standard's own k, the signing
/// equation gives the standard's (r, s); the public key and Z_A match.
#[test]
fn gbt_32918_worked_example() {
    let secret: [u8; 32] = unhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8");
    let public: [u8; 65] = unhex(
        "04 09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020
            CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13",
    );
    let z: [u8; 32] = unhex("B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3");
    let e: [u8; 32] = unhex("F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640");
    let k: [u8; 32] = unhex("59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21");
    let rs: [u8; 64] = unhex(
        "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
         B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA",
    );
    let key = SigningKey::from_bytes(&secret).unwrap();
    assert_eq!(key.public_key(), &public);
    assert_eq!(key.identity_hash(), &z);
    assert_eq!(sm::message_digest(key.identity_hash(), b"message digest"), e);
    let e_mod_n = <ModN as Reduce<FieldBytes>>::reduce(&FieldBytes::from(e));
    assert_eq!(key.sign_with_nonce(&e_mod_n, &k).unwrap(), rs);
    // With its RFC 6979 nonce instead, the reference's bytes, valid under the standard's key.
    let sig = check_against_reference(&secret, b"message digest", None);
    assert!(PublicKey::from_sec1(&public).unwrap().verify(b"message digest", &sig));
}

/// The cases where the reference gives up (it does not retry) give up here
/// too: an e chosen so that r = 0, r + k = n or s = 0 for a given k.
#[test]
fn refuses_where_the_reference_does() {
    let secret = small(7);
    let key = SigningKey::from_bytes(&secret).unwrap();
    let d = ModN::from_repr(FieldBytes::from(secret)).unwrap();
    for k_bytes in [small(1), small(5), n_minus(1), [0x5a; 32]] {
        let k = ModN::from_repr(FieldBytes::from(k_bytes)).unwrap();
        let point = sm2::AffinePoint::from(ProjectivePoint::mul_by_generator(&k)).to_sec1_point(false);
        let x1_bytes: [u8; 32] = point.as_bytes()[1..33].try_into().unwrap();
        let x1 = <ModN as Reduce<FieldBytes>>::reduce(&FieldBytes::from(x1_bytes));
        let r_zero = -x1; // r = e + x1 = 0
        let r_plus_k_zero = -x1 - k; // r = −k
        let s_zero = k * d.invert().unwrap() - x1; // r·d = k
        for e in [r_zero, r_plus_k_zero, s_zero] {
            assert!(key.sign_with_nonce(&e, &k_bytes).is_err());
        }
        // Another e signs (r = 2, and no k here is n − 2 or 2d), by the equation.
        let e = r_zero + ModN::ONE + ModN::ONE;
        let sig = key.sign_with_nonce(&e, &k_bytes).unwrap();
        let (r, s) = (e + x1, (ModN::ONE + d).invert().unwrap() * (k - (e + x1) * d));
        assert_eq!(&sig[..32], r.to_repr().as_slice());
        assert_eq!(&sig[32..], s.to_repr().as_slice());
    }
}

#[test]
fn refuses_bad_keys_with_the_reference_messages() {
    let bad: [&[u8]; 7] = [&[0u8; 32], &[0xff; 32], &n_minus(0), &n_minus(1), &[1u8; 31], &[1u8; 33], &[]];
    for key in bad {
        let fast = SigningKey::from_bytes(key).unwrap_err();
        let reference = PrivateKey::from_bytes(key).err().unwrap();
        assert_eq!(fast, reference);
        assert!(fast.to_string().starts_with("private_key: "), "{fast}");
    }
    assert!(SigningKey::from_bytes(&n_minus(2)).is_ok());
    assert!(format!("{:?}", SigningKey::from_bytes(&small(1)).unwrap()).contains("public_key"));
}

/// The constant-time comb gives k·G for scalars whose digits sit at the
/// edges of [−127, 128] and of the carry.
#[test]
fn constant_time_multiples_match_reference() {
    let scalars = [small(1), small(0x80), small(0x81), [0x80; 32], [0x81; 32], [0x7f; 32], n_minus(1), n_minus(2)];
    for bytes in scalars {
        let ours = generator_table().multiply_ct(&signed_digits_ct(&limbs::from_be_bytes(&bytes))).to_affine();
        let k = ModN::from_repr(FieldBytes::from(bytes)).unwrap();
        let expected = sm2::AffinePoint::from(ProjectivePoint::mul_by_generator(&k)).to_sec1_point(false);
        assert_eq!(ours.to_sec1_uncompressed().as_slice(), expected.as_bytes(), "{}", hex::encode(bytes));
    }
    assert!(limbs::less_than(&limbs::from_be_bytes(&n_minus(1)), &N));
}

/// HMAC-SM3 with cached pads against the `hmac` construction written out.
#[test]
fn hmac_sm3_matches_the_definition() {
    use sm3::Digest;
    let key = [0x0bu8; 32];
    let mut inner = Sm3::new();
    inner.update(key.map(|b| b ^ 0x36));
    inner.update([0x36u8; 32]);
    inner.update(b"Hi There");
    let mut outer = Sm3::new();
    outer.update(key.map(|b| b ^ 0x5c));
    outer.update([0x5cu8; 32]);
    outer.update(inner.finalize());
    let expected: [u8; 32] = outer.finalize().into();
    assert_eq!(HmacSm3::new(&key).mac(&[b"Hi ", b"There"]), expected);
}
