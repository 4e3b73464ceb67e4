//! Percent-encoding as OSS expects it, shared by URL building and signing.
//!
//! OSS uses RFC 3986 "unreserved" characters (`A-Za-z0-9-._~`) as the only characters left
//! alone, upper-case `%XX` for every other byte of the UTF-8 encoding, and (in paths only)
//! keeps `/` literal. `+` is always `%2B` and a space is always `%20`, never `+`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Everything except `A-Za-z0-9-._~` is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Like [`COMPONENT`] but `/` is kept: object keys in URL paths and the V4 canonical URI.
const PATH: &AsciiSet = &COMPONENT.remove(b'/');

/// Encodes a path (an object key, or `/bucket/key`), keeping `A-Za-z0-9-._~/`.
pub fn encode_path(path: &str) -> String {
    utf8_percent_encode(path, PATH).to_string()
}

/// Encodes a query key or value, keeping only `A-Za-z0-9-._~`.
pub fn encode_component(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// Builds a query string (without the leading `?`) from decoded pairs, in the given order.
///
/// An empty value is written as the bare key (`acl`, `uploads`), as OSS documents it.
pub fn encode_query<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&encode_component(k.as_ref()));
        if !v.as_ref().is_empty() {
            out.push('=');
            out.push_str(&encode_component(v.as_ref()));
        }
    }
    out
}

/// Splits a raw query string (without `?`) into decoded pairs, in order.
///
/// `+` decodes to a space (form encoding, as the official SDKs' parsers do); `%XX` sequences
/// are decoded and invalid UTF-8 is replaced lossily. Empty segments (`a&&b`) are skipped and a
/// key without `=` has an empty value. This is what a server that verifies signatures feeds to
/// the signing functions.
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|seg| !seg.is_empty())
        .map(|seg| {
            let (k, v) = seg.split_once('=').unwrap_or((seg, ""));
            (decode_form(k), decode_form(v))
        })
        .collect()
}

fn decode_form(s: &str) -> String {
    let plus_as_space = s.replace('+', " ");
    percent_decode_str(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

/// Decodes a percent-encoded URL path (no `+` handling: in paths `+` is a literal plus).
pub fn decode_path(path: &str) -> String {
    percent_decode_str(path).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_keeps_unreserved_and_slash_and_encodes_the_rest_upper_case() {
        assert_eq!(encode_path("AZaz09-._~/"), "AZaz09-._~/");
        assert_eq!(encode_path("a b+c%d"), "a%20b%2Bc%25d");
        assert_eq!(encode_path("é/中"), "%C3%A9/%E4%B8%AD");
        assert_eq!(encode_path("//a//"), "//a//");
        assert_eq!(
            encode_path("?#&=:;@!*'(),$[]\\|"),
            "%3F%23%26%3D%3A%3B%40%21%2A%27%28%29%2C%24%5B%5D%5C%7C"
        );
    }

    #[test]
    fn component_also_encodes_slash() {
        assert_eq!(encode_component("a/b c+d"), "a%2Fb%20c%2Bd");
        assert_eq!(encode_component("x=y&z"), "x%3Dy%26z");
    }

    #[test]
    fn query_round_trips_reserved_characters() {
        let pairs = vec![
            ("versionId".to_string(), "CAEQ+/=&?#%".to_string()),
            ("acl".to_string(), String::new()),
            (
                "response-content-disposition".to_string(),
                "attachment; filename=\"a b.txt\"".to_string(),
            ),
            ("中".to_string(), "文".to_string()),
        ];
        let raw = encode_query(&pairs);
        assert_eq!(
            raw,
            "versionId=CAEQ%2B%2F%3D%26%3F%23%25&acl&response-content-disposition=attachment%3B%20filename%3D%22a%20b.txt%22&%E4%B8%AD=%E6%96%87"
        );
        assert_eq!(parse_query(&raw), pairs);
    }

    #[test]
    fn parse_query_treats_plus_as_space_and_skips_empty_segments() {
        assert_eq!(
            parse_query("a=1+2&&b&c=%2B&d="),
            vec![
                ("a".to_string(), "1 2".to_string()),
                ("b".to_string(), String::new()),
                ("c".to_string(), "+".to_string()),
                ("d".to_string(), String::new()),
            ]
        );
        assert!(parse_query("").is_empty());
    }

    #[test]
    fn decode_path_keeps_plus() {
        assert_eq!(decode_path("/b/key%2B123+x%20y"), "/b/key+123+x y");
    }
}
