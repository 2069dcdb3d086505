//! Client authentication: Kong's key-auth, checked by both front ends before a request
//! reaches the route's stack.
//!
//! Keys are kept only as SHA-256 digests and compared in constant time against every
//! configured key, so neither the length of a key nor which key matched shows in timing.
//! The key a client sent is never logged and never forwarded upstream.
//!
//! On `llm_format: bedrock` routes key-auth also holds the consumers' AWS-style key pairs,
//! by access key id, for the front end to verify a SigV4 signature with (`sigv4.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use aigw_config::{AwsCredential, KeyAuthConfig};
use aigw_core::{Error, ErrorKind};
use http::HeaderMap;
use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// The keys one route accepts and where it looks for them.
pub struct KeyAuth {
    /// Lower-case header (and query parameter) names.
    key_names: Vec<String>,
    in_header: bool,
    in_query: bool,
    digests: Vec<[u8; 32]>,
    /// The consumer owning each digest, by index.
    consumers: Vec<Arc<str>>,
    /// Consumers' AWS key pairs by access key id, which is no secret: a map lookup
    /// by it tells a client nothing it did not send.
    aws_pairs: HashMap<Box<str>, AwsPair>,
}

/// One consumer's AWS key pair, without its access key id (the map's key).
pub(crate) struct AwsPair {
    /// The secret access key a signature is checked with.
    pub(crate) secret: Box<str>,
    /// The consumer a verified signature lets in.
    pub(crate) consumer: Arc<str>,
}

impl std::fmt::Debug for KeyAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAuth")
            .field("key_names", &self.key_names)
            .field("keys", &self.digests.len())
            .field("aws_pairs", &self.aws_pairs.len())
            .finish()
    }
}

/// Which of the `known` digests `presented` is, compared in constant time against every
/// one of them, so timing tells neither whether nor which one matched.
pub(crate) fn match_index(known: &[[u8; 32]], presented: &[u8; 32]) -> Option<usize> {
    let mut matched = Choice::from(0);
    let mut index = 0u64;
    for (i, digest) in known.iter().enumerate() {
        let equal = digest.ct_eq(presented);
        index = u64::conditional_select(&index, &(i as u64), equal);
        matched |= equal;
    }
    bool::from(matched).then(|| usize::try_from(index).unwrap_or(usize::MAX))
}

fn digest(key: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(Sha256::digest(key).as_slice());
    out
}

impl KeyAuth {
    /// The runtime form of a route's key-auth config.
    pub fn new(config: &KeyAuthConfig) -> Self {
        KeyAuth {
            key_names: config.key_names.clone(),
            in_header: config.key_in_header,
            in_query: config.key_in_query,
            digests: config
                .credentials
                .iter()
                .map(|c| digest(c.key.as_bytes()))
                .collect(),
            consumers: config
                .credentials
                .iter()
                .map(|c| Arc::from(c.consumer.as_str()))
                .collect(),
            aws_pairs: HashMap::new(),
        }
    }

    /// Also holds `pairs`, for a route whose front end verifies SigV4 (Bedrock's).
    pub fn with_aws_pairs(mut self, pairs: &[AwsCredential]) -> Self {
        self.aws_pairs = pairs
            .iter()
            .map(|p| {
                let pair = AwsPair {
                    secret: p.secret_access_key.as_str().into(),
                    consumer: Arc::from(p.consumer.as_str()),
                };
                (p.access_key_id.as_str().into(), pair)
            })
            .collect();
        self
    }

    /// Whether some consumer holds an AWS key pair here.
    pub(crate) fn has_aws_pairs(&self) -> bool {
        !self.aws_pairs.is_empty()
    }

    /// The key pair whose access key id is `id`.
    pub(crate) fn aws_pair(&self, id: &str) -> Option<&AwsPair> {
        self.aws_pairs.get(id)
    }

    /// Lets the request in if it carries a configured key: in a `key_names` header (HTTP
    /// header or gRPC metadata), as `Authorization: Bearer <key>`, or in a `key_names`
    /// query parameter. Answers the consumer the key belongs to.
    pub fn check(&self, headers: &HeaderMap, query: Option<&str>) -> Result<Arc<str>, Error> {
        let Some(presented) = self.presented(headers, query)? else {
            return Err(Error::new(
                ErrorKind::Unauthorized,
                format!(
                    "no API key found in request; send it as `Authorization: Bearer <key>` or in the {} header",
                    self.key_names.join(" or ")
                ),
            ));
        };
        match match_index(&self.digests, &digest(&presented)) {
            Some(index) => Ok(self.consumers[index].clone()),
            None => Err(Error::new(ErrorKind::Unauthorized, "invalid API key")),
        }
    }

