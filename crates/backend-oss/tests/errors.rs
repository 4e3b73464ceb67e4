//! OSS error documents and their mapping onto the engine's error kinds.

use backend_oss::error::{ErrorBody, advice, error_kind, source_error};
use base64::Engine as _;
use resume_core::SourceErrorKind;

const NO_SUCH_KEY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error>
  <Code>NoSuchKey</Code>
  <Message>The specified key does not exist.</Message>
  <RequestId>5C3D9175B6FC201293AD****</RequestId>
  <HostId>examplebucket.oss-cn-hangzhou.aliyuncs.com</HostId>
  <Key>example.txt</Key>
  <EC>0026-00000001</EC>
</Error>
"#;

fn body(code: &str, message: &str) -> ErrorBody {
    ErrorBody::parse(
        format!("<Error><Code>{code}</Code><Message>{message}</Message><RequestId>rid-body</RequestId></Error>")
            .as_bytes(),
    )
}

#[test]
fn complete_error_document_yields_every_field() {
    let b = ErrorBody::parse(NO_SUCH_KEY.as_bytes());
    assert_eq!(b.code.as_deref(), Some("NoSuchKey"));
    assert_eq!(
        b.message.as_deref(),
        Some("The specified key does not exist.")
    );
    assert_eq!(b.request_id.as_deref(), Some("5C3D9175B6FC201293AD****"));
    assert_eq!(
        b.host_id.as_deref(),
        Some("examplebucket.oss-cn-hangzhou.aliyuncs.com")
    );
    assert_eq!(b.ec.as_deref(), Some("0026-00000001"));
    assert!(!b.is_empty());
}

#[test]
fn partial_document_yields_the_fields_present() {
    let b = ErrorBody::parse(b"<Error><Code>AccessDenied</Code></Error>");
    assert_eq!(b.code.as_deref(), Some("AccessDenied"));
    assert_eq!(b.message, None);
    assert_eq!(b.request_id, None);

    let b = ErrorBody::parse(
        b"<Error><Code/><Message></Message><RequestId>  </RequestId><EC>1</EC></Error>",
    );
    assert_eq!(b.code, None);
    assert_eq!(b.message, None);
    assert_eq!(b.request_id, None);
    assert_eq!(b.ec.as_deref(), Some("1"));
}

#[test]
fn truncated_document_keeps_complete_fields_and_drops_the_cut_one() {
    let cut = &NO_SUCH_KEY[..NO_SUCH_KEY.find("does not").unwrap()];
    let b = ErrorBody::parse(cut.as_bytes());
    assert_eq!(b.code.as_deref(), Some("NoSuchKey"));
    assert_eq!(b.message, None);
}

#[test]
fn garbage_and_empty_bodies_yield_nothing() {
    for garbage in [
        &b""[..],
        b"   ",
        b"not xml at all",
        b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        b"<Error/>",
        b"<Other><Code>X</Code></Other>",
        b"\xff\xfe\x00garbage<<<>>>",
        b"{\"Code\":\"NoSuchKey\"}",
        b"<Error><Code>X</Cod></Error>",
    ] {
        let b = ErrorBody::parse(garbage);
        assert!(b.is_empty(), "{garbage:?} -> {b:?}");
    }
    assert!(ErrorBody::parse(b"<html><Code>NoSuchKey</Code></html>").is_empty());
    assert!(ErrorBody::parse(b"").is_empty());
}

#[test]
fn entities_cdata_and_namespaces_are_decoded() {
    let b = ErrorBody::parse(
        "<Error xmlns=\"urn:x\"><Code><![CDATA[Bad&Code]]></Code><Message>a &amp; b &lt;c&gt; &#x4e2d;&#25991; &unknown;</Message></Error>"
            .as_bytes(),
    );
    assert_eq!(b.code.as_deref(), Some("Bad&Code"));
    assert_eq!(b.message.as_deref(), Some("a & b <c> 中文 &unknown;"));
}

