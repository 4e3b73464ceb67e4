//! http(s):// sources as they exist in the wild (issue 14), through the binary: nginx
//! (presigned-looking queries, a redirect from another server block), Apache httpd (a weak
//! ETag right after a change), Caddy (HTTPS with a private CA, HTTP/2), lighttpd, Python's
//! `http.server` (no Range), presigned OSS URLs (V1 and V4) from the emulator, whose GET
//! signature refuses HEAD, an expired URL resumed with a newly signed one, and the in-test
//! origin for HEAD refusal, published digests, servers without validators and secrets.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backend_oss::{Credentials, SignableRequest, Signer};
use serde_json::Value;
use test_support::origin::{Object, Origin, Route};

use crate::common::*;
use crate::web_servers;

const NO_RANGES: &str = "server does not support ranges: one connection, resumes from the start";
const PASSWORD: &str = "PASSW-http-71c9";
const SIGNATURE: &str = "SIG-http-2b8e44";
const HEADER_TOKEN: &str = "TOKEN-http-5d0a";

fn get(url: &str, dest: &Path, extra: &[&str]) -> Outcome {
    run(
        bare_cmd().arg("--json").args(extra).arg(url).arg(dest),
        &format!("resume-get {url}"),
    )
}

#[track_caller]
fn assert_ok(out: &Outcome, dest: &Path, bytes: &[u8]) -> Value {
    out.expect_code(0);
    assert_file(dest, bytes, &out.what);
    out.event("completed")
}

fn warnings(out: &Outcome) -> Vec<String> {
    out.events()
        .iter()
        .filter(|e| e["event"] == "warning")
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Real servers

#[test]
fn nginx_serves_signed_looking_queries_verbatim_and_a_redirect_from_another_server_block() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("new")).unwrap();
    let bytes = data(3 << 20, 141);
    std::fs::write(root.join("new/f.bin"), &bytes).unwrap();
    let redirector = test_support::free_port();
    let http = format!(
        "    server {{ listen 127.0.0.1:{redirector}; location / {{ return 302 http://127.0.0.1:$PORT/new$request_uri; }} }}"
    );
    // The redirecting block needs the main port, known only once nginx picked it: nginx
    // is started on a port chosen here instead.
    let port = test_support::free_port();
    let http = http.replace("$PORT", &port.to_string());
    let server = format!("        root {};", root.display());
    let (addr, _nginx) = start_nginx_on(dir.path(), &http, &server, port);
    let out_dir = tempfile::tempdir().unwrap();

    // A query with signature-like parameters and encodings nginx ignores: sent verbatim.
    let url = format!(
        "http://{addr}/new/f.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature={SIGNATURE}&v=a%2Fb+c"
    );
    let out = get(&url, out_dir.path(), &["--part-size", "1MiB"]);
    let done = assert_ok(&out, &out_dir.path().join("f.bin"), &bytes);
    assert_eq!(done["parts"], 3);
    assert!(!out.stdout.contains(SIGNATURE) && !out.stderr.contains(SIGNATURE));

    // http://127.0.0.1:REDIRECTOR/f.bin → 302 → http://127.0.0.1:PORT/new/f.bin.
    let dest = out_dir.path().join("via-redirect.bin");
    let out = get(
        &format!("http://127.0.0.1:{redirector}/f.bin"),
        &dest,
        &["--part-size", "1MiB"],
    );
    assert_ok(&out, &dest, &bytes);
}

/// `test_support::start_nginx` picks its own port; this variant takes one, so another server
/// block can point at it.
fn start_nginx_on(
    dir: &Path,
    http: &str,
    server: &str,
    port: u16,
) -> (std::net::SocketAddr, test_support::ChildGuard) {
    // start_nginx writes `listen 127.0.0.1:<free port>`; rewrite its config to `port`.
    let (addr, guard) = test_support::start_nginx(dir, http, server)
        .unwrap_or_else(|e| panic!("{e}. These tests need nginx and do not skip."));
    drop(guard);
    let conf_path = dir.join("nginx.conf");
    let conf = std::fs::read_to_string(&conf_path).unwrap().replace(
        &format!("listen 127.0.0.1:{};", addr.port()),
        &format!("listen 127.0.0.1:{port};"),
    );
    std::fs::write(&conf_path, conf).unwrap();
    let nginx = test_support::find_program("nginx").unwrap();
    let guard = test_support::ChildGuard::spawn(
        std::process::Command::new(nginx)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.join("error.log")),
        "nginx",
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    test_support::wait_for_port(addr, Duration::from_secs(20), "nginx");
    (addr, guard)
}

