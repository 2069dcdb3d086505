//! Kong's router, flavor `traditional_compatible` (Kong 3's default), for the HTTP front
//! end: which route a request's method, host, path and headers reach.
//!
//! As in Kong, the request path is normalized before matching (percent-encoded unreserved
//! and other non-reserved characters decoded, dot segments resolved, repeated slashes
//! merged), so `/%62edrock-route` and `//bedrock-route` reach exactly the route
//! `/bedrock-route` reaches, key-auth included. Every route path is one candidate, tried in
//! Kong's priority order: more kinds of attribute set first; then exact hosts only; then
//! regex paths (by `regex_priority`); then more headers; then longer plain prefixes; ties
//! by route id, the greater first, as Kong's router breaks them, else by order in the file. The first candidate whose every attribute matches wins.

use aigw_config::{HeaderValueMatch, PathPattern, RouteMatch};
use http::HeaderMap;

/// What the router reads of a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestHead<'a> {
    /// The method, e.g. `POST`.
    pub(crate) method: &'a str,
    /// The `Host` header (or HTTP/2 `:authority`), with its port if any.
    pub(crate) host: Option<&'a str>,
    /// The path as the client sent it, before normalization.
    pub(crate) path: &'a str,
    /// The request's headers.
    pub(crate) headers: &'a HeaderMap,
}

impl<'a> RequestHead<'a> {
    /// The head of an HTTP request.
    pub(crate) fn of(parts: &'a http::request::Parts) -> Self {
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()));
        RequestHead {
            method: parts.method.as_str(),
            host,
            path: parts.uri.path(),
            headers: &parts.headers,
        }
    }
}

/// Kong's priority of one route path, compared field by field, highest first (the order
/// of Kong's 64-bit priority value in `kong/router/transform.lua`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Priority {
    /// How many of paths, methods, hosts, headers, snis are set.
    weight: u8,
    /// Hosts set, none with a wildcard.
    plain_hosts_only: bool,
    /// The path is a regex.
    regex: bool,
    headers: usize,
    /// `regex_priority`, for regex paths only.
    regex_priority: i64,
    /// The plain prefix's length.
    prefix_len: usize,
}

/// One route path (or a route without paths), with its priority.
#[derive(Debug)]
struct Candidate {
    route: usize,
    path: Option<usize>,
    priority: Priority,
}

/// The routes' matching attributes, with every route path in the order Kong tries them.
#[derive(Debug, Default)]
pub(crate) struct Router {
    routes: Vec<RouteMatch>,
    candidates: Vec<Candidate>,
}

impl Router {
    /// A router over routes in file order; a route's index is its position.
    pub(crate) fn new(routes: Vec<RouteMatch>) -> Self {
        let mut candidates = Vec::new();
        for (index, route) in routes.iter().enumerate() {
            let weight = [
                !route.paths.is_empty(),
                !route.methods.is_empty(),
                !route.hosts.is_empty(),
                !route.headers.is_empty(),
                !route.snis.is_empty(),
            ]
            .into_iter()
            .filter(|set| *set)
            .count() as u8;
            let base = Priority {
                weight,
                plain_hosts_only: !route.hosts.is_empty()
                    && !route.hosts.iter().any(|h| h.is_wildcard()),
                regex: false,
                headers: route.headers.len(),
                regex_priority: 0,
                prefix_len: 0,
            };
            if route.paths.is_empty() {
                candidates.push(Candidate {
                    route: index,
                    path: None,
                    priority: base,
                });
            }
            // Kong splits a route into one router entry per path, each with its own
            // priority, so a route's long path does not lift its short one.
            for (p, path) in route.paths.iter().enumerate() {
                let priority = match path {
                    PathPattern::Prefix(prefix) => Priority {
                        prefix_len: prefix.len(),
                        ..base
                    },
                    PathPattern::Regex(_) => Priority {
                        regex: true,
                        regex_priority: route.regex_priority,
                        ..base
                    },
                };
                candidates.push(Candidate {
                    route: index,
                    path: Some(p),
                    priority,
                });
            }
        }
        // Kong's router keeps its entries keyed by (priority, route id) and walks them from
        // the greatest; without ids (Kong would make random ones) file order decides.
        candidates.sort_by(|a, b| {
            let id = |c: &Candidate| routes[c.route].id.clone();
            b.priority.cmp(&a.priority).then_with(|| id(b).cmp(&id(a)))
        });
        Router { routes, candidates }
    }

