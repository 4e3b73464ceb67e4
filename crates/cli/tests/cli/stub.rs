//! A tiny HTTP/1.1 server on 127.0.0.1 that answers every request with what the test says and
//! records the requests, for answers no real server gives on demand (an S3 wrong-region 301,
//! a HEAD refused with 400, GETs that always fail).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header lines, as sent.
    pub headers: Vec<String>,
}

type Respond = dyn Fn(&Request) -> String + Send + Sync;

/// The server; stops accepting when dropped.
pub struct Stub {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Stub {
    /// Answers each request with `respond(request)`: a whole response head (status line and
    /// headers, without the final blank line); an empty body is sent.
    pub fn start(respond: impl Fn(&Request) -> String + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stub server");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let respond: Arc<Respond> = Arc::new(respond);
        let (log, halt) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (log, respond) = (log.clone(), respond.clone());
                std::thread::spawn(move || serve(conn, &log, respond.as_ref()));
            }
        });
        Self {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves requests on one connection until the client closes it (keep-alive).
fn serve(conn: TcpStream, log: &Mutex<Vec<Request>>, respond: &Respond) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone the connection"));
    let mut conn = conn;
    // Bounded: a client sends a handful of requests per connection here.
    for _ in 0..10_000 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
            return;
        };
        let mut headers = Vec::new();
        for _ in 0..200 {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end().to_owned();
            if h.is_empty() {
                break;
            }
            headers.push(h);
        }
        let request = Request {
            method: method.to_owned(),
            target: target.to_owned(),
            headers,
        };
        log.lock().unwrap().push(request.clone());
        let head = respond(&request);
        if conn
            .write_all(format!("{head}\r\n\r\n").as_bytes())
            .is_err()
        {
            return;
        }
    }
}
