//! A small HTTP/1.1 server on 127.0.0.1:0 for the client's tests: it records every request and
//! answers with whatever the test's handler says (a canned answer, a body cut mid-stream, or a
//! dropped connection), and it can verify a recorded request's signature by recomputing it
//! with `backend_oss::sign`'s verifier functions.

#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use backend_oss::encode::{decode_path, parse_query};
use backend_oss::sign::{
    Authorization, SignableRequest, canonical_request_v4, parse_authorization, signature_v1,
    signature_v4, signatures_equal, string_to_sign_v1, string_to_sign_v4,
};
use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The client's address: the same for requests over one connection.
    pub peer: SocketAddr,
    /// `HTTP/1.1`, …
    pub version: String,
    pub method: String,
    /// Raw (encoded) path.
    pub path: String,
    /// Raw query, without `?`.
    pub query: String,
    /// Lower-case names, in arrival order.
    pub headers: Vec<(String, String)>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn query_pairs(&self) -> Vec<(String, String)> {
        parse_query(&self.query)
    }

    pub fn query_value(&self, key: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The object key of a path-style request to `bucket`.
    pub fn key(&self, bucket: &str) -> String {
        let path = decode_path(&self.path);
        path.strip_prefix(&format!("/{bucket}/"))
            .unwrap_or_else(|| panic!("{path} is not in bucket {bucket}"))
            .to_string()
    }

    /// `(first, last)` of a `Range: bytes=first-last` header.
    pub fn range(&self) -> Option<(u64, u64)> {
        let r = self.header("range")?.strip_prefix("bytes=")?;
        let (a, b) = r.split_once('-')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    }

    /// Recomputes the request's header-form signature (V1 or V4) with `secret`, as a verifying
    /// server does, and compares it with the one sent.
    pub fn verify_signature(&self, bucket: &str, secret: &str) -> Result<(), String> {
        let key = self.key(bucket);
        let query = self.query_pairs();
        let auth = self
            .header("authorization")
            .ok_or("no Authorization header")?;
        let auth = parse_authorization(auth).ok_or_else(|| format!("bad Authorization {auth}"))?;
        match auth {
            Authorization::V1 { signature, .. } => {
                let date = self.header("date").ok_or("V1 request without Date")?;
                let req = SignableRequest::new(&self.method, Some(bucket), Some(&key))
                    .query(&query)
                    .headers(&self.headers);
                let sts = string_to_sign_v1(&req, date);
                let expected = signature_v1(secret, &sts);
                if signatures_equal(&expected, &signature) {
                    Ok(())
                } else {
                    Err(format!("V1 signature mismatch; string to sign:\n{sts}"))
                }
            }
            Authorization::V4 {
                credential,
                additional_headers,
                signature,
            } => {
                let datetime = self
                    .header("x-oss-date")
                    .ok_or("V4 request without x-oss-date")?;
                if !datetime.starts_with(&credential.date) {
                    return Err("x-oss-date and the credential date differ".into());
                }
                let req = SignableRequest::new(&self.method, Some(bucket), Some(&key))
                    .query(&query)
                    .headers(&self.headers)
                    .additional_headers(&additional_headers);
                let canonical = canonical_request_v4(&req);
                let sts = string_to_sign_v4(datetime, &credential.scope(), &canonical);
                let expected = signature_v4(
                    secret,
                    &credential.date,
                    &credential.region,
                    &credential.product,
                    &sts,
                );
                if signatures_equal(&expected, &signature) {
                    Ok(())
                } else {
                    Err(format!(
                        "V4 signature mismatch; canonical request:\n{canonical}"
                    ))
                }
            }
            other => Err(format!("unknown authorization {other:?}")),
        }
    }
}

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A complete answer.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    /// Headers as given (say, a `Content-Length` of the whole body), then `sent` and a broken
    /// connection.
    Cut {
        status: u16,
        headers: Vec<(String, String)>,
        sent: Bytes,
    },
    /// Headers as given, then `sent`, then nothing more while the connection stays open.
    Stall {
        status: u16,
        headers: Vec<(String, String)>,
        sent: Bytes,
    },
    /// The connection is dropped before any answer.
    Drop,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply::Full {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// An OSS error answer with an XML body and `x-oss-request-id`.
    pub fn oss_error(status: u16, code: &str, request_id: &str) -> Self {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>{code}</Code>\n  \
             <Message>canned {code}</Message>\n  <RequestId>{request_id}</RequestId>\n  \
             <HostId>bucket.localhost</HostId>\n  <EC>0000-00000000</EC>\n</Error>\n"
        );
        Reply::Full {
            status,
            headers: vec![
                ("content-type".into(), "application/xml".into()),
                ("x-oss-request-id".into(), request_id.into()),
            ],
            body: Bytes::from(body),
        }
    }
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

