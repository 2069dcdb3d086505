//! A route's matching attributes as Kong's router (flavor `traditional_compatible`) reads
//! them: `paths` (plain prefixes, or regexes after `~`), `methods`, `hosts` (with `*.`
//! and `.*` wildcards and optional ports), `headers` (values, or regexes after `~*`),
//! `protocols`, `snis`, `strip_path`, `path_handling` and `regex_priority`.
//!
//! Regexes are compiled here, once, when the file is loaded, with the `regex` crate, whose
//! matching is linear in the input: a request path cannot make a route's pattern
//! backtrack. A pattern it cannot compile is a load error at the field's line.

use std::fmt;

/// A compiled regular expression that compares by its source, so that configs can be
/// compared.
#[derive(Clone)]
pub struct Pattern(regex::Regex);

impl Pattern {
    /// Compiles `source`; the error is the `regex` crate's own description.
    pub fn new(source: &str) -> Result<Self, String> {
        regex::Regex::new(source)
            .map(Pattern)
            .map_err(|err| err.to_string())
    }

    /// Compiles `source` case-insensitively.
    pub fn new_case_insensitive(source: &str) -> Result<Self, String> {
        regex::RegexBuilder::new(source)
            .case_insensitive(true)
            .build()
            .map(Pattern)
            .map_err(|err| err.to_string())
    }

    /// Whether the pattern matches anywhere in `text` (anchor it to match a start).
    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }

    /// The pattern's source.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.as_str())
    }
}

/// One entry of a route's `paths`.
#[derive(Debug, Clone, PartialEq)]
pub enum PathPattern {
    /// A plain path: matches every request path it is a prefix of (`/chat` takes
    /// `/chat/x` and `/chatty` alike, as in Kong).
    Prefix(String),
    /// `~<regex>`: anchored at the path's start, as Kong anchors it.
    Regex(Pattern),
}

/// One entry of a route's `hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// How the name part compares.
    pub kind: HostKind,
    /// The name, lowercased, without the wildcard's `*` (`*.example.com` keeps
    /// `.example.com`; `example.*` keeps `example.`).
    pub name: String,
    /// The port after `:`, when given: then only requests to that port match.
    pub port: Option<u16>,
}

/// How a [`HostPattern`]'s name compares with the request's host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// `example.com`: the whole name.
    Exact,
    /// `*.example.com`: any name ending in `.example.com`.
    Suffix,
    /// `example.*`: any name starting with `example.`.
    Prefix,
}

/// One key of a route's `headers`: the request must carry the header with one of the
/// values.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderRule {
    /// The header's name, lowercased.
    pub name: String,
    /// Any one of these must match one of the request's values of the header.
    pub values: Vec<HeaderValueMatch>,
}

/// One accepted value of a [`HeaderRule`].
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderValueMatch {
    /// A plain value, lowercased: compared case-insensitively, as Kong does.
    Exact(String),
    /// `~*<regex>`: a case-insensitive regex, unanchored.
    Regex(Pattern),
}

/// `path_handling`: how Kong joins the service's path with the request's. aigw's drivers
/// build the provider's URL themselves, so it changes nothing upstream; it is read so
/// that a file with it loads, and shown by `aigw check`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PathHandling {
    /// `v0` (Kong's default).
    #[default]
    V0,
    /// `v1`.
    V1,
}

/// A route's matching attributes, validated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteMatch {
    /// `paths`; empty matches any path.
    pub paths: Vec<PathPattern>,
    /// `methods`, uppercased; empty matches any method.
    pub methods: Vec<String>,
    /// `hosts`; empty matches any host.
    pub hosts: Vec<HostPattern>,
    /// `headers`; every rule must match.
    pub headers: Vec<HeaderRule>,
    /// `protocols` (default `http`, `https`).
    pub protocols: Vec<String>,
    /// `snis`: only consulted on TLS connections, which aigw does not terminate.
    pub snis: Vec<String>,
    /// `strip_path` (default true).
    pub strip_path: bool,
    /// `path_handling` (default `v0`).
    pub path_handling: PathHandling,
    /// `regex_priority` (default 0): orders regex paths among themselves.
    pub regex_priority: i64,
    /// The route's `id`: Kong breaks ties between routes of equal priority by id (the
    /// greater first); routes without one keep file order.
    pub id: Option<String>,
}