    /// The key the request carries, if any. A key name given twice is refused as Kong
    /// refuses it: which of the two to check would be a guess, and a proxy in front may
    /// have added one of them.
    fn presented(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Option<Vec<u8>>, Error> {
        if self.in_header {
            for name in &self.key_names {
                let mut values = headers.get_all(name.as_str()).iter();
                if let Some(value) = values.next() {
                    if values.next().is_some() {
                        return Err(duplicate_key());
                    }
                    return Ok(Some(value.as_bytes().to_vec()));
                }
            }
            if let Some(value) = headers.get(AUTHORIZATION) {
                let value = value.as_bytes();
                if value.len() > 7 && value[..7].eq_ignore_ascii_case(b"bearer ") {
                    return Ok(Some(value[7..].trim_ascii().to_vec()));
                }
            }
        }
        if self.in_query {
            let pairs = query.unwrap_or_default().split('&');
            let mut found = None;
            for (name, value) in pairs.filter_map(|pair| pair.split_once('=')) {
                if self.key_names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                    if found.is_some() {
                        return Err(duplicate_key());
                    }
                    found = Some(percent_decode(value));
                }
            }
            return Ok(found);
        }
        Ok(None)
    }
}

/// Kong key-auth's answer to a key name given more than once.
fn duplicate_key() -> Error {
    Error::new(ErrorKind::Unauthorized, "Duplicate API key found")
}

/// Query values as browsers and curl encode them (`%XX`, `+` for space).
fn percent_decode(value: &str) -> Vec<u8> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' => {
                let pair = bytes
                    .get(i + 1..i + 3)
                    .and_then(|p| Some((hex(p[0])?, hex(p[1])?)));
                match pair {
                    Some((high, low)) => {
                        out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigw_config::Credential;
    use http::HeaderValue;

    fn auth(names: &[&str]) -> KeyAuth {
        KeyAuth::new(&KeyAuthConfig {
            key_names: names.iter().map(|n| (*n).to_owned()).collect(),
            key_in_header: true,
            key_in_query: true,
            credentials: vec![Credential {
                consumer: "alice".into(),
                key: "s3cret key".into(),
            }],
            aws_credentials: Vec::new(),
        })
    }

    fn headers(name: &'static str, value: &'static str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(name, HeaderValue::from_static(value));
        map
    }

    #[test]
    fn accepts_the_key_in_each_place_and_nothing_else() {
        let auth = auth(&["apikey", "x-api-key"]);
        assert!(auth.check(&headers("apikey", "s3cret key"), None).is_ok());
        assert!(
            auth.check(&headers("x-api-key", "s3cret key"), None)
                .is_ok()
        );
        assert!(
            auth.check(&headers("authorization", "Bearer s3cret key"), None)
                .is_ok()
        );
        assert!(
            auth.check(&HeaderMap::new(), Some("a=1&apikey=s3cret%20key"))
                .is_ok()
        );
        assert!(
            auth.check(&HeaderMap::new(), Some("apikey=s3cret+key"))
                .is_ok()
        );

        let wrong = auth.check(&headers("apikey", "s3cret"), None);
        assert_eq!(wrong.map_err(|e| e.kind()), Err(ErrorKind::Unauthorized));
        let basic = auth.check(&headers("authorization", "Basic czNjcmV0"), None);
        let missing = basic.expect_err("basic auth is not a key");
        assert!(missing.message().contains("no API key"), "{missing}");
        assert!(auth.check(&HeaderMap::new(), Some("apikey=%zz")).is_err());
    }

    #[test]
    fn a_key_given_twice_is_refused_even_when_the_first_is_right() {
        let auth = auth(&["apikey"]);
        let mut twice = headers("apikey", "s3cret key");
        twice.append("apikey", HeaderValue::from_static("wrong"));
        let error = auth.check(&twice, None).expect_err("duplicate header");
        assert_eq!(error.kind(), ErrorKind::Unauthorized);
        assert_eq!(error.message(), "Duplicate API key found");
        let error = auth
            .check(&HeaderMap::new(), Some("apikey=s3cret+key&apikey=x"))
            .expect_err("duplicate query parameter");
        assert_eq!(error.message(), "Duplicate API key found");
    }
}
