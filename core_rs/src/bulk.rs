//! Revocations in bulk, as the national store takes them: a batch's ids and
//! reason codes checked and packed into 17-byte records (the form events
//! and snapshots carry), and records grouped by the store's buckets.
//!
//! The store keeps revocations in 2^20 bucket hashes, grouped into shards
//! of consecutive buckets (one Redis Cluster hash tag each). An id's bucket
//! is the first 20 bits of its SM3 digest, big-endian: ids are opaque and
//! need not be spread evenly themselves. So many buckets because a bucket
//! is a listpack, whose every write scans it: at 100 million ids a bucket
//! holds about 95, and Redis spends a quarter of the time per write that
//! it did with 2^16 buckets of 1,526 (benchmarks/revocation_buckets.py).

use crate::revocation::{CredentialId, Reason};
use crate::sm::sm3;

/// Bytes of a record: the 16-byte id, then its reason code.
pub const RECORD: usize = 17;

/// Which entry of a batch was refused, and which of its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadEntry {
    pub index: usize,
    pub field: &'static str,
}

/// The records of a batch: `ids[i]` (32 hexadecimal digits, either case)
/// revoked for `codes[i]` (a reason code, `L` `F` `C` `D`). The first bad
/// entry is refused whole, so nothing of a bad batch is stored.
pub fn records<'a>(ids: impl ExactSizeIterator<Item = &'a str>, codes: &[u8]) -> Result<Vec<u8>, BadEntry> {
    if ids.len() != codes.len() {
        return Err(BadEntry { index: ids.len().min(codes.len()), field: "reason" });
    }
    let mut out = Vec::with_capacity(codes.len() * RECORD);
    for (index, (id, &code)) in ids.zip(codes).enumerate() {
        let start = out.len();
        out.resize(start + 16, 0);
        if id.len() != 32 || hex::decode_to_slice(id, &mut out[start..]).is_err() {
            return Err(BadEntry { index, field: "credential_id" });
        }
        if Reason::from_code(code).is_none() {
            return Err(BadEntry { index, field: "reason" });
        }
        out.push(code);
    }
    Ok(out)
}

/// How many buckets there are: an id's bucket is `0..BUCKETS`.
pub const BUCKETS: u32 = 1 << 20;

/// The bucket (`0..BUCKETS`) an id is kept in.
#[must_use]
pub fn bucket(id: &CredentialId) -> u32 {
    let digest = sm3(id);
    u32::from_be_bytes([0, digest[0], digest[1], digest[2]]) >> 4
}

/// The records of one shard, in the order given, and each one's bucket.
#[derive(Debug, PartialEq, Eq)]
pub struct Shard {
    pub shard: u32,
    pub buckets: Vec<u32>,
    pub records: Vec<u8>,
}

