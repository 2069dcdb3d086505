//! Kong's `jwt` plugin: a request gets in with a token signed with one of the consumers'
//! `jwt_secrets`, found by the token's key claim (`iss` by default), its algorithm the
//! secret's own, and, when `claims_to_verify` says so, its `exp` and `nbf` in range.
//!
//! Signatures are verified by `jsonwebtoken`; the token is never logged or forwarded.

use std::collections::HashMap;
use std::sync::Arc;

use aigw_config::JwtConfig;
use aigw_core::{Error, ErrorKind, ErrorReply};
use http::HeaderMap;
use http::header::COOKIE;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// One route's jwt plugin, its secrets decoded into keys once, at build.
pub(crate) struct JwtAuth {
    uri_param_names: Vec<String>,
    cookie_names: Vec<String>,
    header_names: Vec<String>,
    key_claim_name: String,
    maximum_expiration: u64,
    validation: HashMap<Algorithm, Validation>,
    /// By the secret's `key`: its algorithm, its key, and the consumer owning it.
    keys: HashMap<String, (Algorithm, DecodingKey, Arc<str>)>,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("key_claim_name", &self.key_claim_name)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl JwtAuth {
    /// The runtime form of a route's jwt config; a secret that is not a usable key (a
    /// malformed PEM, bad base64) fails the build, naming the consumer's key.
    pub(crate) fn new(config: &JwtConfig) -> Result<Self, Error> {
        let mut keys = HashMap::new();
        let mut validation = HashMap::new();
        for credential in &config.credentials {
            let bad = |what: &str| {
                Error::new(
                    ErrorKind::Internal,
                    format!(
                        "jwt secret {:?} of consumer {}: {what}",
                        credential.key, credential.consumer
                    ),
                )
            };
            let algorithm: Algorithm = credential
                .algorithm
                .parse()
                .map_err(|_| bad("unsupported algorithm"))?;
            let secret = credential.secret.as_deref().unwrap_or_default();
            let public_key = credential.public_key.as_deref().unwrap_or_default();
            let key = match credential.algorithm.get(..2) {
                Some("HS") if config.secret_is_base64 => DecodingKey::from_base64_secret(secret)
                    .map_err(|_| bad("secret is not base64 (secret_is_base64: true)"))?,
                Some("HS") => DecodingKey::from_secret(secret.as_bytes()),
                Some("RS" | "PS") => DecodingKey::from_rsa_pem(public_key.as_bytes())
                    .map_err(|_| bad("rsa_public_key is not an RSA public key in PEM"))?,
                Some("ES") => DecodingKey::from_ec_pem(public_key.as_bytes())
                    .map_err(|_| bad("rsa_public_key is not an EC public key in PEM"))?,
                _ => DecodingKey::from_ed_pem(public_key.as_bytes())
                    .map_err(|_| bad("rsa_public_key is not an Ed25519 public key in PEM"))?,
            };
            validation
                .entry(algorithm)
                .or_insert_with(|| validation_for(algorithm, config));
            keys.insert(
                credential.key.clone(),
                (algorithm, key, Arc::from(credential.consumer.as_str())),
            );
        }
        Ok(JwtAuth {
            uri_param_names: config.uri_param_names.clone(),
            cookie_names: config.cookie_names.clone(),
            header_names: config.header_names.clone(),
            key_claim_name: config.key_claim_name.clone(),
            maximum_expiration: config.maximum_expiration,
            validation,
            keys,
        })
    }

    fn refuse(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Unauthorized, message).with_reply(ErrorReply {
            challenge: Some("Bearer realm=\"aigw\"".to_owned()),
            ..ErrorReply::default()
        })
    }

