//! Names of the files that live beside another file (`DEST.rgpart`, `DEST.rgcp`, a
//! checkpoint's temporary files), kept within the file system's limit on one name's length.
//!
//! A name that fits with its suffix is used as it is (`a.tar.gz` → `a.tar.gz.rgpart`). A
//! longer one is cut short and followed by `~`, 32 hex digits of BLAKE3 of the *whole* name,
//! and the suffix, so that:
//!
//! * the same name always gives the same result (a resumed download finds its temp file,
//!   lock and checkpoint again);
//! * two different long names give different results (barring a 128-bit hash collision);
//! * the result is never longer than the limit.
//!
//! The only way two names can meet is a name chosen to equal another's shortened form
//! (`<cut>~<its hash>`): the lock on the temp file then stops the second download, and the
//! checkpoint records its full destination, so neither can use the other's progress.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// The limit on one file name, in bytes, when the file system cannot be asked: what Linux
/// (ext4, XFS, Btrfs, tmpfs), macOS and Windows (in UTF-16 units, fewer than UTF-8 bytes)
/// allow.
pub const DEFAULT_NAME_MAX: usize = 255;

/// Hex digits of BLAKE3 in a shortened name: 128 bits.
const HASH_HEX_DIGITS: usize = 32;

/// Marks a shortened name, before its hash (as in `PROGRA~1`).
const SHORTENED_MARK: char = '~';

/// The longest file name, in bytes, that the file system holding `dir` accepts.
///
/// Asks the nearest existing ancestor of `dir` (a directory about to be created gets the
/// limit of the file system it will be created on); [`DEFAULT_NAME_MAX`] when the system
/// cannot tell.
pub fn name_max(dir: &Path) -> usize {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    for ancestor in dir.ancestors() {
        let ancestor = if ancestor.as_os_str().is_empty() {
            Path::new(".")
        } else {
            ancestor
        };
        if let Some(max) = query_name_max(ancestor) {
            return max;
        }
    }
    DEFAULT_NAME_MAX
}

#[cfg(unix)]
fn query_name_max(dir: &Path) -> Option<usize> {
    let vfs = rustix::fs::statvfs(dir).ok()?;
    usize::try_from(vfs.f_namemax).ok().filter(|&n| n > 0)
}

#[cfg(not(unix))]
fn query_name_max(dir: &Path) -> Option<usize> {
    dir.exists().then_some(DEFAULT_NAME_MAX)
}

/// `name` followed by `suffix`, shortened as the module documentation describes when that
/// would be longer than `max` bytes.
///
/// If even `suffix` and the hash do not fit in `max`, the result is the hash and `suffix`
/// (longer than `max`; the file system then refuses it with a clear error).
pub fn fit_name(name: &OsStr, suffix: &str, max: usize) -> OsString {
    let len = name.as_encoded_bytes().len() + suffix.len();
    if len <= max {
        let mut out = name.to_owned();
        out.push(suffix);
        return out;
    }
    let hash = blake3::hash(name.as_encoded_bytes()).to_hex();
    let tail = format!(
        "{SHORTENED_MARK}{}{suffix}",
        &hash.as_str()[..HASH_HEX_DIGITS]
    );
    let mut out = truncate(name, max.saturating_sub(tail.len()));
    out.push(tail);
    out
}

/// `path` with `suffix` appended to its file name (`dl/a.tar.gz` → `dl/a.tar.gz.rgpart`),
/// shortened with [`fit_name`] to fit the file system of `path`'s directory.
///
/// A path without a file name (`/`, `..`) just gets `suffix` appended.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let Some(name) = path.file_name() else {
        let mut s = path.as_os_str().to_owned();
        s.push(suffix);
        return PathBuf::from(s);
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let fitted = fit_name(name, suffix, name_max(dir));
    match path.parent() {
        Some(p) => p.join(fitted),
        None => PathBuf::from(fitted),
    }
}

