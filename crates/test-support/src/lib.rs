//! Helpers for tests that drive real processes and real servers on 127.0.0.1 (and, with
//! [`netlab`], over an emulated WAN in network namespaces): a shared Python
//! virtualenv with packages from PyPI, port polling (never sleeps), child processes that
//! are killed when the test ends, and an HTTP relay that makes faults in flight ([`relay`]).
//!
//! Every wait here is bounded in time and count, and every failure panics with what to do:
//! a missing PyPI or server binary fails the test loudly, it never skips it.
#![forbid(unsafe_code)]

pub mod gcs;
pub mod netlab;
pub mod origin;
pub mod relay;

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace's `target/` directory (or `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("Cargo.lock").exists() {
        assert!(
            dir.pop(),
            "cannot find the workspace root above {}",
            env!("CARGO_MANIFEST_DIR")
        );
    }
    dir.join("target")
}

/// A Python interpreter in a virtualenv (under `target/test-venv`) that has `packages`
/// installed (pip requirement specifiers, e.g. `"oss2==2.19.1"`).
///
/// Created once and reused; concurrent test processes serialise on a file lock. Panics with
/// a clear message if Python or PyPI is unavailable.
pub fn python_with(packages: &[&str]) -> PathBuf {
    let venv = target_dir().join("test-venv");
    fs::create_dir_all(&venv).expect("create target/test-venv");
    let lock = File::create(venv.join(".lock")).expect("create venv lock file");
    lock.lock().expect("lock the test venv");
    let python = venv.join("bin").join("python");
    if !python.exists() {
        let host = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        run_checked(
            Command::new(&host).arg("-m").arg("venv").arg(&venv),
            &format!("create a virtualenv with {host} (install python3 and python3-venv)"),
        );
    }
    let mut missing = Vec::new();
    for p in packages {
        let marker = venv.join(format!(".installed-{}", sanitize(p)));
        if !marker.exists() {
            missing.push((*p, marker));
        }
    }
    if !missing.is_empty() {
        let mut cmd = Command::new(&python);
        cmd.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ]);
        cmd.args(missing.iter().map(|(p, _)| *p));
        run_checked(
            &mut cmd,
            "install Python packages from PyPI (is PyPI reachable? this test needs it and \
             does not skip without it)",
        );
        for (_, marker) in missing {
            File::create(marker).expect("write venv marker");
        }
    }
    python
}

/// The executable `bin` of the npm package `package` (an exact `name@version`), installed
/// into `target/test-node` with the machine's npm.
///
/// Installed once and reused; concurrent test processes serialise on a file lock. Panics with
/// a clear message if npm or the npm registry is unavailable.
pub fn npm_bin(package: &str, bin: &str) -> PathBuf {
    let prefix = target_dir().join("test-node");
    fs::create_dir_all(&prefix).expect("create target/test-node");
    let lock = File::create(prefix.join(".lock")).expect("create npm lock file");
    lock.lock().expect("lock target/test-node");
    let marker = prefix.join(format!(".installed-{}", sanitize(package)));
    let path = prefix.join("node_modules").join(".bin").join(bin);
    if !marker.exists() || !path.exists() {
        let npm = find_program("npm").unwrap_or_else(|| {
            panic!(
                "cannot install {package}: npm is not on PATH (install Debian's nodejs and npm); \
                 this test needs it and does not skip without it"
            )
        });
        run_checked(
            Command::new(npm)
                .args([
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--no-save",
                    "--prefix",
                ])
                .arg(&prefix)
                .arg(package),
            &format!(
                "install {package} from the npm registry (is it reachable? this test needs it \
                 and does not skip without it)"
            ),
        );
        File::create(&marker).expect("write npm marker");
    }
    assert!(path.exists(), "{package} has no executable {bin}");
    path
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn run_checked(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot {what}: cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "cannot {what}: {cmd:?} exited with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until something accepts TCP connections on `addr`, polling every 20 ms, at most
/// `timeout`. Panics with `what` if it never does.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not accept connections on {addr} within {timeout:?} ({attempts} attempts)"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts Debian's nginx (found with [`find_program`]) as this user, in the foreground, with
/// everything it writes (pid, error log, temp files, `nginx.conf`) under `dir`, listening on a
/// free port of 127.0.0.1. `http` adds directives to the `http` block, `server` to the one
/// `server` block (its `listen` is set here). Returns the address once it accepts
/// connections; the guard kills it.
pub fn start_nginx(
    dir: &Path,
    http: &str,
    server: &str,
) -> Result<(SocketAddr, ChildGuard), String> {
    let nginx = find_program("nginx").ok_or_else(|| {
        "nginx is not installed (looked on PATH and in /usr/sbin); `apt-get install -y \
         nginx-light` (`.ci/run` does)"
            .to_string()
    })?;
    fs::create_dir_all(dir.join("tmp")).map_err(|e| format!("nginx dir {}: {e}", dir.display()))?;
    let port = free_port();
    let d = dir.display();
    let conf = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    default_type application/octet-stream;
{http}
    server {{
        listen 127.0.0.1:{port};
{server}
    }}
}}
"#
    );
    let conf_path = dir.join("nginx.conf");
    fs::write(&conf_path, conf).map_err(|e| format!("write {}: {e}", conf_path.display()))?;
    let mut cmd = Command::new(nginx);
    cmd.arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf_path)
        .arg("-e")
        .arg(dir.join("error.log"));
    let guard = ChildGuard::spawn(&mut cmd, "nginx");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_for_port(addr, Duration::from_secs(20), "nginx");
    Ok((addr, guard))
}

