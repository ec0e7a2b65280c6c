//! Loopback ports for child processes (rotel panics on port 0, so children
//! are given real ports; in-process servers bind 127.0.0.1:0 themselves).
//!
//! All the tests share one process, so while one test hands a port to a
//! child that has not bound it yet, another may be binding 127.0.0.1:0 or
//! connecting out. Ports the kernel hands out for those come from its
//! ephemeral range (`net.ipv4.ip_local_port_range`), so children get ports
//! from just below it, where the kernel never picks one by itself; each is
//! checked free by binding it, and none is given out twice by this process.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Ports are taken from `[FLOOR, start of the ephemeral range)`.
const FLOOR: u16 = 20_000;
/// Linux's default ephemeral range starts here.
const DEFAULT_EPHEMERAL_START: u16 = 32_768;
/// Ports tried before giving up.
const TRIES: usize = 512;

/// A free 127.0.0.1 port that nobody else in this test binary was given and
/// that no `bind(0)` or outgoing connection of it can take meanwhile.
/// Another process could still bind it before the child does.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().expect("port set lock");
    let end = ephemeral_start();
    if end <= FLOOR + TRIES as u16 {
        return kernel_port(&mut given);
    }
    let span = usize::from(end - FLOOR);
    // Start where another test process on the machine is unlikely to.
    let start = (std::process::id() as usize * 7_919 + nanos()) % span;
    for i in 0..TRIES {
        let port = FLOOR + ((start + i) % span) as u16;
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free loopback port in {FLOOR}..{end} after {TRIES} tries");
}

/// Where the kernel's ephemeral range starts (its default where unreadable).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_START)
}

/// The kernel's pick (bind to port 0), for a machine whose ephemeral range
/// leaves no room below it.
fn kernel_port(given: &mut BTreeSet<u16>) -> u16 {
    for _ in 0..64 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        if given.insert(port) {
            return port;
        }
    }
    panic!("no fresh loopback port after 64 tries");
}

fn nanos() -> usize {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as usize)
}
