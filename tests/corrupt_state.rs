//! Corrupted or foreign local state, end to end: a real interrupted `resume-get` leaves a
//! checkpoint and temp file; the test damages or swaps them as a crash, a disk or a user
//! could; the next run must end with the exact object and say what it found (a
//! `checkpoint_discarded`, `checkpoint_note` or `parts_damaged` event).

use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e_tests::support::*;

const KEY: &str = "state/object.bin";
const PART: u64 = 1000;

/// A 4-part object; the interrupted run leaves parts 0 and 1 done.
fn small_object(server: &Server) -> Vec<u8> {
    let content = data(7, 4 * PART as usize);
    server.put(KEY, &content);
    content
}

fn part_args() -> [String; 2] {
    ["--part-size".into(), PART.to_string()]
}

/// What the next run must find in a damaged checkpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Not usable at all: `checkpoint_discarded`, everything fetched.
    Discarded,
    /// A torn or damaged journal tail: `checkpoint_note`, this many parts reused.
    Note(u64),
    /// A valid (shorter) checkpoint, as a crash between two records leaves: this many parts
    /// reused, nothing to report.
    Clean(u64),
    /// No longer recognisable as a checkpoint (empty, or its magic bytes damaged): it could be
    /// anybody's file, so it is refused (exit 7, naming it) and nothing is touched.
    Refused,
}

/// One download destination with a real interrupted state.
struct Slot {
    _dir: tempfile::TempDir,
    dest: PathBuf,
    cp: Vec<u8>,
    part: Vec<u8>,
}

impl Slot {
    fn new(server: &Server) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("out.bin");
        stop_after_parts(server, KEY, &server.get(KEY, &dest).args(part_args()), 2);
        let cp = std::fs::read(rgcp(&dest)).expect("checkpoint after the interrupted run");
        let part = std::fs::read(rgpart(&dest)).expect("temp file after the interrupted run");
        Self {
            _dir: dir,
            dest,
            cp,
            part,
        }
    }

    /// Restores the interrupted state with `cp` as the checkpoint, runs, and checks the
    /// outcome against `expect`.
    fn check(&self, server: &Server, content: &[u8], cp: &[u8], expect: Expect, case: &str) {
        // Restore the temp file *in place*: the checkpoint claims that very file (its inode),
        // which the previous case's run renamed over DEST.
        if self.dest.exists() {
            std::fs::rename(&self.dest, rgpart(&self.dest)).expect("DEST back to the temp file");
        }
        std::fs::write(rgpart(&self.dest), &self.part).expect("restore temp file");
        std::fs::write(rgcp(&self.dest), cp).expect("write damaged checkpoint");
        let out = server.get(KEY, &self.dest).args(part_args()).run();
        if expect == Expect::Refused {
            out.expect_code(EXIT_LOCAL_IO);
            let named = rgcp(&self.dest).display().to_string();
            assert!(
                out.stderr.contains(&named) && out.stderr.contains("move it away"),
                "{case}: {}",
                out.stderr
            );
            assert_eq!(std::fs::read(rgcp(&self.dest)).expect("kept"), cp, "{case}");
            assert_eq!(std::fs::read(rgpart(&self.dest)).expect("kept"), self.part);
            assert!(!self.dest.exists(), "{case}");
            return;
        }
        out.expect_ok();
        assert_file_is(&self.dest, content, case);
        let discarded = out.event("checkpoint_discarded");
        let note = out.event("checkpoint_note");
        let reused = out.num("started", "parts_reused");
        let ok = match expect {
            Expect::Discarded => {
                discarded.is_some_and(|d| !d["reason"].as_str().unwrap_or("").is_empty())
                    && reused == 0
            }
            Expect::Note(k) => {
                discarded.is_none()
                    && note.is_some_and(|n| n["note"].as_str().unwrap_or("").contains("torn"))
                    && reused == k
            }
            Expect::Clean(k) => discarded.is_none() && note.is_none() && reused == k,
            Expect::Refused => unreachable!("handled above"),
        };
        assert!(
            ok,
            "{case}: expected {expect:?}, got discarded={discarded:?} note={note:?} \
             parts_reused={reused}"
        );
        assert_eq!(
            out.num("completed", "fetched_bytes"),
            content.len() as u64 - reused * PART,
            "{case}: only the parts not reused are fetched"
        );
        assert!(!rgcp(&self.dest).exists() && !rgpart(&self.dest).exists());
    }
}

