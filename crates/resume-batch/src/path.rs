//! Key → local path: a pure function that never names anything outside DEST.
//!
//! A key's *relative name* is what follows the prefix's last `/` (prefix `logs/2026/` and key
//! `logs/2026/01/a.gz` → `01/a.gz`; prefix `logs/20` and key `logs/2026/a.gz` → `2026/a.gz`,
//! as `cp -r logs/20*` would name it). The relative name is split on `/`, and each segment
//! becomes one path component, verbatim, or the key is refused with an [`Unmappable`] reason
//! (the job reports it as skipped). Nothing is rewritten: a rewrite (dropping empty segments,
//! escaping bytes) could map two keys onto one file, which would silently overwrite one
//! object with another. So the mapping is injective: distinct keys never share a path
//! (property-tested, with: no path ever leaves DEST).
//!
//! | key (relative name)        | outcome                                                    |
//! |----------------------------|------------------------------------------------------------|
//! | `a/b.txt`                  | `DEST/a/b.txt`                                             |
//! | `..`, `a/../b`, `./a`      | refused: [`Unmappable::DotSegment`]                        |
//! | `/abs`, `a//b` (leading `/`, empty segment) | refused: [`Unmappable::EmptySegment`]     |
//! | `dir/` (folder marker)     | refused: [`Unmappable::FolderMarker`] (nothing to write)   |
//! | `a\..\b`, `C:\x`           | Unix: one file named so (`\` and `:` are ordinary bytes there, never separators); Windows: refused, [`Unmappable::ForbiddenCharacter`] |
//! | NUL in a segment           | refused: [`Unmappable::ForbiddenCharacter`] (no file system takes it) |
//! | a segment over NAME_MAX bytes (255 on ext4, xfs, btrfs, tmpfs) | refused: [`Unmappable::NameTooLong`] |
//! | the whole path over PATH_MAX | refused: [`Unmappable::PathTooLong`]                     |
//! | a segment ending in `.rgpart` or `.rgcp`, or a checkpoint's temp name | refused: [`Unmappable::Reserved`] (another object's temp file or checkpoint has that name) |
//! | first segment `.resume-get` | refused: [`Unmappable::Reserved`] (the job's own state)   |
//! | a key outside the prefix (a lister bug) | refused: [`Unmappable::OutsidePrefix`]        |
//!
//! Outcomes that depend on the destination, not on the key alone, are the job's (`job.rs`):
//! `a` next to `a/b` (a file where a directory must go, or the reverse: whichever comes first
//! is written, the other is reported as skipped, never replaced), a symbolic link inside
//! DEST on the way (never followed: skipped), and two keys that differ only in case on a
//! case-insensitive destination (the second is skipped, see [`fold_case`]).
//!
//! Keys are UTF-8 (`ListedObject::key` is a `String`: a lister decodes URL-encoded listings
//! and refuses what is not UTF-8), so every file name written is valid UTF-8.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// The job's own directory inside DEST (journal, failures file): no key may map into it.
pub const STATE_DIR: &str = ".resume-get";

/// Why a key has no local path.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unmappable {
    /// The key ends in `/`: a folder marker (an empty object some consoles create), not a file.
    FolderMarker,
    /// An empty segment: a leading `/`, or `//` inside the key.
    EmptySegment,
    /// A `.` or `..` segment, which would name this directory or a parent.
    DotSegment,
    /// A character the destination's file system cannot hold in a name.
    ForbiddenCharacter(char),
    /// A segment longer than the file system allows in one name.
    NameTooLong { bytes: usize, max: usize },
    /// The whole path is longer than the system allows.
    PathTooLong { bytes: usize, max: usize },
    /// The name of a temp file, checkpoint or the job's state, which another object's
    /// download or the job itself uses.
    Reserved(String),
    /// The key does not start with the prefix listed (a lister that broke its contract).
    OutsidePrefix,
}

impl fmt::Display for Unmappable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FolderMarker => {
                f.write_str("it ends in \"/\": a folder marker, not a file (nothing to write)")
            }
            Self::EmptySegment => f.write_str(
                "it has an empty path segment (a leading \"/\" or \"//\"), which no local path \
                 can keep apart from the key without it",
            ),
            Self::DotSegment => f.write_str(
                "it has a \".\" or \"..\" segment, which would name a directory outside its \
                 place (possibly outside DEST)",
            ),
            Self::ForbiddenCharacter(c) => write!(
                f,
                "it contains {c:?}, which the destination's file system does not allow in a name"
            ),
            Self::NameTooLong { bytes, max } => write!(
                f,
                "one of its segments is {bytes} bytes long; the file system allows {max}"
            ),
            Self::PathTooLong { bytes, max } => write!(
                f,
                "its local path would be {bytes} bytes long; the system allows about {max}"
            ),
            Self::Reserved(why) => write!(f, "its name is reserved: {why}"),
            Self::OutsidePrefix => {
                f.write_str("the listing returned it although it is outside the prefix")
            }
        }
    }
}

