//! Digests the user gives: `--checksum ALG=HEX` and `--checksum-file SUMS`.

use std::path::Path;

use resume_core::{Algorithm, Checksum, Origin};

/// clap's parser for `--checksum ALG=HEX`.
pub fn parse_checksum_arg(s: &str) -> Result<Checksum, String> {
    Checksum::parse(s, Origin::User("--checksum".into())).map_err(|e| e.to_string())
}

/// The entry of the checksum file at `path` for one of `names` (DEST's file name, the key's
/// last segment), compared by file name (a `./dir/` prefix in the file is ignored).
///
/// Lines are `HEX  NAME` or `HEX *NAME` (sha256sum, md5sum, …) or `ALG (NAME) = HEX` (BSD,
/// `--tag`); empty lines and `#` comments are skipped. The algorithm is the BSD tag's, else
/// the one the file's name says (`SHA256SUMS`, `x.sha1`, `MD5SUMS`…), else the digest's
/// length (128 hex digits SHA-512, 64 SHA-256, 40 SHA-1, 32 MD5).
pub fn from_sums_file(path: &Path, names: &[&str]) -> Result<Checksum, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read --checksum-file {}: {e}; check the path",
            path.display()
        )
    })?;
    let label = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let by_file_name = algorithm_from_file_name(&label);
    let mut found: Option<(Algorithm, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((tag, hex, name)) = parse_line(line) else {
            return Err(format!(
                "line {} of --checksum-file {} is not `HEX  NAME` nor `ALG (NAME) = HEX`: {:?}",
                n + 1,
                path.display(),
                line
            ));
        };
        if !names.iter().any(|want| base_name(name) == *want) {
            continue;
        }
        let algorithm = match tag {
            Some(t) => Algorithm::from_name(t).ok_or_else(|| {
                format!(
                    "line {} of --checksum-file {}: unsupported algorithm {t:?} (supported: \
                     SHA256, SHA1, MD5, CRC32C, CRC32, CRC64NVME, CRC64XZ)",
                    n + 1,
                    path.display()
                )
            })?,
            None => match by_file_name.or_else(|| algorithm_from_len(hex.len())) {
                Some(a) => a,
                None => {
                    return Err(format!(
                        "cannot tell the algorithm of the {}-digit digest for {name} in {}: \
                         name the file after it (SHA256SUMS, SHA1SUMS, MD5SUMS) or use \
                         --checksum ALG=HEX",
                        hex.len(),
                        path.display()
                    ));
                }
            },
        };
        if let Some((a, h)) = &found
            && (*a != algorithm || !h.eq_ignore_ascii_case(hex))
        {
            return Err(format!(
                "--checksum-file {} has different digests for {name}; keep one, or use \
                 --checksum ALG=HEX",
                path.display()
            ));
        }
        found = Some((algorithm, hex.to_owned()));
    }
    let Some((algorithm, hex)) = found else {
        return Err(format!(
            "--checksum-file {} has no entry for {}; check the file, or name DEST like the \
             entry",
            path.display(),
            names.join(" or ")
        ));
    };
    Checksum::parse(
        &format!("{}={hex}", algorithm.short_name()),
        Origin::User(label),
    )
    .map_err(|e| format!("--checksum-file {}: {e}", path.display()))
}

/// `(BSD tag, hex, name)` of one line.
fn parse_line(line: &str) -> Option<(Option<&str>, &str, &str)> {
    // BSD: `SHA256 (name) = hex`.
    if let Some((left, hex)) = line.rsplit_once(") = ")
        && let Some((tag, name)) = left.split_once(" (")
        && !tag.is_empty()
        && !tag.contains(' ')
    {
        return Some((Some(tag), hex.trim(), name));
    }
    // GNU: `hex  name` or `hex *name` (a leading `\` marks an escaped name; rare, taken as is).
    let line = line.strip_prefix('\\').unwrap_or(line);
    let (hex, rest) = line.split_once([' ', '\t'])?;
    let name = rest.trim_start_matches([' ', '\t']);
    let name = name.strip_prefix('*').unwrap_or(name);
    if hex.is_empty() || name.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some((None, hex, name))
}

