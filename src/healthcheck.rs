//! `telegate healthcheck`: the container's `HEALTHCHECK`, for images with no
//! shell or curl (distroless). One `GET /health` over a plain `TcpStream`
//! to the address the config listens on (an unspecified address such as
//! `0.0.0.0` is asked on loopback), exit 0 when it answers 200
//! `{"status":"healthy"}`, 1 otherwise. Bounded by a timeout end to end.
//! With `ops_listen` set both listeners are asked, each within the timeout:
//! the process is healthy when the clients' and the operators' side answer.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::config::{self, ConfigSource};
use crate::env::Env;

/// Most bytes read from the answer: `/health` is a few dozen.
const MAX_ANSWER: usize = 4096;

/// Where to ask: the listen address, with an unspecified IP turned into
/// loopback of the same family.
pub fn target(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `GET /health` at `addr`: `Ok` for a 200 whose body says healthy.
pub fn check(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("no answer from {addr} within {timeout:?}"))
    };
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|err| format!("cannot connect to {addr}: {err}"))?;
    stream
        .set_write_timeout(Some(left()?))
        .map_err(|err| err.to_string())?;
    let request = format!(
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: telegate-healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|err| format!("cannot send to {addr}: {err}"))?;
    let mut answer = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while answer.len() < MAX_ANSWER {
        stream
            .set_read_timeout(Some(left()?))
            .map_err(|err| err.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(err) => return Err(format!("reading from {addr}: {err}")),
        }
    }
    judge(&String::from_utf8_lossy(&answer))
}

/// A 200 status line and a body that says healthy.
fn judge(answer: &str) -> Result<(), String> {
    let status_line = answer.lines().next().unwrap_or_default();
    let status = status_line.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        return Err(format!("unhealthy: {status_line:?}"));
    }
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    if !body.contains("\"healthy\"") {
        return Err(format!("unexpected /health body: {body:?}"));
    }
    Ok(())
}

/// The subcommand: `--addr` when given, else the config's `listen` and,
/// when set, its `ops_listen`.
pub fn run(
    source: &ConfigSource,
    env: &dyn Env,
    addr: Option<SocketAddr>,
    timeout: Duration,
) -> ExitCode {
    let addrs = match addr {
        Some(addr) => vec![addr],
        None => match config::load(source, env) {
            Ok(settings) => std::iter::once(settings.listen)
                .chain(settings.ops_listen)
                .map(target)
                .collect(),
            Err(err) => {
                eprintln!("telegate healthcheck: invalid configuration: {err}");
                return ExitCode::FAILURE;
            }
        },
    };
    for addr in addrs {
        match check(addr, timeout) {
            Ok(()) => println!("healthy: {addr}"),
            Err(message) => {
                eprintln!("telegate healthcheck: {message}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_listen_addresses_are_asked_on_loopback() {
        let t = |s: &str| target(s.parse().unwrap()).to_string();
        assert_eq!(t("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(t("[::]:8080"), "[::1]:8080");
        assert_eq!(t("10.1.2.3:9000"), "10.1.2.3:9000");
    }

    #[test]
    fn only_a_healthy_200_passes() {
        let ok =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"status\":\"healthy\"}";
        assert_eq!(judge(ok), Ok(()));
        assert!(judge("HTTP/1.1 503 Service Unavailable\r\n\r\n{}").is_err());
        assert!(judge("HTTP/1.1 200 OK\r\n\r\n{\"status\":\"starting\"}").is_err());
        assert!(judge("").is_err());
        assert!(judge("garbage").is_err());
    }

    #[test]
    fn a_closed_port_fails_fast() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let started = Instant::now();
        assert!(check(addr, Duration::from_secs(2)).is_err());
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn a_silent_server_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let started = Instant::now();
        let result = check(addr, Duration::from_millis(300));
        assert!(result.is_err(), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(listener);
    }
}
