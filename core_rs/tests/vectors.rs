//! Every case of the shared vectors (signed by OpenSSL, independent of this
//! project) through the Rust API, with its pinned clock.

use serde_json::Value;
use yibao_core::check::{check, Context};
use yibao_core::trust::TrustList;

const CASES: &str = include_str!("../../../shared/spec/vectors/cases.json");
const TRUST_LIST: &str = include_str!("../../../shared/spec/vectors/trust-list.json");

#[test]
fn every_shared_case() {
    let doc: Value = serde_json::from_str(CASES).unwrap();
    let trust_list = TrustList::from_json(TRUST_LIST.as_bytes()).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 24);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let ctx = Context {
            trust_list: &trust_list,
            now_ms: case["now_ms"].as_u64().unwrap(),
            skew_ms: doc["skew_ms"].as_u64().unwrap(),
            revocations: None,
            replay: None,
        };
        let v = check(case["code"].as_str().unwrap().as_bytes(), &ctx, None);
        assert_eq!(v.outcome.name(), case["outcome"].as_str().unwrap(), "{name}");
        if let Some(want) = case.get("credential") {
            let c = v.credential.as_ref().unwrap();
            assert_eq!(hex::encode_upper(c.credential_id), want["credential_id"], "{name}");
            assert_eq!(c.insured_region_str(), want["insured_region"], "{name}");
            assert_eq!(c.province(), want["province"], "{name}");
            assert_eq!(u64::from(c.channel), want["channel"].as_u64().unwrap(), "{name}");
            assert_eq!(c.issued_at_ms, want["issued_at_ms"].as_u64().unwrap(), "{name}");
            assert_eq!(c.expires_at_ms(), want["expires_at_ms"].as_u64().unwrap(), "{name}");
            assert_eq!(hex::encode_upper(c.key_id), want["key_id"], "{name}");
            assert_eq!(c.family(), want["family"].as_bool().unwrap(), "{name}");
            let presenter = if c.family() { hex::encode_upper(c.presenter_id) } else { String::new() };
            assert_eq!(presenter, want["presenter_id"], "{name}");
        }
    }
}
