//! Gateway settings: what the decK file does not say (where to listen, how to log).
//!
//! Layered with figment, later layers winning: defaults, then `aigw.toml` in the working
//! directory (or the file named by `AIGW_SETTINGS`), then `AIGW_*` environment
//! variables, then command-line overrides.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

use crate::{ConfigError, LogFormat};

/// The settings file read from the working directory when `AIGW_SETTINGS` is not set.
pub const SETTINGS_FILE: &str = "aigw.toml";

/// The environment variable naming another settings file.
pub const SETTINGS_ENV: &str = "AIGW_SETTINGS";

/// The keys `AIGW_*` environment variables may set.
pub const ENV_KEYS: &[&str] = &[
    "listen",
    "status_listen",
    "config",
    "log_level",
    "log_format",
    "otlp_endpoint",
    "max_concurrent_requests",
    "header_read_timeout_ms",
    "client_body_timeout_ms",
    "max_header_size",
    "drain_timeout_ms",
];

/// How the gateway process runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address for HTTP and gRPC (default `0.0.0.0:8000`, Kong's proxy port).
    pub listen: SocketAddr,
    /// Address for the operator's endpoints (default `127.0.0.1:8100`, Kong's status
    /// port), or `off`.
    pub status_listen: StatusListen,
    /// A tracing filter such as `info` or `aigw=debug` (default `info`).
    pub log_level: String,
    /// Log line format (default text).
    pub log_format: LogFormat,
    /// Where to send OTLP traces; none means tracing stays local.
    pub otlp_endpoint: Option<String>,
    /// The decK file to serve.
    pub config: Option<PathBuf>,
    /// Requests one route works on at once (default 1024); past it, 503 at once.
    pub max_concurrent_requests: usize,
    /// How long a client may take to send a request's headers on HTTP/1 (default 10 000).
    pub header_read_timeout_ms: u64,
    /// How long a client may pause between two reads of a request body, nginx's
    /// `client_body_timeout` (default 60 000); past it, 408 and the connection closes.
    pub client_body_timeout_ms: u64,
    /// The largest request head in bytes (default 65 536, at least 8 192 on HTTP/1);
    /// past it, 431.
    pub max_header_size: usize,
    /// On shutdown, how long in-flight requests and streams may take to finish (default
    /// 30 000).
    pub drain_timeout_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8000)),
            status_listen: StatusListen::At(SocketAddr::from((Ipv4Addr::LOCALHOST, 8100))),
            log_level: "info".to_owned(),
            log_format: LogFormat::Text,
            otlp_endpoint: None,
            config: None,
            max_concurrent_requests: 1024,
            header_read_timeout_ms: 10_000,
            client_body_timeout_ms: 60_000,
            max_header_size: 64 * 1024,
            drain_timeout_ms: 30_000,
        }
    }
}

/// Values from the command line; each one set wins over every other source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SettingsOverrides {
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// `--status-listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_listen: Option<StatusListen>,
    /// `--config`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// `--log-level`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
}

/// Where the status listener listens: an address, or `off` for none. The operator's
/// endpoints name routes, models and token counts, so the default keeps them on loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum StatusListen {
    /// No status listener: `/metrics` and `/status/targets` are not served.
    Off,
    /// Listen here.
    At(SocketAddr),
}

impl std::str::FromStr for StatusListen {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        if value.trim().eq_ignore_ascii_case("off") {
            return Ok(StatusListen::Off);
        }
        value
            .trim()
            .parse()
            .map(StatusListen::At)
            .map_err(|_| format!("{value:?} is neither an address (IP:PORT) nor `off`"))
    }
}

impl TryFrom<String> for StatusListen {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        value.parse()
    }
}

impl std::fmt::Display for StatusListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusListen::Off => f.write_str("off"),
            StatusListen::At(addr) => addr.fmt(f),
        }
    }
}

impl From<StatusListen> for String {
    fn from(value: StatusListen) -> String {
        value.to_string()
    }
}

impl Settings {
    /// Loads the settings from every source; see the module docs for the order.
    pub fn load(overrides: SettingsOverrides) -> Result<Settings, ConfigError> {
        Self::figment(overrides)?.extract().map_err(settings_error)
    }

