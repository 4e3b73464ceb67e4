//! Checksums: what a store publishes (or a user gives) about an object's bytes, and how the
//! engine checks a download against them. One concept for every backend: a backend only
//! reports what its store said ([`ObjectMeta::checksums`](crate::ObjectMeta::checksums)); the
//! engine decides what to compute and compares.
//!
//! CRCs (CRC-64/XZ, CRC-64/NVME, CRC-32C, CRC-32) are computed per part in the same pass as
//! the part's BLAKE3 and combined in object order; digests that do not combine (MD5, SHA-1,
//! SHA-256) are computed by one in-order read of the finished temp file.

use std::fmt;

use crc_fast::CrcAlgorithm;
use md5::Digest as _;

/// A checksum algorithm a store or a user may give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// CRC-64/XZ (ECMA-182 reflected): OSS's `x-oss-hash-crc64ecma`.
    Crc64Xz,
    /// CRC-64/NVME: S3's `x-amz-checksum-crc64nvme`, Azure's `x-ms-content-crc64`.
    Crc64Nvme,
    /// CRC-32C (Castagnoli): S3, GCS.
    Crc32c,
    /// CRC-32 (ISO-HDLC, zlib's): S3.
    Crc32,
    Md5,
    Sha1,
    Sha256,
    /// SHA-512: HTTP's `Repr-Digest` (RFC 9530), `SHA512SUMS`.
    Sha512,
}

impl Algorithm {
    /// Every algorithm, CRCs first.
    pub const ALL: [Algorithm; 8] = [
        Algorithm::Crc64Xz,
        Algorithm::Crc64Nvme,
        Algorithm::Crc32c,
        Algorithm::Crc32,
        Algorithm::Md5,
        Algorithm::Sha1,
        Algorithm::Sha256,
        Algorithm::Sha512,
    ];

    /// The usual name, e.g. `CRC-64/NVME`, `SHA-256`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc64Xz => "CRC-64/XZ",
            Algorithm::Crc64Nvme => "CRC-64/NVME",
            Algorithm::Crc32c => "CRC-32C",
            Algorithm::Crc32 => "CRC-32",
            Algorithm::Md5 => "MD5",
            Algorithm::Sha1 => "SHA-1",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha512 => "SHA-512",
        }
    }

    /// The short lower-case name used on command lines: `crc64xz`, `crc64nvme`, `crc32c`,
    /// `crc32`, `md5`, `sha1`, `sha256`.
    pub fn short_name(self) -> &'static str {
        match self {
            Algorithm::Crc64Xz => "crc64xz",
            Algorithm::Crc64Nvme => "crc64nvme",
            Algorithm::Crc32c => "crc32c",
            Algorithm::Crc32 => "crc32",
            Algorithm::Md5 => "md5",
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Parses a short or usual name, ignoring case, `-` and `/` (`sha256`, `SHA-256`,
    /// `crc64/nvme`).
    pub fn from_name(name: &str) -> Option<Self> {
        let norm: String = name
            .chars()
            .filter(|c| !matches!(c, '-' | '/' | '_'))
            .flat_map(char::to_lowercase)
            .collect();
        Self::ALL.into_iter().find(|a| a.short_name() == norm)
    }

    /// Bytes of a value of this algorithm.
    pub fn value_len(self) -> usize {
        match self {
            Algorithm::Crc64Xz | Algorithm::Crc64Nvme => 8,
            Algorithm::Crc32c | Algorithm::Crc32 => 4,
            Algorithm::Md5 => 16,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }

    /// Whether values of parts combine into the whole's (CRCs) or the bytes must be hashed
    /// in order (MD5, SHA-1, SHA-256).
    pub fn combines(self) -> bool {
        self.crc().is_some()
    }

    fn crc(self) -> Option<Crc> {
        match self {
            Algorithm::Crc64Xz => Some(Crc::Xz),
            Algorithm::Crc64Nvme => Some(Crc::Nvme),
            Algorithm::Crc32c => Some(Crc::C),
            Algorithm::Crc32 => Some(Crc::Iso),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which bytes a checksum covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scope {
    /// The whole object (OSS's CRC-64, S3 `FULL_OBJECT`, GCS, `Content-MD5`): compared with
    /// the download when the whole object was downloaded.
    FullObject,
    /// The checksum of the concatenated checksums (big-endian, each of the algorithm's
    /// length) of the upload parts, which have these sizes in object order (S3 `COMPOSITE`,
    /// `…-N`). Checked when the whole object is downloaded: each part's checksum is computed
    /// (CRCs combined from download parts aligned to the upload parts, or all in one in-order
    /// pass), then the checksum of their concatenation.
    Composite { part_sizes: Vec<u64> },
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::FullObject => f.write_str("full-object"),
            Scope::Composite { part_sizes } => write!(f, "composite of {} parts", part_sizes.len()),
        }
    }
}

/// Who vouches for a checksum.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// The store published it for the object (e.g. `OSS`, `S3`): it describes the object,
    /// so it is checked when the whole object is downloaded.
    Store(String),
    /// The user gave it (e.g. `--checksum`, `SHA256SUMS`): it describes the file written,
    /// also for a range.
    User(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Store(s) | Origin::User(s) => f.write_str(s),
        }
    }
}

/// One checksum of an object (or of the file to be written): algorithm, scope, value and who
/// gave it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Checksum {
    pub algorithm: Algorithm,
    pub scope: Scope,
    /// The digest, big-endian (as hex and base64 forms write it); `algorithm.value_len()` bytes.
    pub value: Vec<u8>,
    pub origin: Origin,
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}={}",
            self.describe(),
            self.algorithm.short_name(),
            self.hex()
        )
    }
}

/// Why a checksum could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ChecksumError(pub String);

impl Checksum {
    /// A whole-object checksum; `value` must have the algorithm's length.
    pub fn new(
        algorithm: Algorithm,
        value: Vec<u8>,
        origin: Origin,
    ) -> Result<Self, ChecksumError> {
        if value.len() != algorithm.value_len() {
            return Err(ChecksumError(format!(
                "a {} value has {} bytes ({} hex digits), this one has {}",
                algorithm,
                algorithm.value_len(),
                algorithm.value_len() * 2,
                value.len()
            )));
        }
        Ok(Self {
            algorithm,
            scope: Scope::FullObject,
            value,
            origin,
        })
    }

    /// A whole-object CRC given as a number (e.g. OSS's decimal CRC-64).
    ///
    /// # Panics
    /// If `algorithm` is not a CRC.
    pub fn crc(algorithm: Algorithm, crc: u64, origin: Origin) -> Self {
        assert!(algorithm.combines(), "{algorithm} is not a CRC");
        let bytes = crc.to_be_bytes();
        Self {
            algorithm,
            scope: Scope::FullObject,
            value: bytes[8 - algorithm.value_len()..].to_vec(),
            origin,
        }
    }

