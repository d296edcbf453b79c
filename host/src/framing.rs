//! Following HTTP/1 message framing byte by byte, for what hyper resolves silently or
//! refuses in a way clients cannot tell apart.
//!
//! hyper follows RFC 9112 when a request carries both `Content-Length` and
//! `Transfer-Encoding`: it drops `Content-Length` before the request reaches us, so the
//! handler cannot see the conflict. Such requests are a request-smuggling tool, and
//! we refuse them with 400. [`SniffedIo`] wraps the client connection and follows the
//! inbound byte stream with a small framing tracker (heads, `Content-Length` bodies,
//! chunked bodies, trailers) that records a [`Verdict`] per request head. hyper
//! handles requests on one connection in order, so the server takes the verdicts in
//! the same order.
//!
//! The tracker also cuts a request target longer than the URI limit short on its way
//! to hyper (the verdict says [`Verdict::UriTooLong`]), so such a request gets our 414
//! instead of hyper's bare 431 for a head that overflows its buffer.
//!
//! Every request on a connection gets the same checks whatever came before it: a
//! request with `Upgrade` is followed like any other, unless the gateway switched
//! the connection to a WebSocket ([`FramingFacts::switched`]: what follows is not
//! HTTP and passes unfollowed), and once the tracker cannot follow the stream (an ambiguous request, an
//! unreadable chunk size, a line longer than any head hyper accepts, too many pending
//! heads) every later request on the connection is [`Verdict::Unknown`] and refused.
//! Only HTTP/2 connections (prior knowledge) are not followed.
//!
//! The tracker also clocks request heads for the server's header read timeout: a head
//! is pending from the connection's start, and again from the first byte after a
//! message ends (a stray CRLF counts), until its blank line; once the framing is lost,
//! the clock runs until the connection closes. hyper's own header timer cannot serve:
//! it also runs while a kept-alive connection waits for its next request (cutting idle
//! connections at the header timeout instead of the idle one), and not while a new
//! connection has sent nothing (its protocol is not yet known).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the tracker learned about one request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Its framing is plain.
    Clean,
    /// It carried both `Content-Length` and `Transfer-Encoding`.
    Ambiguous,
    /// Its request target was over the URI limit (and was cut short for hyper).
    UriTooLong,
    /// The connection's framing could not be followed up to it: refuse, and close.
    Unknown,
}

/// How far the tracker follows a connection.
#[derive(Debug, Clone, Copy)]
pub struct TrackLimits {
    /// Request targets longer than this (plus the 8 bytes an absolute-form `https://`
    /// adds) are cut short and get [`Verdict::UriTooLong`].
    pub max_target: usize,
    /// hyper's read buffer: no head it accepts holds a longer line, and it cannot hold
    /// more than a few pending heads per byte.
    pub max_buf: usize,
}

#[derive(Default)]
struct Queue {
    verdicts: VecDeque<Verdict>,
    /// The tracker lost the framing: nothing more is pushed, and once the verdicts
    /// pushed before are taken, every request is `Unknown`.
    lost: bool,
    /// An HTTP/2 connection: not followed, nothing to say.
    http2: bool,
}

struct Facts {
    queue: Mutex<Queue>,
    born: Instant,
    /// Since when a request head has been pending (milliseconds since `born`, plus
    /// one; 0: none is).
    head_since_ms: AtomicU64,
    /// The connection switched protocols (a WebSocket): nothing more is followed.
    switched: AtomicBool,
}

impl Default for Facts {
    fn default() -> Self {
        Self {
            queue: Mutex::default(),
            born: Instant::now(),
            // A new connection owes its first head from the start.
            head_since_ms: AtomicU64::new(1),
            switched: AtomicBool::new(false),
        }
    }
}

/// Per-request verdicts of one connection, oldest first, and the clock of the request
/// head it is sending.
#[derive(Clone, Default)]
pub struct FramingFacts(Arc<Facts>);

impl FramingFacts {
    /// The verdict on the next request hyper hands over.
    pub fn take(&self) -> Verdict {
        let mut queue = self.0.queue.lock().expect("facts lock");
        match queue.verdicts.pop_front() {
            Some(verdict) => verdict,
            None if queue.http2 => Verdict::Clean,
            // hyper cannot hand over a head the tracker has not passed it, so an empty
            // queue on HTTP/1 means the tracker lost count.
            None => Verdict::Unknown,
        }
    }

    /// Whether the client has been sending one request head for `limit` or longer
    /// (or, on a new connection, not yet sent its first).
    pub fn head_pending_for(&self, limit: Duration) -> bool {
        let since = self.0.head_since_ms.load(Ordering::Relaxed);
        since != 0 && self.now_ms() + 1 >= since + limit.as_millis() as u64
    }

    fn now_ms(&self) -> u64 {
        self.0.born.elapsed().as_millis() as u64
    }