/// Runs `cases` (checkpoint bytes, expectation, label) over `WORKERS` slots in parallel; each
/// slot has its own real checkpoint of identical layout (same path lengths), and case `i`
/// is applied to slot `i % WORKERS`'s checkpoint through `make`.
fn sweep(label: &str, make: impl Fn(&[u8], usize) -> Option<(Vec<u8>, Expect)> + Sync) {
    const WORKERS: usize = 3;
    let server = Server::start();
    let content = small_object(&server);
    let slots: Vec<Slot> = (0..WORKERS).map(|_| Slot::new(&server)).collect();
    let len = slots[0].cp.len();
    let snap = snapshot_len(&slots[0].cp);
    for s in &slots {
        assert_eq!(
            (s.cp.len(), snapshot_len(&s.cp)),
            (len, snap),
            "slots must have checkpoints of the same shape"
        );
    }
    assert_eq!(
        len,
        snap + 2 * checkpoint::RECORD_LEN,
        "snapshot + 2 records"
    );
    let cases_run = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for (w, slot) in slots.iter().enumerate() {
            let (server, content, make, cases_run) = (&server, &content, &make, &cases_run);
            scope.spawn(move || {
                let mut i = w;
                while let Some((cp, expect)) = make(&slot.cp, i) {
                    slot.check(server, content, &cp, expect, &format!("{label} {i}"));
                    cases_run.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    i += WORKERS;
                }
            });
        }
    });
    eprintln!(
        "{label}: {} runs over a {len}-byte checkpoint (snapshot {snap} bytes + 2 records)",
        cases_run.into_inner()
    );
}

#[test]
fn checkpoint_truncated_at_every_length_is_discarded_or_its_torn_tail_ignored() {
    sweep("truncated to", |cp, n| {
        if n > cp.len() {
            return None;
        }
        let snap = snapshot_len(cp);
        let rec = checkpoint::RECORD_LEN;
        let expect = if n == 0 {
            Expect::Refused
        } else if n < snap {
            Expect::Discarded
        } else if (n - snap).is_multiple_of(rec) {
            Expect::Clean(((n - snap) / rec) as u64)
        } else {
            Expect::Note(((n - snap) / rec) as u64)
        };
        Some((cp[..n].to_vec(), expect))
    });
}

#[test]
fn checkpoint_with_any_one_byte_flipped_is_discarded_or_its_tail_ignored() {
    sweep("byte flipped at", |cp, pos| {
        if pos >= cp.len() {
            return None;
        }
        let mut bad = cp.to_vec();
        // Seeded, never zero: every position gets a different nonzero XOR.
        bad[pos] ^= (Rng::new(pos as u64).below(255) + 1) as u8;
        let snap = snapshot_len(cp);
        let expect = if pos < checkpoint::codec::MAGIC.len() {
            Expect::Refused
        } else if pos < snap {
            Expect::Discarded
        } else {
            Expect::Note(((pos - snap) / checkpoint::RECORD_LEN) as u64)
        };
        Some((bad, expect))
    });
}

/// A server with the object and an interrupted download of it (parts 0 and 1 done).
fn interrupted() -> (Server, Vec<u8>, tempfile::TempDir, PathBuf) {
    let server = Server::start();
    let content = small_object(&server);
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("out.bin");
    stop_after_parts(&server, KEY, &server.get(KEY, &dest).args(part_args()), 2);
    (server, content, dir, dest)
}

/// The run after the damage: exit 0, exact bytes, and the discard reason.
#[track_caller]
fn resumed_discarding(server: &Server, key: &str, dest: &Path, args: &[String]) -> Outcome {
    let out = server.get(key, dest).args(args).run();
    out.expect_ok();
    assert_eq!(out.num("started", "reused_bytes"), 0);
    out
}

