//! Any bytes as a scanned code, through every check of credential-v1
//! section 4 (revocations and the replay guard included): an outcome for
//! everything, never a panic, and the decoded credential whenever the
//! payload decoded. Seeds (corpus/check/) are codes FUZZ_KEY signed at NOW_MS.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use yibao_core::check::{check, Context, DEFAULT_SKEW_MS};
use yibao_core::outcome::Outcome;
use yibao_core::replay::ReplayGuard;
use yibao_core::revocation::RevocationSet;
use yibao_core::sm::{key_id, PrivateKey};
use yibao_core::trust::TrustList;

const FUZZ_KEY: [u8; 32] = [7; 32];
const NOW_MS: u64 = 1_780_000_000_000;

struct World {
    trust: TrustList,
    revocations: RevocationSet,
    replay: ReplayGuard,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let key = PrivateKey::from_bytes(&FUZZ_KEY).expect("a valid private key");
        let public = key.public_key().sec1();
        let json = format!(
            r#"{{"version":1,"keys":[{{"key_id":"{}","public_key":"{}","not_before":"2020-01-01T00:00:00Z","not_after":"2100-01-01T00:00:00Z","issuer":"fuzz"}}]}}"#,
            hex::encode_upper(key_id(public)),
            hex::encode(public)
        );
        World {
            trust: TrustList::from_json(json.as_bytes()).expect("the fuzz key's trust list"),
            revocations: RevocationSet::default(),
            replay: ReplayGuard::default(),
        }
    })
}

fuzz_target!(|code: &[u8]| {
    let w = world();
    let ctx = Context {
        trust_list: &w.trust,
        now_ms: NOW_MS,
        skew_ms: DEFAULT_SKEW_MS,
        revocations: Some(&w.revocations),
        replay: Some(&w.replay),
    };
    let verdict = check(code, &ctx, None);
    let undecoded = matches!(verdict.outcome, Outcome::Malformed | Outcome::UnsupportedVersion);
    assert_eq!(verdict.credential.is_none(), undecoded, "{:?}", verdict.outcome);
});
