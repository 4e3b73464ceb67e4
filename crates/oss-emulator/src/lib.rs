#![forbid(unsafe_code)]
//! A local, OSS-compatible HTTP/1.1 server for tests, benchmarks and demos.
//!
//! - The object API subset a downloader needs: bucket create / head / info / list, object
//!   PUT / HEAD / GET (with `Range`, conditionals, `versionId`) / DELETE, versioning;
//!   virtual-hosted (`BUCKET.localhost:PORT`) and path-style addressing.
//! - OSS's wire behaviour: range rules (legacy vs `x-oss-range-behavior: standard`),
//!   quoted upper-case MD5 ETags, `x-oss-hash-crc64ecma` (whole object, also on ranges),
//!   XML errors with `Code`/`Message`/`RequestId`/`HostId`/`EC`, never compressed.
//! - Strict signatures: V1 and V4, header and presigned forms, STS tokens, recomputed with
//!   `backend_oss::sign`; an anonymous mode for public-read objects.
//! - Storage in memory or in a directory, served in 64 KiB chunks (bounded memory).
//! - Fault injection from a seeded, declarative [`FaultPlan`], logged per request.
//!
//! ```
//! use oss_emulator::{AccessKey, Emulator, EmulatorConfig};
//!
//! let emu = Emulator::start(EmulatorConfig::new().access_key(AccessKey::new("ak", "sk")))?;
//! emu.create_bucket("bkt")?;
//! let info = emu.put_object("bkt", "hello.txt", b"hello world")?;
//! assert_eq!(info.etag, "\"5EB63BBBE01EEED093CB22BB8F5ACDC3\"");
//! assert!(emu.endpoint().starts_with("http://127.0.0.1:"));
//! # Ok::<(), oss_emulator::EmulatorError>(())
//! ```

mod auth;
mod config;
mod error;
mod fault;
mod range;
mod server;
mod store;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

pub use auth::AuthMethod;
pub use config::{AccessKey, EmulatorConfig, Storage};
pub use error::EmulatorError;
pub use fault::{Fault, FaultEvent, FaultPlan, FaultRule, Match};
pub use range::{RangeOutcome, resolve as resolve_range};
pub use server::RequestRecord;
pub use store::{BucketOptions, ObjectInfo, Versioning, valid_bucket_name};

use server::Shared;
use store::{Lookup, NewObject, Store};