    /// The index of the route `head` reaches, if any, and which of its paths matched
    /// (none for a route without paths).
    pub(crate) fn find(&self, head: &RequestHead<'_>) -> Option<(usize, Option<usize>)> {
        let path = normalize(head.path);
        let (host, port) = split_host(head.host.unwrap_or(""));
        self.candidates
            .iter()
            .find(|c| {
                let route = &self.routes[c.route];
                let path_ok = match c.path.map(|p| &route.paths[p]) {
                    None => true,
                    Some(PathPattern::Prefix(prefix)) => path.starts_with(prefix.as_str()),
                    Some(PathPattern::Regex(regex)) => regex.is_match(&path),
                };
                path_ok
                    && accepts_http(route)
                    && (route.methods.is_empty() || route.methods.iter().any(|m| m == head.method))
                    && (route.hosts.is_empty()
                        || route.hosts.iter().any(|h| h.matches(&host, port)))
                    && route.headers.iter().all(|rule| {
                        head.headers
                            .get_all(rule.name.as_str())
                            .iter()
                            .any(|value| {
                                let Ok(value) = value.to_str() else {
                                    return false;
                                };
                                let value = value.to_lowercase();
                                rule.values.iter().any(|want| match want {
                                    HeaderValueMatch::Exact(exact) => *exact == value,
                                    HeaderValueMatch::Regex(regex) => regex.is_match(&value),
                                })
                            })
                    })
            })
            .map(|c| (c.route, c.path))
    }
}

/// Whether the HTTP front end may reach `route`: its `protocols` name `http`, or `https`
/// (aigw terminates no TLS, so an `https` route is taken to sit behind a TLS proxy).
/// `snis` only ever constrain TLS connections, as in Kong, so they constrain nothing here.
fn accepts_http(route: &RouteMatch) -> bool {
    route.protocols.iter().any(|p| p == "http" || p == "https")
}

/// A `Host` value's name, lowercased and without brackets, and its port.
fn split_host(host: &str) -> (String, Option<u16>) {
    let lower = host.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix('[') {
        // An IPv6 literal, `[::1]:80`.
        if let Some((name, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (name.to_owned(), port);
        }
    }
    match lower.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => match port.parse() {
            Ok(port) => (name.to_owned(), Some(port)),
            Err(_) => (lower, None),
        },
        _ => (lower, None),
    }
}

/// RFC 3986's reserved characters, which stay percent-encoded: decoding them would change
/// what the path means (`%2F` is not a segment break).
const RESERVED: &[u8] = b"!*'();:@&=+$,/?%#[]";

/// Kong's path normalization (`kong/tools/uri.lua`, with slashes merged, as its router
/// calls it): decode `%XX` unless it encodes a reserved character (which is upper-cased
/// instead), then remove dot segments and merge repeated slashes.
pub(crate) fn normalize(path: &str) -> String {
    if path.is_empty() || path == "/" {
        return path.to_owned();
    }
    let decoded = percent_decode_unreserved(path.as_bytes());
    let mut uri: &[u8] = &decoded;
    let mut out: Vec<&[u8]> = Vec::new();
    while !uri.is_empty() {
        if uri == b"/." {
            uri = b"/";
        } else if uri == b"/.." {
            uri = b"/";
            out.pop();
        } else if uri == b"." || uri == b".." {
            uri = b"";
        } else if uri.starts_with(b"../") {
            uri = &uri[3..];
        } else if uri.starts_with(b"./") || uri.starts_with(b"/./") {
            uri = &uri[2..];
        } else if uri.starts_with(b"/../") {
            uri = &uri[3..];
            out.pop();
        } else if uri.starts_with(b"//") {
            uri = &uri[1..];
        } else {
            let end = uri[1..]
                .iter()
                .position(|b| *b == b'/')
                .map_or(uri.len(), |i| i + 1);
            out.push(&uri[..end]);
            uri = &uri[end..];
        }
    }
    String::from_utf8_lossy(&out.concat()).into_owned()
}

