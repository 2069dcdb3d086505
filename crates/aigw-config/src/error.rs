//! The one error type of this crate.

use std::fmt;
use std::path::PathBuf;

/// A 1-based position in a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    /// Line, counting from 1.
    pub line: usize,
    /// Column, counting from 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Why a decK file or the gateway settings could not be loaded.
///
/// Display is one line meant for a human at a terminal, led by where the problem is:
/// `config/x.yaml:17:22: services[0].routes[0].plugins[0].config.balancer.algorithm:
/// unknown value "round-robbin", expected one of round-robin, lowest-latency, ...`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("{}: cannot read file: {io_error}", path.display())]
    Read {
        /// The file as it was named.
        path: PathBuf,
        /// What the OS said.
        // Shown in the message rather than chained, so it is printed exactly once.
        io_error: std::io::Error,
    },

    /// The text is not YAML.
    #[error("{file}:{location}: invalid YAML: {message}")]
    Syntax {
        /// The file (or source name) being read.
        file: String,
        /// Where the YAML parser gave up.
        location: Location,
        /// The parser's complaint.
        message: String,
    },

    /// The YAML is well formed but a value in it is wrong: a type, an unknown value, a
    /// number out of range, a missing field, or a rule across fields.
    #[error("{}", display_invalid(file, location.as_ref(), path, message))]
    Invalid {
        /// The file (or source name) being read.
        file: String,
        /// Where the offending value is, or the mapping that should have held a missing one.
        location: Option<Location>,
        /// The field's path in Kong's notation, e.g. `services[0].routes[0].paths`; empty
        /// for the document itself.
        path: String,
        /// What is wrong with it.
        message: String,
    },

    /// The file is valid but gives the gateway nothing to serve.
    #[error(
        "{file}: no route has an enabled ai-proxy-advanced plugin (on the route, its service, or globally); nothing to serve"
    )]
    NoAiRoutes {
        /// The file (or source name) being read.
        file: String,
    },

    /// A gateway setting is wrong; names the key and where its value came from.
    #[error("{}", display_settings(key.as_deref(), origin, message))]
    Settings {
        /// The setting, e.g. `listen`, when the problem is with one key.
        key: Option<String>,
        /// Where the value came from: a file, an environment variable, the command line.
        origin: String,
        /// What is wrong with it.
        message: String,
    },
}

fn display_invalid(file: &str, location: Option<&Location>, path: &str, message: &str) -> String {
    let mut out = String::from(file);
    if let Some(location) = location {
        out.push_str(&format!(":{location}"));
    }
    if !path.is_empty() {
        out.push_str(": ");
        out.push_str(path);
    }
    out.push_str(": ");
    out.push_str(message);
    out
}

fn display_settings(key: Option<&str>, origin: &str, message: &str) -> String {
    match key {
        Some(key) => format!("settings: {key} (from {origin}): {message}"),
        None => format!("settings ({origin}): {message}"),
    }
}
