//! End-to-end integrity against whatever the store publishes (or the caller gives): every
//! algorithm, on fresh and resumed downloads, with corruption that no length or range check
//! can see. The mock publishes exactly the checksums each test puts on the object.

mod common;

use backend_mock::{Fault, FaultPlan, MockObject};
use common::{Fixture, KEY};
use md5::Digest as _;
use resume_core::{
    Algorithm, Checksum, ErrorKind, Event, InOrderHashing, Origin, RangeSpec, Verification,
    integrity,
};

const SIZE: usize = 100_000;
const PART: u64 = 10_000;

/// The value of `algorithm` over `data`, computed independently of the engine.
fn value(algorithm: Algorithm, data: &[u8]) -> Vec<u8> {
    use crc_fast::CrcAlgorithm as C;
    let crc = |a, len: usize| crc_fast::checksum(a, data).to_be_bytes()[8 - len..].to_vec();
    match algorithm {
        Algorithm::Crc64Xz => crc(C::Crc64Xz, 8),
        Algorithm::Crc64Nvme => crc(C::Crc64Nvme, 8),
        Algorithm::Crc32c => crc(C::Crc32Iscsi, 4),
        Algorithm::Crc32 => crc(C::Crc32IsoHdlc, 4),
        Algorithm::Md5 => md5::Md5::digest(data).to_vec(),
        Algorithm::Sha1 => sha1::Sha1::digest(data).to_vec(),
        Algorithm::Sha256 => sha2::Sha256::digest(data).to_vec(),
        Algorithm::Sha512 => sha2::Sha512::digest(data).to_vec(),
        other => panic!("no reference for {other}"),
    }
}

fn store() -> Origin {
    Origin::Store("mock".into())
}

fn published(algorithm: Algorithm, data: &[u8]) -> Checksum {
    Checksum::new(algorithm, value(algorithm, data), store()).unwrap()
}

/// A fixture whose object publishes exactly `sums` (no CRC-64/XZ unless among them).
fn fixture_publishing(seed: u64, sums: impl Fn(&[u8]) -> Vec<Checksum>) -> Fixture {
    let f = Fixture {
        source: backend_mock::MockSource::new("test").with_chunk_size(4096),
        ..Fixture::new(SIZE, seed)
    };
    let mut object = MockObject::new(f.content.clone());
    for c in sums(&f.content) {
        object = object.with_checksum(c);
    }
    f.source.put_object(KEY, object);
    f
}

/// Stops a download of `f` in parts of `part_size` (`workers` at once) like a crash once the
/// source has served 55 000 bytes, then runs it again with the same part size and whatever
/// `rerun` sets (or changes) before it starts: the rerun's outcome.
async fn crash_and_rerun(
    f: &Fixture,
    part_size: u64,
    workers: usize,
    rerun: impl FnOnce(resume_core::Downloader) -> resume_core::Downloader,
) -> Result<resume_core::Report, resume_core::Error> {
    f.crash_after(
        f.downloader().part_size(part_size).concurrency(workers),
        55_000,
    )
    .await;
    rerun(f.downloader().part_size(part_size))
        .download(KEY, &f.dest)
        .await
}

fn verified(r: &resume_core::Report) -> Vec<String> {
    match &r.verification {
        Verification::Verified(sums) => sums.iter().map(Checksum::describe).collect(),
        other => panic!("not verified: {other}"),
    }
}

#[tokio::test(start_paused = true)]
async fn every_published_algorithm_verifies_fresh_downloads() {
    for (i, alg) in Algorithm::ALL.into_iter().enumerate() {
        let f = fixture_publishing(100 + i as u64, |d| vec![published(alg, d)]);
        let r = f
            .downloader()
            .part_size(PART)
            .download(KEY, &f.dest)
            .await
            .unwrap();
        assert_eq!(f.dest_bytes(), f.content, "{alg}");
        assert_eq!(verified(&r), [format!("{alg} full-object (mock)")]);
        assert_eq!(
            r.verification.to_string(),
            format!("verified: {alg} full-object (mock)")
        );
        assert_eq!(r.crc64_verified, alg == Algorithm::Crc64Xz, "{alg}");
    }
}

