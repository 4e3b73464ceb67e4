//! The lab's shape: three network namespaces (client, router, server) joined by two veth
//! pairs, with addresses from 198.18.0.0/15 (the benchmarking range, never routed on the
//! internet) that exist only inside them, forwarding in the router, and TSO/GSO/GRO off on
//! every veth so a dropped packet is one packet, not a 64 KB super-packet.
//!
//! ```text
//!  client ns                 router ns                   server ns
//!  eth-r 198.18.1.2 ── eth-c 198.18.1.1 │ eth-s 198.18.2.1 ── eth-r 198.18.2.2
//! ```

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::process::Command;

use super::cleanup::run;

pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
pub const ROUTER_CLIENT_SIDE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
pub const ROUTER_SERVER_SIDE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 2);

/// The client's and the server's interface (each toward the router).
pub const ENDPOINT_IF: &str = "eth-r";
/// The router's interface toward the client (where traffic to the client is shaped).
pub const ROUTER_CLIENT_IF: &str = "eth-c";
/// The router's interface toward the server.
pub const ROUTER_SERVER_IF: &str = "eth-s";

/// `ip` (iproute2), found on PATH or in the sbin directories.
pub(crate) fn ip_path() -> std::path::PathBuf {
    crate::find_program("ip").unwrap_or_else(|| {
        panic!("`ip` is not installed: the WAN lab needs iproute2 (`.ci/run` installs it)")
    })
}

/// One network namespace of a lab (`/run/netns/NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    name: String,
}

impl Netns {
    pub(crate) fn new(name: String) -> Self {
        Self { name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec NAME program`: a command that runs `program` inside this namespace
    /// (`ip` execs it, so the child's pid is the program's own).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(ip_path());
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// The argument list that runs a program inside this namespace (for wrappers such as the
    /// end-to-end tests' `Get::under`); `ip` by its absolute path, so it also works in a
    /// cleared environment.
    pub fn exec_prefix(&self) -> Vec<std::ffi::OsString> {
        vec![
            ip_path().into(),
            "netns".into(),
            "exec".into(),
            self.name.clone().into(),
        ]
    }

    /// Runs `program args…` inside the namespace; its stdout, or what failed.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String, String> {
        run(self.command(program).args(args))
    }

    /// Runs `f` on a new thread that has entered this namespace and returns its result.
    /// Sockets created in `f` stay in the namespace wherever they are used afterwards.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = File::open(&path).unwrap_or_else(|e| {
                    panic!("cannot open {path} (the lab's namespace is gone?): {e}")
                });
                rustix::thread::move_into_link_name_space(
                    ns.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .unwrap_or_else(|e| panic!("cannot enter network namespace {path}: {e}"));
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Writes `value` to `/proc/sys/KEY` (dots for slashes) as seen from this namespace.
    pub(crate) fn sysctl(&self, key: &str, value: &str) -> Result<(), String> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.run(
            "sh",
            &["-c", "printf '%s\\n' \"$1\" > \"$2\"", "sh", value, &path],
        )
        .map(drop)
    }

    /// Reads `/proc/sys/KEY` as seen from this namespace.
    pub(crate) fn read_sysctl(&self, key: &str) -> Result<String, String> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.run("cat", &[&path]).map(|s| s.trim().to_owned())
    }
}

/// The three namespaces of one lab.
#[derive(Debug, Clone)]
pub struct Namespaces {
    pub client: Netns,
    pub router: Netns,
    pub server: Netns,
}

impl Namespaces {
    /// Names for the lab tagged `tag` (see `cleanup::LabTag`).
    pub(crate) fn named(tag: &str) -> Self {
        let ns = |role: &str| Netns::new(format!("{tag}-{role}"));
        Self {
            client: ns("c"),
            router: ns("r"),
            server: ns("s"),
        }
    }

    pub fn all(&self) -> [&Netns; 3] {
        [&self.client, &self.router, &self.server]
    }
}

/// Creates the namespaces, links, addresses and routes. On error, what exists is left for the
/// caller's teardown (which already owns the names).
pub(crate) fn build(ns: &Namespaces) -> Result<(), String> {
    for n in ns.all() {
        run(Command::new("ip").args(["netns", "add", n.name()])).map_err(|e| {
            format!(
                "cannot create network namespace {}: {e}\nThe WAN lab needs root (CAP_SYS_ADMIN \
                 and CAP_NET_ADMIN) and network namespaces; run the tests as root, as CI does. \
                 These tests fail rather than skip without it.",
                n.name()
            )
        })?;
    }
    let veth = |a: &Netns, a_if: &str, b: &Netns, b_if: &str| {
        run(Command::new("ip").args([
            "link",
            "add",
            a_if,
            "netns",
            a.name(),
            "type",
            "veth",
            "peer",
            "name",
            b_if,
            "netns",
            b.name(),
        ]))
    };
    veth(&ns.client, ENDPOINT_IF, &ns.router, ROUTER_CLIENT_IF)?;
    veth(&ns.server, ENDPOINT_IF, &ns.router, ROUTER_SERVER_IF)?;
    let links = [
        (&ns.client, ENDPOINT_IF, CLIENT_IP),
        (&ns.router, ROUTER_CLIENT_IF, ROUTER_CLIENT_SIDE_IP),
        (&ns.router, ROUTER_SERVER_IF, ROUTER_SERVER_SIDE_IP),
        (&ns.server, ENDPOINT_IF, SERVER_IP),
    ];
    for (n, dev, ip) in links {
        let ip_ns = |args: &[&str]| run(Command::new("ip").arg("-n").arg(n.name()).args(args));
        ip_ns(&["addr", "add", &format!("{ip}/24"), "dev", dev])?;
        n.run(
            "ethtool",
            &["-K", dev, "tso", "off", "gso", "off", "gro", "off"],
        )
        .map_err(|e| format!("turning off TSO/GSO/GRO on {dev} in {}: {e}", n.name()))?;
        ip_ns(&["link", "set", dev, "up"])?;
    }
    for n in ns.all() {
        run(Command::new("ip").args(["-n", n.name(), "link", "set", "lo", "up"]))?;
        // No IPv6: nothing in the lab uses it, and its router solicitations would be noise in
        // packet counts.
        n.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
    }
    ns.router.sysctl("net.ipv4.ip_forward", "1")?;
    add_default_routes(ns)
}

/// The client's and the server's default route via the router (removed when their link goes
/// down, so a link flap re-adds them).
pub(crate) fn add_default_routes(ns: &Namespaces) -> Result<(), String> {
    for (n, via) in [
        (&ns.client, ROUTER_CLIENT_SIDE_IP),
        (&ns.server, ROUTER_SERVER_SIDE_IP),
    ] {
        run(Command::new("ip").args([
            "-n",
            n.name(),
            "route",
            "replace",
            "default",
            "via",
            &via.to_string(),
            "dev",
            ENDPOINT_IF,
        ]))?;
    }
    Ok(())
}
