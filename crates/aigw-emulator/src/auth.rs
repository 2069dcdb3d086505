//! Reading the SigV4 `Authorization` header. Signatures are not verified: the emulator only
//! checks that a request is signed at all, and records the credential scope it was signed for.

use http::{HeaderMap, StatusCode, header};

use crate::error::AwsError;

/// The region and service of a SigV4 credential scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scope<'a> {
    pub(crate) region: &'a str,
    pub(crate) service: &'a str,
}

/// The outcome of looking at a request's `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth<'a> {
    Missing,
    Malformed,
    Signed(Scope<'a>),
}

impl<'a> Auth<'a> {
    /// Parses `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
    /// SignedHeaders=..., Signature=...`.
    pub(crate) fn from_headers(headers: &'a HeaderMap) -> Self {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Self::Missing;
        };
        value
            .to_str()
            .ok()
            .and_then(parse)
            .map_or(Self::Malformed, Self::Signed)
    }

    pub(crate) fn scope(self) -> Option<Scope<'a>> {
        match self {
            Self::Signed(scope) => Some(scope),
            Self::Missing | Self::Malformed => None,
        }
    }

    /// The 403 AWS answers for an unsigned request, or one signed for another service.
    pub(crate) fn check(self) -> Result<(), AwsError> {
        match self {
            Self::Signed(scope) if scope.service == "bedrock" => Ok(()),
            Self::Signed(_) => Err(AwsError::new(
                StatusCode::FORBIDDEN,
                "InvalidSignatureException",
                "Credential should be scoped to correct service: 'bedrock'.",
            )),
            Self::Missing => Err(AwsError::new(
                StatusCode::FORBIDDEN,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            )),
            Self::Malformed => Err(AwsError::new(
                StatusCode::FORBIDDEN,
                "InvalidSignatureException",
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' \
                 parameters of an AWS4-HMAC-SHA256 signature.",
            )),
        }
    }
}

fn parse(value: &str) -> Option<Scope<'_>> {
    let params = value.strip_prefix("AWS4-HMAC-SHA256")?;
    let (mut credential, mut signed_headers, mut signature) = (None, false, false);
    for param in params.split(',') {
        let param = param.trim();
        if let Some(c) = param.strip_prefix("Credential=") {
            credential = Some(c);
        } else if param.starts_with("SignedHeaders=") {
            signed_headers = true;
        } else if param.starts_with("Signature=") {
            signature = true;
        }
    }
    if !(signed_headers && signature) {
        return None;
    }
    let mut parts = credential?.split('/');
    let (_key, _date, region, service, terminator) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (terminator == "aws4_request" && parts.next().is_none() && !region.is_empty())
        .then_some(Scope { region, service })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sdk_style_header() {
        let v = "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-west-2/bedrock/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, Signature=abc123";
        assert_eq!(
            parse(v),
            Some(Scope {
                region: "us-west-2",
                service: "bedrock"
            })
        );
    }

    #[test]
    fn rejects_partial_headers() {
        assert_eq!(parse("Bearer token"), None);
        assert_eq!(
            parse("AWS4-HMAC-SHA256 Credential=AKID/20250101/us-west-2/bedrock/aws4_request"),
            None
        );
        assert_eq!(
            parse("AWS4-HMAC-SHA256 Credential=AKID/x, SignedHeaders=host, Signature=a"),
            None
        );
    }
}
