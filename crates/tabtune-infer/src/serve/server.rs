//! Running the app: our own accept loop over hyper's HTTP/1 connections, so that every
//! connection is bounded (axum's `serve` has no timeouts or connection cap: idle connections,
//! one header byte every 5 s and idle keep-alive all stayed open, and ~1,100 idle connections
//! exhausted the file descriptors until `/health` timed out).
//!
//! - At most `max_connections` connections. At the limit a new connection closes the one idle
//!   the longest (no request in progress, so nothing is lost: a keep-alive connection, or one
//!   still sending its headers); when every connection is busy the new one gets a 503 (JSON)
//!   and is closed.
//! - `idle_timeout`: a connection with no request in progress that receives nothing for this
//!   long is closed; `header_timeout`: once a request's first byte arrives its headers must be
//!   complete within this; `body_timeout` (in the app): the body must arrive within this.
//! - Shutdown stops accepting, lets requests in progress finish for `shutdown_timeout`, then
//!   closes what is left and returns, even if a prediction still runs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot, watch};
use tower_service::Service as _;

use super::app::app;
use super::state::{AppState, ServeOptions};

/// A running server on its own thread and runtime.
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    connections: Arc<Connections>,
}

/// The warning for a server reachable from other machines with its admin and monitoring
/// routes open (no token), or `None`.
pub fn exposure_warning(addr: SocketAddr, has_token: bool) -> Option<String> {
    (!addr.ip().is_loopback() && !has_token).then(|| {
        format!(
            "listening on {addr}, reachable from other machines, without a token: anyone who can \
             reach it can reload the model and read the monitoring reports; set \
             TABTUNE_API_TOKEN (--token) or bind 127.0.0.1"
        )
    })
}

impl Server {
    /// Binds `addr` (port 0: any free port) and serves `state` on a background thread with
    /// `threads` runtime workers. Warns (a `tracing` warning) when `addr` is not a loopback
    /// address and no token guards the admin and monitoring routes. Fixes glibc's mmap
    /// threshold so freed request bodies go back to the kernel (`serve/memory.rs`).
    pub fn start(state: AppState, addr: SocketAddr, threads: usize) -> std::io::Result<Self> {
        let options = state.options;
        options
            .check()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        super::memory::return_large_buffers();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .enable_all()
            .build()?;
        let listener = runtime.block_on(TcpListener::bind(addr))?;
        let addr = listener.local_addr()?;
        if let Some(warning) = exposure_warning(addr, state.token().is_some()) {
            tracing::warn!("{warning}");
        }
        let router = app(state);
        let connections = Arc::new(Connections::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let conns = connections.clone();
        let thread = std::thread::Builder::new()
            .name("tabtune-serve".into())
            .spawn(move || {
                let result =
                    runtime.block_on(accept_loop(listener, router, options, conns, stopped));
                // A prediction still running on the blocking pool must not hold the process.
                runtime.shutdown_timeout(Duration::from_secs(1));
                result
            })?;
        Ok(Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
            connections,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.connections.len()
    }

    /// Stops accepting, lets in-flight requests finish (at most `shutdown_timeout`), and waits
    /// for the server thread.
    pub fn stop(mut self) -> std::io::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the server thread panicked"))),
            None => Ok(()),
        }
    }

    /// Serves until Ctrl-C (SIGINT) or SIGTERM, then stops gracefully.
    pub fn run_until_signal(mut self) -> std::io::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            #[cfg(not(unix))]
            ctrl_c.await?;
            Ok::<(), std::io::Error>(())
        })?;
        self.shutdown()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Milliseconds since the server started (an atomic clock for the connections' timestamps).
fn now_ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

/// No byte received since the connection went idle.
const NOTHING: u64 = u64::MAX;

/// One open connection.
struct Conn {
    /// Requests in progress (headers read, answer not yet produced).
    busy: AtomicUsize,
    /// When it last became idle (accepted, or an answer produced), ms since start.
    idle_since: AtomicU64,
    /// When the first byte after becoming idle arrived (a request's headers started), or
    /// [`NOTHING`].
    first_byte: AtomicU64,
    /// Closes the connection (idle eviction).
    evict: Notify,
}

/// The open connections.
#[derive(Default)]
struct Connections {
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    next: AtomicU64,
}

impl Connections {
    fn len(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Registers a connection unless `max` are open and none of them is idle to close.
    fn admit(&self, max: usize, now: u64) -> Option<(u64, Arc<Conn>)> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.len() >= max {
            // Close the connection idle the longest; it leaves the map when its task ends.
            let victim = open
                .iter()
                .filter(|(_, c)| c.busy.load(Ordering::Acquire) == 0)
                .min_by_key(|(_, c)| c.idle_since.load(Ordering::Relaxed))
                .map(|(id, c)| (*id, c.clone()))?;
            open.remove(&victim.0);
            victim.1.evict.notify_one();
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(now),
            first_byte: AtomicU64::new(NOTHING),
            evict: Notify::new(),
        });
        open.insert(id, conn.clone());
        Some((id, conn))
    }

    fn remove(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }
}

