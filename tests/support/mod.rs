//! Helpers for driving `resume-get` as a process against an in-process `oss-emulator`.
//!
//! - [`binary`] finds the `resume-get` / `oss-emulator` executables next to the test binary
//!   (`target/<profile>/`), failing with what to run if they are missing.
//! - [`Server`] is an emulator with known credentials and one bucket; [`Get`] builds a
//!   `resume-get` command for it (hermetic environment, `--json` by default) and either runs
//!   it to completion ([`Outcome`]) or starts it ([`Running`]) so a test can watch its events
//!   and kill or interrupt it at a chosen moment.
//! - [`HeaderProxy`] sits between the two and rewrites response headers (e.g. drops the
//!   CRC-64 header, which the emulator always sends).
//! - [`WanServer`] runs the emulator binary in a WAN lab's server namespace
//!   (`test_support::netlab`) and builds [`Get`]s that run in its client namespace.
//! - [`Mount`] mounts a small or read-only tmpfs (the tests run as root, so permission bits
//!   would not stop a write; a full or read-only file system does).
//!
//! Every wait is bounded in time: a hung process is killed and the test fails with its output.

mod proxy;
mod wan;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use oss_emulator::{
    AccessKey, Emulator, EmulatorConfig, Fault, FaultPlan, FaultRule, ObjectInfo, RequestRecord,
};
pub use proxy::{HeaderProxy, Rewrite, Stall};
pub use serde_json::Value;
pub use wan::WanServer;

/// Access key id every test server accepts.
pub const AK: &str = "e2e-access-key-id";
/// Its secret: distinctive, so a leak is found by a plain substring search.
pub const SK: &str = "e2eSECRETkey-4f9c2a7b1d3e";
/// STS credentials (the emulator requires the token with this key id).
pub const STS_AK: &str = "STS.e2e-sts-key-id";
pub const STS_SK: &str = "e2eSTSsecret-8d1e6b0a2c";
pub const STS_TOKEN: &str = "e2eSTStoken-CAES+/=9a7c5e3b1d";
/// The bucket every [`Server`] has.
pub const BUCKET: &str = "e2e-bucket";
/// The V4 region the emulator checks.
pub const REGION: &str = "cn-hangzhou";

/// Default bound on one `resume-get` run.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

// Exit codes documented in `crates/cli/src/exit.rs` and the README.
pub const EXIT_OK: i32 = 0;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_NOT_FOUND: i32 = 3;
pub const EXIT_DENIED: i32 = 4;
pub const EXIT_CHANGED: i32 = 5;
pub const EXIT_INTEGRITY: i32 = 6;
pub const EXIT_LOCAL_IO: i32 = 7;
pub const EXIT_NETWORK: i32 = 8;
pub const EXIT_INTERRUPTED: i32 = 130;

/// Path of a binary of this workspace, built in the same profile as the running test
/// (`target/<profile>/NAME`, the parent of the test binary's `deps/` directory).
///
/// Cargo only provides `CARGO_BIN_EXE_*` for the test's own package, so the binaries of
/// `resume-cli` and `oss-emulator` must be built first; `cargo xtask ci` does.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the path of the running test binary");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} has no grandparent directory", exe.display()));
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{name} is not built: {} does not exist; run `cargo build -p resume-cli -p oss-emulator` \
         (add --release for tests run with --release) before the end-to-end tests, or run \
         `cargo xtask test`, which builds them",
        path.display()
    );
    path
}

/// The seeded generator behind every random choice in these tests (the engine's SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(resume_core::SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(resume_core::SplitMix64::new(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[0, n)` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.next_u64() % n
    }

    /// Uniform in `[lo, hi)`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `len` deterministic, incompressible bytes.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// An emulator config with the test credentials ([`AK`]/[`SK`] and the STS triple).
pub fn emulator_config() -> EmulatorConfig {
    EmulatorConfig::new()
        .access_key(AccessKey::new(AK, SK))
        .access_key(AccessKey::sts(STS_AK, STS_SK, STS_TOKEN))
}

/// An OSS emulator on 127.0.0.1 with bucket [`BUCKET`].
#[derive(Debug)]
pub struct Server {
    pub emu: Emulator,
    _root: Option<tempfile::TempDir>,
}

