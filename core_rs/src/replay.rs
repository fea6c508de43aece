//! The in-process replay record (check step 7): accepted
//! (credential_id, nonce) pairs, each kept until its code expires, in
//! one-second buckets by expiry so pruning is cheap and memory is bounded
//! by the validity window (at most 300 s plus skew of accepted codes).

use std::collections::BTreeMap;
use std::sync::Mutex;

use foldhash::fast::RandomState;
use hashbrown::HashMap;

/// `credential_id ‖ nonce`.
pub type ReplayKey = [u8; 24];

/// An accepted pair: the retry key of the request that was accepted.
struct Entry {
    retry_key: Option<Box<[u8]>>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<ReplayKey, Entry, RandomState>,
    buckets: BTreeMap<u64, Vec<ReplayKey>>,
}

#[derive(Default)]
pub struct ReplayGuard {
    inner: Mutex<Inner>,
}

/// What the guard says of a code that passed steps 1 to 6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// First use: now recorded.
    First,
    /// Already accepted for this same request (same retry key): answer as before.
    Retry,
    Replayed,
}

impl ReplayGuard {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Record `key` unless it already is. `dead_at_ms` is the first instant at
    /// which the code fails step 4 (expiry plus skew): until then a replay
    /// could pass every other check, so the entry is kept that long.
    pub fn admit(&self, key: ReplayKey, retry_key: Option<&[u8]>, dead_at_ms: u64, now_ms: u64) -> Admission {
        let mut inner = self.lock();
        inner.prune(now_ms);
        if let Some(first) = inner.entries.get(&key) {
            return match (first.retry_key.as_deref(), retry_key) {
                (Some(a), Some(b)) if a == b => Admission::Retry,
                _ => Admission::Replayed,
            };
        }
        let second = dead_at_ms.div_ceil(1000);
        inner.entries.insert(key, Entry { retry_key: retry_key.map(Box::from) });
        inner.buckets.entry(second).or_default().push(key);
        Admission::First
    }

    /// Drop entries whose code can no longer pass step 4 at `now_ms`; returns how many.
    pub fn prune(&self, now_ms: u64) -> usize {
        self.lock().prune(now_ms)
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    fn prune(&mut self, now_ms: u64) -> usize {
        // Bucket `s` holds codes dead by `s`·1000 ms; once now is past that,
        // they fail step 4 and can never reach step 7 again.
        let now_s = now_ms / 1000;
        let keep = self.buckets.split_off(&now_s);
        let gone = std::mem::replace(&mut self.buckets, keep);
        let mut n = 0;
        for key in gone.into_values().flatten() {
            n += usize::from(self.entries.remove(&key).is_some());
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_retry_replay_and_expiry() {
        let g = ReplayGuard::new();
        let k = [9u8; 24];
        assert_eq!(g.admit(k, Some(b"H1/r1"), 60_000, 1_000), Admission::First);
        assert_eq!(g.admit(k, Some(b"H1/r1"), 60_000, 2_000), Admission::Retry);
        assert_eq!(g.admit(k, Some(b"H1/r2"), 60_000, 2_000), Admission::Replayed);
        assert_eq!(g.admit(k, None, 60_000, 2_000), Admission::Replayed);
        assert_eq!(g.len(), 1);
        assert_eq!(g.prune(59_999), 0);
        assert_eq!(g.prune(61_000), 1);
        assert!(g.is_empty());
    }

    #[test]
    fn memory_is_bounded_by_the_window() {
        let g = ReplayGuard::new();
        for i in 0u64..10_000 {
            let mut k = [0u8; 24];
            k[..8].copy_from_slice(&i.to_be_bytes());
            let now = i * 100; // ten codes a second, each valid 60 s
            assert_eq!(g.admit(k, None, now + 60_000, now), Admission::First);
        }
        // Ten a second, each kept its 60 s plus at most two bucket seconds.
        assert!(g.len() <= 620, "{}", g.len());
    }
}
