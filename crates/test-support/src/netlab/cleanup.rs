//! Unique names, teardown, and the sweeper of labs a killed run left behind.
//!
//! Every lab's namespaces are named `rgl-PID.START-N-ROLE`: the creating process's pid and
//! start time (clock ticks after boot, from `/proc/self/stat`) and a per-process counter, so
//! labs of tests running in parallel (nextest: one process per test; cargo test: threads)
//! never collide, and a lab whose process is gone is recognisable as stale. Everything a lab
//! creates lives inside its namespaces (links, addresses, qdiscs, rules, the delay daemon), so
//! deleting them after killing the processes inside removes all of it.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::topology::Namespaces;

const PREFIX: &str = "rgl-";

/// Runs `cmd`; its stdout, or a message naming the command, its exit status and stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| {
        format!(
            "cannot run {cmd:?}: {e} (the WAN lab needs iproute2, nftables, iptables and \
             ethtool; `.ci/run` installs them)"
        )
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// This process's start time in clock ticks after boot (field 22 of `/proc/PID/stat`).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// A fresh tag for one lab of this process.
pub(crate) fn new_tag() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let pid = std::process::id();
    let start = start_time(pid).unwrap_or(0);
    format!(
        "{PREFIX}{pid}.{start}-{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether the process that created the lab tagged in `name` is gone.
fn is_stale(name: &str) -> bool {
    let Some(owner) = name.strip_prefix(PREFIX).and_then(|s| s.split('-').next()) else {
        return false;
    };
    let Some((pid, start)) = owner.split_once('.') else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    start_time(pid) != Some(start)
}

/// Kills every process inside namespace `name` (SIGKILL) and deletes it. Errors are
/// returned, not raised, so teardown continues with the other namespaces.
pub(crate) fn destroy(name: &str) -> Result<(), String> {
    if !std::path::Path::new("/run/netns").join(name).exists() {
        return Ok(());
    }
    // A namespace lives on while a process is in it, whatever `ip netns del` says.
    for _ in 0..50 {
        let pids = run(Command::new("ip").args(["netns", "pids", name]))?;
        let pids: Vec<i32> = pids
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    run(Command::new("ip").args(["netns", "del", name])).map(drop)
}

/// Deletes the namespaces of labs whose process is gone (a test run killed before its labs'
/// `Drop`). Returns the names removed. Labs of live processes are never touched.
pub fn sweep_stale() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(PREFIX) && is_stale(&name) {
            match destroy(&name) {
                Ok(()) => removed.push(name),
                Err(e) => eprintln!("netlab: cannot remove the stale lab namespace {name}: {e}"),
            }
        }
    }
    removed
}

/// Owns a lab's namespaces from before their creation: dropping it (normally, or while a
/// test unwinds from a panic, or after a failed setup) removes them and everything in them.
#[derive(Debug)]
pub(crate) struct Teardown {
    pub(crate) ns: Namespaces,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        for n in self.ns.all() {
            if let Err(e) = destroy(n.name()) {
                eprintln!("netlab: cannot remove namespace {}: {e}", n.name());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_unique_and_name_a_live_owner() {
        let (a, b) = (new_tag(), new_tag());
        assert_ne!(a, b);
        assert!(!is_stale(&format!("{a}-c")), "{a}: this process is alive");
        // Pids are below pid_max (at most 2^22), so this owner cannot be alive.
        assert!(is_stale("rgl-4194304.5-0-c"));
        assert!(!is_stale("other-namespace"));
        assert!(!is_stale("rgl-garbage"));
    }
}