impl Server {
    /// In-memory storage.
    pub fn start() -> Self {
        Self::with_config(emulator_config(), None)
    }

    /// Objects kept in files in a temporary directory, streamed from disk (for big objects).
    pub fn on_disk() -> Self {
        let root = tempfile::tempdir().expect("create emulator storage directory");
        Self::with_config(emulator_config().directory(root.path()), Some(root))
    }

    pub fn with_config(config: EmulatorConfig, root: Option<tempfile::TempDir>) -> Self {
        let emu = Emulator::start(config).expect("start the OSS emulator");
        emu.create_bucket(BUCKET).expect("create the test bucket");
        Self { emu, _root: root }
    }

    pub fn endpoint(&self) -> String {
        self.emu.endpoint()
    }

    pub fn put(&self, key: &str, bytes: &[u8]) -> ObjectInfo {
        self.emu
            .put_object(BUCKET, key, bytes)
            .unwrap_or_else(|e| panic!("put {key}: {e}"))
    }

    /// A `resume-get oss://BUCKET/KEY DEST` command against this server.
    pub fn get(&self, key: &str, dest: impl AsRef<Path>) -> Get {
        Get::new(&self.endpoint(), &oss_url(key), dest.as_ref())
    }

    pub fn set_faults(&self, plan: FaultPlan) {
        self.emu.set_fault_plan(plan);
    }

    /// Every GET of `key` the server answered (or reset), in order.
    pub fn gets(&self, key: &str) -> Vec<RequestRecord> {
        self.emu
            .request_log()
            .into_iter()
            .filter(|r| r.method == "GET" && r.key.as_deref() == Some(key))
            .collect()
    }
}

pub fn oss_url(key: &str) -> String {
    format!("oss://{BUCKET}/{key}")
}

/// `[first, end)` of a `Range: bytes=first-last` header as logged by the emulator.
pub fn range_of(r: &RequestRecord) -> std::ops::Range<u64> {
    let h = r
        .range
        .as_deref()
        .unwrap_or_else(|| panic!("request {} has no Range header: {r:?}", r.number));
    let spec = h.strip_prefix("bytes=").unwrap_or(h);
    let (a, b) = spec
        .split_once('-')
        .unwrap_or_else(|| panic!("unexpected Range header {h:?}"));
    let a: u64 = a.parse().unwrap_or_else(|_| panic!("Range {h:?}"));
    let b: u64 = b.parse().unwrap_or_else(|_| panic!("Range {h:?}"));
    a..b + 1
}

/// `DEST.rgcp`: the checkpoint beside DEST.
pub fn rgcp(dest: &Path) -> PathBuf {
    suffixed(dest, ".rgcp")
}

/// `DEST.rgpart`: the temp file.
pub fn rgpart(dest: &Path) -> PathBuf {
    suffixed(dest, ".rgpart")
}

fn suffixed(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// File names and sizes in `dir` (not recursive).
pub fn listing(dir: &Path) -> BTreeMap<String, u64> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| {
            let e = e.expect("directory entry");
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            (e.file_name().to_string_lossy().into_owned(), len)
        })
        .collect()
}

/// The only `*.rgcp` file in `dir`.
pub fn only_checkpoint_in(dir: &Path) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rgcp"))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one checkpoint in {}: {found:?}",
        dir.display()
    );
    found.into_iter().next().unwrap_or_default()
}

/// Panics unless the file at `path` holds exactly `expected` (names the first difference,
/// never dumps bytes).
pub fn assert_file_is(path: &Path, expected: &[u8], what: &str) {
    let got =
        std::fs::read(path).unwrap_or_else(|e| panic!("{what}: read {}: {e}", path.display()));
    if got.len() != expected.len() {
        panic!(
            "{what}: {} has {} bytes, expected {}",
            path.display(),
            got.len(),
            expected.len()
        );
    }
    if let Some(i) = got.iter().zip(expected).position(|(a, b)| a != b) {
        panic!(
            "{what}: {} differs from the expected bytes first at offset {i} (of {})",
            path.display(),
            got.len()
        );
    }
}

