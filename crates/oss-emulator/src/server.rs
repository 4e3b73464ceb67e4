//! The HTTP/1.1 server: connections, requests (signature checks, faults), routing and
//! responses; the operations live in `server/bucket.rs`, `server/list.rs` and
//! `server/object.rs`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use futures::Stream;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::auth::{AuthMethod, Incoming as SignedParts, Verifier};
use crate::error::{ApiError, xml_escape};
use crate::fault::{Fault, FaultEvent, Faults, RequestFacts};
use crate::range::{RangeOutcome, resolve};
use crate::store::{
    CHUNK, Hasher, Lookup, NewObject, OpenData, Store, UploadSink, Version, Versioning,
};

mod bucket;
mod list;
mod object;

use bucket::{bucket_op, list_buckets};
use object::{delete_object, get_object, put_object};

/// Bodies of bucket-level PUTs (`?versioning`, `?acl`) are read up to this size.
const MAX_CONFIG_BODY: usize = 64 * 1024;
/// Longest wait for a flush before an injected cut (a safety net; flushes normally follow
/// at once).
const FLUSH_WAIT: Duration = Duration::from_secs(2);

pub(crate) type ResBody = UnsyncBoxBody<Bytes, BodyError>;

/// Why a response body stopped early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("injected fault: the connection is cut here")]
    Injected,
    #[error("reading the object failed: {0}")]
    Io(#[from] io::Error),
}

/// Returned by the service to make hyper drop the connection without answering.
#[derive(Debug, thiserror::Error)]
#[error("injected fault: connection reset before the response")]
pub(crate) struct Aborted;

/// One request as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestRecord {
    /// 1-based, in order of arrival.
    pub number: u64,
    pub request_id: String,
    pub method: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    /// Query keys (values are not kept: they can hold signatures and tokens).
    pub query_keys: Vec<String>,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// `None` when the connection was reset instead of answering.
    pub status: Option<u16>,
    pub error_code: Option<String>,
    pub auth: AuthMethod,
    pub access_key_id: Option<String>,
    /// Names of the faults injected into this request.
    pub faults: Vec<&'static str>,
    /// Bytes of the response body handed to the connection so far (when the log was read):
    /// what a client could have received of a GET, also one it stopped reading.
    pub body_bytes: u64,
    /// Requests in flight when this one arrived, itself included (a request is in flight
    /// until its answer's body is sent or abandoned).
    pub concurrent: u64,
}

/// State shared by every connection.
#[derive(Debug)]
pub(crate) struct Shared {
    pub store: Store,
    pub verifier: Verifier,
    pub faults: Faults,
    pub anonymous_read: bool,
    pub service_domains: Vec<String>,
    pub requests: AtomicU64,
    /// Requests received and not yet fully answered (their bodies sent or abandoned).
    pub in_flight: AtomicU64,
    pub instance: u32,
    pub log: Mutex<Vec<RequestRecord>>,
    /// Body bytes sent per request number (GET bodies only), for `RequestRecord::body_bytes`.
    pub body_sent: Mutex<std::collections::HashMap<u64, Arc<AtomicU64>>>,
}

impl Shared {
    fn record(&self, r: RequestRecord) {
        tracing::info!(
            request = r.number,
            request_id = %r.request_id,
            method = %r.method,
            bucket = r.bucket.as_deref().unwrap_or(""),
            key = r.key.as_deref().unwrap_or(""),
            status = r.status.unwrap_or(0),
            code = r.error_code.as_deref().unwrap_or(""),
            auth = ?r.auth,
            "request"
        );
        self.log.lock().unwrap_or_else(|p| p.into_inner()).push(r);
    }
}

// ---------------------------------------------------------------------------------------------
// Connections

/// Per-connection state the fault machinery needs.
#[derive(Debug, Default)]
pub(crate) struct ConnCtx {
    /// Completed flushes of the socket (all bytes hyper had buffered were written).
    flushes: AtomicU64,
    flush_waker: Mutex<Option<Waker>>,
    /// Reset (RST) instead of closing (FIN) when the connection is dropped.
    reset: AtomicBool,
    /// When the throttled stream may send its next byte.
    throttle_next: Mutex<Option<tokio::time::Instant>>,
}

