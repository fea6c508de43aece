//! Single-thread throughput of `sm2fast` against RustCrypto's `sm2`.
//! A plain timing loop (harness = false): `cargo bench --bench sm2fast`.
//! Compare with `openssl speed -seconds 3 sm2 ecdsap256` run right after.

use std::hint::black_box;
use std::time::{Duration, Instant};

use sm2::dsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use sm2::dsa::{Signature, SigningKey, VerifyingKey};
use sm2::elliptic_curve::sec1::ToSec1Point;
use yibao_core::sm::PrivateKey;
use yibao_core::sm2fast::{self, PreparedKey};

const DISTID: &str = "1234567812345678";
const MESSAGES: usize = 256;
const RUN: Duration = Duration::from_secs(3);
const BATCH: Duration = Duration::from_millis(100);

struct Case {
    e: [u8; 32],
    r: [u8; 32],
    s: [u8; 32],
    sig: Signature,
}

fn key(seed: u8) -> (SigningKey, [u8; 65]) {
    let mut secret = [0x5a; 32];
    secret[0] = 0x11;
    secret[31] = seed;
    let signer = SigningKey::from_slice(DISTID, &secret).expect("valid secret");
    let public = signer.verifying_key().as_affine().to_sec1_point(false);
    let sec1 = public.as_bytes().try_into().expect("65 bytes");
    (signer, sec1)
}

fn signed_cases(signer: &SigningKey) -> Vec<Case> {
    (0..MESSAGES)
        .map(|i| {
            let mut e = [0u8; 32];
            e[..8].copy_from_slice(&(i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
            e[8..16].copy_from_slice(&(i as u64).to_le_bytes());
            let sig: Signature = signer.sign_prehash(&e).expect("signing succeeds");
            Case { e, r: sig.r_bytes().into(), s: sig.s_bytes().into(), sig }
        })
        .collect()
}

/// Runs `f` over the cases round-robin in batches of about `BATCH` for
/// about `RUN`; returns the median and best batch rate in operations per
/// second. The machine is shared, so the best batch is the least disturbed.
fn rate(mut f: impl FnMut(usize) -> bool) -> (f64, f64) {
    let start = Instant::now();
    let mut done = 0usize;
    let mut rates = Vec::new();
    while start.elapsed() < RUN {
        let batch_start = Instant::now();
        let mut in_batch = 0usize;
        while batch_start.elapsed() < BATCH {
            for _ in 0..16 {
                assert!(f(done));
                done += 1;
                in_batch += 1;
            }
        }
        rates.push(in_batch as f64 / batch_start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    (rates[rates.len() / 2], rates[rates.len() - 1])
}

fn report(what: &str, (median, best): (f64, f64)) {
    println!("{what:<32} median {median:>8.0} /s   best {best:>8.0} /s");
}

fn main() {
    let (signer, sec1) = key(1);
    let cases = signed_cases(&signer);

    let start = Instant::now();
    let prepared = PreparedKey::new(&sec1).expect("valid key");
    let first = start.elapsed();
    // The first verification also builds the process-wide table for G.
    let start = Instant::now();
    let c = &cases[0];
    assert!(prepared.verify_prehash(&c.e, &c.r, &c.s));
    let generator_table = start.elapsed();
    let builds = 20;
    let start = Instant::now();
    for _ in 0..builds {
        black_box(PreparedKey::new(black_box(&sec1)));
    }
    let per_build = start.elapsed() / builds;
    println!(
        "PreparedKey::new: {per_build:?} per key (first: {first:?}); first verify incl. G table: {generator_table:?}"
    );

    let ours = rate(|i| {
        let c = &cases[i % MESSAGES];
        prepared.verify_prehash(black_box(&c.e), black_box(&c.r), black_box(&c.s))
    });
    report("sm2fast verify, one key", ours);

    // A handful of issuers used in turn: their tables compete for cache.
    let issuers: Vec<_> = (1..=4)
        .map(|seed| {
            let (signer, sec1) = key(seed);
            (PreparedKey::new(&sec1).expect("valid key"), signed_cases(&signer))
        })
        .collect();
    let mixed = rate(|i| {
        let (k, cs) = &issuers[i % issuers.len()];
        let c = &cs[(i / issuers.len()) % MESSAGES];
        k.verify_prehash(black_box(&c.e), black_box(&c.r), black_box(&c.s))
    });
    report("sm2fast verify, 4 keys mixed", mixed);

    let reference = VerifyingKey::from_sec1_bytes(DISTID, &sec1).expect("valid key");
    let theirs = rate(|i| {
        let c = &cases[i % MESSAGES];
        reference.verify_prehash(black_box(&c.e), black_box(&c.sig)).is_ok()
    });
    report("RustCrypto sm2 verify_prehash", theirs);
    println!("speed-up over RustCrypto (median): {:.1}x", ours.0 / theirs.0);

    sign();
}

/// Signing receipt-sized messages (180 bytes) with the prepared key, with a
/// key parsed per call (what `sm2_sign` does), and with the reference; all
/// three give the same bytes.
fn sign() {
    let secret = [0x5a; 32];
    let messages: Vec<Vec<u8>> =
        (0..MESSAGES).map(|i| [&b"YBR1"[..], &(i as u64).to_be_bytes(), &[0x33; 168]].concat()).collect();
    let start = Instant::now();
    let prepared = sm2fast::SigningKey::from_bytes(&secret).expect("valid secret");
    println!("sm2fast::SigningKey::from_bytes: {:?} (first, incl. the G table if not built yet)", start.elapsed());
    let reference = PrivateKey::from_bytes(&secret).expect("valid secret");
    assert_eq!(prepared.sign(&messages[0]).ok(), reference.sign(&messages[0]).ok());

    let ours = rate(|i| prepared.sign(black_box(&messages[i % MESSAGES])).is_ok());
    report("sm2fast SigningKey::sign", ours);
    let per_call = rate(|i| {
        sm2fast::SigningKey::from_bytes(black_box(&secret))
            .and_then(|k| k.sign(black_box(&messages[i % MESSAGES])))
            .is_ok()
    });
    report("sm2fast key parsed per call", per_call);
    let theirs = rate(|i| reference.sign(black_box(&messages[i % MESSAGES])).is_ok());
    report("reference PrivateKey::sign", theirs);
    println!(
        "per signature (median / best batch): prepared {:.1} / {:.1} µs, parsed per call {:.1} / {:.1} µs, \
         reference {:.1} / {:.1} µs",
        1e6 / ours.0,
        1e6 / ours.1,
        1e6 / per_call.0,
        1e6 / per_call.1,
        1e6 / theirs.0,
        1e6 / theirs.1
    );
}
