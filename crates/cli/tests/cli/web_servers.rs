//! Real web servers from Debian, started by a test on 127.0.0.1 as plain child processes with
//! every file they write in a temp dir: Apache httpd, lighttpd, Caddy (HTTPS with its own
//! internal CA, HTTP/2 by ALPN), Python's `http.server`. A missing server fails the test with
//! what to install (`.ci/run` installs them); none is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use test_support::{ChildGuard, find_program, free_port, wait_for_port};

/// A server serving `root`; killed when dropped.
pub struct WebServer {
    /// `http://127.0.0.1:PORT` (or https).
    pub base: String,
    pub root: PathBuf,
    /// Where the server writes its files (logs, pid, CA).
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
    _guard: ChildGuard,
}

impl WebServer {
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    /// Writes `bytes` as `name` under the root, readable by the server's unprivileged user.
    pub fn put(&self, name: &str, bytes: &[u8]) {
        let path = self.root.join(name);
        std::fs::write(&path, bytes).unwrap();
        set_mode(&path, 0o644);
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn program(name: &str, package: &str) -> PathBuf {
    find_program(name).unwrap_or_else(|| {
        panic!(
            "{name} is not installed: `apt-get install -y {package}` (`.ci/run` does); this \
             test needs it and does not skip"
        )
    })
}

/// A temp dir the servers' unprivileged workers can read (`tempfile` makes it 0700).
fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    set_mode(&dir, 0o755);
    let root = dir.join("root");
    std::fs::create_dir(&root).unwrap();
    set_mode(&root, 0o755);
    (tmp, dir, root)
}

fn started(
    cmd: &mut Command,
    name: &str,
    port: u16,
    scheme: &str,
    tmp: tempfile::TempDir,
    dir: PathBuf,
    root: PathBuf,
) -> WebServer {
    let guard = ChildGuard::spawn(cmd, name);
    wait_for_port(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(30),
        name,
    );
    WebServer {
        base: format!("{scheme}://127.0.0.1:{port}"),
        root,
        dir,
        _tmp: tmp,
        _guard: guard,
    }
}

/// Debian's `apache2`, one process in the foreground (`-X`), static files with its default
/// ETags (`W/"…"` for a second after a file changes).
pub fn apache() -> WebServer {
    let bin = program("apache2", "apache2");
    let (tmp, dir, root) = dirs();
    let port = free_port();
    let modules = "/usr/lib/apache2/modules";
    let d = dir.display();
    let conf = format!(
        r#"ServerRoot "{d}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{d}/httpd.pid"
ErrorLog "{d}/error.log"
DefaultRuntimeDir "{d}"
Mutex file:{d}
User nobody
Group nogroup
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
DocumentRoot "{root}"
<Directory "{root}">
    Require all granted
</Directory>
"#,
        root = root.display()
    );
    let conf_path = dir.join("httpd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("-X").arg("-f").arg(&conf_path);
    started(&mut cmd, "apache2", port, "http", tmp, dir, root)
}

/// Debian's `lighttpd` in the foreground (`-D`).
pub fn lighttpd() -> WebServer {
    let bin = program("lighttpd", "lighttpd");
    let (tmp, dir, root) = dirs();
    let port = free_port();
    let conf = format!(
        r#"server.document-root = "{root}"
server.bind = "127.0.0.1"
server.port = {port}
server.username = "nobody"
server.groupname = "nogroup"
mimetype.assign = ("" => "application/octet-stream")
"#,
        root = root.display(),
    );
    let conf_path = dir.join("lighttpd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new(bin);
    // Its error log goes to stderr (a log file would be opened after it drops to `nobody`).
    cmd.arg("-D")
        .arg("-f")
        .arg(&conf_path)
        .stderr(std::process::Stdio::null());
    started(&mut cmd, "lighttpd", port, "http", tmp, dir, root)
}

/// Debian's `caddy` serving HTTPS on 127.0.0.1 with its internal CA (root certificate at
/// [`caddy_root_ca`]), JSON access log at `DIR/access.log`.
pub fn caddy() -> WebServer {
    let bin = program("caddy", "caddy");
    let (tmp, dir, root) = dirs();
    let port = free_port();
    let d = dir.display();
    let conf = format!(
        r#"{{
    admin off
    skip_install_trust
    auto_https disable_redirects
    storage file_system {{
        root {d}/data
    }}
}}
https://127.0.0.1:{port} {{
    tls internal
    root * {root}
    file_server
    log {{
        output file {d}/access.log
        format json
    }}
}}
"#,
        root = root.display()
    );
    let conf_path = dir.join("Caddyfile");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new(bin);
    cmd.args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&conf_path)
        .env("HOME", &dir)
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    started(&mut cmd, "caddy", port, "https", tmp, dir, root)
}

/// The certificate of the CA Caddy's `tls internal` signs with (waits until it is written).
pub fn caddy_root_ca(server: &WebServer) -> PathBuf {
    let path = server.dir.join("data/pki/authorities/local/root.crt");
    for _ in 0..1000 {
        if path.exists() {
            return path;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("caddy wrote no root certificate at {}", path.display());
}

/// Python's `http.server` (no Range support: every GET is a 200 with the whole file).
pub fn python_http_server() -> WebServer {
    let bin = program("python3", "python3");
    let (tmp, dir, root) = dirs();
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
        .arg(&root)
        .arg(port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    started(
        &mut cmd,
        "python3 -m http.server",
        port,
        "http",
        tmp,
        dir,
        root,
    )
}
