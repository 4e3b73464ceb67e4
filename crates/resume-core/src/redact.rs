//! One way to show a URL without its secrets, for every message, log line and event.
//!
//! A URL can carry credentials in two places: the user-info (`user:password@host`) and the
//! query string (presigned URLs and SAS tokens: `Signature`, `x-oss-signature`,
//! `X-Amz-Signature`, `X-Amz-Security-Token`, `X-Goog-Signature`, `sig`, …). [`redact_url`]
//! replaces the password (or a user name given alone, which is often a token) and the value of
//! every signing or token parameter with `<redacted>`, keeping the names, so a reader still
//! sees what was there. [`redact_text`] does the same to every URL inside a longer text, such
//! as an error chain that quotes the request it failed on.
//!
//! Every crate that prints a URL (backends, the CLI) goes through these two functions.

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// Query (and fragment) parameter names whose value is a credential, compared ASCII
/// case-insensitively after percent-decoding the name.
const SECRET_PARAMS: &[&str] = &[
    // OSS: V1 presigned URLs, V4 presigned URLs, STS tokens.
    "signature",
    "ossaccesskeyid",
    "x-oss-signature",
    "x-oss-credential",
    "x-oss-security-token",
    "security-token",
    // S3 (SigV4 and SigV2 presigned URLs).
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "awsaccesskeyid",
    // GCS signed URLs.
    "x-goog-signature",
    "x-goog-credential",
    "googleaccessid",
    // Azure SAS.
    "sig",
    // CloudFront and Akamai.
    "key-pair-id",
    "hdnts",
    "__token__",
    // Generic.
    "key",
    "code",
    "auth",
];

/// Name fragments that make any parameter a secret (`access_token`, `api_key`, `password`…).
const SECRET_PARTS: &[&str] = &[
    "signature",
    "token",
    "secret",
    "password",
    "passwd",
    "credential",
    "apikey",
    "api_key",
    "api-key",
    "accesskey",
    "access_key",
    "authorization",
];

/// Whether a query parameter called `name` (raw, possibly percent-encoded) holds a secret.
pub fn is_secret_param(name: &str) -> bool {
    let name = percent_decode_lossy(name).to_ascii_lowercase();
    SECRET_PARAMS.contains(&name.as_str()) || SECRET_PARTS.iter().any(|p| name.contains(p))
}

/// Parameters of a signed URL that say how and until when it was signed, not which object it
/// names: signatures, credentials, tokens, algorithms, signing dates and expiries (OSS V1 and
/// V4, S3 SigV2 and SigV4, GCS V2 and V4, CloudFront). Compared ASCII case-insensitively.
const SIGNING_PARAMS: &[&str] = &[
    "expires",
    "policy",
    "x-oss-signature-version",
    "x-oss-date",
    "x-oss-expires",
    "x-oss-additional-headers",
    "x-amz-algorithm",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-signedheaders",
    "x-goog-algorithm",
    "x-goog-date",
    "x-goog-expires",
    "x-goog-signedheaders",
];

/// The fields of an Azure SAS token (`sv`, `se`, `sp`, … `sig`): signing parameters only when
/// the query has a `sig` (elsewhere `sp` or `st` may well name the object).
const AZURE_SAS_PARAMS: &[&str] = &[
    "sv", "ss", "srt", "sp", "se", "st", "spr", "sig", "sr", "si", "sip", "skoid", "sktid", "skt",
    "ske", "sks", "skv", "sdd", "saoid", "suoid", "scid", "ses", "sduoid",
];