    /// A composite checksum over upload parts of `part_sizes` (S3 `COMPOSITE`): `value` is the
    /// digest of the parts' digests, without S3's `-N` suffix.
    pub fn composite(
        algorithm: Algorithm,
        value: Vec<u8>,
        part_sizes: Vec<u64>,
        origin: Origin,
    ) -> Result<Self, ChecksumError> {
        let mut c = Self::new(algorithm, value, origin)?;
        c.scope = Scope::Composite { part_sizes };
        Ok(c)
    }

    /// Parses `ALG=HEX` (`sha256=9f86d0…`, `crc32c=e3069283`), as given by a user.
    pub fn parse(spec: &str, origin: Origin) -> Result<Self, ChecksumError> {
        let names = || Algorithm::ALL.map(Algorithm::short_name).join(", ");
        let Some((alg, hex)) = spec.split_once('=') else {
            return Err(ChecksumError(format!(
                "{spec:?} is not ALGORITHM=HEX (e.g. sha256=9f86d081…; algorithms: {})",
                names()
            )));
        };
        let algorithm = Algorithm::from_name(alg.trim()).ok_or_else(|| {
            ChecksumError(format!(
                "unknown checksum algorithm {alg:?}; use one of {}",
                names()
            ))
        })?;
        let value = parse_hex(hex.trim()).ok_or_else(|| {
            ChecksumError(format!(
                "{} value {hex:?} is not hexadecimal (expected {} hex digits)",
                algorithm,
                algorithm.value_len() * 2
            ))
        })?;
        Self::new(algorithm, value, origin)
    }

    /// The value in lower-case hex.
    pub fn hex(&self) -> String {
        to_hex(&self.value)
    }

    /// What this checksum is, for people: `CRC-64/XZ full-object (OSS)`, `SHA-256
    /// (--checksum)`.
    pub fn describe(&self) -> String {
        match &self.origin {
            Origin::Store(s) => format!("{} {} ({s})", self.algorithm, self.scope),
            Origin::User(s) => format!("{} ({s})", self.algorithm),
        }
    }

    /// How a checkpoint records this checksum's kind (algorithm and scope).
    pub(crate) fn stored_kind(&self) -> String {
        match &self.scope {
            Scope::FullObject => format!("{} full-object", self.algorithm),
            Scope::Composite { part_sizes } => {
                let sizes: Vec<String> = part_sizes.iter().map(u64::to_string).collect();
                format!("{} composite {}", self.algorithm, sizes.join(","))
            }
        }
    }
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A value for people: hex, and for a CRC also the number in decimal (OSS sends its CRC-64
/// in decimal, `crc32`-style tools print hex).
pub(crate) fn show(algorithm: Algorithm, value: &[u8]) -> String {
    let hex = to_hex(value);
    if algorithm.combines() && value.len() <= 8 {
        let n = value.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b));
        format!("{hex} (decimal {n})")
    } else {
        hex
    }
}

/// Even-length hex, either case; `None` otherwise.
pub fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// What verified a finished download, or why nothing did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verification {
    /// The written bytes matched every one of these.
    Verified(Vec<Checksum>),
    /// Nothing to compare with, and why.
    NotVerified(String),
}

impl Verification {
    pub fn is_verified(&self) -> bool {
        matches!(self, Verification::Verified(_))
    }
}

impl fmt::Display for Verification {
    /// `verified: CRC-64/XZ + MD5 full-object (OSS), SHA-256 (--checksum)` or
    /// `not verified: …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verification::Verified(sums) => write!(f, "verified: {}", describe_all(sums)),
            Verification::NotVerified(why) => write!(f, "not verified: {why}"),
        }
    }
}

