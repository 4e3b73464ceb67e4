//! The HTTP client settings reach the wire: by default a slow but steadily progressing body
//! is never cut off (no whole-request timeout), while an explicit request timeout does cut
//! it — the reason the default is "none". The server is a tiny loopback HTTP/1.1 server
//! that paces its body.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use backend_object_store::{ClientSettings, StoreOptions, from_url};
use futures::StreamExt;
use resume_core::{RangeSource, ReadConditions, SourceErrorKind};

const SIZE: usize = 1000;
const CHUNKS: usize = 10;
const PACE: Duration = Duration::from_millis(60);

/// Serves `connections` requests for one 1000-byte object: HEAD, or a ranged GET whose
/// body goes out in 10 chunks, 60 ms apart (≈ 600 ms per body).
fn paced_server(connections: usize) -> (String, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            let Ok(stream) = stream else { continue };
            let _ = serve(stream);
        }
    });
    (base, handle)
}

fn serve(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("range: bytes=") {
            let (a, b) = v.trim().split_once('-').unwrap();
            range = Some((a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()));
        }
    }
    let head = "ETag: \"paced-1\"\r\nLast-Modified: Tue, 01 Jul 2025 00:00:00 GMT\r\nConnection: close\r\n";
    if request_line.starts_with("HEAD") {
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\n{head}\r\n"
        )?;
        return Ok(());
    }
    let (a, b) = range.unwrap_or((0, SIZE - 1));
    let len = b + 1 - a;
    write!(
        stream,
        "HTTP/1.1 206 Partial Content\r\nContent-Length: {len}\r\nContent-Range: bytes {a}-{b}/{SIZE}\r\n{head}\r\n"
    )?;
    stream.flush()?;
    let body = vec![b'x'; len];
    for chunk in body.chunks(len.div_ceil(CHUNKS)) {
        thread::sleep(PACE);
        stream.write_all(chunk)?;
        stream.flush()?;
    }
    Ok(())
}

async fn read_whole(settings: ClientSettings, base: &str) -> Result<usize, SourceErrorKind> {
    let options = StoreOptions::new().no_env().client(settings);
    let (source, key) = from_url(&format!("{base}/obj"), &options).unwrap();
    let read = source
        .read_range(&key, 0..SIZE as u64, &ReadConditions::default())
        .await
        .map_err(|e| e.kind)?;
    let mut body = read.body;
    let mut n = 0;
    while let Some(chunk) = body.next().await {
        n += chunk.map_err(|e| e.kind)?.len();
    }
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_progressing_body_is_not_cut_off_unless_a_request_timeout_is_set() {
    let (base, server) = paced_server(2);

    let started = Instant::now();
    let got = read_whole(ClientSettings::default(), &base).await;
    let took = started.elapsed();
    assert_eq!(got, Ok(SIZE), "the default client read the whole slow body");
    assert!(
        took >= PACE * (CHUNKS as u32 - 1),
        "the body was paced: {took:?}"
    );

    let short = ClientSettings {
        request_timeout: Some(Duration::from_millis(200)),
        ..ClientSettings::default()
    };
    let got = read_whole(short, &base).await;
    assert_eq!(
        got,
        Err(SourceErrorKind::Transient),
        "a whole-request timeout kills a transfer that is making progress"
    );
    server.join().unwrap();
}
