//! What an HTTP server publishes about the object's bytes: `Repr-Digest` (RFC 9530), its
//! predecessor `Digest` (RFC 3230), and the legacy `Content-MD5` (RFC 1864). Reported as
//! [`Checksum`]s for the engine to verify; this module checks nothing.

use base64::Engine as _;
use reqwest::header::HeaderMap;
use resume_core::{Algorithm, Checksum, Origin};

/// `Repr-Digest`'s algorithm names (RFC 9530's registry) the engine can verify (`unixsum`,
/// `unixcksum` and `adler` it cannot).
fn repr_algorithm(name: &str) -> Option<Algorithm> {
    Some(match name.to_ascii_lowercase().as_str() {
        "sha-256" => Algorithm::Sha256,
        "sha-512" => Algorithm::Sha512,
        "sha" => Algorithm::Sha1,
        "md5" => Algorithm::Md5,
        "crc32c" => Algorithm::Crc32c,
        _ => return None,
    })
}

/// Every checksum `headers` publish for the whole representation. `whole_body`: the
/// headers are those of a HEAD or of a `200` answer, whose `Content-MD5` is the whole
/// object's (on a `206` it is the part's, and left out). `Repr-Digest` always describes the
/// whole representation, also on a `206`.
pub(crate) fn published(headers: &HeaderMap, whole_body: bool) -> Vec<Checksum> {
    let mut out = Vec::new();
    for value in headers.get_all("repr-digest") {
        let Ok(v) = value.to_str() else { continue };
        for (name, bytes) in parse_dictionary(v) {
            push(&mut out, &name, bytes, "HTTP Repr-Digest");
        }
    }
    for value in headers.get_all("digest") {
        let Ok(v) = value.to_str() else { continue };
        for member in v.split(',') {
            let Some((name, b64)) = member.trim().split_once('=') else {
                continue;
            };
            if let Some(bytes) = decode_b64(b64.trim()) {
                push(&mut out, name.trim(), bytes, "HTTP Digest");
            }
        }
    }
    if whole_body && let Some(v) = headers.get("content-md5").and_then(|v| v.to_str().ok()) {
        match decode_b64(v.trim()) {
            Some(bytes) => push(&mut out, "md5", bytes, "HTTP Content-MD5"),
            None => tracing::warn!(value = v, "ignoring a Content-MD5 that is not base64"),
        }
    }
    out
}

fn push(out: &mut Vec<Checksum>, name: &str, bytes: Vec<u8>, origin: &str) {
    let Some(algorithm) = repr_algorithm(name) else {
        tracing::debug!(
            algorithm = name,
            origin,
            "a published digest the engine cannot check"
        );
        return;
    };
    match Checksum::new(algorithm, bytes, Origin::Store(origin.into())) {
        Ok(c) if !out.iter().any(|o: &Checksum| o.algorithm == c.algorithm) => out.push(c),
        Ok(_) => {}
        Err(e) => tracing::warn!(algorithm = name, origin, %e, "ignoring a malformed digest"),
    }
}

/// `sha-256=:BASE64:, sha-512=:BASE64:;param` (a structured-field dictionary of byte
/// sequences): the members whose value is a byte sequence, decoded.
fn parse_dictionary(v: &str) -> Vec<(String, Vec<u8>)> {
    v.split(',')
        .filter_map(|member| {
            let (name, rest) = member.trim().split_once('=')?;
            let rest = rest.trim().strip_prefix(':')?;
            let end = rest.find(':')?;
            Some((name.trim().to_owned(), decode_b64(&rest[..end])?))
        })
        .collect()
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn repr_digest_members_the_engine_knows_are_published() {
        // sha-256 and sha-512 of "hello world\n"-like fixtures: the values only need lengths.
        let sha256 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let sha512 = base64::engine::general_purpose::STANDARD.encode([9u8; 64]);
        let md5 = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        let h = headers(&[
            (
                "repr-digest",
                &format!("sha-512=:{sha512}:, sha-256=:{sha256}:;x=1"),
            ),
            ("content-md5", &md5),
        ]);
        let got = published(&h, true);
        let names: Vec<_> = got
            .iter()
            .map(|c| (c.algorithm, c.origin.to_string()))
            .collect();
        assert_eq!(
            names,
            vec![
                (Algorithm::Sha512, "HTTP Repr-Digest".to_owned()),
                (Algorithm::Sha256, "HTTP Repr-Digest".to_owned()),
                (Algorithm::Md5, "HTTP Content-MD5".to_owned())
            ]
        );
        assert_eq!(got[0].value, vec![9u8; 64]);
        assert_eq!(got[1].value, vec![7u8; 32]);
        // On a 206, Content-MD5 is the part's: left out; Repr-Digest stays.
        let got = published(&h, false);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].algorithm, Algorithm::Sha256);
    }

    #[test]
    fn malformed_and_unknown_digests_are_ignored() {
        let h = headers(&[
            (
                "repr-digest",
                "sha-256=:not base64:, unixsum=:AAAA:, md5=:AAAA:",
            ),
            ("content-md5", "###"),
            ("digest", "SHA-256=AAAA, sha=AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ]);
        let got = published(&h, true);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].algorithm, Algorithm::Sha1);
        assert_eq!(got[0].origin.to_string(), "HTTP Digest");
    }
}
