//! A WAN in network namespaces, for tests and benchmarks that need real TCP over a bad
//! network: handshakes, slow start, loss recovery and the window/RTT ceiling, which a
//! byte-delaying proxy on loopback cannot give.
//!
//! A [`Lab`] is three namespaces — client, router, server — joined by two veth pairs
//! ([`topology`]). The router impairs what it forwards: delay, jitter and loss (random or
//! Gilbert–Elliott) in the `netlab-delayd` NFQUEUE daemon ([`spec`], `delayd.rs`); a `tbf`
//! bottleneck, `htb` per-connection caps, blackholes, link flaps and resets
//! (`impair.rs`). The server's congestion control is pinned per lab. Processes run inside
//! with [`Netns::command`] (`ip netns exec`); a server listening on 127.0.0.1 in the server
//! namespace is reachable from the client at [`SERVER_IP`] once [`Lab::expose`]d.
//!
//! Needs root and network namespaces; without them [`Lab::start`] panics with what to do (it
//! never skips). Everything is removed when the `Lab` is dropped, also while a test unwinds
//! from a panic; labs a killed run left behind are removed by [`sweep_stale`], which every
//! `Lab::start` runs first.

mod cleanup;
mod delayd;
mod impair;
pub mod spec;
pub mod topology;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Mutex;
use std::time::Duration;

pub use cleanup::sweep_stale;
pub use delayd::{Counters, DelayStats, Way, delayd_binary};
pub use impair::Congestion;
pub use spec::{Loss, Spec};
pub use topology::{CLIENT_IP, Namespaces, Netns, SERVER_IP};

use cleanup::Teardown;
use delayd::Delayd;
use impair::Shaping;

/// The programs a lab runs, and the Debian package of each.
const TOOLS: [(&str, &str); 7] = [
    ("ip", "iproute2"),
    ("tc", "iproute2"),
    ("ss", "iproute2"),
    ("nft", "nftables"),
    ("iptables", "iptables"),
    ("ethtool", "ethtool"),
    ("chrt", "util-linux"),
];

/// What a lab's network is like.
#[derive(Debug, Clone, PartialEq)]
pub struct LabConfig {
    rtt: Duration,
    jitter: Duration,
    loss_up: Loss,
    loss_down: Loss,
    rate: Option<u64>,
    queue: Option<u64>,
    per_connection: Option<(u64, u32)>,
    congestion: Congestion,
    seed: u64,
    /// The `netlab-delayd` to run (default: [`delayd_binary`]).
    delayd: Option<std::path::PathBuf>,
}

impl Default for LabConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl LabConfig {
    /// No delay, no loss, no rate limit, bbr (the kernel's default), seed 1.
    pub fn new() -> Self {
        Self {
            rtt: Duration::ZERO,
            jitter: Duration::ZERO,
            loss_up: Loss::None,
            loss_down: Loss::None,
            rate: None,
            queue: None,
            per_connection: None,
            congestion: Congestion::Bbr,
            seed: 1,
            delayd: None,
        }
    }

    /// Runs this `netlab-delayd` (e.g. a release build for benchmarks) instead of
    /// [`delayd_binary`]'s.
    pub fn delayd(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.delayd = Some(path.into());
        self
    }

    /// Round-trip time added by the router (half each way).
    pub fn rtt(mut self, rtt: Duration) -> Self {
        self.rtt = rtt;
        self
    }

    /// Jitter of each direction's delay (uniform ±, packets kept in order).
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// The same loss both ways (data and acknowledgements).
    pub fn loss(self, loss: Loss) -> Self {
        self.loss_up(loss).loss_down(loss)
    }

    /// Loss of client-to-server packets.
    pub fn loss_up(mut self, loss: Loss) -> Self {
        self.loss_up = loss;
        self
    }

    /// Loss of server-to-client packets.
    pub fn loss_down(mut self, loss: Loss) -> Self {
        self.loss_down = loss;
        self
    }

    /// A shared bottleneck toward the client (`tbf`), in bits per second, with a queue of
    /// one bandwidth-delay product unless [`queue_bytes`](Self::queue_bytes) says otherwise.
    pub fn rate_bits(mut self, bits_per_second: u64) -> Self {
        self.rate = Some(bits_per_second);
        self
    }

    /// The bottleneck's queue in bytes.
    pub fn queue_bytes(mut self, bytes: u64) -> Self {
        self.queue = Some(bytes);
        self
    }

    /// Caps every connection toward the client at `bits_per_second` (`htb`; connections are
    /// spread round-robin over `classes` classes, so up to that many get a cap each).
    pub fn per_connection_bits(mut self, bits_per_second: u64, classes: u32) -> Self {
        self.per_connection = Some((bits_per_second, classes.max(1)));
        self
    }

    /// The congestion control of the server (and the client).
    pub fn congestion(mut self, cc: Congestion) -> Self {
        self.congestion = cc;
        self
    }

