//! A blocking HTTP/1.1 relay on 127.0.0.1 in front of a real server, for the faults a server
//! cannot make by itself: answering some requests itself (a 403 after the n-th read, a refusal
//! of one header), or changing an answer in flight (one byte of its body flipped).
//!
//! The one home of this fixture: the S3 checksum tests (backend and CLI), the CLI's flipped
//! byte tests and [`crate::gcs::Shim`] use it. Requests are heads only (GET and HEAD, no
//! bodies). Each one the relay forwards goes to the server on its own connection with
//! `connection: close`, and the whole answer is relayed as it came; the client's connection
//! stays open for its next request unless an [`Action`] closes it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// The longest request head the relay reads.
const MAX_HEAD: usize = 64 << 10;

/// What the relay does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Forward it and relay the answer unchanged.
    Forward,
    /// Forward it, then flip (xor 0x01) the byte at this offset of the answer's body, when
    /// the body is that long.
    FlipBodyByte(usize),
    /// Forward it, then remove every `<NAME>…</NAME>` element of the answer's body (a body
    /// sized by `Content-Length`, which is set to the new length): an S3 listing without
    /// ETags, as some servers list, from `RemoveElements("ETag")`.
    RemoveElements(String),
    /// Answer this (a whole HTTP response) without asking the server.
    Respond(Vec<u8>),
    /// Answer this, then close the connection (a close-delimited body).
    RespondThenClose(Vec<u8>),
    /// Close the connection without an answer.
    Close,
}

impl Action {
    /// `403 Forbidden` with an empty body.
    pub fn forbidden() -> Self {
        Action::Respond(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n".to_vec())
    }
}

/// One request head, as read from the client.
#[derive(Debug)]
pub struct Head {
    raw: Vec<u8>,
    lower: String,
}

impl Head {
    fn new(raw: Vec<u8>) -> Self {
        let lower = String::from_utf8_lossy(&raw).to_ascii_lowercase();
        Self { raw, lower }
    }

    /// The bytes, up to and including the blank line.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The head as text, lower-cased (request line included).
    pub fn lowercase(&self) -> &str {
        &self.lower
    }

    /// The value of the first header called `name` (lower case), trimmed and lower-cased.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.lower.split("\r\n").skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == name).then(|| v.trim())
        })
    }

    /// A GET with a `Range` header.
    pub fn is_ranged_get(&self) -> bool {
        self.lower.starts_with("get ") && self.header("range").is_some()
    }
}

/// A running relay. Its threads end with the test process (each connection's after a 30 s
/// idle read).
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
}

impl Relay {
    /// Relays to `upstream`, doing with each request what `decide` says.
    pub fn start(
        upstream: SocketAddr,
        decide: impl Fn(&Head) -> Action + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay on 127.0.0.1");
        let addr = listener.local_addr().expect("the relay's address");
        let decide = Arc::new(decide);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let decide = decide.clone();
                std::thread::spawn(move || serve(conn, upstream, &*decide));
            }
        });
        Self { addr }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn serve(mut client: TcpStream, upstream: SocketAddr, decide: &dyn Fn(&Head) -> Action) {
    if client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .is_err()
    {
        return;
    }
    while let Ok(raw) = read_head(&mut client) {
        let head = Head::new(raw);
        let (answer, close) = match decide(&head) {
            Action::Close => return,
            Action::Respond(bytes) => (bytes, false),
            Action::RespondThenClose(bytes) => (bytes, true),
            Action::Forward => match forward(upstream, head.raw()) {
                Ok(a) => (a, false),
                Err(_) => return,
            },
            Action::FlipBodyByte(at) => match forward(upstream, head.raw()) {
                Ok(mut a) => {
                    if let Some(i) = body_start(&a).map(|b| b + at).filter(|&i| i < a.len()) {
                        a[i] ^= 0x01;
                    }
                    (a, false)
                }
                Err(_) => return,
            },
            Action::RemoveElements(name) => match forward(upstream, head.raw()) {
                Ok(a) => (remove_elements(a, &name), false),
                Err(_) => return,
            },
        };
        if client.write_all(&answer).is_err() || close {
            return;
        }
    }
}

