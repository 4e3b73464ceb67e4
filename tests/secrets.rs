//! Secrets never leak: scenarios run with `-vv` and `RUST_LOG=trace` (every log line the tool
//! and its HTTP stack can produce), in JSON and human output, succeeding, retrying, failing,
//! interrupted, with long-lived keys and STS tokens, V1 and V4 signatures. Neither the secret
//! key nor the STS token (nor a wrong secret given by mistake) may appear, raw or
//! URL-encoded, in stdout, stderr, or any file the tool leaves behind (checkpoint included).

use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e_tests::support::*;

const KEY: &str = "secret/object.bin";
const WRONG_SECRET: &str = "e2eWRONGsecret-55aa33cc";

/// Every form a secret could take in text: raw, and percent-encoded as in a URL query (a
/// presigned URL or a debug print of a request could carry it that way).
fn forms(secret: &str) -> Vec<String> {
    let encoded: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let mut v = vec![secret.to_owned(), encoded];
    v.sort();
    v.dedup();
    v
}

fn secrets() -> Vec<String> {
    [SK, STS_SK, STS_TOKEN, WRONG_SECRET]
        .iter()
        .flat_map(|s| forms(s))
        .collect()
}

#[track_caller]
fn assert_clean_text(what: &str, text: &str) {
    for s in secrets() {
        assert!(
            !text.contains(&s),
            "{what} contains a secret ({} chars)",
            s.len()
        );
    }
}

/// Every file under `dir` (recursively), as bytes.
#[track_caller]
fn assert_clean_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("list") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let bytes = std::fs::read(&p).expect("read");
            for s in secrets() {
                assert!(
                    !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                    "{} contains a secret",
                    p.display()
                );
            }
            n += 1;
        }
    }
    n
}

#[derive(Debug, Clone, Copy)]
enum Creds {
    Key,
    Sts,
    Wrong,
}

fn with(g: Get, creds: Creds, sig: &str, json: bool) -> Get {
    let g = g
        .args(["-vv", "--signature", sig])
        .env("RUST_LOG", "trace")
        .timeout(Duration::from_secs(60));
    let g = if json { g } else { g.plain().arg("--progress") };
    match creds {
        Creds::Key => g,
        Creds::Sts => g
            .env("OSS_ACCESS_KEY_ID", STS_AK)
            .env("OSS_ACCESS_KEY_SECRET", STS_SK)
            .env("OSS_SESSION_TOKEN", STS_TOKEN),
        Creds::Wrong => g.env("OSS_ACCESS_KEY_SECRET", WRONG_SECRET),
    }
}

struct Scene {
    server: Server,
    dir: tempfile::TempDir,
    cp_dir: tempfile::TempDir,
}

impl Scene {
    fn new() -> Self {
        let server = Server::start();
        server.put(KEY, &data(31, 96 << 10));
        Self {
            server,
            dir: tempfile::tempdir().expect("tempdir"),
            cp_dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn dest(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn check(&self, label: &str, out: &Outcome) {
        assert_clean_text(&format!("{label}: stdout/stderr"), &out.all_output());
        assert_clean_files(self.dir.path());
        assert_clean_files(self.cp_dir.path());
    }
}

#[test]
fn no_secret_or_token_in_output_or_files_across_scenarios_with_trace_logging() {
    let sc = Scene::new();
    let mut runs = 0;
    let mut log_bytes = 0;
    for (i, (creds, sig, json)) in [
        (Creds::Key, "v4", true),
        (Creds::Key, "v1", false),
        (Creds::Sts, "v4", false),
        (Creds::Sts, "v1", true),
    ]
    .into_iter()
    .enumerate()
    {
        let label = format!("{creds:?} {sig} json={json}");
        let dest = sc.dest(&format!("ok-{i}.bin"));
        let base = || {
            with(
                sc.server
                    .get(KEY, &dest)
                    .args(["--part-size", "16KiB", "--jobs", "2"]),
                creds,
                sig,
                json,
            )
        };

        // Retries (503, a reset, a short body), then success.
        sc.server.set_faults(
            FaultPlan::new(i as u64)
                .rule(FaultRule::on("GET", KEY, Fault::slow_down()).nth(1))
                .rule(FaultRule::on("GET", KEY, Fault::ResetAfterBytes { bytes: 100 }).nth(2))
                .rule(FaultRule::on("GET", KEY, Fault::ShortBody { bytes: 100 }).nth(3)),
        );
        let out = base().run();
        out.expect_ok();
        assert!(
            out.stderr.contains("DEBUG") || out.stderr.contains("TRACE"),
            "{label}: trace logging is on"
        );
        sc.check(&format!("{label}, retries then success"), &out);
        log_bytes += out.all_output().len();
        runs += 1;
        std::fs::remove_file(&dest).expect("remove");

        // A failure mid-download (403 from the server, with its request id) leaves a
        // checkpoint: it must not hold a secret either.
        sc.server
            .set_faults(FaultPlan::new(0).rule(FaultRule::on("GET", KEY, denied()).nth(3)));
        let out = base()
            .args(["--checkpoint-dir"])
            .arg(sc.cp_dir.path())
            .run();
        out.expect_code(EXIT_DENIED);
        assert!(
            std::fs::read_dir(sc.cp_dir.path()).expect("list").count() == 1,
            "{label}: a checkpoint was left to inspect"
        );
        sc.check(&format!("{label}, 403 mid-download"), &out);
        log_bytes += out.all_output().len();
        runs += 1;

        // Interrupted (SIGINT) while running, then resumed.
        sc.server.set_faults(FaultPlan::new(0).rule(FaultRule::on(
            "GET",
            KEY,
            Fault::Throttle {
                bytes_per_second: 32 << 10,
            },
        )));
        let mut p = base()
            .args(["--checkpoint-dir"])
            .arg(sc.cp_dir.path())
            .spawn();
        let gets = sc.server.gets(KEY).len();
        wait_until(Duration::from_secs(30), "the first part request", || {
            sc.server.gets(KEY).len() > gets || p.exited()
        });
        p.interrupt();
        let out = p.finish();
        assert!(
            matches!(out.code(), Some(EXIT_INTERRUPTED) | Some(EXIT_OK)),
            "{label}: {:?}",
            out.status
        );
        sc.check(&format!("{label}, interrupted"), &out);
        sc.server.emu.clear_fault_plan();
        let out = base()
            .args(["--checkpoint-dir"])
            .arg(sc.cp_dir.path())
            .run();
        out.expect_ok();
        sc.check(&format!("{label}, resumed"), &out);
        log_bytes += out.all_output().len();
        runs += 2;
    }

    // A wrong secret: denied, and neither it nor the right one printed.
    for sig in ["v4", "v1"] {
        let out = with(
            sc.server.get(KEY, sc.dest("wrong.bin")),
            Creds::Wrong,
            sig,
            false,
        )
        .run();
        out.expect_code(EXIT_DENIED);
        sc.check(&format!("wrong secret {sig}"), &out);
        runs += 1;
    }
    // A missing token for STS credentials.
    let out = with(
        sc.server.get(KEY, sc.dest("sts.bin")),
        Creds::Sts,
        "v4",
        true,
    )
    .env_remove("OSS_SESSION_TOKEN")
    .run();
    out.expect_code(EXIT_DENIED);
    sc.check("STS key without its token", &out);
    runs += 1;

    eprintln!("secrets: {runs} runs, {log_bytes} bytes of -vv/trace output, no secret found");
}
