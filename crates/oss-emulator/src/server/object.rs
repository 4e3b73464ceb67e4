//! Object operations: GetObject/HeadObject (conditions, ranges, bodies served in bounded
//! memory), PutObject, DeleteObject.

use super::*;

fn etag_list_matches(list: &str, etag: &str) -> bool {
    let bare = etag.trim_matches('"');
    list.split(',').any(|t| {
        let t = t.trim();
        t == "*"
            || t.trim_start_matches("W/")
                .trim_matches('"')
                .eq_ignore_ascii_case(bare)
    })
}

/// RFC 7232 order: If-Match, else If-Unmodified-Since (412); then If-None-Match, else
/// If-Modified-Since (304).
fn check_conditions(r: &Req, v: &Version) -> Result<(), ApiError> {
    let etag = v.etag();
    let modified = v.last_modified();
    if let Some(im) = r.header("if-match") {
        if !etag_list_matches(im, &etag) {
            return Err(precondition_failed("If-Match"));
        }
    } else if let Some(t) = r
        .header("if-unmodified-since")
        .and_then(|s| httpdate::parse_http_date(s).ok())
        && modified > t
    {
        return Err(precondition_failed("If-Unmodified-Since"));
    }
    let not_modified = if let Some(inm) = r.header("if-none-match") {
        etag_list_matches(inm, &etag)
    } else if let Some(t) = r
        .header("if-modified-since")
        .and_then(|s| httpdate::parse_http_date(s).ok())
    {
        modified <= t
    } else {
        false
    };
    if not_modified {
        return Err(ApiError::new(
            304,
            "NotModified",
            "Not Modified",
            "0026-00000005",
        ));
    }
    Ok(())
}

fn precondition_failed(condition: &str) -> ApiError {
    ApiError::new(
        412,
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold.",
        "0026-00000004",
    )
    .with("Condition", condition)
}

fn object_headers(
    mut b: hyper::http::response::Builder,
    v: &Version,
    versioned: bool,
) -> hyper::http::response::Builder {
    b = b
        .header("etag", v.etag())
        .header("last-modified", http_date(v.last_modified()))
        .header("x-oss-object-type", "Normal")
        .header("x-oss-storage-class", "Standard")
        .header("x-oss-hash-crc64ecma", v.meta.crc64.to_string());
    if versioned && let Some(id) = &v.meta.version_id {
        b = b.header("x-oss-version-id", id.as_str());
    }
    for (k, val) in &v.meta.user_meta {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(val),
        ) {
            b = b.header(name, value);
        }
    }
    b
}

