//! Shared by the integration tests: fixtures that write into a store, and the real servers
//! (moto's S3, nginx) started on 127.0.0.1 for the duration of one test.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use backend_object_store::object_store::path::Path as StorePath;
use backend_object_store::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use backend_object_store::{ObjectStoreSource, StoreOptions, from_url};
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use resume_core::conformance::{self, Capabilities, Fixture, Report};
use resume_core::{
    ObjectMeta, RangeRead, RangeSource, ReadConditions, SourceError, SourceErrorKind,
};
use test_support::{ChildGuard, free_port, python_with, start_nginx, wait_for_port};

/// The moto release the S3 tests run against (PyPI `moto[server]`).
pub const MOTO: &str = "moto[server]==5.2.5";

/// Writes through the same `ObjectStore` the source reads.
pub struct StoreFixture(pub Arc<dyn ObjectStore>);

#[async_trait::async_trait]
impl Fixture for StoreFixture {
    async fn put(&self, key: &str, content: Bytes) -> Result<(), String> {
        let path = StorePath::parse(key).map_err(|e| e.to_string())?;
        self.0
            .put(&path, PutPayload::from(content))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Writes files under a directory a web server serves (temp file + rename, so the server
/// never serves a half-written object).
pub struct DirFixture(pub PathBuf);

#[async_trait::async_trait]
impl Fixture for DirFixture {
    async fn put(&self, key: &str, content: Bytes) -> Result<(), String> {
        let path = self.0.join(key);
        let dir = path.parent().ok_or("key without a parent")?;
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let tmp = dir.join(".incoming");
        std::fs::write(&tmp, &content).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &path).map_err(|e| e.to_string())
    }
}

/// What every object store offers the suite: etags, overwrites, no CRC-64.
pub const OBJECT_STORE: Capabilities = Capabilities {
    etag: true,
    crc64: false,
    overwrite: true,
};

/// Runs the conformance suite on `source`, writing objects through its own store, and fails
/// on any failure or on any skipped check but the CRC-64 one (no object store reports it).
pub async fn assert_store_conforms(name: &str, source: &ObjectStoreSource) {
    let scratch = tempfile::tempdir().expect("scratch dir");
    let report = conformance::run(
        Arc::new(source.clone()),
        &StoreFixture(source.store().clone()),
        OBJECT_STORE,
        "",
        scratch.path(),
    )
    .await;
    assert_report(name, &report, &["stat_reports_the_whole_object_crc64"]);
}

/// Prints what a conformance run did (visible with `--nocapture`) and fails on any failure.
pub fn assert_report(store: &str, report: &Report, expect_skipped: &[&str]) {
    println!(
        "{store}: {} passed, {} skipped {:?}",
        report.passed.len(),
        report.skipped.len(),
        report.skipped
    );
    report.assert_clean();
    let mut skipped: Vec<&str> = report.skipped.iter().map(String::as_str).collect();
    skipped.sort_unstable();
    let mut want = expect_skipped.to_vec();
    want.sort_unstable();
    assert_eq!(skipped, want, "{store}: skipped checks");
}

/// Starts `bin` with `args(port)` for a free port on 127.0.0.1, output discarded, and waits
/// (bounded) until it accepts connections there.
fn serve_on_free_port(
    bin: &Path,
    name: &str,
    args: impl FnOnce(u16) -> Vec<String>,
) -> (SocketAddr, ChildGuard) {
    serve_on_free_port_with_env(bin, name, args, &[])
}

fn serve_on_free_port_with_env(
    bin: &Path,
    name: &str,
    args: impl FnOnce(u16) -> Vec<String>,
    env: &[(&str, &str)],
) -> (SocketAddr, ChildGuard) {
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut cmd = Command::new(bin);
    cmd.envs(env.iter().copied());
    cmd.args(args(port))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let guard = ChildGuard::spawn(&mut cmd, name);
    wait_for_port(addr, Duration::from_secs(60), name);
    (addr, guard)
}

/// A moto S3 server on 127.0.0.1, killed when dropped.
pub struct Moto {
    pub endpoint: String,
    pub addr: SocketAddr,
    _guard: ChildGuard,
}

impl Moto {
    /// Starts `moto_server` from the shared test venv (installed from PyPI on first use; no
    /// PyPI fails the test) on an ephemeral port and waits until it accepts connections.
    pub fn start() -> Self {
        Self::start_with(&[MOTO], &[])
    }

    /// [`Moto::start`] from a venv with `packages` (moto among them) and with these
    /// environment variables (moto's settings, e.g. `S3_UPLOAD_PART_MIN_SIZE`). Run as
    /// `python -m moto.server`, so the venv's own interpreter runs it wherever the venv is.
    pub fn start_with(packages: &[&str], env: &[(&str, &str)]) -> Self {
        let python = python_with(packages);
        let args = |port: u16| {
            vec![
                "-m".into(),
                "moto.server".into(),
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
            ]
        };
        let (addr, guard) = serve_on_free_port_with_env(&python, "moto_server", args, env);
        Self {
            endpoint: format!("http://{addr}"),
            addr,
            _guard: guard,
        }
    }

    /// Options for a source on this server: path-style, plain HTTP, fake credentials,
    /// nothing from the process environment.
    pub fn options(&self) -> StoreOptions {
        StoreOptions::new()
            .no_env()
            .endpoint(&self.endpoint)
            .allow_http(true)
            .path_style()
            .region("us-east-1")
            .config("aws_access_key_id", "testing")
            .config("aws_secret_access_key", "testing")
            // Credentials are given, so the instance metadata service is never asked; should
            // that change, the request goes to a refusing loopback port, never 169.254.169.254.
            .config(
                "aws_metadata_endpoint",
                format!("http://127.0.0.1:{}", free_port()),
            )
    }

    /// A source for `bucket`, built from an `s3://` URL as a user would.
    pub fn source(&self, bucket: &str) -> ObjectStoreSource {
        from_url(&format!("s3://{bucket}/any"), &self.options())
            .expect("S3 source")
            .0
    }

    /// Creates a bucket (moto accepts unsigned requests).
    pub fn create_bucket(&self, bucket: &str) {
        self.raw("PUT", &format!("/{bucket}"), b"");
    }

    /// Turns on versioning for a bucket.
    pub fn enable_versioning(&self, bucket: &str) {
        self.raw(
            "PUT",
            &format!("/{bucket}?versioning"),
            b"<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
              <Status>Enabled</Status></VersioningConfiguration>",
        );
    }

    /// Writes an object with any key, also one object_store cannot name (`dir/`), as an
    /// unsigned PUT; `key` is percent-encoded by the caller where needed.
    pub fn put_raw(&self, bucket: &str, key: &str, body: &[u8]) {
        self.raw("PUT", &format!("/{bucket}/{key}"), body);
    }

    fn raw(&self, method: &str, target: &str, body: &[u8]) {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut response = String::new();
        let _ = s.read_to_string(&mut response);
        assert!(
            response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
            "{method} {target} on moto: {response}"
        );
    }
}

/// An nginx on 127.0.0.1 serving `root` (a tempdir the test writes into), killed when
/// dropped. Locations: `/etag/…` plain static files (ETag, ranges, If-Match); `/noetag/…`
/// with `etag off`; `/norange/…` with `max_ranges 0` (ignores Range: 200, whole file);
/// `/denied/…` 403; `/unavailable/…` 503.
pub struct Nginx {
    pub base: String,
    pub root: PathBuf,
    _dir: tempfile::TempDir,
    _guard: ChildGuard,
}

impl Nginx {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for sub in ["etag", "noetag", "norange", "denied"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        let server = format!(
            "        root {};
        location /noetag/ {{ etag off; }}
        location /norange/ {{ max_ranges 0; }}
        location /denied/ {{ deny all; }}
        location /unavailable/ {{ return 503; }}",
            root.display()
        );
        // No keep-alive: nginx may close a connection right after a 412 (stale If-Match)
        // while the pooled client sends the next request on it ("connection closed before
        // message completed", about 1 run in 12). The engine retries that like any transient
        // failure; the conformance suite's single requests do not, and are about semantics.
        let (addr, guard) = start_nginx(dir.path(), "    keepalive_timeout 0;", &server)
            .unwrap_or_else(|e| {
                panic!(
                    "{e}. The HTTP conformance tests need nginx and do not skip; on a developer \
                 machine install it."
                )
            });
        Self {
            base: format!("http://{addr}"),
            root,
            _dir: dir,
            _guard: guard,
        }
    }

    /// A source for this server, built from an `http://` URL as a user would.
    pub fn source(&self) -> ObjectStoreSource {
        from_url(&format!("{}/any", self.base), &StoreOptions::new().no_env())
            .expect("HTTP source")
            .0
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// The Azurite release the Azure tests run against (npm `azurite`).
pub const AZURITE: &str = "azurite@3.35.0";
/// The Python SDK that creates containers on it (PyPI `azure-storage-blob`).
pub const AZURE_BLOB_SDK: &str = "azure-storage-blob==12.26.0";
/// Azurite's fixed development account and its published key (not a secret).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Azurite's blob service on 127.0.0.1 (in memory, no telemetry), killed when dropped.
pub struct Azurite {
    /// The account's base URL, path-style: `http://127.0.0.1:PORT/devstoreaccount1`.
    pub endpoint: String,
    pub addr: SocketAddr,
    _guard: ChildGuard,
}

impl Azurite {
    /// Starts `azurite-blob` (installed from npm on first use; no npm fails the test) on an
    /// ephemeral port and waits until it accepts connections.
    pub fn start() -> Self {
        let bin = test_support::npm_bin(AZURITE, "azurite-blob");
        let (addr, guard) = serve_on_free_port(&bin, "azurite-blob", |port| {
            let mut args: Vec<String> = vec!["--blobHost".into(), "127.0.0.1".into()];
            args.extend(["--blobPort".into(), port.to_string()]);
            // Memory only, nothing sent to Microsoft, no access log.
            args.extend(
                ["--inMemoryPersistence", "--disableTelemetry", "--silent"].map(String::from),
            );
            args
        });
        Self {
            endpoint: format!("http://{addr}/{AZURITE_ACCOUNT}"),
            addr,
            _guard: guard,
        }
    }

    /// Options for a source on this server: the development account and key, plain HTTP,
    /// nothing from the process environment.
    pub fn options(&self) -> StoreOptions {
        StoreOptions::new()
            .no_env()
            .endpoint(&self.endpoint)
            .allow_http(true)
            .config("azure_storage_account_name", AZURITE_ACCOUNT)
            .config("azure_storage_account_key", AZURITE_KEY)
    }

    /// A source for `container`, built from an `az://` URL as a user would.
    pub fn source(&self, container: &str) -> ObjectStoreSource {
        from_url(&format!("az://{container}/any"), &self.options())
            .expect("Azure source")
            .0
    }

    /// Creates a container with Microsoft's Python SDK (object_store cannot).
    pub fn create_container(&self, container: &str) {
        let python = python_with(&[AZURE_BLOB_SDK]);
        let conn = format!(
            "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};\
             BlobEndpoint={};",
            self.endpoint
        );
        let out = Command::new(python)
            .args([
                "-c",
                "import sys\nfrom azure.storage.blob import BlobServiceClient\n\
                 BlobServiceClient.from_connection_string(sys.argv[1]).create_container(sys.argv[2])",
                &conn,
                container,
            ])
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "creating container {container} on Azurite failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A real source with one fault, for the checksum tests.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Read number n (0-based) has the byte at this offset of its body flipped.
    FlipOnRead(u64, usize),
    /// Reads after the first n are denied.
    DenyAfter(u64),
}

pub struct Faulty {
    inner: ObjectStoreSource,
    fault: Fault,
    reads: AtomicU64,
}

impl Faulty {
    pub fn new(inner: ObjectStoreSource, fault: Fault) -> Self {
        Self {
            inner,
            fault,
            reads: AtomicU64::new(0),
        }
    }
}

impl fmt::Debug for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faulty")
            .field("fault", &self.fault)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl RangeSource for Faulty {
    fn identity(&self) -> String {
        self.inner.identity()
    }

    async fn stat(&self, key: &str, version_id: Option<&str>) -> Result<ObjectMeta, SourceError> {
        self.inner.stat(key, version_id).await
    }

    async fn read_range(
        &self,
        key: &str,
        range: Range<u64>,
        conditions: &ReadConditions,
    ) -> Result<RangeRead, SourceError> {
        let n = self.reads.fetch_add(1, Ordering::Relaxed);
        match self.fault {
            Fault::DenyAfter(limit) if n >= limit => {
                return Err(SourceError::new(
                    SourceErrorKind::Denied,
                    "denied by the test",
                ));
            }
            _ => {}
        }
        let read = self.inner.read_range(key, range, conditions).await?;
        let Fault::FlipOnRead(which, at) = self.fault else {
            return Ok(read);
        };
        if n != which {
            return Ok(read);
        }
        let mut seen = 0usize;
        let body = read
            .body
            .map(move |chunk| {
                chunk.map(|c| {
                    let start = seen;
                    seen += c.len();
                    if (start..seen).contains(&at) {
                        let mut v = c.to_vec();
                        v[at - start] ^= 0x01;
                        Bytes::from(v)
                    } else {
                        c
                    }
                })
            })
            .boxed();
        Ok(RangeRead { body, ..read })
    }
}