/// Limits of the destination's file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest file name, in bytes (`f_namemax`).
    pub name_max: usize,
    /// Longest relative path below DEST, in bytes: PATH_MAX minus DEST's own length and room
    /// for the temp and checkpoint suffixes.
    pub rel_path_max: usize,
}

/// Linux's PATH_MAX, including the terminating NUL.
pub const PATH_MAX: usize = 4096;

/// Room left at the end of a path for `.rgpart` / `.rgcp.tmp-<pid>-<n>`.
const SUFFIX_ROOM: usize = 48;

impl Limits {
    /// The limits below `dest` (an absolute directory path).
    pub fn for_dest(dest: &Path) -> Self {
        let used = dest.as_os_str().len() + 1 + SUFFIX_ROOM + 1;
        Self {
            name_max: checkpoint::names::name_max(dest),
            rel_path_max: PATH_MAX.saturating_sub(used),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            name_max: checkpoint::names::DEFAULT_NAME_MAX,
            rel_path_max: PATH_MAX - 256,
        }
    }
}

/// The part of `key` that names the local file: what follows the last `/` of `prefix`.
pub fn relative_name<'k>(prefix: &str, key: &'k str) -> Result<&'k str, Unmappable> {
    if !key.starts_with(prefix) {
        return Err(Unmappable::OutsidePrefix);
    }
    let base = prefix.rfind('/').map_or(0, |i| i + 1);
    Ok(&key[base..])
}

/// The path below DEST that holds the object named `rel` (see [`relative_name`]), relative:
/// only normal components, at least one.
pub fn map_relative(rel: &str, limits: &Limits) -> Result<PathBuf, Unmappable> {
    if rel.is_empty() || rel.ends_with('/') {
        return Err(Unmappable::FolderMarker);
    }
    let mut path = PathBuf::new();
    for (i, segment) in rel.split('/').enumerate() {
        check_segment(segment, i == 0, limits)?;
        path.push(segment);
    }
    if rel.len() > limits.rel_path_max {
        return Err(Unmappable::PathTooLong {
            bytes: rel.len(),
            max: limits.rel_path_max,
        });
    }
    debug_assert!(path.components().all(|c| matches!(c, Component::Normal(_))));
    Ok(path)
}

/// [`relative_name`] then [`map_relative`].
pub fn map_key(prefix: &str, key: &str, limits: &Limits) -> Result<PathBuf, Unmappable> {
    map_relative(relative_name(prefix, key)?, limits)
}

fn check_segment(segment: &str, first: bool, limits: &Limits) -> Result<(), Unmappable> {
    match segment {
        "" => return Err(Unmappable::EmptySegment),
        "." | ".." => return Err(Unmappable::DotSegment),
        _ => {}
    }
    if let Some(c) = segment.chars().find(|&c| forbidden(c)) {
        return Err(Unmappable::ForbiddenCharacter(c));
    }
    if segment.len() > limits.name_max {
        return Err(Unmappable::NameTooLong {
            bytes: segment.len(),
            max: limits.name_max,
        });
    }
    if first && segment == STATE_DIR {
        return Err(Unmappable::Reserved(format!(
            "{STATE_DIR}/ at the top of DEST holds the job's own state"
        )));
    }
    if let Some(why) = reserved(segment) {
        return Err(Unmappable::Reserved(why));
    }
    Ok(())
}

#[cfg(unix)]
fn forbidden(c: char) -> bool {
    // `/` never reaches here (it splits segments); every other byte but NUL is allowed.
    c == '\0'
}

#[cfg(not(unix))]
fn forbidden(c: char) -> bool {
    c.is_control() || matches!(c, '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
}

/// Names the engine gives its own files beside a destination: another object mapped there
/// would be taken for one (or clobber one).
fn reserved(segment: &str) -> Option<String> {
    let suffix = [".rgpart", ".rgcp"]
        .into_iter()
        .find(|s| segment.ends_with(s));
    if let Some(s) = suffix {
        return Some(format!(
            "names ending in {s} are the temp files and checkpoints of downloads in progress"
        ));
    }
    // A checkpoint's temp file: `<name>.rgcp.tmp-…`, or `<cut name>~<32 hex>.tmp-…` when the
    // name had to be shortened.
    let cut_form = segment.find(".tmp-").is_some_and(|i| {
        let head = &segment[..i];
        head.ends_with(".rgcp")
            || (head.len() >= 33
                && head.is_char_boundary(head.len() - 33)
                && head[head.len() - 33..].starts_with('~')
                && head[head.len() - 32..]
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit()))
    });
    cut_form.then(|| "it is the name of a checkpoint's temporary file".to_owned())
}

