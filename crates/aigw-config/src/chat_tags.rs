//! aigw's per-route chat options, written as Kong route `tags` so that the decK file stays
//! one Kong accepts unchanged: tags are free-form strings Kong stores and ignores.
//!
//! - `aigw-drop-unsupported-params`: request fields Bedrock cannot honour (`n` > 1,
//!   `logprobs`, `seed`, …) are dropped instead of refused with a 400.
//! - `aigw-image-url-fetch`: `image_url` parts with an `http(s)` URL are fetched by the
//!   gateway; `aigw-image-url-fetch-max-bytes=N` (default 5 MiB) and
//!   `aigw-image-url-fetch-timeout-ms=N` (default 5000) bound the fetch, and
//!   `aigw-image-url-fetch-allow=HOST` (repeatable) lets a private or loopback host through.

use std::time::Duration;

/// The prefix every aigw tag has; other tags are Kong's and left alone.
const PREFIX: &str = "aigw-";

/// A route's chat options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatOptions {
    /// Drop fields Bedrock cannot honour rather than refuse them.
    pub drop_unsupported_params: bool,
    /// Fetch images given by URL; `None`: refuse them.
    pub image_url_fetch: Option<ImageFetch>,
}

/// How images given by URL are fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFetch {
    /// The largest image fetched, in bytes.
    pub max_bytes: usize,
    /// How long one fetch may take in all.
    pub timeout: Duration,
    /// Hosts (names or IP addresses) fetched even though they are private or loopback.
    pub allow_hosts: Vec<String>,
}

impl Default for ImageFetch {
    fn default() -> Self {
        ImageFetch {
            max_bytes: 5 * 1024 * 1024,
            timeout: Duration::from_secs(5),
            allow_hosts: Vec::new(),
        }
    }
}

/// The chat options the route's `tags` set; `Err((index, message))` names the bad tag.
pub(crate) fn parse(tags: &[String]) -> Result<ChatOptions, (usize, String)> {
    let mut options = ChatOptions::default();
    let mut fetch: Option<ImageFetch> = None;
    let mut fetch_detail = None;
    for (index, tag) in tags.iter().enumerate() {
        let Some(rest) = tag.strip_prefix(PREFIX) else {
            continue;
        };
        let (name, value) = match rest.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (rest, None),
        };
        let number = |value: Option<&str>| -> Result<u64, (usize, String)> {
            value
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    (
                        index,
                        format!("{tag:?}: expected {PREFIX}{name}=<positive number>"),
                    )
                })
        };
        match (name, value) {
            ("drop-unsupported-params", None) => options.drop_unsupported_params = true,
            ("image-url-fetch", None) => {
                fetch.get_or_insert_with(ImageFetch::default);
            }
            ("image-url-fetch-max-bytes", v) => {
                let n = number(v)?;
                fetch_detail.get_or_insert(index);
                fetch.get_or_insert_with(ImageFetch::default).max_bytes =
                    usize::try_from(n).unwrap_or(usize::MAX);
            }
            ("image-url-fetch-timeout-ms", v) => {
                let n = number(v)?;
                fetch_detail.get_or_insert(index);
                fetch.get_or_insert_with(ImageFetch::default).timeout = Duration::from_millis(n);
            }
            ("image-url-fetch-allow", Some(host)) if !host.is_empty() => {
                fetch_detail.get_or_insert(index);
                fetch
                    .get_or_insert_with(ImageFetch::default)
                    .allow_hosts
                    .push(host.to_ascii_lowercase());
            }
            _ => {
                return Err((
                    index,
                    format!(
                        "unknown aigw tag {tag:?}; aigw's route tags are \
                         aigw-drop-unsupported-params, aigw-image-url-fetch, \
                         aigw-image-url-fetch-max-bytes=N, aigw-image-url-fetch-timeout-ms=N \
                         and aigw-image-url-fetch-allow=HOST"
                    ),
                ));
            }
        }
    }
    // A detail without the switch is most likely a forgotten switch; saying so beats
    // silently leaving fetching off.
    if let Some(index) = fetch_detail {
        if !tags.iter().any(|t| t == "aigw-image-url-fetch") {
            return Err((
                index,
                format!(
                    "{:?} sets how images are fetched, but the route lacks the \
                     aigw-image-url-fetch tag that turns fetching on",
                    tags[index]
                ),
            ));
        }
    }
    options.image_url_fetch = fetch;
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn tags_set_the_options() {
        let options = parse(&tags(&[
            "team-a",
            "aigw-drop-unsupported-params",
            "aigw-image-url-fetch",
            "aigw-image-url-fetch-max-bytes=1024",
            "aigw-image-url-fetch-allow=127.0.0.1",
        ]))
        .expect("accepted");
        assert!(options.drop_unsupported_params);
        let fetch = options.image_url_fetch.expect("accepted");
        assert_eq!(fetch.max_bytes, 1024);
        assert_eq!(fetch.timeout, Duration::from_secs(5));
        assert_eq!(fetch.allow_hosts, ["127.0.0.1"]);
        assert_eq!(
            parse(&tags(&["x"])).expect("accepted"),
            ChatOptions::default()
        );
    }

    #[test]
    fn bad_tags_are_named() {
        let (index, message) = parse(&tags(&["ok", "aigw-drop-params"])).expect_err("refused");
        assert_eq!(index, 1);
        assert!(
            message.contains("unknown aigw tag \"aigw-drop-params\""),
            "{message}"
        );
        let (_, message) =
            parse(&tags(&["aigw-image-url-fetch-timeout-ms=soon"])).expect_err("refused");
        assert!(message.contains("positive number"), "{message}");
        let (_, message) =
            parse(&tags(&["aigw-image-url-fetch-allow=10.0.0.1"])).expect_err("refused");
        assert!(
            message.contains("lacks the aigw-image-url-fetch tag"),
            "{message}"
        );
    }
}