    /// The layered sources, for callers that want to extract more from them.
    pub fn figment(overrides: SettingsOverrides) -> Result<Figment, ConfigError> {
        let mut figment = Figment::from(Named(
            Serialized::defaults(Settings::default()),
            "the defaults",
        ));
        if let Some(file) = settings_file()? {
            figment = figment.merge(Toml::file_exact(file));
        }
        Ok(figment
            .merge(Env::prefixed("AIGW_").only(ENV_KEYS))
            .merge(Named(Serialized::defaults(overrides), "the command line")))
    }
}

/// `AIGW_SETTINGS` if set (and then the file must exist), else `aigw.toml` if present.
fn settings_file() -> Result<Option<PathBuf>, ConfigError> {
    match std::env::var_os(SETTINGS_ENV) {
        Some(named) => {
            let path = PathBuf::from(named);
            std::fs::metadata(&path).map_err(|io_error| ConfigError::Read {
                path: path.clone(),
                io_error,
            })?;
            Ok(Some(path))
        }
        None => Ok(Path::new(SETTINGS_FILE)
            .is_file()
            .then(|| PathBuf::from(SETTINGS_FILE))),
    }
}

/// Names a provider in error messages ("from the command line").
struct Named<P>(P, &'static str);

impl<P: Provider> Provider for Named<P> {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.1)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.0.data()
    }
}