/// A `resume-get` command line with a hermetic environment: only the variables set here
/// (credentials from [`AK`]/[`SK`] unless changed), `--endpoint`, `--region` and `--json`.
#[derive(Debug, Clone)]
pub struct Get {
    endpoint: String,
    json: bool,
    args: Vec<OsString>,
    positional: Vec<OsString>,
    env: BTreeMap<String, String>,
    timeout: Duration,
    /// A program (and its arguments) that runs `resume-get`, e.g. strace.
    wrapper: Vec<OsString>,
}

impl Get {
    pub fn new(endpoint: &str, source: &str, dest: &Path) -> Self {
        let mut env = BTreeMap::new();
        env.insert("OSS_ACCESS_KEY_ID".to_owned(), AK.to_owned());
        env.insert("OSS_ACCESS_KEY_SECRET".to_owned(), SK.to_owned());
        Self {
            endpoint: endpoint.to_owned(),
            json: true,
            args: Vec::new(),
            positional: vec![source.into(), dest.as_os_str().to_owned()],
            env,
            timeout: RUN_TIMEOUT,
            wrapper: Vec::new(),
        }
    }

    /// Runs `resume-get` under `program args…` (which get the binary and its arguments).
    pub fn under<I, S>(mut self, program_and_args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.wrapper = program_and_args.into_iter().map(Into::into).collect();
        self
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Human output (no `--json`).
    pub fn plain(mut self) -> Self {
        self.json = false;
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.insert(k.to_owned(), v.to_owned());
        self
    }

    pub fn env_remove(mut self, k: &str) -> Self {
        self.env.remove(k);
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// The full argument list (for messages).
    pub fn describe(&self) -> String {
        let mut s = String::from("resume-get");
        for a in self.argv() {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    fn argv(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = Vec::new();
        v.extend([
            "--endpoint".into(),
            (&self.endpoint).into(),
            "--region".into(),
            REGION.into(),
        ]);
        if self.json {
            v.push("--json".into());
        }
        v.extend(self.args.iter().cloned());
        v.extend(self.positional.iter().cloned());
        v
    }

    fn command(&self) -> Command {
        let mut c = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary("resume-get"));
                c
            }
            None => Command::new(binary("resume-get")),
        };
        c.env_clear().envs(&self.env).args(self.argv());
        // `E2E_TRACE=1`: every run of the suite logs at trace level (and is checked for
        // leaked secrets like any other run).
        if std::env::var_os("E2E_TRACE").is_some_and(|v| v == "1") {
            c.arg("-vv").env("RUST_LOG", "trace");
        }
        c
    }

    /// Starts the command; its stdout lines arrive as events.
    pub fn spawn(&self) -> Running {
        let mut child = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.describe()));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        let out_thread = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let err_buf = Arc::new(Mutex::new(Vec::new()));
        let sink = err_buf.clone();
        let err_thread = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match stderr.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend_from_slice(&buf[..n]),
                }
            }
        });
        Running {
            child,
            started: Instant::now(),
            description: self.describe(),
            timeout: self.timeout,
            rx,
            lines: Vec::new(),
            events: Vec::new(),
            stderr: err_buf,
            threads: vec![out_thread, err_thread],
            status: None,
        }
    }

    /// Runs the command to completion (at most its timeout).
    pub fn run(&self) -> Outcome {
        self.spawn().finish()
    }
}

