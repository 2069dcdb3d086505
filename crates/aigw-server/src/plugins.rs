//! The Kong plugins a route enforces in admission besides key-auth, in Kong's order
//! (its plugin priorities): jwt and basic-auth, ip-restriction, request-size-limiting,
//! acl, then request-termination. So an unauthenticated caller gets 401 before a refused
//! address or consumer gets 403, and a terminated route still asks for credentials first,
//! as in Kong.
//!
//! Everything here reads only the request's head (headers or gRPC metadata, query, the
//! TCP peer), so a refusal costs no body read.

use std::collections::HashMap;
use std::sync::Arc;

use aigw_config::{
    AclConfig, BasicAuthConfig, BasicCredential, ConsumerConfig, IpRestrictionConfig,
    RequestSizeLimitConfig, RequestTerminationConfig, RouteConfig,
};
use aigw_core::{Error, ErrorKind, ErrorReply};
use http::HeaderMap;
use http::header::{AUTHORIZATION, CONTENT_LENGTH};

use crate::admission::Caller;
use crate::jwt::JwtAuth;

/// The plugins one route enforces besides key-auth.
#[derive(Debug, Default)]
pub struct RoutePlugins {
    jwt: Option<JwtAuth>,
    basic_auth: Option<BasicAuth>,
    ip_restriction: Option<IpRestrictionConfig>,
    size_limit: Option<RequestSizeLimitConfig>,
    termination: Option<RequestTerminationConfig>,
    acl: Option<AclConfig>,
    consumers: Consumers,
}

/// Every consumer of the file by the name authentication reports, shared by all routes.
pub type Consumers = Arc<HashMap<String, Arc<ConsumerConfig>>>;

/// The table of `consumers`, by name.
pub fn consumer_table(consumers: &[ConsumerConfig]) -> Consumers {
    Arc::new(
        consumers
            .iter()
            .map(|c| (c.name.clone(), Arc::new(c.clone())))
            .collect(),
    )
}

/// Kong acl's refusal of a consumer its groups do not allow.
const ACL_REFUSAL: &str = "You cannot consume this service";

impl RoutePlugins {
    /// The runtime form of a route's plugins; fails on a jwt secret that is not a key.
    pub fn new(route: &RouteConfig, consumers: &Consumers) -> Result<Self, Error> {
        Ok(RoutePlugins {
            jwt: route.jwt.as_ref().map(JwtAuth::new).transpose()?,
            basic_auth: route.basic_auth.as_ref().map(BasicAuth::new),
            ip_restriction: route.ip_restriction.clone(),
            size_limit: route.request_size_limiting,
            termination: route.request_termination.clone(),
            acl: route.acl.clone(),
            consumers: consumers.clone(),
        })
    }

    /// The most body bytes request-size-limiting lets through, when it applies.
    pub fn body_limit(&self) -> Option<usize> {
        self.size_limit
            .map(|s| usize::try_from(s.max_bytes).unwrap_or(usize::MAX))
    }

    /// Lets a request in, or answers for the route as its plugins say. `key_consumer` is
    /// whom key-auth let in; the answer is the consumer the request runs as, if any: the
    /// last auth plugin to run in Kong's order (jwt, key-auth, basic-auth) names it.
    pub(crate) fn admit(
        &self,
        head: Caller<'_>,
        key_consumer: Option<Arc<str>>,
    ) -> Result<Option<Arc<ConsumerConfig>>, Error> {
        let mut named = None;
        if let Some(jwt) = &self.jwt {
            named = Some(jwt.check(head.headers, head.query)?);
        }
        named = key_consumer.or(named);
        if let Some(auth) = &self.basic_auth {
            named = Some(auth.check(head.headers)?);
        }
        let consumer = named.and_then(|name| self.consumers.get(&*name).cloned());
        if let Some(ip) = &self.ip_restriction {
            let allowed = head.peer.is_some_and(|peer| ip.allows(peer));
            if !allowed {
                return Err(
                    Error::new(ErrorKind::Forbidden, ip.message.clone()).with_reply(ErrorReply {
                        status: Some(ip.status),
                        ..ErrorReply::default()
                    }),
                );
            }
        }
        if let Some(limit) = &self.size_limit {
            check_content_length(limit, head.headers)?;
        }
        if let Some(acl) = &self.acl {
            check_acl(acl, consumer.as_deref())?;
        }
        if let Some(stop) = &self.termination {
            if triggered(stop, head) {
                return Err(
                    Error::new(ErrorKind::Terminated, stop.message.clone()).with_reply(
                        ErrorReply {
                            status: Some(stop.status),
                            body: stop.body.clone(),
                            ..ErrorReply::default()
                        },
                    ),
                );
            }
        }
        Ok(consumer)
    }
}

