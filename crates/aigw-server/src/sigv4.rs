//! Verifying a client's AWS Signature Version 4, for `llm_format: bedrock` routes whose
//! consumers hold AWS-style key pairs (`consumers[].aigw_aws_credentials`).
//!
//! The signature is recomputed with the `aws-sigv4` crate, the signer the AWS SDK for Rust
//! itself uses, over the request as it arrived: the method, the raw path (double-encoded
//! as Bedrock expects, so a model id's `%3A` is signed as `%253A`), the query, exactly the
//! headers the client listed in `SignedHeaders`, and the SHA-256 of the body read. The
//! result is compared in constant time. Refusals are 403 `InvalidSignatureException`, as
//! AWS answers them; they say what failed, never the expected signature or the secret.
//!
//! The client's signature only lets it in: it is never forwarded, since the Bedrock driver
//! signs its own calls with the gateway's credentials.

use std::time::{Duration, SystemTime};

use aigw_core::{Error, ErrorKind, ErrorReply};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_types::date_time::{DateTime, Format};
use http::HeaderMap;
use http::header::{AUTHORIZATION, HOST};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The only algorithm verified; SigV4a and presigned URLs are not accepted.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The service a signature must be scoped to.
const SERVICE: &str = "bedrock";

/// How far a signature's `x-amz-date` may be from the gateway's clock, as at AWS.
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";

/// Bedrock's exception for every signature refusal, which the SDKs raise by name.
const INVALID_SIGNATURE: &str = "InvalidSignatureException";

/// AWS's words for a signature that does not match.
const MISMATCH: &str = "The request signature we calculated does not match the signature you \
     provided. Check your AWS Secret Access Key and signing method.";

/// The `Authorization` header's value when it claims a SigV4 signature.
pub(crate) fn claimed(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix(ALGORITHM)
        .is_some_and(|rest| rest.starts_with(' '))
        .then_some(value)
}

/// The parts of `AWS4-HMAC-SHA256 Credential=<id>/<date>/<region>/<service>/aws4_request,
/// SignedHeaders=<a;b;c>, Signature=<hex>`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Signature<'a> {
    /// The access key id: which consumer's pair to verify with.
    pub(crate) access_key_id: &'a str,
    /// The scope's date, `YYYYMMDD`.
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

impl<'a> Signature<'a> {
    /// Reads a header value [`claimed`] returned.
    pub(crate) fn parse(value: &'a str) -> Result<Self, Error> {
        let malformed = || {
            refusal(
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' \
                 parameters of an AWS4-HMAC-SHA256 signature",
            )
        };
        let params = value.strip_prefix(ALGORITHM).ok_or_else(malformed)?;
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for param in params.split(',') {
            let (name, value) = param.trim().split_once('=').ok_or_else(malformed)?;
            let slot = match name {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed_headers,
                "Signature" => &mut signature,
                _ => return Err(malformed()),
            };
            if slot.replace(value).is_some() {
                return Err(malformed());
            }
        }
        let (Some(credential), Some(signed_headers), Some(signature)) =
            (credential, signed_headers, signature)
        else {
            return Err(malformed());
        };
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
            return Err(refusal(format!(
                "Credential must be <access key id>/<YYYYMMDD>/<region>/<service>/aws4_request, \
                 not {credential:?}"
            )));
        };
        if access_key_id.is_empty() || region.is_empty() || signature.is_empty() {
            return Err(malformed());
        }
        Ok(Signature {
            access_key_id,
            date,
            region,
            service,
            signed_headers: signed_headers.split(';').collect(),
            signature,
        })
    }
}

/// A request as it arrived, for [`verify`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signed<'a> {
    pub(crate) method: &'a str,
    /// The URI as received: the path still percent-encoded, and the query.
    pub(crate) uri: &'a http::Uri,
    pub(crate) headers: &'a HeaderMap,
    /// The body read under the route's limit.
    pub(crate) body: &'a [u8],
}