fn base_name(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

fn algorithm_from_file_name(name: &str) -> Option<Algorithm> {
    let lower = name.to_ascii_lowercase();
    [
        ("sha256", Algorithm::Sha256),
        ("sha512", Algorithm::Sha512),
        ("sha1", Algorithm::Sha1),
        ("md5", Algorithm::Md5),
    ]
    .into_iter()
    .find(|(needle, _)| lower.contains(needle))
    .map(|(_, a)| a)
}

fn algorithm_from_len(hex_digits: usize) -> Option<Algorithm> {
    match hex_digits {
        128 => Some(Algorithm::Sha512),
        64 => Some(Algorithm::Sha256),
        40 => Some(Algorithm::Sha1),
        32 => Some(Algorithm::Md5),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const MD5: &str = "900150983cd24fb0d6963f7d28e17f72";

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn gnu_and_bsd_lines_by_file_name_and_by_length() {
        let dir = tempfile::tempdir().unwrap();
        let sums = write(
            dir.path(),
            "SHA256SUMS",
            &format!("# comment\n\n{SHA}  other.bin\n{SHA} *./dist/abc.tar.gz\r\n"),
        );
        let c = from_sums_file(&sums, &["abc.tar.gz"]).unwrap();
        assert_eq!((c.algorithm, c.hex()), (Algorithm::Sha256, SHA.to_owned()));
        assert_eq!(c.describe(), "SHA-256 (SHA256SUMS)");
        // Any name of the two matches.
        assert!(from_sums_file(&sums, &["x", "other.bin"]).is_ok());
        let plain = write(dir.path(), "sums.txt", &format!("{MD5}  a\n"));
        assert_eq!(
            from_sums_file(&plain, &["a"]).unwrap().algorithm,
            Algorithm::Md5
        );
        let bsd = write(dir.path(), "CHECKSUMS", &format!("MD5 (a b) = {MD5}\n"));
        let c = from_sums_file(&bsd, &["a b"]).unwrap();
        assert_eq!(c.algorithm, Algorithm::Md5);
        let crc = write(dir.path(), "c", "CRC32C (z) = e3069283\n");
        assert_eq!(
            from_sums_file(&crc, &["z"]).unwrap().algorithm,
            Algorithm::Crc32c
        );
    }

    #[test]
    fn problems_say_what_and_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let sums = write(dir.path(), "SHA256SUMS", &format!("{SHA}  a\n"));
        let e = from_sums_file(&sums, &["b", "c"]).unwrap_err();
        assert!(e.contains("no entry for b or c"), "{e}");
        let e = from_sums_file(&dir.path().join("missing"), &["a"]).unwrap_err();
        assert!(e.contains("cannot read"), "{e}");
        let odd = write(dir.path(), "sums", "abcd  a\n");
        let e = from_sums_file(&odd, &["a"]).unwrap_err();
        assert!(e.contains("cannot tell the algorithm"), "{e}");
        let wrong_len = write(dir.path(), "MD5SUMS", &format!("{SHA}  a\n"));
        let e = from_sums_file(&wrong_len, &["a"]).unwrap_err();
        assert!(e.contains("32 hex digits"), "{e}");
        let garbage = write(dir.path(), "g", "not a sums line\n");
        let e = from_sums_file(&garbage, &["a"]).unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        let two = write(dir.path(), "t", &format!("{SHA}  a\n{MD5}  a\n"));
        let e = from_sums_file(&two, &["a"]).unwrap_err();
        assert!(e.contains("different digests"), "{e}");
    }

    #[test]
    fn checksum_arg() {
        let c = parse_checksum_arg(&format!("sha256={SHA}")).unwrap();
        assert_eq!(c.describe(), "SHA-256 (--checksum)");
        let e = parse_checksum_arg("sha384=00").unwrap_err();
        assert!(e.contains("sha256"), "{e}");
        let e = parse_checksum_arg("sha512=00").unwrap_err();
        assert!(e.contains("128 hex digits"), "{e}");
    }
}
