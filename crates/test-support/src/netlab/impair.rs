//! Impairments other than delay and loss (which `netlab-delayd` applies), all in the router
//! unless said otherwise:
//!
//! - shared bottleneck: `tbf` on the router's egress toward the client, queue ≈ 1 BDP;
//! - per-connection caps: `htb` classes (under the `tbf` when both are set), each new
//!   connection put in the next class by nft (`ct mark set numgen inc`, then
//!   `meta priority set ct mark map {…}`);
//! - blackhole: an nft `drop` rule in a forward chain that runs before iptables' queueing;
//! - link flap: the client's link set down and up (server-side connections survive; the
//!   client's default route, removed with the link, is re-added);
//! - resets: `ss -K` in the server namespace (every established TCP connection gets RST);
//! - congestion control: the server's and the client's default pinned per lab.
//!
//! `netem` (and `fq`, `fq_codel`, `sfq`) are not in this kernel: see
//! `../shared/NETLAB-FACTS.md`.

use std::process::Command;
use std::time::{Duration, Instant};

use super::cleanup::run;
use super::topology::{ENDPOINT_IF, Namespaces, Netns, ROUTER_CLIENT_IF, add_default_routes};

/// The nft table of the router that holds the blackhole and the classifier.
const TABLE: &str = "netlab";

/// A TCP congestion control algorithm (this kernel has reno, cubic and bbr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Congestion {
    Cubic,
    Bbr,
}

impl Congestion {
    pub fn name(self) -> &'static str {
        match self {
            Congestion::Cubic => "cubic",
            Congestion::Bbr => "bbr",
        }
    }
}

/// Bottleneck and per-connection caps toward the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Shaping {
    /// Shared bottleneck rate (bits/s) and its queue (bytes).
    pub(crate) bottleneck: Option<(u64, u64)>,
    /// Per-connection cap (bits/s), number of classes, and each class's queue (bytes).
    pub(crate) per_connection: Option<(u64, u32, u64)>,
}

fn tc(router: &Netns, args: &[&str]) -> Result<(), String> {
    router.run("tc", args).map(drop)
}

/// The nft table with an empty forward chain (priority before iptables' filter table, so a
/// blackhole drops packets before they are queued to the delay daemon).
pub(crate) fn install_table(router: &Netns) -> Result<(), String> {
    let rules = format!(
        "table inet {TABLE} {{\n\
           chain forward {{ type filter hook forward priority filter - 10; policy accept; }}\n\
         }}\n"
    );
    nft(router, &rules)
}

