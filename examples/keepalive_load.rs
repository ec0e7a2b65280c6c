//! A deterministic load generator for scripts/bench-instructions: sends
//! exactly COUNT identical HTTP/1.1 requests, one at a time, over ONE
//! keep-alive connection, reads each answer in full, then closes and exits.
//!
//!   keepalive_load ADDR COUNT METHOD PATH [--body FILE] [HEADER ...]
//!   keepalive_load 127.0.0.1:18080 2000 GET /auth 'X-Forwarded-Method: POST'
//!
//! The server under test runs under callgrind, this client does not: two runs
//! of N1 and N2 requests differ by exactly N2-N1 request/response exchanges,
//! so the server's start-up and shutdown cancel out of the difference. Every
//! answer must be a 2xx (anything else means the wrong path was measured):
//! the first other answer is printed and the exit status is 1. Reads time out
//! after 60 s (a server under valgrind is ~50x slower, never that slow) and
//! the whole run is bounded by `KEEPALIVE_LOAD_MAX_SECONDS` (default 600).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::exit;
use std::time::{Duration, Instant};

/// Reads one response from `stream` into `buf` (reused across calls) and
/// returns its status code. Handles `Content-Length` and chunked bodies.
fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    buf.clear();
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        fill(stream, buf)?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("no status code"))?;
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(stream, buf, head_end)?;
    } else {
        let length: usize = match header("content-length") {
            Some(v) => v.parse().map_err(|_| invalid("bad content-length"))?,
            None => 0,
        };
        while buf.len() < head_end + length {
            fill(stream, buf)?;
        }
        if buf.len() > head_end + length {
            return Err(invalid("bytes after the response (nothing was pipelined)"));
        }
    }
    Ok(status)
}

/// Consumes a chunked body that starts at `buf[at..]`, up to the final
/// empty chunk and its (empty) trailer.
fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>, mut at: usize) -> std::io::Result<()> {
    loop {
        let line_end = loop {
            if let Some(i) = find(&buf[at..], b"\r\n") {
                break at + i;
            }
            fill(stream, buf)?;
        };
        let size_text = String::from_utf8_lossy(&buf[at..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| invalid("bad chunk size"))?;
        at = line_end + 2;
        // A chunk is followed by CRLF; the last (empty) one by the trailer's CRLF.
        while buf.len() < at + size + 2 {
            fill(stream, buf)?;
        }
        at += size + 2;
        if size == 0 {
            return Ok(());
        }
    }
}

fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk)?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

fn usage() -> ! {
    eprintln!("usage: keepalive_load ADDR COUNT METHOD PATH [--body FILE] [HEADER ...]");
    exit(2);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(count), Some(method), Some(path)) =
        (args.next(), args.next(), args.next(), args.next())
    else {
        usage()
    };
    let Ok(count) = count.parse::<u64>() else {
        usage()
    };
    let mut headers = Vec::new();
    let mut body = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--body" {
            let Some(file) = args.next() else { usage() };
            body = std::fs::read(&file).unwrap_or_else(|err| {
                eprintln!("keepalive_load: cannot read {file}: {err}");
                exit(2)
            });
        } else {
            headers.push(arg);
        }
    }
    let max_seconds: u64 = std::env::var("KEEPALIVE_LOAD_MAX_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);

    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n").into_bytes();
    for h in &headers {
        request.extend_from_slice(h.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || method != "GET" {
        request.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(&body);

    let mut stream = TcpStream::connect(&addr).unwrap_or_else(|err| {
        eprintln!("keepalive_load: connect {addr}: {err}");
        exit(1)
    });
    stream.set_nodelay(true).ok();
    stream.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(max_seconds);
    let mut buf = Vec::with_capacity(64 * 1024);
    for i in 0..count {
        if Instant::now() > deadline {
            eprintln!("keepalive_load: {max_seconds} s passed after {i} of {count} requests");
            exit(1);
        }
        let status = stream
            .write_all(&request)
            .and_then(|()| read_response(&mut stream, &mut buf));
        match status {
            Ok(s) if (200..300).contains(&s) => {}
            Ok(s) => {
                let text = String::from_utf8_lossy(&buf);
                eprintln!("keepalive_load: request {i}: status {s}:\n{text}");
                exit(1);
            }
            Err(err) => {
                eprintln!("keepalive_load: request {i}: {err}");
                exit(1);
            }
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    println!(
        "requests={count} elapsed_s={:.3}",
        start.elapsed().as_secs_f64()
    );
}
