//! `gs://` downloads through the binary against a real GCS server (PyPI
//! `gcp-storage-emulator`, behind test-support's `gcs::Shim`, which adds GCS's generation
//! checks and gzip handling the emulator leaves out): verified by the object's CRC-32C, a byte
//! flipped in flight is exit 6 naming CRC-32C and both values with DEST untouched, a run denied
//! partway and a run killed with SIGKILL both resume and verify, a transcoded body is refused,
//! `-vv` logs every JSON API request with the bearer token redacted, and the token never
//! appears in any output.

use std::process::Command;

use test_support::gcs::{Emulator, Shim};

use crate::common::{Outcome, Running, assert_file, bare_cmd, data, listing, names, run};

const TOKEN: &str = "ya29.cli-bearer-SECRET-5d2e8b";
const SIZE: usize = 7 * 50_000 + 1_234;
const PRECIOUS: &[u8] = b"precious older content";

fn gs_cmd(endpoint: &str) -> Command {
    let mut cmd = bare_cmd();
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("GOOGLE_") || k == "SERVICE_ACCOUNT" {
            cmd.env_remove(k);
        }
    }
    cmd.env("GOOGLE_BEARER_TOKEN", TOKEN)
        .args(["--endpoint", endpoint])
        .args(["--part-size", "50000", "--json"]);
    cmd
}

fn crc32c(v: &[u8]) -> String {
    format!(
        "{:08x}",
        crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, v)
    )
}

fn no_token(out: &Outcome) {
    assert!(
        !out.stdout.contains(TOKEN) && !out.stderr.contains(TOKEN),
        "{}: the bearer token was printed\nstdout:\n{}\nstderr:\n{}",
        out.what,
        out.stdout,
        out.stderr
    );
}

const VERIFIED: &str = "verified: CRC-32C + MD5 full-object (GCS)";

#[test]
fn gs_downloads_are_verified_resumed_after_a_kill_and_a_flipped_byte_exits_6() {
    let gcs = Emulator::start("sums");
    let shim = Shim::start(&gcs);
    let content = data(SIZE, 501);
    gcs.put("dir/obj.bin", &content);
    let url = "gs://sums/dir/obj.bin";

    // Fresh, with -vv: verified; every JSON API request is one line, the token redacted.
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("fresh.bin");
    let out = run(gs_cmd(&shim.url()).arg("-vv").arg(url).arg(&dest), "fresh");
    out.expect_code(0);
    no_token(&out);
    assert_file(&dest, &content, "fresh");
    let done = out.event("completed");
    assert_eq!(done["verification"], VERIFIED, "{done}");
    let base = format!("{}/storage/v1/b/sums/o/dir%2Fobj%2Ebin", shim.url());
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("resume_get::request:") && l.contains(" INFO "))
        .collect();
    assert!(
        lines.iter().any(|l| l.contains(&format!("GET {base} 200"))),
        "no metadata line:\n{}",
        out.stderr
    );
    let reads = lines
        .iter()
        .filter(|l| {
            l.contains(&format!("GET {base}?alt=media&ifGenerationMatch=")) && l.contains(" 206 ")
        })
        .count();
    assert_eq!(reads, 8, "one line per part:\n{}", out.stderr);
    assert_eq!(
        lines.len(),
        shim.requests()
            .iter()
            .filter(|l| !l.starts_with("authorization:"))
            .count(),
        "one line per request the server saw:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("> authorization: <redacted>"),
        "{}",
        out.stderr
    );
    assert!(
        shim.requests()
            .iter()
            .any(|l| l == &format!("authorization: Bearer {TOKEN}")),
        "the token was sent"
    );

    // A byte flipped in flight: exit 6 naming CRC-32C and both values, DEST untouched.
    let dest = dir.path().join("precious.bin");
    std::fs::write(&dest, PRECIOUS).unwrap();
    shim.flip(true);
    let out = run(gs_cmd(&shim.url()).arg(url).arg(&dest), "flipped");
    shim.flip(false);
    let mut bad = content.clone();
    bad[100] ^= 0x01;
    out.expect_code(6).stderr_has(&[
        "CRC-32C",
        "the store (GCS",
        &crc32c(&content),
        &crc32c(&bad),
    ]);
    no_token(&out);
    assert_file(&dest, PRECIOUS, "flipped");

    // Denied after two parts: exit 4, progress kept; the same command resumes and verifies.
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("resumed.bin");
    shim.deny_after(2);
    let out = run(
        gs_cmd(&shim.url())
            .args(["--jobs", "1"])
            .arg(url)
            .arg(&dest),
        "denied",
    );
    out.expect_code(4);
    no_token(&out);
    assert_eq!(
        listing(dir.path()),
        names(&["resumed.bin.rgcp", "resumed.bin.rgpart"])
    );
    shim.deny_after(u64::MAX);
    let out = run(gs_cmd(&shim.url()).arg(url).arg(&dest), "resumed");
    out.expect_code(0);
    no_token(&out);
    assert_file(&dest, &content, "resumed");
    let done = out.event("completed");
    assert_eq!(done["verification"], VERIFIED, "{done}");
    assert_eq!(done["parts_reused"], 2, "{done}");

    // Killed (SIGKILL) after two parts: the same command resumes and verifies.
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("killed.bin");
    let first = Running::spawn(
        gs_cmd(&shim.url())
            .args(["--jobs", "1", "--limit-rate", "100KiB"])
            .arg(url)
            .arg(&dest),
        "to be killed",
    )
    .kill_after_parts(2);
    assert_eq!(first.code, None, "killed by the signal");
    no_token(&first);
    let out = run(gs_cmd(&shim.url()).arg(url).arg(&dest), "after the kill");
    out.expect_code(0);
    no_token(&out);
    assert_file(&dest, &content, "after the kill");
    let done = out.event("completed");
    assert_eq!(done["verification"], VERIFIED, "{done}");
    assert!(done["parts_reused"].as_u64().unwrap() >= 2, "{done}");
    assert_eq!(listing(dir.path()), names(&["killed.bin"]));
}