pub(crate) fn nft(ns: &Netns, rules: &str) -> Result<(), String> {
    let mut cmd = ns.command("nft");
    cmd.args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run nft (install nftables): {e}"))?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(rules.as_bytes())
            .map_err(|e| format!("writing rules to nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft refused these rules in {} ({}): {}\n{rules}",
            ns.name(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub(crate) fn install_shaping(router: &Netns, s: Shaping) -> Result<(), String> {
    let dev = ROUTER_CLIENT_IF;
    let htb_parent = match s.bottleneck {
        Some((rate, queue)) => {
            // burst: 10 ms of the rate (at least 32 KiB), enough for the kernel's timer tick.
            let burst = (rate / 8 / 100).max(32 * 1024);
            tc(
                router,
                &[
                    "qdisc",
                    "add",
                    "dev",
                    dev,
                    "root",
                    "handle",
                    "1:",
                    "tbf",
                    "rate",
                    &format!("{rate}bit"),
                    "burst",
                    &burst.to_string(),
                    "limit",
                    &queue.to_string(),
                ],
            )?;
            "parent 1:1"
        }
        None => "root",
    };
    let Some((cap, classes, queue)) = s.per_connection else {
        return Ok(());
    };
    let mut add_qdisc: Vec<&str> = vec!["qdisc", "add", "dev", dev];
    add_qdisc.extend(htb_parent.split(' '));
    add_qdisc.extend(["handle", "10:", "htb", "default", "1"]);
    tc(router, &add_qdisc)?;
    // Class 10:1 (unclassified traffic) is not capped below the link; 10:2.. are the
    // per-connection classes, each with a queue of one BDP of its cap.
    let link = s.bottleneck.map_or(10_000_000_000, |(r, _)| r);
    for (id, rate) in std::iter::once((1u32, link)).chain((2..classes + 2).map(|i| (i, cap))) {
        let classid = format!("10:{id:x}");
        tc(
            router,
            &[
                "class",
                "add",
                "dev",
                dev,
                "parent",
                "10:",
                "classid",
                &classid,
                "htb",
                "rate",
                &format!("{rate}bit"),
                "ceil",
                &format!("{rate}bit"),
                "quantum",
                "1514",
            ],
        )?;
        tc(
            router,
            &[
                "qdisc",
                "add",
                "dev",
                dev,
                "parent",
                &classid,
                "bfifo",
                "limit",
                &queue.to_string(),
            ],
        )?;
    }
    let map: Vec<String> = (0..classes)
        .map(|i| format!("{} : 10:{:x}", i + 1, i + 2))
        .collect();
    nft(
        router,
        &format!(
            "table inet {TABLE} {{\n\
               chain classify {{\n\
                 type filter hook postrouting priority filter; policy accept;\n\
                 ct state new ct mark set numgen inc mod {classes} offset 1\n\
                 oifname \"{dev}\" meta priority set ct mark map {{ {} }}\n\
               }}\n\
             }}\n",
            map.join(", ")
        ),
    )
}

pub(crate) fn set_blackhole(router: &Netns, on: bool) -> Result<(), String> {
    if on {
        nft(
            router,
            &format!("add rule inet {TABLE} forward drop comment \"blackhole\"\n"),
        )
    } else {
        nft(router, &format!("flush chain inet {TABLE} forward\n"))
    }
}

/// Sets the client's link down for `down_for`, then up, and re-adds the routes the kernel
/// removed with it. Returns once the link carries packets again (bounded).
pub(crate) fn flap(ns: &Namespaces, down_for: Duration) -> Result<(), String> {
    let link = |state: &str| {
        run(Command::new("ip").args(["-n", ns.client.name(), "link", "set", ENDPOINT_IF, state]))
    };
    link("down")?;
    std::thread::sleep(down_for);
    link("up")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = run(Command::new("ip").args([
            "-n",
            ns.client.name(),
            "-o",
            "link",
            "show",
            "dev",
            ENDPOINT_IF,
        ]))?;
        if state.contains("state UP") {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the client's link is not up 5 s after `ip link set up`: {}",
                state.trim()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    add_default_routes(ns)
}

/// Resets every established TCP connection in `server` (`ss -K`); returns how many.
pub(crate) fn reset_all(server: &Netns) -> Result<usize, String> {
    let out = server.run("ss", &["-K", "-t", "-n", "-H", "state", "established"])?;
    Ok(out.lines().filter(|l| !l.trim().is_empty()).count())
}

/// Pins the default congestion control of `namespaces` to `cc`. A namespace other than the
/// root may only choose an algorithm of the root's allowed list, so cubic is added to it
/// (machine-wide; harmless, and never removed, since other labs may be using it).
pub(crate) fn pin_congestion(namespaces: &[&Netns], cc: Congestion) -> Result<(), String> {
    let allowed_path = "/proc/sys/net/ipv4/tcp_allowed_congestion_control";
    let allowed = std::fs::read_to_string(allowed_path)
        .map_err(|e| format!("cannot read {allowed_path}: {e}"))?;
    if !allowed.split_whitespace().any(|a| a == cc.name()) {
        let list = format!("{} {}", allowed.trim(), cc.name());
        std::fs::write(allowed_path, &list).map_err(|e| {
            format!(
                "cannot allow congestion control {} ({allowed_path} := {list:?}): {e}",
                cc.name()
            )
        })?;
    }
    for ns in namespaces {
        ns.sysctl("net.ipv4.tcp_congestion_control", cc.name())?;
        let now = ns.read_sysctl("net.ipv4.tcp_congestion_control")?;
        if now != cc.name() {
            return Err(format!(
                "{} uses congestion control {now}, not {} as set",
                ns.name(),
                cc.name()
            ));
        }
    }
    Ok(())
}