/// Checks that `signature` is the request's, made with `secret` at most 15 minutes from
/// `now`; the error says which check failed.
pub(crate) fn verify(
    signature: &Signature<'_>,
    secret: &str,
    request: Signed<'_>,
    now: SystemTime,
) -> Result<(), Error> {
    if signature.service != SERVICE {
        return Err(refusal(format!(
            "Credential should be scoped to correct service: '{SERVICE}', not '{}'",
            signature.service
        )));
    }
    let date_header = single(request.headers, X_AMZ_DATE)?.ok_or_else(|| {
        refusal("Authorization header requires the existence of an 'X-Amz-Date' header")
    })?;
    let signed_at = parse_amz_date(date_header)?;
    if !date_header.starts_with(signature.date) || signature.date.len() != 8 {
        return Err(refusal(format!(
            "Date in Credential scope does not match YYYYMMDD from X-Amz-Date: '{}' != '{}'",
            signature.date,
            &date_header[..8]
        )));
    }
    check_skew(date_header, signed_at, now)?;
    for required in ["host", X_AMZ_DATE] {
        if !signature.signed_headers.contains(&required) {
            return Err(refusal(format!(
                "'{required}' must be a signed header (SignedHeaders={})",
                signature.signed_headers.join(";")
            )));
        }
    }
    let body_hash = hex(&Sha256::digest(request.body));
    if let Some(sent) = single(request.headers, X_AMZ_CONTENT_SHA256)? {
        // A hash the body does not have would let a signature over it carry any body.
        if sent != body_hash {
            return Err(refusal(
                "The provided 'x-amz-content-sha256' header does not match what was computed",
            ));
        }
    }
    let authority = request.uri.authority().map(http::uri::Authority::as_str);
    let mut headers = Vec::with_capacity(signature.signed_headers.len());
    for &name in &signature.signed_headers {
        let valid = !name.is_empty()
            && name != AUTHORIZATION.as_str()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(refusal(format!(
                "SignedHeaders lists {name:?}, which cannot be a signed header"
            )));
        }
        let mut values = request.headers.get_all(name).iter().peekable();
        // HTTP/2 carries the host as the URI's authority, not as a header.
        if name == HOST.as_str() && values.peek().is_none() {
            if let Some(host) = authority {
                headers.push((name, host));
                continue;
            }
        }
        if values.peek().is_none() {
            return Err(refusal(format!(
                "the signed header '{name}' is missing from the request"
            )));
        }
        for value in values {
            let value = value
                .to_str()
                .map_err(|_| refusal(format!("the signed header '{name}' is not visible ASCII")))?;
            headers.push((name, value));
        }
    }
    let path_and_query = request
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let signable = SignableRequest::new(
        request.method,
        path_and_query,
        headers.into_iter(),
        SignableBody::Precomputed(body_hash),
    )
    .map_err(|e| refusal(format!("the request cannot be put in canonical form: {e}")))?;
    let mut settings = SigningSettings::default();
    // Exactly the headers the client signed: aws-sigv4 would otherwise leave out some
    // (user-agent, …) that a client may have signed.
    settings.excluded_headers = None;
    let identity = Credentials::new(signature.access_key_id, secret, None, None, "aigw").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(signature.region)
        .name(signature.service)
        .time(signed_at)
        .settings(settings)
        .build()
        .map_err(|e| Error::new(ErrorKind::Internal, format!("SigV4 parameters: {e}")))?
        .into();
    let expected = sign(signable, &params)
        .map_err(|e| refusal(format!("the request cannot be put in canonical form: {e}")))?;
    let equal = expected
        .signature()
        .as_bytes()
        .ct_eq(signature.signature.as_bytes());
    if bool::from(equal) {
        Ok(())
    } else {
        Err(refusal(MISMATCH))
    }
}

/// The one value of header `name`, if sent; twice is refused, as which one was signed
/// would be a guess.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, Error> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(refusal(format!(
            "the '{name}' header is sent more than once"
        )));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| refusal(format!("the '{name}' header is not visible ASCII")))
}

/// `YYYYMMDDTHHMMSSZ`, the only form of `x-amz-date` the SDKs send.
fn parse_amz_date(value: &str) -> Result<SystemTime, Error> {
    let bad = || {
        refusal(format!(
            "X-Amz-Date must be YYYYMMDD'T'HHMMSS'Z', not {value:?}"
        ))
    };
    let b = value.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' || !digits(0..8) || !digits(9..15) {
        return Err(bad());
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &value[0..4],
        &value[4..6],
        &value[6..8],
        &value[9..11],
        &value[11..13],
        &value[13..15]
    );
    let parsed = DateTime::from_str(&rfc3339, Format::DateTime).map_err(|_| bad())?;
    SystemTime::try_from(parsed).map_err(|_| bad())
}

/// AWS's refusal of a signature made more than [`MAX_SKEW`] from `now`, either way.
fn check_skew(date_header: &str, signed_at: SystemTime, now: SystemTime) -> Result<(), Error> {
    let minutes = MAX_SKEW.as_secs() / 60;
    let late = now.duration_since(signed_at).is_ok_and(|d| d > MAX_SKEW);
    let early = signed_at.duration_since(now).is_ok_and(|d| d > MAX_SKEW);
    if late {
        return Err(refusal(format!(
            "Signature expired: {date_header} is now earlier than {} ({} - {minutes} min.)",
            amz_date(now - MAX_SKEW),
            amz_date(now)
        )));
    }
    if early {
        return Err(refusal(format!(
            "Signature not yet current: {date_header} is still later than {} ({} + {minutes} min.)",
            amz_date(now + MAX_SKEW),
            amz_date(now)
        )));
    }
    Ok(())
}

