//! A tiny HTTP/1.1 proxy that rewrites response headers, for servers the emulator cannot
//! imitate by itself (an object without `x-oss-hash-crc64ecma`, or with a wrong one).
//!
//! One request per connection: the request head is forwarded with `Connection: close`, the
//! response head is rewritten (and says `Connection: close`, so the client opens a new
//! connection for its next request), then the body is copied until the server closes. A reset
//! from the server becomes a closed connection towards the client (a short body). The
//! signature is unaffected: OSS signs neither `Host` nor `Connection`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use test_support::relay::read_head;

/// How the response head is changed.
#[derive(Debug, Clone)]
pub enum Rewrite {
    /// Drop every header with this (case-insensitive) name.
    Remove(&'static str),
    /// Replace the value of every header with this name.
    Set(&'static str, String),
}

/// A response to stall: the `nth` GET (1-based) stops sending after `after_bytes` body bytes
/// and keeps its connection open, silent, until the client gives up (or the proxy stops).
#[derive(Debug, Clone, Copy)]
pub struct Stall {
    pub nth: u64,
    pub after_bytes: u64,
}

/// A running proxy; stops accepting when dropped.
#[derive(Debug)]
pub struct HeaderProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HeaderProxy {
    pub fn start(upstream: SocketAddr, rewrites: Vec<Rewrite>) -> Self {
        Self::with_stall(upstream, rewrites, None)
    }

    pub fn with_stall(upstream: SocketAddr, rewrites: Vec<Rewrite>, stall: Option<Stall>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let shared = Arc::new(Shared {
            rewrites,
            stall,
            gets: AtomicU64::new(0),
            stop: stop.clone(),
        });
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(client, upstream, &shared);
                });
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for HeaderProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn rewrite_head(head: &[u8], rewrites: &[Rewrite]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for (i, line) in text.split("\r\n").enumerate() {
        if line.is_empty() {
            continue;
        }
        if i > 0 {
            let name = line.split(':').next().unwrap_or("").trim();
            if name.eq_ignore_ascii_case("connection") {
                continue;
            }
            let mut keep = Some(line.to_owned());
            for r in rewrites {
                match r {
                    Rewrite::Remove(n) if name.eq_ignore_ascii_case(n) => keep = None,
                    Rewrite::Set(n, v) if name.eq_ignore_ascii_case(n) => {
                        keep = Some(format!("{name}: {v}"));
                    }
                    _ => {}
                }
            }
            let Some(line) = keep else { continue };
            out.push_str(&line);
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

#[derive(Debug)]
struct Shared {
    rewrites: Vec<Rewrite>,
    stall: Option<Stall>,
    gets: AtomicU64,
    stop: Arc<AtomicBool>,
}

fn serve(mut client: TcpStream, upstream: SocketAddr, shared: &Shared) -> io::Result<()> {
    let request = read_head(&mut client)?;
    let stall = if request.starts_with(b"GET ") {
        let n = shared.gets.fetch_add(1, Ordering::SeqCst) + 1;
        shared.stall.filter(|s| s.nth == n)
    } else {
        None
    };
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(&rewrite_head(&request, &[]))?;
    let response = read_head(&mut server)?;
    client.write_all(&rewrite_head(&response, &shared.rewrites))?;
    if let Some(s) = stall {
        io::copy(&mut (&mut server).take(s.after_bytes), &mut client)?;
        client.flush()?;
        // Silence, connection open: only the client's idle timeout ends this (bounded so a
        // broken test cannot hang forever).
        let until = std::time::Instant::now() + Duration::from_secs(120);
        while !shared.stop.load(Ordering::SeqCst) && std::time::Instant::now() < until {
            let mut probe = [0u8; 1];
            client.set_read_timeout(Some(Duration::from_millis(50)))?;
            match client.read(&mut probe) {
                Ok(0) => break, // the client closed: it gave up
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
    } else {
        let _ = io::copy(&mut server, &mut client);
    }
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}
