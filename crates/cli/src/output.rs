//! What the user sees: a progress bar on a terminal, newline-delimited JSON for scripts, and
//! one summary line.
//!
//! Every line goes out through [`err_line`] / [`out_line`], which ignore a closed or broken
//! stream: `resume-get … | head -1` must never panic, nor change how the download ends.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use resume_core::{Event, JobsReason, PartSizeReason, Report, Verification};
use serde_json::{Value, json};

use crate::size::format_bytes;

/// A key or path from a listing as one unambiguous field of a tab-separated line: verbatim
/// when it is plain text, else quoted with Rust's escapes (`"a\tb"`, `"back\\slash"`,
/// `"\u{1b}[2J"`). Keys are whatever a bucket holds: a tab or newline must not add columns or
/// lines to the plan, and an escape sequence must never reach a terminal.
pub fn field(s: &str) -> Cow<'_, str> {
    if s.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
        Cow::Owned(format!("{s:?}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// `line` with every control character escaped (`\n`, `\u{1b}`): for messages that quote keys
/// or paths from a listing inside prose, so one line stays one line and a terminal never
/// receives a control sequence from a bucket.
pub fn printable(line: &str) -> Cow<'_, str> {
    if !line.chars().any(char::is_control) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Writes `line` and a newline to stderr. A closed or broken stderr is ignored: output is a
/// courtesy, and losing it must never panic or change the outcome of a download.
pub fn err_line(line: impl std::fmt::Display) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// Writes `line` and a newline to stdout and flushes it; a closed stdout is ignored, as in
/// [`err_line`].
pub fn out_line(line: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A bar on stderr (only when stderr is a terminal, unless forced).
    Bar { force: bool },
    /// One JSON object per event on stdout.
    Json,
    /// Nothing but errors.
    Quiet,
}

/// Turns engine events into output. Shared by the engine's callback (any thread).
#[derive(Debug)]
pub struct Output {
    mode: Mode,
    /// When the command started: JSON events carry milliseconds since then (`t_ms`), taken
    /// as the engine emits them, so scripts can compute rates without pipe delays.
    start: Instant,
    bar: Option<ProgressBar>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    parts: u64,
    parts_done: u64,
    retries: u64,
    last_line: Option<Instant>,
}

impl Output {
    pub fn new(mode: Mode) -> Self {
        let bar = match mode {
            Mode::Bar { .. } if std::io::stderr().is_terminal() => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.enable_steady_tick(Duration::from_millis(200));
                Some(bar)
            }
            _ => None,
        };
        Self {
            mode,
            start: Instant::now(),
            bar,
            state: Mutex::default(),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn handle(&self, event: &Event) {
        if self.mode == Mode::Json {
            let mut value = event_json(event);
            value["t_ms"] = json!(self.start.elapsed().as_millis() as u64);
            out_line(value);
            return;
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if self.mode == Mode::Quiet {
            return;
        }
        let Some(bar) = &self.bar else {
            // No terminal: the notable events as one line each; progress only if asked for.
            if let Some(note) = human_note(event) {
                err_line(note);
            } else if self.mode == (Mode::Bar { force: true }) {
                plain_line(&mut st, event);
            }
            return;
        };
        if let Some(note) = human_note(event) {
            bar.println(note);
        }
        match event {
            Event::Started {
                total_bytes,
                reused_bytes,
                parts,
                parts_reused,
                ..
            } => {
                bar.set_length(*total_bytes);
                bar.set_position(*reused_bytes);
                bar.reset_eta();
                st.parts = *parts;
                st.parts_done = *parts_reused;
            }
            Event::Progress { done_bytes, .. } => bar.set_position(*done_bytes),
            Event::PartDone { .. } => st.parts_done += 1,
            Event::Retry { cause, .. } => {
                st.retries += 1;
                bar.println(format!("retrying: {cause}"));
            }
            Event::Completed(_) | Event::Failed { .. } => bar.finish_and_clear(),
            _ => {}
        }
        bar.set_message(format!(
            "parts {}/{} retries {}",
            st.parts_done, st.parts, st.retries
        ));
    }

    /// Clears the bar (before an error or summary is printed).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Progress as plain lines (at most one a second), for `--progress` when stderr is a file or
/// a pipe: a log keeps a readable record where a bar would be a mess of control codes.
fn plain_line(st: &mut State, event: &Event) {
    let line = match event {
        Event::Started {
            total_bytes,
            reused_bytes,
            parts,
            parts_reused,
            ..
        } => {
            st.parts = *parts;
            st.parts_done = *parts_reused;
            format!(
                "started: {} to download, {} reused from a checkpoint",
                format_bytes(*total_bytes),
                format_bytes(*reused_bytes)
            )
        }
        Event::PartDone { .. } => {
            st.parts_done += 1;
            return;
        }
        Event::Progress {
            done_bytes,
            total_bytes,
        } => {
            if st
                .last_line
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
            {
                return;
            }
            let pct = if *total_bytes == 0 {
                100
            } else {
                done_bytes * 100 / total_bytes
            };
            format!(
                "{} / {} ({pct}%), parts {}/{}, retries {}",
                format_bytes(*done_bytes),
                format_bytes(*total_bytes),
                st.parts_done,
                st.parts,
                st.retries
            )
        }
        Event::Retry { cause, .. } => {
            st.retries += 1;
            format!("retrying: {cause}")
        }
        _ => return,
    };
    st.last_line = Some(Instant::now());
    err_line(line);
}

/// The one-line message for an event a person should hear about even without `--progress`
/// or `-v`: saved progress not used, a remark on it, damaged parts, an automatic restart.
fn human_note(event: &Event) -> Option<String> {
    Some(match event {
        Event::PartSizeChanged {
            requested,
            used,
            parts,
            reason: PartSizeReason::MaxParts { max_parts },
        } => format!(
            "resume-get: using parts of {} instead of {}: a download has at most {max_parts} \
             parts ({parts} of {} here)",
            exact_bytes(*used),
            exact_bytes(*requested),
            exact_bytes(*used)
        ),
        Event::PartSizeChanged {
            requested, used, ..
        } => format!(
            "resume-get: resuming with the part size the saved progress was made with, {} \
             (not the {} asked for), so that no saved byte is fetched again; to discard the \
             saved progress and use {}, add --start-over",
            exact_bytes(*used),
            exact_bytes(*requested),
            exact_bytes(*requested)
        ),
        Event::CheckpointDiscarded { reason, .. } => {
            format!("resume-get: not resuming, starting from the beginning: {reason}")
        }
        Event::CheckpointNote { note, .. } => format!("resume-get: checkpoint: {note}"),
        Event::PartsDamaged { parts, reason } => {
            format!(
                "resume-get: re-fetching {} damaged part{}: {reason}",
                parts.len(),
                if parts.len() == 1 { "" } else { "s" }
            )
        }
        // The reason carries the server's answer, whose advice (start again) is for a person
        // driving a download by hand; the tool is doing exactly that by itself.
        Event::Warning { message } => format!("resume-get: warning: {message}"),
        Event::Restarted { restart, .. } => format!(
            "resume-get: the object changed during the download; starting over with its new \
             version (restart {restart})"
        ),
        _ => return None,
    })
}

/// A size as given: `672 B`, `8 MiB`, or rounded with the exact count when it is not a whole
/// number of a unit (`1.5 MiB (1572864 bytes)`).
fn exact_bytes(n: u64) -> String {
    let shown = format_bytes(n);
    let whole = [
        (1u64 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ]
    .into_iter()
    .find(|&(unit, _)| n >= unit && n.is_multiple_of(unit));
    match whole {
        Some((unit, name)) => format!("{} {name}", n / unit),
        None if n < 1024 => shown,
        None => format!("{shown} ({n} bytes)"),
    }
}

/// The final one-line summary.
pub fn summary(r: &Report) -> String {
    let bytes = r.range.end - r.range.start;
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let mut s = format!(
        "downloaded {} to {}: {} in {:.1} s ({}/s)",
        r.key,
        r.destination.display(),
        format_bytes(bytes),
        r.elapsed.as_secs_f64(),
        format_bytes((r.fetched_bytes as f64 / secs) as u64)
    );
    if r.reused_bytes > 0 {
        s.push_str(&format!(
            ", {} reused from the checkpoint",
            format_bytes(r.reused_bytes)
        ));
    }
    s.push_str(&format!(", {} retries", r.retries));
    if r.restarts > 0 {
        s.push_str(&format!(
            ", {} restart(s) after the object changed",
            r.restarts
        ));
    }
    // The last line says what verified the file, or plainly that nothing did.
    s.push('\n');
    s.push_str(&r.verification.to_string());
    s
}

/// What verified the file, for JSON: `[{"algorithm", "scope", "origin", "value"}]` (value in
/// hex), empty when nothing did.
pub(crate) fn verified_by(v: &Verification) -> Value {
    let sums = match v {
        Verification::Verified(sums) => sums.as_slice(),
        _ => &[],
    };
    sums.iter()
        .map(|c| {
            json!({"algorithm": c.algorithm.name(), "scope": c.scope.to_string(),
                "origin": c.origin.to_string(), "value": c.hex()})
        })
        .collect()
}

/// The JSON form of an event; field names are stable (documented in the README).
pub fn event_json(event: &Event) -> Value {
    match event {
        Event::Started {
            key,
            total_bytes,
            reused_bytes,
            part_size,
            parts,
            parts_reused,
            resumed,
        } => json!({"event": "started", "key": key, "total_bytes": total_bytes,
            "reused_bytes": reused_bytes, "part_size": part_size, "parts": parts,
            "parts_reused": parts_reused, "resumed": resumed}),
        Event::PartSizeChanged {
            requested,
            used,
            parts,
            reason,
        } => {
            let mut v = json!({"event": "part_size", "requested": requested, "used": used,
                "parts": parts});
            match reason {
                PartSizeReason::MaxParts { max_parts } => {
                    v["reason"] = json!("max_parts");
                    v["max_parts"] = json!(max_parts);
                }
                _ => v["reason"] = json!("checkpoint"),
            }
            v
        }
        Event::CheckpointDiscarded { location, reason } => {
            json!({"event": "checkpoint_discarded", "location": location, "reason": reason})
        }
        Event::CheckpointNote { location, note } => {
            json!({"event": "checkpoint_note", "location": location, "note": note})
        }
        Event::PartsDamaged { parts, reason } => {
            json!({"event": "parts_damaged", "parts": parts, "reason": reason})
        }
        Event::Progress {
            done_bytes,
            total_bytes,
        } => json!({"event": "progress", "done_bytes": done_bytes, "total_bytes": total_bytes}),
        Event::PartDone { part, range } => {
            json!({"event": "part_done", "part": part, "start": range.start, "end": range.end})
        }
        Event::Retry {
            part,
            attempt,
            resume_at,
            delay,
            cause,
        } => json!({"event": "retry", "part": part, "attempt": attempt,
            "resume_at": resume_at, "delay_ms": delay.as_millis() as u64, "cause": cause}),
        Event::Restarted { reason, restart } => {
            json!({"event": "restarted", "reason": reason, "restart": restart})
        }
        Event::Completed(r) => json!({"event": "completed", "key": r.key,
            "destination": r.destination, "start": r.range.start, "end": r.range.end,
            "fetched_bytes": r.fetched_bytes, "reused_bytes": r.reused_bytes, "parts": r.parts,
            "parts_reused": r.parts_reused, "retries": r.retries, "restarts": r.restarts,
            "crc64": r.crc64, "crc64_verified": r.crc64_verified,
            "verified": r.verification.is_verified(),
            "verification": r.verification.to_string(),
            "verified_by": verified_by(&r.verification),
            "warnings": r.warnings,
            "jobs": {"auto": r.jobs.auto, "start": r.jobs.start, "peak": r.jobs.peak,
                "last": r.jobs.last},
            "first_byte_ms": r.first_byte.map(|f| json!({"requests": f.requests,
                "min": f.min.as_millis() as u64, "mean": f.mean.as_millis() as u64,
                "max": f.max.as_millis() as u64})),
            "elapsed_ms": r.elapsed.as_millis() as u64}),
        Event::JobsChanged { from, to, reason } => {
            let mut v = json!({"event": "jobs", "from": from, "to": to});
            match reason {
                JobsReason::RateGrew { before, after } => {
                    v["reason"] = json!("rate_grew");
                    v["rate_before"] = json!(before);
                    v["rate_after"] = json!(after);
                }
                JobsReason::RateFlat { before, after } => {
                    v["reason"] = json!("rate_flat");
                    v["rate_before"] = json!(before);
                    v["rate_after"] = json!(after);
                }
                JobsReason::RateFell { held, after } => {
                    v["reason"] = json!("rate_fell");
                    v["rate_held"] = json!(held);
                    v["rate_after"] = json!(after);
                }
                JobsReason::Cap { after } => {
                    v["reason"] = json!("cap");
                    v["rate_after"] = json!(after);
                }
                JobsReason::Throttled => v["reason"] = json!("throttled"),
                _ => v["reason"] = json!("other"),
            }
            v
        }
        Event::Warning { message } => json!({"event": "warning", "message": message}),
        Event::Failed { error } => json!({"event": "failed", "error": error}),
        _ => json!({"event": "other", "debug": format!("{event:?}")}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_from_a_listing_stay_one_field_and_never_carry_control_characters() {
        assert_eq!(field("logs/2026/a b.parquet"), "logs/2026/a b.parquet");
        assert_eq!(field("uni/é"), "uni/é");
        assert_eq!(field("a\tb"), "\"a\\tb\"");
        assert_eq!(field("line\nbreak"), "\"line\\nbreak\"");
        assert_eq!(field("back\\slash"), "\"back\\\\slash\"");
        assert_eq!(field("say \"hi\""), "\"say \\\"hi\\\"\"");
        let esc = field("\u{1b}]0;owned\u{7}");
        assert!(!esc.chars().any(char::is_control), "{esc}");
        // Quoted fields are unambiguous: a plain field never starts with a quote.
        assert!(matches!(field("\"x"), Cow::Owned(_)));
    }

    #[test]
    fn printable_escapes_control_characters_only() {
        assert_eq!(
            printable("skipped \"a/b\": not written"),
            "skipped \"a/b\": not written"
        );
        assert_eq!(printable("x\u{1b}[2Jy\nz"), "x\\u{1b}[2Jy\\nz");
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn part_sizes_are_shown_exactly() {
        assert_eq!(exact_bytes(8), "8 B");
        assert_eq!(exact_bytes(1993), "1.9 KiB (1993 bytes)");
        assert_eq!(exact_bytes(512 << 10), "512 KiB");
        assert_eq!(exact_bytes(8 << 20), "8 MiB");
        assert_eq!(exact_bytes(3 << 30), "3 GiB");
    }

    #[test]
    fn a_changed_part_size_is_one_line_and_one_json_event() {
        let bounded = Event::PartSizeChanged {
            requested: 8,
            used: 1993,
            parts: 99_965,
            reason: PartSizeReason::MaxParts { max_parts: 100_000 },
        };
        let line = human_note(&bounded).unwrap();
        assert!(
            line.contains("using parts of 1.9 KiB (1993 bytes) instead of 8 B")
                && line.contains("at most 100000 parts"),
            "{line}"
        );
        let v = event_json(&bounded);
        assert_eq!(
            (&v["event"], &v["reason"], &v["max_parts"], &v["used"]),
            (
                &json!("part_size"),
                &json!("max_parts"),
                &json!(100_000),
                &json!(1993)
            )
        );
        let saved = Event::PartSizeChanged {
            requested: 4 << 20,
            used: 1 << 20,
            parts: 16,
            reason: PartSizeReason::Checkpoint,
        };
        let line = human_note(&saved).unwrap();
        assert!(
            line.contains("made with, 1 MiB (not the 4 MiB asked for)")
                && line.contains("--start-over"),
            "{line}"
        );
        assert_eq!(event_json(&saved)["reason"], "checkpoint");
    }
}