/// Kong's acl: a route needs an authenticated consumer (401 without one) whose groups
/// it allows (403 otherwise).
fn check_acl(acl: &AclConfig, consumer: Option<&ConsumerConfig>) -> Result<(), Error> {
    let Some(consumer) = consumer else {
        return Err(Error::new(
            ErrorKind::Unauthorized,
            "Unauthorized: this route's acl needs an authenticated consumer",
        ));
    };
    if acl.allows(consumer.acl_groups(acl.include_consumer_groups)) {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::Forbidden, ACL_REFUSAL))
    }
}

/// Kong's refusal of a body over request-size-limiting's limit.
pub(crate) fn size_limit_exceeded() -> Error {
    Error::new(ErrorKind::PayloadTooLarge, "Request size limit exceeded")
}

/// request-size-limiting before the body is read: a declared length over the limit is
/// refused at once, and with `require_content_length` a missing one is (411).
fn check_content_length(limit: &RequestSizeLimitConfig, headers: &HeaderMap) -> Result<(), Error> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .map(|v| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()));
    match declared {
        Some(Some(length)) if length > limit.max_bytes => Err(size_limit_exceeded()),
        Some(None) => Err(Error::invalid_request("invalid Content-Length header")),
        None if limit.require_content_length => Err(Error::invalid_request(
            "A valid Content-Length header is required",
        )
        .with_reply(ErrorReply {
            status: Some(411),
            ..ErrorReply::default()
        })),
        _ => Ok(()),
    }
}

/// Whether request-termination applies: always, or with `trigger` only to requests
/// carrying that header or query parameter.
fn triggered(stop: &RequestTerminationConfig, head: Caller<'_>) -> bool {
    let Some(trigger) = &stop.trigger else {
        return true;
    };
    head.headers.contains_key(trigger.as_str())
        || head.query.unwrap_or_default().split('&').any(|pair| {
            pair.split('=')
                .next()
                .is_some_and(|n| n.eq_ignore_ascii_case(trigger))
        })
}

/// Kong's basic-auth over one route's consumers' credentials, kept as digests and
/// compared in constant time against every one, so timing tells neither which username
/// exists nor how much of a password was right.
struct BasicAuth {
    digests: Vec<[u8; 32]>,
    /// The consumer owning each digest, by index.
    consumers: Vec<Arc<str>>,
    challenge: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("credentials", &self.digests.len())
            .finish()
    }
}

impl BasicAuth {
    fn new(config: &BasicAuthConfig) -> Self {
        BasicAuth {
            digests: config.credentials.iter().map(|c| c.digest).collect(),
            consumers: config
                .credentials
                .iter()
                .map(|c| Arc::from(c.consumer.as_str()))
                .collect(),
            challenge: format!("Basic realm=\"{}\"", config.realm),
        }
    }

    fn refuse(&self, message: &str) -> Error {
        Error::new(ErrorKind::Unauthorized, message).with_reply(ErrorReply {
            challenge: Some(self.challenge.clone()),
            ..ErrorReply::default()
        })
    }