#[test]
fn a_gzip_stored_object_is_downloaded_as_stored_and_a_transcoded_body_exits_1() {
    let gcs = Emulator::start("gz");
    let shim = Shim::start(&gcs);
    let stored = data(120_000, 511);
    gcs.put("site/page.html", &stored);
    gcs.patch("site/page.html", r#"{"contentEncoding": "gzip"}"#);
    let url = "gs://gz/site/page.html";
    let dir = tempfile::tempdir().unwrap();

    let dest = dir.path().join("stored.html.gz");
    let out = run(gs_cmd(&shim.url()).arg(url).arg(&dest), "stored");
    out.expect_code(0);
    assert_file(&dest, &stored, "stored");
    assert_eq!(out.event("completed")["verification"], VERIFIED);

    shim.transcode(Some(data(300_000, 512)));
    let dest = dir.path().join("page.html");
    std::fs::write(&dest, PRECIOUS).unwrap();
    let out = run(gs_cmd(&shim.url()).arg(url).arg(&dest), "transcoded");
    out.expect_code(1)
        .stderr_has(&["transcoded", "\"gzip\"", "site/page.html"]);
    no_token(&out);
    assert_file(&dest, PRECIOUS, "transcoded");
}

/// `-r gs://`: the JSON API listing gives each object's generation and CRC-32C, so every
/// object is read pinned and verified without a stat of its own; the tree is byte-identical.
#[test]
fn a_gs_prefix_is_copied_verified_from_its_listing_alone() {
    let gcs = Emulator::start("tree");
    let shim = Shim::start(&gcs);
    let mut want = Vec::new();
    for (i, key) in ["p/a.bin", "p/sub/b.bin", "p/sub/deeper/c d.bin"]
        .iter()
        .enumerate()
    {
        let bytes = data(60_000 + i * 70_000, 520 + i as u64);
        gcs.put(key, &bytes);
        want.push((key.strip_prefix("p/").unwrap(), bytes));
    }
    gcs.put("other/x.bin", b"not under the prefix");
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = run(
        gs_cmd(&shim.url())
            .args(["-r", "-v", "--jobs", "4"])
            .arg("gs://tree/p/")
            .arg(&out_dir),
        "-r gs://",
    );
    out.expect_code(0);
    no_token(&out);
    for (rel, bytes) in &want {
        assert_file(&out_dir.join(rel), bytes, rel);
    }
    let done = out
        .events()
        .into_iter()
        .filter(|e| e["event"] == "object_done")
        .count();
    assert_eq!(done, 3, "{}", out.stdout);
    // One listing request, no metadata GET per object: the listing pinned the reads.
    let requests = shim.requests();
    let lists = requests
        .iter()
        .filter(|l| l.starts_with("GET /storage/v1/b/tree/o?"))
        .count();
    let stats = requests
        .iter()
        .filter(|l| l.starts_with("GET /storage/v1/b/tree/o/") && !l.contains("alt=media"))
        .count();
    assert_eq!((lists, stats), (1, 0), "{requests:?}");

    // Verified from the listing's CRC-32C: a byte flipped in flight fails each object.
    shim.flip(true);
    let out = run(
        gs_cmd(&shim.url())
            .arg("-r")
            .arg("gs://tree/p/")
            .arg(dir.path().join("flipped")),
        "-r gs:// flipped",
    );
    out.expect_code(9).stderr_has(&["3 object(s) failed"]);
    no_token(&out);
    let jobs = dir.path().join("flipped/.resume-get");
    let failures: String = std::fs::read_dir(&jobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".failures.jsonl"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    for needle in ["CRC-32C", "the store (GCS", "p/a.bin", "p/sub/b.bin"] {
        assert!(failures.contains(needle), "{needle}: {failures}");
    }
    assert!(!failures.contains(TOKEN));
}
