//! A small HTTP/1.1 origin server on 127.0.0.1 (hyper, on its own thread and runtime) for
//! what real web servers do not do on demand: refuse `HEAD`, ignore `Range`, send weak
//! etags or `Repr-Digest`, redirect, demand a query verbatim (a signature), refuse with 403
//! once a URL has "expired", or serve slowly. Every request is logged as it arrived.
//!
//! Semantics are exact where they matter to a downloader: `bytes=a-b` / `a-` / `-n` ranges
//! (206 + `Content-Range`, 416 past the end), strong `If-Match` (a weak or different tag is
//! 412), `If-Unmodified-Since`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response, StatusCode};

/// One object and how it is served.
#[derive(Debug, Clone, Default)]
pub struct Object {
    pub body: Vec<u8>,
    /// Sent verbatim (`"x"`, `W/"x"`).
    pub etag: Option<String>,
    pub last_modified: Option<SystemTime>,
    /// Ignore `Range` (200, whole body), like Python's `http.server`.
    pub no_ranges: bool,
    /// Answer `HEAD` with this status (403 for a presigned GET URL, 405, 501).
    pub refuse_head: Option<u16>,
    /// Answer 403 unless the raw query string is exactly this (a signature, checked
    /// byte for byte as a signing server would).
    pub require_query: Option<String>,
    /// Answer 403 (`AccessDenied`, "Request has expired.") to everything: the URL expired.
    pub expired: bool,
    /// More headers on every answer (`Repr-Digest`, `Content-MD5`, …).
    pub headers: Vec<(String, String)>,
    /// Send bodies in 16 KiB chunks at about this many bytes per second.
    pub bytes_per_second: Option<u64>,
}

/// What a path answers.
#[derive(Debug, Clone)]
pub enum Route {
    Object(Object),
    /// `status` with `Location: location`.
    Redirect {
        status: u16,
        location: String,
    },
    /// 403 to every request (a CDN's expired target).
    Gone(u16),
}

/// A request as it arrived.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Which connection it came on (numbered from 1 in order of acceptance).
    pub connection: usize,
    pub method: String,
    /// Path and query, byte for byte.
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Routes = Arc<Mutex<HashMap<String, Route>>>;

/// The server; stops when dropped.
pub struct Origin {
    pub addr: SocketAddr,
    routes: Routes,
    log: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin").field("addr", &self.addr).finish()
    }
}