    /// A byte of a new head arrived: its clock starts, unless one already runs.
    fn head_started(&self) {
        let now = self.now_ms() + 1;
        let _ = self
            .0
            .head_since_ms
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The head is complete, or no longer followed: nothing is pending.
    fn head_ended(&self) {
        self.0.head_since_ms.store(0, Ordering::Relaxed);
    }

    fn push(&self, verdict: Verdict, max_pending: usize) {
        let mut queue = self.0.queue.lock().expect("facts lock");
        if queue.lost {
            return;
        }
        if queue.verdicts.len() >= max_pending {
            // More heads than hyper's buffer can hold: the counts no longer line up.
            queue.verdicts.clear();
            queue.lost = true;
            return;
        }
        queue.verdicts.push_back(verdict);
    }

    /// The stream can no longer be followed: the verdicts already pushed stand (they
    /// are for heads before the point where it was lost), nothing more is pushed, and
    /// every later request is `Unknown`.
    fn lose(&self) {
        self.0.queue.lock().expect("facts lock").lost = true;
        // Whatever comes now is no request the gateway will serve: the clock runs (if
        // it does not already), so a client trickling bytes is cut off in time.
        self.head_started();
    }

    /// The connection is switching protocols after the request being answered: the
    /// bytes that follow are not HTTP, and pass unfollowed.
    pub fn switched(&self) {
        self.0.switched.store(true, Ordering::Relaxed);
        self.head_ended();
    }

    fn is_switched(&self) -> bool {
        self.0.switched.load(Ordering::Relaxed)
    }

    fn http2(&self) {
        self.0.queue.lock().expect("facts lock").http2 = true;
        self.head_ended();
    }
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Reading a request head: the request line, then header lines.
    Head,
    /// Skipping a `Content-Length` body.
    Body(u64),
    /// Reading a chunk-size line.
    ChunkSize,
    /// Skipping chunk data, then its CRLF line.
    ChunkData(u64),
    /// Reading the CRLF after chunk data.
    ChunkEnd,
    /// Reading trailer lines up to the empty line.
    Trailers,
    /// HTTP/2, or the framing is lost: stop following.
    Off,
}

/// Where the tracker is in a request line.
#[derive(Debug, Default, PartialEq, Eq)]
enum RequestLine {
    /// Before the first byte of a request line (stray CRLFs are allowed).
    #[default]
    Before,
    /// In the method.
    Method,
    /// In the target, this many bytes long so far.
    Target(usize),
    /// After the target.
    Version,
}

/// Follows the inbound bytes of one HTTP/1 connection.
struct Tracker {
    state: State,
    limits: TrackLimits,
    line: Vec<u8>,
    request_line: RequestLine,
    in_head: bool,
    target_cut: bool,
    content_length: Option<u64>,
    transfer_encoding: Option<Vec<u8>>,
    facts: FramingFacts,
}

impl Tracker {
    fn new(facts: FramingFacts, limits: TrackLimits) -> Self {
        Self {
            state: State::Head,
            limits,
            line: Vec::new(),
            request_line: RequestLine::Before,
            in_head: false,
            target_cut: false,
            content_length: None,
            transfer_encoding: None,
            facts,
        }
    }

    /// The most heads hyper could have been passed and not yet handed over.
    fn max_pending(&self) -> usize {
        self.limits.max_buf / 8 + 64
    }

    fn lose(&mut self) {
        self.state = State::Off;
        self.facts.lose();
    }

    /// Follows `bytes`, moving those hyper should see to the front; returns how many.
    /// Only bytes of a request target over the limit are held back.
    fn feed(&mut self, bytes: &mut [u8]) -> usize {
        if self.state != State::Off && self.facts.is_switched() {
            self.state = State::Off;
        }
        let mut kept = 0;
        let mut i = 0;
        while i < bytes.len() && self.state != State::Off {
            if self.state == State::Head && !self.in_head {
                // The request line, byte by byte: its target may be cut.
                let byte = bytes[i];
                i += 1;
                if self.keep_request_line_byte(byte) {
                    bytes[kept] = byte;
                    kept += 1;
                }
                continue;
            }
            match self.state {
                State::Body(remaining) | State::ChunkData(remaining) => {
                    let skip = remaining.min((bytes.len() - i) as u64) as usize;
                    bytes.copy_within(i..i + skip, kept);
                    kept += skip;
                    i += skip;
                    let left = remaining - skip as u64;
                    self.state = match (&self.state, left) {
                        (State::Body(_), 0) => State::Head,
                        (State::Body(_), n) => State::Body(n),
                        (_, 0) => State::ChunkEnd,
                        (_, n) => State::ChunkData(n),
                    };
                }
                _ => {
                    let rest = &bytes[i..];
                    let (taken, complete) = match rest.iter().position(|&b| b == b'\n') {
                        Some(end) => (end + 1, true),
                        None => (rest.len(), false),
                    };
                    self.line.extend_from_slice(&rest[..taken]);
                    bytes.copy_within(i..i + taken, kept);
                    kept += taken;
                    i += taken;
                    if self.line.len() > self.limits.max_buf {
                        self.lose();
                    } else if complete {
                        let mut line = std::mem::take(&mut self.line);
                        while matches!(line.last(), Some(b'\n' | b'\r')) {
                            line.pop();
                        }
                        self.on_line(&line);
                    }
                }
            }
        }
        // Once off, everything passes: HTTP/2, or a connection whose requests are
        // all refused.
        bytes.copy_within(i.., kept);
        kept + (bytes.len() - i)
    }