#[test]
fn apache_with_a_weak_etag_right_after_a_change_downloads_without_if_match() {
    let apache = web_servers::apache();
    let bytes = data(2 << 20, 142);
    // Written just now: Apache marks the ETag weak for a second (checked: the download
    // faces exactly that).
    apache.put("fresh.bin", &bytes);
    let etag = raw_head_etag(&apache.base, "/fresh.bin");
    assert!(etag.starts_with("W/\""), "Apache sent {etag:?}");
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("fresh.bin");
    let out = get(&apache.url("fresh.bin"), &dest, &["--part-size", "512KiB"]);
    let done = assert_ok(&out, &dest, &bytes);
    assert_eq!(done["parts"], 4);
    assert_eq!(done["retries"], 0, "no 412 retried: {}", out.stdout);
    assert_eq!(done["restarts"], 0);
}

/// The ETag of a HEAD, sent by hand over one connection.
fn raw_head_etag(base: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "HEAD {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut head = String::new();
    conn.read_to_string(&mut head).unwrap();
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("etag").then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no ETag in {head:?}"))
}

#[test]
fn caddy_over_https_with_a_private_ca_speaks_http2_and_downloads() {
    let caddy = web_servers::caddy();
    let bytes = data(3 << 20, 143);
    caddy.put("tls.bin", &bytes);
    let ca = web_servers::caddy_root_ca(&caddy);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("tls.bin");

    // Without the CA the certificate is not trusted: said, with what to do, not retried.
    let out = get(&caddy.url("tls.bin"), &dest, &[]);
    out.expect_code(1).stderr_has(&["not trusted", "--cacert"]);

    let ca_arg = ca.to_string_lossy().into_owned();
    let out = get(
        &caddy.url("tls.bin"),
        &dest,
        &["--cacert", &ca_arg, "--part-size", "1MiB"],
    );
    assert_ok(&out, &dest, &bytes);
    let log = std::fs::read_to_string(caddy.dir.join("access.log")).unwrap_or_default();
    let ranged: Vec<&str> = log.lines().filter(|l| l.contains("\"Range\"")).collect();
    assert!(!ranged.is_empty(), "no ranged request logged:\n{log}");
    assert!(
        ranged.iter().all(|l| l.contains("\"proto\":\"HTTP/2.0\"")),
        "every part over HTTP/2:\n{log}"
    );
}

#[test]
fn lighttpd_downloads_in_parts() {
    let server = web_servers::lighttpd();
    let bytes = data((2 << 20) + 123, 144);
    server.put("l.bin", &bytes);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("l.bin");
    let out = get(&server.url("l.bin"), &dest, &["--part-size", "1MiB"]);
    let done = assert_ok(&out, &dest, &bytes);
    assert_eq!(done["parts"], 3);
}

#[test]
fn python_http_server_without_range_is_one_stream_said_once() {
    let server = web_servers::python_http_server();
    let bytes = data(3 << 20, 145);
    server.put("p.bin", &bytes);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("p.bin");
    let out = get(&server.url("p.bin"), &dest, &["--part-size", "1MiB"]);
    let done = assert_ok(&out, &dest, &bytes);
    assert_eq!(done["parts"], 1);
    assert_eq!(warnings(&out), vec![NO_RANGES.to_owned()]);
    assert_eq!(done["warnings"], serde_json::json!([NO_RANGES]));

    // On a terminal-less stderr the warning is one line, once.
    std::fs::remove_file(&dest).unwrap();
    let out = run(
        bare_cmd()
            .args(["--part-size", "1MiB"])
            .arg(server.url("p.bin"))
            .arg(&dest),
        "python http.server, human output",
    );
    out.expect_code(0);
    assert_eq!(out.stderr.matches(NO_RANGES).count(), 1, "{}", out.stderr);
    assert_file(&dest, &bytes, "python http.server");
}

// ---------------------------------------------------------------------------------------
// Presigned OSS URLs from the emulator

fn presign(oss: &Oss, signer: &Signer, key: &str, expires: Duration) -> String {
    let creds = Credentials::new(KEY_ID, SECRET);
    let req = SignableRequest::new("GET", Some(BUCKET), Some(key));
    let q = signer
        .presign(&creds, &req, SystemTime::now(), expires)
        .expect("presign");
    format!(
        "{}/{BUCKET}/{key}?{}",
        oss.emu.endpoint(),
        q.to_query_string()
    )
}