pub(super) async fn get_object(
    r: &mut Req,
    shared: &Arc<Shared>,
    conn: &Arc<ConnCtx>,
    bucket: &str,
    key: &str,
    faults: &BodyFaults,
) -> Result<Response<ResBody>, ApiError> {
    let head = r.method == Method::HEAD;
    let version_id = r.query("versionId").map(str::to_string);
    let versioned = shared
        .store
        .bucket_info(bucket)
        .is_some_and(|(v, _, _)| v != Versioning::Disabled);
    let v = match shared.store.lookup(bucket, key, version_id.as_deref()) {
        Lookup::Found(v) => v,
        Lookup::NoSuchBucket => return Err(ApiError::no_such_bucket(bucket)),
        Lookup::NoSuchKey => return Err(ApiError::no_such_key(key)),
        Lookup::NoSuchVersion => {
            return Err(ApiError::no_such_version(
                key,
                version_id.as_deref().unwrap_or(""),
            ));
        }
        Lookup::DeleteMarker(m) => {
            let mut e = ApiError::no_such_key(key).header("x-oss-delete-marker", "true");
            if let Some(id) = &m.meta.version_id {
                e = e.header("x-oss-version-id", id.clone());
            }
            return Err(e);
        }
    };
    if v.meta.delete_marker {
        let mut e = ApiError::new(
            405,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
            "0026-00000006",
        )
        .header("x-oss-delete-marker", "true");
        if let Some(id) = &v.meta.version_id {
            e = e.header("x-oss-version-id", id.clone());
        }
        return Err(e);
    }
    match check_conditions(r, &v) {
        Ok(()) => {}
        Err(e) if e.status == 304 => {
            let resp = object_headers(builder(304, r), &v, versioned)
                .body(empty())
                .expect("valid response");
            return Ok(resp);
        }
        Err(e) => return Err(e),
    }
    let size = v.meta.size;
    let standard = r
        .header("x-oss-range-behavior")
        .is_some_and(|h| h.trim().eq_ignore_ascii_case("standard"));
    let outcome = if head || faults.ignore_range {
        RangeOutcome::Whole
    } else {
        resolve(r.header("range"), size, standard)
    };
    let (status, start, len) = match outcome {
        RangeOutcome::Whole => (200, 0, size),
        RangeOutcome::Partial { start, end } => (206, start, end - start + 1),
        RangeOutcome::NotSatisfiable => {
            return Err(ApiError::new(
                416,
                "InvalidRange",
                "The requested range cannot be satisfied",
                "0003-00000801",
            )
            .header("content-range", format!("bytes */{size}"))
            .with(
                "RangeRequested",
                r.header("range").unwrap_or("").to_string(),
            )
            .with("ActualObjectSize", size.to_string()));
        }
    };
    let mut b = object_headers(builder(status, r), &v, versioned)
        .header("accept-ranges", "bytes")
        .header("content-length", len);
    let content_type = r
        .query("response-content-type")
        .map(str::to_string)
        .unwrap_or_else(|| v.meta.content_type.clone());
    b = b.header("content-type", content_type);
    for (q, h) in [
        ("response-content-disposition", "content-disposition"),
        ("response-content-encoding", "content-encoding"),
        ("response-content-language", "content-language"),
        ("response-cache-control", "cache-control"),
        ("response-expires", "expires"),
    ] {
        if let Some(val) = r.query(q)
            && let Ok(val) = HeaderValue::from_str(val)
        {
            b = b.header(h, val);
        }
    }
    if status == 206 {
        b = b.header(
            "content-range",
            format!("bytes {}-{}/{}", start, start + len - 1, size),
        );
    } else if let Some(md5) = v.md5_base64() {
        b = b.header("content-md5", md5);
    }
    if head {
        return Ok(b.body(empty()).expect("valid response"));
    }
    let data = v
        .open()
        .map_err(|e| ApiError::internal(format!("cannot open the object's data: {e}")))?;
    let send = match faults.cut {
        None => len,
        Some((CutAt::BodyBytes(n), _)) => n.min(len),
        Some((CutAt::ObjectOffset(off), _)) => {
            // Only a response that starts before the offset is cut, so a client that
            // resumes at the offset gets through.
            if off > start && off < start + len {
                off - start
            } else {
                len
            }
        }
    };
    let body = ObjectBody::new(BodyPlan {
        data,
        start,
        len,
        send,
        cut: if send < len {
            faults.cut.map(|(_, kind)| kind)
        } else {
            None
        },
        throttle: faults.throttle,
        conn: conn.clone(),
        request_id: r.request_id.clone(),
        sent_counter: {
            let c = Arc::new(std::sync::atomic::AtomicU64::new(0));
            shared
                .body_sent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(r.number, c.clone());
            c
        },
    });
    Ok(b.body(body.boxed_unsync()).expect("valid response"))
}

pub(super) async fn put_object(
    r: &mut Req,
    shared: &Arc<Shared>,
    bucket: &str,
    key: &str,
) -> Result<Response<ResBody>, ApiError> {
    if r.header("x-oss-copy-source").is_some() {
        return Err(ApiError::not_implemented("CopyObject"));
    }
    if r.has_query("acl")
        || r.has_query("tagging")
        || r.has_query("symlink")
        || r.has_query("append")
    {
        return Err(ApiError::not_implemented("this object sub-resource"));
    }
    if !crate::store::valid_key(key) {
        return Err(ApiError::new(
            400,
            "InvalidObjectName",
            "The specified object is not valid.",
            "0016-00000005",
        )
        .with("Key", key));
    }
    let expected_md5 = match r.header("content-md5") {
        None => None,
        Some(v) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
                .filter(|d| d.len() == 16)
                .ok_or_else(|| {
                    ApiError::new(
                        400,
                        "InvalidDigest",
                        "The Content-MD5 you specified was invalid.",
                        "0016-00000003",
                    )
                })?,
        ),
    };
    let mut upload = shared
        .store
        .begin_upload(bucket)
        .map_err(|_| ApiError::no_such_bucket(bucket))?;
    let mut hasher = Hasher::new();
    let mut body = r.body.take();
    let written: Result<(), ApiError> = async {
        let Some(body) = body.as_mut() else {
            return Ok(());
        };
        let mut file = match &upload.sink {
            UploadSink::File { tmp } => {
                Some(tokio::fs::File::create(tmp).await.map_err(|e| {
                    ApiError::internal(format!("cannot create the upload file: {e}"))
                })?)
            }
            UploadSink::Memory(_) => None,
        };
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                ApiError::new(
                    400,
                    "IncompleteBody",
                    format!("The request body ended early: {e}"),
                    "0016-00000004",
                )
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            hasher.update(&data);
            match (&mut upload.sink, file.as_mut()) {
                (UploadSink::Memory(buf), _) => buf.extend_from_slice(&data),
                (UploadSink::File { .. }, Some(f)) => f.write_all(&data).await.map_err(|e| {
                    ApiError::internal(format!("cannot write the upload file: {e}"))
                })?,
                _ => {}
            }
        }
        if let Some(mut f) = file {
            f.flush()
                .await
                .map_err(|e| ApiError::internal(format!("cannot write the upload file: {e}")))?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = written {
        shared.store.abort_upload(upload);
        return Err(e);
    }
    let hashes = hasher.finish();
    if let Some(want) = expected_md5
        && want.as_slice() != hashes.md5.as_slice()
    {
        shared.store.abort_upload(upload);
        return Err(ApiError::new(
            400,
            "InvalidDigest",
            "The Content-MD5 you specified did not match what was received.",
            "0016-00000003",
        ));
    }
    let attrs = NewObject {
        content_type: r.header("content-type").map(str::to_string),
        user_meta: r
            .headers
            .iter()
            .filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-oss-meta-"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect(),
    };
    let v = shared
        .store
        .commit_upload(bucket, key, upload, hashes, attrs)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut b = builder(200, r)
        .header("etag", v.etag())
        .header("x-oss-hash-crc64ecma", v.meta.crc64.to_string())
        .header("content-length", 0);
    if let Some(md5) = v.md5_base64() {
        b = b.header("content-md5", md5);
    }
    if let Some(id) = &v.meta.version_id {
        b = b.header("x-oss-version-id", id.as_str());
    }
    Ok(b.body(empty()).expect("valid response"))
}