/// A running emulator. Stops (and closes its port) when dropped.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: tokio::sync::watch::Sender<bool>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Emulator {
    /// Binds `config.listen` (loopback only) and serves on a runtime of its own (two worker
    /// threads), so it can be used from synchronous tests and from any async runtime.
    pub fn start(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        if !config.listen.ip().is_loopback() {
            return Err(EmulatorError::NotLoopback(config.listen));
        }
        let store = match &config.storage {
            config::Storage::Memory => Store::memory(),
            config::Storage::Directory(root) => Store::directory(root)?,
        };
        let std_listener =
            std::net::TcpListener::bind(config.listen).map_err(|source| EmulatorError::Bind {
                addr: config.listen,
                source,
            })?;
        std_listener
            .set_nonblocking(true)
            .map_err(|source| EmulatorError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = std_listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: config.listen,
                source,
            })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("oss-emulator")
            .enable_all()
            .build()
            .map_err(EmulatorError::Runtime)?;
        let instance = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(7))
            .unwrap_or(0)
            ^ std::process::id().rotate_left(16)
            ^ addr.port() as u32;
        let shared = Arc::new(Shared {
            store,
            verifier: auth::Verifier {
                keys: config.access_keys.clone(),
                region: config.region.clone(),
                max_skew: config.max_clock_skew,
                enabled: config.verify_signatures,
            },
            faults: fault::Faults::new(config.faults.clone()),
            anonymous_read: config.anonymous_read,
            service_domains: config
                .service_domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            instance,
            log: Mutex::new(Vec::new()),
            body_sent: Mutex::new(Default::default()),
        });
        let (shutdown, rx) = tokio::sync::watch::channel(false);
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener).map_err(|source| {
                EmulatorError::Bind {
                    addr: config.listen,
                    source,
                }
            })?
        };
        runtime.spawn(server::serve(listener, shared.clone(), rx));
        tracing::info!(%addr, keys = config.access_keys.len(), anonymous_read = config.anonymous_read, "OSS emulator listening");
        Ok(Self {
            addr,
            shared,
            shutdown,
            runtime: Some(runtime),
        })
    }

    /// The bound address (the real port when `listen` had port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the endpoint for clients (path-style addressing).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `BUCKET.localhost:PORT`: a `Host` header value that addresses `bucket`
    /// virtual-hosted style (connect to [`addr`](Self::addr)).
    pub fn virtual_host(&self, bucket: &str) -> String {
        format!("{bucket}.localhost:{}", self.addr.port())
    }

    /// Creates a private, unversioned bucket.
    pub fn create_bucket(&self, name: &str) -> Result<(), EmulatorError> {
        self.create_bucket_with(name, BucketOptions::default())
    }

    pub fn create_bucket_with(
        &self,
        name: &str,
        options: BucketOptions,
    ) -> Result<(), EmulatorError> {
        if self.shared.store.create_bucket(name, options)? {
            Ok(())
        } else {
            Err(EmulatorError::BucketExists(name.to_string()))
        }
    }

    /// Enables or suspends versioning (once enabled, `Disabled` means `Suspended`).
    pub fn set_versioning(&self, bucket: &str, v: Versioning) -> Result<(), EmulatorError> {
        self.shared.store.set_versioning(bucket, v)
    }

    pub fn set_public_read(&self, bucket: &str, public: bool) -> Result<(), EmulatorError> {
        self.shared.store.set_public_read(bucket, public)
    }

    /// Stores `data` as the new current version of `key`.
    pub fn put_object(
        &self,
        bucket: &str,
        key: &str,
        data: impl AsRef<[u8]>,
    ) -> Result<ObjectInfo, EmulatorError> {
        self.put_object_from_reader(bucket, key, data.as_ref())
    }

    /// Streams `reader` into a new version of `key` (bounded memory in directory mode).
    pub fn put_object_from_reader(
        &self,
        bucket: &str,
        key: &str,
        reader: impl Read,
    ) -> Result<ObjectInfo, EmulatorError> {
        let v = self
            .shared
            .store
            .put_reader(bucket, key, reader, NewObject::default())?;
        Ok(v.info(bucket))
    }

    fn find(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<Arc<store::Version>, EmulatorError> {
        match self.shared.store.lookup(bucket, key, version) {
            Lookup::Found(v) => Ok(v),
            Lookup::NoSuchBucket => Err(EmulatorError::NoSuchBucket(bucket.to_string())),
            Lookup::NoSuchVersion => Err(EmulatorError::NoSuchVersion {
                key: key.to_string(),
                version: version.unwrap_or("").to_string(),
            }),
            Lookup::NoSuchKey | Lookup::DeleteMarker(_) => {
                Err(EmulatorError::NoSuchKey(key.to_string()))
            }
        }
    }

    /// The bytes of the current version.
    pub fn get_object(&self, bucket: &str, key: &str) -> Result<Vec<u8>, EmulatorError> {
        let v = self.find(bucket, key, None)?;
        self.shared.store.read_all(&v)
    }

    /// The bytes of one version (`"null"` names the version without an id).
    pub fn get_object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Vec<u8>, EmulatorError> {
        let v = self.find(bucket, key, Some(version_id))?;
        self.shared.store.read_all(&v)
    }

    /// Metadata of the current version.
    pub fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectInfo, EmulatorError> {
        Ok(self.find(bucket, key, None)?.info(bucket))
    }

    /// Every version of `key`, oldest first (delete markers included).
    pub fn object_versions(&self, bucket: &str, key: &str) -> Vec<ObjectInfo> {
        self.shared
            .store
            .versions(bucket, key)
            .iter()
            .map(|v| v.info(bucket))
            .collect()
    }

    /// Deletes `key` (adds a delete marker in a versioned bucket).
    pub fn delete_object(&self, bucket: &str, key: &str) -> Result<(), EmulatorError> {
        self.shared.store.delete(bucket, key, None).map(|_| ())
    }

    /// Replaces `key` with different content (every byte changed, seeded), as the
    /// `change_object` fault does. Returns the new version.
    pub fn change_object(
        &self,
        bucket: &str,
        key: &str,
        seed: u64,
    ) -> Result<ObjectInfo, EmulatorError> {
        Ok(self
            .shared
            .store
            .mutate(bucket, key, seed, None)?
            .info(bucket))
    }

    /// Replaces the fault plan (rule counters restart; request numbers go on).
    pub fn set_fault_plan(&self, plan: FaultPlan) {
        self.shared.faults.set_plan(plan);
    }

    pub fn clear_fault_plan(&self) {
        self.shared.faults.set_plan(FaultPlan::default());
    }

    /// Every fault injected so far, in order.
    pub fn fault_log(&self) -> Vec<FaultEvent> {
        self.shared.faults.log()
    }

    /// Every request answered (or reset) so far, in order of completion of their heads.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        let mut log = self
            .shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let sent = self
            .shared
            .body_sent
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for r in &mut log {
            if let Some(n) = sent.get(&r.number) {
                r.body_bytes = n.load(std::sync::atomic::Ordering::Relaxed);
            }
        }
        log
    }

    /// Empties both logs.
    pub fn clear_logs(&self) {
        self.shared.faults.clear_log();
        self.shared
            .body_sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Requests received so far (the number the next one gets, minus one).
    pub fn request_count(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Stops the server and closes every connection.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(rt) = self.runtime.take() {
            // Does not block, so it is fine inside another runtime too.
            rt.shutdown_background();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}