impl RouteMatch {
    /// Parses one `paths` entry: `~` starts a regex, anything else must start with `/`.
    pub fn path(source: &str) -> Result<PathPattern, String> {
        if let Some(regex) = source.strip_prefix('~') {
            // Anchored at the start, as Kong's router anchors a route's regex.
            return Pattern::new(&format!("^(?:{regex})"))
                .map(PathPattern::Regex)
                .map_err(|err| format!("regex path {source:?} does not compile: {err}"));
        }
        if !source.starts_with('/') {
            return Err(format!(
                "path {source:?} must start with \"/\" (or \"~\" for a regex)"
            ));
        }
        Ok(PathPattern::Prefix(source.to_owned()))
    }

    /// Parses one `hosts` entry: `name`, `*.suffix` or `prefix.*`, each with an optional
    /// `:port`.
    pub fn host(source: &str) -> Result<HostPattern, String> {
        let lower = source.to_ascii_lowercase();
        let (name, port) = match lower.rsplit_once(':') {
            Some((name, port)) if !name.contains(':') => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| format!("host {source:?} has an invalid port {port:?}"))?;
                (name.to_owned(), Some(port))
            }
            _ => (lower, None),
        };
        let (kind, name) = if let Some(rest) = name.strip_prefix('*') {
            (HostKind::Suffix, rest.to_owned())
        } else if let Some(rest) = name.strip_suffix('*') {
            (HostKind::Prefix, rest.to_owned())
        } else {
            (HostKind::Exact, name)
        };
        if name.is_empty() || name.contains('*') {
            return Err(format!(
                "host {source:?}: a wildcard must be the whole first or last label, as in \"*.example.com\" or \"example.*\""
            ));
        }
        Ok(HostPattern { kind, name, port })
    }

    /// Parses one value of a `headers` entry: `~*` starts a case-insensitive regex.
    pub fn header_value(source: &str) -> Result<HeaderValueMatch, String> {
        match source.strip_prefix("~*") {
            Some(regex) => Pattern::new_case_insensitive(regex)
                .map(HeaderValueMatch::Regex)
                .map_err(|err| format!("header regex {source:?} does not compile: {err}")),
            None => Ok(HeaderValueMatch::Exact(source.to_lowercase())),
        }
    }
}

impl HostPattern {
    /// Whether a request's host (lowercased, without port) and port match.
    pub fn matches(&self, host: &str, port: Option<u16>) -> bool {
        let name = match self.kind {
            HostKind::Exact => host == self.name,
            HostKind::Suffix => host.ends_with(&self.name),
            HostKind::Prefix => host.starts_with(&self.name),
        };
        name && self.port.is_none_or(|want| port == Some(want))
    }

    /// Whether the name has a wildcard, which lowers the route's priority.
    pub fn is_wildcard(&self) -> bool {
        self.kind != HostKind::Exact
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_with_wildcards_and_ports() {
        let cases: &[(&str, HostKind, &str, Option<u16>)] = &[
            ("Example.COM", HostKind::Exact, "example.com", None),
            ("*.example.com", HostKind::Suffix, ".example.com", None),
            ("example.*", HostKind::Prefix, "example.", None),
            (
                "domain-1.org:321",
                HostKind::Exact,
                "domain-1.org",
                Some(321),
            ),
        ];
        for (source, kind, name, port) in cases {
            let host = RouteMatch::host(source).expect("a valid host");
            assert_eq!(
                (host.kind, host.name.as_str(), host.port),
                (*kind, *name, *port),
                "{source}"
            );
        }
        assert!(RouteMatch::host("a.*.com").is_err());
        assert!(RouteMatch::host("x.org:99999").is_err());
    }

    #[test]
    fn bad_regexes_are_refused_with_the_crates_reason() {
        let err = RouteMatch::path("~/v1/(chat").expect_err("unbalanced");
        assert!(err.contains("does not compile"), "{err}");
        assert!(RouteMatch::header_value("~*[a-").is_err());
        assert!(RouteMatch::path("chat").is_err());
    }
}