/// A TCP stream that notes when bytes arrive (for the header timeout).
struct Tracked {
    stream: TcpStream,
    conn: Arc<Conn>,
    start: Instant,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before && self.conn.busy.load(Ordering::Acquire) == 0 {
            let now = now_ms(self.start);
            let _ = self.conn.first_byte.compare_exchange(
                NOTHING,
                now,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Marks a request in progress on its connection until dropped.
struct Busy {
    conn: Arc<Conn>,
    start: Instant,
}

impl Busy {
    fn new(conn: Arc<Conn>, start: Instant) -> Self {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        conn.first_byte.store(NOTHING, Ordering::Release);
        Self { conn, start }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conn
            .idle_since
            .store(now_ms(self.start), Ordering::Relaxed);
        self.conn.first_byte.store(NOTHING, Ordering::Release);
        self.conn.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// 503 for a connection over the limit, written without waiting, then closed.
fn refuse(stream: &TcpStream, max: usize) {
    let body = format!(
        "{{\"error\":\"the server has {max} open connections, all busy (its --max-connections); retry shortly\"}}"
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(response.as_bytes());
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    connections: Arc<Connections>,
    mut stop: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let start = Instant::now();
    let (closing, _) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => accepted,
            // Reap finished connection tasks as they end.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors (or a connection reset before it was accepted): wait a
                // little instead of spinning, then go on.
                tracing::warn!("accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Some((id, conn)) = connections.admit(options.max_connections, now_ms(start)) else {
            refuse(&stream, options.max_connections);
            continue;
        };
        tasks.spawn(connection(
            Tracked {
                stream,
                conn: conn.clone(),
                start,
            },
            router.clone(),
            options,
            closing.subscribe(),
            (id, connections.clone()),
        ));
    }
    // Stop accepting; idle connections close at once, busy ones after their answer.
    drop(listener);
    let _ = closing.send(true);
    let drained = tokio::time::timeout(options.shutdown_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "{} connection(s) still busy after {:?}; closing them",
            tasks.len(),
            options.shutdown_timeout
        );
        tasks.abort_all();
    }
    Ok(())
}

/// Serves one connection until it ends, times out, is evicted, or the server stops.
async fn connection(
    io: Tracked,
    router: Router,
    options: ServeOptions,
    mut closing: watch::Receiver<bool>,
    (id, connections): (u64, Arc<Connections>),
) {
    let conn = io.conn.clone();
    let start = io.start;
    let service_conn = conn.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let busy = Busy::new(service_conn.clone(), start);
        let mut router = router.clone();
        async move {
            let response = router.call(request).await;
            drop(busy);
            response
        }
    });
    let http = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // Our own header and idle timers below, which tell idle from slow.
        .header_read_timeout(None)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(http);
    let tick = (options.header_timeout.min(options.idle_timeout) / 4)
        .clamp(Duration::from_millis(5), Duration::from_millis(500));
    let mut ticker = tokio::time::interval(tick);
    let mut shutting_down = false;
    loop {
        tokio::select! {
            result = http.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("connection closed: {e}");
                }
                break;
            }
            () = conn.evict.notified() => {
                tracing::debug!("connection closed to admit a new one (the idle one at --max-connections)");
                break;
            }
            changed = closing.changed(), if !shutting_down => {
                shutting_down = true;
                if changed.is_ok() {
                    http.as_mut().graceful_shutdown();
                }
            }
            _ = ticker.tick() => {
                if conn.busy.load(Ordering::Acquire) > 0 {
                    continue;
                }
                let now = now_ms(start);
                let first = conn.first_byte.load(Ordering::Acquire);
                let expired = if first == NOTHING {
                    let idle = conn.idle_since.load(Ordering::Relaxed);
                    now.saturating_sub(idle) >= options.idle_timeout.as_millis() as u64
                } else {
                    now.saturating_sub(first) >= options.header_timeout.as_millis() as u64
                };
                if expired {
                    tracing::debug!("connection closed: idle or headers too slow");
                    break;
                }
            }
        }
    }
    connections.remove(id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_is_warned_only_without_a_token_off_loopback() {
        let local = SocketAddr::from(([127, 0, 0, 1], 8080));
        let any = SocketAddr::from(([0, 0, 0, 0], 8080));
        assert_eq!(exposure_warning(local, false), None);
        assert_eq!(exposure_warning(any, true), None);
        let w = exposure_warning(any, false).expect("warned");
        assert!(
            w.contains("0.0.0.0:8080") && w.contains("TABTUNE_API_TOKEN"),
            "{w}"
        );
        let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 80));
        assert_eq!(exposure_warning(v6, false), None);
    }

    #[test]
    fn at_the_cap_the_longest_idle_connection_makes_room_and_busy_ones_never_do() {
        let c = Connections::default();
        let (a, conn_a) = c.admit(2, 10).expect("room");
        let (_b, conn_b) = c.admit(2, 20).expect("room");
        conn_b.busy.fetch_add(1, Ordering::AcqRel);
        // Full: a (idle since 10) makes room, b is busy.
        let (_c3, _) = c.admit(2, 30).expect("a is evicted");
        assert!(!c.open.lock().expect("lock").contains_key(&a));
        assert_eq!(c.len(), 2);
        drop(conn_a);
        // Now b (busy) and c3 (idle since 30): c3 goes.
        let (_d, conn_d) = c.admit(2, 40).expect("c3 is evicted");
        conn_d.busy.fetch_add(1, Ordering::AcqRel);
        assert!(c.admit(2, 50).is_none(), "every connection is busy");
    }
}
