//! A small fixed-rate HTTP/1.1 load generator (wrk cannot hold a rate and
//! wrk2 is not packaged in Debian 12): latency percentiles at a chosen rate.
//!
//!   fixed_rate ADDR RATE SECONDS CONNECTIONS PATH [HEADER ...]
//!   fixed_rate 127.0.0.1:18080 20000 10 64 /auth 'X-KMS-Timestamp: 1800000000'
//!
//! One OS thread per keep-alive connection, one request in flight each, each
//! on its own staggered schedule of RATE/CONNECTIONS per second (threads and
//! `std::thread::sleep`, because tokio's 1 ms timer would release requests in
//! 1 ms bursts).
//!
//! Latency is corrected for coordinated omission: a request whose send time
//! came while the previous answer on its connection was still outstanding is
//! measured from its *scheduled* time (as wrk2 does), so a server stall is
//! not hidden. Otherwise it is measured from the actual send, so the
//! generator's own wake-up lag is not billed to the server. The plain
//! service time is printed beside it. Non-200 answers and socket errors
//! count as errors.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// (corrected latency, service time) in microseconds, and errors.
type Outcome = (Vec<(u32, u32)>, u64);

fn connection(
    addr: &str,
    request: &[u8],
    first: Instant,
    interval: Duration,
    end: Instant,
) -> Outcome {
    let mut samples = Vec::new();
    let mut errors = 0u64;
    let mut stream = connect(addr);
    let mut buf = vec![0u8; 16 * 1024];
    let mut next = first;
    while next < end {
        let scheduled = next;
        next += interval;
        let now = Instant::now();
        // Past the schedule already: the last answer came late.
        let behind = now > scheduled;
        if !behind {
            std::thread::sleep(scheduled - now);
        }
        let sent = Instant::now();
        match exchange(&mut stream, request, &mut buf) {
            Ok(ok) => {
                let done = Instant::now();
                if ok {
                    let from = if behind { scheduled } else { sent };
                    samples.push((
                        done.duration_since(from).as_micros() as u32,
                        done.duration_since(sent).as_micros() as u32,
                    ));
                } else {
                    errors += 1;
                }
            }
            Err(_) => {
                errors += 1;
                stream = connect(addr);
            }
        }
    }
    (samples, errors)
}

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).ok();
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    stream
}

/// Sends one request and reads one response; Ok(true) when it was a 200.
fn exchange(stream: &mut TcpStream, request: &[u8], buf: &mut [u8]) -> std::io::Result<bool> {
    stream.write_all(request)?;
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
        let Some(head_end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") else {
            if filled == buf.len() {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
            continue;
        };
        let head = std::str::from_utf8(&buf[..head_end]).unwrap_or("");
        let length: usize = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        let ok = head.starts_with("HTTP/1.1 200");
        let mut have = filled - head_end - 4;
        while have < length {
            let n = stream.read(buf)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            have += n;
        }
        return Ok(ok);
    }
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        eprintln!("usage: fixed_rate ADDR RATE SECONDS CONNECTIONS PATH [HEADER ...]");
        std::process::exit(2);
    }
    let addr = args[0].clone();
    let rate: f64 = args[1].parse().expect("RATE");
    let seconds: f64 = args[2].parse().expect("SECONDS");
    let conns: u32 = args[3].parse().expect("CONNECTIONS");
    let mut request = format!("GET {} HTTP/1.1\r\nHost: {}\r\n", args[4], addr);
    for h in &args[5..] {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");

    let interval = Duration::from_secs_f64(conns as f64 / rate);
    // Connections open during the first 200 ms; the schedule starts after.
    let start = Instant::now() + Duration::from_millis(200);
    let end = start + Duration::from_secs_f64(seconds);
    let threads: Vec<_> = (0..conns)
        .map(|i| {
            let (addr, request) = (addr.clone(), request.clone());
            let first = start + interval.mul_f64(i as f64 / conns as f64);
            std::thread::spawn(move || connection(&addr, request.as_bytes(), first, interval, end))
        })
        .collect();
    let (mut latency, mut service, mut errors) = (Vec::new(), Vec::new(), 0);
    for t in threads {
        let (samples, e) = t.join().expect("thread");
        errors += e;
        latency.extend(samples.iter().map(|s| s.0));
        service.extend(samples.iter().map(|s| s.1));
    }
    latency.sort_unstable();
    service.sort_unstable();
    let n = latency.len();
    println!(
        "target_rate={rate} achieved_rate={:.0} requests={n} errors={errors} \
         p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={:.3} \
         service_p50_ms={:.3} service_p99_ms={:.3}",
        n as f64 / seconds,
        pct(&latency, 0.50),
        pct(&latency, 0.99),
        pct(&latency, 0.999),
        pct(&latency, 1.0),
        pct(&service, 0.50),
        pct(&service, 0.99),
    );
}
