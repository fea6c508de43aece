//! Revoked credentials and withdrawn channels (check step 6): an in-process
//! mirror the node fills from the national store. Read-mostly, so a
//! read-write lock.
//!
//! At national size the mirror is a snapshot plus a delta. The snapshot is
//! a binary fuse filter of every id revoked when it was taken ([`FuseFilter`],
//! a file mapped by all workers, about 2.26 bytes per id); the delta holds,
//! exactly, what the national stream said since: revocations with their
//! reason, and restorations as tombstones that overrule the filter. An id
//! the delta does not know and the filter may hold is [`Standing::Unconfirmed`]:
//! the caller asks the national store, so a filter's false "maybe" never
//! becomes a wrong REVOKED. Without a snapshot the delta is the whole set
//! (a small national store, tests). One byte of payload per delta entry
//! (hashbrown: 16-byte key + 1 value + 1 control byte per slot).

use std::sync::{Arc, RwLock};

use foldhash::fast::RandomState;
use hashbrown::HashMap;

use crate::fuse::FuseFilter;

pub type CredentialId = [u8; 16];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Lost,
    Frozen,
    Cancelled,
    Deceased,
}

impl Reason {
    pub const ALL: [Reason; 4] = [Self::Lost, Self::Frozen, Self::Cancelled, Self::Deceased];

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Lost => "LOST",
            Self::Frozen => "FROZEN",
            Self::Cancelled => "CANCELLED",
            Self::Deceased => "DECEASED",
        }
    }

    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The one byte the national store keeps per id: the name's first letter.
    #[must_use]
    pub const fn code(self) -> u8 {
        self.name().as_bytes()[0]
    }

    #[must_use]
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// What changed since the snapshot, with counts kept as it changes so that
/// `len` costs nothing.
#[derive(Default)]
struct Delta {
    /// None: restored since the snapshot (a tombstone over the filter).
    map: HashMap<CredentialId, Option<Reason>, RandomState>,
    /// Revoked ids the snapshot does not hold.
    outside: usize,
    tombstones: usize,
}

impl Delta {
    fn revoke(&mut self, base: Option<&FuseFilter>, id: CredentialId, reason: Reason) {
        match self.map.insert(id, Some(reason)) {
            Some(Some(_)) => {}
            Some(None) => self.tombstones -= 1,
            None => self.outside += usize::from(!base.is_some_and(|f| f.may_contain(&id))),
        }
    }

    /// True if a revocation was held here.
    fn restore(&mut self, base: Option<&FuseFilter>, id: &CredentialId) -> bool {
        if base.is_some_and(|f| f.may_contain(id)) {
            let old = self.map.insert(*id, None);
            if old != Some(None) {
                self.tombstones += 1;
            }
            old.flatten().is_some()
        } else {
            let had = self.map.remove(id).flatten().is_some();
            self.outside -= usize::from(had);
            had
        }
    }
}

#[derive(Default)]
pub struct RevocationSet {
    /// The snapshot the delta is relative to.
    base: Option<Arc<FuseFilter>>,
    revoked: RwLock<Delta>,
    /// Bit `c` set: channel `c` (1..=5) withdrawn.
    withdrawn: RwLock<HashMap<CredentialId, u8, RandomState>>,
}

/// What the mirror knows of one id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Revoked with this reason, or (None) not revoked.
    Known(Option<Reason>),
    /// The snapshot may hold it: only the national store can say.
    Unconfirmed,
}

/// Which step-6 outcome, if any, a credential meets on a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Good,
    Revoked(Reason),
    ChannelWithdrawn,
    /// The snapshot may hold the id: only the national store can say.
    /// `withdrawn` tells the answer if it says "not revoked".
    Unconfirmed {
        withdrawn: bool,
    },
}