fn percent_decode_unreserved(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'%' && i + 2 < path.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(path[i + 1]), hex(path[i + 2])) {
                let byte = (hi * 16 + lo) as u8;
                if RESERVED.contains(&byte) {
                    out.push(b'%');
                    out.push(path[i + 1].to_ascii_uppercase());
                    out.push(path[i + 2].to_ascii_uppercase());
                } else {
                    out.push(byte);
                }
                i += 3;
                continue;
            }
        }
        out.push(path[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A route from Kong's attribute lists, as a decK file writes them.
    fn route(
        paths: &[&str],
        methods: &[&str],
        hosts: &[&str],
        headers: &[(&str, &[&str])],
    ) -> RouteMatch {
        RouteMatch {
            paths: paths
                .iter()
                .map(|p| RouteMatch::path(p).expect("a valid path"))
                .collect(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            hosts: hosts
                .iter()
                .map(|h| RouteMatch::host(h).expect("a valid host"))
                .collect(),
            headers: headers
                .iter()
                .map(|(name, values)| aigw_config::HeaderRule {
                    name: name.to_string(),
                    values: values
                        .iter()
                        .map(|v| RouteMatch::header_value(v).expect("a valid value"))
                        .collect(),
                })
                .collect(),
            protocols: vec!["http".into(), "https".into()],
            ..RouteMatch::default()
        }
    }

    fn select(
        router: &Router,
        method: &str,
        path: &str,
        host: &str,
        headers: &[(&str, &str)],
    ) -> Option<usize> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                value.parse().expect("a header value"),
            );
        }
        router
            .find(&RequestHead {
                method,
                host: (!host.is_empty()).then_some(host),
                path,
                headers: &map,
            })
            // 1-based, as the Kong spec numbers its use cases.
            .map(|(i, _)| i + 1)
    }

    /// The use cases of `describe("select()")` in Kong's `spec/01-unit/08-router_spec.lua`,
    /// with the spec's route ids (route 8, serviceless, is a plain path route here).
    fn kong_select_use_cases() -> Router {
        let loc: &[&str] = &["my-location-1", "my-location-2"];
        let mut routes = vec![
            route(&[], &[], &["domain-1.org", "domain-2.org"], &[]),
            route(&[], &["TRACE"], &[], &[]),
            route(&["/my-route"], &[], &[], &[]),
            route(&["/route-4"], &[], &["domain-1.org", "domain-2.org"], &[]),
            route(
                &[],
                &["POST", "PUT", "PATCH"],
                &["domain-1.org", "domain-2.org"],
                &[],
            ),
            route(&["/route-6"], &["POST", "PUT", "PATCH"], &[], &[]),
            route(
                &["/my-route-uri"],
                &["POST", "PUT", "PATCH"],
                &["domain-with-uri-1.org", "domain-with-uri-2.org"],
                &[],
            ),
            route(&["/serviceless"], &[], &[], &[]),
            route(&[], &[], &[], &[("location", loc)]),
            route(
                &[],
                &[],
                &[],
                &[("location", &["my-location-1"]), ("version", &["v1", "v2"])],
            ),
            route(&["/headers-uri"], &[], &[], &[("location", loc)]),
            route(
                &["/headers-host-uri-method"],
                &["POST", "PUT", "PATCH"],
                &["domain-with-headers-1.org", "domain-with-headers-2.org"],
                &[("location", loc)],
            ),
            route(&[], &[], &["domain-1.org:321", "domain-2.org"], &[]),
            route(&[], &[], &["domain-3.org:321"], &[]),
            route(
                &[],
                &[],
                &[],
                &[(
                    "user-agent",
                    &["~*windows|linux|os\\s+x\\s*[\\d\\._]+|solaris|bsd"],
                )],
            ),
        ];
        for (i, route) in routes.iter_mut().enumerate() {
            route.id = Some(format!("e8fb37f1-102d-461e-9c51-6608a6bb81{:02}", i + 1));
        }
        Router::new(routes)
    }

    #[test]
    fn kong_select_cases() {
        let router = kong_select_use_cases();
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            &'a str,
            &'a [(&'a str, &'a str)],
            Option<usize>,
        );
        let cases: &[Case<'_>] = &[
            ("it [host]", "GET", "/", "domain-1.org", &[], Some(1)),
            (
                "it [host] ignores default port",
                "GET",
                "/",
                "domain-1.org:80",
                &[],
                Some(1),
            ),
            (
                "it [host] matches specific port",
                "GET",
                "/",
                "domain-1.org:321",
                &[],
                Some(13),
            ),
            (
                "it [host] matches specific port on port-only route",
                "GET",
                "/",
                "domain-3.org:321",
                &[],
                Some(14),
            ),
            (
                "it [host] fails just because of port on port-only route",
                "GET",
                "/",
                "domain-3.org:123",
                &[],
                None,
            ),
            ("it [uri]", "GET", "/my-route", "domain.org", &[], Some(3)),
            (
                "it [uri + empty host]",
                "GET",
                "/my-route-uri",
                "",
                &[],
                Some(3),
            ),
            ("it [method]", "TRACE", "/", "domain.org", &[], Some(2)),
            (
                "it [host + uri]",
                "GET",
                "/route-4",
                "domain-1.org",
                &[],
                Some(4),
            ),
            (
                "it [host + method]",
                "POST",
                "/",
                "domain-1.org",
                &[],
                Some(5),
            ),
            (
                "it [uri + method]",
                "PUT",
                "/route-6",
                "domain.org",
                &[],
                Some(6),
            ),
            (
                "it [host + uri + method]",
                "PUT",
                "/my-route-uri",
                "domain-with-uri-2.org",
                &[],
                Some(7),
            ),
            (
                "it single [headers] value (1)",
                "GET",
                "/",
                "",
                &[("location", "my-location-1")],
                Some(9),
            ),
            (
                "it single [headers] value (2)",
                "GET",
                "/",
                "",
                &[("location", "my-location-2")],
                Some(9),
            ),
            (
                "it single [headers] value (any of several)",
                "GET",
                "/",
                "",
                &[("location", "my-location-3"), ("location", "my-location-2")],
                Some(9),
            ),
            (
                "it single [headers] value (none)",
                "GET",
                "/",
                "",
                &[("location", "my-location-3")],
                None,
            ),
            (
                "it single [headers] value (regex)",
                "GET",
                "/",
                "",
                &[(
                    "user-agent",
                    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
                )],
                Some(15),
            ),
            (
                "it multiple [headers] values (v1)",
                "GET",
                "/",
                "",
                &[("location", "my-location-1"), ("version", "v1")],
                Some(10),
            ),
            (
                "it multiple [headers] values (v2)",
                "GET",
                "/",
                "",
                &[("location", "my-location-1"), ("version", "v2")],
                Some(10),
            ),
            (
                "it multiple [headers] values: fallback to Route 9",
                "GET",
                "/",
                "",
                &[
                    ("location", "my-location-3"),
                    ("location", "my-location-2"),
                    ("version", "v2"),
                ],
                Some(9),
            ),
            (
                "it [headers + uri]",
                "GET",
                "/headers-uri",
                "",
                &[("location", "my-location-2")],
                Some(11),
            ),
            (
                "it [host + headers + uri + method]",
                "PUT",
                "/headers-host-uri-method",
                "domain-with-headers-1.org",
                &[("location", "my-location-2")],
                Some(12),
            ),
            ("it [serviceless]", "GET", "/serviceless", "", &[], Some(8)),
            (
                "[uri prefix] matches when given [uri] is in request URI prefix",
                "GET",
                "/my-route/some/path",
                "domain.org",
                &[],
                Some(3),
            ),
        ];
        for (name, method, path, host, headers, want) in cases {
            assert_eq!(
                select(&router, method, path, host, headers),
                *want,
                "{name}"
            );
        }
    }

    #[test]
    fn longer_prefixes_win_whatever_the_order() {
        // Kong: "[uri prefix] does not supersede another route with a longer [uri]", and
        // the same "while [methods] are also defined" (routes in the other order).
        for methods in [&[][..], &["POST", "PUT", "GET"][..]] {
            let forward = Router::new(vec![
                route(&["/my-route/hello"], methods, &[], &[]),
                route(&["/my-route"], methods, &[], &[]),
            ]);
            let backward = Router::new(vec![
                route(&["/my-route"], methods, &[], &[]),
                route(&["/my-route/hello"], methods, &[], &[]),
            ]);
            for (path, long) in [
                ("/my-route/hello", true),
                ("/my-route/hello/world", true),
                ("/my-route", false),
                ("/my-route/world", false),
            ] {
                let want_forward = if long { 1 } else { 2 };
                let want_backward = if long { 2 } else { 1 };
                assert_eq!(
                    select(&forward, "GET", path, "domain.org", &[]),
                    Some(want_forward),
                    "{path}"
                );
                assert_eq!(
                    select(&backward, "GET", path, "domain.org", &[]),
                    Some(want_backward),
                    "{path}"
                );
            }
        }
    }

    #[test]
    fn regex_paths_go_before_plain_ones_and_by_regex_priority() {
        // Kong's priority puts a regex path above any plain prefix with the same kinds of
        // attributes, and orders regex paths by regex_priority (higher first).
        let mut low = route(&[r"~/v1/(chat|completions)$"], &[], &[], &[]);
        low.regex_priority = 1;
        let mut high = route(&[r"~/v1/chat$"], &[], &[], &[]);
        high.regex_priority = 5;
        let router = Router::new(vec![route(&["/v1/chat"], &[], &[], &[]), low, high]);
        assert_eq!(select(&router, "POST", "/v1/chat", "", &[]), Some(3));
        assert_eq!(select(&router, "POST", "/v1/completions", "", &[]), Some(2));
        // Anchored at the start: the regex does not match in the middle.
        assert_eq!(select(&router, "POST", "/x/v1/completions", "", &[]), None);
        assert_eq!(select(&router, "POST", "/v1/chat/x", "", &[]), Some(1));
    }

    #[test]
    fn wildcard_hosts_match_and_rank_below_plain_ones() {
        let router = Router::new(vec![
            route(&["/chat"], &[], &["*.example.com"], &[]),
            route(&["/chat"], &[], &["api.example.com"], &[]),
            route(&["/chat"], &[], &["example.*"], &[]),
        ]);
        assert_eq!(
            select(&router, "POST", "/chat", "api.example.com", &[]),
            Some(2)
        );
        assert_eq!(
            select(&router, "POST", "/chat", "eu.example.com:8000", &[]),
            Some(1)
        );
        assert_eq!(
            select(&router, "POST", "/chat", "example.org", &[]),
            Some(3)
        );
        assert_eq!(select(&router, "POST", "/chat", "other.org", &[]), None);
    }

    #[test]
    fn paths_are_normalized_as_kong_normalizes_them() {
        // kong/tools/uri.lua: unreserved characters decoded, reserved ones kept encoded
        // (upper-cased), dot segments removed, slashes merged.
        let cases = [
            ("/%62edrock-route", "/bedrock-route"),
            ("//bedrock-route", "/bedrock-route"),
            ("/a//b///c", "/a/b/c"),
            ("/x/../bedrock-route", "/bedrock-route"),
            ("/./bedrock-route/.", "/bedrock-route/"),
            ("/%2e%2e/bedrock-route", "/bedrock-route"),
            ("/a%2fb", "/a%2Fb"),
            ("/a%2Fb", "/a%2Fb"),
            ("/caf%C3%A9", "/café"),
            ("/100%", "/100%"),
            ("/%zz", "/%zz"),
            ("/", "/"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw), want, "{raw}");
        }
    }

    #[test]
    fn routes_without_http_protocols_are_not_reached_over_http() {
        let mut grpc_only = route(&["/chat"], &[], &[], &[]);
        grpc_only.protocols = vec!["grpc".into()];
        let router = Router::new(vec![grpc_only]);
        assert_eq!(select(&router, "POST", "/chat", "", &[]), None);
    }
}