#[tokio::test(start_paused = true)]
async fn every_published_algorithm_verifies_resumed_downloads() {
    for (i, alg) in Algorithm::ALL.into_iter().enumerate() {
        for verify_on_resume in [false, true] {
            let f = fixture_publishing(200 + i as u64, |d| vec![published(alg, d)]);
            let r = crash_and_rerun(&f, PART, 2, |dl| dl.verify_on_resume(verify_on_resume))
                .await
                .unwrap();
            assert!(r.parts_reused >= 4, "{alg}: {} reused", r.parts_reused);
            assert_eq!(f.dest_bytes(), f.content, "{alg}");
            assert_eq!(verified(&r), [format!("{alg} full-object (mock)")]);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn all_algorithms_at_once_with_odd_sizes_verify() {
    // A last part shorter than the others, and every check in one download.
    let f = Fixture::new(SIZE + 777, 300);
    let mut object = MockObject::new(f.content.clone());
    let mut dl = f.downloader().part_size(3_333);
    for alg in Algorithm::ALL {
        object = object.with_checksum(published(alg, &f.content));
        let given = Checksum::new(alg, value(alg, &f.content), Origin::User("u".into()));
        dl = dl.expect_checksum(given.unwrap());
    }
    f.source.put_object(KEY, object);
    let r = dl.download(KEY, &f.dest).await.unwrap();
    let got = verified(&r);
    // Of the store's eight, every CRC and the strongest digest; given by the caller, all.
    assert_eq!(got.len(), 5 + Algorithm::ALL.len(), "{got:?}");
    let store: Vec<&String> = got.iter().filter(|d| d.contains("(mock)")).collect();
    assert_eq!(
        store,
        [
            "CRC-64/XZ full-object (mock)",
            "CRC-64/NVME full-object (mock)",
            "CRC-32C full-object (mock)",
            "CRC-32 full-object (mock)",
            "SHA-512 full-object (mock)"
        ],
        "{got:?}"
    );
}

/// One byte flipped in the body of one part's response (its length intact): the download
/// fails with Integrity naming the algorithm and both values, DEST is never replaced, and the
/// checkpoint and temp file are discarded.
#[tokio::test(start_paused = true)]
async fn a_flipped_byte_in_one_part_fails_naming_the_algorithm_and_both_values() {
    for (i, alg) in Algorithm::ALL.into_iter().enumerate() {
        let f = fixture_publishing(400 + i as u64, |d| vec![published(alg, d)]);
        std::fs::write(&f.dest, b"precious").unwrap();
        f.source
            .set_fault_plan(FaultPlan::new().on_request(3, Fault::FlipByte(1234)));
        let err = f
            .downloader()
            .part_size(PART)
            .download(KEY, &f.dest)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity, "{alg}: {err}");
        let msg = err.to_string();
        let expected = integrity_hex(&value(alg, &f.content));
        let mut bad = f.content.clone();
        // Request 3 is part 3 (one request per part, in order, with the default concurrency
        // claiming parts in order).
        bad[3 * PART as usize + 1234] ^= 0x01;
        let actual = integrity_hex(&value(alg, &bad));
        for needle in [alg.name(), "the store (mock)", &expected, &actual] {
            assert!(msg.contains(needle), "{alg}: {needle:?} missing from {msg}");
        }
        assert_eq!(std::fs::read(&f.dest).unwrap(), b"precious", "{alg}");
        assert!(f.store.ids().is_empty(), "{alg}: checkpoint kept");
        assert_eq!(f.files(), ["out.bin"], "{alg}");
    }
}

fn integrity_hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes corrupted on the way in before a crash are recorded as received; the resumed run
/// reuses that part and must fail exactly like a fresh one.
#[tokio::test(start_paused = true)]
async fn a_reused_part_that_was_corrupted_in_transit_fails_the_resumed_run() {
    for (i, alg) in [Algorithm::Crc64Nvme, Algorithm::Crc32c, Algorithm::Sha256]
        .into_iter()
        .enumerate()
    {
        let f = fixture_publishing(500 + i as u64, |d| vec![published(alg, d)]);
        f.source
            .set_fault_plan(FaultPlan::new().on_request(0, Fault::FlipByte(10)));
        let err = crash_and_rerun(&f, PART, 1, |dl| {
            f.source.set_fault_plan(FaultPlan::new());
            dl
        })
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity, "{alg}: {err}");
        assert!(err.to_string().contains(alg.name()), "{err}");
        let started = f
            .events()
            .iter()
            .any(|e| matches!(e, Event::Started { parts_reused, .. } if *parts_reused >= 4));
        assert!(started, "{alg}: the resumed run reused the parts");
        assert!(!f.dest.exists());
        assert!(f.store.ids().is_empty());
    }
}

/// A reused part damaged on disk after it was recorded is caught by its record and fetched
/// again; the file is then verified against the store's checksum like any other.
#[tokio::test(start_paused = true)]
async fn a_reused_part_damaged_on_disk_is_refetched_and_the_file_verified() {
    for (i, alg) in [Algorithm::Crc32, Algorithm::Md5].into_iter().enumerate() {
        let f = fixture_publishing(600 + i as u64, |d| vec![published(alg, d)]);
        f.crash_after(f.downloader().part_size(PART).concurrency(1), 60_000)
            .await;
        let mut tmp = std::fs::read(f.part_path()).unwrap();
        tmp[25_000] ^= 0x01;
        std::fs::write(f.part_path(), tmp).unwrap();
        f.take_events();
        let r = f
            .downloader()
            .part_size(PART)
            .concurrency(1)
            .download(KEY, &f.dest)
            .await
            .unwrap();
        assert_eq!(f.dest_bytes(), f.content);
        assert!(
            f.events()
                .iter()
                .any(|e| matches!(e, Event::PartsDamaged { parts, .. } if parts == &[2])),
            "{alg}"
        );
        assert_eq!(verified(&r), [format!("{alg} full-object (mock)")]);
    }
}

#[tokio::test(start_paused = true)]
async fn a_given_checksum_verifies_the_file_written_also_for_a_range() {
    let f = fixture_publishing(700, |_| Vec::new());
    let user = |s: &str| Checksum::parse(s, Origin::User("--checksum".into())).unwrap();
    let good = format!(
        "sha256={}",
        integrity_hex(&value(Algorithm::Sha256, &f.content))
    );
    let r = f
        .downloader()
        .part_size(PART)
        .expect_checksum(user(&good))
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert_eq!(r.verification.to_string(), "verified: SHA-256 (--checksum)");

    // A range: the given digest is of the range's bytes; the store's full-object CRC does
    // not apply.
    let f = fixture_publishing(701, |d| vec![published(Algorithm::Crc64Xz, d)]);
    let part = &f.content[1_000..=50_999];
    let crc = format!("crc32c={}", integrity_hex(&value(Algorithm::Crc32c, part)));
    let r = f
        .downloader()
        .part_size(PART)
        .range(RangeSpec::Inclusive {
            first: 1_000,
            last: 50_999,
        })
        .expect_checksum(user(&crc))
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert_eq!(r.verification.to_string(), "verified: CRC-32C (--checksum)");
    let r = f
        .downloader()
        .part_size(PART)
        .range(RangeSpec::From { first: 1 })
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert_eq!(
        r.verification.to_string(),
        "not verified: the store's checksums cover the whole object, and a range of it was \
         downloaded"
    );

    // A wrong one fails, naming who gave it.
    let f = fixture_publishing(702, |d| vec![published(Algorithm::Crc64Xz, d)]);
    let wrong = format!("md5={}", "00".repeat(16));
    let err = f
        .downloader()
        .expect_checksum(user(&wrong))
        .download(KEY, &f.dest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    let msg = err.to_string();
    assert!(
        msg.contains("MD5") && msg.contains("--checksum says 0000"),
        "{msg}"
    );
    assert!(!f.dest.exists());
}

#[tokio::test(start_paused = true)]
async fn nothing_to_verify_is_reported_or_with_require_checksum_refused_before_any_read() {
    let f = fixture_publishing(800, |_| Vec::new());
    let r = f.downloader().download(KEY, &f.dest).await.unwrap();
    assert_eq!(
        r.verification.to_string(),
        "not verified: the store publishes no checksum for this object"
    );
    assert!(!r.crc64_verified);

    let f = fixture_publishing(801, |_| Vec::new());
    let reads = f.source.read_requests();
    let err = f
        .downloader()
        .require_checksum(true)
        .download(KEY, &f.dest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(
        matches!(err, resume_core::Error::Unverifiable { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("the store publishes no checksum for this object"),
        "{err}"
    );
    assert_eq!(f.source.read_requests(), reads, "no byte was requested");
    assert_eq!(f.files(), Vec::<String>::new());
    assert!(f.store.ids().is_empty());

    // With something to check, require_checksum changes nothing.
    let f = fixture_publishing(802, |d| vec![published(Algorithm::Crc32c, d)]);
    let r = f
        .downloader()
        .require_checksum(true)
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert!(r.verification.is_verified());
}

/// A composite of `data` cut into `sizes` (S3 `COMPOSITE`): the digest of the parts'
/// digests, computed independently of the engine.
fn composite(algorithm: Algorithm, data: &[u8], sizes: &[u64]) -> Checksum {
    let mut raw = Vec::new();
    let mut start = 0;
    for &s in sizes {
        raw.extend(value(algorithm, &data[start..start + s as usize]));
        start += s as usize;
    }
    Checksum::composite(algorithm, value(algorithm, &raw), sizes.to_vec(), store()).unwrap()
}

/// Upload parts of 30 000 bytes (the last shorter): download parts are fitted to them.
const UPLOAD_PARTS: [u64; 4] = [30_000, 30_000, 30_000, 10_000];
/// Upload parts of a prime size: no download part size of 2 500–10 000 bytes fits them.
const PRIME_PARTS: [u64; 4] = [30_011, 30_011, 30_011, 9_967];

fn part_size_of(f: &Fixture) -> u64 {
    f.events()
        .iter()
        .find_map(|e| match e {
            Event::Started { part_size, .. } => Some(*part_size),
            _ => None,
        })
        .expect("a started event")
}

/// Composite checksums (S3 multipart uploads) verify fresh and resumed downloads: CRCs from
/// download parts fitted to the upload parts (asked 10 000 or 25 000 → 10 000 / 15 000), or in
/// one in-order pass when no fitting size exists (prime upload parts) and for SHA digests.
#[tokio::test(start_paused = true)]
async fn composite_checksums_verify_fresh_and_resumed_downloads() {
    let cases = [
        (Algorithm::Crc32, UPLOAD_PARTS, 25_000, 15_000),
        (Algorithm::Crc32c, UPLOAD_PARTS, 10_000, 10_000),
        (Algorithm::Crc32c, PRIME_PARTS, 10_000, 10_000),
        (Algorithm::Sha256, UPLOAD_PARTS, 10_000, 10_000),
        (Algorithm::Sha1, PRIME_PARTS, 25_000, 25_000),
    ];
    for (i, (alg, parts, asked, used)) in cases.into_iter().enumerate() {
        let f = fixture_publishing(900 + i as u64, |d| vec![composite(alg, d, &parts)]);
        let r = f
            .downloader()
            .part_size(asked)
            .download(KEY, &f.dest)
            .await
            .unwrap();
        assert_eq!(f.dest_bytes(), f.content, "{alg}");
        assert_eq!(part_size_of(&f), used, "{alg} asked {asked}");
        assert_eq!(verified(&r), [format!("{alg} composite of 4 parts (mock)")]);

        let f = fixture_publishing(950 + i as u64, |d| vec![composite(alg, d, &parts)]);
        let r = crash_and_rerun(&f, asked, 2, |dl| dl).await.unwrap();
        assert!(r.parts_reused >= 2, "{alg}: {} reused", r.parts_reused);
        assert_eq!(f.dest_bytes(), f.content, "{alg}");
        assert_eq!(verified(&r), [format!("{alg} composite of 4 parts (mock)")]);
    }
}

/// A flipped byte under a composite checksum fails naming it and both values; so does a
/// resumed run that reuses the corrupted part.
#[tokio::test(start_paused = true)]
async fn a_flipped_byte_under_a_composite_checksum_fails_naming_it_and_both_values() {
    for (i, (alg, parts, asked)) in [
        (Algorithm::Crc32c, UPLOAD_PARTS, 10_000),
        (Algorithm::Crc32, PRIME_PARTS, 10_000),
        (Algorithm::Sha256, UPLOAD_PARTS, 10_000),
    ]
    .into_iter()
    .enumerate()
    {
        let f = fixture_publishing(1000 + i as u64, |d| vec![composite(alg, d, &parts)]);
        std::fs::write(&f.dest, b"precious").unwrap();
        f.source
            .set_fault_plan(FaultPlan::new().on_request(2, Fault::FlipByte(77)));
        let err = f
            .downloader()
            .part_size(asked)
            .download(KEY, &f.dest)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity, "{alg}: {err}");
        let mut bad = f.content.clone();
        bad[2 * asked as usize + 77] ^= 0x01;
        let expected = integrity_hex(&composite(alg, &f.content, &parts).value);
        let actual = integrity_hex(&composite(alg, &bad, &parts).value);
        let msg = err.to_string();
        for needle in [
            &format!("{alg} composite of 4 parts"),
            "the store (mock)",
            &expected,
            &actual,
        ] {
            assert!(msg.contains(needle), "{alg}: {needle:?} missing from {msg}");
        }
        assert_eq!(std::fs::read(&f.dest).unwrap(), b"precious", "{alg}");
        assert!(f.store.ids().is_empty(), "{alg}: checkpoint kept");

        // Corrupted in transit before a crash, reused by the next run.
        let f = fixture_publishing(1100 + i as u64, |d| vec![composite(alg, d, &parts)]);
        f.source
            .set_fault_plan(FaultPlan::new().on_request(0, Fault::FlipByte(10)));
        let err = crash_and_rerun(&f, asked, 1, |dl| {
            f.source.set_fault_plan(FaultPlan::new());
            dl
        })
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity, "{alg}: {err}");
        assert!(err.to_string().contains("composite of 4 parts"), "{err}");
        assert!(!f.dest.exists());
    }
}

/// A checkpoint written when the store published no checksum (an older version, or checksums
/// withheld) resumes once the same object (same etag and time) comes with checksums, also with
/// `OnChange::Fail`, and the file is verified by them.
#[tokio::test(start_paused = true)]
async fn a_checkpoint_without_checksums_resumes_when_the_same_object_publishes_some() {
    let f = fixture_publishing(1200, |_| Vec::new());
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let object = || {
        MockObject::new(f.content.clone())
            .with_etag("\"pinned\"")
            .with_last_modified(at)
    };
    f.source.put_object(KEY, object());
    f.crash_after(f.downloader().part_size(PART).concurrency(1), 55_000)
        .await;
    f.source.put_object(
        KEY,
        object().with_checksum(published(Algorithm::Crc32c, &f.content)),
    );
    let r = f
        .downloader()
        .part_size(PART)
        .on_change(resume_core::OnChange::Fail)
        .download(KEY, &f.dest)
        .await
        .unwrap();
    assert!(r.parts_reused >= 5, "{} reused", r.parts_reused);
    assert_eq!(f.dest_bytes(), f.content);
    assert_eq!(verified(&r), ["CRC-32C full-object (mock)"]);
}

#[test]
fn the_module_is_public_for_backends_and_the_cli() {
    assert_eq!(integrity::parse_hex("0aFF"), Some(vec![0x0a, 0xff]));
    assert_eq!(integrity::parse_hex("0"), None);
}

/// OSS publishes a CRC-64/XZ and, for objects uploaded in one piece, their Content-MD5: both
/// are checked, and the report says so in one phrase.
#[tokio::test(start_paused = true)]
async fn a_crc_and_a_digest_from_the_store_are_both_checked() {
    for how in [InOrderHashing::Streamed, InOrderHashing::AtEnd] {
        let f = fixture_publishing(700, |d| {
            vec![
                published(Algorithm::Md5, d),
                published(Algorithm::Crc64Xz, d),
            ]
        });
        let r = f
            .downloader()
            .part_size(PART)
            .concurrency(4)
            .in_order_hashing(how)
            .download(KEY, &f.dest)
            .await
            .unwrap();
        assert_eq!(f.dest_bytes(), f.content);
        assert_eq!(
            r.verification.to_string(),
            "verified: CRC-64/XZ + MD5 full-object (mock)",
            "{how:?}"
        );
        assert!(r.crc64_verified);
    }
}

/// A store MD5 that does not match while its CRC does (a wrong Content-MD5): the MD5 is what
/// fails, naming both values; DEST is untouched.
#[tokio::test(start_paused = true)]
async fn a_store_digest_that_differs_beside_a_matching_crc_fails_naming_it() {
    for how in [InOrderHashing::Streamed, InOrderHashing::AtEnd] {
        let wrong = [0x5au8; 16];
        let f = fixture_publishing(701, |d| {
            vec![
                published(Algorithm::Crc64Xz, d),
                Checksum::new(Algorithm::Md5, wrong.to_vec(), store()).unwrap(),
            ]
        });
        std::fs::write(&f.dest, b"precious").unwrap();
        let err = f
            .downloader()
            .part_size(PART)
            .concurrency(3)
            .in_order_hashing(how)
            .download(KEY, &f.dest)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity, "{how:?}: {err}");
        let msg = err.to_string();
        let actual = integrity_hex(&value(Algorithm::Md5, &f.content));
        for needle in ["MD5", &integrity_hex(&wrong), &actual] {
            assert!(
                msg.contains(needle),
                "{how:?}: {needle:?} missing from {msg}"
            );
        }
        assert_eq!(std::fs::read(&f.dest).unwrap(), b"precious");
        assert!(f.store.ids().is_empty());
    }
}

/// Digests hashed while parts complete (out of order, with several workers), and in one pass
/// at the end, agree with a direct computation: fresh, resumed after a crash (with and
/// without --verify-on-resume), with a reused part damaged on disk (fetched again after the
/// stream passed it), and with a byte flipped in flight.
#[tokio::test(start_paused = true)]
async fn streamed_and_end_of_run_digests_agree_fresh_resumed_and_damaged() {
    // A SHA-1 composite (hashed in order) from the store, an MD5 from the caller.
    let fixture = || {
        let f = Fixture {
            source: backend_mock::MockSource::new("test").with_chunk_size(4096),
            ..Fixture::new(SIZE + 777, 710)
        };
        let object = MockObject::new(f.content.clone()).with_checksum(composite(
            Algorithm::Sha1,
            &f.content,
            &[30_000, 30_000, 40_777],
        ));
        f.source.put_object(KEY, object);
        f
    };
    let dl = |f: &Fixture, how| {
        let md5 = value(Algorithm::Md5, &f.content);
        f.downloader()
            .part_size(7_000)
            .concurrency(5)
            .in_order_hashing(how)
            .expect_checksum(Checksum::new(Algorithm::Md5, md5, Origin::User("u".into())).unwrap())
    };
    for how in [InOrderHashing::Streamed, InOrderHashing::AtEnd] {
        // Fresh, parts arriving out of order.
        let f = fixture();
        let r = dl(&f, how).download(KEY, &f.dest).await.unwrap();
        assert_eq!(f.dest_bytes(), f.content, "{how:?}");
        assert_eq!(
            r.verification.to_string(),
            "verified: SHA-1 composite of 3 parts (mock), MD5 (u)",
            "{how:?}"
        );
        // Resumed, then resumed with a reused part damaged on disk.
        for damage in [false, true] {
            for verify_on_resume in [false, true] {
                let f = fixture();
                f.crash_after(dl(&f, how).concurrency(2), 52_000).await;
                if damage {
                    let mut tmp = std::fs::read(f.part_path()).unwrap();
                    tmp[8_000] ^= 0x01;
                    std::fs::write(f.part_path(), tmp).unwrap();
                }
                f.take_events();
                let r = dl(&f, how)
                    .verify_on_resume(verify_on_resume)
                    .download(KEY, &f.dest)
                    .await
                    .unwrap();
                let what = format!("{how:?} damage {damage} verify {verify_on_resume}");
                assert!(r.parts_reused >= 3, "{what}: {} reused", r.parts_reused);
                assert_eq!(f.dest_bytes(), f.content, "{what}");
                assert!(r.verification.is_verified(), "{what}");
                let damaged = f
                    .events()
                    .iter()
                    .any(|e| matches!(e, Event::PartsDamaged { parts, .. } if parts == &[1]));
                assert_eq!(damaged, damage, "{what}");
            }
        }
        // A byte flipped in flight in a part that arrives out of order.
        let f = fixture();
        f.source
            .set_fault_plan(FaultPlan::new().on_request(6, Fault::FlipByte(77)));
        let err = dl(&f, how).download(KEY, &f.dest).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity, "{how:?}: {err}");
        assert!(!f.dest.exists());
    }
}

/// An object of one part has its in-order digests hashed from the bytes as they arrive (no
/// thread, no read-back). A byte flipped in flight still fails naming the digest and both
/// values, and never replaces DEST; a retry that resumes mid-part, a response that makes the
/// part start over, and a run resuming a part's saved beginning still verify (the last two
/// through the pass at the end).
#[tokio::test(start_paused = true)]
async fn a_one_part_object_hashed_as_it_arrives_verifies_and_still_fails_on_a_flipped_byte() {
    let one_part = SIZE as u64;
    for (i, alg) in [
        Algorithm::Md5,
        Algorithm::Sha1,
        Algorithm::Sha256,
        Algorithm::Sha512,
    ]
    .into_iter()
    .enumerate()
    {
        let fresh = || fixture_publishing(1_100 + i as u64, |d| vec![published(alg, d)]);
        for fault in [
            None,
            Some(Fault::ResetAfter(30_001)),
            Some(Fault::ExtraBytes(9)),
        ] {
            let f = fresh();
            if let Some(fault) = fault.clone() {
                f.source
                    .set_fault_plan(FaultPlan::new().on_request(0, fault));
            }
            let r = f
                .downloader()
                .part_size(one_part)
                .download(KEY, &f.dest)
                .await
                .unwrap();
            assert_eq!(r.parts, 1, "{alg} {fault:?}");
            assert_eq!(f.dest_bytes(), f.content, "{alg} {fault:?}");
            assert_eq!(verified(&r), [format!("{alg} full-object (mock)")]);
        }

        // Large enough for the part's beginning to be saved before the crash.
        let f = Fixture {
            source: backend_mock::MockSource::new("test").with_chunk_size(64 << 10),
            ..Fixture::new(3 << 20, 1_150 + i as u64)
        };
        f.source.put_object(
            KEY,
            MockObject::new(f.content.clone()).with_checksum(published(alg, &f.content)),
        );
        let dl = || {
            f.downloader()
                .part_size(4 << 20)
                .sync_interval(Some(std::time::Duration::ZERO))
        };
        f.crash_after(dl(), 2 << 20).await;
        let r = dl().download(KEY, &f.dest).await.unwrap();
        assert!(r.reused_bytes > 0, "{alg}: the saved beginning was reused");
        assert_eq!(f.dest_bytes(), f.content, "{alg} resumed");
        assert_eq!(verified(&r), [format!("{alg} full-object (mock)")]);

        let f = fresh();
        std::fs::write(&f.dest, b"precious").unwrap();
        f.source
            .set_fault_plan(FaultPlan::new().on_request(0, Fault::FlipByte(54_321)));
        let err = f
            .downloader()
            .part_size(one_part)
            .download(KEY, &f.dest)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity, "{alg}: {err}");
        let mut bad = f.content.clone();
        bad[54_321] ^= 0x01;
        let msg = err.to_string();
        for needle in [
            alg.name(),
            "the store (mock)",
            &integrity_hex(&value(alg, &f.content)),
            &integrity_hex(&value(alg, &bad)),
        ] {
            assert!(msg.contains(needle), "{alg}: {needle:?} missing from {msg}");
        }
        assert_eq!(std::fs::read(&f.dest).unwrap(), b"precious", "{alg}");
        assert!(f.store.ids().is_empty(), "{alg}: checkpoint kept");
        assert_eq!(f.files(), ["out.bin"], "{alg}");
    }
}