    /// Lets the request in if it carries exactly one valid token; answers the consumer
    /// whose secret signed it.
    pub(crate) fn check(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Arc<str>, Error> {
        let tokens = self.tokens(headers, query);
        let token = match tokens.as_slice() {
            [] => {
                return Err(Self::refuse(
                    "no JWT found in request; send it as `Authorization: Bearer <token>`",
                ));
            }
            [one] => one.as_str(),
            _ => return Err(Self::refuse("multiple tokens provided")),
        };
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Self::refuse("bad token; invalid JSON"))?;
        // Only to find whose secret to check the signature with.
        let unverified = jsonwebtoken::dangerous::insecure_decode::<
            serde_json::Map<String, serde_json::Value>,
        >(token)
        .map_err(|_| Self::refuse("bad token; invalid JSON"))?;
        let claim = &self.key_claim_name;
        let Some(key) = unverified.claims.get(claim).and_then(|v| v.as_str()) else {
            return Err(Self::refuse(format!("no mandatory {claim:?} in claims")));
        };
        let Some((algorithm, decoding_key, consumer)) = self.keys.get(key) else {
            return Err(Self::refuse(format!(
                "no credentials found for given {claim:?}"
            )));
        };
        if header.alg != *algorithm {
            return Err(Self::refuse("invalid algorithm"));
        }
        let validation = self
            .validation
            .get(algorithm)
            .ok_or_else(|| Self::refuse("invalid algorithm"))?;
        let verified = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            decoding_key,
            validation,
        )
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as Jwt;
            Self::refuse(match e.kind() {
                Jwt::ExpiredSignature => "token expired",
                Jwt::ImmatureSignature => "token not valid yet",
                Jwt::MissingRequiredClaim(_) => {
                    "token lacks a claim the route verifies (exp or nbf)"
                }
                Jwt::InvalidClaimFormat(_) => "a verified claim (exp or nbf) is not a number",
                _ => "invalid signature",
            })
        })?;
        if self.maximum_expiration > 0 {
            let exp = verified
                .claims
                .get("exp")
                .and_then(serde_json::Value::as_u64);
            let now = jsonwebtoken::get_current_timestamp();
            if exp.is_none_or(|exp| exp.saturating_sub(now) > self.maximum_expiration) {
                return Err(Self::refuse(
                    "the exp claim exceeds the maximum allowed expiration",
                ));
            }
        }
        Ok(consumer.clone())
    }

    /// Every token the request carries, in Kong's order: query parameters, cookies, then
    /// `Bearer` headers; the same token in two places counts once.
    fn tokens(&self, headers: &HeaderMap, query: Option<&str>) -> Vec<String> {
        let mut tokens: Vec<String> = Vec::new();
        let mut add = |token: &str| {
            let token = token.trim();
            if !token.is_empty() && !tokens.iter().any(|t| t == token) {
                tokens.push(token.to_owned());
            }
        };
        for (name, value) in query
            .unwrap_or_default()
            .split('&')
            .filter_map(|pair| pair.split_once('='))
        {
            if self.uri_param_names.iter().any(|n| n == name) {
                add(value);
            }
        }
        for cookies in headers.get_all(COOKIE) {
            let cookies = cookies.to_str().unwrap_or_default();
            for (name, value) in cookies.split(';').filter_map(|c| c.split_once('=')) {
                if self.cookie_names.iter().any(|n| n == name.trim()) {
                    add(value);
                }
            }
        }
        for name in &self.header_names {
            for value in headers.get_all(name.as_str()) {
                let value = value.as_bytes().trim_ascii();
                if value.len() > 7 && value[..7].eq_ignore_ascii_case(b"bearer ") {
                    add(&String::from_utf8_lossy(&value[7..]));
                }
            }
        }
        tokens
    }
}

