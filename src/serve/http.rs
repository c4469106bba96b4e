//! Just enough HTTP/1.1 for a local, read-only view: one GET request a connection (no
//! keep-alive), its path, query and cookies, and responses written whole or streamed as
//! server-sent events. Every socket has read and write timeouts, so a client that never sends
//! or never reads holds one thread for a few seconds at most, never the server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long a client may take to send its request, and to take each write.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The longest request head we read; longer is refused.
const MAX_HEAD: u64 = 16 * 1024;

/// A parsed request: what the routes need.
#[derive(Debug, Default)]
pub struct Request {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The path, percent-decoded, split on `/` with empty parts dropped.
    pub parts: Vec<String>,
    /// The query's pairs, percent-decoded.
    pub query: Vec<(String, String)>,
    /// The `Cookie` header's pairs.
    pub cookies: Vec<(String, String)>,
    /// The `Host` header, when sent.
    pub host: Option<String>,
}

impl Request {
    /// A query parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A cookie's value.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads the request head from a connection; `None` when it is not a request we can read
/// (closed, too slow, too long, not HTTP).
pub fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.take(MAX_HEAD));
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let method = words.next()?.to_string();
    let target = words.next()?;
    if !words.next()?.starts_with("HTTP/") {
        return None;
    }
    let mut cookies = vec![];
    let mut host = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 || !h.ends_with('\n') {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let Some((name, value)) = h.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("cookie") {
            cookies.extend(value.split(';').filter_map(|c| {
                let (k, v) = c.trim().split_once('=')?;
                Some((k.to_string(), v.to_string()))
            }));
        } else if name.eq_ignore_ascii_case("host") {
            host = Some(value.trim().to_string());
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Some(Request {
        method,
        parts: path
            .split('/')
            .filter(|p| !p.is_empty())
            .map(decode)
            .collect(),
        query: query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect(),
        cookies,
        host,
    })
}

/// Whether a `Host` header names this machine's loopback (`localhost`, `127.0.0.1`, `[::1]`,
/// with any port): a page of another site that a DNS trick sends to 127.0.0.1 names its own.
pub fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Percent-decoding (and `+` as a space); a bad escape stays as written.
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| {
            b.get(j)
                .and_then(|c| (*c as char).to_digit(16))
                .map(|d| d as u8)
        };
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push(h * 16 + l);
                i += 3;
            }
            (b'+', ..) => {
                out.push(b' ');
                i += 1;
            }
            (c, ..) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A whole response.
pub struct Response {
    /// The status line's code and reason, e.g. `(200, "OK")`.
    pub status: (u16, &'static str),
    /// The content type.
    pub content_type: &'static str,
    /// Extra header lines, each without its line end.
    pub headers: Vec<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// 200 with a body of the given type.
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status: (200, "OK"),
            content_type,
            headers: vec![],
            body: body.into(),
        }
    }

    /// An error page: the code, its reason, and a line of text.
    pub fn error(status: (u16, &'static str), text: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: vec![],
            body: format!("{} {}: {text}\n", status.0, status.1).into_bytes(),
        }
    }

    /// 404 Not Found, saying nothing about what exists.
    pub fn not_found() -> Response {
        Response::error((404, "Not Found"), "no such page")
    }

    /// Writes the response and closes the exchange (`Connection: close`).
    pub fn send(&self, stream: &mut TcpStream, head_only: bool) -> std::io::Result<()> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n",
            self.status.0,
            self.status.1,
            self.content_type,
            self.body.len()
        );
        for h in &self.headers {
            head += h;
            head += "\r\n";
        }
        head += "\r\n";
        stream.write_all(head.as_bytes())?;
        if !head_only {
            stream.write_all(&self.body)?;
        }
        stream.flush()
    }
}

/// Starts a server-sent events stream: the head, then `event` calls until the client goes.
pub fn start_events(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\nretry: 1000\n\n",
    )?;
    stream.flush()
}

/// Sends one event (`data` may not hold a line end: JSON on one line) or, with no name, a
/// comment that keeps the connection alive.
pub fn event(stream: &mut TcpStream, name: Option<&str>, data: &str) -> std::io::Result<()> {
    let text = match name {
        Some(n) => format!("event: {n}\ndata: {data}\n\n"),
        None => format!(": {data}\n\n"),
    };
    stream.write_all(text.as_bytes())?;
    stream.flush()
}

/// A URL part: sweep names are directory names, so anything but plain characters is escaped.
pub fn url_part(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Compares two secrets in time that depends on their lengths only, not on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// A fresh random token: 32 hex digits from the system's random source.
pub fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_keeps_dots_visible_to_the_router() {
        assert_eq!(decode("%2e%2E"), "..");
        assert_eq!(decode("a+b%20c"), "a b c");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
    }

    #[test]
    fn only_loopback_names_pass_without_a_token() {
        for ok in ["localhost", "127.0.0.1:8765", "[::1]:80", "LOCALHOST:1"] {
            assert!(loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:8765",
            "127.0.0.1.evil.example",
            "",
            "[::2]:80",
        ] {
            assert!(!loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert_eq!(new_token().unwrap().len(), 32);
    }
}