fn settings_error(err: figment::Error) -> ConfigError {
    let key = (!err.path.is_empty()).then(|| err.path.join("."));
    let origin = match (&err.metadata, &key) {
        (Some(md), Some(key)) if md.name.contains("environment variable") => {
            format!("environment variable AIGW_{}", key.to_ascii_uppercase())
        }
        (Some(md), _) => match &md.source {
            Some(figment::Source::File(path)) => path.display().to_string(),
            _ => md.name.to_string(),
        },
        (None, _) => "settings".to_owned(),
    };
    ConfigError::Settings {
        key,
        origin,
        message: err.kind.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error
mod tests {
    use figment::Jail;

    use super::*;

    fn overrides() -> SettingsOverrides {
        SettingsOverrides::default()
    }

    #[test]
    fn defaults_without_any_source() {
        Jail::expect_with(|_jail| {
            let settings = Settings::load(overrides()).map_err(|e| e.to_string())?;
            assert_eq!(settings, Settings::default());
            assert_eq!(settings.listen.to_string(), "0.0.0.0:8000");
            assert_eq!(settings.log_level, "info");
            assert_eq!(settings.log_format, LogFormat::Text);
            Ok(())
        });
    }

    #[test]
    fn toml_then_env_then_overrides() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "aigw.toml",
                r#"
                    listen = "127.0.0.1:9000"
                    log_level = "debug"
                    log_format = "json"
                    otlp_endpoint = "http://collector:4317"
                    config = "from-toml.yaml"
                "#,
            )?;
            let settings = Settings::load(overrides()).map_err(|e| e.to_string())?;
            assert_eq!(settings.listen.to_string(), "127.0.0.1:9000");
            assert_eq!(settings.log_level, "debug");
            assert_eq!(settings.log_format, LogFormat::Json);
            assert_eq!(
                settings.otlp_endpoint.as_deref(),
                Some("http://collector:4317")
            );
            assert_eq!(settings.config, Some(PathBuf::from("from-toml.yaml")));

            jail.set_env("AIGW_LISTEN", "127.0.0.1:9100");
            jail.set_env("AIGW_LOG_LEVEL", "warn");
            jail.set_env("AIGW_CONFIG", "from-env.yaml");
            jail.set_env("AIGW_OTLP_ENDPOINT", "http://other:4317");
            jail.set_env("AIGW_CLIENT_BODY_TIMEOUT_MS", "5000");
            jail.set_env("AIGW_MAX_HEADER_SIZE", "16384");
            let settings = Settings::load(overrides()).map_err(|e| e.to_string())?;
            assert_eq!(settings.client_body_timeout_ms, 5000);
            assert_eq!(settings.max_header_size, 16384);
            assert_eq!(settings.listen.to_string(), "127.0.0.1:9100");
            assert_eq!(settings.log_level, "warn");
            assert_eq!(settings.log_format, LogFormat::Json, "toml still applies");
            assert_eq!(settings.config, Some(PathBuf::from("from-env.yaml")));
            assert_eq!(settings.otlp_endpoint.as_deref(), Some("http://other:4317"));

            let settings = Settings::load(SettingsOverrides {
                listen: Some(SocketAddr::from(([127, 0, 0, 1], 9200))),
                config: Some(PathBuf::from("from-cli.yaml")),
                log_level: None,
                status_listen: None,
            })
            .map_err(|e| e.to_string())?;
            assert_eq!(settings.listen.to_string(), "127.0.0.1:9200");
            assert_eq!(settings.config, Some(PathBuf::from("from-cli.yaml")));
            assert_eq!(
                settings.log_level, "warn",
                "an unset override leaves env alone"
            );
            Ok(())
        });
    }

    #[test]
    fn status_listen_is_loopback_by_default_and_can_move_or_be_off() {
        Jail::expect_with(|jail| {
            let settings = Settings::load(overrides()).map_err(|e| e.to_string())?;
            assert_eq!(settings.status_listen.to_string(), "127.0.0.1:8100");

            jail.create_file("aigw.toml", "status_listen = \"off\"")?;
            let settings = Settings::load(overrides()).map_err(|e| e.to_string())?;
            assert_eq!(settings.status_listen, StatusListen::Off);

            jail.set_env("AIGW_STATUS_LISTEN", "0.0.0.0:9100");
            let settings = Settings::load(overrides()).map_err(|e| e.to_string())?;
            assert_eq!(settings.status_listen.to_string(), "0.0.0.0:9100");

            let settings = Settings::load(SettingsOverrides {
                status_listen: Some("OFF".parse().map_err(|e: String| e)?),
                ..overrides()
            })
            .map_err(|e| e.to_string())?;
            assert_eq!(settings.status_listen, StatusListen::Off);

            jail.set_env("AIGW_STATUS_LISTEN", "nowhere");
            let text = Settings::load(overrides())
                .expect_err("bad address")
                .to_string();
            assert!(text.contains("status_listen"), "{text}");
            assert!(text.contains("AIGW_STATUS_LISTEN"), "{text}");
            assert!(text.contains("neither an address"), "{text}");
            Ok(())
        });
    }

    #[test]
    fn aigw_settings_names_another_file() {
        Jail::expect_with(|jail| {
            jail.create_file("aigw.toml", "log_level = \"debug\"")?;
            jail.create_file("other.toml", "log_level = \"trace\"")?;
            jail.set_env(SETTINGS_ENV, "other.toml");
            let settings = Settings::load(overrides()).map_err(|e| e.to_string())?;
            assert_eq!(settings.log_level, "trace");

            jail.set_env(SETTINGS_ENV, "missing.toml");
            let err = Settings::load(overrides()).expect_err("missing file");
            assert!(
                err.to_string()
                    .starts_with("missing.toml: cannot read file"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_key_and_source() {
        Jail::expect_with(|jail| {
            jail.set_env("AIGW_LISTEN", "not-an-address");
            let err = Settings::load(overrides()).expect_err("bad listen");
            let text = err.to_string();
            assert!(text.contains("listen"), "{text}");
            assert!(text.contains("environment variable AIGW_LISTEN"), "{text}");

            jail.set_env("AIGW_LISTEN", "127.0.0.1:1");
            jail.create_file("aigw.toml", "log_format = \"xml\"")?;
            let text = Settings::load(overrides())
                .expect_err("bad format")
                .to_string();
            assert!(text.contains("log_format"), "{text}");
            assert!(text.contains("aigw.toml"), "{text}");
            assert!(
                text.contains("unknown value \"xml\", expected one of text, json"),
                "{text}"
            );

            jail.create_file("aigw.toml", "lissten = \"127.0.0.1:1\"")?;
            let text = Settings::load(overrides())
                .expect_err("unknown key")
                .to_string();
            assert!(text.contains("lissten"), "{text}");
            Ok(())
        });
    }
}
