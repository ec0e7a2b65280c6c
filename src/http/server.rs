//! The accept loop: one task per connection, hyper-util's auto builder
//! (HTTP/1.1 and h2c), timeouts and header caps on every socket, a cap per
//! peer address, an idle timeout for both protocols ([`super::conn`]), and
//! graceful shutdown with a grace period.
//!
//! `run` takes an already bound listener and a shutdown future, so tests bind
//! `127.0.0.1:0` and stop the server when they are done.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::conn::{self, Activity, AddressSlot, PerAddress};
use super::listener::Role;
use crate::http::state::AppState;
use crate::http::{grpc, router};
use http_body_util::Either;

/// Serves until `shutdown` resolves, then gives in-flight connections the
/// configured grace period.
pub async fn run(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()>) {
    let builder = connection_builder(&state);
    let limits = &state.settings.server;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = PerAddress::new(
        limits.max_connections_per_ip,
        state.settings.ipv6_prefix,
        state.settings.trusted_proxies.clone(),
    );
    // Connection tasks watch `closing`, and each holds a `done` sender: when
    // every sender is gone, every connection has ended (mini-redis's idiom).
    let (closing_tx, closing) = watch::channel(false);
    let (done, mut all_done) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        // Past max_connections new peers wait in the kernel's accept queue.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // EMFILE and friends: the loop must outlive them.
                    tracing::warn!(error = %err, "accept failed; backing off");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // One host cannot take every slot: past its cap, closed at once.
        let Some(slot) = per_address.admit(peer.ip()) else {
            state.metrics.connections_refused_total.inc();
            tracing::debug!(%peer, "connection refused: max_connections_per_ip reached");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let held = Held {
            _permit: permit,
            _slot: slot,
            _done: done.clone(),
        };
        serve(&builder, &state, stream, peer, closing.clone(), held);
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    let _ = closing_tx.send(true);
    drop(done);
    tokio::select! {
        _ = all_done.recv() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(state.settings.server.shutdown_grace) => {
            tracing::warn!("grace period over; closing remaining connections");
        }
    }
}

/// What a connection holds until it ends: its global slot, its address's
/// slot, and its part in the shutdown count.
struct Held {
    _permit: OwnedSemaphorePermit,
    _slot: AddressSlot,
    _done: mpsc::Sender<()>,
}

/// Spawns one connection's task: served until it ends, until it has been
/// idle for `header_read_timeout`, or until shutdown; the last two close it
/// gracefully, and a peer that does not go within a further timeout is cut.
fn serve(
    builder: &auto::Builder<TokioExecutor>,
    state: &AppState,
    stream: TcpStream,
    peer: SocketAddr,
    mut closing: watch::Receiver<bool>,
    held: Held,
) {
    let activity = Arc::new(Activity::default());
    let service = service_fn({
        let state = state.clone();
        let activity = activity.clone();
        move |request| {
            let state = state.clone();
            let busy = activity.begin();
            // Boxed: hyper moves a request's future several times (an
            // HTTP/2 stream's into a task of its own, which tokio moves into
            // the task's cell and through its stage at the end), and at ~6
            // KB (admission, the forward and the answer nested) those copies
            // cost more than the one into a box (docs/benchmarks.md, issue 13).
            Box::pin(async move {
                // The gRPC listener answers gRPC, through the ingest route.
                let response = match state.role() {
                    Role::Grpc => grpc::handle(&state, request, peer.ip())
                        .await
                        .map(Either::Right),
                    _ => router::route(state, request, peer.ip())
                        .await
                        .map(Either::Left),
                };
                drop(busy);
                Ok::<_, Infallible>(response)
            })
        }
    });
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .into_owned();
    let idle_timeout = state.settings.server.header_read_timeout;
    tokio::spawn(async move {
        let _held = held;
        tokio::pin!(connection);
        let idle = tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                }
                return;
            }
            () = conn::idle(&activity, idle_timeout) => true,
            _ = closing.changed() => false,
        };
        tracing::debug!(%peer, idle, "closing the connection gracefully");
        connection.as_mut().graceful_shutdown();
        // Idle, nothing is in flight, so this is quick; a peer that holds on
        // is cut after one more timeout. At shutdown the run loop's grace
        // period bounds the wait.
        let result = if idle {
            match tokio::time::timeout(idle_timeout, connection).await {
                Ok(result) => result,
                Err(_) => return,
            }
        } else {
            connection.await
        };
        if let Err(err) = result {
            tracing::debug!(%peer, error = %err, "connection ended with an error");
        }
    });
}

fn connection_builder(state: &AppState) -> auto::Builder<TokioExecutor> {
    let limits = &state.settings.server;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // header_read_timeout is silently off without a timer: set both.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes as u32)
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(limits.header_read_timeout);
    builder
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
