//! Fetching an `image_url` given as an `http(s)` URL, for routes that allow it (the
//! `aigw-image-url-fetch` tag): bounded in size and time, and never to a private or
//! loopback address unless the route lists the host, so a client cannot make the gateway
//! reach into the network it sits in.

use std::net::{IpAddr, SocketAddr};

use aigw_config::ImageFetch;
use aigw_core::{Error, ImageFormat};
use base64::Engine;

/// The image at `url` as a `data:` URI; `at` names the request field for errors.
pub(crate) async fn image_as_data_uri(
    url: &str,
    options: &ImageFetch,
    at: &str,
) -> Result<String, Error> {
    let refuse = |why: String| Error::invalid_request(format!("{at}.image_url: {why}"));
    let parsed = reqwest::Url::parse(url).map_err(|e| refuse(format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(refuse(format!(
            "only http, https and data: URLs are accepted, not {}:",
            parsed.scheme()
        )));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| refuse("the URL has no host".to_owned()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let lookup = tokio::time::timeout(
        options.timeout,
        tokio::net::lookup_host((host.as_str(), port)),
    );
    let addrs: Vec<SocketAddr> = match lookup.await {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(e)) => return Err(refuse(format!("could not resolve {host}: {e}"))),
        Err(_) => return Err(refuse(format!("resolving {host} took too long"))),
    };
    let allowed = options.allow_hosts.contains(&host);
    // Every address is checked, and the connection pinned to the checked one, so a name
    // cannot resolve to a public address here and a private one when connecting.
    let Some(addr) = addrs.first().copied() else {
        return Err(refuse(format!("{host} has no address")));
    };
    if !allowed {
        if let Some(inner) = addrs.iter().find(|a| is_internal(a.ip())) {
            return Err(refuse(format!(
                "{host} resolves to the private or loopback address {}, which is not fetched; \
                 list the host with the route tag aigw-image-url-fetch-allow={host} to allow it",
                inner.ip()
            )));
        }
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(options.timeout)
        .resolve(&host, addr)
        .build()
        .map_err(|e| {
            Error::new(
                aigw_core::ErrorKind::Internal,
                format!("image fetch client: {e}"),
            )
        })?;
    let too_slow = || {
        refuse(format!(
            "fetching {url} took longer than {} ms",
            options.timeout.as_millis()
        ))
    };
    let mut response = client.get(parsed.clone()).send().await.map_err(|e| {
        if e.is_timeout() {
            too_slow()
        } else {
            refuse(format!("fetching {url} failed: {e}"))
        }
    })?;
    if !response.status().is_success() {
        return Err(refuse(format!(
            "fetching {url} answered {} (redirects are not followed)",
            response.status()
        )));
    }
    let too_large = || {
        refuse(format!(
            "the image at {url} is larger than {} bytes",
            options.max_bytes
        ))
    };
    if response
        .content_length()
        .is_some_and(|n| usize::try_from(n).map_or(true, |n| n > options.max_bytes))
    {
        return Err(too_large());
    }
    let declared = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .and_then(ImageFormat::from_mime);
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if bytes.len() + chunk.len() > options.max_bytes {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) if e.is_timeout() => return Err(too_slow()),
            Err(e) => return Err(refuse(format!("reading {url} failed: {e}"))),
        }
    }
    let format = declared
        .or_else(|| sniff(&bytes))
        .ok_or_else(|| refuse(format!("{url} is not a png, jpeg, gif or webp image")))?;
    Ok(format!(
        "data:{};base64,{}",
        format.mime(),
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    ))
}

/// The format the bytes' signature says, for servers that send no image content type.
fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some(ImageFormat::Jpeg)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(ImageFormat::Gif)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(ImageFormat::Webp)
    } else {
        None
    }
}

/// Whether `ip` is inside some private network: loopback, private ranges, link-local,
/// carrier-grade NAT, unspecified, multicast or broadcast.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(
                is_internal(internal.parse().expect("an address")),
                "{internal}"
            );
        }
        for public in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(
                !is_internal(public.parse().expect("an address")),
                "{public}"
            );
        }
    }

    #[test]
    fn formats_are_sniffed() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some(ImageFormat::Png));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(ImageFormat::Webp));
        assert_eq!(sniff(b"<html>"), None);
    }
}