/// A running test server; stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = BoxBody<Bytes, io::Error>;

fn body_of(frames: Vec<Result<Bytes, io::Error>>) -> Body {
    let stream = futures::stream::iter(frames.into_iter().map(|r| r.map(Frame::data)));
    BodyExt::boxed(StreamBody::new(stream))
}

impl TestServer {
    pub async fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let recorded = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                let handler = handler.clone();
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let r = Recorded {
                            peer,
                            version: format!("{:?}", req.version()),
                            method: req.method().as_str().to_string(),
                            path: req.uri().path().to_string(),
                            query: req.uri().query().unwrap_or("").to_string(),
                            headers: req
                                .headers()
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                                })
                                .collect(),
                        };
                        recorded.lock().unwrap().push(r.clone());
                        let reply = handler(&r);
                        async move { respond(reply) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.requests.lock().unwrap().clear();
    }
}

fn respond(reply: Reply) -> Result<hyper::Response<Body>, io::Error> {
    let (status, headers, body) = match reply {
        Reply::Drop => return Err(io::Error::other("dropping the connection")),
        Reply::Full {
            status,
            headers,
            body,
        } => {
            // An unsized body, so that hyper keeps the Content-Length given (HEAD answers
            // declare the object's length with no body).
            let has_len = headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
            let mut headers = headers;
            if !has_len {
                headers.push(("content-length".into(), body.len().to_string()));
            }
            let frames = if body.is_empty() {
                vec![]
            } else {
                vec![Ok(body)]
            };
            (status, headers, body_of(frames))
        }
        Reply::Stall {
            status,
            headers,
            sent,
        } => {
            let stream = futures::stream::iter([Ok::<_, io::Error>(Frame::data(sent))])
                .chain(futures::stream::pending());
            (status, headers, BodyExt::boxed(StreamBody::new(stream)))
        }
        Reply::Cut {
            status,
            headers,
            sent,
        } => {
            // The break comes a moment after the bytes, so that they (and the headers) are
            // on the wire first, as when a connection dies mid-body.
            let stream = futures::stream::iter([Ok::<_, io::Error>(Frame::data(sent))]).chain(
                futures::stream::once(async {
                    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
                    Err(io::Error::new(io::ErrorKind::ConnectionReset, "cut"))
                }),
            );
            (status, headers, BodyExt::boxed(StreamBody::new(stream)))
        }
    };
    let mut builder = hyper::Response::builder().status(status);
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    Ok(builder.body(body).unwrap())
}

/// Answers a GET for `data` the way OSS does: `Range: bytes=a-b` with
/// `x-oss-range-behavior: standard` → 206 with `Content-Range` (end clamped), a start past the
/// end → 416; HEAD → the object's headers.
pub fn serve_object(r: &Recorded, data: &Bytes, etag: &str, extra: &[(String, String)]) -> Reply {
    let size = data.len() as u64;
    let crc = resume_core::crc64(data);
    let mut headers: Vec<(String, String)> = vec![
        ("etag".into(), etag.into()),
        (
            "last-modified".into(),
            "Wed, 28 Dec 2022 10:27:41 GMT".into(),
        ),
        ("x-oss-hash-crc64ecma".into(), crc.to_string()),
        ("x-oss-request-id".into(), "RID-OK".into()),
    ];
    headers.extend(extra.iter().cloned());
    if let Some(want) = r.header("if-match")
        && want != etag
    {
        return Reply::oss_error(412, "PreconditionFailed", "RID-412");
    }
    match r.method.as_str() {
        "HEAD" => {
            headers.push(("content-length".into(), size.to_string()));
            Reply::Full {
                status: 200,
                headers,
                body: Bytes::new(),
            }
        }
        "GET" => match r.range() {
            None => Reply::Full {
                status: 200,
                headers,
                body: data.clone(),
            },
            Some((first, _)) if first >= size => Reply::oss_error(416, "InvalidRange", "RID-416"),
            Some((first, last)) => {
                let last = last.min(size - 1);
                headers.push((
                    "content-range".into(),
                    format!("bytes {first}-{last}/{size}"),
                ));
                Reply::Full {
                    status: 206,
                    headers,
                    body: data.slice(first as usize..last as usize + 1),
                }
            }
        },
        _ => Reply::status(405),
    }
}

/// A deterministic test object of `len` bytes.
pub fn object_bytes(len: usize) -> Bytes {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let v: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    Bytes::from(v)
}
