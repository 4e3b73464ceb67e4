//! `netlab-delayd`: the WAN lab's delay and loss stage. Runs in the lab's router namespace,
//! takes the packets iptables queues to it (`-j NFQUEUE`, one queue number per direction),
//! drops some (random or Gilbert–Elliott loss, seeded) and accepts the others after their
//! delay, in the order they came.
//!
//! ```text
//! netlab-delayd --queue-up 0 --queue-down 1 --up SPEC --down SPEC --seed N
//! ```
//!
//! SPEC is `test_support::netlab::spec::Spec`'s text (`delay=25ms,jitter=1ms,loss=0.01`).
//! Prints `ready` once both queues are bound. Commands on stdin, one per line: `stats`
//! (answers one JSON line of counters per direction), `set up|down SPEC` (answers `ok`). It
//! exits when stdin closes, so it never outlives the lab that started it.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use nfq::{Message, Queue, Verdict};
use test_support::netlab::spec::{Direction, Fate, Spec};

/// While packets flow, the loop sleeps at most this long between looks at the queue.
const BUSY_POLL: Duration = Duration::from_micros(200);
/// After this long without a packet it sleeps longer (less CPU for an idle lab).
const IDLE_AFTER: Duration = Duration::from_millis(100);
const IDLE_POLL: Duration = Duration::from_millis(1);
/// Packets the kernel may hold for us per queue (beyond it drops, like a full router queue).
const KERNEL_QUEUE_LEN: u32 = 16_384;
/// The netlink socket's receive buffer. The kernel drops a queued packet it cannot hand to
/// the socket (`user_dropped` in `/proc/net/netfilter/nfnetlink_queue`): with the default
/// 208 KiB, ~10 ms of a 200 Mbit/s link's packets, the daemon descheduled that long by a
/// busy machine made the lab drop packets of its own (measured: 0.7 % of a download's
/// packets, and one cubic flow at 153 Mbit/s of 200 instead of 186).
const RECEIVE_BUFFER: usize = 16 << 20;

#[derive(Debug)]
struct Args {
    queues: [u16; 2],
    specs: [Spec; 2],
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut queues = [None, None];
    let mut specs = [Spec::default(), Spec::default()];
    let mut seed = 1u64;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value; see the usage in the source"))
        };
        match flag.as_str() {
            "--queue-up" | "--queue-down" => {
                let v = value()?;
                let n: u16 = v
                    .parse()
                    .map_err(|_| format!("{flag} {v}: not a queue number (0-65535)"))?;
                queues[usize::from(flag == "--queue-down")] = Some(n);
            }
            "--up" | "--down" => {
                let v = value()?;
                specs[usize::from(flag == "--down")] = v.parse().map_err(|e| format!("{e}"))?;
            }
            "--seed" => {
                let v = value()?;
                seed = v
                    .parse()
                    .map_err(|_| format!("--seed {v}: not an unsigned integer"))?;
            }
            _ => {
                return Err(format!(
                    "unknown argument {flag:?}; usage: netlab-delayd --queue-up N --queue-down M \
                     [--up SPEC] [--down SPEC] [--seed N]"
                ));
            }
        }
    }
    match queues {
        [Some(up), Some(down)] if up != down => Ok(Args {
            queues: [up, down],
            specs,
            seed,
        }),
        _ => Err("--queue-up and --queue-down are required and must differ".into()),
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    seen: u64,
    dropped: u64,
    passed: u64,
}

struct Lane {
    queue_num: u16,
    dir: Direction,
    held: VecDeque<(Instant, Message)>,
    counters: Counters,
}

fn stdin_commands() -> Receiver<Option<String>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) => {
                    if tx.send(Some(l)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(None);
    });
    rx
}

fn answer(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn stats_json(lanes: &[Lane; 2]) -> String {
    let one = |c: Counters| {
        format!(
            r#"{{"seen":{},"dropped":{},"passed":{}}}"#,
            c.seen, c.dropped, c.passed
        )
    };
    format!(
        r#"{{"up":{},"down":{}}}"#,
        one(lanes[0].counters),
        one(lanes[1].counters)
    )
}

/// Handles one stdin command; `false` when stdin closed.
fn command(line: Option<String>, lanes: &mut [Lane; 2]) -> bool {
    let Some(line) = line else { return false };
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("stats"), None, _) => answer(&stats_json(lanes)),
        (Some("set"), Some(side @ ("up" | "down")), spec) => {
            match spec.unwrap_or("").parse::<Spec>() {
                Ok(s) => {
                    lanes[usize::from(side == "down")].dir.set_spec(s);
                    answer("ok");
                }
                Err(e) => answer(&format!("error: {e}")),
            }
        }
        _ => answer(&format!(
            "error: unknown command {line:?}; commands: stats, set up|down SPEC"
        )),
    }
    true
}

