//! A fault-injecting TCP proxy on 127.0.0.1:0 in front of a real server
//! (Redis, a collector), for the fault tests (issue 12, "Faults"): the
//! kernels here have no `tc netem`, so the faults are made in user space.
//!
//! The [`Fault`] is switched at run time and applies to new and existing
//! connections alike. The proxy is bounded: at most `max_connections` at
//! once (more are accepted and closed at once), and every task it started
//! ends when it is dropped (the accept task is aborted, it owns the
//! connections' `JoinSet`, and each connection also ends when the mode
//! channel closes).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Connecting to the upstream may take this long (loopback: it is there or
/// it is not).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes read per chunk, each way.
const CHUNK: usize = 16 * 1024;
/// Most bytes a black hole reads from one connection before it stops
/// reading (the client's writes then wait, as on a full socket buffer).
const MAX_HELD: usize = 1024 * 1024;

/// What the proxy does to traffic, switched with [`FaultProxy::set`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways, untouched.
    Pass,
    /// Accept, but forward nothing either way until the mode changes
    /// (bytes wait in the kernel buffers).
    Pause,
    /// Forward, holding each chunk this many milliseconds first.
    Delay(u64),
    /// Accept and read, never answer, never close: a peer that went silent
    /// (a hung server, a partition), not a refusal. What it read is
    /// delivered, in order, when the mode changes back (as TCP would on a
    /// healed path): a stream never loses bytes from its middle.
    BlackHole,
    /// Close new and existing connections with a TCP RST.
    Reset,
    /// Forward the request, and the first `K` bytes of the upstream's
    /// answer on each connection, then close it.
    CloseAfter(usize),
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Fault>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1:0 in front of `upstream`, passing traffic
    /// through, with at most `max_connections` connections at once.
    pub async fn start(upstream: SocketAddr, max_connections: usize) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy");
        let addr = listener.local_addr().expect("fault proxy address");
        let (mode, rx) = watch::channel(Fault::Pass);
        let slots = Arc::new(Semaphore::new(max_connections));
        let accept = tokio::spawn(accept_loop(listener, upstream, rx, slots));
        FaultProxy { addr, mode, accept }
    }

    /// Switches every connection, new and existing, to `fault`.
    pub fn set(&self, fault: Fault) {
        self.mode.send_replace(fault);
    }

    /// `127.0.0.1:PORT` of the proxy, for a URL.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Dropping the accept task drops its JoinSet, which aborts every
        // connection task; the closed channel ends any that is mid-poll.
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mode: watch::Receiver<Fault>,
    slots: Arc<Semaphore>,
) {
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connections so the set stays as small as the bound.
        while connections.try_join_next().is_some() {}
        let Ok((client, _)) = listener.accept().await else {
            // An accept error (e.g. out of descriptors) must not spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Over the bound: closed at once.
            drop(client);
            continue;
        };
        let mode = mode.clone();
        connections.spawn(async move {
            let _permit = permit;
            serve(client, upstream, mode).await;
        });
    }
}

/// Closes `stream` with a RST rather than a FIN.
fn reset(stream: TcpStream) {
    // SO_LINGER 0 never blocks on close: it discards and resets.
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// One client connection, until either side closes, the mode resets or
/// cuts it, or the proxy is dropped.
async fn serve(mut client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Fault>) {
    // What a black hole read and has not delivered: a stream never loses
    // bytes in its middle, so they go to the upstream first when it heals
    // (as a stopped server reads its buffer when it resumes).
    let mut held = Vec::new();
    let mut server: Option<TcpStream> = None;
    let (mut up, mut down) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    // Bytes of the answer forwarded so far (for `CloseAfter`).
    let mut answered = 0usize;
    loop {
        let fault = *mode.borrow_and_update();
        match fault {
            Fault::Reset => {
                if let Some(server) = server {
                    reset(server);
                }
                return reset(client);
            }
            Fault::BlackHole | Fault::Pause => {
                // A connection opened now reaches the upstream only later.
                if !hold(&mut client, &mut held, &mut mode).await {
                    return;
                }
                continue;
            }
            Fault::Pass | Fault::Delay(_) | Fault::CloseAfter(_) => {}
        }
        let server = match server.as_mut() {
            Some(server) => server,
            None => {
                let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream));
                let Ok(Ok(stream)) = connect.await else {
                    return reset(client);
                };
                let _ = stream.set_nodelay(true);
                let _ = client.set_nodelay(true);
                server.insert(stream)
            }
        };
        if !held.is_empty() {
            if server.write_all(&held).await.is_err() {
                return;
            }
            held = Vec::new();
        }
        let delay = match fault {
            Fault::Delay(ms) => Duration::from_millis(ms),
            _ => Duration::ZERO,
        };
        tokio::select! {
            read = client.read(&mut up) => {
                let n = match read { Ok(n) if n > 0 => n, _ => return };
                tokio::time::sleep(delay).await;
                if server.write_all(&up[..n]).await.is_err() {
                    return;
                }
            }
            read = server.read(&mut down) => {
                let n = match read { Ok(n) if n > 0 => n, _ => return };
                tokio::time::sleep(delay).await;
                let allowed = match fault {
                    Fault::CloseAfter(k) => n.min(k.saturating_sub(answered)),
                    _ => n,
                };
                if client.write_all(&down[..allowed]).await.is_err() {
                    return;
                }
                answered += allowed;
                if allowed < n {
                    // Cut mid-answer: a plain close, as a crashing peer's
                    // kernel would send it.
                    let _ = client.flush().await;
                    return;
                }
            }
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// While the mode is `BlackHole` or `Pause`. A black hole reads what the
/// client sends into `held` (up to [`MAX_HELD`], then it stops reading, as
/// a full kernel buffer would); a pause reads nothing. Returns true when
/// the mode changes, false when the client closed or the proxy is gone.
async fn hold(
    client: &mut TcpStream,
    held: &mut Vec<u8>,
    mode: &mut watch::Receiver<Fault>,
) -> bool {
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let swallow = *mode.borrow() == Fault::BlackHole && held.len() < MAX_HELD;
        tokio::select! {
            read = client.read(&mut chunk), if swallow => {
                match read {
                    Ok(n) if n > 0 => held.extend_from_slice(&chunk[..n]),
                    _ => return false,
                }
            }
            changed = mode.changed() => return changed.is_ok(),
        }
    }
}