#[track_caller]
fn reason(out: &Outcome) -> String {
    out.must_event("checkpoint_discarded")["reason"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn checkpoint_from_another_object_is_discarded() {
    let (server, _, _dir, dest) = interrupted();
    let other = data(8, 3500);
    server.put("state/other.bin", &other);
    let out = resumed_discarding(&server, "state/other.bin", &dest, &part_args());
    assert_file_is(&dest, &other, "the other object");
    let r = reason(&out);
    assert!(
        r.contains("another download") && r.contains(KEY),
        "reason should name the other download: {r}"
    );
}

#[test]
fn checkpoint_from_another_dest_is_refused_untouched_and_the_original_still_resumes() {
    let (server, content, dir, dest) = interrupted();
    let dest2 = dir.path().join("copy.bin");
    std::fs::copy(rgcp(&dest), rgcp(&dest2)).expect("copy checkpoint");
    std::fs::copy(rgpart(&dest), rgpart(&dest2)).expect("copy temp file");
    let copied = (
        std::fs::read(rgcp(&dest2)).expect("cp"),
        std::fs::read(rgpart(&dest2)).expect("part"),
    );
    // Another download's checkpoint (and a temp file nothing claims for this one) are
    // somebody's files at this download's names: refused before any request, kept as they are.
    let out = server.get(KEY, &dest2).args(part_args()).run();
    out.expect_code(EXIT_LOCAL_IO);
    assert!(
        out.stderr.contains(&rgcp(&dest2).display().to_string())
            && out.stderr.contains(&dest.display().to_string()),
        "the message should name the file and the other destination: {}",
        out.stderr
    );
    assert_eq!(
        (
            std::fs::read(rgcp(&dest2)).expect("cp"),
            std::fs::read(rgpart(&dest2)).expect("part")
        ),
        copied
    );
    assert!(!dest2.exists());
    // The first download's own state was not touched.
    let out = server.get(KEY, &dest).args(part_args()).run();
    out.expect_ok();
    assert_eq!(out.num("started", "parts_reused"), 2);
    assert_file_is(&dest, &content, "the original download, resumed");
}

/// Another `--part-size` on the rerun resumes with the saved layout (issue 19, item 8): the
/// saved parts are kept and the change is said once; `--start-over` discards them.
#[test]
fn checkpoint_from_another_part_size_is_resumed_with_its_layout_unless_starting_over() {
    let (server, content, _dir, dest) = interrupted();
    let other = ["--part-size".to_string(), "1500".to_string()];
    let out = server.get(KEY, &dest).args(&other).run();
    out.expect_ok();
    assert_file_is(&dest, &content, "with another part size");
    let said = out.must_event("part_size");
    assert_eq!(said["reason"], "checkpoint");
    assert_eq!((num(said, "requested"), num(said, "used")), (1500, PART));
    assert_eq!(out.num("started", "parts_reused"), 2);
    assert!(out.event("checkpoint_discarded").is_none());

    let (server, content, _dir, dest) = interrupted();
    let mut args = other.to_vec();
    args.push("--start-over".into());
    let out = resumed_discarding(&server, KEY, &dest, &args);
    assert_file_is(&dest, &content, "started over with another part size");
    assert!(reason(&out).contains("starting over"), "{}", reason(&out));
    assert_eq!(out.num("started", "parts"), 3);
}

/// The checkpoint with its format version set to `version` and the snapshot checksum
/// recomputed, as a build with that format would have written it (journal records, keyed by
/// the old checksum, no longer verify; they are never reached).
fn with_version(cp: &[u8], version: u32) -> Vec<u8> {
    let snap = snapshot_len(cp);
    let body = snap - checkpoint::codec::CHECKSUM_LEN;
    let mut out = cp[..snap].to_vec();
    out[8..12].copy_from_slice(&version.to_le_bytes());
    let sum = *blake3::hash(&out[..body]).as_bytes();
    out[body..snap].copy_from_slice(&sum);
    out.extend_from_slice(&cp[snap..]);
    out
}

#[test]
fn checkpoint_from_an_older_or_newer_format_version_is_discarded_with_its_version() {
    assert_eq!(
        checkpoint::codec::FORMAT_VERSION,
        4,
        "update the versions below"
    );
    for (version, label) in [(0u32, "older"), (5u32, "newer")] {
        let (server, content, _dir, dest) = interrupted();
        let cp = std::fs::read(rgcp(&dest)).expect("checkpoint");
        assert_eq!(&cp[..8], &checkpoint::codec::MAGIC);
        std::fs::write(rgcp(&dest), with_version(&cp, version)).expect("write");
        let out = resumed_discarding(&server, KEY, &dest, &part_args());
        assert_file_is(&dest, &content, label);
        let r = reason(&out);
        assert!(
            r.contains(&format!("format version {version}")) && r.contains("reads version 4"),
            "{label} format: the reason should name both versions: {r}"
        );
    }
    // Editing the version without the checksum is damage, and reported as such.
    let (server, content, _dir, dest) = interrupted();
    let mut cp = std::fs::read(rgcp(&dest)).expect("checkpoint");
    cp[8..12].copy_from_slice(&0u32.to_le_bytes());
    std::fs::write(rgcp(&dest), cp).expect("write");
    let out = resumed_discarding(&server, KEY, &dest, &part_args());
    assert_file_is(&dest, &content, "version edited without its checksum");
    assert!(reason(&out).contains("checksum"), "{}", reason(&out));
}

#[test]
fn temp_file_deleted_with_the_checkpoint_left_is_refetched_not_zero_filled() {
    let (server, content, _dir, dest) = interrupted();
    std::fs::remove_file(rgpart(&dest)).expect("delete temp file");
    let out = resumed_discarding(&server, KEY, &dest, &part_args());
    assert_file_is(&dest, &content, "after the temp file was deleted");
    assert!(reason(&out).contains("temp file"), "{}", reason(&out));
    assert_eq!(out.num("completed", "fetched_bytes"), content.len() as u64);
}

#[test]
fn temp_file_truncated_is_discarded_and_refetched() {
    let (server, content, _dir, dest) = interrupted();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(rgpart(&dest))
        .expect("open temp file");
    f.set_len(1500).expect("truncate");
    drop(f);
    let out = resumed_discarding(&server, KEY, &dest, &part_args());
    assert_file_is(&dest, &content, "after truncating the temp file");
    let r = reason(&out);
    assert!(r.contains("1500 bytes") && r.contains("4000"), "{r}");
}

#[test]
fn temp_file_extended_is_discarded_and_the_result_has_no_trailing_bytes() {
    let (server, content, _dir, dest) = interrupted();
    let mut bytes = std::fs::read(rgpart(&dest)).expect("temp file");
    bytes.extend_from_slice(&[0xEE; 777]);
    std::fs::write(rgpart(&dest), bytes).expect("extend");
    let out = resumed_discarding(&server, KEY, &dest, &part_args());
    assert_file_is(&dest, &content, "after extending the temp file");
    assert!(reason(&out).contains("4777 bytes"), "{}", reason(&out));
}

fn flip_in_part_1(dest: &Path) {
    let path = rgpart(dest);
    let mut bytes = std::fs::read(&path).expect("temp file");
    bytes[(PART + 123) as usize] ^= 0x10;
    std::fs::write(&path, bytes).expect("write temp file");
}

/// Part 1's range in the request log of the runs after `from_request`.
fn part_1_requests(server: &Server, after: u64) -> usize {
    server
        .gets(KEY)
        .iter()
        .filter(|r| r.number > after && range_of(r) == (PART..2 * PART))
        .count()
}

#[test]
fn byte_flipped_in_a_done_part_is_caught_by_verify_on_resume_and_only_that_part_refetched() {
    let (server, content, _dir, dest) = interrupted();
    flip_in_part_1(&dest);
    let before = server.emu.request_count();
    let out = server
        .get(KEY, &dest)
        .args(part_args())
        .arg("--verify-on-resume")
        .run();
    out.expect_ok();
    assert_file_is(&dest, &content, "after a flipped byte, --verify-on-resume");
    let damaged = out.must_event("parts_damaged");
    assert_eq!(damaged["parts"], serde_json::json!([1]), "{damaged}");
    assert!(
        damaged["reason"].as_str().unwrap_or("").contains("BLAKE3"),
        "{damaged}"
    );
    assert_eq!(
        out.num("started", "parts_reused"),
        1,
        "only part 0 is reused"
    );
    assert_eq!(out.num("completed", "fetched_bytes"), 3 * PART);
    assert_eq!(part_1_requests(&server, before), 1);
}

#[test]
fn byte_flipped_in_a_done_part_is_caught_by_the_end_to_end_crc_without_verify_on_resume() {
    let (server, content, _dir, dest) = interrupted();
    flip_in_part_1(&dest);
    let before = server.emu.request_count();
    let out = server.get(KEY, &dest).args(part_args()).run();
    out.expect_ok();
    assert_file_is(&dest, &content, "after a flipped byte, CRC-64 check");
    let damaged = out.must_event("parts_damaged");
    assert_eq!(damaged["parts"], serde_json::json!([1]), "{damaged}");
    assert!(
        damaged["reason"].as_str().unwrap_or("").contains("CRC-64"),
        "{damaged}"
    );
    assert_eq!(out.completed()["crc64_verified"], true);
    assert_eq!(part_1_requests(&server, before), 1);
}

#[test]
fn existing_dest_is_kept_intact_through_failure_and_crash_and_replaced_only_on_success() {
    let server = Server::start();
    let content = data(9, 64 << 10);
    server.put(KEY, &content);
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("precious.bin");
    let precious = b"the user's own file, not to be lost".to_vec();
    std::fs::write(&dest, &precious).expect("write DEST");
    let args = ["--part-size".to_string(), "4096".to_string()];

    // A failure mid-download.
    stop_after_parts(&server, KEY, &server.get(KEY, &dest).args(args.clone()), 3);
    assert_file_is(&dest, &precious, "DEST after a failed download");

    // A crash mid-download.
    server.set_faults(FaultPlan::new(0).rule(FaultRule::on(
        "GET",
        KEY,
        Fault::Throttle {
            bytes_per_second: 16 << 10,
        },
    )));
    let mut p = server.get(KEY, &dest).args(args.clone()).spawn();
    p.wait_event("part_done", Duration::from_secs(60))
        .expect("a part is done before the kill");
    p.kill();
    let out = p.finish();
    assert_eq!(out.code(), None, "killed");
    assert_file_is(&dest, &precious, "DEST after a crash");
    server.emu.clear_fault_plan();

    // Success replaces it in one rename.
    let out = server.get(KEY, &dest).args(args).run();
    out.expect_ok();
    assert!(out.num("started", "parts_reused") >= 3);
    assert_file_is(&dest, &content, "DEST after success");
    assert_eq!(listing(dir.path()).len(), 1, "{:?}", listing(dir.path()));
}

#[test]
fn second_download_into_the_same_dest_is_refused_and_the_first_is_unaffected() {
    let server = Server::start();
    let content = data(10, 2 << 20);
    server.put(KEY, &content);
    server.set_faults(FaultPlan::new(0).rule(FaultRule::on(
        "GET",
        KEY,
        Fault::Throttle {
            // Each of the first two parts takes 2 s: the first download is surely still
            // running while the second is refused. The plan is lifted afterwards.
            bytes_per_second: 32 << 10,
        },
    )));
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("shared.bin");
    let args = [
        "--part-size".to_string(),
        "64KiB".to_string(),
        "--jobs".to_string(),
        "2".to_string(),
    ];
    let mut first = server.get(KEY, &dest).args(args.clone()).spawn();
    first
        .wait_event("started", Duration::from_secs(60))
        .expect("first download starts");

    // Same DEST, same object; and same DEST with a checkpoint elsewhere.
    let cp_dir = tempfile::tempdir().expect("tempdir");
    for extra in [
        vec![],
        vec!["--checkpoint-dir".into(), cp_dir.path().into()],
    ] {
        let second = server
            .get(KEY, &dest)
            .args(args.clone())
            .args::<_, std::ffi::OsString>(extra)
            // Other credentials, so the server's log tells its requests apart.
            .env("OSS_ACCESS_KEY_ID", STS_AK)
            .env("OSS_ACCESS_KEY_SECRET", STS_SK)
            .env("OSS_SESSION_TOKEN", STS_TOKEN)
            .run();
        second
            .expect_code(EXIT_LOCAL_IO)
            .expect_stderr(&["another download into", "is running"]);
        assert!(
            !first.exited(),
            "the first download must still be running (make it slower)"
        );
    }
    assert!(
        listing(cp_dir.path()).is_empty(),
        "the refused download wrote a checkpoint"
    );
    assert!(
        server
            .emu
            .request_log()
            .iter()
            .all(|r| r.access_key_id.as_deref() != Some(STS_AK)),
        "the refused downloads sent no request at all (the lock comes first)"
    );
    server.emu.clear_fault_plan();
    let out = first.finish();
    out.expect_ok();
    assert_file_is(&dest, &content, "the first download");
    assert_eq!(
        out.num("completed", "fetched_bytes"),
        content.len() as u64,
        "the first download fetched every byte exactly once"
    );
}
