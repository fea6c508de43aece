//! A binary fuse filter (Graf & Lemire, "Binary Fuse Filters: Fast and
//! Smaller Than Xor Filters", 2022) over 16-byte credential ids: 16-bit
//! fingerprints, about 2.26 bytes per id, a false "maybe" for one id in
//! 65,536, never a false "no".
//!
//! The revocation snapshot is this filter in a file (layout below) that
//! every worker of a node maps read-only, so the pages are held once per
//! machine however many workers there are. A hit is only "maybe revoked":
//! the caller confirms it against the national store.
//!
//! File layout, little-endian:
//! `b"YBFUSE16"`, seed u64, ids u64, segment length u32, segment count
//! length u32, array length u32, zero u32, then array length u16 fingerprints.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use memmap2::Mmap;

use crate::revocation::CredentialId;

const MAGIC: &[u8; 8] = b"YBFUSE16";
const HEADER: usize = 40;
const MAX_SEGMENT_LENGTH: u32 = 1 << 18;

/// The filter's geometry; every lookup position is below `array_length`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    seed: u64,
    ids: u64,
    segment_length: u32,
    segment_count_length: u32,
    array_length: u32,
}

impl Shape {
    fn for_ids(n: usize, seed: u64, extra_segments: u32) -> Option<Self> {
        let size = n.max(2) as f64;
        let exponent = (size.ln() / 3.33f64.ln() + 2.25).floor().clamp(2.0, 18.0);
        let segment_length = (1u32 << exponent as u32).min(MAX_SEGMENT_LENGTH);
        let size_factor = (0.875 + 0.25 * 1_000_000f64.ln() / size.ln()).max(1.125);
        let capacity = (size * size_factor).round() as u64;
        let segments =
            capacity.div_ceil(u64::from(segment_length)).saturating_sub(2).max(1) + u64::from(extra_segments);
        let segment_count_length = u32::try_from(segments * u64::from(segment_length)).ok()?;
        let array_length = segment_count_length.checked_add(2 * segment_length)?;
        Some(Self { seed, ids: n as u64, segment_length, segment_count_length, array_length })
    }

    fn valid(&self) -> bool {
        self.segment_length.is_power_of_two()
            && self.segment_length <= MAX_SEGMENT_LENGTH
            && self.segment_count_length > 0
            && self.segment_count_length % self.segment_length == 0
            && u64::from(self.array_length) == u64::from(self.segment_count_length) + 2 * u64::from(self.segment_length)
    }

    /// The three positions of a hash: one in each of three consecutive segments.
    fn positions(&self, hash: u64) -> [usize; 3] {
        let mask = u64::from(self.segment_length - 1);
        let h0 = ((u128::from(hash) * u128::from(self.segment_count_length)) >> 64) as u64;
        let h1 = (h0 + u64::from(self.segment_length)) ^ ((hash >> 18) & mask);
        let h2 = (h0 + 2 * u64::from(self.segment_length)) ^ (hash & mask);
        [h0 as usize, h1 as usize, h2 as usize]
    }

    fn hash(&self, id: &CredentialId) -> u64 {
        let lo = u64::from_le_bytes(id[..8].try_into().unwrap_or_default());
        let hi = u64::from_le_bytes(id[8..].try_into().unwrap_or_default());
        mix(mix(lo ^ self.seed) ^ hi)
    }
}

/// MurmurHash3's finaliser: a bijection on u64 that spreads every bit.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

fn fingerprint(hash: u64) -> u16 {
    (hash ^ (hash >> 32)) as u16
}

/// Build the filter of `ids` and write it to `path` (through a file beside
/// it, renamed into place, so a reader never maps half a file). Returns
/// the number of distinct ids in it.
pub fn build_file(ids: &[CredentialId], path: &Path) -> io::Result<u64> {
    let (shape, fingerprints) = build(ids);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut out = io::BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
    out.write_all(MAGIC)?;
    out.write_all(&shape.seed.to_le_bytes())?;
    out.write_all(&shape.ids.to_le_bytes())?;
    for v in [shape.segment_length, shape.segment_count_length, shape.array_length, 0] {
        out.write_all(&v.to_le_bytes())?;
    }
    for f in &fingerprints {
        out.write_all(&f.to_le_bytes())?;
    }
    out.into_inner().map_err(io::IntoInnerError::into_error)?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(shape.ids)
}

fn build(ids: &[CredentialId]) -> (Shape, Vec<u16>) {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut deduplicated = false;
    let mut extra_segments = 0;
    let mut hashes: Vec<u64> = Vec::new();
    for attempt in 0u32.. {
        seed = mix(seed.wrapping_add(u64::from(attempt)));
        let Some(mut shape) = Shape::for_ids(ids.len(), seed, extra_segments) else {
            // More ids than u32 positions hold: not reachable below ~1.9 billion ids.
            extra_segments = 0;
            continue;
        };
        hashes.clear();
        hashes.extend(ids.iter().map(|id| shape.hash(id)));
        if deduplicated {
            // Equal ids (or, rarely, equal hashes) can never be peeled apart.
            hashes.sort_unstable();
            hashes.dedup();
        }
        shape.ids = hashes.len() as u64;
        if let Some(fingerprints) = peel_and_assign(&shape, &hashes) {
            return (shape, fingerprints);
        }
        deduplicated = true;
        if attempt % 8 == 7 {
            // Very small sets can fail with any seed at the tightest size.
            extra_segments += 1;
        }
    }
    unreachable!("the loop returns or runs on")
}