/// `time` as `YYYYMMDDTHHMMSSZ`.
fn amz_date(time: SystemTime) -> String {
    let seconds = DateTime::from(time).secs();
    DateTime::from_secs(seconds)
        .fmt(Format::DateTime)
        .map(|s| s.replace(['-', ':'], ""))
        .unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// A 403 `InvalidSignatureException` saying `message`.
fn refusal(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Forbidden, message).with_reply(ErrorReply {
        headers: vec![(
            crate::frontend::ERROR_TYPE_HEADER.to_owned(),
            INVALID_SIGNATURE.to_owned(),
        )],
        ..ErrorReply::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sigv4::http_request::SigningParams;

    const SECRET: &str = "alice-secret-key";
    const BODY: &[u8] = br#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#;
    /// A Bedrock model id with `:`, which the SDKs send as `%3A`.
    const PATH: &str = "/bedrock/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse";

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    /// 2026-12-03T06:50:00Z.
    const SIGNED_AT: u64 = 1_796_280_600;

    /// A request signed by aws-sigv4 as the AWS SDK for Rust signs one: its headers, with
    /// the signature's in place.
    fn signed_request(
        secret: &str,
        service: &str,
        extra: &[(&str, &str)],
    ) -> (http::Uri, HeaderMap) {
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:8000".parse().expect("host"));
        headers.insert(
            "content-type",
            "application/json".parse().expect("content type"),
        );
        for (name, value) in extra {
            let name = http::HeaderName::from_bytes(name.as_bytes()).expect("name");
            headers.insert(name, value.parse().expect("value"));
        }
        let identity = Credentials::new("AKIDALICE", secret, None, None, "test").into();
        let params: SigningParams<'_> = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name(service)
            .time(at(SIGNED_AT))
            .settings(SigningSettings::default())
            .build()
            .expect("params")
            .into();
        let signable = SignableRequest::new(
            "POST",
            PATH,
            headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.to_str().expect("ascii"))),
            SignableBody::Bytes(BODY),
        )
        .expect("signable");
        let (instructions, _) = sign(signable, &params).expect("signed").into_parts();
        let mut request = http::Request::new(());
        *request.headers_mut() = headers;
        instructions.apply_to_request_http1x(&mut request);
        (PATH.parse().expect("uri"), request.headers().clone())
    }

    fn check(uri: &http::Uri, headers: &HeaderMap, body: &[u8], now: u64) -> Result<(), String> {
        let value = claimed(headers).ok_or("not SigV4")?;
        let signature = Signature::parse(value).map_err(|e| e.to_string())?;
        assert_eq!(signature.access_key_id, "AKIDALICE");
        let request = Signed {
            method: "POST",
            uri,
            headers,
            body,
        };
        verify(&signature, SECRET, request, at(now)).map_err(|e| {
            assert_eq!(e.kind(), ErrorKind::Forbidden);
            e.message().to_owned()
        })
    }

    #[test]
    fn a_request_signed_by_aws_sigv4_is_verified_with_a_colon_in_its_model_id() {
        let (uri, headers) = signed_request(SECRET, "bedrock", &[]);
        assert_eq!(check(&uri, &headers, BODY, SIGNED_AT + 60), Ok(()));
        // The host signed but carried by HTTP/2's authority.
        let (_, mut headers) = signed_request(SECRET, "bedrock", &[]);
        headers.remove("host");
        let h2: http::Uri = format!("http://127.0.0.1:8000{PATH}").parse().expect("uri");
        assert_eq!(check(&h2, &headers, BODY, SIGNED_AT), Ok(()));
    }

    #[test]
    fn a_wrong_secret_or_a_tampered_request_is_refused_without_the_expected_signature() {
        let (uri, headers) = signed_request("another-secret", "bedrock", &[]);
        let message = check(&uri, &headers, BODY, SIGNED_AT).expect_err("wrong secret");
        assert_eq!(message, MISMATCH);

        let (uri, headers) = signed_request(SECRET, "bedrock", &[]);
        let tampered = BODY.to_vec().into_iter().rev().collect::<Vec<_>>();
        assert_eq!(
            check(&uri, &headers, &tampered, SIGNED_AT),
            Err(MISMATCH.to_owned())
        );
        let other: http::Uri = PATH.replace("%3A0", "%3A1").parse().expect("uri");
        assert_eq!(
            check(&other, &headers, BODY, SIGNED_AT),
            Err(MISMATCH.to_owned())
        );
        let mut changed = headers.clone();
        changed.insert("content-type", "text/plain".parse().expect("value"));
        assert_eq!(
            check(&uri, &changed, BODY, SIGNED_AT),
            Err(MISMATCH.to_owned())
        );
        // A hash header that is not the body's cannot carry another body.
        let mut hashed = headers.clone();
        hashed.insert(
            X_AMZ_CONTENT_SHA256,
            hex(&Sha256::digest(BODY)).parse().expect("hex"),
        );
        assert_eq!(check(&uri, &hashed, BODY, SIGNED_AT), Ok(()));
        let message = check(&uri, &hashed, &tampered, SIGNED_AT).expect_err("hash mismatch");
        assert!(message.contains("x-amz-content-sha256"), "{message}");
    }

    #[test]
    fn a_signature_made_with_the_hash_header_is_verified() {
        let hash = hex(&Sha256::digest(BODY));
        let (uri, headers) =
            signed_request(SECRET, "bedrock", &[(X_AMZ_CONTENT_SHA256, hash.as_str())]);
        assert_eq!(check(&uri, &headers, BODY, SIGNED_AT), Ok(()));
    }

    #[test]
    fn a_stale_date_a_wrong_service_or_an_unsigned_host_is_refused_by_name() {
        let (uri, headers) = signed_request(SECRET, "bedrock", &[]);
        let message = check(&uri, &headers, BODY, SIGNED_AT + 16 * 60).expect_err("stale");
        assert_eq!(
            message,
            "Signature expired: 20261203T065000Z is now earlier than 20261203T065100Z \
             (20261203T070600Z - 15 min.)"
        );
        let message = check(&uri, &headers, BODY, SIGNED_AT - 16 * 60).expect_err("future");
        assert!(
            message.starts_with("Signature not yet current"),
            "{message}"
        );

        let (uri, headers) = signed_request(SECRET, "s3", &[]);
        let message = check(&uri, &headers, BODY, SIGNED_AT).expect_err("service");
        assert!(
            message.contains("scoped to correct service: 'bedrock'"),
            "{message}"
        );

        let (uri, mut headers) = signed_request(SECRET, "bedrock", &[]);
        let authorization = headers[AUTHORIZATION].to_str().expect("ascii");
        let unsigned_host = authorization.replace("content-type;host;", "content-type;");
        headers.insert(AUTHORIZATION, unsigned_host.parse().expect("value"));
        let message = check(&uri, &headers, BODY, SIGNED_AT).expect_err("host");
        assert!(
            message.starts_with("'host' must be a signed header"),
            "{message}"
        );

        let (uri, mut headers) = signed_request(SECRET, "bedrock", &[]);
        headers.remove("content-type");
        let message = check(&uri, &headers, BODY, SIGNED_AT).expect_err("missing");
        assert_eq!(
            message,
            "the signed header 'content-type' is missing from the request"
        );

        let (uri, mut headers) = signed_request(SECRET, "bedrock", &[]);
        headers.insert(X_AMZ_DATE, "2026-12-03T06:50:00Z".parse().expect("date"));
        let message = check(&uri, &headers, BODY, SIGNED_AT).expect_err("date format");
        assert!(message.starts_with("X-Amz-Date must be"), "{message}");
        headers.insert(X_AMZ_DATE, "20261204T065000Z".parse().expect("date"));
        let message = check(&uri, &headers, BODY, SIGNED_AT + 86_400).expect_err("scope");
        assert!(message.starts_with("Date in Credential scope"), "{message}");
    }

    #[test]
    fn malformed_authorization_headers_are_refused() {
        for value in [
            "AWS4-HMAC-SHA256 Credential=AKID/20261203/us-east-1/bedrock/aws4_request",
            "AWS4-HMAC-SHA256 Credential=AKID/x, SignedHeaders=host, Signature=ab",
            "AWS4-HMAC-SHA256 Credential=/20261203/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=ab",
            "AWS4-HMAC-SHA256 Credential=A/20261203/r/bedrock/aws4_request, Credential=B/20261203/r/bedrock/aws4_request, SignedHeaders=host, Signature=ab",
        ] {
            let error = Signature::parse(value).expect_err(value);
            assert_eq!(error.kind(), ErrorKind::Forbidden);
        }
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, "Bearer k".parse().expect("value"));
        assert_eq!(claimed(&headers), None);
        headers.insert(AUTHORIZATION, "AWS4-HMAC-SHA256X".parse().expect("value"));
        assert_eq!(claimed(&headers), None);
    }
}
