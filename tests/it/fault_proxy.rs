//! The fault proxy of [`crate::support::faults`] checked against a loopback
//! echo server, so a fault test that passes does so because the fault was
//! really made: every mode, switched on a live connection.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::faults::{Fault, FaultProxy};

/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);
/// Bound on anything that should arrive.
const ARRIVE: Duration = Duration::from_secs(5);

/// An echo server on 127.0.0.1:0 (ends with the test's runtime).
async fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = stream.read(&mut buf).await {
                    if stream.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Reads exactly `n` bytes within [`ARRIVE`].
async fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(ARRIVE, stream.read_exact(&mut buf))
        .await
        .expect("bytes within the bound")
        .expect("read");
    buf
}

/// Whether nothing at all (no byte, no close) arrives for [`QUIET`].
async fn quiet(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    tokio::time::timeout(QUIET, stream.read(&mut buf))
        .await
        .is_err()
}

#[tokio::test]
async fn every_fault_mode_does_what_it_says() {
    let proxy = FaultProxy::start(echo().await, 8).await;
    let mut a = TcpStream::connect(proxy.addr).await.unwrap();
    a.write_all(b"ping").await.unwrap();
    assert_eq!(read_n(&mut a, 4).await, b"ping", "pass-through");

    proxy.set(Fault::Delay(150));
    let started = Instant::now();
    a.write_all(b"slow").await.unwrap();
    assert_eq!(read_n(&mut a, 4).await, b"slow");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "delayed both ways"
    );

    proxy.set(Fault::Pause);
    a.write_all(b"held").await.unwrap();
    assert!(quiet(&mut a).await, "paused: nothing comes back");
    proxy.set(Fault::Pass);
    assert_eq!(
        read_n(&mut a, 4).await,
        b"held",
        "delivered after the pause"
    );

    proxy.set(Fault::BlackHole);
    let mut b = TcpStream::connect(proxy.addr)
        .await
        .expect("a black hole accepts");
    b.write_all(b"void").await.unwrap();
    a.write_all(b"dark").await.unwrap();
    assert!(quiet(&mut b).await, "black hole: no answer, no close");
    assert!(quiet(&mut a).await, "black hole: existing connections too");
    proxy.set(Fault::Pass);
    assert_eq!(
        read_n(&mut b, 4).await,
        b"void",
        "what it read is delivered"
    );
    assert_eq!(read_n(&mut a, 4).await, b"dark");

    proxy.set(Fault::CloseAfter(3));
    let mut c = TcpStream::connect(proxy.addr).await.unwrap();
    c.write_all(b"hello").await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(ARRIVE, c.read_to_end(&mut got))
        .await
        .expect("closed within the bound")
        .expect("a plain close");
    assert_eq!(got, b"hel", "the first 3 bytes of the answer, then the end");

    proxy.set(Fault::Reset);
    let mut buf = [0u8; 4];
    let existing = tokio::time::timeout(ARRIVE, a.read(&mut buf))
        .await
        .unwrap();
    assert_eq!(
        existing.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "an existing connection is reset"
    );
    let mut d = TcpStream::connect(proxy.addr).await.unwrap();
    let new = tokio::time::timeout(ARRIVE, d.read(&mut buf))
        .await
        .unwrap();
    assert_eq!(
        new.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset)
    );
}

#[tokio::test]
async fn the_proxy_holds_at_most_its_bound_and_ends_with_its_owner() {
    let proxy = FaultProxy::start(echo().await, 2).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(b"x").await.unwrap();
        assert_eq!(read_n(&mut s, 1).await, b"x");
        held.push(s);
    }
    let mut over = TcpStream::connect(proxy.addr).await.unwrap();
    let mut buf = [0u8; 1];
    let _ = over.write_all(b"x").await;
    let answer = tokio::time::timeout(ARRIVE, over.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(answer, Ok(0) | Err(_)),
        "over the bound: closed, {answer:?}"
    );
    let addr = proxy.addr;
    drop(proxy);
    for mut s in held {
        let end = tokio::time::timeout(ARRIVE, s.read(&mut buf)).await;
        assert!(
            matches!(end, Ok(Ok(0) | Err(_))),
            "a connection outlived the proxy: {end:?}"
        );
    }
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is gone"
    );
}