pub(super) fn delete_object(
    r: &Req,
    shared: &Shared,
    bucket: &str,
    key: &str,
) -> Result<Response<ResBody>, ApiError> {
    let (id, marker) = shared
        .store
        .delete(bucket, key, r.query("versionId"))
        .map_err(|_| ApiError::no_such_bucket(bucket))?;
    let mut b = builder(204, r);
    if let Some(id) = id {
        b = b.header("x-oss-version-id", id);
        if marker {
            b = b.header("x-oss-delete-marker", "true");
        }
    }
    Ok(b.body(empty()).expect("valid response"))
}

// ---------------------------------------------------------------------------------------------
// Object bodies

struct BodyPlan {
    data: OpenData,
    /// Object offset of the first byte.
    start: u64,
    /// Bytes the response declares.
    len: u64,
    /// Bytes actually sent before the cut (`== len` without a cut).
    send: u64,
    cut: Option<CutKind>,
    throttle: Option<u64>,
    conn: Arc<ConnCtx>,
    request_id: String,
    /// Bytes handed to hyper, for the request log.
    sent_counter: Arc<std::sync::atomic::AtomicU64>,
}

enum Source {
    Memory(Bytes),
    /// A stored file read ahead in large blocks: one blocking-pool round trip per
    /// [`READ_AHEAD`] bytes instead of one per frame. `file` is `None` only while a read is
    /// in flight (it moves to the blocking pool and back).
    File {
        file: Option<std::fs::File>,
        seeked: bool,
        ahead: Bytes,
    },
}

/// Bytes a file-backed body reads per blocking call (then sent in [`CHUNK`]-sized frames).
const READ_AHEAD: usize = 1 << 20;

struct StreamState {
    source: Option<Source>,
    plan: BodyPlan,
    sent: u64,
    flush_mark: Option<u64>,
    done: bool,
}