    /// Follows one byte of a request line; whether hyper should see it.
    fn keep_request_line_byte(&mut self, byte: u8) -> bool {
        if self.request_line == RequestLine::Before {
            self.facts.head_started();
        }
        match (&self.request_line, byte) {
            (RequestLine::Before, b'\r' | b'\n') => return true,
            (_, b'\n') => {
                let line = std::mem::take(&mut self.line);
                self.request_line = RequestLine::Before;
                self.in_head = true;
                if line.starts_with(b"PRI * HTTP/2") {
                    self.state = State::Off;
                    self.facts.http2();
                }
                return true;
            }
            (RequestLine::Before, _) => self.request_line = RequestLine::Method,
            (RequestLine::Method, b' ') => self.request_line = RequestLine::Target(0),
            (RequestLine::Target(_), b' ') => self.request_line = RequestLine::Version,
            (RequestLine::Target(length), _) => {
                let length = length + 1;
                self.request_line = RequestLine::Target(length);
                if length > self.limits.max_target + 8 {
                    self.target_cut = true;
                    return false;
                }
            }
            _ => {}
        }
        // Enough of the line to spot the HTTP/2 preface.
        if self.line.len() < 16 {
            self.line.push(byte);
        }
        true
    }

    fn on_line(&mut self, line: &[u8]) {
        match self.state {
            State::Head if line.is_empty() => self.end_of_head(),
            State::Head => {
                let Some(colon) = line.iter().position(|&b| b == b':') else {
                    return;
                };
                let name = line[..colon].to_ascii_lowercase();
                let value = line[colon + 1..].trim_ascii();
                match name.as_slice() {
                    b"content-length" => {
                        self.content_length = std::str::from_utf8(value)
                            .ok()
                            .and_then(|v| v.parse().ok())
                            .or(Some(0));
                    }
                    b"transfer-encoding" => {
                        self.transfer_encoding = Some(value.to_ascii_lowercase());
                    }
                    _ => {}
                }
            }
            State::ChunkSize => {
                let size = line.split(|&b| b == b';').next().unwrap_or_default();
                match std::str::from_utf8(size.trim_ascii())
                    .ok()
                    .and_then(|s| u64::from_str_radix(s, 16).ok())
                {
                    Some(0) => self.state = State::Trailers,
                    Some(n) => self.state = State::ChunkData(n),
                    None => self.lose(),
                }
            }
            State::ChunkEnd => self.state = State::ChunkSize,
            State::Trailers if line.is_empty() => self.state = State::Head,
            _ => {}
        }
    }

    fn end_of_head(&mut self) {
        let ambiguous = self.content_length.is_some() && self.transfer_encoding.is_some();
        let verdict = if ambiguous {
            Verdict::Ambiguous
        } else if self.target_cut {
            Verdict::UriTooLong
        } else {
            Verdict::Clean
        };
        self.facts.push(verdict, self.max_pending());
        self.facts.head_ended();
        let chunked = self
            .transfer_encoding
            .as_deref()
            .is_some_and(|te| te.ends_with(b"chunked"));
        self.in_head = false;
        self.target_cut = false;
        self.state = if chunked {
            State::ChunkSize
        } else {
            match self.content_length {
                Some(n) if n > 0 => State::Body(n),
                _ => State::Head,
            }
        };
        self.content_length = None;
        self.transfer_encoding = None;
        if ambiguous {
            // Refused, and the connection closed after it; which framing the client
            // meant is anyone's guess, so nothing after it is vouched for.
            self.lose();
        }
    }
}

/// A connection whose inbound bytes pass through a [`Tracker`].
pub struct SniffedIo<T> {
    inner: T,
    tracker: Tracker,
}

impl<T> SniffedIo<T> {
    /// Wraps `inner`; the facts are read by the request handler.
    pub fn new(inner: T, limits: TrackLimits) -> (Self, FramingFacts) {
        let facts = FramingFacts::default();
        let io = Self {
            inner,
            tracker: Tracker::new(facts.clone(), limits),
        };
        (io, facts)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SniffedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        loop {
            let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
            let read = buf.filled().len() - before;
            if !matches!(polled, Poll::Ready(Ok(()))) || read == 0 {
                return polled;
            }
            let kept = self.tracker.feed(&mut buf.filled_mut()[before..]);
            buf.set_filled(before + kept);
            if kept > 0 {
                return polled;
            }
            // Everything read was held back; an empty read would mean end of stream.
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SniffedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests;