/// Writes `bytes` to `path` and dates its modification 2004-01-10, so that any later change
/// moves the mtime however coarse the file system's clock is.
pub fn write_with_old_mtime(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    let old = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 30);
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(old))
        .unwrap_or_else(|e| panic!("set the mtime of {}: {e}", path.display()));
}

/// A free TCP port on 127.0.0.1 (bound and released; for servers that cannot take port 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}

/// A child process killed (SIGKILL) and reaped when dropped, so a failing test never leaks a
/// server.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    name: String,
}

impl ChildGuard {
    /// Spawns `cmd` with stdin closed; `name` is used in panic messages.
    pub fn spawn(cmd: &mut Command, name: &str) -> Self {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Self {
            child: Some(child),
            name: name.to_owned(),
        }
    }

    /// Spawns `cmd` with stdout piped and returns the first line it prints (servers that bind
    /// port 0 print their address first), waiting at most `timeout`.
    pub fn spawn_reading_first_line(
        cmd: &mut Command,
        name: &str,
        timeout: Duration,
    ) -> (Self, String) {
        cmd.stdout(Stdio::piped());
        let mut guard = Self::spawn(cmd, name);
        let stdout = guard
            .child
            .as_mut()
            .and_then(|c| c.stdout.take())
            .expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
            // Keep draining so the child never blocks on a full pipe.
            let mut sink = String::new();
            while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        let line = match rx.recv_timeout(timeout) {
            Ok(Ok(l)) if !l.is_empty() => l.trim().to_owned(),
            other => {
                let status = guard
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                panic!(
                    "{name} printed no first line within {timeout:?} ({other:?}, exit {status:?})"
                )
            }
        };
        (guard, line)
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The child, for sending signals or waiting.
    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("child already taken")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            let _ = &self.name;
        }
    }
}

/// Finds an executable on PATH or in the usual sbin directories (nginx lives in /usr/sbin).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test, not two: a port released by `free_port` could be taken by a listener that a
    // parallel test binds to port 0.
    #[test]
    fn wait_for_port_gives_up_on_a_closed_port_and_returns_once_a_listener_exists() {
        let closed = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let r = std::panic::catch_unwind(|| {
            wait_for_port(closed, Duration::from_millis(200), "nothing")
        });
        let msg = r.expect_err("a closed port must not count as ready");
        let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("did not accept connections"), "{msg}");
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        wait_for_port(
            l.local_addr().unwrap(),
            Duration::from_secs(5),
            "test listener",
        );
    }

    #[test]
    fn first_line_of_a_child_is_read_and_the_child_killed_on_drop() {
        let (mut guard, line) = ChildGuard::spawn_reading_first_line(
            Command::new("sh").args(["-c", "echo 127.0.0.1:1234; exec sleep 30"]),
            "sh",
            Duration::from_secs(10),
        );
        assert_eq!(line, "127.0.0.1:1234");
        let pid = guard.id();
        assert!(guard.child_mut().try_wait().unwrap().is_none());
        drop(guard);
        assert!(
            !Path::new(&format!("/proc/{pid}/stat")).exists() || {
                // reaped: the pid may be reused, but not as our sleeping shell
                let s = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                !s.contains("sleep 30")
            }
        );
    }
}