/// `records` grouped by shard (`buckets_per_shard` consecutive buckets
/// each), shards in ascending order. `Err(len)` if `records` is not whole
/// records, or `buckets_per_shard` is 0.
pub fn by_shard(records: &[u8], buckets_per_shard: u32) -> Result<Vec<Shard>, usize> {
    if records.len() % RECORD != 0 || buckets_per_shard == 0 {
        return Err(records.len());
    }
    let mut shards: Vec<Shard> = Vec::new();
    let mut index_of = vec![usize::MAX; ((BUCKETS - 1) / buckets_per_shard + 1) as usize];
    for record in records.chunks_exact(RECORD) {
        let id: &CredentialId = record[..16].try_into().map_err(|_| records.len())?;
        let b = bucket(id);
        let shard = b / buckets_per_shard;
        let slot = &mut index_of[shard as usize];
        if *slot == usize::MAX {
            *slot = shards.len();
            shards.push(Shard { shard, buckets: Vec::new(), records: Vec::new() });
        }
        let s = &mut shards[*slot];
        s.buckets.push(b);
        s.records.extend_from_slice(record);
    }
    shards.sort_unstable_by_key(|s| s.shard);
    Ok(shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "3A7C0F19B2D44E8A9C115E6B0D2F4A71";
    const B: &str = "00000000000000000000000000000000";

    #[test]
    fn records_pack_ids_and_codes() {
        let out = records([A, &A.to_lowercase(), B].iter().map(|s| &**s), b"LFD").unwrap();
        assert_eq!(out.len(), 3 * RECORD);
        assert_eq!(&out[..16], &hex::decode(A).unwrap()[..]);
        assert_eq!(out[16], b'L');
        assert_eq!(&out[17..33], &out[..16], "either case");
        assert_eq!(out[33], b'F');
        assert_eq!(&out[34..50], &[0u8; 16]);
        assert_eq!(out[50], b'D');
    }

    #[test]
    fn records_name_the_first_bad_entry() {
        let bad = |ids: &[&str], codes: &[u8]| records(ids.iter().copied(), codes).unwrap_err();
        assert_eq!(bad(&[A, "3A7C"], b"LL"), BadEntry { index: 1, field: "credential_id" });
        assert_eq!(bad(&[A, &format!("{}G", &A[..31])], b"LL"), BadEntry { index: 1, field: "credential_id" });
        assert_eq!(bad(&[A, &format!("{A}00")], b"LL"), BadEntry { index: 1, field: "credential_id" });
        assert_eq!(bad(&["３A7C0F19B2D44E8A9C115E6B0D2F4A7"], b"L"), BadEntry { index: 0, field: "credential_id" });
        assert_eq!(bad(&[A, B], b"LX"), BadEntry { index: 1, field: "reason" });
        assert_eq!(bad(&[A, B], b"L\0"), BadEntry { index: 1, field: "reason" });
        assert_eq!(bad(&[A, B], b"L"), BadEntry { index: 1, field: "reason" });
        assert_eq!(records(std::iter::empty(), b"").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn bucket_is_the_first_20_bits_of_sm3() {
        let id: CredentialId = hex::decode(A).unwrap().try_into().unwrap();
        let d = sm3(&id);
        let expected = u32::from(d[0]) << 12 | u32::from(d[1]) << 4 | u32::from(d[2]) >> 4;
        assert_eq!(bucket(&id), expected);
        // More distinct buckets than 16 bits could name: the 20 bits are used.
        let seen: std::collections::HashSet<u32> =
            (0..100_000u128).map(|i| bucket(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes())).collect();
        assert!(seen.len() > 1 << 16, "{} buckets", seen.len());
        assert!(seen.iter().all(|&b| b < BUCKETS));
    }

    #[test]
    fn by_shard_groups_every_record_once_in_order() {
        let ids: Vec<String> = (0u32..5_000).map(|i| format!("{i:032X}")).collect();
        let codes: Vec<u8> = (0..ids.len()).map(|i| b"LFCD"[i % 4]).collect();
        let recs = records(ids.iter().map(String::as_str), &codes).unwrap();
        let shards = by_shard(&recs, 16_384).unwrap();
        assert_eq!(shards.len(), 64, "5,000 hashed ids reach every one of 64 shards");
        assert!(shards.windows(2).all(|w| w[0].shard < w[1].shard));
        let mut seen = Vec::new();
        for s in &shards {
            assert_eq!(s.buckets.len() * RECORD, s.records.len());
            for (b, r) in s.buckets.iter().zip(s.records.chunks_exact(RECORD)) {
                let id: CredentialId = r[..16].try_into().unwrap();
                assert_eq!(*b, bucket(&id));
                assert_eq!(b / 16_384, s.shard);
                seen.push(r.to_vec());
            }
            // Within a shard, the batch's order.
            let positions: Vec<usize> = s
                .records
                .chunks_exact(RECORD)
                .map(|r| recs.chunks_exact(RECORD).position(|x| x == r).unwrap())
                .collect();
            assert!(positions.windows(2).all(|w| w[0] < w[1]));
        }
        seen.sort();
        let mut all: Vec<Vec<u8>> = recs.chunks_exact(RECORD).map(<[u8]>::to_vec).collect();
        all.sort();
        assert_eq!(seen, all);
    }

    #[test]
    fn by_shard_refuses_partial_records() {
        assert_eq!(by_shard(&[0; 18], 16_384), Err(18));
        assert_eq!(by_shard(&[0; 17], 0), Err(17));
        assert_eq!(by_shard(&[], 16_384), Ok(vec![]));
        assert_eq!(by_shard(&[0; 17], 1).unwrap().len(), 1, "one bucket a shard");
    }
}