    /// Seed of the daemon's loss and jitter.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn rtt_value(&self) -> Duration {
        self.rtt
    }

    pub fn rate_value(&self) -> Option<u64> {
        self.rate
    }

    pub fn congestion_value(&self) -> Congestion {
        self.congestion
    }

    /// One direction's delay-daemon spec.
    pub fn spec(&self, way: Way) -> Spec {
        Spec {
            delay: self.rtt / 2,
            jitter: self.jitter,
            loss: match way {
                Way::Up => self.loss_up,
                Way::Down => self.loss_down,
            },
        }
    }

    /// Bytes of one bandwidth-delay product at `bits_per_second`, at least 64 KiB (RTT 0
    /// still needs a queue).
    fn bdp(&self, bits_per_second: u64) -> u64 {
        let bytes = u128::from(bits_per_second) * self.rtt.as_micros() / 8 / 1_000_000;
        u64::try_from(bytes).unwrap_or(u64::MAX).max(64 * 1024)
    }

    fn shaping(&self) -> Shaping {
        Shaping {
            bottleneck: self
                .rate
                .map(|r| (r, self.queue.unwrap_or_else(|| self.bdp(r)))),
            per_connection: self.per_connection.map(|(cap, k)| (cap, k, self.bdp(cap))),
        }
    }

    /// One line for results: every setting, the congestion control included.
    pub fn describe(&self) -> String {
        let rate = self.rate.map_or("no rate limit".to_owned(), |r| {
            format!("{} Mbit/s", r / 1_000_000)
        });
        format!(
            "RTT {:?} ± {:?}, loss up {:?} / down {:?}, {rate}, per-connection {:?}, {}",
            self.rtt,
            self.jitter,
            self.loss_up,
            self.loss_down,
            self.per_connection,
            self.congestion.name()
        )
    }
}

/// A running lab; dropping it removes everything it created.
#[derive(Debug)]
pub struct Lab {
    config: LabConfig,
    ns: Namespaces,
    delayd: Mutex<Delayd>,
    // Dropped last: the namespaces go after the daemon was stopped.
    _teardown: Teardown,
}

impl Lab {
    /// Builds the lab, panicking with what to do if this machine cannot (not root, no
    /// network namespaces, a tool missing).
    pub fn start(config: LabConfig) -> Self {
        Self::try_start(config).unwrap_or_else(|e| panic!("cannot build the WAN lab: {e}"))
    }

    pub fn try_start(config: LabConfig) -> Result<Self, String> {
        let missing: Vec<String> = TOOLS
            .iter()
            .filter(|(t, _)| crate::find_program(t).is_none())
            .map(|(t, pkg)| format!("{t} (Debian package {pkg})"))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "missing {}; `.ci/run` installs them (apt-get install iproute2 nftables \
                 iptables ethtool)",
                missing.join(", ")
            ));
        }
        sweep_stale();
        let ns = Namespaces::named(&cleanup::new_tag());
        let teardown = Teardown { ns: ns.clone() };
        topology::build(&ns)?;
        impair::pin_congestion(&[&ns.server, &ns.client], config.congestion)?;
        impair::install_table(&ns.router)?;
        impair::install_shaping(&ns.router, config.shaping())?;
        let delayd = Delayd::start(
            &ns.router,
            config.delayd.clone().unwrap_or_else(delayd_binary),
            config.spec(Way::Up),
            config.spec(Way::Down),
            config.seed,
        )?;
        // A server in the server namespace listens on 127.0.0.1 (the project's servers accept
        // nothing else); `expose` forwards SERVER_IP:port there.
        ns.server.sysctl("net.ipv4.conf.all.route_localnet", "1")?;
        Ok(Self {
            config,
            ns,
            delayd: Mutex::new(delayd),
            _teardown: teardown,
        })
    }

    pub fn config(&self) -> &LabConfig {
        &self.config
    }

    pub fn client(&self) -> &Netns {
        &self.ns.client
    }

    pub fn router(&self) -> &Netns {
        &self.ns.router
    }

    pub fn server(&self) -> &Netns {
        &self.ns.server
    }

    /// Makes a TCP server listening on `127.0.0.1:port` in the server namespace reachable
    /// from the client at `SERVER_IP:port` (nft DNAT; the server sees the client's address).
    pub fn expose(&self, port: u16) -> SocketAddr {
        let rules = format!(
            "table ip netlab_nat {{\n\
               chain prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}\n\
             }}\n\
             add rule ip netlab_nat prerouting ip daddr {SERVER_IP} tcp dport {port} \
               dnat to 127.0.0.1:{port}\n"
        );
        impair::nft(&self.ns.server, &rules)
            .unwrap_or_else(|e| panic!("cannot expose port {port} of the server: {e}"));
        SocketAddr::V4(SocketAddrV4::new(SERVER_IP, port))
    }

    /// The client's address, as the server sees it.
    pub fn client_ip(&self) -> Ipv4Addr {
        CLIENT_IP
    }

    /// Drops every packet the router would forward, until called with `false`.
    pub fn set_blackhole(&self, on: bool) {
        impair::set_blackhole(&self.ns.router, on)
            .unwrap_or_else(|e| panic!("cannot set the blackhole {on}: {e}"));
    }

    /// A blackhole for `d` (blocks this thread that long).
    pub fn blackhole_for(&self, d: Duration) {
        self.set_blackhole(true);
        std::thread::sleep(d);
        self.set_blackhole(false);
    }

    /// The client's link down for `down_for`, then up (routes re-added); blocks until it is.
    pub fn flap(&self, down_for: Duration) {
        impair::flap(&self.ns, down_for).unwrap_or_else(|e| panic!("link flap failed: {e}"));
    }

    /// Resets every established TCP connection of the server; returns how many.
    pub fn reset_connections(&self) -> usize {
        impair::reset_all(&self.ns.server)
            .unwrap_or_else(|e| panic!("cannot reset the server's connections: {e}"))
    }

    /// Replaces one direction's delay, jitter and loss (packets already held keep theirs).
    pub fn set_spec(&self, way: Way, spec: Spec) {
        self.delayd
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set(way, spec)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// What the delay daemon has seen, dropped and passed so far.
    pub fn delay_stats(&self) -> DelayStats {
        self.delayd
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stats()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The namespaces' names (for messages, and for a test that checks the cleanup).
    pub fn namespaces(&self) -> &Namespaces {
        &self.ns
    }
}