impl Origin {
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the origin");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("origin address");
        let routes: Routes = Arc::default();
        let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (r, l) = (routes.clone(), log.clone());
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted = connections.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("origin runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let conn = tokio::select! {
                        _ = &mut stopped => return,
                        c = listener.accept() => c,
                    };
                    let Ok((stream, _)) = conn else { continue };
                    let connection =
                        accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    let (r, l) = (r.clone(), l.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let (r, l) = (r.clone(), l.clone());
                            async move {
                                Ok::<_, Infallible>(answer(&r, &l, req, connection).await)
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        crate::wait_for_port(addr, Duration::from_secs(10), "the test origin");
        Self {
            addr,
            routes,
            log,
            connections,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Serves `route` at `path` (replacing what was there).
    pub fn route(&self, path: &str, route: Route) {
        self.routes.lock().unwrap().insert(path.to_owned(), route);
    }

    /// Changes the object at `path` in place.
    pub fn update(&self, path: &str, change: impl FnOnce(&mut Object)) {
        let mut routes = self.routes.lock().unwrap();
        match routes.get_mut(path) {
            Some(Route::Object(o)) => change(o),
            _ => panic!("no object at {path}"),
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    /// Connections accepted so far (the readiness probe of `start` is one).
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

fn status(code: u16, message: &str) -> Response<Body> {
    let body = format!(
        "<?xml version=\"1.0\"?><Error><Code>{}</Code><Message>{message}</Message></Error>",
        if code == 403 { "AccessDenied" } else { "Error" }
    );
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(code).expect("status");
    r
}

async fn answer(
    routes: &Routes,
    log: &Mutex<Vec<Seen>>,
    req: Request<hyper::body::Incoming>,
    connection: usize,
) -> Response<Body> {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let seen = Seen {
        connection,
        method: req.method().as_str().to_owned(),
        target: target.clone(),
        headers,
    };
    log.lock().unwrap().push(seen.clone());
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let route = routes.lock().unwrap().get(&path).cloned();
    let obj = match route {
        None => return status(404, "no such object"),
        Some(Route::Gone(code)) => return status(code, "the link expired"),
        Some(Route::Redirect {
            status: code,
            location,
        }) => {
            let mut r = Response::new(full(Bytes::new()));
            *r.status_mut() = StatusCode::from_u16(code).expect("status");
            r.headers_mut()
                .insert("location", location.parse().expect("location"));
            return r;
        }
        Some(Route::Object(o)) => o,
    };
    if obj.expired {
        return status(403, "Request has expired.");
    }
    if obj.require_query.as_ref().is_some_and(|q| *q != query) {
        return status(403, "The request signature we calculated does not match.");
    }
    let is_head = seen.method == "HEAD";
    if is_head && let Some(code) = obj.refuse_head {
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::from_u16(code).expect("status");
        return r;
    }
    let size = obj.body.len() as u64;
    if let Some(im) = seen.header("if-match") {
        let strong_match = obj.etag.as_deref().is_some_and(|e| {
            !e.starts_with("W/") && im.split(',').any(|t| t.trim() == e || t.trim() == "*")
        });
        if !strong_match {
            return status(
                412,
                "At least one of the preconditions you specified did not hold.",
            );
        }
    }
    if let (Some(ius), Some(lm)) = (seen.header("if-unmodified-since"), obj.last_modified)
        && let Ok(t) = httpdate::parse_http_date(ius)
        && httpdate::HttpDate::from(lm) > httpdate::HttpDate::from(t)
    {
        return status(412, "modified since");
    }
    let range = if obj.no_ranges {
        None
    } else {
        seen.header("range").map(|r| parse_range(r, size))
    };
    let (code, span) = match range {
        None => (200, 0..size),
        Some(Some(r)) => (206, r),
        Some(None) => {
            let mut r = status(416, "range not satisfiable");
            r.headers_mut()
                .insert("content-range", format!("bytes */{size}").parse().unwrap());
            return r;
        }
    };
    let mut builder = Response::builder()
        .status(code)
        .header("content-length", span.end - span.start)
        .header(
            "accept-ranges",
            if obj.no_ranges { "none" } else { "bytes" },
        );
    if code == 206 {
        builder = builder.header(
            "content-range",
            format!("bytes {}-{}/{size}", span.start, span.end - 1),
        );
    }
    if let Some(e) = &obj.etag {
        builder = builder.header("etag", e);
    }
    if let Some(t) = obj.last_modified {
        builder = builder.header("last-modified", httpdate::fmt_http_date(t));
    }
    for (k, v) in &obj.headers {
        builder = builder.header(k, v);
    }
    let bytes = if is_head {
        Bytes::new()
    } else {
        Bytes::copy_from_slice(&obj.body[span.start as usize..span.end as usize])
    };
    let body = match obj.bytes_per_second {
        Some(rate) if !is_head => slow(bytes, rate),
        _ => full(bytes),
    };
    builder.body(body).expect("response")
}

/// `bytes` in 16 KiB frames, paced at about `rate` bytes per second.
fn slow(bytes: Bytes, rate: u64) -> Body {
    const CHUNK: usize = 16 * 1024;
    let delay = Duration::from_secs_f64(CHUNK as f64 / rate.max(1) as f64);
    let frames = futures::stream::unfold((bytes, true), move |(mut rest, first)| async move {
        if rest.is_empty() {
            return None;
        }
        if !first {
            tokio::time::sleep(delay).await;
        }
        let chunk = rest.split_to(rest.len().min(CHUNK));
        Some((Ok(Frame::data(chunk)), (rest, false)))
    });
    StreamBody::new(frames).boxed_unsync()
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` against `size`; `None` if unsatisfiable.
fn parse_range(h: &str, size: u64) -> Option<std::ops::Range<u64>> {
    let spec = h.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let r = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            size.saturating_sub(n)..size
        }
        (a, "") => a.parse().ok()?..size,
        (a, b) => a.parse().ok()?..(b.parse::<u64>().ok()? + 1).min(size),
    };
    (r.start < r.end && r.start < size).then_some(r)
}
