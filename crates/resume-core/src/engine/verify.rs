//! Checking the bytes: each part's record on disk, the checksums combined from the parts,
//! and the digests that need one in-order pass over the file.

use std::ops::Range;

use checkpoint::{Checkpoint, PartLayout};

use super::{Attempt, Failure, Transfer, lock, usize_of};
use crate::error::Error;
use crate::integrity::{
    Algorithm, CompositeFromParts, CompositeHasher, Computed, CrcCombiner, CrcHasher, CrcSet,
    InOrderHasher, Origin, PartCrcs, Plan, Scope, Verification, show,
};
use crate::part_file::PartFile;

impl Attempt<'_> {
    /// Compares what was computed with every check; a mismatch names the algorithm and both
    /// values.
    pub(super) fn verify(
        &self,
        checks: &Plan,
        computed: &Computed,
    ) -> Result<Verification, Failure> {
        checks.compare(computed).map_err(|(expected, actual)| {
            Failure::Fatal(Error::Integrity {
                key: self.key.to_owned(),
                algorithm: match &expected.scope {
                    Scope::FullObject => expected.algorithm.name().to_owned(),
                    composite => format!("{} {composite}", expected.algorithm),
                },
                origin: match &expected.origin {
                    Origin::Store(s) => format!("the store ({s})"),
                    Origin::User(s) => s.clone(),
                },
                expected: show(expected.algorithm, &expected.value),
                actual: show(expected.algorithm, &actual),
            })
        })
    }

    /// Reads `len` bytes in order through `read_at` and computes the plan's in-order digests
    /// (MD5, SHA-1, SHA-256: digests that do not combine from parts) and in-order composites
    /// into `computed`.
    pub(super) async fn hash_in_order(
        &self,
        read_at: impl Fn(&mut [u8], u64) -> Result<(), Error>,
        len: u64,
        checks: &Plan,
        computed: &mut Computed,
    ) -> Result<(), Failure> {
        let mut hashers: Vec<InOrderHasher> = checks
            .in_order
            .iter()
            .filter_map(|&a| InOrderHasher::new(a))
            .collect();
        let mut composites: Vec<CompositeHasher> = checks
            .in_order_composites()
            .into_iter()
            .filter_map(|(i, a, sizes)| CompositeHasher::new(i, a, sizes))
            .collect();
        let mut buf = vec![0u8; self.dl.buffer_size.clamp(64 << 10, 4 << 20)];
        self.read_through(&read_at, 0..len, &mut buf, |chunk| {
            for h in &mut hashers {
                h.update(chunk);
            }
            for h in &mut composites {
                h.update(chunk);
            }
        })
        .await?;
        computed
            .in_order
            .extend(hashers.into_iter().map(InOrderHasher::finish));
        computed
            .composite
            .extend(composites.into_iter().map(CompositeHasher::finish));
        Ok(())
    }

    /// Reads `range` of a local file through `read_at`, a buffer at a time, handing each to
    /// `each`; stops when the download is halted, and yields between buffers so a long pass
    /// does not starve the rest of the runtime.
    pub(super) async fn read_through(
        &self,
        read_at: impl Fn(&mut [u8], u64) -> Result<(), Error>,
        range: Range<u64>,
        buf: &mut [u8],
        mut each: impl FnMut(&[u8]),
    ) -> Result<(), Failure> {
        let mut off = range.start;
        while off < range.end {
            if self.halt.is_cancelled() {
                return Err(Failure::Stopped);
            }
            let n = usize::try_from(range.end - off)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            read_at(&mut buf[..n], off)?;
            each(&buf[..n]);
            off += n as u64;
            tokio::task::yield_now().await;
        }
        Ok(())
    }

    /// Re-reads `parts` from the temp file; returns those whose bytes no longer match their
    /// recorded digest (`full`: BLAKE3 and CRC-64; otherwise CRC-64 only, which is much
    /// cheaper), and the CRCs of `crcs` of the others, computed in the same read.
    pub(super) async fn find_damaged(
        &self,
        file: &PartFile,
        layout: &PartLayout,
        cp: &Checkpoint,
        parts: &[u64],
        full: bool,
        crcs: CrcSet,
    ) -> Result<(Vec<u64>, Vec<(u64, PartCrcs)>), Failure> {
        let mut damaged = Vec::new();
        let mut good = Vec::new();
        let mut buf = vec![0u8; self.dl.buffer_size.min(4 << 20)];
        for &part in parts {
            let Some(expected) = cp.done.get(&part) else {
                continue;
            };
            let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Xz);
            let mut blake = full.then(blake3::Hasher::new);
            let mut extra = CrcHasher::new(crcs);
            let start = layout.part_offset(part);
            let read_at = |buf: &mut [u8], off: u64| file.read_exact_at(buf, off);
            self.read_through(
                read_at,
                start..start + layout.part_len(part),
                &mut buf,
                |chunk| {
                    crc.update(chunk);
                    extra.update(chunk);
                    if let Some(b) = blake.as_mut() {
                        b.update(chunk);
                    }
                },
            )
            .await?;
            let ok = crc.finalize() == expected.crc64
                && blake.is_none_or(|b| *b.finalize().as_bytes() == expected.blake3);
            if ok {
                good.push((part, extra.finish(expected.crc64)));
            } else {
                damaged.push(part);
            }
        }
        Ok((damaged, good))
    }
}

/// The CRCs of the download's bytes, combined from its parts' (all of which must be done),
/// and the composites whose upload parts the download parts are aligned with.
pub(super) fn combined_crcs(t: &Transfer<'_>, checks: &Plan) -> Result<Computed, Failure> {
    let layout = &t.layout;
    let mut comb = CrcCombiner::new(checks.crcs, layout.part_size);
    let mut composites = CompositeFromParts::for_plan(checks, layout.part_size);
    let digests = lock(&t.digests);
    let crcs = lock(&t.crcs);
    for i in 0..layout.part_count {
        let idx = usize_of(i)?;
        let (Some(Some(_)), Some(part)) = (digests.get(idx), crcs.get(idx)) else {
            return Err(Failure::Fatal(Error::Config(format!(
                "internal error: part {i} finished without a digest; please report this"
            ))));
        };
        comb.push(part, layout.part_len(i));
        for c in &mut composites {
            c.push(i, part, layout.part_len(i));
        }
    }
    Ok(Computed {
        crcs: comb.finish(),
        in_order: Vec::new(),
        composite: composites
            .into_iter()
            .map(CompositeFromParts::finish)
            .collect(),
    })
}

/// Whether a CRC-64/XZ the store published was among the checks that passed.
pub(super) fn crc64_verified(v: &Verification) -> bool {
    matches!(v, Verification::Verified(sums) if sums.iter().any(|c| {
        c.algorithm == Algorithm::Crc64Xz && matches!(c.origin, Origin::Store(_))
    }))
}
