//! The trust list of credential-v1 section 6: issuer keys with their
//! validity windows, checked when loaded and prepared for verification.

use std::sync::Arc;

use serde::Deserialize;

use crate::error::CoreError;
use crate::sm::{self, PublicKey};
use crate::sm2fast::PreparedKey;
use crate::time::parse_rfc3339_ms;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustListJson {
    version: u32,
    keys: Vec<KeyJson>,
}

#[derive(Deserialize)]
struct KeyJson {
    key_id: String,
    public_key: String,
    not_before: String,
    not_after: String,
    #[serde(default)]
    issuer: String,
}

/// One issuer key, ready to verify.
#[derive(Clone, Debug)]
pub struct TrustedKey {
    pub key_id: [u8; 4],
    pub public_key: PublicKey,
    /// Fixed-base tables for this key (256 KiB), built once when the list
    /// loads and shared by every copy of the list.
    pub prepared: Arc<PreparedKey>,
    pub not_before_ms: i64,
    pub not_after_ms: i64,
    pub issuer: String,
}

impl TrustedKey {
    /// Was the key in force at `issued_at_ms` (`[not_before, not_after)`)?
    #[must_use]
    pub fn covers(&self, issued_at_ms: u64) -> bool {
        let t = i128::from(issued_at_ms);
        i128::from(self.not_before_ms) <= t && t < i128::from(self.not_after_ms)
    }
}

#[derive(Clone, Debug, Default)]
pub struct TrustList {
    keys: Vec<TrustedKey>,
}

impl TrustList {
    /// Parse and check the JSON of section 6.
    ///
    /// # Errors
    /// `TrustList` naming the key (by position and key_id) and what is wrong with it.
    pub fn from_json(text: &[u8]) -> Result<Self, CoreError> {
        let doc: TrustListJson = serde_json::from_slice(text)
            .map_err(|e| CoreError::TrustList(format!("not the JSON of section 6: {e}")))?;
        if doc.version != 1 {
            return Err(CoreError::TrustList(format!("version {} is not supported (expected 1)", doc.version)));
        }
        let keys = doc.keys.iter().enumerate().map(|(i, k)| parse_key(i, k)).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { keys })
    }

    #[must_use]
    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }

    /// The keys that carry `key_id` (several keys may share one).
    pub fn with_id(&self, key_id: [u8; 4]) -> impl Iterator<Item = &TrustedKey> {
        self.keys.iter().filter(move |k| k.key_id == key_id)
    }
}

fn parse_key(index: usize, k: &KeyJson) -> Result<TrustedKey, CoreError> {
    let name = format!("key {index} ({:?})", k.key_id);
    let fail = |why: String| CoreError::TrustList(format!("{name}: {why}"));
    let key_id: [u8; 4] = hex::decode(&k.key_id)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| fail("key_id is not 8 hexadecimal digits".into()))?;
    let sec1 = hex::decode(&k.public_key).map_err(|_| fail("public_key is not hexadecimal".into()))?;
    let public_key = PublicKey::from_sec1(&sec1).map_err(|e| fail(e.to_string()))?;
    let actual = sm::key_id(public_key.sec1());
    if actual != key_id {
        return Err(fail(format!(
            "key_id does not match the public key, whose key id is {}",
            hex::encode_upper(actual)
        )));
    }
    let not_before_ms = parse_rfc3339_ms("not_before", &k.not_before).map_err(|e| fail(e.to_string()))?;
    let not_after_ms = parse_rfc3339_ms("not_after", &k.not_after).map_err(|e| fail(e.to_string()))?;
    if not_after_ms <= not_before_ms {
        return Err(fail(format!("not_after {} is not after not_before {}", k.not_after, k.not_before)));
    }
    let prepared =
        PreparedKey::new(public_key.sec1()).ok_or_else(|| fail("the point is not on the curve sm2p256v1".into()))?;
    Ok(TrustedKey {
        key_id,
        public_key,
        prepared: Arc::new(prepared),
        not_before_ms,
        not_after_ms,
        issuer: k.issuer.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARED: &str = include_str!("../../../shared/spec/vectors/trust-list.json");

    #[test]
    fn loads_the_shared_list() {
        let t = TrustList::from_json(SHARED.as_bytes()).unwrap();
        assert_eq!(t.keys().len(), 2);
        assert_eq!(t.keys()[0].key_id, [0x84, 0x61, 0x94, 0x2B]);
        assert_eq!(t.keys()[0].not_before_ms, 1_767_225_600_000);
    }

    #[test]
    fn refuses_a_key_id_that_does_not_match() {
        let bad = SHARED.replace("8461942B", "8461942C");
        let e = TrustList::from_json(bad.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("key 0") && e.contains("8461942C") && e.contains("8461942B"), "{e}");
    }

    #[test]
    fn refuses_a_point_off_the_curve() {
        let bad = SHARED.replace("395e9b8b\"", "395e9b8c\"");
        let e = TrustList::from_json(bad.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("key 0") && e.contains("not on the curve"), "{e}");
    }
}