/// A running `resume-get`; killed if dropped while running.
#[derive(Debug)]
pub struct Running {
    child: Child,
    started: Instant,
    description: String,
    timeout: Duration,
    rx: Receiver<String>,
    lines: Vec<String>,
    events: Vec<Value>,
    stderr: Arc<Mutex<Vec<u8>>>,
    threads: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Running {
    /// Events received so far.
    pub fn events(&self) -> &[Value] {
        &self.events
    }

    pub fn stderr_now(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    fn take_line(&mut self, line: String) -> Option<Value> {
        self.lines.push(line.clone());
        let v = serde_json::from_str::<Value>(&line).ok()?;
        self.events.push(v.clone());
        Some(v)
    }

    /// Waits for the first event (from now on) matching `pred`, at most `timeout`. `None`
    /// when the process closed its stdout (exited) first. Panics on timeout.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(v) = self.take_line(line)
                        && pred(&v)
                    {
                        return Some(v);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!(
                        "no expected event from `{}` within {timeout:?}; stderr:\n{}\nlast \
                         events: {:?}",
                        self.description,
                        self.stderr_now(),
                        self.events.iter().rev().take(5).collect::<Vec<_>>()
                    );
                }
            }
        }
    }

    /// Collects events until `deadline`; `false` if the process closed its stdout (exited)
    /// first.
    pub fn pump_until(&mut self, deadline: Instant) -> bool {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.take_line(line);
                }
                Err(RecvTimeoutError::Timeout) => return true,
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// Waits for an event named `name`.
    pub fn wait_event(&mut self, name: &str, timeout: Duration) -> Option<Value> {
        self.wait_for(timeout, |v| v["event"] == name)
    }

    /// SIGKILL, as a crash or `kill -9` would.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
        }
    }

    /// SIGINT, as Ctrl-C would.
    pub fn interrupt(&mut self) {
        self.signal(rustix::process::Signal::INT);
    }

    /// SIGTERM.
    pub fn terminate(&mut self) {
        self.signal(rustix::process::Signal::TERM);
    }

    fn signal(&mut self, sig: rustix::process::Signal) {
        if self.status.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            rustix::process::kill_process(rustix::process::Pid::from_child(&self.child), sig)
                .unwrap_or_else(|e| panic!("send {sig:?} to {}: {e}", self.child.id()));
        }
    }

    /// Whether the process has exited (reaps it if so).
    pub fn exited(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status.is_some()
    }

    /// Waits for the process to exit (within the command's timeout from its start, killing it
    /// and panicking otherwise) and collects everything it printed.
    pub fn finish(mut self) -> Outcome {
        let deadline = self.started + self.timeout;
        let status = loop {
            if let Some(s) = self.status {
                break s;
            }
            if let Some(s) = self.child.try_wait().expect("wait for resume-get") {
                self.status = Some(s);
                break s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "`{}` did not exit within {:?}; stderr:\n{}",
                    self.description,
                    self.timeout,
                    self.stderr_now()
                );
            }
            // Waiting on the event channel doubles as the poll interval.
            if let Ok(line) = self.rx.recv_timeout(Duration::from_millis(5)) {
                self.take_line(line);
            }
        };
        // The pipes close when the process is gone; drain them (bounded).
        let drain_deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = drain_deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.take_line(line);
                }
                Err(_) => break,
            }
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let out = Outcome {
            status,
            description: self.description.clone(),
            stdout: std::mem::take(&mut self.lines).join("\n"),
            stderr: self.stderr_now(),
            events: std::mem::take(&mut self.events),
        };
        // Every run of the suite doubles as a leak check.
        for secret in [SK, STS_SK, STS_TOKEN] {
            assert!(
                !out.stdout.contains(secret) && !out.stderr.contains(secret),
                "`{}` printed a secret key or token",
                out.description
            );
        }
        out
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a finished `resume-get` did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: ExitStatus,
    pub description: String,
    pub stdout: String,
    pub stderr: String,
    pub events: Vec<Value>,
}

impl Outcome {
    /// The exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics (with the output) unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "`{}` exited with {:?}, expected {code}\nstderr:\n{}\nstdout (tail):\n{}",
            self.description,
            self.status,
            self.stderr,
            tail(&self.stdout, 20)
        );
        self
    }

    #[track_caller]
    pub fn expect_ok(&self) -> &Self {
        self.expect_code(EXIT_OK)
    }

    /// Panics unless stderr contains every one of `needles`.
    #[track_caller]
    pub fn expect_stderr(&self, needles: &[&str]) -> &Self {
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "stderr of `{}` lacks {n:?}:\n{}",
                self.description,
                self.stderr
            );
        }
        self
    }

    /// Events named `name`.
    pub fn events_named(&self, name: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["event"] == name).collect()
    }

    pub fn event(&self, name: &str) -> Option<&Value> {
        self.events.iter().find(|e| e["event"] == name)
    }

    #[track_caller]
    pub fn must_event(&self, name: &str) -> &Value {
        self.event(name).unwrap_or_else(|| {
            panic!(
                "`{}` emitted no {name:?} event; stderr:\n{}\nstdout (tail):\n{}",
                self.description,
                self.stderr,
                tail(&self.stdout, 20)
            )
        })
    }

    #[track_caller]
    pub fn started(&self) -> &Value {
        self.must_event("started")
    }

    #[track_caller]
    pub fn completed(&self) -> &Value {
        self.must_event("completed")
    }

    /// A numeric field of an event.
    #[track_caller]
    pub fn num(&self, event: &str, field: &str) -> u64 {
        num(self.must_event(event), field)
    }

    /// Everything the process printed (stdout and stderr).
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// A numeric field of a JSON event.
#[track_caller]
pub fn num(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("event {v} has no numeric field {field:?}"))
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A tmpfs mounted on a fresh temporary directory, unmounted (lazily) when dropped.
#[derive(Debug)]
pub struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    /// `mount -t tmpfs -o size=SIZE[,ro]`; `Err` (with mount's message) where mounting is not
    /// permitted.
    pub fn tmpfs(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Remounts read-only: nobody, root included, can create or change a file in it.
    pub fn make_read_only(&self) {
        let out = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "remount read-only: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .output();
    }
}

