//! What the server hands the driver to build one target.

use std::fmt;
use std::time::Duration;

/// OpenAI's own chat completions endpoint, used when a target names no `upstream_url`.
pub const OPENAI_URL: &str = "https://api.openai.com/v1/chat/completions";

/// Everything needed to build one OpenAI-compatible target; the server fills it from the
/// Kong config.
#[derive(Clone)]
pub struct OpenAiTargetSpec {
    /// The model to ask for, sent as the body's `model`, e.g. `gpt-4o-mini`.
    pub model: String,
    /// `model.options.upstream_url`: the full chat completions URL, as Kong takes it
    /// (`http://host:8000/v1/chat/completions`); `None` means [`OPENAI_URL`].
    pub upstream_url: Option<String>,
    /// `auth.header_*` and `auth.param_*`, applied to every call, in order.
    pub auth: Vec<Auth>,
    /// How long to wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
}

impl OpenAiTargetSpec {
    /// A spec for `model` at OpenAI, without credentials, with a connect timeout of 3 s.
    pub fn new(model: impl Into<String>) -> Self {
        OpenAiTargetSpec {
            model: model.into(),
            upstream_url: None,
            auth: Vec::new(),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

impl fmt::Debug for OpenAiTargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiTargetSpec")
            .field("model", &self.model)
            .field("upstream_url", &self.upstream_url)
            .field("auth", &self.auth)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// A credential sent with every call, as Kong's `targets[].auth` defines it.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// `header_name: header_value`, e.g. `Authorization: Bearer sk-…` or `api-key: …`.
    Header {
        /// The header's name.
        name: String,
        /// The header's value (secret).
        value: String,
    },
    /// `param_name=param_value` in the query string or as a top-level body field.
    Param {
        /// The parameter's name.
        name: String,
        /// The parameter's value (secret).
        value: String,
        /// Where it goes.
        location: ParamLocation,
    },
}

// Specs and targets end up in logs and panics; credential values must never be printed.
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Header { name, .. } => f
                .debug_struct("Header")
                .field("name", name)
                .field("value", &"<redacted>")
                .finish(),
            Auth::Param { name, location, .. } => f
                .debug_struct("Param")
                .field("name", name)
                .field("value", &"<redacted>")
                .field("location", location)
                .finish(),
        }
    }
}

/// Where an [`Auth::Param`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamLocation {
    /// `?name=value` on the URL.
    Query,
    /// `"name": "value"` at the top of the JSON body.
    Body,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_credentials() {
        let spec = OpenAiTargetSpec {
            auth: vec![
                Auth::Header {
                    name: "Authorization".into(),
                    value: "Bearer sk-SECRET".into(),
                },
                Auth::Param {
                    name: "key".into(),
                    value: "ALSO-SECRET".into(),
                    location: ParamLocation::Query,
                },
            ],
            ..OpenAiTargetSpec::new("gpt-4o-mini")
        };
        let shown = format!("{spec:?}");
        assert!(shown.contains("Authorization"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }
}