/// `query` (without the `?`) without the parameters that sign it ([`is_secret_param`], the
/// signing dates and expiries, an Azure SAS token's fields), the others kept verbatim and in
/// order. Two presigned URLs of the same object, signed at different times or by different
/// keys, give the same result: what names a download's checkpoint.
pub fn unsigned_query(query: &str) -> String {
    let name_of = |pair: &str| {
        percent_decode_lossy(pair.split_once('=').map_or(pair, |(n, _)| n)).to_ascii_lowercase()
    };
    let azure = query.split('&').any(|p| name_of(p) == "sig");
    query
        .split('&')
        .filter(|pair| {
            if pair.is_empty() {
                return false;
            }
            let name = name_of(pair);
            !(is_secret_param(&name)
                || SIGNING_PARAMS.contains(&name.as_str())
                || (azure && AZURE_SAS_PARAMS.contains(&name.as_str())))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether `query` (without the `?`) carries a signature or token (a presigned URL, a SAS).
pub fn is_signed_query(query: &str) -> bool {
    query.split('&').any(|pair| {
        matches!(pair.split_once('='), Some((name, v)) if !v.is_empty() && is_secret_param(name))
    })
}

/// `url` with the user-info's password (or a lone user name) and the value of every
/// secret-bearing query or fragment parameter replaced by [`REDACTED`]. Everything else —
/// scheme, host, port, path, parameter names, other parameters — is kept as given.
///
/// Works on anything URL-shaped, also without a scheme (`user:pw@host/path?sig=…`).
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) if is_scheme(&url[..i]) => url.split_at(i + 3),
        _ => ("", url),
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    // The query starts at the first `?`, the fragment at the first `#` (whichever is first
    // ends the part before them).
    let head_end = rest.find(['?', '#']).unwrap_or(rest.len());
    let (head, tail) = rest.split_at(head_end);
    out.push_str(&redact_userinfo(head));
    let mut tail = tail;
    while let Some(sep) = tail.chars().next() {
        // `sep` is `?` or `#`; the part runs to the next `#` (a query) or the end.
        let body = &tail[1..];
        let end = if sep == '?' {
            body.find('#').unwrap_or(body.len())
        } else {
            body.len()
        };
        out.push(sep);
        out.push_str(&redact_params(&body[..end]));
        tail = &body[end..];
    }
    out
}

/// Every URL in `text` (anything `scheme://…` up to whitespace, a quote or an angle bracket)
/// passed through [`redact_url`]; the rest of the text unchanged.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        // Walk back over the scheme's characters.
        let scheme_start = rest[..pos]
            .char_indices()
            .rev()
            .take_while(|&(_, c)| c.is_ascii_alphanumeric() || "+-.".contains(c))
            .last()
            .map_or(pos, |(i, _)| i);
        out.push_str(&rest[..scheme_start]);
        let after = &rest[pos + 3..];
        let end = pos
            + 3
            + after
                .find(|c: char| c.is_whitespace() || "\"'<>`".contains(c))
                .unwrap_or(after.len());
        out.push_str(&redact_url(&rest[scheme_start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

/// `authority[/path]` with the user-info redacted. The user-info ends at the last `@` before
/// the query. Before that `@` there may be a `/` only if it belongs to a password typed
/// unencoded (`u:pa/ss@host`); an `@` after `host[:port]/` is part of the path and is kept.
fn redact_userinfo(head: &str) -> String {
    let Some(at) = head.rfind('@') else {
        return head.to_owned();
    };
    let userinfo = &head[..at];
    let is_userinfo = match userinfo.split_once('/') {
        None => true,
        Some((before_slash, _)) => match before_slash.rsplit_once(':') {
            // `host:port/path@…` is a path; `user:pa/ss@…` a password.
            Some((_, after)) => !after.is_empty() && !after.bytes().all(|b| b.is_ascii_digit()),
            None => false,
        },
    };
    if !is_userinfo {
        return head.to_owned();
    }
    let shown = match userinfo.split_once(':') {
        Some((user, _)) if !user.is_empty() && !user.contains('/') => {
            format!("{user}:{REDACTED}")
        }
        _ => REDACTED.to_owned(),
    };
    format!("{shown}@{}", &head[at + 1..])
}

/// `a=1&sig=x&b` with secret values redacted.
fn redact_params(params: &str) -> String {
    params
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if !value.is_empty() && is_secret_param(name) => {
                format!("{name}={REDACTED}")
            }
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `%XX` decoded where valid (invalid sequences kept as they are), then UTF-8 decoded
/// lossily: for matching names and showing values, never for bytes sent on.
pub fn percent_decode_lossy(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(h, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "PASSW0RD-s3cr3t";

    #[track_caller]
    fn clean(shown: &str) {
        assert!(!shown.contains(SECRET), "secret in {shown:?}");
        assert!(!shown.contains("PASSW0RD"), "secret in {shown:?}");
    }

    #[test]
    fn userinfo_passwords_are_redacted_and_the_user_kept() {
        let r = redact_url(&format!("http://alice:{SECRET}@127.0.0.1:8080/obj.bin"));
        clean(&r);
        assert_eq!(r, "http://alice:<redacted>@127.0.0.1:8080/obj.bin");
        // A lone user name is often a token.
        let r = redact_url(&format!("https://{SECRET}@github.com/x"));
        assert_eq!(r, "https://<redacted>@github.com/x");
        // `@` and `/` inside the password, as people type them.
        let r = redact_url(&format!("http://u:{SECRET}/x@y@h:1/p"));
        clean(&r);
        assert_eq!(r, "http://u:<redacted>@h:1/p");
        // An `@` in a path is not user-info.
        assert_eq!(redact_url("http://h/a@b/c"), "http://h/a@b/c");
        assert_eq!(
            redact_url("http://127.0.0.1:9000/b/bob@example.com/f"),
            "http://127.0.0.1:9000/b/bob@example.com/f"
        );
        assert_eq!(
            redact_url("s3://b/users/bob@example.com"),
            "s3://b/users/bob@example.com"
        );
        // No scheme.
        assert_eq!(
            redact_url(&format!("u:{SECRET}@h/k")),
            "u:<redacted>@h/k".to_string()
        );
    }

    #[test]
    fn signing_and_token_parameters_keep_their_names() {
        let cases = [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=$&X-Amz-Security-Token=$&X-Amz-Signature=$",
            "OSSAccessKeyId=$&Expires=1700000000&Signature=$",
            "x-oss-signature-version=OSS4-HMAC-SHA256&x-oss-credential=$&x-oss-signature=$&x-oss-security-token=$",
            "X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=$&X-Goog-Signature=$",
            "sv=2022-11-02&se=2030-01-01&sp=r&sig=$",
            "access_token=$&api_key=$&password=$&client_secret=$&security-token=$",
            "X%2DAmz%2DSignature=$",
        ];
        for q in cases {
            let url = format!("https://h.example/b/k.bin?{}", q.replace('$', SECRET));
            let r = redact_url(&url);
            clean(&r);
            assert!(r.starts_with("https://h.example/b/k.bin?"), "{r}");
            for pair in q.split('&') {
                let name = pair.split_once('=').unwrap().0;
                assert!(r.contains(name), "{name} dropped from {r}");
            }
        }
        let r = redact_url("https://h/k?versionId=v1&X-Amz-Signature=abc&partNumber=2");
        assert_eq!(
            r,
            "https://h/k?versionId=v1&X-Amz-Signature=<redacted>&partNumber=2"
        );
        // Fragments are treated like queries; valueless parameters are kept.
        assert_eq!(
            redact_url("https://h/k?flag#access_token=abc&x=1"),
            "https://h/k?flag#access_token=<redacted>&x=1"
        );
    }

    #[test]
    fn unsigned_queries_keep_what_names_the_object_and_drop_what_signs_it() {
        for (signed, unsigned) in [
            (
                "OSSAccessKeyId=AK&Expires=1700000000&Signature=abc%2B%2F&security-token=t",
                "",
            ),
            (
                "x-oss-signature-version=OSS4-HMAC-SHA256&x-oss-credential=AK%2F2024&\
                 x-oss-date=20240101T000000Z&x-oss-expires=3600&x-oss-signature=ff&versionId=v1",
                "versionId=v1",
            ),
            (
                "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=c&X-Amz-Date=20240101T000000Z&\
                 X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=s&partNumber=2",
                "partNumber=2",
            ),
            (
                "X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=c&X-Goog-Date=d&\
                 X-Goog-Expires=900&X-Goog-SignedHeaders=host&X-Goog-Signature=s&generation=7",
                "generation=7",
            ),
            (
                "sv=2022-11-02&se=2030-01-01T00%3A00%3A00Z&sr=b&sp=r&sig=x%3D",
                "",
            ),
            // Without `sig`, `sp` and `st` are the object's own parameters.
            ("sp=1&st=2&a=b%20c", "sp=1&st=2&a=b%20c"),
            (
                "response-content-type=text%2Fplain&&x=1",
                "response-content-type=text%2Fplain&x=1",
            ),
        ] {
            assert_eq!(unsigned_query(signed), unsigned, "{signed}");
        }
        assert!(is_signed_query("a=1&X-Amz-Signature=abc"));
        assert!(is_signed_query("sv=1&sig=abc"));
        assert!(!is_signed_query("a=1&sig="));
        assert!(!is_signed_query("versionId=3"));
    }

    #[test]
    fn every_url_in_a_text_is_redacted() {
        let text = format!(
            "Error performing GET http://u:{SECRET}@127.0.0.1:9/b/k?sig={SECRET} in 1ms; \
             redirected to \"https://cdn.example/o?X-Amz-Signature={SECRET}\" (see <s3://b/k>)"
        );
        let r = redact_text(&text);
        clean(&r);
        assert_eq!(
            r,
            "Error performing GET http://u:<redacted>@127.0.0.1:9/b/k?sig=<redacted> in 1ms; \
             redirected to \"https://cdn.example/o?X-Amz-Signature=<redacted>\" (see <s3://b/k>)"
        );
        assert_eq!(redact_text("no url here: a?b=c"), "no url here: a?b=c");
        assert_eq!(redact_text("ends with ://"), "ends with ://");
    }
}
