//! The harness: an in-process OSS emulator with strict signatures, the real `resume-get`
//! binary as a child process, and bounded waits for its output and exit.
//!
//! Nothing here sleeps to wait for something to happen: every wait polls a condition with a
//! deadline and an iteration bound, and panics with what was seen so far.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use oss_emulator::{AccessKey, Emulator, EmulatorConfig, Fault, FaultPlan, FaultRule};
use serde_json::Value;
use test_support::ChildGuard;

pub const BIN: &str = env!("CARGO_BIN_EXE_resume-get");
pub const BUCKET: &str = "cli-tests";
pub const KEY_ID: &str = "cli-test-access-key";
/// Distinctive, so a leak into any output is unmistakable.
pub const SECRET: &str = "S3cr3t-cli-9f1c7e2b-do-not-print";
/// Upper bound for one run of the binary. Runs normally take well under a second (the
/// throttled ones a few seconds); the margin is for a machine shared with other builds.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Deterministic, incompressible test content (xorshift64*).
pub fn data(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(size);
    out
}

/// An emulator on 127.0.0.1:0 with one access key and one bucket.
#[derive(Debug)]
pub struct Oss {
    pub emu: Emulator,
}

impl Oss {
    pub fn start() -> Self {
        Self::with_config(EmulatorConfig::new())
    }

    /// Objects stored as files under `root` (so a test can damage them at rest).
    pub fn start_in(root: &Path) -> Self {
        Self::with_config(EmulatorConfig::new().directory(root))
    }

    fn with_config(config: EmulatorConfig) -> Self {
        let emu = Emulator::start(config.access_key(AccessKey::new(KEY_ID, SECRET)))
            .expect("start the OSS emulator");
        test_support::wait_for_port(emu.addr(), Duration::from_secs(10), "the OSS emulator");
        emu.create_bucket(BUCKET).expect("create the test bucket");
        Self { emu }
    }

    /// Stores `size` bytes of seeded content under `key` and returns them.
    pub fn put(&self, key: &str, size: usize, seed: u64) -> Vec<u8> {
        let bytes = data(size, seed);
        self.emu
            .put_object(BUCKET, key, &bytes)
            .expect("put the test object");
        bytes
    }

    /// Throttles every GET to `bytes_per_second` per connection, so a download lasts long
    /// enough to be interrupted, killed or raced.
    pub fn throttle_gets(&self, bytes_per_second: u64) {
        self.emu.set_fault_plan(
            FaultPlan::new(1)
                .rule(FaultRule::always(Fault::Throttle { bytes_per_second }).method("GET")),
        );
    }

    /// 403 on the `n`th GET of `key` (1-based): with one job, parts `0..n-1` are done and the
    /// download stops with exit 4, keeping its temp file and checkpoint.
    pub fn deny_nth_get(&self, key: &str, n: u64) {
        self.emu.set_fault_plan(
            FaultPlan::new(16).rule(
                FaultRule::on(
                    "GET",
                    key,
                    Fault::Error {
                        status: 403,
                        code: "AccessDenied".into(),
                        message: Some("injected by the test".into()),
                    },
                )
                .nth(n),
            ),
        );
    }

    pub fn url(&self, key: &str) -> String {
        format!("oss://{BUCKET}/{key}")
    }

    /// The binary with credentials in the environment and the emulator as endpoint.
    pub fn cmd(&self) -> Command {
        let mut cmd = bare_cmd();
        cmd.env("OSS_ACCESS_KEY_ID", KEY_ID)
            .env("OSS_ACCESS_KEY_SECRET", SECRET)
            .args([
                "--endpoint",
                &self.emu.endpoint(),
                "--region",
                "cn-hangzhou",
            ]);
        cmd
    }

    /// Ranges (`bytes=A-B` → A..B+1) of the GET requests for `key` the emulator answered.
    pub fn get_ranges(&self, key: &str) -> Vec<std::ops::Range<u64>> {
        self.emu
            .request_log()
            .iter()
            .filter(|r| r.method == "GET" && r.key.as_deref() == Some(key))
            .map(|r| {
                let h = r
                    .range
                    .as_deref()
                    .expect("every GET of a part carries a Range");
                parse_range_header(h).unwrap_or_else(|| panic!("unexpected Range header {h:?}"))
            })
            .collect()
    }
}

fn parse_range_header(h: &str) -> Option<std::ops::Range<u64>> {
    let (a, b) = h.strip_prefix("bytes=")?.split_once('-')?;
    Some(a.parse().ok()?..b.parse::<u64>().ok()? + 1)
}