#[test]
fn presigned_oss_urls_v1_and_v4_download_though_their_signature_refuses_head() {
    let oss = Oss::start();
    let bytes = oss.put("shared/p.bin", 3 << 20, 146);
    for (name, signer) in [
        ("v1", Signer::v1()),
        ("v4", Signer::v4("cn-hangzhou").unwrap()),
    ] {
        let url = presign(&oss, &signer, "shared/p.bin", Duration::from_secs(3600));
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("p.bin");
        let before = oss.emu.request_log().len();
        let out = get(&url, &dest, &["--part-size", "1MiB", "-vv"]);
        let done = assert_ok(&out, &dest, &bytes);
        assert_eq!(done["parts"], 3, "{name}");
        // The request log (issue 19, item 13): one line per request the server saw, with its
        // method, status and request id; the refused HEAD included.
        let seen = oss.emu.request_log()[before..].to_vec();
        let lines: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.contains("resume_get::request:") && l.contains(" INFO "))
            .collect();
        assert_eq!(lines.len(), seen.len(), "{name}: {seen:?}\n{}", out.stderr);
        for r in &seen {
            let status = r.status.expect("answered");
            assert!(
                lines.iter().any(|l| l.contains(&format!(" {} ", r.method))
                    && l.contains(&format!(" {status}"))
                    && l.contains(&format!("request_id=\"{}\"", r.request_id))),
                "{name}: no line for {r:?}\n{}",
                out.stderr
            );
        }
        // The emulator's CRC-64 header is OSS's, not HTTP's: nothing HTTP publishes here.
        let secret_part = url
            .split("ignature=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        assert!(
            !out.stdout.contains(secret_part) && !out.stderr.contains(secret_part),
            "{name}: the signature was printed:\n{}",
            out.stderr
        );
    }
    let log = oss.emu.request_log();
    let heads = log.iter().filter(|r| r.method == "HEAD").count();
    assert!(heads >= 2, "HEAD was tried: {log:?}");
    assert!(
        log.iter()
            .filter(|r| r.method == "HEAD")
            .all(|r| r.status == Some(403))
    );
    assert!(
        log.iter()
            .filter(|r| r.method == "GET")
            .all(|r| r.status.is_some_and(|s| s < 300))
    );
}

