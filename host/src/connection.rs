//! One client connection: what it has been doing (for closing it gracefully when it
//! has been idle too long, and cutting it off when its client stopped reading), and
//! the caps on how many may be open, in all and from one client address.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the idle and slow-reader checks need to know of a connection.
#[derive(Debug)]
pub struct Activity {
    born: Instant,
    last_io_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// When a write last found the client's socket full and nothing has been written
    /// since (milliseconds since `born`, plus one; 0: writes are not blocked).
    blocked_since_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            born: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            blocked_since_ms: AtomicU64::new(0),
        }
    }
}

impl Activity {
    fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Notes how a write went: progress clears a block, a full socket starts one.
    fn wrote<T>(&self, polled: &Poll<io::Result<T>>) {
        match polled {
            Poll::Ready(_) => {
                self.touch();
                self.blocked_since_ms.store(0, Ordering::Relaxed);
            }
            Poll::Pending => {
                let now = self.now_ms() + 1;
                let _ = self.blocked_since_ms.compare_exchange(
                    0,
                    now,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// Whether the gateway has been unable to write anything to the client for
    /// `limit`: the client stopped reading.
    pub fn write_blocked_for(&self, limit: Duration) -> bool {
        match self.blocked_since_ms.load(Ordering::Relaxed) {
            0 => false,
            since => self.now_ms() + 1 - since >= limit.as_millis() as u64,
        }
    }

    /// Marks a request in flight until the guard is dropped.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Whether a request is being served.
    pub fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    /// Whether nothing happened on the connection for `limit`.
    pub fn idle_for(&self, limit: Duration) -> bool {
        let now = self.born.elapsed().as_millis() as u64;
        self.in_flight.load(Ordering::Relaxed) == 0
            && now.saturating_sub(self.last_io_ms.load(Ordering::Relaxed))
                >= limit.as_millis() as u64
    }
}

/// Requests a client cancelled on one connection (an HTTP/2 `RST_STREAM` before the
/// response, or a connection closed mid-request), counted per 10-second window. Over
/// the limit the connection is to be closed: a rapid-reset flood (CVE-2023-44487)
/// makes the gateway start work for each stream it then cancels, so it must cost the
/// attacker its connection soon.
pub struct Cancels {
    born: Instant,
    limit: u32,
    window_start_ms: AtomicU64,
    count: std::sync::atomic::AtomicU32,
    exceeded: tokio::sync::Notify,
    counted: Counter,
    cut: std::sync::atomic::AtomicBool,
}

/// The window over which [`Cancels`] counts.
const CANCEL_WINDOW_MS: u64 = 10_000;

impl Cancels {
    /// Counts against `limit` cancellations per 10 seconds, each also into `counted`
    /// (the gateway-wide `wasmgate_requests_cancelled_total`).
    pub fn new(limit: u32, counted: Counter) -> Arc<Self> {
        Arc::new(Self {
            born: Instant::now(),
            limit,
            window_start_ms: AtomicU64::new(0),
            count: std::sync::atomic::AtomicU32::new(0),
            exceeded: tokio::sync::Notify::new(),
            counted,
            cut: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The gateway is cutting the connection itself: the requests it drops from now
    /// on were not cancelled by the client, and are not counted.
    pub fn cut_by_gateway(&self) {
        self.cut.store(true, Ordering::Relaxed);
    }

    /// Watches one request: unless [`Watch::finish`] is called, dropping the watch
    /// counts a cancellation.
    pub fn watch(self: &Arc<Self>) -> Watch {
        Watch(Some(self.clone()))
    }

    fn cancelled(&self) {
        if self.cut.load(Ordering::Relaxed) {
            return;
        }
        self.counted.inc();
        let now = self.born.elapsed().as_millis() as u64;
        let start = self.window_start_ms.load(Ordering::Relaxed);
        if now.saturating_sub(start) >= CANCEL_WINDOW_MS
            && self
                .window_start_ms
                .compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.count.store(0, Ordering::Relaxed);
        }
        if self.count.fetch_add(1, Ordering::Relaxed) + 1 > self.limit {
            self.exceeded.notify_one();
        }
    }

    /// Completes once the client has cancelled more than the limit in one window.
    pub async fn exceeded(&self) {
        self.exceeded.notified().await;
    }
}

/// One request watched by [`Cancels`].
pub struct Watch(Option<Arc<Cancels>>);

impl Watch {
    /// The request was answered: not a cancellation.
    pub fn finish(mut self) {
        self.0 = None;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(cancels) = self.0.take() {
            cancels.cancelled();
        }
    }
}

/// A request in flight on a connection.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A connection that records when bytes move.
pub struct ActivityIo<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> ActivityIo<T> {
    /// Wraps `inner`, recording into `activity`.
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ActivityIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if polled.is_ready() {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ActivityIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.activity.wrote(&polled);
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.activity.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` are open.
    Total,
    /// `max_connections_per_client` are open from the client's address.
    PerClient,
}

impl Refusal {
    /// The `reason` label of `wasmgate_connections_refused_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Total => "max_connections",
            Self::PerClient => "per_client",
        }
    }
}

/// The caps on open client connections: in all, and per client IP address.
#[derive(Debug)]
pub struct ConnectionLimits {
    max: usize,
    per_client: usize,
    open: AtomicUsize,
    by_client: Mutex<HashMap<IpAddr, usize>>,
}

impl ConnectionLimits {
    /// At most `max` connections, and `per_client` from one address (0: no cap).
    pub fn new(max: usize, per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            per_client,
            open: AtomicUsize::new(0),
            by_client: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a place for a connection from `client`, kept until the guard is dropped.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Admitted, Refusal> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Total);
        }
        let client = client.to_canonical();
        if self.per_client > 0 {
            let mut by_client = self.by_client.lock().expect("connection limits lock");
            let count = by_client.entry(client).or_insert(0);
            if *count >= self.per_client {
                drop(by_client);
                self.open.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::PerClient);
            }
            *count += 1;
        }
        Ok(Admitted {
            limits: self.clone(),
            client,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// A connection's place under the [`ConnectionLimits`]; given back when dropped.
#[derive(Debug)]
pub struct Admitted {
    limits: Arc<ConnectionLimits>,
    client: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if self.limits.per_client > 0 {
            let mut by_client = self
                .limits
                .by_client
                .lock()
                .expect("connection limits lock");
            if let Some(count) = by_client.get_mut(&self.client) {
                *count -= 1;
                if *count == 0 {
                    by_client.remove(&self.client);
                }
            }
        }
        self.limits.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_in_all_and_per_client() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let first = limits.admit(a).unwrap();
        let _second = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), Refusal::PerClient);
        // An IPv4-mapped IPv6 address is the same client.
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(limits.admit(mapped).unwrap_err(), Refusal::PerClient);
        let _third = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).unwrap_err(), Refusal::Total);
        assert_eq!(limits.open(), 3);
        drop(first);
        assert_eq!(limits.open(), 2);
        let _again = limits.admit(a).unwrap();
        assert_eq!(limits.by_client.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_write_blocked_until_progress_marks_a_slow_reader() {
        let activity = Activity::default();
        assert!(!activity.write_blocked_for(Duration::ZERO));
        activity.wrote::<usize>(&Poll::Pending);
        assert!(activity.write_blocked_for(Duration::ZERO));
        assert!(!activity.write_blocked_for(Duration::from_secs(60)));
        activity.wrote(&Poll::Ready(Ok(1usize)));
        assert!(!activity.write_blocked_for(Duration::ZERO));
    }

    #[test]
    fn in_flight_requests_keep_a_connection_busy() {
        let activity = Arc::new(Activity::default());
        let guard = activity.request();
        assert!(!activity.idle_for(Duration::ZERO));
        drop(guard);
        assert!(activity.idle_for(Duration::ZERO));
        assert!(!activity.idle_for(Duration::from_secs(60)));
    }
}