/// The binary with an environment that cannot leak in from the developer's shell.
pub fn bare_cmd() -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "OSS_ENDPOINT",
        "OSS_REGION",
        "OSS_ACCESS_KEY_ID",
        "OSS_ACCESS_KEY_SECRET",
        "OSS_SESSION_TOKEN",
        "RUST_LOG",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("NO_PROXY", "127.0.0.1,localhost");
    cmd
}

/// One stdout line.
#[derive(Debug, Clone)]
pub struct Line {
    pub text: String,
}

/// A running `resume-get`, killed if the test ends early.
#[derive(Debug)]
pub struct Running {
    guard: ChildGuard,
    what: String,
    spawned: Instant,
    rx: Receiver<Line>,
    seen: Vec<Line>,
    stdout_thread: Option<JoinHandle<()>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_thread: Option<JoinHandle<()>>,
}

impl Running {
    pub fn spawn(cmd: &mut Command, what: &str) -> Self {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let spawned = Instant::now();
        let mut guard = ChildGuard::spawn(cmd, what);
        let child = guard.child_mut();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        // A thread that does nothing but read, so the child never blocks on a full pipe.
        let stdout_thread = std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut text = String::new();
                match reader.read_line(&mut text) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let text = text.trim_end_matches(['\n', '\r']).to_owned();
                        if tx.send(Line { text }).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let stderr_thread = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    return;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self {
            guard,
            what: what.to_owned(),
            spawned,
            rx,
            seen: Vec::new(),
            stdout_thread: Some(stdout_thread),
            stderr,
            stderr_thread: Some(stderr_thread),
        }
    }

    pub fn pid(&self) -> u32 {
        self.guard.id()
    }

    pub fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits for the first stdout line (from now on) that satisfies `pred`, at most `timeout`.
    pub fn wait_for_line(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Line {
        let deadline = Instant::now() + timeout;
        for _ in 0..1_000_000 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line.text) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "{} closed stdout before the awaited line\nstdout:\n{}\nstderr:\n{}",
                        self.what,
                        self.seen_text(),
                        self.stderr_so_far()
                    )
                }
            }
        }
        panic!(
            "{}: the awaited stdout line did not come within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.seen_text(),
            self.stderr_so_far()
        )
    }

    /// Waits until stderr contains `needle`, at most `timeout`.
    pub fn wait_for_stderr(&self, timeout: Duration, needle: &str) {
        let deadline = Instant::now() + timeout;
        for _ in 0..1_000_000 {
            if self.stderr_so_far().contains(needle) {
                return;
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!(
            "{}: stderr did not show {needle:?} within {timeout:?}\nstderr:\n{}",
            self.what,
            self.stderr_so_far()
        )
    }

    /// The peak resident set size of the process so far (`VmHWM`), in bytes (Linux).
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse().ok())
            .expect("VmHWM in /proc/PID/status");
        kib * 1024
    }

    fn seen_text(&self) -> String {
        self.seen
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Sends SIGINT, as Ctrl-C does.
    pub fn interrupt(&self) {
        self.signal("-INT");
    }

    /// Sends a signal (`-INT`, `-TERM`) with kill(1).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} {} failed", self.pid());
    }

    /// Waits (at most 60 s) until the run (with `--json`) has reported `parts` parts done,
    /// then kills it with SIGKILL and waits for its end: the crash the resume tests start from.
    pub fn kill_after_parts(mut self, parts: u32) -> Outcome {
        let done = std::cell::Cell::new(0u32);
        self.wait_for_line(Duration::from_secs(60), |line| {
            let e: Value = serde_json::from_str(line).unwrap_or_default();
            if e["event"] == "part_done" {
                done.set(done.get() + 1);
            }
            done.get() >= parts
        });
        self.signal("-KILL");
        self.finish(RUN_TIMEOUT)
    }

    /// Waits for the exit (at most `timeout`), then for the end of its output.
    pub fn finish(mut self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        let mut status = None;
        for _ in 0..1_000_000 {
            if let Some(s) = self
                .guard
                .child_mut()
                .try_wait()
                .expect("wait for resume-get")
            {
                status = Some(s);
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let Some(status) = status else {
            panic!(
                "{} did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                self.what,
                self.seen_text(),
                self.stderr_so_far()
            );
        };
        let elapsed = self.spawned.elapsed();
        // The pipes close at exit (the binary starts no children), so these end promptly.
        if let Some(t) = self.stdout_thread.take() {
            t.join().expect("stdout reader");
        }
        if let Some(t) = self.stderr_thread.take() {
            t.join().expect("stderr reader");
        }
        let mut lines = std::mem::take(&mut self.seen);
        lines.extend(self.rx.try_iter());
        let stdout = lines
            .iter()
            .map(|l| format!("{}\n", l.text))
            .collect::<String>();
        Outcome {
            what: self.what.clone(),
            code: status.code(),
            stdout,
            lines,
            stderr: self.stderr_so_far(),
            elapsed,
        }
    }
}

/// How a run ended and what it printed.
#[derive(Debug)]
pub struct Outcome {
    pub what: String,
    /// `None` if killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub lines: Vec<Line>,
    pub stderr: String,
    /// From spawn to exit, measured by the test.
    pub elapsed: Duration,
}

impl Outcome {
    /// Panics, showing everything printed, unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "{}: expected exit code {code}\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless stderr contains every one of `needles`.
    pub fn stderr_has(&self, needles: &[&str]) -> &Self {
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "{}: stderr lacks {n:?}\nstderr:\n{}",
                self.what,
                self.stderr
            );
        }
        self
    }

    /// Panics if stderr contains any of `needles`.
    pub fn stderr_lacks(&self, needles: &[&str]) -> &Self {
        for n in needles {
            assert!(
                !self.stderr.contains(n),
                "{}: stderr has {n:?}\nstderr:\n{}",
                self.what,
                self.stderr
            );
        }
        self
    }

    /// Every stdout line as JSON (panics on a line that is not).
    pub fn events(&self) -> Vec<Value> {
        self.lines
            .iter()
            .map(|l| {
                serde_json::from_str(&l.text).unwrap_or_else(|e| {
                    panic!("{}: stdout line is not JSON ({e}): {:?}", self.what, l.text)
                })
            })
            .collect()
    }

    /// The one event named `name` (panics if there is not exactly one).
    pub fn event(&self, name: &str) -> Value {
        let found: Vec<Value> = self
            .events()
            .into_iter()
            .filter(|e| e["event"] == name)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{}: expected one {name:?} event\nstdout:\n{}",
            self.what,
            self.stdout
        );
        found.into_iter().next().unwrap()
    }
}