/// Reads one HTTP head, up to and including the blank line that ends it (at most 64 KiB).
pub fn read_head(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Err(io::Error::other("HTTP head too long"));
        }
        if s.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    Ok(head)
}

/// Sends the request `head` to `upstream` on a new connection, with `connection: close`
/// added, and returns the whole answer (read until the server closes).
pub fn forward(upstream: SocketAddr, head: &[u8]) -> io::Result<Vec<u8>> {
    let mut up = TcpStream::connect(upstream)?;
    let mut head = head[..head.len().saturating_sub(2)].to_vec();
    head.extend_from_slice(b"connection: close\r\n\r\n");
    up.write_all(&head)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    Ok(answer)
}

/// `answer` without the `<name>…</name>` elements of its body, its `Content-Length` set to
/// the new body's length; unchanged if it has no such header.
fn remove_elements(answer: Vec<u8>, name: &str) -> Vec<u8> {
    let Some(start) = body_start(&answer) else {
        return answer;
    };
    let head = String::from_utf8_lossy(&answer[..start]).into_owned();
    if !head.to_ascii_lowercase().contains("\r\ncontent-length:") {
        return answer;
    }
    let mut body = String::from_utf8_lossy(&answer[start..]).into_owned();
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    while let Some(i) = body.find(&open) {
        let Some(j) = body[i..].find(&close) else {
            break;
        };
        body.replace_range(i..i + j + close.len(), "");
    }
    let mut out = String::new();
    for line in head.trim_end_matches("\r\n").split("\r\n") {
        if line.to_ascii_lowercase().starts_with("content-length:") {
            out.push_str(&format!("content-length: {}", body.len()));
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&body);
    out.into_bytes()
}

/// Where the body of a whole HTTP answer starts.
pub fn body_start(answer: &[u8]) -> Option<usize> {
    answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_elements_leave_the_rest_and_a_matching_length() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 57\r\n\r\n<R><K>a</K><ETag>\"e1\"</ETag><K>b</K><ETag>\"e2\"</ETag></R>";
        let out = remove_elements(answer.to_vec(), "ETag");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\ncontent-length: 23\r\n\r\n<R><K>a</K><K>b</K></R>"
        );
        let chunked = b"HTTP/1.1 200 OK\r\n\r\n<ETag>x</ETag>".to_vec();
        assert_eq!(remove_elements(chunked.clone(), "ETag"), chunked);
    }

    #[test]
    fn forwards_flips_and_answers_as_decided() {
        // A server that answers every request with the same 200 and body, then closes.
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = server.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in server.incoming() {
                let Ok(mut conn) = conn else { return };
                let _ = read_head(&mut conn);
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc");
            }
        });
        let relay = Relay::start(upstream, |head| match head.header("x-do") {
            Some("flip") => Action::FlipBodyByte(1),
            Some("deny") if head.is_ranged_get() => Action::forbidden(),
            _ => Action::Forward,
        });
        let mut c = TcpStream::connect(relay.addr()).unwrap();
        let mut ask = |extra: &str| {
            write!(c, "GET / HTTP/1.1\r\nhost: x\r\n{extra}\r\n").unwrap();
            let head = String::from_utf8(read_head(&mut c).unwrap()).unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .unwrap()
                .parse()
                .unwrap();
            let mut body = vec![0; len];
            c.read_exact(&mut body).unwrap();
            (head, body)
        };
        assert_eq!(ask("").1, b"abc");
        assert_eq!(ask("X-Do: flip\r\n").1, b"acc");
        let (head, body) = ask("x-do: deny\r\nrange: bytes=0-\r\n");
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        assert!(body.is_empty());
        assert_eq!(ask("x-do: deny\r\n").1, b"abc", "not ranged: forwarded");
    }
}