#[test]
fn an_expired_presigned_url_is_explained_and_a_newly_signed_one_resumes() {
    let oss = Oss::start();
    let bytes = oss.put("big/e.bin", 4 << 20, 147);
    oss.throttle_gets(1 << 20);
    let signer = Signer::v4("cn-hangzhou").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("e.bin");

    // Valid for 3 s: killed once the first part is done.
    let url = presign(&oss, &signer, "big/e.bin", Duration::from_secs(3));
    let expires = SystemTime::now() + Duration::from_secs(3);
    let mut running = Running::spawn(
        bare_cmd()
            .args(["--json", "--part-size", "512KiB", "--jobs", "1"])
            .arg(&url)
            .arg(&dest),
        "presigned, killed",
    );
    running.wait_for_line(Duration::from_secs(60), |l| l.contains("\"part_done\""));
    drop(running); // SIGKILL
    // Wait (bounded) until the URL has expired.
    for _ in 0..400 {
        if SystemTime::now() > expires + Duration::from_secs(1) {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(SystemTime::now() > expires, "the URL should have expired");

    // The old URL: refused, and the message says exactly why and what to do.
    let out = get(&url, &dest, &[]);
    out.expect_code(4)
        .stderr_has(&["presigned URL expired at", "newly signed URL"]);
    assert!(out.stderr.contains("saved: "), "{}", out.stderr);

    // A newly signed URL of the same object: the same command line resumes.
    oss.emu.clear_fault_plan();
    let fresh = presign(&oss, &signer, "big/e.bin", Duration::from_secs(3600));
    let out = get(&fresh, &dest, &["--part-size", "512KiB", "--jobs", "1"]);
    let done = assert_ok(&out, &dest, &bytes);
    assert!(u(&done["parts_reused"]) > 0, "{done}");
}

// ---------------------------------------------------------------------------------------
// The in-test origin: what real servers do only sometimes

#[test]
fn a_head_refusing_server_is_stat_by_get_and_its_first_bytes_are_kept() {
    let origin = Origin::start();
    let bytes = data(1 << 20, 148);
    origin.route(
        "/h.bin",
        Route::Object(Object {
            body: bytes.clone(),
            etag: Some("\"h1\"".into()),
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(1_600_000_000)),
            refuse_head: Some(405),
            ..Object::default()
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("h.bin");
    let out = get(&origin.url("/h.bin"), &dest, &["--part-size", "256KiB"]);
    assert_ok(&out, &dest, &bytes);
    let gets: Vec<String> = origin
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.header("range").unwrap_or("").to_owned())
        .collect();
    assert!(
        !gets.contains(&"bytes=0-262143".to_owned()),
        "part 0 came from the GET that learned the size: {gets:?}"
    );
    assert_eq!(
        gets.iter().filter(|r| *r == "bytes=0-").count(),
        2,
        "{gets:?}"
    );
}

#[test]
fn a_server_without_validators_is_pinned_by_size_with_a_warning() {
    let origin = Origin::start();
    let bytes = data(600_000, 149);
    origin.route(
        "/plain.bin",
        Route::Object(Object {
            body: bytes.clone(),
            ..Object::default()
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("plain.bin");
    let out = get(&origin.url("/plain.bin"), &dest, &["--part-size", "256KiB"]);
    let done = assert_ok(&out, &dest, &bytes);
    let w = warnings(&out);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("pinned only by the object's size"), "{w:?}");
    assert_eq!(done["warnings"].as_array().unwrap().len(), 1);
}

#[test]
fn repr_digest_verifies_and_the_last_line_says_so() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let origin = Origin::start();
    let bytes = data(700_000, 150);
    let sha = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&bytes));
    origin.route(
        "/d.bin",
        Route::Object(Object {
            body: bytes.clone(),
            etag: Some("\"d\"".into()),
            headers: vec![("repr-digest".into(), format!("sha-256=:{sha}:"))],
            ..Object::default()
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("d.bin");
    let out = run(
        bare_cmd()
            .args(["--part-size", "256KiB"])
            .arg(origin.url("/d.bin"))
            .arg(&dest),
        "Repr-Digest",
    );
    out.expect_code(0);
    assert_file(&dest, &bytes, "Repr-Digest");
    let last = out.stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.contains("SHA-256") && last.contains("HTTP Repr-Digest"),
        "{}",
        out.stderr
    );

    // One flipped bit in the published digest: exit 6, DEST not written.
    let mut wrong = sha2::Sha256::digest(&bytes).to_vec();
    wrong[0] ^= 1;
    let wrong = base64::engine::general_purpose::STANDARD.encode(wrong);
    origin.update("/d.bin", |o| {
        o.headers = vec![("repr-digest".into(), format!("sha-256=:{wrong}:"))];
    });
    let dest = dir.path().join("bad.bin");
    let out = get(&origin.url("/d.bin"), &dest, &["--part-size", "256KiB"]);
    out.expect_code(6).stderr_has(&["SHA-256"]);
    assert!(!dest.exists());
}

/// Panics if any of `secrets` is in the output or in any file in `dir`.
#[track_caller]
fn assert_no_secrets(secrets: &[String], stdout: &str, stderr: &str, dir: &Path, what: &str) {
    for secret in secrets {
        assert!(
            !stdout.contains(secret.as_str()) && !stderr.contains(secret.as_str()),
            "{what}: {secret} printed\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let content = std::fs::read(&p).unwrap();
            assert!(
                !content
                    .windows(secret.len())
                    .any(|w| w == secret.as_bytes()),
                "{what}: {secret} in {}",
                p.display()
            );
        }
    }
}

#[test]
fn secrets_in_http_urls_and_headers_never_appear_in_output_or_files() {
    let origin = Origin::start();
    let bytes = data(1 << 20, 151);
    // Every kind of signing parameter the issue names, each with its own secret value.
    let names = [
        "Signature",
        "x-oss-signature",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "X-Goog-Signature",
        "sig",
        "security-token",
    ];
    let secrets: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, _)| format!("{SIGNATURE}-{i}"))
        .chain([PASSWORD.to_owned(), HEADER_TOKEN.to_owned()])
        .collect();
    let query = names
        .iter()
        .zip(&secrets)
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
        + "&part=1";
    origin.route(
        "/s.bin",
        Route::Object(Object {
            body: bytes.clone(),
            etag: Some("\"s\"".into()),
            require_query: Some(query.clone()),
            bytes_per_second: Some(512 * 1024),
            ..Object::default()
        }),
    );
    let url = format!("http://alice:{PASSWORD}@{}/s.bin?{query}", origin.addr);
    let auth = format!("Authorization: Bearer {HEADER_TOKEN}");
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("s.bin");
    let cmd = |json: bool| {
        let mut cmd = bare_cmd();
        cmd.env("RUST_LOG", "trace")
            .args([
                "-vvv",
                "--retries",
                "2",
                "--part-size",
                "128KiB",
                "--jobs",
                "1",
            ])
            .args(["--header", &auth])
            .arg(&url)
            .arg(&dest);
        if json {
            cmd.arg("--json");
        }
        cmd
    };

    // Killed mid-download: the checkpoint and temp file hold no secret.
    let mut running = Running::spawn(&mut cmd(true), "secrets, killed");
    running.wait_for_line(Duration::from_secs(60), |l| l.contains("\"part_done\""));
    let partial = running.stderr_so_far();
    drop(running);
    assert!(dir.path().join("s.bin.rgcp").exists());
    assert_no_secrets(&secrets, "", &partial, dir.path(), "killed");

    // Resumed to the end, at trace level.
    origin.update("/s.bin", |o| o.bytes_per_second = None);
    let out = run(&mut cmd(true), "secrets, resumed");
    let done = assert_ok(&out, &dest, &bytes);
    assert!(u(&done["parts_reused"]) > 0, "{done}");
    assert_no_secrets(&secrets, &out.stdout, &out.stderr, dir.path(), "resumed");

    // A failure (the server now refuses), human output.
    std::fs::remove_file(&dest).unwrap();
    origin.route("/s.bin", Route::Gone(403));
    let out = run(&mut cmd(false), "secrets, refused");
    out.expect_code(4);
    assert!(out.stderr.contains("<redacted>"), "{}", out.stderr);
    assert_no_secrets(&secrets, &out.stdout, &out.stderr, dir.path(), "refused");

    // The password went nowhere: the explicit Authorization header wins, as in curl.
    let seen = origin.requests();
    assert!(
        seen.iter()
            .all(|r| r.header("authorization") == Some(&format!("Bearer {HEADER_TOKEN}")))
    );
}

#[test]
fn netrc_user_agent_and_headers_reach_the_server_and_parts_share_one_connection() {
    use base64::Engine as _;
    let origin = Origin::start();
    let bytes = data(1 << 20, 152);
    origin.route(
        "/n.bin",
        Route::Object(Object {
            body: bytes.clone(),
            etag: Some("\"n\"".into()),
            ..Object::default()
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let netrc = dir.path().join("netrc");
    std::fs::write(
        &netrc,
        format!("machine example.org login x password y\nmachine 127.0.0.1 login bob password {PASSWORD}\n"),
    )
    .unwrap();
    let dest = dir.path().join("n.bin");
    let out = run(
        bare_cmd()
            .env("NETRC", &netrc)
            .args(["--json", "-vv", "--netrc", "--user-agent", "tester/1.0"])
            .args(["-H", "X-A: 1", "--header", "X-B: two words"])
            .args(["--part-size", "128KiB", "--jobs", "1"])
            .arg(origin.url("/n.bin"))
            .arg(&dest),
        "netrc",
    );
    let done = assert_ok(&out, &dest, &bytes);
    assert_eq!(done["parts"], 8);
    assert!(!out.stderr.contains(PASSWORD), "{}", out.stderr);
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("bob:{PASSWORD}"))
    );
    let seen = origin.requests();
    assert_eq!(
        seen.len(),
        1 + 8 + 1,
        "HEAD, 8 parts, HEAD before the rename"
    );
    for r in &seen {
        assert_eq!(r.header("authorization"), Some(basic.as_str()), "{r:?}");
        assert_eq!(r.header("user-agent"), Some("tester/1.0"));
        assert_eq!(
            (r.header("x-a"), r.header("x-b")),
            (Some("1"), Some("two words"))
        );
    }
    // Keep-alive: connections are reused across parts. (Not always exactly one: a part's
    // request may leave before the previous part's connection is back in the pool.)
    let mut used: Vec<usize> = seen.iter().map(|r| r.connection).collect();
    used.dedup();
    assert!(
        used.len() <= seen.len() / 2,
        "connections per request: {used:?}"
    );
}
