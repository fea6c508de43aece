//! Revoked credentials and withdrawn channels (check step 6): an in-process
//! mirror the node fills from the national store. Read-mostly, so a
//! read-write lock; one byte of payload per entry keeps 10 million revoked
//! ids near 300 MB (hashbrown: 16-byte key + 1 value + 1 control byte per
//! slot, at most 7/8 full, slots a power of two).

use std::sync::RwLock;

use foldhash::fast::RandomState;
use hashbrown::HashMap;

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
}

#[derive(Default)]
pub struct RevocationSet {
    revoked: RwLock<HashMap<CredentialId, Reason, RandomState>>,
    /// Bit `c` set: channel `c` (1..=5) withdrawn.
    withdrawn: RwLock<HashMap<CredentialId, u8, RandomState>>,
}

/// Which step-6 outcome, if any, a credential meets on a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Good,
    Revoked(Reason),
    ChannelWithdrawn,
}

impl RevocationSet {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    pub fn revoke(&self, id: CredentialId, reason: Reason) {
        write(&self.revoked).insert(id, reason);
    }

    /// Bulk load under one lock: `ids` is a concatenation of 16-byte ids.
    pub fn revoke_many(&self, ids: &[CredentialId], reason: Reason) {
        let mut map = write(&self.revoked);
        map.reserve(ids.len());
        for id in ids {
            map.insert(*id, reason);
        }
    }

    pub fn restore(&self, id: &CredentialId) -> bool {
        write(&self.revoked).remove(id).is_some()
    }

    #[must_use]
    pub fn reason(&self, id: &CredentialId) -> Option<Reason> {
        read(&self.revoked).get(id).copied()
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
        if let Some(r) = self.reason(id) {
            Standing::Revoked(r)
        } else if self.channel_withdrawn(id, channel) {
            Standing::ChannelWithdrawn
        } else {
            Standing::Good
        }
    }

    pub fn clear(&self) {
        write(&self.revoked).clear();
        write(&self.withdrawn).clear();
    }

    #[must_use]
    pub fn len(&self) -> usize {
        read(&self.revoked).len()
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
        assert_eq!(s.reason(&ids[9_999]), Some(Reason::Deceased));
    }
}
