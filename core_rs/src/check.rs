//! The checks of credential-v1 section 4, in order, as one call; and the
//! same over a batch, spread over cores.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

use crate::credential::{self, Credential};
use crate::outcome::Outcome;
use crate::replay::{Admission, ReplayGuard, ReplayKey};
use crate::revocation::{Reason, RevocationSet, Standing};
use crate::sm;
use crate::trust::TrustList;

pub const DEFAULT_SKEW_MS: u64 = 5_000;

/// What the checks are run against.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub trust_list: &'a TrustList,
    pub now_ms: u64,
    pub skew_ms: u64,
    /// Step 6 passes when absent.
    pub revocations: Option<&'a RevocationSet>,
    /// Step 7 is left to the caller when absent.
    pub replay: Option<&'a ReplayGuard>,
}

#[derive(Clone, Debug)]
pub struct Verdict {
    pub outcome: Outcome,
    /// Present unless step 1 failed.
    pub credential: Option<Credential>,
    pub revocation_reason: Option<Reason>,
    /// Step 6 met the snapshot's "maybe": the outcome is what it is if the
    /// national store says the id is not revoked, REVOKED if it says it is.
    /// Step 7 is left to the caller, after it asked.
    pub revocation_unconfirmed: bool,
    /// Why step 1 failed, for logs; empty otherwise.
    pub why: String,
}

impl Verdict {
    fn of(outcome: Outcome, credential: Credential) -> Self {
        Self {
            outcome,
            credential: Some(credential),
            revocation_reason: None,
            revocation_unconfirmed: false,
            why: String::new(),
        }
    }
}

/// Run steps 1 to 7 on one code.
#[must_use]
pub fn check(code: &[u8], ctx: &Context<'_>, retry_key: Option<&[u8]>) -> Verdict {
    let v = check_stateless(code, ctx);
    admit(v, ctx, retry_key)
}

/// Steps 1 to 6 on every code in parallel on `pool` (or rayon's global
/// pool), then step 7 in input order, so the first of two equal codes wins.
#[must_use]
pub fn check_batch(
    codes: &[Vec<u8>],
    ctx: &Context<'_>,
    retry_keys: Option<&[Option<Vec<u8>>]>,
    threads: Option<usize>,
) -> Vec<Verdict> {
    let run = || codes.par_iter().with_min_len(8).map(|c| check_stateless(c, ctx)).collect::<Vec<_>>();
    let verdicts = match threads.and_then(pool) {
        Some(p) => p.install(run),
        None => run(),
    };
    verdicts
        .into_iter()
        .enumerate()
        .map(|(i, v)| admit(v, ctx, retry_keys.and_then(|k| k.get(i)).and_then(Option::as_deref)))
        .collect()
}

fn check_stateless(code: &[u8], ctx: &Context<'_>) -> Verdict {
    // Step 1.
    let c = match credential::decode(code) {
        Ok(c) => c,
        Err((outcome, why)) => {
            return Verdict { outcome, credential: None, revocation_reason: None, revocation_unconfirmed: false, why }
        }
    };
    // Step 2: keys that carry this id; step 3: those in force when issued.
    let mut known = false;
    let mut in_force = Vec::with_capacity(1);
    for key in ctx.trust_list.with_id(c.key_id) {
        known = true;
        if key.covers(c.issued_at_ms) {
            in_force.push(key);
        }
    }
    if !known {
        return Verdict::of(Outcome::UnknownKey, c);
    }
    if in_force.is_empty() {
        return Verdict::of(Outcome::KeyNotValid, c);
    }
    // Step 4, in u128 so no field value can overflow.
    let now = u128::from(ctx.now_ms);
    let skew = u128::from(ctx.skew_ms);
    if u128::from(c.issued_at_ms) > now + skew {
        return Verdict::of(Outcome::NotYetValid, c);
    }
    if now >= u128::from(c.expires_at_ms()) + skew {
        return Verdict::of(Outcome::Expired, c);
    }
    // Step 5, on the fixed-base tables of the key.
    let (r, s) = c.signature.split_at(32);
    let (r, s): (&[u8; 32], &[u8; 32]) = (r.try_into().unwrap_or(&[0; 32]), s.try_into().unwrap_or(&[0; 32]));
    let signed_by_one = in_force.iter().any(|key| {
        let e = sm::message_digest(key.public_key.identity_hash(), &c.signed);
        key.prepared.verify_prehash(&e, r, s)
    });
    if !signed_by_one {
        return Verdict::of(Outcome::BadSignature, c);
    }
    // Step 6.
    if let Some(revocations) = ctx.revocations {
        match revocations.standing(&c.credential_id, c.channel) {
            Standing::Good => {}
            Standing::Revoked(reason) => {
                let mut v = Verdict::of(Outcome::Revoked, c);
                v.revocation_reason = Some(reason);
                return v;
            }
            Standing::ChannelWithdrawn => return Verdict::of(Outcome::ChannelRevoked, c),
            Standing::Unconfirmed { withdrawn } => {
                let mut v = Verdict::of(if withdrawn { Outcome::ChannelRevoked } else { Outcome::Valid }, c);
                v.revocation_unconfirmed = true;
                return v;
            }
        }
    }
    Verdict::of(Outcome::Valid, c)
}

/// Step 7, for a code that passed everything else.
fn admit(mut v: Verdict, ctx: &Context<'_>, retry_key: Option<&[u8]>) -> Verdict {
    let (Some(guard), Outcome::Valid, Some(c), false) =
        (ctx.replay, v.outcome, v.credential.as_ref(), v.revocation_unconfirmed)
    else {
        return v;
    };
    let dead_at = c.expires_at_ms().saturating_add(ctx.skew_ms);
    if guard.admit(replay_key(c), retry_key, dead_at, ctx.now_ms) == Admission::Replayed {
        v.outcome = Outcome::Replayed;
    }
    v
}

#[must_use]
pub fn replay_key(c: &Credential) -> ReplayKey {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(&c.credential_id);
    k[16..].copy_from_slice(&c.nonce);
    k
}

/// Thread pools by size, built once: building one per call would cost more
/// than a small batch. None (use the global pool) if the OS refuses threads.
fn pool(threads: usize) -> Option<Arc<rayon::ThreadPool>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let mut pools = POOLS.get_or_init(Mutex::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let n = threads.max(1);
    if let Some(p) = pools.get(&n) {
        return Some(Arc::clone(p));
    }
    let p = Arc::new(
        rayon::ThreadPoolBuilder::new().num_threads(n).thread_name(|i| format!("yibao-verify-{i}")).build().ok()?,
    );
    pools.insert(n, Arc::clone(&p));
    Some(p)
}