/// Runs `cmd` to completion with the standard timeout.
pub fn run(cmd: &mut Command, what: &str) -> Outcome {
    Running::spawn(cmd, what).finish(RUN_TIMEOUT)
}

/// The names in `dir`, sorted.
pub fn listing(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

pub fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Panics unless `path` holds exactly `expected` (without printing megabytes).
pub fn assert_file(path: &Path, expected: &[u8], what: &str) {
    let got =
        std::fs::read(path).unwrap_or_else(|e| panic!("{what}: read {}: {e}", path.display()));
    assert!(
        got.len() == expected.len(),
        "{what}: {} has {} bytes, expected {}",
        path.display(),
        got.len(),
        expected.len()
    );
    if let Some(i) = got.iter().zip(expected).position(|(a, b)| a != b) {
        panic!("{what}: {} differs first at byte {i}", path.display());
    }
}

/// `(start, end)` of every `part_done` event.
pub fn parts_done(events: &[Value]) -> Vec<(u64, u64)> {
    events
        .iter()
        .filter(|e| e["event"] == "part_done")
        .map(|e| (u(&e["start"]), u(&e["end"])))
        .collect()
}

pub fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected an unsigned integer, got {v}"))
}

/// After a batch in which the GET of `bad.0` was corrupted on the way: every other object's
/// file is the object, `bad.0`'s file still holds `bad.1` (what was there before), and each object was asked for exactly once,
/// by a request `is_get` accepts (`seen`: the requests' first lines, lower case, which contain
/// `path_of(name)`).
pub fn assert_one_request_each(
    dest: &Path,
    objects: &[(String, Vec<u8>)],
    bad: (&str, &[u8]),
    seen: &[String],
    path_of: impl Fn(&str) -> String,
    is_get: impl Fn(&str) -> bool,
    what: &str,
) {
    for (name, bytes) in objects {
        let path = dest.join(name);
        if name == bad.0 {
            assert_file(&path, bad.1, what);
        } else {
            assert_file(&path, bytes, what);
        }
        let wanted = path_of(name);
        let asked: Vec<&String> = seen.iter().filter(|l| l.contains(&wanted)).collect();
        assert_eq!(asked.len(), 1, "{what}: {name}: one request: {asked:?}");
        assert!(is_get(asked[0]), "{what}: {name}: a GET: {asked:?}");
    }
}