    fn check(&self, headers: &HeaderMap) -> Result<Arc<str>, Error> {
        let encoded = headers.get(AUTHORIZATION).and_then(|value| {
            let value = value.as_bytes();
            (value.len() > 6 && value[..6].eq_ignore_ascii_case(b"basic "))
                .then(|| value[6..].trim_ascii())
        });
        let Some(encoded) = encoded else {
            return Err(self.refuse(
                "no basic credentials found in request; send `Authorization: Basic <base64 of username:password>`",
            ));
        };
        let Some(decoded) = base64_decode(encoded) else {
            return Err(self.refuse("invalid authentication credentials"));
        };
        let Some(colon) = decoded.iter().position(|b| *b == b':') else {
            return Err(self.refuse("invalid authentication credentials"));
        };
        let presented = BasicCredential::digest(&decoded[..colon], &decoded[colon + 1..]);
        match crate::auth::match_index(&self.digests, &presented) {
            Some(index) => Ok(self.consumers[index].clone()),
            None => Err(self.refuse("invalid authentication credentials")),
        }
    }
}

/// Standard base64 with padding (RFC 4648 §4), as `Authorization: Basic` carries it.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }
    if text.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let quads = text.chunks(4);
    let last = text.len() / 4;
    for (index, quad) in quads.enumerate() {
        let padding = quad.iter().rev().take_while(|c| **c == b'=').count();
        if padding > 2 || (padding > 0 && index + 1 != last) {
            return None;
        }
        let mut bits = 0u32;
        for c in &quad[..4 - padding] {
            bits = bits << 6 | value(*c)?;
        }
        bits <<= 6 * padding;
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - padding]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn base64_reads_what_clients_send() {
        assert_eq!(
            base64_decode(b"YWxpY2U6b3Blbg=="),
            Some(b"alice:open".to_vec())
        );
        assert_eq!(base64_decode(b"YTpi"), Some(b"a:b".to_vec()));
        assert_eq!(base64_decode(b"YTpiYw=="), Some(b"a:bc".to_vec()));
        assert_eq!(base64_decode(b"YTpiYzE="), Some(b"a:bc1".to_vec()));
        assert_eq!(base64_decode(b""), Some(Vec::new()));
        for bad in [&b"YTpi="[..], b"Y===", b"YT=i", b"YTp!", b"YQ==YTpi"] {
            assert_eq!(base64_decode(bad), None, "{bad:?}");
        }
    }

    fn basic() -> BasicAuth {
        BasicAuth::new(&BasicAuthConfig {
            realm: "aigw".into(),
            credentials: vec![BasicCredential {
                consumer: "alice".into(),
                digest: BasicCredential::digest(b"alice", b"open"),
            }],
        })
    }

    fn authorization(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn basic_auth_takes_only_the_right_pair() {
        let auth = basic();
        assert!(auth.check(&authorization("Basic YWxpY2U6b3Blbg==")).is_ok());
        assert!(
            auth.check(&authorization("basic  YWxpY2U6b3Blbg=="))
                .is_ok()
        );
        for wrong in [
            "Basic YWxpY2U6b3Blbg",   // alice:open, unpadded
            "Basic YWxpY2U6b3Blbmx5", // alice:openly
            "Basic Ym9iOm9wZW4=",     // bob:open
            "Basic YWxpY2U=",         // alice, no colon
            "Bearer YWxpY2U6b3Blbg==",
        ] {
            let error = auth.check(&authorization(wrong)).expect_err(wrong);
            assert_eq!(error.kind(), ErrorKind::Unauthorized);
            let challenge = error.reply().and_then(|r| r.challenge.as_deref());
            assert_eq!(challenge, Some("Basic realm=\"aigw\""));
        }
        assert!(auth.check(&HeaderMap::new()).is_err());
    }

    #[test]
    fn content_length_over_the_limit_is_refused_before_the_body() {
        let limit = RequestSizeLimitConfig {
            max_bytes: 10,
            require_content_length: true,
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("11"));
        let error = check_content_length(&limit, &headers).expect_err("too long");
        assert_eq!(error.kind(), ErrorKind::PayloadTooLarge);
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("10"));
        assert!(check_content_length(&limit, &headers).is_ok());
        let missing = check_content_length(&limit, &HeaderMap::new()).expect_err("required");
        assert_eq!(missing.reply().and_then(|r| r.status), Some(411));
    }
}
