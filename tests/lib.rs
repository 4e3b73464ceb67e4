//! Shared helpers for the end-to-end tests in this directory.
#![forbid(unsafe_code)]

/// The README's examples are compiled and run as doc tests, so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
