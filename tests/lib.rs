//! Shared helpers for the end-to-end tests in this directory.
//!
//! The tests drive the real `resume-get` binary (a separate process, built by
//! `cargo build -p resume-cli`) against an `oss-emulator` served from the test process, and
//! check what a user would see: exit codes, messages, `--json` events, the files on disk, and
//! what the server was asked for. See [`support`].
#![forbid(unsafe_code)]

pub mod support;

/// The README's examples are compiled and run as doc tests, so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
