//! A GCS server for tests: PyPI `gcp-storage-emulator` on 127.0.0.1, and [`Shim`], a proxy in
//! front of it that adds what the emulator leaves out of GCS's download semantics.
//!
//! The emulator serves the JSON API (`objects.get` with `generation`, `crc32c`, `md5Hash`,
//! `contentEncoding`; `alt=media` with `Range`; `objects.list`) but ignores `generation` /
//! `ifGenerationMatch` on downloads, sends no `x-goog-generation`, and never transcodes. The
//! shim, for `alt=media` requests only, looks the object up first and then does what GCS does:
//! `412` when `ifGenerationMatch` is not the current generation, `x-goog-generation` on every
//! answer, and for an object stored with `Content-Encoding: gzip` the stored bytes with
//! `Content-Encoding: gzip` and `x-goog-stored-content-encoding: gzip` when the request says
//! `Accept-Encoding: gzip` — or, in [`Shim::transcode`] mode, the decompressed bytes the test
//! gives, whole, without `Content-Length` or `Content-Encoding`, as GCS's decompressive
//! transcoding does. It can also flip one byte of a body, refuse reads after a count, and
//! records every request line it relays. It is a [`Relay`] deciding every answer itself.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::relay::{self, Action, Relay};
use crate::{ChildGuard, free_port, python_with, wait_for_port};

/// The emulator release the GCS tests run against.
pub const GCS_EMULATOR: &str = "gcp-storage-emulator==2026.7.19";

/// `gcp-storage-emulator` on 127.0.0.1 (in memory, with one bucket), killed when dropped.
#[derive(Debug)]
pub struct Emulator {
    pub addr: SocketAddr,
    pub bucket: String,
    _guard: ChildGuard,
}

