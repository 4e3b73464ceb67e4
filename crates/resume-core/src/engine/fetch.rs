//! Fetching one part: ranged requests pinned to the object, validated responses, bytes
//! hashed and written as they arrive, retries that resume at the byte where a request broke.

use std::ops::Range;
use std::sync::atomic::Ordering;

use checkpoint::PartDigest;
use futures::StreamExt;
use tokio::time::Instant;

use super::share::{Finished, Share};
use super::{Attempt, Failure, Ticker, Transfer, lock};
use crate::digest::PartHasher;
use crate::error::Error;
use crate::event::Event;
use crate::integrity::{CrcSet, PartCrcs};
use crate::source::{RangeRead, SourceError, SourceErrorKind};

impl Attempt<'_> {
    /// Fetches one part, retrying and resuming from the byte where a request broke, or where
    /// an earlier run stopped (its saved beginning, checked against the bytes on disk). A
    /// part stopped by cancellation or another part's failure submits what it received, so
    /// the attempt records it before returning. `None`: helpers took the end of the part
    /// (`share.rs`) and the last of them completes it; its beginning up to theirs is recorded.
    pub(super) async fn fetch_part(
        &self,
        t: &Transfer<'_>,
        part: u64,
        buf: &mut Vec<u8>,
        ticker: &mut Ticker,
    ) -> Result<Option<(PartDigest, PartCrcs)>, Failure> {
        let range = t.layout.part_range(part);
        let share = t.tail.own(part, range.clone());
        let (mut pos, mut hasher) = self.resume_beginning(t, part, &range, buf).await?;
        t.tail.set_pos(share, pos);
        let cursor = Cursor {
            part,
            part_start: range.start,
            share,
            submits: true,
        };
        let result = self
            .fetch_rest(
                t,
                cursor,
                &range,
                range.start,
                &mut pos,
                &mut hasher,
                buf,
                ticker,
            )
            .await;
        let limit = t.tail.limit(share, range.end);
        match result {
            Ok(()) => {}
            // Stopped after the segment's last byte arrived, before its body was seen to end
            // (a Ctrl-C between the last chunk and the end of the stream): every byte is
            // written and hashed, so the segment is done, not lost.
            Err(Failure::Stopped) if pos == limit => {}
            Err(f) => {
                if !matches!(f, Failure::Changed(_) | Failure::NoRanges)
                    && pos > range.start
                    && pos < range.end
                {
                    // Worth keeping for the next run (nothing is for a changed object or
                    // another layout); recorded by the attempt's drain.
                    let _ = t
                        .committer
                        .submit(part, hasher.beginning(pos - range.start));
                }
                return Err(f);
            }
        }
        // Helpers have the rest: the beginning up to them is what a crash could keep.
        let beginning =
            (pos < range.end && pos > range.start).then(|| hasher.beginning(pos - range.start));
        match t.tail.finish(share, Some(hasher)) {
            Finished::Part { hasher, reread } => {
                Ok(Some(self.complete_part(t, *hasher, reread, buf)?))
            }
            Finished::Pending => {
                if let Some(beginning) = beginning {
                    // Recorded before this worker helps elsewhere, so what it holds
                    // unrecorded stays within 1 MiB.
                    let ticket = t.committer.submit(part, beginning)?;
                    t.committer.wait(ticket, &self.halt).await?;
                }
                Ok(None)
            }
        }
    }

    /// Fetches `range`, the end of a part in flight taken over from a slower worker
    /// (`share.rs`). Its bytes are written in place and hashed into the part when the part
    /// completes: `Some` if this was its last segment.
    pub(super) async fn fetch_share(
        &self,
        t: &Transfer<'_>,
        share: Share,
        range: Range<u64>,
        buf: &mut Vec<u8>,
        ticker: &mut Ticker,
    ) -> Result<Option<(PartDigest, PartCrcs)>, Failure> {
        let part_range = t.layout.part_range(share.part);
        let cursor = Cursor {
            part: share.part,
            part_start: part_range.start,
            share,
            submits: false,
        };
        let mut pos = range.start;
        // A helper's bytes are hashed when its part completes, in the part's order; this one
        // only satisfies the fetch path.
        let mut unused = PartHasher::new(CrcSet::default());
        let result = self
            .fetch_rest(
                t,
                cursor,
                &part_range,
                range.start,
                &mut pos,
                &mut unused,
                buf,
                ticker,
            )
            .await;
        match result {
            Ok(()) => {}
            Err(Failure::Stopped) if pos == t.tail.limit(share, range.end) => {}
            Err(f) => return Err(f),
        }
        match t.tail.finish(share, None) {
            Finished::Part { hasher, reread } => {
                Ok(Some(self.complete_part(t, *hasher, reread, buf)?))
            }
            Finished::Pending => Ok(None),
        }
    }

    /// Every segment of a part is written: hashes the helpers' bytes (`reread`, object
    /// offsets) from the temp file, where they are in the page cache, after the owner's, so
    /// the part's digests cover every byte in order. A few MiB at most; not cancellable, so a
    /// part whose bytes are all here is always recorded.
    fn complete_part(
        &self,
        t: &Transfer<'_>,
        mut hasher: PartHasher,
        reread: Range<u64>,
        buf: &mut Vec<u8>,
    ) -> Result<(PartDigest, PartCrcs), Failure> {
        if !reread.is_empty() {
            buf.clear();
            buf.resize(self.dl.buffer_size.clamp(64 << 10, 1 << 20), 0);
            let base = t.layout.start;
            let mut off = reread.start;
            while off < reread.end {
                let n = usize::try_from(reread.end - off)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                t.file.read_exact_at(&mut buf[..n], off - base)?;
                hasher.update(&buf[..n]);
                off += n as u64;
            }
            buf.clear();
        }
        Ok(hasher.finish())
    }

    /// Where part `part` starts: after its beginning saved by an earlier run if the bytes on
    /// disk still match its record (re-read and hashed, so the part's digests cover them),
    /// else at its first byte.
    async fn resume_beginning(
        &self,
        t: &Transfer<'_>,
        part: u64,
        range: &Range<u64>,
        buf: &mut Vec<u8>,
    ) -> Result<(u64, PartHasher), Failure> {
        let mut hasher = PartHasher::new(t.checks.crcs);
        let saved = lock(&t.partial).remove(&part);
        let Some(saved) = saved else {
            return Ok((range.start, hasher));
        };
        let offset = t.layout.part_offset(part);
        buf.resize(self.dl.buffer_size.clamp(64 << 10, 4 << 20), 0);
        let read_at = |b: &mut [u8], off: u64| t.file.read_exact_at(b, off);
        self.read_through(read_at, offset..offset + saved.received, buf, |chunk| {
            hasher.update(chunk)
        })
        .await?;
        buf.clear();
        if hasher.beginning(saved.received) == saved {
            return Ok((range.start + saved.received, hasher));
        }
        self.counters
            .done_bytes
            .fetch_sub(saved.received, Ordering::Relaxed);
        self.dl.emit(&Event::PartsDamaged {
            parts: vec![part],
            reason: format!(
                "the first {} bytes of the part saved in the temp file no longer match the \
                 checkpoint's CRC-64 and BLAKE3; the part is fetched from its first byte",
                saved.received
            ),
        });
        Ok((range.start, PartHasher::new(t.checks.crcs)))
    }

    /// Fetches the segment `cursor.share` of part `range` from `pos` to its limit (which a
    /// helper may lower meanwhile), retrying; a malformed response restarts it at
    /// `segment_start`.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_rest(
        &self,
        t: &Transfer<'_>,
        cursor: Cursor,
        range: &Range<u64>,
        segment_start: u64,
        pos: &mut u64,
        hasher: &mut PartHasher,
        buf: &mut Vec<u8>,
        ticker: &mut Ticker,
    ) -> Result<(), Failure> {
        let part = cursor.part;
        let (mut failures, mut requests) = (0u32, 0u32);
        loop {
            let end = t.tail.limit(cursor.share, range.end);
            if *pos >= end {
                return Ok(());
            }
            requests += 1;
            let before = *pos;
            // A connection abandoned for being too slow made progress, yet counts as a failure:
            // otherwise a trickle would reset the count with every byte and never end.
            let mut slow = false;
            let err = match self
                .attempt_range(t, cursor, *pos..end, pos, hasher, buf, ticker)
                .await
            {
                Ok(()) => return Ok(()),
                Err(AttemptError::Source(e)) => e,
                Err(AttemptError::TooSlow(e)) => {
                    slow = true;
                    e
                }
                Err(AttemptError::Malformed(e)) => {
                    // Nothing this response delivered can be trusted: start the part over.
                    self.counters
                        .done_bytes
                        .fetch_sub(*pos - segment_start, Ordering::Relaxed);
                    *pos = segment_start;
                    *hasher = PartHasher::new(t.checks.crcs);
                    t.tail.set_pos(cursor.share, *pos);
                    e
                }
                Err(AttemptError::Failure(f)) => return Err(f),
            };
            let part_error = |source| Error::Part {
                key: self.key.to_owned(),
                part,
                range: range.clone(),
                attempts: requests,
                source: Box::new(source),
            };
            match err.kind {
                SourceErrorKind::Changed => {
                    return Err(Failure::Changed(format!(
                        "while part {part} was downloaded: {err}"
                    )));
                }
                kind if !kind.is_retryable() => return Err(part_error(err).into()),
                _ => {}
            }
            failures = if *pos > before && !slow {
                1
            } else {
                failures + 1
            };
            if failures >= self.dl.retry.max_attempts
                || requests >= self.dl.retry.max_requests_per_part
            {
                return Err(part_error(err).into());
            }
            self.backoff(Some(part), requests, failures, *pos, &err)
                .await?;
        }
    }

    pub(super) async fn backoff(
        &self,
        part: Option<u64>,
        attempt: u32,
        failures: u32,
        resume_at: u64,
        cause: &SourceError,
    ) -> Result<(), Failure> {
        self.tuning.failed(self.dl, part, cause);
        let delay = self.dl.retry.backoff(failures, &mut lock(self.rng));
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        let part_shown = part.map_or_else(|| "metadata".to_owned(), |p| format!("part {p}"));
        tracing::info!(
            target: crate::request_log::RETRY_TARGET,
            key = self.key,
            attempt,
            delay_ms = delay.as_millis() as u64,
            "retrying {part_shown} (attempt {attempt} failed): {cause}"
        );
        self.dl.emit(&Event::Retry {
            part,
            attempt,
            resume_at,
            delay,
            cause: cause.to_string(),
        });
        tokio::select! {
            biased;
            _ = self.halt.cancelled() => Err(Failure::Stopped),
            _ = tokio::time::sleep(delay) => Ok(()),
        }
    }

    /// One request for `want`; writes and hashes every byte it accepts and advances `pos`
    /// past them, also when the request then fails, so a retry resumes where this one broke.
    /// Every [`PROGRESS_STEP`](super::PROGRESS_STEP) the worker receives, the part's
    /// beginning is written out and submitted for recording (see `commit.rs`).
    #[allow(clippy::too_many_arguments)]
    async fn attempt_range(
        &self,
        t: &Transfer<'_>,
        cursor: Cursor,
        want: Range<u64>,
        pos: &mut u64,
        hasher: &mut PartHasher,
        buf: &mut Vec<u8>,
        ticker: &mut Ticker,
    ) -> Result<(), AttemptError> {
        let dl = self.dl;
        let idle = dl.idle_timeout;
        // A one-part object's first read was sent before the download was planned
        // (`whole.rs`): its response is this request's.
        let first = match want.start {
            0 => lock(&t.first_read).as_mut().and_then(|f| f.read.take()),
            _ => None,
        };
        let read = match first {
            Some(read) => read,
            None => {
                let asked = Instant::now();
                let response = tokio::select! {
                    biased;
                    _ = self.halt.cancelled() => return Err(Failure::Stopped.into()),
                    r = tokio::time::timeout(idle, dl.source.read_range(self.key, want.clone(), &t.conditions)) => r,
                };
                match response {
                    Ok(Ok(read)) => {
                        tracing::debug!(
                            part = cursor.part,
                            at = want.start,
                            ms = asked.elapsed().as_millis() as u64,
                            "part response"
                        );
                        self.tuning.responded(asked.elapsed());
                        t.tail.responded(cursor.share);
                        read
                    }
                    Ok(Err(e)) => return Err(AttemptError::Source(e)),
                    Err(_) => {
                        return Err(AttemptError::Source(SourceError::transient(format!(
                            "no response within the idle timeout of {idle:?}"
                        ))));
                    }
                }
            }
        };
        self.check_response(t, &read, &want)?;
        let mut body = read.body;
        let lowest = dl.lowest_speed;
        // The current measurement of the body's speed: since when, and how many bytes.
        let mut window = (Instant::now(), 0u64);
        let file_base = t.layout.start; // object offset of temp-file byte 0
        buf.clear();
        let mut buf_start = *pos;
        let mut cur = *pos;
        let outcome = loop {
            let now = Instant::now();
            let mut deadline = now + idle;
            if let Some(lowest) = lowest {
                let elapsed = now.saturating_duration_since(window.0);
                if elapsed >= lowest.window {
                    if lowest.too_slow(window.1, elapsed) {
                        break Err(AttemptError::TooSlow(SourceError::transient(format!(
                            "the connection was slower than the lowest speed of {} bytes/s \
                             over {:?} ({} bytes received), at byte {cur}",
                            lowest.bytes_per_sec, lowest.window, window.1
                        ))));
                    }
                    window = (now, 0);
                }
                deadline = deadline.min(window.0 + lowest.window);
            }
            let item = tokio::select! {
                biased;
                _ = self.halt.cancelled() => break Err(AttemptError::Failure(Failure::Stopped)),
                r = tokio::time::timeout_at(deadline, body.next()) => r,
            };
            let chunk = match item {
                // The speed window ended first: measured at the top of the loop.
                Err(_) if Instant::now() < now + idle => continue,
                Err(_) => {
                    break Err(AttemptError::Source(SourceError::transient(format!(
                        "no data for {idle:?} (idle timeout) at byte {cur}"
                    ))));
                }
                Ok(None) if cur == want.end => break Ok(()),
                Ok(None) => {
                    break Err(AttemptError::Source(SourceError::transient(format!(
                        "body ended after {} of {} bytes",
                        cur - want.start,
                        want.end - want.start
                    ))));
                }
                Ok(Some(Err(e))) => break Err(AttemptError::Source(e)),
                Ok(Some(Ok(chunk))) => chunk,
            };
            if chunk.len() as u64 > want.end - cur {
                // A body longer than its declared range is malformed; nothing past the range
                // is written, and the caller discards what this response delivered.
                break Err(AttemptError::Malformed(SourceError::transient(format!(
                    "the source sent more than the {} bytes it declared",
                    want.end - want.start
                ))));
            }
            if let Some(limiter) = self.limiter {
                // Reserve before accepting: a chunk counts (hashed, written, reported) only
                // once the shared bucket has paid for it, so accepted bytes follow the limit.
                let waiting = Instant::now();
                tokio::select! {
                    biased;
                    _ = self.halt.cancelled() => break Err(AttemptError::Failure(Failure::Stopped)),
                    _ = limiter.take(chunk.len() as u64) => {}
                }
                // Our own limit is not the connection's slowness: not measured.
                window.0 += waiting.elapsed();
            }
            // A helper may have taken the rest of this segment meanwhile (`share.rs`): no byte
            // at or past its limit is accepted, and the request ends there.
            let accepted = t.tail.accept(cursor.share, cur, chunk.len() as u64);
            if accepted == 0 && !chunk.is_empty() {
                break Ok(());
            }
            let mut chunk = chunk;
            let at_limit = accepted < chunk.len() as u64;
            chunk.truncate(accepted as usize);
            window.1 += chunk.len() as u64;
            hasher.update(&chunk);
            if let Some(stream) = &t.in_order {
                stream.received(cur, &chunk);
            }
            if buf.len() + chunk.len() > dl.buffer_size && !buf.is_empty() {
                if let Err(e) = t.file.write_all_at(buf, buf_start - file_base) {
                    break Err(Failure::Fatal(e).into());
                }
                buf_start += buf.len() as u64;
                buf.clear();
            }
            if chunk.len() >= dl.buffer_size {
                if let Err(e) = t.file.write_all_at(&chunk, buf_start - file_base) {
                    break Err(Failure::Fatal(e).into());
                }
                buf_start += chunk.len() as u64;
            } else {
                buf.extend_from_slice(&chunk);
            }
            cur += chunk.len() as u64;
            self.counters
                .fetched_bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            self.counters
                .done_bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            self.emit_progress(t, false);
            if at_limit {
                break Ok(());
            }
            if cursor.submits && ticker.add(chunk.len() as u64) && cur < want.end {
                // The part's beginning, all of it written, submitted once the previous
                // submission is recorded (so at most one is outstanding).
                if !buf.is_empty() {
                    if let Err(e) = t.file.write_all_at(buf, buf_start - file_base) {
                        break Err(Failure::Fatal(e).into());
                    }
                    buf_start += buf.len() as u64;
                    buf.clear();
                }
                if let Err(f) = t.committer.wait(ticker.outstanding, &self.halt).await {
                    break Err(f.into());
                }
                match t
                    .committer
                    .submit(cursor.part, hasher.beginning(cur - cursor.part_start))
                {
                    Ok(ticket) => ticker.outstanding = ticket,
                    Err(f) => break Err(f.into()),
                }
                self.disk.progress.store(true, Ordering::Relaxed);
            }
        };
        // Bytes accepted before a failure are valid: they belong to the declared range of the
        // pinned object. Keep them so the retry continues from `cur`.
        if !buf.is_empty() {
            t.file
                .write_all_at(buf, buf_start - file_base)
                .map_err(|e| AttemptError::Failure(e.into()))?;
            buf.clear();
        }
        *pos = cur;
        outcome
    }

    /// A response that declares anything other than what was asked is an error, never data.
    fn check_response(
        &self,
        t: &Transfer<'_>,
        read: &RangeRead,
        want: &Range<u64>,
    ) -> Result<(), AttemptError> {
        let meta = t.meta;
        if let (Some(expected), Some(got)) = (&meta.etag, &read.etag)
            && strip_etag(expected) != strip_etag(got)
        {
            return Err(AttemptError::Source(SourceError::new(
                SourceErrorKind::Changed,
                format!("the source served etag {got}, the download started with {expected}"),
            )));
        }
        if let Some(total) = read.total_size
            && total != meta.size
        {
            return Err(AttemptError::Source(SourceError::new(
                SourceErrorKind::Changed,
                format!("the object is now {total} bytes, it was {}", meta.size),
            )));
        }
        if read.range == *want {
            return Ok(());
        }
        if read.range == (0..meta.size) {
            if t.layout.start == 0 && t.layout.len == meta.size {
                if t.layout.part_count == 1 {
                    // One stream already, resumed after a break: it starts over.
                    return Err(AttemptError::Malformed(SourceError::transient(
                        "the source ignored the range of a resumed request and sent the whole \
                         object; the stream starts over"
                            .to_string(),
                    )));
                }
                // Ignored ranges: the whole object as one stream does not need them.
                return Err(Failure::NoRanges.into());
            }
            return Err(Failure::Fatal(Error::BadSource {
                key: self.key.to_owned(),
                detail: format!(
                    "the source ignored the request for bytes {}-{} and sent the whole object \
                     (HTTP 200 instead of 206); it does not support ranged reads, so only the \
                     whole object ({} bytes) can be downloaded from it: drop --range",
                    want.start,
                    want.end - 1,
                    meta.size
                ),
            })
            .into());
        }
        Err(AttemptError::Source(SourceError::transient(format!(
            "asked for bytes {}-{}, the source declared bytes {}-{}",
            want.start,
            want.end - 1,
            read.range.start,
            read.range.end.saturating_sub(1)
        ))))
    }
}

/// Which part a request belongs to.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    part: u64,
    /// Object offset of the part's first byte.
    part_start: u64,
    /// The segment of the part the request fetches (`share.rs`).
    share: Share,
    /// The owner's request: it submits the part's beginning as it grows (a helper's bytes
    /// are not a beginning).
    submits: bool,
}

pub(super) enum AttemptError {
    /// The source failed; retried if its kind allows.
    Source(SourceError),
    /// The body was slower than the lowest speed: retried on a new connection, counted as a
    /// failed attempt although bytes arrived.
    TooSlow(SourceError),
    /// The response broke the protocol (e.g. a body longer than declared): retried, but the
    /// part restarts from its first byte.
    Malformed(SourceError),
    /// Stop fetching this part with this outcome.
    Failure(Failure),
}

impl From<Failure> for AttemptError {
    fn from(f: Failure) -> Self {
        AttemptError::Failure(f)
    }
}

fn strip_etag(e: &str) -> &str {
    let e = e.strip_prefix("W/").unwrap_or(e);
    e.trim_matches('"')
}
