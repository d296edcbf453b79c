//! Spotting ambiguous HTTP/1 message framing that hyper resolves silently.
//!
//! hyper follows RFC 9112 when a request carries both `Content-Length` and
//! `Transfer-Encoding`: it drops `Content-Length` before the request reaches us, so the
//! handler cannot see the conflict. Such requests are a request-smuggling tool, and
//! we refuse them with 400. [`SniffedIo`] wraps the client connection and follows the
//! inbound byte stream with a small framing tracker (heads, `Content-Length` bodies,
//! chunked bodies) that records, per request head, whether it carried both headers.
//! hyper handles requests on one connection in order, so the server takes the facts
//! in the same order. HTTP/2 connections and upgraded connections are not tracked.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest line the tracker follows; longer heads are refused by hyper anyway.
const MAX_LINE: usize = 256 * 1024;
/// Facts kept for requests hyper has not handed over yet.
const MAX_PENDING: usize = 64;

/// Per-request facts of one connection, oldest first.
#[derive(Clone, Default)]
pub struct FramingFacts(Arc<Mutex<VecDeque<bool>>>);

impl FramingFacts {
    /// Whether the next request carried both `Content-Length` and `Transfer-Encoding`.
    pub fn take_ambiguous(&self) -> bool {
        self.0
            .lock()
            .expect("facts lock")
            .pop_front()
            .unwrap_or(false)
    }

    fn push(&self, ambiguous: bool) {
        let mut facts = self.0.lock().expect("facts lock");
        if facts.len() == MAX_PENDING {
            facts.pop_front();
        }
        facts.push_back(ambiguous);
    }
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Reading a request head, line by line.
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
    /// Not HTTP/1 (HTTP/2, an upgrade) or lost: stop tracking.
    Off,
}

/// Follows the inbound bytes of one HTTP/1 connection.
struct Tracker {
    state: State,
    line: Vec<u8>,
    in_head: bool,
    content_length: Option<u64>,
    transfer_encoding: Option<Vec<u8>>,
    upgrade: bool,
    facts: FramingFacts,
}

impl Tracker {
    fn new(facts: FramingFacts) -> Self {
        Self {
            state: State::Head,
            line: Vec::new(),
            in_head: false,
            content_length: None,
            transfer_encoding: None,
            upgrade: false,
            facts,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.state != State::Off {
            match self.state {
                State::Body(remaining) | State::ChunkData(remaining) => {
                    let skip = remaining.min(bytes.len() as u64);
                    bytes = &bytes[skip as usize..];
                    let left = remaining - skip;
                    self.state = match (&self.state, left) {
                        (State::Body(_), 0) => State::Head,
                        (State::Body(_), n) => State::Body(n),
                        (_, 0) => State::ChunkEnd,
                        (_, n) => State::ChunkData(n),
                    };
                }
                _ => {
                    let (taken, complete) = match bytes.iter().position(|&b| b == b'\n') {
                        Some(end) => (end + 1, true),
                        None => (bytes.len(), false),
                    };
                    self.line.extend_from_slice(&bytes[..taken]);
                    bytes = &bytes[taken..];
                    if self.line.len() > MAX_LINE {
                        self.state = State::Off;
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
    }

    fn on_line(&mut self, line: &[u8]) {
        match self.state {
            State::Head if !self.in_head => {
                if line.is_empty() {
                    return; // stray CRLF before a request line is allowed
                }
                if line.starts_with(b"PRI * HTTP/2") {
                    self.state = State::Off;
                    return;
                }
                self.in_head = true;
            }
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
                    b"upgrade" => self.upgrade = true,
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
                    None => self.state = State::Off,
                }
            }
            State::ChunkEnd => self.state = State::ChunkSize,
            State::Trailers if line.is_empty() => self.state = State::Head,
            _ => {}
        }
    }

    fn end_of_head(&mut self) {
        let ambiguous = self.content_length.is_some() && self.transfer_encoding.is_some();
        self.facts.push(ambiguous);
        let chunked = self
            .transfer_encoding
            .as_deref()
            .is_some_and(|te| te.ends_with(b"chunked"));
        self.state = if self.upgrade || ambiguous {
            // An upgrade turns the connection into a tunnel; an ambiguous request is
            // refused and hyper closes the connection after it.
            State::Off
        } else if chunked {
            State::ChunkSize
        } else {
            match self.content_length {
                Some(n) if n > 0 => State::Body(n),
                _ => State::Head,
            }
        };
        self.in_head = false;
        self.content_length = None;
        self.transfer_encoding = None;
        self.upgrade = false;
    }
}

/// A connection whose inbound bytes pass through a [`Tracker`].
pub struct SniffedIo<T> {
    inner: T,
    tracker: Tracker,
}

impl<T> SniffedIo<T> {
    /// Wraps `inner`; the facts are read by the request handler.
    pub fn new(inner: T) -> (Self, FramingFacts) {
        let facts = FramingFacts::default();
        let io = Self {
            inner,
            tracker: Tracker::new(facts.clone()),
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
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let new = buf.filled()[before..].to_vec();
            self.tracker.feed(&new);
        }
        polled
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
mod tests {
    use super::*;

    fn facts_of(chunks: &[&[u8]]) -> Vec<bool> {
        let facts = FramingFacts::default();
        let mut tracker = Tracker::new(facts.clone());
        for chunk in chunks {
            tracker.feed(chunk);
        }
        let queue = facts.0.lock().unwrap();
        queue.iter().copied().collect()
    }

    #[test]
    fn plain_requests_are_not_ambiguous() {
        let stream = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /y HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(facts_of(&[stream]), [false, false, false]);
    }

    #[test]
    fn content_length_with_transfer_encoding_is_ambiguous() {
        let stream = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(facts_of(&[stream]), [true]);
    }

    #[test]
    fn chunked_bodies_are_followed_across_reads() {
        let a: &[u8] = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
        let b: &[u8] = b"lo\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let c: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(facts_of(&[a, b, c]), [false, false]);
    }

    #[test]
    fn bodies_that_look_like_headers_are_skipped() {
        let body = "Transfer-Encoding: chunked\r\nHost: x\r\n\r\n";
        let stream = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}GET / HTTP/1.1\r\n\r\n",
            body.len()
        );
        assert_eq!(facts_of(&[stream.as_bytes()]), [false, false]);
    }

    #[test]
    fn http2_is_not_tracked() {
        assert!(facts_of(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]).is_empty());
    }
}
