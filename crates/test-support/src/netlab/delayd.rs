//! Starting and talking to `netlab-delayd` (the binary of this crate) in the router
//! namespace, and the iptables rules that hand it the forwarded packets.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use super::spec::Spec;
use super::topology::{Netns, ROUTER_CLIENT_IF, ROUTER_SERVER_IF};

/// Queue numbers (per namespace, so every lab uses the same two).
const QUEUE_UP: u16 = 0;
const QUEUE_DOWN: u16 = 1;
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// `chrt --fifo` priority of the daemon: above every ordinary process, below the kernel's
/// own real-time threads (50 and up).
const DAEMON_PRIORITY: &str = "10";

/// Which way a packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// Client to server (requests, ACKs of the download).
    Up,
    /// Server to client (the download's data).
    Down,
}

impl Way {
    fn word(self) -> &'static str {
        match self {
            Way::Up => "up",
            Way::Down => "down",
        }
    }
}

/// Packets the daemon handled in one direction since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub seen: u64,
    pub dropped: u64,
    pub passed: u64,
}

/// The daemon's counters, both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DelayStats {
    pub up: Counters,
    pub down: Counters,
}

/// Where `netlab-delayd` is: `NETLAB_DELAYD` if set, else beside the running test binary
/// (`target/<profile>/`, the parent of `deps/`), else `target/debug/`.
pub fn delayd_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NETLAB_DELAYD") {
        return PathBuf::from(p);
    }
    let name = format!("netlab-delayd{}", std::env::consts::EXE_SUFFIX);
    let mut candidates = Vec::new();
    if let Some(profile) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent()?.parent().map(PathBuf::from))
    {
        candidates.push(profile.join(&name));
    }
    candidates.push(crate::target_dir().join("debug").join(&name));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "netlab-delayd is not built (looked at {candidates:?}); run `cargo build -p \
                 test-support` (add --release for tests run with --release) or `cargo xtask \
                 test`, which builds it"
            )
        })
}

/// The running daemon; killed (its stdin closed first) when dropped.
#[derive(Debug)]
pub(crate) struct Delayd {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Delayd {
    /// Starts the daemon in `router`, then queues every forwarded packet to it (one queue per
    /// direction). Returns once it said `ready`.
    pub(crate) fn start(
        router: &Netns,
        bin: PathBuf,
        up: Spec,
        down: Spec,
        seed: u64,
    ) -> Result<Self, String> {
        // Real-time priority (SCHED_FIFO; it sleeps whenever no packet is due): descheduled
        // for milliseconds by a busy machine, the daemon delays packets by that much more and
        // its socket overflows (the kernel then drops packets the lab never meant to).
        let mut cmd = router.command("chrt");
        cmd.args(["--fifo", DAEMON_PRIORITY]).arg(&bin);
        cmd.args(["--queue-up", &QUEUE_UP.to_string()])
            .args(["--queue-down", &QUEUE_DOWN.to_string()])
            .args(["--up", &up.to_string(), "--down", &down.to_string()])
            .args(["--seed", &seed.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut d = Self {
            stdin: child.stdin.take(),
            child,
            lines,
        };
        let first = d.next_line()?;
        if first != "ready" {
            return Err(format!("netlab-delayd said {first:?} instead of \"ready\""));
        }
        for (dev, q) in [(ROUTER_CLIENT_IF, QUEUE_UP), (ROUTER_SERVER_IF, QUEUE_DOWN)] {
            router
                .run(
                    "iptables",
                    &[
                        "-A",
                        "FORWARD",
                        "-i",
                        dev,
                        "-j",
                        "NFQUEUE",
                        "--queue-num",
                        &q.to_string(),
                    ],
                )
                .map_err(|e| format!("queueing packets to netlab-delayd: {e}"))?;
        }
        Ok(d)
    }

    fn next_line(&mut self) -> Result<String, String> {
        self.lines.recv_timeout(ANSWER_TIMEOUT).map_err(|e| {
            let status = self.child.try_wait().ok().flatten();
            let what = match e {
                mpsc::RecvTimeoutError::Timeout => {
                    format!("did not answer within {ANSWER_TIMEOUT:?}")
                }
                mpsc::RecvTimeoutError::Disconnected => "closed its stdout".to_owned(),
            };
            format!(
                "netlab-delayd {what} (exit status: {status:?}; its stderr is in the test \
                 output)"
            )
        })
    }

    fn ask(&mut self, command: &str) -> Result<String, String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or("netlab-delayd's stdin is closed")?;
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot send {command:?} to netlab-delayd: {e}"))?;
        let answer = self.next_line()?;
        match answer.strip_prefix("error: ") {
            Some(e) => Err(format!("netlab-delayd refused {command:?}: {e}")),
            None => Ok(answer),
        }
    }

    pub(crate) fn set(&mut self, way: Way, spec: Spec) -> Result<(), String> {
        self.ask(&format!("set {} {spec}", way.word())).map(drop)
    }

    pub(crate) fn stats(&mut self) -> Result<DelayStats, String> {
        let line = self.ask("stats")?;
        // {"up":{"seen":N,"dropped":N,"passed":N},"down":{...}}: six numbers in this order.
        let n: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse().ok())
            .collect();
        let [us, ud, up, ds, dd, dp] = n[..] else {
            return Err(format!(
                "netlab-delayd's stats are not six counters: {line}"
            ));
        };
        Ok(DelayStats {
            up: Counters {
                seen: us,
                dropped: ud,
                passed: up,
            },
            down: Counters {
                seen: ds,
                dropped: dd,
                passed: dp,
            },
        })
    }
}

impl Drop for Delayd {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