impl StreamState {
    async fn read(&mut self, n: usize) -> io::Result<Bytes> {
        let offset = self.plan.start + self.sent;
        // Never read past what this response will send (a cut response sends less).
        let remaining = usize::try_from(self.plan.send - self.sent).unwrap_or(usize::MAX);
        if self.source.is_none() {
            self.source = Some(
                match std::mem::replace(&mut self.plan.data, OpenData::Memory(Bytes::new())) {
                    OpenData::Memory(b) => Source::Memory(b),
                    OpenData::File(f) => Source::File {
                        file: Some(f),
                        seeked: false,
                        ahead: Bytes::new(),
                    },
                },
            );
        }
        match self.source.as_mut().expect("source opened") {
            Source::Memory(b) => {
                let o = offset as usize;
                b.get(o..o + n).map(|s| b.slice_ref(s)).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "object data is shorter than its size",
                    )
                })
            }
            Source::File {
                file,
                seeked,
                ahead,
            } => {
                if ahead.len() < n {
                    let want = n.max(READ_AHEAD).min(remaining.max(n));
                    let mut f = file.take().ok_or_else(|| {
                        io::Error::other("a previous read of this body was abandoned")
                    })?;
                    let (leftover, seek_to) = (std::mem::take(ahead), (!*seeked).then_some(offset));
                    let (f, block) = tokio::task::spawn_blocking(move || {
                        let block = read_block(&mut f, seek_to, leftover, want);
                        (f, block)
                    })
                    .await
                    .map_err(io::Error::other)?;
                    *file = Some(f);
                    *seeked = true;
                    *ahead = block?;
                }
                Ok(ahead.split_to(n))
            }
        }
    }

    async fn next(mut self) -> Option<(Result<Frame<Bytes>, BodyError>, Self)> {
        if self.done {
            return None;
        }
        if self.sent < self.plan.send {
            let mut chunk = CHUNK as u64;
            if let Some(rate) = self.plan.throttle {
                chunk = chunk.min((rate / 10).max(1));
            }
            let n = chunk.min(self.plan.send - self.sent) as usize;
            if let Some(rate) = self.plan.throttle {
                self.plan.conn.throttle(n, rate).await;
            }
            return match self.read(n).await {
                Ok(bytes) => {
                    self.sent += n as u64;
                    self.plan
                        .sent_counter
                        .fetch_add(n as u64, Ordering::Relaxed);
                    if self.sent == self.plan.send && self.plan.cut.is_some() {
                        // Taken before hyper gets the last bytes: the next completed flush
                        // includes them.
                        self.flush_mark = Some(self.plan.conn.flush_count());
                    }
                    Some((Ok(Frame::data(bytes)), self))
                }
                Err(e) => {
                    tracing::warn!(request_id = %self.plan.request_id, error = %e, "reading object data failed; closing the connection");
                    self.done = true;
                    Some((Err(BodyError::Io(e)), self))
                }
            };
        }
        let cut = self.plan.cut.take()?;
        let mark = self
            .flush_mark
            .unwrap_or_else(|| self.plan.conn.flush_count());
        if tokio::time::timeout(FLUSH_WAIT, self.plan.conn.flushed_after(mark))
            .await
            .is_err()
        {
            tracing::warn!(request_id = %self.plan.request_id, "no flush before an injected cut; cutting anyway");
        }
        if cut == CutKind::Reset {
            self.plan.conn.reset.store(true, Ordering::SeqCst);
        }
        tracing::info!(
            request_id = %self.plan.request_id,
            sent = self.sent,
            declared = self.plan.len,
            reset = cut == CutKind::Reset,
            "cutting the response body (injected fault)"
        );
        self.done = true;
        Some((Err(BodyError::Injected), self))
    }
}

/// `leftover` followed by the next bytes of `f` (from `seek_to`, if given), `want` in all.
fn read_block(
    f: &mut std::fs::File,
    seek_to: Option<u64>,
    leftover: Bytes,
    want: usize,
) -> io::Result<Bytes> {
    use std::io::{Read, Seek};
    if let Some(pos) = seek_to {
        f.seek(io::SeekFrom::Start(pos))?;
    }
    let mut block = Vec::with_capacity(want);
    block.extend_from_slice(&leftover);
    let more = want.saturating_sub(leftover.len()) as u64;
    // `read_to_end` fills the spare capacity without zeroing it first.
    f.by_ref().take(more).read_to_end(&mut block)?;
    if block.len() < want {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "object data is shorter than its size",
        ));
    }
    Ok(Bytes::from(block))
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, BodyError>> + Send>>;

/// A response body of exactly `len` bytes (as far as hyper is told), streamed in chunks.
struct ObjectBody {
    len: u64,
    stream: FrameStream,
}

impl ObjectBody {
    fn new(plan: BodyPlan) -> Self {
        let len = plan.len;
        let state = StreamState {
            source: None,
            plan,
            sent: 0,
            flush_mark: None,
            done: false,
        };
        let stream = futures::stream::unfold(state, |s| s.next());
        Self {
            len,
            stream: Box::pin(stream),
        }
    }
}

impl Body for ObjectBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.stream.as_mut().poll_next(cx)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_lists_match_quoted_unquoted_and_star() {
        assert!(etag_list_matches("\"ABC\"", "\"ABC\""));
        assert!(etag_list_matches("abc", "\"ABC\""));
        assert!(etag_list_matches("\"x\", \"ABC\"", "\"ABC\""));
        assert!(etag_list_matches("*", "\"ABC\""));
        assert!(!etag_list_matches("\"ABD\"", "\"ABC\""));
    }
}