#[test]
fn nested_and_repeated_elements_do_not_confuse_the_parser() {
    let b = ErrorBody::parse(
        b"<Error><Detail><Code>Inner</Code></Detail><Code>Outer</Code><Code>Second</Code></Error>",
    );
    assert_eq!(b.code.as_deref(), Some("Outer"));
}

#[test]
fn huge_field_values_are_truncated() {
    let long = "é".repeat(5000);
    let b = ErrorBody::parse(format!("<Error><Message>{long}</Message></Error>").as_bytes());
    let m = b.message.unwrap();
    assert!(m.len() <= 2048 && m.len() >= 2046);
    assert!(m.chars().all(|c| c == 'é'));
}

#[test]
fn head_answers_carry_the_document_in_the_x_oss_err_header() {
    let header = base64::engine::general_purpose::STANDARD.encode(NO_SUCH_KEY);
    let b = ErrorBody::from_x_oss_err(&header);
    assert_eq!(b.code.as_deref(), Some("NoSuchKey"));
    assert!(ErrorBody::from_x_oss_err("!!! not base64").is_empty());

    // Body first; header only when the body says nothing.
    assert_eq!(
        ErrorBody::from_response(b"", Some(&header)).code.as_deref(),
        Some("NoSuchKey")
    );
    let other =
        ErrorBody::from_response(b"<Error><Code>AccessDenied</Code></Error>", Some(&header));
    assert_eq!(other.code.as_deref(), Some("AccessDenied"));
    assert!(ErrorBody::from_response(b"", None).is_empty());
}

#[test]
fn status_and_code_map_to_the_engine_taxonomy() {
    use SourceErrorKind::*;
    let cases: &[(u16, Option<&str>, SourceErrorKind)] = &[
        (404, Some("NoSuchKey"), NotFound),
        (404, Some("NoSuchBucket"), NotFound),
        (404, None, NotFound),
        (403, Some("SignatureDoesNotMatch"), Denied),
        (403, Some("InvalidAccessKeyId"), Denied),
        (403, Some("AccessDenied"), Denied),
        (403, Some("InvalidObjectState"), Denied),
        (403, None, Denied),
        (401, None, Denied),
        (412, Some("PreconditionFailed"), Changed),
        (416, Some("InvalidRange"), InvalidRange),
        (408, None, Transient),
        (429, None, Transient),
        (500, Some("InternalError"), Transient),
        (502, None, Transient),
        (503, Some("ServiceUnavailable"), Transient),
        (504, None, Transient),
        (501, Some("NotImplemented"), Other),
        (505, None, Other),
        (400, Some("RequestTimeout"), Transient),
        (400, Some("InvalidArgument"), Other),
        (409, None, Other),
        (304, None, Other),
    ];
    for &(status, code, kind) in cases {
        assert_eq!(error_kind(status, code), kind, "{status} {code:?}");
        assert_eq!(kind.is_retryable(), kind == Transient);
    }
}

#[test]
fn not_found_error_keeps_status_code_request_id_and_ec() {
    let b = ErrorBody::parse(NO_SUCH_KEY.as_bytes());
    let e = source_error(
        "GetObject oss://examplebucket/example.txt",
        404,
        &b,
        Some("rid-header"),
    );
    assert_eq!(e.kind, SourceErrorKind::NotFound);
    assert_eq!(e.status, Some(404));
    assert_eq!(e.code.as_deref(), Some("NoSuchKey"));
    assert_eq!(e.request_id.as_deref(), Some("5C3D9175B6FC201293AD****"));
    assert!(
        e.message
            .starts_with("GetObject oss://examplebucket/example.txt: the object does not exist")
    );
    assert!(e.message.contains("The specified key does not exist."));
    assert!(e.message.contains("EC 0026-00000001"));
    let shown = e.to_string();
    assert!(shown.contains("status 404") && shown.contains("code NoSuchKey"));
    assert!(shown.contains("request id 5C3D9175B6FC201293AD****"));
}