impl RevocationSet {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty delta over `snapshot`, with the withdrawn channels of
    /// `withdrawals_from` (withdrawals are few and always held exactly).
    #[must_use]
    pub fn over_snapshot(snapshot: Arc<FuseFilter>, withdrawals_from: Option<&Self>) -> Self {
        let withdrawn = withdrawals_from.map(|s| read(&s.withdrawn).clone()).unwrap_or_default();
        Self { base: Some(snapshot), revoked: RwLock::default(), withdrawn: RwLock::new(withdrawn) }
    }

    #[must_use]
    pub fn snapshot(&self) -> Option<&FuseFilter> {
        self.base.as_deref()
    }

    pub fn revoke(&self, id: CredentialId, reason: Reason) {
        write(&self.revoked).revoke(self.base.as_deref(), id, reason);
    }

    /// Bulk load under one lock: `ids` is a concatenation of 16-byte ids.
    pub fn revoke_many(&self, ids: &[CredentialId], reason: Reason) {
        let mut delta = write(&self.revoked);
        delta.map.reserve(ids.len());
        for id in ids {
            delta.revoke(self.base.as_deref(), *id, reason);
        }
    }

    /// Lift a revocation; true if the delta held one.
    /// Bulk revocations as the national stream carries them: 17-byte
    /// records, the id then its reason's code. Err(index) names the first
    /// record whose reason code is unknown; nothing is applied then.
    pub fn revoke_records(&self, records: &[u8]) -> Result<usize, usize> {
        if records.len() % 17 != 0 {
            return Err(records.len() / 17);
        }
        let mut parsed = Vec::with_capacity(records.len() / 17);
        for (i, r) in records.chunks_exact(17).enumerate() {
            let id: CredentialId = r[..16].try_into().map_err(|_| i)?;
            parsed.push((id, Reason::from_code(r[16]).ok_or(i)?));
        }
        let mut delta = write(&self.revoked);
        delta.map.reserve(parsed.len());
        for (id, reason) in &parsed {
            delta.revoke(self.base.as_deref(), *id, *reason);
        }
        Ok(parsed.len())
    }

    pub fn restore(&self, id: &CredentialId) -> bool {
        write(&self.revoked).restore(self.base.as_deref(), id)
    }

    /// The delta's answer, else the snapshot's.
    #[must_use]
    pub fn lookup(&self, id: &CredentialId) -> Lookup {
        if let Some(entry) = read(&self.revoked).map.get(id) {
            return Lookup::Known(*entry);
        }
        match &self.base {
            Some(f) if f.may_contain(id) => Lookup::Unconfirmed,
            _ => Lookup::Known(None),
        }
    }

    pub fn withdraw_channel(&self, id: CredentialId, channel: u8) {
        *write(&self.withdrawn).entry(id).or_insert(0) |= channel_bit(channel);
    }

    pub fn restore_channel(&self, id: &CredentialId, channel: u8) -> bool {
        let mut map = write(&self.withdrawn);
        let Some(mask) = map.get_mut(id) else { return false };
        let had = *mask & channel_bit(channel) != 0;
        *mask &= !channel_bit(channel);
        if *mask == 0 {
            map.remove(id);
        }
        had
    }

    #[must_use]
    pub fn channel_withdrawn(&self, id: &CredentialId, channel: u8) -> bool {
        read(&self.withdrawn).get(id).is_some_and(|m| m & channel_bit(channel) != 0)
    }

    /// Step 6 for one credential: revocation first, then the channel.
    #[must_use]
    pub fn standing(&self, id: &CredentialId, channel: u8) -> Standing {
        match self.lookup(id) {
            Lookup::Known(Some(r)) => Standing::Revoked(r),
            Lookup::Unconfirmed => Standing::Unconfirmed { withdrawn: self.channel_withdrawn(id, channel) },
            Lookup::Known(None) if self.channel_withdrawn(id, channel) => Standing::ChannelWithdrawn,
            Lookup::Known(None) => Standing::Good,
        }
    }

    pub fn clear(&self) {
        *write(&self.revoked) = Delta::default();
        write(&self.withdrawn).clear();
    }