/// The form two paths share when a case-insensitive file system takes them for one file
/// (per-character lower case; Unicode normalisation is not folded).
pub fn fold_case(rel: &Path) -> String {
    rel.to_string_lossy().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn map(key: &str) -> Result<PathBuf, Unmappable> {
        map_key("", key, &Limits::default())
    }

    #[test]
    fn every_pitfall_has_its_documented_outcome() {
        assert_eq!(map("a/b.txt").unwrap(), Path::new("a/b.txt"));
        for k in ["..", "../x", "a/../b", "a/..", "./a", "a/./b", "prefix/.."] {
            assert_eq!(map(k), Err(Unmappable::DotSegment), "{k}");
        }
        for k in ["/abs", "/", "a//b", "//x"] {
            let e = map(k).unwrap_err();
            assert!(
                matches!(e, Unmappable::EmptySegment | Unmappable::FolderMarker),
                "{k}: {e:?}"
            );
        }
        assert_eq!(map("/abs"), Err(Unmappable::EmptySegment));
        for k in ["dir/", "a/b/", ""] {
            assert_eq!(map(k), Err(Unmappable::FolderMarker), "{k}");
        }
        assert_eq!(map("a\0b"), Err(Unmappable::ForbiddenCharacter('\0')));
        #[cfg(unix)]
        {
            assert_eq!(map("a\\..\\b").unwrap(), Path::new("a\\..\\b"));
            assert_eq!(map("C:\\x").unwrap(), Path::new("C:\\x"));
            assert_eq!(map("a:b").unwrap().components().count(), 1);
        }
        let long = "n".repeat(256);
        assert_eq!(
            map(&format!("d/{long}")),
            Err(Unmappable::NameTooLong {
                bytes: 256,
                max: 255
            })
        );
        assert!(map(&"n".repeat(255)).is_ok());
        // Multi-byte characters count in bytes.
        assert!(matches!(
            map(&"é".repeat(128)),
            Err(Unmappable::NameTooLong { bytes: 256, .. })
        ));
        let deep = vec!["d".repeat(200); 30].join("/");
        assert!(matches!(map(&deep), Err(Unmappable::PathTooLong { .. })));
        for k in [
            "x.rgpart",
            "a/x.rgcp",
            "x.rgcp.tmp-12-3",
            &format!("cut~{}.tmp-1-2", "0123456789abcdef".repeat(2)),
            ".resume-get/job",
        ] {
            assert!(matches!(map(k), Err(Unmappable::Reserved(_))), "{k}");
        }
        // Only at the top, and only whole segments.
        assert!(map("a/.resume-get/x").is_ok());
        assert!(map("x.rgpart.txt").is_ok());
        assert!(map("x.tmp-1").is_ok());
    }

    #[test]
    fn the_relative_name_starts_after_the_prefixs_last_slash() {
        assert_eq!(relative_name("logs/2026/", "logs/2026/01/a"), Ok("01/a"));
        assert_eq!(relative_name("logs/20", "logs/2026/a"), Ok("2026/a"));
        assert_eq!(relative_name("", "a/b"), Ok("a/b"));
        assert_eq!(relative_name("p/", "q/x"), Err(Unmappable::OutsidePrefix));
        // The prefix itself as a key: a folder marker.
        assert_eq!(
            map_key("p/", "p/", &Limits::default()),
            Err(Unmappable::FolderMarker)
        );
        // A prefix with `..` does not matter: only the key's own segments are mapped.
        assert_eq!(
            map_key("a/../", "a/../x", &Limits::default()).unwrap(),
            Path::new("x")
        );
    }

    #[test]
    fn case_folding_names_the_clash() {
        assert_eq!(fold_case(Path::new("A.txt")), fold_case(Path::new("a.TXT")));
        assert_ne!(fold_case(Path::new("a")), fold_case(Path::new("b")));
    }

    /// Keys built from the characters that cause trouble.
    fn hostile_key() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("/".to_owned()),
            Just("..".to_owned()),
            Just(".".to_owned()),
            Just("\\".to_owned()),
            Just("\0".to_owned()),
            Just(".rgpart".to_owned()),
            Just(":".to_owned()),
            Just("é".to_owned()),
            "[a-cA-C]{1,3}",
            "[a-z]{200,260}",
        ];
        prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn no_mapped_path_leaves_dest(key in hostile_key(), prefix in "[a/.]{0,4}") {
            let key = format!("{prefix}{key}");
            if let Ok(rel) = map_key(&prefix, &key, &Limits::default()) {
                prop_assert!(rel.components().count() >= 1);
                prop_assert!(rel.components().all(|c| matches!(c, Component::Normal(_))), "{rel:?}");
                let dest = Path::new("/dest");
                prop_assert!(dest.join(&rel).starts_with(dest));
                for c in rel.components() {
                    prop_assert!(c.as_os_str().len() <= 255);
                }
            }
        }

        #[test]
        fn distinct_keys_never_share_a_path(a in hostile_key(), b in hostile_key()) {
            prop_assume!(a != b);
            if let (Ok(pa), Ok(pb)) = (map(&a), map(&b)) {
                prop_assert_ne!(pa, pb, "{:?} and {:?}", a, b);
            }
        }
    }
}