fn run(args: Args) -> Result<(), String> {
    let sockets_before = socket_fds();
    let mut queue = Queue::open().map_err(|e| {
        format!("cannot open a netfilter queue socket ({e}); run as root in the router namespace")
    })?;
    enlarge_receive_buffer(&sockets_before)?;
    for n in args.queues {
        queue
            .bind(n)
            .map_err(|e| format!("cannot bind netfilter queue {n}: {e}"))?;
        queue
            .set_copy_range(n, 0)
            .map_err(|e| format!("queue {n}: cannot ask for metadata only: {e}"))?;
        queue
            .set_queue_max_len(n, KERNEL_QUEUE_LEN)
            .map_err(|e| format!("queue {n}: cannot set its length: {e}"))?;
    }
    queue.set_nonblocking(true);
    let mut lanes = [0, 1].map(|i| Lane {
        queue_num: args.queues[i],
        // A different stream per direction, both from the one seed.
        dir: Direction::new(
            args.specs[i],
            args.seed ^ 0xD1B5_4A32_D192_ED03u64.wrapping_mul(i as u64 + 1),
        ),
        held: VecDeque::new(),
        counters: Counters::default(),
    });
    let commands = stdin_commands();
    answer("ready");
    let mut last_packet = Instant::now();
    loop {
        loop {
            match commands.try_recv() {
                Ok(line) => {
                    if !command(line, &mut lanes) {
                        return Ok(());
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Ok(()),
            }
        }
        let mut received = 0u32;
        while received < 1024 {
            let mut msg = match queue.recv() {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("reading the netfilter queue failed: {e}")),
            };
            received += 1;
            let now = Instant::now();
            let qn = msg.get_queue_num();
            let Some(lane) = lanes.iter_mut().find(|l| l.queue_num == qn) else {
                msg.set_verdict(Verdict::Accept);
                queue.verdict(msg).map_err(|e| format!("verdict: {e}"))?;
                continue;
            };
            lane.counters.seen += 1;
            match lane.dir.admit(now) {
                Fate::Drop => {
                    lane.counters.dropped += 1;
                    msg.set_verdict(Verdict::Drop);
                    queue.verdict(msg).map_err(|e| format!("verdict: {e}"))?;
                }
                Fate::ReleaseAt(at) => lane.held.push_back((at, msg)),
            }
        }
        let now = Instant::now();
        if received > 0 {
            last_packet = now;
        }
        let mut next: Option<Instant> = None;
        for lane in &mut lanes {
            while lane.held.front().is_some_and(|(at, _)| *at <= now) {
                let Some((_, mut msg)) = lane.held.pop_front() else {
                    break;
                };
                msg.set_verdict(Verdict::Accept);
                queue.verdict(msg).map_err(|e| format!("verdict: {e}"))?;
                lane.counters.passed += 1;
            }
            if let Some((at, _)) = lane.held.front() {
                next = Some(next.map_or(*at, |n| n.min(*at)));
            }
        }
        if received == 0 {
            let poll = if now - last_packet > IDLE_AFTER && next.is_none() {
                IDLE_POLL
            } else {
                BUSY_POLL
            };
            let until_next = next.map_or(poll, |n| n.saturating_duration_since(now));
            std::thread::sleep(until_next.min(poll));
        }
    }
}

/// The process's socket descriptors.
fn socket_fds() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
        })
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Raises the queue socket's receive buffer to [`RECEIVE_BUFFER`] (as root, past
/// `rmem_max`). `nfq` does not lend its descriptor, so the socket is found as the one that
/// appeared since `before` and reached through a duplicate (`pidfd_getfd` on ourselves).
fn enlarge_receive_buffer(before: &[i32]) -> Result<(), String> {
    use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};
    let new: Vec<i32> = socket_fds()
        .into_iter()
        .filter(|fd| !before.contains(fd))
        .collect();
    let [fd] = new[..] else {
        return Err(format!(
            "expected one new socket after opening the netfilter queue, found {new:?}"
        ));
    };
    let me = pidfd_open(getpid(), PidfdFlags::empty())
        .map_err(|e| format!("pidfd_open on ourselves: {e}"))?;
    let socket = pidfd_getfd(&me, fd, PidfdGetfdFlags::empty())
        .map_err(|e| format!("duplicating the queue socket (fd {fd}): {e}"))?;
    rustix::net::sockopt::set_socket_recv_buffer_size_force(&socket, RECEIVE_BUFFER)
        .map_err(|e| format!("cannot raise the queue socket's receive buffer (root?): {e}"))
}

fn main() -> ExitCode {
    let result = parse_args().and_then(run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netlab-delayd: {e}");
            ExitCode::FAILURE
        }
    }
}
