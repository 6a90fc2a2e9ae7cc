//! Reading one counter from the proxy's `/metrics` (Prometheus text format)
//! with a plain HTTP/1.1 GET, for `pgcache verify --metrics URL`.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

/// The value of `metric` (a counter or gauge without labels) at `url`
/// (`http://host:port/metrics`; the path defaults to `/metrics`). Blocking,
/// with a 5 s timeout.
pub fn read_counter(url: &str, metric: &str) -> Result<u64, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/metrics"),
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("{url}: {e}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| format!("{url}: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("{url}: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("{url}: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    let status = text.lines().next().unwrap_or_default();
    if !status.contains(" 200") {
        return Err(format!("{url}: {status}"));
    }
    parse_metric(&text, metric).ok_or_else(|| format!("{url}: no metric {metric}"))
}

/// The value of the sample named `metric` in Prometheus text.
fn parse_metric(text: &str, metric: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        if parts.next() != Some(metric) {
            return None;
        }
        let value: f64 = parts.next()?.parse().ok()?;
        (value.is_finite() && value >= 0.0).then_some(value as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_sample() {
        let text = "# HELP pgcache_cache_hits Statements answered from the cache.\n\
                    # TYPE pgcache_cache_hits counter\n\
                    pgcache_cache_hits_total 42\n\
                    pgcache_cache_hits_totalx 7\n";
        assert_eq!(parse_metric(text, "pgcache_cache_hits_total"), Some(42));
        assert_eq!(parse_metric(text, "pgcache_cache_misses_total"), None);
    }

    #[test]
    fn bad_urls() {
        assert!(read_counter("https://x/metrics", "m").is_err());
    }
}