/// Peel the 3-hypergraph; None if it has a core (try another seed).
fn peel_and_assign(shape: &Shape, hashes: &[u64]) -> Option<Vec<u16>> {
    let len = shape.array_length as usize;
    let mut count = vec![0u8; len];
    let mut xored = vec![0u64; len];
    for &h in hashes {
        for p in shape.positions(h) {
            count[p] = count[p].checked_add(1)?;
            xored[p] ^= h;
        }
    }
    let mut queue: Vec<u32> = (0..len as u32).filter(|&p| count[p as usize] == 1).collect();
    let mut order: Vec<(u64, u32)> = Vec::with_capacity(hashes.len());
    while let Some(p) = queue.pop() {
        if count[p as usize] != 1 {
            continue;
        }
        let h = xored[p as usize];
        order.push((h, p));
        for q in shape.positions(h) {
            count[q] -= 1;
            xored[q] ^= h;
            if count[q] == 1 {
                queue.push(q as u32);
            }
        }
    }
    if order.len() != hashes.len() {
        return None;
    }
    drop((count, xored, queue));
    let mut fingerprints = vec![0u16; len];
    for &(h, p) in order.iter().rev() {
        let [a, b, c] = shape.positions(h);
        // fingerprints[p] is still 0, so this is the xor of the other two.
        fingerprints[p as usize] = fingerprint(h) ^ fingerprints[a] ^ fingerprints[b] ^ fingerprints[c];
    }
    Some(fingerprints)
}

/// A filter file mapped read-only.
pub struct FuseFilter {
    shape: Shape,
    map: Mmap,
}

impl FuseFilter {
    /// Map a file written by [`build_file`]; an error names what is wrong
    /// with it rather than mapping something a lookup could run off.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        // SAFETY: the file is written once, beside its final name, and
        // renamed into place; nothing writes to it after that, so the
        // mapping never changes under the reader.
        let map = unsafe { Mmap::map(&file)? };
        let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path.display()));
        if map.len() < HEADER || &map[..8] != MAGIC {
            return Err(bad("not a revocation filter (no YBFUSE16 header)"));
        }
        let u64_at = |o: usize| u64::from_le_bytes(map[o..o + 8].try_into().unwrap_or_default());
        let u32_at = |o: usize| u32::from_le_bytes(map[o..o + 4].try_into().unwrap_or_default());
        let shape = Shape {
            seed: u64_at(8),
            ids: u64_at(16),
            segment_length: u32_at(24),
            segment_count_length: u32_at(28),
            array_length: u32_at(32),
        };
        if !shape.valid() {
            return Err(bad("inconsistent filter geometry"));
        }
        if map.len() != HEADER + 2 * shape.array_length as usize {
            return Err(bad(&format!(
                "{} bytes where the header promises {}",
                map.len(),
                HEADER + 2 * shape.array_length as usize
            )));
        }
        #[cfg(unix)]
        {
            // Lookups land anywhere in the file: read-ahead would only waste the page cache.
            let _ = map.advise(memmap2::Advice::Random);
        }
        Ok(Self { shape, map })
    }

    /// False: certainly not in the set. True: in it, or (one time in 65,536) not.
    #[must_use]
    pub fn may_contain(&self, id: &CredentialId) -> bool {
        let h = self.shape.hash(id);
        let mut f = fingerprint(h);
        for p in self.shape.positions(h) {
            let o = HEADER + 2 * p;
            f ^= self.map.get(o..o + 2).map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
        }
        f == 0
    }

    /// Distinct ids the filter was built from.
    #[must_use]
    pub fn ids(&self) -> u64 {
        self.shape.ids
    }

    #[must_use]
    pub fn bytes(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u32, salt: u8) -> Vec<CredentialId> {
        (0..n)
            .map(|i| {
                let mut id = [salt; 16];
                id[..4].copy_from_slice(&i.to_le_bytes());
                id
            })
            .collect()
    }

    fn roundtrip(set: &[CredentialId]) -> FuseFilter {
        let dir = std::env::temp_dir().join(format!("yibao-fuse-{}-{}", std::process::id(), set.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.fuse");
        build_file(set, &path).unwrap();
        let f = FuseFilter::open(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        f
    }

    #[test]
    fn no_false_negatives_and_rare_false_positives() {
        let members = ids(200_000, 1);
        let f = roundtrip(&members);
        assert_eq!(f.ids(), 200_000);
        assert!(members.iter().all(|id| f.may_contain(id)));
        let strangers = ids(1_000_000, 2);
        let false_hits = strangers.iter().filter(|id| f.may_contain(id)).count();
        // Expected 1,000,000 / 65,536 = 15.3; 60 would be 11 standard deviations out.
        assert!(false_hits < 60, "{false_hits} false hits in a million");
        assert!((f.bytes() as f64) / 200_000.0 < 2.4, "{} bytes", f.bytes());
    }

    #[test]
    fn tiny_empty_and_duplicated_sets() {
        for n in [0u32, 1, 2, 3, 5, 17, 100] {
            let members = ids(n, 3);
            let f = roundtrip(&members);
            assert!(members.iter().all(|id| f.may_contain(id)), "n = {n}");
        }
        let mut twice = ids(1000, 4);
        twice.extend(ids(1000, 4));
        let f = roundtrip(&twice);
        assert_eq!(f.ids(), 1000);
        assert!(twice.iter().all(|id| f.may_contain(id)));
    }

    #[test]
    fn refuses_a_file_that_is_not_a_filter() {
        let path = std::env::temp_dir().join(format!("yibao-fuse-bad-{}", std::process::id()));
        std::fs::write(&path, b"YBFUSE16 but nothing after it").unwrap();
        assert!(FuseFilter::open(&path).is_err());
        std::fs::write(&path, b"short").unwrap();
        assert!(FuseFilter::open(&path).is_err());
        let members = ids(1000, 5);
        build_file(&members, &path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 2);
        std::fs::write(&path, &bytes).unwrap();
        assert!(FuseFilter::open(&path).is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