/// Checks for people, one after the other; neighbours with the same scope and origin share
/// them: `CRC-64/XZ + MD5 full-object (OSS)`.
fn describe_all(sums: &[Checksum]) -> String {
    let mut groups: Vec<(Vec<&str>, &Checksum)> = Vec::new();
    for c in sums {
        match groups.last_mut() {
            Some((names, first)) if first.scope == c.scope && first.origin == c.origin => {
                names.push(c.algorithm.name());
            }
            _ => groups.push((vec![c.algorithm.name()], c)),
        }
    }
    groups
        .into_iter()
        .map(|(names, c)| {
            let Checksum { scope, origin, .. } = c;
            match origin {
                Origin::Store(s) => format!("{} {scope} ({s})", names.join(" + ")),
                Origin::User(s) => format!("{} ({s})", names.join(" + ")),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which of several published checksums of one kind [`Plan::new`] uses: the lowest. CRCs by
/// width (CRC-64/XZ first: every part computes it for its record anyway), digests by strength.
fn preference(a: Algorithm) -> u8 {
    match a {
        Algorithm::Crc64Xz | Algorithm::Sha512 => 0,
        Algorithm::Crc64Nvme | Algorithm::Sha256 => 1,
        Algorithm::Crc32c | Algorithm::Sha1 => 2,
        Algorithm::Crc32 | Algorithm::Md5 => 3,
    }
}

/// The smallest part size [`Plan::fit_parts`] aligns to, as a fraction of the one asked for:
/// a smaller one would multiply requests; the composite is then hashed in order instead.
const ALIGN_MIN_FRACTION: u64 = 4;

/// The checks one download will make: the applicable checksums, and what to compute for them.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) checks: Vec<Checksum>,
    /// Why there is nothing to check (when `checks` is empty).
    pub(crate) unverified: String,
    /// CRCs to compute per part (CRC-64/XZ always is: the parts' own record).
    pub(crate) crcs: CrcSet,
    /// Digests to compute over the whole file in order.
    pub(crate) in_order: Vec<Algorithm>,
    /// Composite checks (indices into `checks`) whose part CRCs are combined from the
    /// download's parts: set by [`Plan::fit_parts`] when the parts align with the upload parts.
    pub(crate) composite_from_parts: Vec<usize>,
    /// Composite checks (indices into `checks`) computed in the in-order pass.
    pub(crate) composite_in_order: Vec<usize>,
}

impl Plan {
    /// Which of `published` (the store's, about the object) and `given` (the user's, about the
    /// file) apply to a download covering the whole object or not.
    ///
    /// The store's checks, from what it published: **every** full-object CRC (computed as
    /// the bytes arrive, in the same pass as the part's own CRC-64 and combined from the
    /// parts: within the noise of the CPU budget, BENCHMARKS.md), plus its strongest
    /// full-object digest, SHA-512 > SHA-256 > SHA-1 > MD5 (hashed in object order, streamed
    /// while the parts complete: 1–2.5 CPU-s/GiB, on another core than the download's). So an
    /// OSS object uploaded in one piece is checked by its CRC-64/XZ and its `Content-MD5`,
    /// a GCS object by its CRC-32C and its MD5. A second digest of the same object (HTTP
    /// servers send `Repr-Digest` with several algorithms and `Content-MD5`) would add a
    /// hash of every byte and catch nothing the strongest misses: it is not computed. With no
    /// full-object CRC, a composite (S3 multipart) is checked, a CRC one (combined from
    /// parts) before a SHA one. The verification names every check used. The caller's
    /// digests are always checked: the caller asked for them.
    pub(crate) fn new(
        published: &[Checksum],
        given: &[Checksum],
        whole_object: bool,
        note: Option<&str>,
    ) -> Self {
        let mut checks: Vec<Checksum> = Vec::new();
        let full = |c: &&Checksum| c.scope == Scope::FullObject;
        let composite = |c: &&Checksum| matches!(c.scope, Scope::Composite { .. });
        if whole_object {
            let crcs: Vec<&Checksum> = published
                .iter()
                .filter(full)
                .filter(|c| c.algorithm.combines())
                .collect();
            let digest = published
                .iter()
                .filter(full)
                .filter(|c| !c.algorithm.combines())
                .min_by_key(|c| preference(c.algorithm));
            if crcs.is_empty() {
                let composite = published
                    .iter()
                    .filter(composite)
                    .min_by_key(|c| (c.algorithm.crc().is_none(), preference(c.algorithm)));
                checks.extend(composite.cloned());
            } else {
                let mut crcs = crcs;
                crcs.sort_by_key(|c| preference(c.algorithm));
                checks.extend(crcs.into_iter().cloned());
            }
            // A digest beside a composite would be a second in-order hash of every byte for
            // the same multipart object; S3 publishes either, never both.
            if checks.iter().all(|c| c.scope == Scope::FullObject) {
                checks.extend(digest.cloned());
            }
        }
        checks.extend(given.iter().filter(full).cloned());
        checks.dedup();
        let unverified = if !published.is_empty() && !whole_object {
            "the store's checksums cover the whole object, and a range of it was downloaded"
                .to_owned()
        } else if let Some(note) = note {
            note.to_owned()
        } else {
            "the store publishes no checksum for this object".to_owned()
        };
        let mut crcs = CrcSet::default();
        let mut in_order = Vec::new();
        let mut composite_in_order = Vec::new();
        for (i, c) in checks.iter().enumerate() {
            if matches!(c.scope, Scope::Composite { .. }) {
                composite_in_order.push(i);
                continue;
            }
            match c.algorithm.crc() {
                Some(crc) => crcs.insert(crc),
                None if !in_order.contains(&c.algorithm) => in_order.push(c.algorithm),
                None => {}
            }
        }
        Self {
            checks,
            unverified,
            crcs,
            in_order,
            composite_from_parts: Vec::new(),
            composite_in_order,
        }
    }

    /// The part size to download with, given the one asked for: when composite CRCs are
    /// checked, the largest size not above `requested` that divides every upload part
    /// boundary, so that each upload part is a run of whole download parts and its CRC is
    /// combined from theirs (no second read). When no such size is at least a quarter of
    /// `requested`, `requested` is kept and the composites are hashed in order instead.
    pub(crate) fn fit_parts(&mut self, requested: u64) -> u64 {
        let mut boundaries_gcd = 0u64;
        let mut crc_composites = Vec::new();
        for &i in &self.composite_in_order {
            let c = &self.checks[i];
            let Scope::Composite { part_sizes } = &c.scope else {
                continue;
            };
            if c.algorithm.crc().is_none() {
                continue;
            }
            // Every boundary is a sum of whole part sizes (all but the last part's end, which
            // is the object's end and so the layout's).
            for &size in part_sizes.iter().take(part_sizes.len().saturating_sub(1)) {
                boundaries_gcd = gcd(boundaries_gcd, size);
            }
            crc_composites.push(i);
        }
        if crc_composites.is_empty() || requested == 0 {
            return requested;
        }
        let size = match boundaries_gcd {
            // One upload part (or empty ones): any layout aligns.
            0 => requested,
            g => match largest_divisor_at_most(g, requested) {
                Some(d) if d.saturating_mul(ALIGN_MIN_FRACTION) >= requested => d,
                _ => return requested,
            },
        };
        for i in crc_composites {
            self.composite_in_order.retain(|&j| j != i);
            self.composite_from_parts.push(i);
            if let Some(crc) = self.checks[i].algorithm.crc() {
                self.crcs.insert(crc);
            }
        }
        size
    }

    /// This plan with every composite check computed in the in-order pass (for a file whose
    /// download parts' CRCs are not at hand).
    pub(crate) fn all_composites_in_order(&self) -> Self {
        let mut p = self.clone();
        p.composite_in_order.append(&mut p.composite_from_parts);
        p.composite_in_order.sort_unstable();
        p
    }

    /// The composite checks computed in order, with their algorithm and part sizes.
    pub(crate) fn in_order_composites(&self) -> Vec<(usize, Algorithm, Vec<u64>)> {
        self.composite_in_order
            .iter()
            .filter_map(|&i| match &self.checks[i].scope {
                Scope::Composite { part_sizes } => {
                    Some((i, self.checks[i].algorithm, part_sizes.clone()))
                }
                Scope::FullObject => None,
            })
            .collect()
    }

    /// Whether anything must be read in order after the download.
    pub(crate) fn needs_in_order_pass(&self) -> bool {
        !self.in_order.is_empty() || !self.composite_in_order.is_empty()
    }

    /// Compares the computed values with every check: the verification, or the first check
    /// that failed with the value computed for it.
    pub(crate) fn compare(&self, computed: &Computed) -> Result<Verification, (Checksum, Vec<u8>)> {
        for (i, c) in self.checks.iter().enumerate() {
            let actual = if matches!(c.scope, Scope::Composite { .. }) {
                computed
                    .composite
                    .iter()
                    .find(|(j, _)| *j == i)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            } else {
                match c.algorithm.crc() {
                    Some(crc) => crc_bytes(c.algorithm, computed.crcs.0[crc as usize]),
                    None => computed
                        .in_order
                        .iter()
                        .find(|(a, _)| *a == c.algorithm)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default(),
                }
            };
            if actual != c.value {
                return Err((c.clone(), actual));
            }
        }
        Ok(if self.checks.is_empty() {
            Verification::NotVerified(self.unverified.clone())
        } else {
            Verification::Verified(self.checks.clone())
        })
    }
}

/// What the engine computed over the download, for [`Plan::compare`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Computed {
    /// The whole download's CRCs, combined from its parts.
    pub(crate) crcs: PartCrcs,
    /// The in-order digests (MD5, SHA-1, SHA-256).
    pub(crate) in_order: Vec<(Algorithm, Vec<u8>)>,
    /// Composite values, by index into [`Plan::checks`].
    pub(crate) composite: Vec<(usize, Vec<u8>)>,
}

fn crc_bytes(algorithm: Algorithm, crc: u64) -> Vec<u8> {
    crc.to_be_bytes()[8 - algorithm.value_len()..].to_vec()
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The largest divisor of `n` that is at most `max` (`n`, `max` > 0); `None` past a bounded
/// search (only divisors of at least `max / ALIGN_MIN_FRACTION` are looked for).
fn largest_divisor_at_most(n: u64, max: u64) -> Option<u64> {
    if n <= max {
        return Some(n);
    }
    let first = n.div_ceil(max);
    let last = n / max.div_ceil(ALIGN_MIN_FRACTION).max(1);
    (first..=last).find(|&k| n.is_multiple_of(k)).map(|k| n / k)
}

/// The composite checksum of upload parts computed from download parts aligned to them: each
/// upload part's CRC is combined from the CRCs of the download parts it is made of.
pub(crate) struct CompositeFromParts {
    index: usize,
    algorithm: Algorithm,
    crc: Crc,
    /// For each upload part, the download part index it ends at (exclusive).
    ends: Vec<u64>,
    upload_part: usize,
    appender: CrcAppender,
    part_size: u64,
    acc: u64,
    raw: Vec<u8>,
}

impl CompositeFromParts {
    /// One per entry of `plan.composite_from_parts`, for download parts of `part_size`.
    pub(crate) fn for_plan(plan: &Plan, part_size: u64) -> Vec<Self> {
        plan.composite_from_parts
            .iter()
            .filter_map(|&i| {
                let c = &plan.checks[i];
                let (Scope::Composite { part_sizes }, Some(crc)) = (&c.scope, c.algorithm.crc())
                else {
                    return None;
                };
                let mut end = 0u64;
                let ends = part_sizes
                    .iter()
                    .map(|s| {
                        end += s;
                        end.div_ceil(part_size.max(1))
                    })
                    .collect();
                Some(Self {
                    index: i,
                    algorithm: c.algorithm,
                    crc,
                    ends,
                    upload_part: 0,
                    appender: CrcAppender::new(crc, part_size),
                    part_size,
                    acc: 0,
                    raw: Vec::with_capacity(part_sizes.len() * c.algorithm.value_len()),
                })
            })
            .collect()
    }

    /// Appends download part `index` (in order), of `len` bytes, with its CRCs.
    pub(crate) fn push(&mut self, index: u64, part: &PartCrcs, len: u64) {
        // Upload parts that ended before this download part (empty ones).
        self.close_parts_ending_by(index);
        let value = part.0[self.crc as usize];
        self.acc = if len == self.part_size {
            self.appender.append(self.acc, value)
        } else {
            combine(self.crc, self.acc, value, len)
        };
        self.close_parts_ending_by(index + 1);
    }

    fn close_parts_ending_by(&mut self, end_index: u64) {
        while self
            .ends
            .get(self.upload_part)
            .is_some_and(|&end| end <= end_index)
        {
            self.raw.extend(crc_bytes(self.algorithm, self.acc));
            self.acc = 0;
            self.upload_part += 1;
        }
    }

    /// The check's index and the composite value.
    pub(crate) fn finish(mut self) -> (usize, Vec<u8>) {
        while self.upload_part < self.ends.len() {
            self.raw.extend(crc_bytes(self.algorithm, self.acc));
            self.acc = 0;
            self.upload_part += 1;
        }
        let whole = crc_fast::checksum(self.crc.algorithm(), &self.raw);
        (self.index, crc_bytes(self.algorithm, whole))
    }
}

/// A composite checksum computed over the bytes in order: each upload part's digest, then
/// the digest of their concatenation.
pub(crate) struct CompositeHasher {
    index: usize,
    algorithm: Algorithm,
    sizes: Vec<u64>,
    upload_part: usize,
    left: u64,
    current: AnyHasher,
    raw: Vec<u8>,
}

enum AnyHasher {
    Crc(Algorithm, crc_fast::Digest),
    Digest(InOrderHasher),
}

impl AnyHasher {
    fn new(algorithm: Algorithm) -> Option<Self> {
        match algorithm.crc() {
            Some(c) => Some(Self::Crc(algorithm, crc_fast::Digest::new(c.algorithm()))),
            None => InOrderHasher::new(algorithm).map(Self::Digest),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Crc(_, d) => d.update(data),
            Self::Digest(h) => h.update(data),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Self::Crc(a, d) => crc_bytes(a, d.finalize()),
            Self::Digest(h) => h.finish().1,
        }
    }
}

impl CompositeHasher {
    pub(crate) fn new(index: usize, algorithm: Algorithm, sizes: Vec<u64>) -> Option<Self> {
        let current = AnyHasher::new(algorithm)?;
        let mut h = Self {
            index,
            algorithm,
            left: sizes.first().copied().unwrap_or(0),
            sizes,
            upload_part: 0,
            current,
            raw: Vec::new(),
        };
        h.close_empty_parts();
        Some(h)
    }

    fn close_part(&mut self) {
        let next = AnyHasher::new(self.algorithm).expect("algorithm checked in new");
        let done = std::mem::replace(&mut self.current, next);
        self.raw.extend(done.finish());
        self.upload_part += 1;
        self.left = self.sizes.get(self.upload_part).copied().unwrap_or(0);
    }

    fn close_empty_parts(&mut self) {
        while self.left == 0 && self.upload_part < self.sizes.len() {
            self.close_part();
        }
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.upload_part < self.sizes.len() {
            let n = usize::try_from(self.left)
                .unwrap_or(usize::MAX)
                .min(data.len());
            self.current.update(&data[..n]);
            self.left -= n as u64;
            data = &data[n..];
            self.close_empty_parts();
        }
        // Bytes past the parts' sizes make the result differ from the store's: the sizes
        // add up to the object's size, so this only happens for a file of another size.
        if !data.is_empty() {
            self.raw.extend_from_slice(data);
        }
    }

    /// The check's index and the composite value.
    pub(crate) fn finish(self) -> (usize, Vec<u8>) {
        let mut whole = AnyHasher::new(self.algorithm).expect("algorithm checked in new");
        whole.update(&self.raw);
        (self.index, whole.finish())
    }
}

/// The four CRCs crc-fast computes and combines, as indices into [`PartCrcs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Crc {
    Xz = 0,
    Nvme = 1,
    C = 2,
    Iso = 3,
}

impl Crc {
    const ALL: [Crc; 4] = [Crc::Xz, Crc::Nvme, Crc::C, Crc::Iso];

    fn algorithm(self) -> CrcAlgorithm {
        match self {
            Crc::Xz => CrcAlgorithm::Crc64Xz,
            Crc::Nvme => CrcAlgorithm::Crc64Nvme,
            Crc::C => CrcAlgorithm::Crc32Iscsi,
            Crc::Iso => CrcAlgorithm::Crc32IsoHdlc,
        }
    }

    /// Width in bits and the reflected polynomial (all four are reflected, with init and
    /// xorout all ones, so `crc(a ‖ b) = shift(crc(a), |b|) ^ crc(b)`).
    fn params(self) -> (u32, u64) {
        match self {
            Crc::Xz => (64, 0xC96C_5795_D787_0F42),
            Crc::Nvme => (64, 0x9A6C_9329_AC4B_C9B5),
            Crc::C => (32, 0x82F6_3B78),
            Crc::Iso => (32, 0xEDB8_8320),
        }
    }
}

/// A set of [`Crc`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CrcSet(u8);

impl CrcSet {
    pub(crate) fn insert(&mut self, crc: Crc) {
        self.0 |= 1 << crc as u8;
    }

    pub(crate) fn contains(self, crc: Crc) -> bool {
        self.0 & (1 << crc as u8) != 0
    }

    /// The CRCs other than CRC-64/XZ (which every part computes anyway).
    pub(crate) fn extra(self) -> impl Iterator<Item = Crc> {
        Crc::ALL
            .into_iter()
            .filter(move |&c| c != Crc::Xz && self.contains(c))
    }

    pub(crate) fn has_extra(self) -> bool {
        self.extra().next().is_some()
    }
}

/// CRCs of one run of bytes, indexed by [`Crc`]; those not computed are 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PartCrcs(pub(crate) [u64; 4]);

/// Computes the CRCs of a [`CrcSet`] other than CRC-64/XZ over bytes fed in order.
pub(crate) struct CrcHasher {
    digests: Vec<(Crc, crc_fast::Digest)>,
}

impl CrcHasher {
    pub(crate) fn new(set: CrcSet) -> Self {
        Self {
            digests: set
                .extra()
                .map(|c| (c, crc_fast::Digest::new(c.algorithm())))
                .collect(),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        for (_, d) in &mut self.digests {
            d.update(data);
        }
    }

    /// The CRCs, with `xz` (computed by the caller) in its place.
    pub(crate) fn finish(&self, xz: u64) -> PartCrcs {
        let mut out = PartCrcs::default();
        out.0[Crc::Xz as usize] = xz;
        for (c, d) in &self.digests {
            out.0[*c as usize] = d.finalize();
        }
        out
    }
}

/// CRC of `a ‖ b` from `crc(a)`, `crc(b)` and `b`'s length (crc-fast; rebuilds its shift
/// operator on every call).
fn combine(crc: Crc, a: u64, b: u64, len_b: u64) -> u64 {
    crc_fast::checksum_combine(crc.algorithm(), a, b, len_b)
}

/// Appends blocks of one length to a CRC: `crc(a ‖ b)` from `crc(a)` and `crc(b)` for every
/// `b` of `len` bytes, with the "shift by `len` zero bytes" operator built once (a `width` ×
/// `width` matrix over GF(2), as in zlib's `crc32_combine`); crc-fast's combine rebuilds it on
/// every call, which is slow for thousands of parts. Checked against crc-fast in the tests.
pub(crate) struct CrcAppender {
    op: [u64; 64],
}

fn gf2_times(mat: &[u64; 64], mut vec: u64) -> u64 {
    let mut sum = 0u64;
    let mut i = 0;
    while vec != 0 {
        if vec & 1 == 1 {
            sum ^= mat[i];
        }
        vec >>= 1;
        i += 1;
    }
    sum
}

fn gf2_square(mat: &[u64; 64]) -> [u64; 64] {
    std::array::from_fn(|n| gf2_times(mat, mat[n]))
}

impl CrcAppender {
    pub(crate) fn new(crc: Crc, len: u64) -> Self {
        let (width, poly) = crc.params();
        let width = width as usize;
        // One zero bit on the reflected register: shift right, fold in the polynomial when
        // the low bit falls out. Columns past the width stay zero.
        let mut one_bit = [0u64; 64];
        one_bit[0] = poly;
        for (n, col) in one_bit.iter_mut().enumerate().take(width).skip(1) {
            *col = 1 << (n - 1);
        }
        // 2, 4, 8 bits: one zero byte.
        let mut power = gf2_square(&gf2_square(&gf2_square(&one_bit)));
        let mut op: [u64; 64] = std::array::from_fn(|n| if n < width { 1u64 << n } else { 0 });
        let mut n = len;
        while n > 0 {
            if n & 1 == 1 {
                op = std::array::from_fn(|c| gf2_times(&power, op[c]));
            }
            power = gf2_square(&power);
            n >>= 1;
        }
        Self { op }
    }

    pub(crate) fn append(&self, crc_a: u64, crc_b: u64) -> u64 {
        gf2_times(&self.op, crc_a) ^ crc_b
    }
}

/// Combines the CRCs of `set` over parts of `part_size` bytes (the last may be shorter),
/// given in object order.
///
/// The first part's CRCs are taken as they are (the CRC of nothing followed by a part is the
/// part's), and the shift operators of `part_size` are built when a second full part comes:
/// a one-part object (most objects of a batch job) costs no operator at all. Building one
/// (and crc-fast's combine, which builds its own per call) was 40 % of the CPU of a batch of
/// 64 KiB objects (perf, BENCHMARKS.md).
pub(crate) struct CrcCombiner {
    part_size: u64,
    set: Vec<Crc>,
    appenders: Option<Vec<CrcAppender>>,
    acc: PartCrcs,
    empty: bool,
}

impl CrcCombiner {
    pub(crate) fn new(set: CrcSet, part_size: u64) -> Self {
        let mut with_xz = set;
        with_xz.insert(Crc::Xz);
        Self {
            part_size,
            set: Crc::ALL
                .into_iter()
                .filter(|&c| with_xz.contains(c))
                .collect(),
            appenders: None,
            acc: PartCrcs::default(),
            empty: true,
        }
    }

    /// Appends the next part, of `len` bytes.
    pub(crate) fn push(&mut self, part: &PartCrcs, len: u64) {
        if self.empty {
            for &c in &self.set {
                self.acc.0[c as usize] = part.0[c as usize];
            }
            self.empty = false;
            return;
        }
        if len == self.part_size {
            let (set, part_size) = (&self.set, self.part_size);
            let appenders = self.appenders.get_or_insert_with(|| {
                set.iter()
                    .map(|&c| CrcAppender::new(c, part_size))
                    .collect()
            });
            for (&c, app) in self.set.iter().zip(appenders.iter()) {
                let i = c as usize;
                self.acc.0[i] = app.append(self.acc.0[i], part.0[i]);
            }
        } else {
            for &c in &self.set {
                let i = c as usize;
                self.acc.0[i] = combine(c, self.acc.0[i], part.0[i], len);
            }
        }
    }

    /// The combined CRCs (zero, the CRC of nothing, when no part was pushed).
    pub(crate) fn finish(&self) -> PartCrcs {
        self.acc
    }
}

/// An in-order digest (MD5, SHA-1, SHA-256, SHA-512).
pub(crate) enum InOrderHasher {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl InOrderHasher {
    pub(crate) fn new(algorithm: Algorithm) -> Option<Self> {
        match algorithm {
            Algorithm::Md5 => Some(Self::Md5(md5::Md5::new())),
            Algorithm::Sha1 => Some(Self::Sha1(sha1::Sha1::new())),
            Algorithm::Sha256 => Some(Self::Sha256(sha2::Sha256::new())),
            Algorithm::Sha512 => Some(Self::Sha512(sha2::Sha512::new())),
            _ => None,
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Self::Md5(h) => h.update(data),
            Self::Sha1(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
            Self::Sha512(h) => h.update(data),
        }
    }

    pub(crate) fn finish(self) -> (Algorithm, Vec<u8>) {
        match self {
            Self::Md5(h) => (Algorithm::Md5, h.finalize().to_vec()),
            Self::Sha1(h) => (Algorithm::Sha1, h.finalize().to_vec()),
            Self::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            Self::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn direct(crc: Crc, data: &[u8]) -> u64 {
        crc_fast::checksum(crc.algorithm(), data)
    }

    #[test]
    fn check_values_of_every_algorithm() {
        // The catalogue's check value: the CRC of "123456789".
        let check = |c| direct(c, b"123456789");
        assert_eq!(check(Crc::Xz), 0x995D_C9BB_DF19_39FA);
        assert_eq!(check(Crc::Nvme), 0xAE8B_1486_0A79_9888);
        assert_eq!(check(Crc::C), 0xE306_9283);
        assert_eq!(check(Crc::Iso), 0xCBF4_3926);
        let md5 = InOrderHasher::new(Algorithm::Md5).expect("in order");
        let mut h = md5;
        h.update(b"abc");
        assert_eq!(to_hex(&h.finish().1), "900150983cd24fb0d6963f7d28e17f72");
        let mut h = InOrderHasher::new(Algorithm::Sha1).expect("in order");
        h.update(b"abc");
        assert_eq!(
            to_hex(&h.finish().1),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        let mut h = InOrderHasher::new(Algorithm::Sha256).expect("in order");
        h.update(b"abc");
        assert_eq!(
            to_hex(&h.finish().1),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    proptest! {
        /// For every CRC: the operator built once agrees with crc-fast's own combine for any
        /// values and lengths, and combining the parts of a random split gives crc-fast's CRC
        /// of the whole.
        #[test]
        fn every_combine_matches_crc_fast(
            data in proptest::collection::vec(any::<u8>(), 0..2000),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
            part_size in 1u64..300,
            crc_a in any::<u64>(),
            crc_b in any::<u64>(),
            len in 0u64..(1 << 40),
        ) {
            for crc in Crc::ALL {
                let mask = if crc.params().0 == 32 { u64::from(u32::MAX) } else { u64::MAX };
                let (a, b) = (crc_a & mask, crc_b & mask);
                prop_assert_eq!(
                    CrcAppender::new(crc, len).append(a, b),
                    combine(crc, a, b, len),
                    "{:?}", crc
                );
                // A random split, combined with crc-fast's combine.
                let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
                points.sort_unstable();
                let mut acc = direct(crc, b"");
                let mut start = 0;
                for end in points.into_iter().chain([data.len()]) {
                    let piece = &data[start..end];
                    acc = combine(crc, acc, direct(crc, piece), piece.len() as u64);
                    start = end;
                }
                prop_assert_eq!(acc, direct(crc, &data), "{:?}", crc);
            }
            // Equal parts through the combiner, every CRC at once.
            let mut set = CrcSet::default();
            for c in Crc::ALL {
                set.insert(c);
            }
            let mut comb = CrcCombiner::new(set, part_size);
            for piece in data.chunks(part_size as usize) {
                let mut h = CrcHasher::new(set);
                h.update(piece);
                comb.push(&h.finish(direct(Crc::Xz, piece)), piece.len() as u64);
            }
            let got = comb.finish();
            for c in Crc::ALL {
                prop_assert_eq!(got.0[c as usize], direct(c, &data), "{:?}", c);
            }
        }
    }

    #[test]
    fn parse_names_values_and_describe() {
        let user = || Origin::User("--checksum".into());
        let c = Checksum::parse(
            "SHA-256=BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
            user(),
        )
        .expect("parses");
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert_eq!(c.describe(), "SHA-256 (--checksum)");
        assert_eq!(&c.hex()[..8], "ba7816bf");
        for (name, alg) in [
            ("crc64nvme", Algorithm::Crc64Nvme),
            ("CRC-64/XZ", Algorithm::Crc64Xz),
            ("crc32c", Algorithm::Crc32c),
            ("crc32", Algorithm::Crc32),
            ("md5", Algorithm::Md5),
            ("sha1", Algorithm::Sha1),
        ] {
            assert_eq!(Algorithm::from_name(name), Some(alg), "{name}");
            assert_eq!(Algorithm::from_name(alg.short_name()), Some(alg));
        }
        for bad in ["sha256", "sha512=00", "md5=xyz", "md5=abc", "crc32c=00"] {
            let e = Checksum::parse(bad, user()).expect_err(bad).to_string();
            assert!(!e.is_empty(), "{bad}");
        }
        let e = Checksum::parse("md5=00", user())
            .expect_err("short")
            .to_string();
        assert!(e.contains("32 hex digits"), "{e}");
        let oss = Checksum::crc(Algorithm::Crc64Xz, 1, Origin::Store("OSS".into()));
        assert_eq!(oss.describe(), "CRC-64/XZ full-object (OSS)");
        assert_eq!(oss.stored_kind(), checkpoint::CRC64_XZ_FULL_OBJECT);
        assert_eq!(oss.value, [0, 0, 0, 0, 0, 0, 0, 1]);
        let c32 = Checksum::crc(Algorithm::Crc32c, 0xE306_9283, user());
        assert_eq!(c32.hex(), "e3069283");
    }

    #[test]
    fn plan_applies_store_checksums_to_whole_objects_and_user_ones_always() {
        let store = vec![
            Checksum::crc(Algorithm::Crc64Xz, 1, Origin::Store("OSS".into())),
            Checksum::new(Algorithm::Md5, vec![0; 16], Origin::Store("OSS".into()))
                .expect("16 bytes"),
        ];
        let user = vec![Checksum::crc(
            Algorithm::Crc32c,
            2,
            Origin::User("u".into()),
        )];
        let p = Plan::new(&store, &user, true, None);
        // OSS: its CRC-64 and its Content-MD5; the caller's digest too.
        assert_eq!(
            p.checks,
            [store[0].clone(), store[1].clone(), user[0].clone()]
        );
        assert!(p.crcs.contains(Crc::C) && p.crcs.contains(Crc::Xz));
        assert_eq!(p.in_order, [Algorithm::Md5]);
        assert_eq!(
            Verification::Verified(p.checks.clone()).to_string(),
            "verified: CRC-64/XZ + MD5 full-object (OSS), CRC-32C (u)"
        );
        let p = Plan::new(&store[1..], &user, true, None);
        assert_eq!(p.checks, [store[1].clone(), user[0].clone()]);
        assert_eq!(p.in_order, [Algorithm::Md5]);
        let p = Plan::new(&store, &[], false, None);
        assert!(p.checks.is_empty());
        assert!(p.unverified.contains("range"), "{}", p.unverified);
        let p = Plan::new(&store, &user, false, None);
        assert_eq!(p.checks, user);
        let p = Plan::new(&[], &[], true, None);
        assert_eq!(
            p.compare(&Computed::default())
                .expect("nothing to fail")
                .to_string(),
            "not verified: the store publishes no checksum for this object"
        );
        let why = "S3 refused checksum mode";
        let p = Plan::new(&[], &[], true, Some(why));
        assert_eq!(
            p.compare(&Computed::default())
                .expect("nothing to fail")
                .to_string(),
            format!("not verified: {why}")
        );
    }

    #[test]
    fn every_published_crc_and_the_strongest_digest_are_used() {
        let origin = |o: &str| Origin::Store(o.into());
        let digest = |a: Algorithm, o: &str| {
            Checksum::new(a, vec![7; a.value_len()], origin(o)).expect("length")
        };
        let used = |published: &[Checksum]| {
            let p = Plan::new(published, &[], true, None);
            let verified = p.compare(&Computed::default()).err().map(|(c, _)| c);
            (p, verified)
        };
        // GCS: CRC-32C and MD5 → both, the MD5 in order.
        let gcs = [
            digest(Algorithm::Md5, "GCS"),
            Checksum::crc(Algorithm::Crc32c, 5, origin("GCS")),
        ];
        let (p, _) = used(&gcs);
        assert_eq!(p.checks, [gcs[1].clone(), gcs[0].clone()]);
        assert_eq!(p.in_order, [Algorithm::Md5]);
        assert!(p.needs_in_order_pass());
        // HTTP: Repr-Digest sha-256 and sha-512, Content-MD5 → SHA-512 alone, one pass.
        let http = [
            digest(Algorithm::Sha256, "HTTP Repr-Digest"),
            digest(Algorithm::Md5, "HTTP Content-MD5"),
            digest(Algorithm::Sha512, "HTTP Repr-Digest"),
            digest(Algorithm::Sha1, "HTTP Digest"),
        ];
        let (p, failed) = used(&http);
        assert_eq!(p.checks, [http[2].clone()]);
        assert_eq!(p.in_order, [Algorithm::Sha512]);
        // The report (here: the failure, nothing computed) names the one used.
        assert_eq!(
            failed.expect("nothing computed").describe(),
            "SHA-512 full-object (HTTP Repr-Digest)"
        );
        // Every CRC, widest first (CRC-64/XZ, every part's own record, before CRC-64/NVME).
        let crcs = [
            Checksum::crc(Algorithm::Crc32, 1, origin("S3")),
            Checksum::crc(Algorithm::Crc64Nvme, 2, origin("S3")),
            Checksum::crc(Algorithm::Crc32c, 3, origin("S3")),
        ];
        assert_eq!(
            used(&crcs).0.checks,
            [crcs[1].clone(), crcs[2].clone(), crcs[0].clone()]
        );
        let mut with_xz = crcs.to_vec();
        with_xz.push(Checksum::crc(Algorithm::Crc64Xz, 4, origin("OSS")));
        let (p, failed) = used(&with_xz);
        assert_eq!(p.checks[0], with_xz[3]);
        assert_eq!(p.checks.len(), 4);
        assert!(p.in_order.is_empty());
        // The first check that fails is reported: the widest CRC.
        assert_eq!(
            failed.expect("nothing computed").algorithm,
            Algorithm::Crc64Xz
        );
        // Composites: a CRC one (combined from parts) before a stronger SHA one.
        let sha = Checksum::composite(Algorithm::Sha256, vec![0; 32], vec![10, 5], origin("S3"))
            .expect("composite");
        let crc = Checksum::composite(Algorithm::Crc32c, vec![0; 4], vec![10, 5], origin("S3"))
            .expect("composite");
        assert_eq!(used(&[sha.clone(), crc.clone()]).0.checks, [crc]);
        // The caller's digests are all checked, beside the store's.
        let user = [
            digest(Algorithm::Sha256, "--checksum"),
            digest(Algorithm::Md5, "sums.txt"),
        ]
        .map(|c| Checksum {
            origin: Origin::User(c.origin.to_string()),
            ..c
        });
        let p = Plan::new(&gcs, &user, true, None);
        assert_eq!(p.checks.len(), 4, "{:?}", p.checks);
        assert_eq!(p.in_order, [Algorithm::Md5, Algorithm::Sha256]);
    }

    #[test]
    fn a_digest_that_fails_beside_a_matching_crc_is_the_failure() {
        let oss = || Origin::Store("OSS".into());
        let data = b"the object's bytes";
        let crc = Checksum::crc(Algorithm::Crc64Xz, crate::digest::crc64(data), oss());
        let md5 = Checksum::new(Algorithm::Md5, vec![0xab; 16], oss()).expect("16 bytes");
        let p = Plan::new(&[crc, md5.clone()], &[], true, None);
        let mut computed = Computed::default();
        computed.crcs.0[Crc::Xz as usize] = crate::digest::crc64(data);
        let mut h = InOrderHasher::new(Algorithm::Md5).expect("in order");
        h.update(data);
        computed.in_order.push(h.finish());
        let (failed, actual) = p.compare(&computed).expect_err("the MD5 differs");
        assert_eq!(failed, md5);
        assert_eq!(to_hex(&actual), "3b699dba3851919eb64ac114f4d2a0c9");
    }

    /// The composite of `data` cut into `sizes`, computed directly.
    fn composite_of(algorithm: Algorithm, data: &[u8], sizes: &[u64]) -> Vec<u8> {
        let mut raw = Vec::new();
        let mut start = 0usize;
        for &s in sizes {
            let mut h = AnyHasher::new(algorithm).expect("hashable");
            h.update(&data[start..start + s as usize]);
            raw.extend(h.finish());
            start += s as usize;
        }
        let mut h = AnyHasher::new(algorithm).expect("hashable");
        h.update(&raw);
        h.finish()
    }

    #[test]
    fn composites_are_preferred_to_digests_and_full_crcs_to_composites() {
        let s3 = || Origin::Store("S3".into());
        let comp =
            Checksum::composite(Algorithm::Crc32, vec![0; 4], vec![10, 10, 5], s3()).unwrap();
        let md5 = Checksum::new(Algorithm::Md5, vec![0; 16], s3()).unwrap();
        let full = Checksum::crc(Algorithm::Crc64Nvme, 7, s3());
        let p = Plan::new(&[comp.clone(), md5.clone()], &[], true, None);
        assert_eq!(p.checks, std::slice::from_ref(&comp));
        assert_eq!(p.composite_in_order, [0]);
        assert!(!p.crcs.contains(Crc::Iso));
        let p = Plan::new(&[comp.clone(), full.clone()], &[], true, None);
        assert_eq!(p.checks, [full]);
        assert_eq!(comp.describe(), "CRC-32 composite of 3 parts (S3)");
        assert_eq!(comp.stored_kind(), "CRC-32 composite 10,10,5");
    }

    #[test]
    fn parts_are_fitted_to_upload_parts_when_a_large_enough_divisor_exists() {
        let s3 = || Origin::Store("S3".into());
        let plan = |alg, sizes: Vec<u64>| {
            let v = vec![0; Algorithm::value_len(alg)];
            Plan::new(
                &[Checksum::composite(alg, v, sizes, s3()).unwrap()],
                &[],
                true,
                None,
            )
        };
        let mib = 1u64 << 20;
        // Equal 8 MiB upload parts: 8 MiB (asked) and 4 MiB (asked 5) align.
        let mut p = plan(Algorithm::Crc32c, vec![8 * mib, 8 * mib, 3]);
        assert_eq!(p.fit_parts(8 * mib), 8 * mib);
        assert_eq!(
            (
                p.composite_from_parts.as_slice(),
                p.composite_in_order.len()
            ),
            (&[0][..], 0)
        );
        assert!(p.crcs.contains(Crc::C));
        let mut p = plan(Algorithm::Crc32c, vec![8 * mib, 8 * mib, 3]);
        assert_eq!(p.fit_parts(5 * mib), 4 * mib);
        // 5 MiB parts and 8 MiB asked: 5 MiB.
        let mut p = plan(Algorithm::Crc32, vec![5 * mib, 5 * mib, mib]);
        assert_eq!(p.fit_parts(8 * mib), 5 * mib);
        // A boundary with no large divisor: kept, hashed in order.
        let mut p = plan(Algorithm::Crc32, vec![5 * mib + 1, 5 * mib, 5]);
        assert_eq!(p.fit_parts(8 * mib), 8 * mib);
        assert_eq!(p.composite_in_order, [0]);
        assert!(p.needs_in_order_pass());
        // One upload part: any layout.
        let mut p = plan(Algorithm::Crc32, vec![12345]);
        assert_eq!(p.fit_parts(1000), 1000);
        assert!(p.composite_from_parts == [0] && !p.needs_in_order_pass());
        // SHA composites are always hashed in order.
        let mut p = plan(Algorithm::Sha256, vec![10, 10]);
        assert_eq!(p.fit_parts(7), 7);
        assert_eq!(p.composite_in_order, [0]);
        assert_eq!(largest_divisor_at_most(12, 5), Some(4));
        assert_eq!(largest_divisor_at_most(13, 5), None);
        assert_eq!(largest_divisor_at_most(3, 5), Some(3));
    }

    proptest! {
        /// Both ways of computing a composite (combined from aligned download parts, hashed in
        /// order in arbitrary chunks) agree with the direct computation, for every algorithm
        /// and random upload part sizes (empty ones included).
        #[test]
        fn composites_match_a_direct_computation(
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
            unit in 1u64..64,
            chunk in 1usize..500,
        ) {
            // Upload part boundaries on multiples of `unit` (so download parts of `unit` align).
            let n = data.len() as u64;
            let mut points: Vec<u64> = cuts.iter().map(|c| (*c as u64 % (n + 1)) / unit * unit).collect();
            points.sort_unstable();
            let mut sizes = Vec::new();
            let mut prev = 0;
            for p in points.into_iter().chain([n]) {
                sizes.push(p - prev);
                prev = p;
            }
            for alg in [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme, Algorithm::Sha256, Algorithm::Sha1, Algorithm::Md5] {
                let expected = composite_of(alg, &data, &sizes);
                let mut h = CompositeHasher::new(0, alg, sizes.clone()).unwrap();
                for c in data.chunks(chunk) {
                    h.update(c);
                }
                prop_assert_eq!(&h.finish().1, &expected, "{} in order", alg);
                if let Some(crc) = alg.crc() {
                    let mut plan = Plan::new(
                        &[Checksum::composite(alg, expected.clone(), sizes.clone(), Origin::Store("t".into())).unwrap()],
                        &[], true, None);
                    prop_assert!(plan.fit_parts(unit) <= unit);
                    plan.composite_from_parts = vec![0];
                    let mut set = CrcSet::default();
                    set.insert(crc);
                    let mut c = CompositeFromParts::for_plan(&plan, unit).pop().unwrap();
                    for (i, piece) in data.chunks(unit as usize).enumerate() {
                        let mut h = CrcHasher::new(set);
                        h.update(piece);
                        c.push(i as u64, &h.finish(direct(Crc::Xz, piece)), piece.len() as u64);
                    }
                    prop_assert_eq!(&c.finish().1, &expected, "{} from parts", alg);
                }
            }
        }
    }
}