/// Kong's checks for one algorithm: the signature always; `exp` and `nbf` only when
/// `claims_to_verify` lists them, then required and without leeway; nothing else.
fn validation_for(algorithm: Algorithm, config: &JwtConfig) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = 0;
    validation.validate_exp = config.verify_exp;
    validation.validate_nbf = config.verify_nbf;
    validation.validate_aud = false;
    let mut required = Vec::new();
    if config.verify_exp {
        required.push("exp");
    }
    if config.verify_nbf {
        required.push("nbf");
    }
    validation.set_required_spec_claims(&required);
    validation
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigw_config::JwtCredential;
    use http::HeaderValue;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const ES_PRIVATE: &str = include_str!("../../../tests/fixtures/jwt/es256-private.pem");
    const ES_PUBLIC: &str = include_str!("../../../tests/fixtures/jwt/es256-public.pem");
    const RS_PRIVATE: &str = include_str!("../../../tests/fixtures/jwt/rs256-private.pem");
    const RS_PUBLIC: &str = include_str!("../../../tests/fixtures/jwt/rs256-public.pem");

    fn credential(key: &str, algorithm: &str) -> JwtCredential {
        JwtCredential {
            consumer: "alice".into(),
            key: key.into(),
            algorithm: algorithm.into(),
            secret: algorithm.starts_with("HS").then(|| "hmac-secret".into()),
            public_key: match algorithm {
                "ES256" => Some(ES_PUBLIC.into()),
                "RS256" => Some(RS_PUBLIC.into()),
                _ => None,
            },
        }
    }

    fn config(verify: bool) -> JwtConfig {
        JwtConfig {
            uri_param_names: vec!["jwt".into()],
            cookie_names: vec!["session".into()],
            header_names: vec!["authorization".into()],
            verify_exp: verify,
            verify_nbf: verify,
            key_claim_name: "iss".into(),
            secret_is_base64: false,
            maximum_expiration: 0,
            credentials: vec![
                credential("hs-key", "HS256"),
                credential("es-key", "ES256"),
                credential("rs-key", "RS256"),
            ],
        }
    }

    fn token(algorithm: Algorithm, claims: serde_json::Value) -> String {
        let key = match algorithm {
            Algorithm::HS256 => EncodingKey::from_secret(b"hmac-secret"),
            Algorithm::ES256 => EncodingKey::from_ec_pem(ES_PRIVATE.as_bytes()).expect("ec key"),
            _ => EncodingKey::from_rsa_pem(RS_PRIVATE.as_bytes()).expect("rsa key"),
        };
        encode(&Header::new(algorithm), &claims, &key).expect("encodes")
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).expect("ascii"),
        );
        headers
    }

    fn message(auth: &JwtAuth, token: &str) -> String {
        auth.check(&bearer(token), None)
            .expect_err("refused")
            .message()
            .to_owned()
    }

    #[test]
    fn each_algorithm_verifies_with_its_consumers_key() {
        let auth = JwtAuth::new(&config(false)).expect("keys decode");
        for (algorithm, key) in [
            (Algorithm::HS256, "hs-key"),
            (Algorithm::ES256, "es-key"),
            (Algorithm::RS256, "rs-key"),
        ] {
            let good = token(algorithm, json!({"iss": key}));
            assert!(auth.check(&bearer(&good), None).is_ok(), "{algorithm:?}");
            // Signed right, but claiming another consumer's key.
            let other = if key == "hs-key" { "es-key" } else { "hs-key" };
            let wrong = token(algorithm, json!({"iss": other}));
            assert!(auth.check(&bearer(&wrong), None).is_err(), "{algorithm:?}");
        }
        let good = token(Algorithm::HS256, json!({"iss": "hs-key"}));
        assert!(
            auth.check(&HeaderMap::new(), Some(&format!("jwt={good}")))
                .is_ok()
        );
        let mut cookie = HeaderMap::new();
        cookie.insert(
            COOKIE,
            HeaderValue::from_str(&format!("a=b; session={good}")).expect("ascii"),
        );
        assert!(auth.check(&cookie, None).is_ok());

        let mut tampered = good.clone();
        tampered.pop();
        tampered.push('A');
        assert_eq!(message(&auth, &tampered), "invalid signature");
        assert_eq!(
            message(&auth, &token(Algorithm::HS256, json!({"sub": "x"}))),
            "no mandatory \"iss\" in claims"
        );
        assert_eq!(
            message(&auth, &token(Algorithm::HS256, json!({"iss": "nobody"}))),
            "no credentials found for given \"iss\""
        );
        let other = token(Algorithm::HS256, json!({"iss": "es-key"}));
        assert_eq!(message(&auth, &other), "invalid algorithm");
        let error = auth.check(&HeaderMap::new(), None).expect_err("no token");
        assert_eq!(error.kind(), ErrorKind::Unauthorized);
        let two = token(Algorithm::HS256, json!({"iss": "hs-key", "n": 2}));
        assert_eq!(
            auth.check(&bearer(&good), Some(&format!("jwt={two}")))
                .expect_err("two tokens")
                .message(),
            "multiple tokens provided"
        );
    }

    #[test]
    fn exp_and_nbf_are_checked_only_when_listed() {
        let now = jsonwebtoken::get_current_timestamp();
        let expired = token(
            Algorithm::HS256,
            json!({"iss": "hs-key", "exp": now - 10, "nbf": now - 20}),
        );
        let early = token(
            Algorithm::HS256,
            json!({"iss": "hs-key", "exp": now + 60, "nbf": now + 60}),
        );
        let lax = JwtAuth::new(&config(false)).expect("keys");
        assert!(lax.check(&bearer(&expired), None).is_ok());
        assert!(lax.check(&bearer(&early), None).is_ok());

        let strict = JwtAuth::new(&config(true)).expect("keys");
        assert_eq!(message(&strict, &expired), "token expired");
        assert_eq!(message(&strict, &early), "token not valid yet");
        let fine = token(
            Algorithm::HS256,
            json!({"iss": "hs-key", "exp": now + 60, "nbf": now - 1}),
        );
        assert!(strict.check(&bearer(&fine), None).is_ok());
        let no_exp = token(Algorithm::HS256, json!({"iss": "hs-key", "nbf": now - 1}));
        assert!(strict.check(&bearer(&no_exp), None).is_err());

        let capped = JwtAuth::new(&JwtConfig {
            maximum_expiration: 30,
            ..config(true)
        })
        .expect("keys");
        assert!(
            capped.check(&bearer(&fine), None).is_err(),
            "exp 60 s out > 30 s"
        );
    }

    #[test]
    fn a_bad_public_key_fails_the_build() {
        let mut config = config(false);
        config.credentials[1].public_key =
            Some("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n".into());
        let error = JwtAuth::new(&config).expect_err("bad PEM");
        assert!(error.message().contains("es-key"), "{error}");
    }
}