    /// Revoked ids: those in the snapshot, plus revocations since of ids it
    /// does not hold, less restorations since (one id in 65,536 revoked
    /// since is taken for one the snapshot holds).
    #[must_use]
    pub fn len(&self) -> usize {
        let delta = read(&self.revoked);
        let base = self.base.as_ref().map_or(0, |f| usize::try_from(f.ids()).unwrap_or(usize::MAX));
        (base + delta.outside).saturating_sub(delta.tombstones)
    }

    /// Entries in the delta (revocations and tombstones since the snapshot).
    #[must_use]
    pub fn delta_len(&self) -> usize {
        read(&self.revoked).map.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[must_use]
    pub fn withdrawals(&self) -> usize {
        read(&self.withdrawn).len()
    }
}

fn channel_bit(channel: u8) -> u8 {
    1u8.checked_shl(u32::from(channel)).unwrap_or(0)
}

// A panic while holding the lock cannot leave a map half-updated in a way
// that matters (each write is one insert or remove), so a poisoned lock is
// used as it is rather than spreading the panic.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoke_restore_and_channels() {
        let s = RevocationSet::new();
        let a = [1u8; 16];
        assert_eq!(s.standing(&a, 2), Standing::Good);
        s.withdraw_channel(a, 2);
        assert_eq!(s.standing(&a, 2), Standing::ChannelWithdrawn);
        assert_eq!(s.standing(&a, 3), Standing::Good);
        s.revoke(a, Reason::Lost);
        assert_eq!(s.standing(&a, 3), Standing::Revoked(Reason::Lost));
        assert!(s.restore(&a));
        assert!(!s.restore(&a));
        assert!(s.restore_channel(&a, 2));
        assert_eq!(s.withdrawals(), 0);
        assert_eq!(s.standing(&a, 2), Standing::Good);
    }

    #[test]
    fn delta_over_a_snapshot() {
        let snapshot_ids: Vec<CredentialId> = (0u8..100).map(|i| [i; 16]).collect();
        let path = std::env::temp_dir().join(format!("yibao-revocation-{}.fuse", std::process::id()));
        crate::fuse::build_file(&snapshot_ids, &path).unwrap();
        let filter = Arc::new(FuseFilter::open(&path).unwrap());
        std::fs::remove_file(&path).unwrap();
        let old = RevocationSet::new();
        old.withdraw_channel([7; 16], 3);
        let s = RevocationSet::over_snapshot(filter, Some(&old));
        // In the snapshot: only the national store can say.
        assert_eq!(s.standing(&[5; 16], 1), Standing::Unconfirmed { withdrawn: false });
        assert_eq!(s.standing(&[7; 16], 3), Standing::Unconfirmed { withdrawn: true });
        // Restored since: the tombstone overrules the filter.
        assert!(!s.restore(&[5; 16]));
        assert_eq!(s.standing(&[5; 16], 1), Standing::Good);
        // Revoked since: known exactly, with the reason.
        s.revoke([5; 16], Reason::Frozen);
        s.revoke([200; 16], Reason::Lost);
        assert_eq!(s.standing(&[5; 16], 1), Standing::Revoked(Reason::Frozen));
        assert_eq!(s.standing(&[200; 16], 1), Standing::Revoked(Reason::Lost));
        assert!(s.restore(&[200; 16]));
        assert_eq!(s.standing(&[200; 16], 1), Standing::Good);
        assert_eq!(s.delta_len(), 1, "a restored id outside the snapshot leaves nothing behind");
        assert_eq!(s.len(), 100);
    }

    #[test]
    fn bulk_load() {
        let s = RevocationSet::new();
        let ids: Vec<CredentialId> = (0u32..10_000)
            .map(|i| {
                let mut id = [0u8; 16];
                id[..4].copy_from_slice(&i.to_be_bytes());
                id
            })
            .collect();
        s.revoke_many(&ids, Reason::Deceased);
        assert_eq!(s.len(), 10_000);
        assert_eq!(s.lookup(&ids[9_999]), Lookup::Known(Some(Reason::Deceased)));
    }
}
