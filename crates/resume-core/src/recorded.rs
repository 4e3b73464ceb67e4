//! The object a finished file holds, recorded with the file itself: a user extended attribute
//! (`user.resume-get.object`) written on the temp file before the atomic rename, so the file
//! never appears at DEST without it, and no crash can leave it there with another object's
//! record. It names the object (a hash of the source's identity and the key), its size,
//! etag, version and the CRC-64/XZ the engine computed over the bytes written, and the
//! file's modification time when recorded: a file whose size or modification time changed
//! since is not the file recorded, and its record is ignored (extended attributes survive
//! writes, so this is what tells a stale record).
//!
//! Skip rules use it after a job's journal is gone (a completed job's rerun): a file recorded
//! as the listed object's etag and size is up to date with no request. File systems without
//! user extended attributes (tmpfs before Linux 6.6, some network file systems, other
//! systems than Linux) keep no record, and the rules fall back to size and modification time.
//! Nothing secret is recorded: no URL, only a hash of the source and key.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The attribute's name.
pub const XATTR_NAME: &str = "user.resume-get.object";
const FORMAT: &str = "resume-get object 1";
/// Longest record read (an etag is at most a few hundred bytes).
const MAX_LEN: usize = 4096;

/// What a finished file records about the object it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedObject {
    /// [`object_id`] of the source and key it was downloaded from.
    pub object: String,
    pub size: u64,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    /// CRC-64/XZ of the whole file, computed by the engine as it wrote and verified it.
    pub crc64: u64,
    /// The file's modification time when recorded, in nanoseconds since the epoch.
    pub modified_ns: i128,
}

/// Names an object in a record: 32 hex digits of BLAKE3 of the source's identity and the key.
pub fn object_id(source_identity: &str, key: &str) -> String {
    let mut h = blake3::Hasher::new();
    h.update(source_identity.as_bytes());
    h.update(b"\n");
    h.update(key.as_bytes());
    h.finalize().to_hex()[..32].to_owned()
}

/// Nanoseconds since the epoch (negative before it).
pub fn nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// A value may not hold a line break (etags and version ids never do; refused if they do).
fn clean(s: &str) -> Option<&str> {
    (!s.contains(['\n', '\r'])).then_some(s)
}

impl RecordedObject {
    fn encode(&self) -> Option<String> {
        let mut s = format!(
            "{FORMAT}\nobject={}\nsize={}\nmodified_ns={}\ncrc64xz={:016x}\n",
            self.object, self.size, self.modified_ns, self.crc64
        );
        if let Some(v) = &self.version_id {
            s.push_str(&format!("version={}\n", clean(v)?));
        }
        if let Some(e) = &self.etag {
            s.push_str(&format!("etag={}\n", clean(e)?));
        }
        Some(s)
    }

    fn decode(s: &str) -> Option<Self> {
        let mut lines = s.lines();
        if lines.next()? != FORMAT {
            return None;
        }
        let (mut object, mut size, mut modified_ns, mut crc64) = (None, None, None, None);
        let (mut etag, mut version_id) = (None, None);
        for line in lines {
            let (k, v) = line.split_once('=')?;
            match k {
                "object" => object = Some(v.to_owned()),
                "size" => size = Some(v.parse().ok()?),
                "modified_ns" => modified_ns = Some(v.parse().ok()?),
                "crc64xz" => crc64 = Some(u64::from_str_radix(v, 16).ok()?),
                "etag" => etag = Some(v.to_owned()),
                "version" => version_id = Some(v.to_owned()),
                // Fields of a later format are ignored.
                _ => {}
            }
        }
        Some(Self {
            object: object?,
            size: size?,
            etag,
            version_id,
            crc64: crc64?,
            modified_ns: modified_ns?,
        })
    }
}

/// Records `rec` on the open `file`. `false` when the file system keeps no user extended
/// attributes (or the record cannot be encoded): nothing is recorded then.
pub(crate) fn write(file: &std::fs::File, rec: &RecordedObject) -> bool {
    let Some(value) = rec.encode() else {
        return false;
    };
    #[cfg(target_os = "linux")]
    {
        rustix::fs::fsetxattr(
            file,
            XATTR_NAME,
            value.as_bytes(),
            rustix::fs::XattrFlags::empty(),
        )
        .is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, value);
        false
    }
}

/// What the file at `path` (a symbolic link is not followed) records about its object, if it
/// is still the file recorded: the same size and modification time. `None` when it has no
/// record, the file system keeps none, or the file changed since.
pub fn recorded_object(path: &Path) -> Option<RecordedObject> {
    let m = std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.is_file())?;
    let rec = read_attr(path)?;
    let modified = nanos(m.modified().ok()?);
    (rec.size == m.len() && rec.modified_ns == modified).then_some(rec)
}

#[cfg(target_os = "linux")]
fn read_attr(path: &Path) -> Option<RecordedObject> {
    let mut buf = vec![0u8; MAX_LEN];
    let n = rustix::fs::lgetxattr(path, XATTR_NAME, &mut buf[..]).ok()?;
    RecordedObject::decode(std::str::from_utf8(&buf[..n]).ok()?)
}

#[cfg(not(target_os = "linux"))]
fn read_attr(_path: &Path) -> Option<RecordedObject> {
    let _ = MAX_LEN;
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(file: &std::fs::File) -> RecordedObject {
        RecordedObject {
            object: object_id("mock://b", "k"),
            size: 5,
            etag: Some("\"abc\"".into()),
            version_id: None,
            crc64: 0xdead_beef,
            modified_ns: nanos(file.metadata().unwrap().modified().unwrap()),
        }
    }

    #[test]
    fn a_record_round_trips_and_goes_stale_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello").unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let r = rec(&f);
        if !write(&f, &r) {
            eprintln!("no user extended attributes here; nothing to test");
            return;
        }
        assert_eq!(recorded_object(&path), Some(r.clone()));
        // Same size, new modification time: not the file recorded.
        f.set_modified(UNIX_EPOCH + std::time::Duration::from_secs(7))
            .unwrap();
        assert_eq!(recorded_object(&path), None);
        // Back to the recorded time, but another size.
        std::fs::write(&path, b"hello!").unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_modified(UNIX_EPOCH + std::time::Duration::from_nanos(r.modified_ns as u64))
            .unwrap();
        assert_eq!(recorded_object(&path), None);
    }

    #[test]
    fn values_with_line_breaks_are_never_recorded_and_later_fields_are_ignored() {
        let r = RecordedObject {
            object: "o".into(),
            size: 1,
            etag: Some("a\nsize=9".into()),
            version_id: None,
            crc64: 1,
            modified_ns: -5,
        };
        assert_eq!(r.encode(), None);
        let r = RecordedObject {
            etag: Some("W/\"x=y\"".into()),
            ..r
        };
        let text = format!("{}future=1\n", r.encode().unwrap());
        assert_eq!(RecordedObject::decode(&text), Some(r));
        assert_eq!(RecordedObject::decode("something else\n"), None);
    }
}