impl Emulator {
    /// Starts the emulator from the shared test venv (installed from PyPI on first use).
    pub fn start(bucket: &str) -> Self {
        let python: PathBuf = python_with(&[GCS_EMULATOR]);
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = Command::new(python);
        cmd.args(["-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1"])
            .args(["--port", &port.to_string(), "--in-memory", "-q"])
            .args(["--default-bucket", bucket])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let guard = ChildGuard::spawn(&mut cmd, "gcp-storage-emulator");
        wait_for_port(addr, Duration::from_secs(60), "gcp-storage-emulator");
        Self {
            addr,
            bucket: bucket.to_owned(),
            _guard: guard,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Uploads `body` as `key` (a media upload); returns the new generation.
    pub fn put(&self, key: &str, body: &[u8]) -> String {
        // The emulator fails a media upload without a body: an empty object is a multipart
        // upload (whose parser would not keep arbitrary bytes intact, so only for that).
        let (kind, content_type, payload) = if body.is_empty() {
            (
                "multipart",
                "multipart/related; boundary=rgb",
                b"--rgb\r\ncontent-type: application/json\r\n\r\n{}\r\n--rgb\r\n\
                  content-type: application/octet-stream\r\n\r\n\r\n--rgb--\r\n"
                    .to_vec(),
            )
        } else {
            ("media", "application/octet-stream", body.to_vec())
        };
        let target = format!(
            "/upload/storage/v1/b/{}/o?uploadType={kind}&name={}",
            self.bucket,
            encode(key)
        );
        let (status, answer) = request(
            self.addr,
            "POST",
            &target,
            &[("content-type", content_type)],
            &payload,
        );
        assert_eq!(
            status,
            200,
            "upload of {key}: {}",
            String::from_utf8_lossy(&answer)
        );
        field(&answer, "generation").expect("the upload's generation")
    }

    /// Sets metadata fields of `key` (a JSON object, e.g. `{"contentEncoding":"gzip"}`).
    pub fn patch(&self, key: &str, json: &str) {
        let target = format!("/storage/v1/b/{}/o/{}", self.bucket, encode(key));
        let (status, answer) = request(
            self.addr,
            "PATCH",
            &target,
            &[("content-type", "application/json")],
            json.as_bytes(),
        );
        assert_eq!(
            status,
            200,
            "patch of {key}: {}",
            String::from_utf8_lossy(&answer)
        );
    }

    /// The current generation of `key`, if it exists.
    pub fn generation(&self, key: &str) -> Option<String> {
        let target = format!("/storage/v1/b/{}/o/{}", self.bucket, encode(key));
        let (status, answer) = request(self.addr, "GET", &target, &[], b"");
        (status == 200)
            .then(|| field(&answer, "generation"))
            .flatten()
    }
}

/// Every byte but unreserved ones percent-encoded (a GCS object name in a path or query).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A string field of a flat JSON answer (`"name": "value"`), enough for the emulator's.
fn field(json: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(json);
    let at = text.find(&format!("\"{name}\": \""))? + name.len() + 5;
    let end = text[at..].find('"')?;
    Some(text[at..at + end].to_owned())
}

/// One HTTP/1.0 request to the emulator (which closes every connection): status and body.
fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut conn = TcpStream::connect(addr).expect("connect to the GCS emulator");
    let mut head = format!(
        "{method} {target} HTTP/1.0\r\nhost: {addr}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(body).unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).unwrap();
    let (status, _, body) = split_response(&answer).expect("an HTTP answer");
    (status, body.to_vec())
}

/// Status, header lines and body of a whole HTTP/1.x answer.
fn split_response(answer: &[u8]) -> Option<(u16, Vec<String>, &[u8])> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    Some((
        status,
        lines.map(str::to_owned).collect(),
        &answer[end + 4..],
    ))
}

/// A proxy giving the emulator GCS's download semantics (see the module docs).
#[derive(Debug)]
pub struct Shim {
    pub addr: SocketAddr,
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    upstream: SocketAddr,
    /// Flip the 101st byte of the body of media reads starting at byte 0.
    flip: AtomicBool,
    /// Answer 403 to media reads after this many.
    deny_after: AtomicU64,
    reads: AtomicU64,
    /// Serve these bytes, decompressed, for objects stored gzip (GCS's transcoding).
    transcoded: Mutex<Option<Vec<u8>>>,
    requests: Mutex<Vec<String>>,
}

impl Shim {
    pub fn start(emulator: &Emulator) -> Self {
        let state = Arc::new(State {
            upstream: emulator.addr,
            flip: AtomicBool::new(false),
            deny_after: AtomicU64::new(u64::MAX),
            reads: AtomicU64::new(0),
            transcoded: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
        });
        let shared = state.clone();
        let relay = Relay::start(emulator.addr, move |head| answer(&shared, head.raw()));
        Self {
            addr: relay.addr(),
            state,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Flip one byte (the 101st) of every media body that starts at byte 0.
    pub fn flip(&self, on: bool) {
        self.state.flip.store(on, Ordering::SeqCst);
    }

    /// Answer 403 to every media read after the first `n` (`u64::MAX`: never).
    pub fn deny_after(&self, n: u64) {
        self.state.reads.store(0, Ordering::SeqCst);
        self.state.deny_after.store(n, Ordering::SeqCst);
    }

    /// Transcode gzip-stored objects to `plain`, whatever the request says.
    pub fn transcode(&self, plain: Option<Vec<u8>>) {
        *self
            .state
            .transcoded
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = plain;
    }

    /// Every request line relayed so far (`GET /storage/v1/... HTTP/1.1`), and the
    /// `authorization` values seen as `authorization: <value>` lines.
    pub fn requests(&self) -> Vec<String> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What the shim answers to one request (see the module docs).
fn answer(state: &State, head: &[u8]) -> Action {
    let text = String::from_utf8_lossy(head).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    {
        let mut log = state
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        log.push(request_line.clone());
        for (k, v) in &headers {
            if k == "authorization" {
                log.push(format!("authorization: {v}"));
            }
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let target = request_line
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let answer = if target.contains("alt=media") {
        media_answer(
            state,
            head,
            &target,
            header("range"),
            header("accept-encoding"),
        )
    } else {
        forward(state.upstream, head)
    };
    match answer {
        Some(a) if a.close => Action::RespondThenClose(a.bytes()),
        Some(a) => Action::Respond(a.bytes()),
        None => Action::Close,
    }
}

struct Answer {
    status: u16,
    headers: Vec<String>,
    body: Vec<u8>,
    /// Close-delimited (no Content-Length).
    close: bool,
}

impl Answer {
    fn bytes(&self) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} X\r\n", self.status).into_bytes();
        for h in &self.headers {
            let name = h.split(':').next().unwrap_or_default().to_ascii_lowercase();
            if !["content-length", "connection"].contains(&name.as_str()) {
                out.extend_from_slice(h.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        if self.close {
            out.extend_from_slice(b"connection: close\r\n\r\n");
        } else {
            out.extend_from_slice(
                format!("content-length: {}\r\n\r\n", self.body.len()).as_bytes(),
            );
        }
        out.extend_from_slice(&self.body);
        out
    }
}

/// Relays the request as it is (one upstream connection each).
fn forward(upstream: SocketAddr, head: &[u8]) -> Option<Answer> {
    let raw = relay::forward(upstream, head).ok()?;
    let (status, headers, body) = split_response(&raw)?;
    Some(Answer {
        status,
        headers,
        body: body.to_vec(),
        close: false,
    })
}

fn media_answer(
    state: &State,
    head: &[u8],
    target: &str,
    range: Option<&str>,
    accept_encoding: Option<&str>,
) -> Option<Answer> {
    let n = state.reads.fetch_add(1, Ordering::SeqCst);
    if n >= state.deny_after.load(Ordering::SeqCst) {
        return Some(Answer {
            status: 403,
            headers: vec!["content-type: application/json".into()],
            body: br#"{"error":{"code":403,"message":"denied by the test"}}"#.to_vec(),
            close: false,
        });
    }
    // The object as it is now.
    let path = target.split('?').next().unwrap_or_default();
    let meta_target = path.to_owned();
    let meta_head = format!(
        "GET {meta_target} HTTP/1.0\r\nhost: {}\r\n\r\n",
        state.upstream
    );
    let meta = forward(state.upstream, meta_head.as_bytes())?;
    if meta.status != 200 {
        return forward(state.upstream, head);
    }
    let generation = field(&meta.body, "generation").unwrap_or_default();
    let gzip = field(&meta.body, "contentEncoding").as_deref() == Some("gzip");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let wanted = query
        .split('&')
        .find_map(|p| p.strip_prefix("ifGenerationMatch="));
    if wanted.is_some_and(|g| g != generation) {
        return Some(Answer {
            status: 412,
            headers: vec!["content-type: application/json".into()],
            body: br#"{"error":{"code":412,"message":"Precondition Failed"}}"#.to_vec(),
            close: false,
        });
    }
    let transcoded = state
        .transcoded
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if gzip && let Some(plain) = transcoded {
        // Decompressive transcoding: the whole object, decompressed, Range ignored.
        return Some(Answer {
            status: 200,
            headers: vec![
                format!("x-goog-generation: {generation}"),
                "x-goog-stored-content-encoding: gzip".into(),
            ],
            body: plain,
            close: true,
        });
    }
    let mut answer = forward(state.upstream, head)?;
    answer
        .headers
        .push(format!("x-goog-generation: {generation}"));
    if gzip {
        answer
            .headers
            .push("x-goog-stored-content-encoding: gzip".into());
        if accept_encoding.is_some_and(|a| a.contains("gzip")) {
            answer.headers.push("content-encoding: gzip".into());
        }
    }
    let from_zero = range.is_some_and(|r| r.starts_with("bytes=0-"));
    if state.flip.load(Ordering::SeqCst) && from_zero && answer.body.len() > 100 {
        answer.body[100] ^= 0x01;
    }
    Some(answer)
}
