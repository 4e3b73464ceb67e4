//! The `oss-emulator` binary in a WAN lab's server namespace (`test_support::netlab`), and
//! `resume-get` commands that run in its client namespace.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use test_support::ChildGuard;
use test_support::netlab::Lab;

use super::{AK, BUCKET, Get, SK, binary, emulator_config, oss_url};

/// An emulator process in `lab`'s server namespace, serving objects from a directory,
/// reachable from the client namespace at `SERVER_IP:port`. Killed when dropped (and with the
/// lab's namespaces in any case).
#[derive(Debug)]
pub struct WanServer {
    endpoint: String,
    client_prefix: Vec<std::ffi::OsString>,
    _process: ChildGuard,
    _root: tempfile::TempDir,
}

impl WanServer {
    /// Stores `objects` (key, bytes) in bucket [`BUCKET`] (through an in-process emulator's
    /// own PUT, so ETags and CRC-64s are computed as for any upload), then serves them from the
    /// server namespace with the test credentials and signature checks on.
    pub fn start(lab: &Lab, objects: &[(&str, &[u8])]) -> Self {
        let root = tempfile::tempdir().expect("create the emulator's storage directory");
        {
            let loader = oss_emulator::Emulator::start(emulator_config().directory(root.path()))
                .expect("start an emulator to store the objects");
            loader
                .create_bucket(BUCKET)
                .expect("create the test bucket");
            for (key, bytes) in objects {
                loader
                    .put_object(BUCKET, key, bytes)
                    .unwrap_or_else(|e| panic!("put {key}: {e}"));
            }
            loader.shutdown();
        }
        let mut cmd: Command = lab.server().command(binary("oss-emulator"));
        cmd.arg("--root")
            .arg(root.path())
            .args(["--access-key", &format!("{AK}:{SK}")])
            .args(["--listen", "127.0.0.1:0", "--log-level", "warn"]);
        let (process, line) = ChildGuard::spawn_reading_first_line(
            &mut cmd,
            "oss-emulator (lab server namespace)",
            Duration::from_secs(30),
        );
        let local: SocketAddr = line
            .parse()
            .unwrap_or_else(|_| panic!("the emulator printed {line:?}, not its address"));
        let addr = lab.expose(local.port());
        Self {
            endpoint: format!("http://{addr}"),
            client_prefix: lab.client().exec_prefix(),
            _process: process,
            _root: root,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `resume-get oss://BUCKET/KEY DEST`, run in the lab's client namespace.
    pub fn get(&self, key: &str, dest: &Path) -> Get {
        Get::new(&self.endpoint, &oss_url(key), dest).under(self.client_prefix.clone())
    }
}