/// Polls `cond` every 5 ms until it holds; panics with `what` after `timeout`.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether this process runs as root (permission bits do not stop root).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// 403 `AccessDenied`, as OSS sends it.
pub fn denied() -> Fault {
    Fault::Error {
        status: 403,
        code: "AccessDenied".into(),
        message: Some("injected by the test".into()),
    }
}

/// Runs `cmd` with one job while the GET after `parts` parts of `key` fails with 403: a
/// deterministic interrupted download with exactly parts `0..parts` done (exit 4, temp file
/// and checkpoint kept). Clears the fault plan afterwards.
#[track_caller]
pub fn stop_after_parts(server: &Server, key: &str, cmd: &Get, parts: u64) -> Outcome {
    server.set_faults(FaultPlan::new(0).rule(FaultRule::on("GET", key, denied()).nth(parts + 1)));
    let out = cmd.clone().args(["--jobs", "1"]).run();
    server.emu.clear_fault_plan();
    out.expect_code(EXIT_DENIED);
    let done: Vec<u64> = out
        .events_named("part_done")
        .iter()
        .map(|e| num(e, "part"))
        .collect();
    assert_eq!(
        done,
        (0..parts).collect::<Vec<_>>(),
        "parts done before the injected failure"
    );
    out
}

/// Length of the snapshot at the start of a checkpoint file (the journal's records follow).
pub fn snapshot_len(cp: &[u8]) -> usize {
    use checkpoint::codec::{CHECKSUM_LEN, HEADER_LEN};
    let payload = u64::from_le_bytes(cp[12..20].try_into().expect("8 bytes"));
    HEADER_LEN + payload as usize + CHECKSUM_LEN
}

/// One object on its own server and a destination for it: the fixture most end-to-end tests
/// start from.
#[derive(Debug)]
pub struct Case {
    pub server: Server,
    pub key: &'static str,
    pub content: Vec<u8>,
    pub dir: tempfile::TempDir,
    pub dest: PathBuf,
}

/// A server holding `key` with `size` seeded bytes, and a DEST in a fresh directory.
pub fn case(key: &'static str, size: usize, seed: u64) -> Case {
    let server = Server::start();
    let content = data(seed, size);
    server.put(key, &content);
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("object.bin");
    Case {
        server,
        key,
        content,
        dir,
        dest,
    }
}

impl Case {
    /// `resume-get` for this object into DEST.
    pub fn get(&self) -> Get {
        self.server.get(self.key, &self.dest)
    }

    /// Installs these fault rules (seeded plan).
    pub fn faults(&self, rules: Vec<oss_emulator::FaultRule>) {
        let mut plan = oss_emulator::FaultPlan::new(0xFA17);
        for r in rules {
            plan = plan.rule(r);
        }
        self.server.set_faults(plan);
    }

    /// The object's current content on the server.
    pub fn current_content(&self) -> Vec<u8> {
        self.server
            .emu
            .get_object(BUCKET, self.key)
            .expect("current version")
    }

    /// GETs of this object the server answered after request number `after`.
    pub fn gets_after(&self, after: u64) -> Vec<oss_emulator::RequestRecord> {
        self.server
            .gets(self.key)
            .into_iter()
            .filter(|r| r.number > after)
            .collect()
    }
}