/// The first `max` bytes of `name` at most, never splitting a UTF-8 character of a name
/// that is valid UTF-8.
fn truncate(name: &OsStr, max: usize) -> OsString {
    if let Some(s) = name.to_str() {
        let mut end = s.len().min(max);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        return OsString::from(&s[..end]);
    }
    truncate_bytes(name, max)
}

#[cfg(unix)]
fn truncate_bytes(name: &OsStr, max: usize) -> OsString {
    use std::os::unix::ffi::OsStrExt;
    let bytes = name.as_bytes();
    OsStr::from_bytes(&bytes[..bytes.len().min(max)]).to_owned()
}

#[cfg(not(unix))]
fn truncate_bytes(name: &OsStr, max: usize) -> OsString {
    let lossy = name.to_string_lossy();
    truncate(OsStr::new(lossy.as_ref()), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len(s: &OsStr) -> usize {
        s.as_encoded_bytes().len()
    }

    #[test]
    fn names_that_fit_only_get_the_suffix() {
        assert_eq!(
            fit_name(OsStr::new("a.tar.gz"), ".rgpart", 255),
            "a.tar.gz.rgpart"
        );
        let at_limit = "L".repeat(248);
        assert_eq!(
            fit_name(OsStr::new(&at_limit), ".rgpart", 255),
            OsString::from(format!("{at_limit}.rgpart"))
        );
    }

    #[test]
    fn long_names_are_shortened_to_the_limit_deterministically_and_distinctly() {
        for max in [255, 143, 100] {
            for suffix in [".rgpart", ".rgcp", ".tmp-"] {
                let mut seen = std::collections::HashSet::new();
                for n in [max - suffix.len() + 1, 250, 255, 256, 1000] {
                    for c in ["L", "é", "日"] {
                        let name = c.repeat(n);
                        let fitted = fit_name(OsStr::new(&name), suffix, max);
                        assert!(len(&fitted) <= max, "{} > {max}", len(&fitted));
                        assert!(len(&fitted) > max - 3, "uses the room: {}", len(&fitted));
                        let s = fitted.to_str().expect("stays UTF-8");
                        assert!(s.ends_with(suffix), "{s}");
                        assert!(s.starts_with(c), "readable start: {s}");
                        assert_eq!(fitted, fit_name(OsStr::new(&name), suffix, max));
                        assert!(seen.insert(fitted), "collision for {n} × {c}");
                    }
                }
            }
        }
    }

    #[test]
    fn names_differing_only_after_the_cut_stay_distinct() {
        let a = format!("{}a", "x".repeat(300));
        let b = format!("{}b", "x".repeat(300));
        assert_ne!(
            fit_name(OsStr::new(&a), ".rgcp", 255),
            fit_name(OsStr::new(&b), ".rgcp", 255)
        );
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_names_are_cut_as_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let raw: Vec<u8> = (0..300)
            .map(|i| if i % 2 == 0 { 0xff } else { b'a' })
            .collect();
        let fitted = fit_name(OsStr::from_bytes(&raw), ".rgpart", 255);
        assert_eq!(fitted.as_bytes().len(), 255);
        assert!(fitted.as_bytes().starts_with(&raw[..200]));
        assert!(fitted.as_bytes().ends_with(b".rgpart"));
    }

    #[test]
    fn sibling_stays_in_the_directory() {
        assert_eq!(
            sibling(Path::new("dl/a.bin"), ".rgcp"),
            Path::new("dl/a.bin.rgcp")
        );
        assert_eq!(
            sibling(Path::new("a.bin"), ".rgcp"),
            Path::new("a.bin.rgcp")
        );
        let long = "n".repeat(255);
        let s = sibling(&Path::new("/tmp").join(&long), ".rgpart");
        assert_eq!(s.parent(), Some(Path::new("/tmp")));
        assert!(len(s.file_name().unwrap()) <= 255);
    }

    #[test]
    fn name_max_asks_the_nearest_existing_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let here = name_max(dir.path());
        assert!(here >= 14, "{here}");
        assert_eq!(name_max(&dir.path().join("not/yet/created")), here);
        assert!(name_max(Path::new("")) >= 14);
    }
}