impl ConnCtx {
    fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::SeqCst)
    }

    fn on_flush(&self) {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        if let Some(w) = self
            .flush_waker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            w.wake();
        }
    }

    /// Resolves once a flush completes after `mark` (taken before the last bytes were
    /// handed to hyper), i.e. once those bytes reached the socket.
    fn flushed_after(self: &Arc<Self>, mark: u64) -> impl Future<Output = ()> + Send + 'static {
        let ctx = self.clone();
        std::future::poll_fn(move |cx| {
            if ctx.flush_count() > mark {
                return Poll::Ready(());
            }
            *ctx.flush_waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
            if ctx.flush_count() > mark {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// Waits until `n` more bytes may be sent at `rate` bytes/s on this connection.
    async fn throttle(&self, n: usize, rate: u64) {
        let until = {
            let mut next = self.throttle_next.lock().unwrap_or_else(|p| p.into_inner());
            let now = tokio::time::Instant::now();
            let start = next.filter(|t| *t > now).unwrap_or(now);
            let end = start + Duration::from_secs_f64(n as f64 / rate.max(1) as f64);
            *next = Some(end);
            end
        };
        tokio::time::sleep_until(until).await;
    }
}

/// The socket, with flush notifications and reset-on-drop for fault injection.
struct FaultIo {
    inner: TcpStream,
    ctx: Arc<ConnCtx>,
}

impl AsyncRead for FaultIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = r {
            self.ctx.on_flush();
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Drop for FaultIo {
    fn drop(&mut self) {
        if self.ctx.reset.load(Ordering::SeqCst) {
            // SO_LINGER 0: close() sends RST, not FIN.
            let _ = self.inner.set_zero_linger();
        }
    }
}

/// Accepts connections until `shutdown` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tracing::debug!(%peer, "connection accepted");
                    tokio::spawn(serve_connection(stream, shared.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let ctx = Arc::new(ConnCtx::default());
    let io = TokioIo::new(FaultIo {
        inner: stream,
        ctx: ctx.clone(),
    });
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        let ctx = ctx.clone();
        async move { handle(req, shared, ctx).await }
    });
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(io, service)
        .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

/// What a request addresses.
#[derive(Debug, Clone)]
struct Target {
    bucket: Option<String>,
    key: Option<String>,
}

fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

fn parse_target(host: &str, raw_path: &str, domains: &[String]) -> Target {
    let host = host_without_port(host).to_ascii_lowercase();
    let virtual_bucket = domains.iter().find_map(|d| {
        host.strip_suffix(d.as_str())
            .and_then(|p| p.strip_suffix('.'))
            .filter(|b| !b.is_empty() && !b.contains('.'))
            .map(str::to_string)
    });
    let decode = backend_oss::encode::decode_path;
    let path = raw_path.strip_prefix('/').unwrap_or(raw_path);
    match virtual_bucket {
        Some(bucket) => Target {
            bucket: Some(bucket),
            key: (!path.is_empty()).then(|| decode(path)),
        },
        None => {
            if path.is_empty() {
                return Target {
                    bucket: None,
                    key: None,
                };
            }
            let (b, k) = path.split_once('/').unwrap_or((path, ""));
            Target {
                bucket: Some(decode(b)),
                key: (!k.is_empty()).then(|| decode(k)),
            }
        }
    }
}

/// The request, reduced to what the operations need.
struct Req {
    number: u64,
    request_id: String,
    method: Method,
    target: Target,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    host: String,
    body: Option<Incoming>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        crate::auth::header_value(&self.headers, name)
    }

    fn query(&self, name: &str) -> Option<&str> {
        crate::auth::query_value(&self.query, name)
    }

    fn has_query(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }
}

/// Faults that shape a GET body.
#[derive(Debug, Default, Clone)]
struct BodyFaults {
    /// Bytes into the body, or object offset, where the body is cut, and how.
    cut: Option<(CutAt, CutKind)>,
    throttle: Option<u64>,
    ignore_range: bool,
}

#[derive(Debug, Clone, Copy)]
enum CutAt {
    BodyBytes(u64),
    ObjectOffset(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CutKind {
    Reset,
    Close,
}

/// One request counted in [`Shared::in_flight`] until dropped.
struct InFlight {
    shared: Arc<Shared>,
    /// In flight when it arrived, itself included.
    concurrent: u64,
}

impl InFlight {
    fn enter(shared: &Arc<Shared>) -> Self {
        let concurrent = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        Self {
            shared: shared.clone(),
            concurrent,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request in flight until the body is dropped.
struct InFlightBody {
    inner: ResBody,
    _guard: InFlight,
}

impl Body for InFlightBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    conn: Arc<ConnCtx>,
) -> Result<Response<ResBody>, Aborted> {
    let number = shared.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let in_flight = InFlight::enter(&shared);
    let request_id = format!("{:08X}{:016X}", shared.instance, number);
    let (parts, body) = req.into_parts();
    let host = parts
        .headers
        .get(hyper::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or(parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("")
        .to_string();
    let target = parse_target(&host, parts.uri.path(), &shared.service_domains);
    let query = backend_oss::encode::parse_query(parts.uri.query().unwrap_or(""));
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    tracing::trace!(
        request = number,
        request_id = %request_id,
        method = %parts.method,
        path = parts.uri.path(),
        query_keys = ?query.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        header_names = ?headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        "request received"
    );
    let mut r = Req {
        number,
        request_id,
        method: parts.method,
        target,
        query,
        headers,
        host,
        body: Some(body),
    };
    let mut record = RequestRecord {
        number,
        request_id: r.request_id.clone(),
        method: r.method.to_string(),
        bucket: r.target.bucket.clone(),
        key: r.target.key.clone(),
        query_keys: r.query.iter().map(|(k, _)| k.clone()).collect(),
        range: r.header("range").map(str::to_string),
        status: None,
        error_code: None,
        auth: AuthMethod::Anonymous,
        access_key_id: None,
        faults: Vec::new(),
        body_bytes: 0,
        concurrent: in_flight.concurrent,
    };
    let result = respond(&mut r, &shared, &conn, &mut record).await;
    match result {
        Ok(resp) => {
            record.status = Some(resp.status().as_u16());
            shared.record(record);
            // In flight until hyper drops the body: sent to the end, or the connection gone.
            Ok(resp.map(|inner| {
                UnsyncBoxBody::new(InFlightBody {
                    inner,
                    _guard: in_flight,
                })
            }))
        }
        Err(Aborted) => {
            conn.reset.store(true, Ordering::SeqCst);
            shared.record(record);
            Err(Aborted)
        }
    }
}

async fn respond(
    r: &mut Req,
    shared: &Arc<Shared>,
    conn: &Arc<ConnCtx>,
    record: &mut RequestRecord,
) -> Result<Response<ResBody>, Aborted> {
    let head = r.method == Method::HEAD;
    // 1. Authenticate.
    let signed = SignedParts {
        method: r.method.as_str(),
        bucket: r.target.bucket.as_deref(),
        key: r.target.key.as_deref(),
        query: &r.query,
        headers: &r.headers,
    };
    record.auth = crate::auth::detect(&signed);
    let auth = match shared.verifier.verify(&signed, SystemTime::now()) {
        Ok(a) => a,
        Err(e) => {
            record.error_code = Some(e.code.to_string());
            return Ok(error_response(&e, r, head));
        }
    };
    record.auth = auth.method;
    record.access_key_id = auth.access_key_id.clone();
    if auth.method == AuthMethod::Anonymous
        && let Err(e) = check_anonymous(r, shared)
    {
        record.error_code = Some(e.code.to_string());
        return Ok(error_response(&e, r, head));
    }

    // 2. Faults.
    let fired = shared.faults.decide(RequestFacts {
        number: r.number,
        concurrent: record.concurrent,
        method: r.method.as_str(),
        bucket: r.target.bucket.as_deref(),
        key: r.target.key.as_deref(),
    });
    let mut delay = Duration::ZERO;
    let mut terminal: Option<Fault> = None;
    let mut body_faults = BodyFaults::default();
    let mut change: Option<Option<u64>> = None;
    for (rule, fault) in fired {
        record.faults.push(fault.name());
        shared.faults.record(FaultEvent {
            request: r.number,
            request_id: r.request_id.clone(),
            rule,
            method: r.method.to_string(),
            bucket: r.target.bucket.clone(),
            key: r.target.key.clone(),
            fault: fault.clone(),
        });
        match fault {
            Fault::DelayFirstByte { millis } => delay += Duration::from_millis(millis),
            Fault::ResetBeforeResponse | Fault::Error { .. } => {
                terminal.get_or_insert(fault);
            }
            Fault::ResetAfterBytes { bytes } => {
                body_faults
                    .cut
                    .get_or_insert((CutAt::BodyBytes(bytes), CutKind::Reset));
            }
            Fault::ResetAtOffset { offset } => {
                body_faults
                    .cut
                    .get_or_insert((CutAt::ObjectOffset(offset), CutKind::Reset));
            }
            Fault::ShortBody { bytes } => {
                body_faults
                    .cut
                    .get_or_insert((CutAt::BodyBytes(bytes), CutKind::Close));
            }
            Fault::Throttle { bytes_per_second } => body_faults.throttle = Some(bytes_per_second),
            Fault::IgnoreRange => body_faults.ignore_range = true,
            Fault::ChangeObject { size } => change = Some(size),
        }
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match terminal {
        Some(Fault::ResetBeforeResponse) => return Err(Aborted),
        Some(Fault::Error {
            status,
            code,
            message,
        }) => {
            let (default_msg, ec) = match code.as_str() {
                "SlowDown" => ("Please reduce your request rate.", "0000-00000003"),
                "InternalError" => (
                    "We encountered an internal error. Please try again.",
                    "0000-00000002",
                ),
                "ServiceUnavailable" => (
                    "The service is unavailable. Please try again.",
                    "0000-00000004",
                ),
                "RequestTimeout" => (
                    "Your socket connection to the server was not read from or written to within the timeout period.",
                    "0000-00000005",
                ),
                _ => ("An error injected by the OSS emulator.", "0000-00000006"),
            };
            let status = if (400..=599).contains(&status) {
                status
            } else {
                500
            };
            let message = message.unwrap_or_else(|| default_msg.to_string());
            let e = ApiError::new(status, code, message, ec);
            record.error_code = Some(e.code.to_string());
            return Ok(error_response(&e, r, head));
        }
        _ => {}
    }

    // 3. The operation.
    let resp = match route(r, shared, conn, &body_faults).await {
        Ok(resp) => resp,
        Err(e) => {
            record.error_code = Some(e.code.to_string());
            error_response(&e, r, head)
        }
    };

    // 4. Change the object after this request (its own response already holds the data).
    if let (Some(size), Some(bucket), Some(key)) =
        (change, r.target.bucket.clone(), r.target.key.clone())
    {
        let seed = shared.faults.seed() ^ r.number.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let shared2 = shared.clone();
        let changed =
            tokio::task::spawn_blocking(move || shared2.store.mutate(&bucket, &key, seed, size))
                .await;
        match changed {
            Ok(Ok(v)) => tracing::info!(
                request_id = %r.request_id,
                etag = %v.etag(),
                "object changed by an injected fault"
            ),
            Ok(Err(e)) => {
                tracing::warn!(request_id = %r.request_id, error = %e, "change_object had no effect")
            }
            Err(e) => {
                tracing::warn!(request_id = %r.request_id, error = %e, "change_object failed")
            }
        }
    }
    Ok(resp)
}

fn check_anonymous(r: &Req, shared: &Shared) -> Result<(), ApiError> {
    let readable_op = (r.method == Method::GET || r.method == Method::HEAD)
        && r.target.key.is_some()
        && r.query.iter().all(|(k, _)| {
            k == "versionId" || k.starts_with("response-") || k == "x-oss-traffic-limit"
        });
    let denied = || {
        ApiError::access_denied("You have no right to access this object because of bucket acl.")
    };
    let Some(bucket) = r.target.bucket.as_deref().filter(|_| readable_op) else {
        return Err(denied());
    };
    let Some((_, public_read, _)) = shared.store.bucket_info(bucket) else {
        return Err(ApiError::no_such_bucket(bucket));
    };
    if shared.anonymous_read || public_read {
        return Ok(());
    }
    Err(denied())
}

async fn route(
    r: &mut Req,
    shared: &Arc<Shared>,
    conn: &Arc<ConnCtx>,
    faults: &BodyFaults,
) -> Result<Response<ResBody>, ApiError> {
    let (bucket, key) = (r.target.bucket.clone(), r.target.key.clone());
    match (bucket, key) {
        (None, _) => match r.method {
            Method::GET => Ok(list_buckets(r, shared)),
            _ => Err(ApiError::not_implemented(&format!("{} /", r.method))),
        },
        (Some(bucket), None) => bucket_op(r, shared, &bucket).await,
        (Some(bucket), Some(key)) => {
            if !shared.store.bucket_exists(&bucket) {
                return Err(ApiError::no_such_bucket(&bucket));
            }
            match r.method {
                Method::GET | Method::HEAD => {
                    get_object(r, shared, conn, &bucket, &key, faults).await
                }
                Method::PUT => put_object(r, shared, &bucket, &key).await,
                Method::DELETE => delete_object(r, shared, &bucket, &key),
                _ => Err(ApiError::not_implemented(&format!(
                    "{} on an object",
                    r.method
                ))),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Responses

fn builder(status: u16, r: &Req) -> hyper::http::response::Builder {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("server", "AliyunOSS")
        .header("x-oss-request-id", r.request_id.as_str())
}

fn empty() -> ResBody {
    Full::new(Bytes::new())
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

fn full(bytes: impl Into<Bytes>) -> ResBody {
    Full::new(bytes.into())
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

fn xml_response(r: &Req, status: u16, xml: String) -> Response<ResBody> {
    builder(status, r)
        .header("content-type", "application/xml")
        .header("content-length", xml.len())
        .body(full(xml))
        .expect("valid response")
}

fn host_id(r: &Req) -> String {
    let h = host_without_port(&r.host);
    if h.is_empty() {
        "localhost".to_string()
    } else {
        h.to_string()
    }
}

fn error_response(e: &ApiError, r: &Req, head: bool) -> Response<ResBody> {
    let xml = e.to_xml(&r.request_id, &host_id(r));
    tracing::debug!(request_id = %r.request_id, status = e.status, code = %e.code, message = %e.message, "error answer");
    let mut b = builder(e.status, r)
        .header("content-type", "application/xml")
        .header("x-oss-ec", e.ec);
    for (k, v) in &e.headers {
        b = b.header(*k, v.as_str());
    }
    if head {
        b.header(
            "x-oss-err",
            base64::engine::general_purpose::STANDARD.encode(xml.as_bytes()),
        )
        .header("content-length", 0)
        .body(empty())
        .expect("valid response")
    } else {
        b.header("content-length", xml.len())
            .body(full(xml))
            .expect("valid response")
    }
}

fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// `2023-12-16T16:20:57.000Z`.
fn iso8601(unix: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(unix);
    let v4 = backend_oss::sign::v4_datetime(t).unwrap_or_else(|_| "19700101T000000Z".into());
    format!(
        "{}-{}-{}T{}:{}:{}.000Z",
        &v4[0..4],
        &v4[4..6],
        &v4[6..8],
        &v4[9..11],
        &v4[11..13],
        &v4[13..15]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains() -> Vec<String> {
        vec!["localhost".into()]
    }

    #[test]
    fn targets_from_path_style_and_virtual_hosts() {
        let t = parse_target("127.0.0.1:8080", "/bkt/a%20b/c%2Bd+e", &domains());
        assert_eq!(t.bucket.as_deref(), Some("bkt"));
        assert_eq!(t.key.as_deref(), Some("a b/c+d+e"));
        let t = parse_target("bkt.localhost:8080", "/x/y", &domains());
        assert_eq!(t.bucket.as_deref(), Some("bkt"));
        assert_eq!(t.key.as_deref(), Some("x/y"));
        let t = parse_target("bkt.localhost", "/", &domains());
        assert_eq!((t.bucket.as_deref(), t.key.as_deref()), (Some("bkt"), None));
        let t = parse_target("localhost:1", "/bkt/", &domains());
        assert_eq!((t.bucket.as_deref(), t.key.as_deref()), (Some("bkt"), None));
        let t = parse_target("localhost:1", "/", &domains());
        assert_eq!((t.bucket, t.key), (None, None));
        let t = parse_target("[::1]:9", "/b/k", &domains());
        assert_eq!(t.key.as_deref(), Some("k"));
    }

    #[test]
    fn iso8601_formats_utc() {
        assert_eq!(iso8601(1_702_743_657), "2023-12-16T16:20:57.000Z");
    }
}