#[test]
fn request_id_falls_back_to_the_header() {
    let e = source_error(
        "HeadObject oss://b/k",
        404,
        &ErrorBody::default(),
        Some(" rid-header "),
    );
    assert_eq!(e.request_id.as_deref(), Some("rid-header"));
    assert_eq!(e.code, None);
    assert_eq!(e.kind, SourceErrorKind::NotFound);
    let e = source_error("HeadObject oss://b/k", 404, &ErrorBody::default(), Some(""));
    assert_eq!(e.request_id, None);
}

#[test]
fn denied_errors_say_what_the_user_can_do() {
    let cases = [
        ("SignatureDoesNotMatch", "secret"),
        ("InvalidAccessKeyId", "OSS_ACCESS_KEY_ID"),
        ("AccessDenied", "oss:GetObject"),
        ("InvalidObjectState", "restore"),
        ("RequestTimeTooSkewed", "clock"),
        ("SecurityTokenExpired", "STS"),
    ];
    for (code, hint) in cases {
        let e = source_error("GetObject oss://b/k", 403, &body(code, "m"), None);
        assert_eq!(e.kind, SourceErrorKind::Denied, "{code}");
        assert_eq!(e.code.as_deref(), Some(code));
        assert_eq!(e.request_id.as_deref(), Some("rid-body"));
        assert!(e.message.contains(hint), "{code}: {}", e.message);
    }
    // An STS token problem reported as InvalidAccessKeyId points at the token.
    let m = advice(
        403,
        Some("InvalidAccessKeyId"),
        Some("The security token you provided has expired."),
    );
    assert!(m.contains("STS"));
}

/// A V4 signature for another region: OSS (and the emulator) answer 400 InvalidArgument
/// naming the region. The settings must change: not retried, not an unknown failure.
#[test]
fn a_request_signed_for_another_region_is_denied_with_a_region_hint() {
    let e = source_error(
        "HeadObject oss://b/k",
        400,
        &body(
            "InvalidArgument",
            "Invalid signing region in the credential: \"us-west-1\"; this endpoint expects \"cn-hangzhou\".",
        ),
        None,
    );
    assert_eq!(e.kind, SourceErrorKind::Misconfigured);
    assert_eq!(e.hint.as_deref(), Some(""), "the message has the advice");
    assert!(e.message.contains("--region"), "{}", e.message);
    assert!(e.message.contains("cn-hangzhou"), "{}", e.message);
    // Other InvalidArgument answers stay what they were.
    let e = source_error(
        "GetObject oss://b/k",
        400,
        &body("InvalidArgument", "bad"),
        None,
    );
    assert_eq!(e.kind, SourceErrorKind::Other);
    assert!(!e.message.contains("--region"), "{}", e.message);
}

#[test]
fn changed_range_and_transient_errors_have_their_own_advice() {
    let e = source_error(
        "GetObject oss://b/k bytes 0-9",
        412,
        &body("PreconditionFailed", "x"),
        None,
    );
    assert_eq!(e.kind, SourceErrorKind::Changed);
    assert!(e.message.contains("changed"));
    let e = source_error(
        "GetObject oss://b/k bytes 100-",
        416,
        &body("InvalidRange", "x"),
        None,
    );
    assert_eq!(e.kind, SourceErrorKind::InvalidRange);
    assert!(e.message.contains("range"));
    let e = source_error("GetObject oss://b/k", 503, &ErrorBody::default(), None);
    assert_eq!(e.kind, SourceErrorKind::Transient);
    assert!(e.message.contains("retried"));
}

#[test]
fn signature_mismatch_details_that_may_hold_the_token_are_not_kept() {
    let xml = "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message><RequestId>r</RequestId><StringToSign>GET\n\n\n123\nx-oss-security-token:TOPSECRETTOKEN\n/b/k</StringToSign><CanonicalRequest>TOPSECRETTOKEN</CanonicalRequest><OSSAccessKeyId>ak</OSSAccessKeyId></Error>";
    let b = ErrorBody::parse(xml.as_bytes());
    let e = source_error("GetObject oss://b/k", 403, &b, None);
    let shown = format!("{e} {e:?} {b:?}");
    assert!(!shown.contains("TOPSECRETTOKEN"), "{shown}");
    assert_eq!(e.code.as_deref(), Some("SignatureDoesNotMatch"));
}
