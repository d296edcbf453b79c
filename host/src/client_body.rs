//! The client's request body as the pipeline reads it: a body that turns out malformed
//! or cut short, or that stalls (no byte for `body_read_timeout_ms` while the gateway
//! waits for one), is recorded, so that the answer is the client's fault (400, 408)
//! whatever the upstream call or a plugin's buffer made of the broken stream.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::error::{ErrorCode, Reject};
use crate::upstream::{BoxError, ProxyBody};

const FINE: u8 = 0;
const MALFORMED: u8 = 1;
const STALLED: u8 = 2;

/// What went wrong with a request's body, if anything, and whether it was read to its
/// end; shared by the body and the server.
#[derive(Clone, Default)]
pub struct BodyFault(Arc<Shared>);

/// One allocation per request for both facts.
#[derive(Default)]
struct Shared {
    fault: AtomicU8,
    read_to_end: AtomicBool,
}

impl BodyFault {
    /// `body` as the pipeline reads it: failing (and recording it) when the client's
    /// framing breaks, or when no byte arrives for `stall` while the reader waits.
    /// `framed` says whether the request announced a body (`Content-Length` above 0
    /// or `Transfer-Encoding`); one that did not has none to read.
    pub fn watch(&self, body: hyper::body::Incoming, stall: Duration, framed: bool) -> ProxyBody {
        use http_body_util::BodyExt;
        if !framed || body.is_end_stream() {
            self.0.read_to_end.store(true, Ordering::Relaxed);
        }
        Watched {
            inner: body,
            fault: self.clone(),
            stall,
            timer: None,
        }
        .boxed()
    }

    /// The client-facing answer for a failed body, if it failed.
    pub fn reject(&self) -> Option<Reject> {
        let (code, message) = match self.0.fault.load(Ordering::Relaxed) {
            MALFORMED => (
                ErrorCode::ValidationError,
                "the request body is malformed or incomplete".to_string(),
            ),
            STALLED => (
                ErrorCode::RequestTimeout,
                "the request body stopped arriving".to_string(),
            ),
            _ => return None,
        };
        Some(Reject::new(code, message).with_header(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        ))
    }

    /// Whether the body was read to its end (a request without one was, at once). A
    /// response sent before then must close an HTTP/1 connection: the rest of the
    /// body is still on its way, in front of the client's next request.
    pub fn read_to_end(&self) -> bool {
        self.0.read_to_end.load(Ordering::Relaxed)
    }

    /// Whether the body stalled.
    pub fn stalled(&self) -> bool {
        self.0.fault.load(Ordering::Relaxed) == STALLED
    }

    fn set(&self, fault: u8) {
        let _ = self
            .0
            .fault
            .compare_exchange(FINE, fault, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// The error a stalled body ends with.
#[derive(Debug, thiserror::Error)]
#[error("no byte of the request body arrived for {0:?}")]
pub struct Stalled(Duration);

/// A body whose failures and stalls are recorded in its [`BodyFault`].
struct Watched {
    inner: hyper::body::Incoming,
    fault: BodyFault,
    stall: Duration,
    /// Armed while the reader waits for the client; reset by every frame.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.timer = None;
                // The end: no more frames, none to come, or trailers (always last,
                // and a reader may stop at them).
                let trailers = matches!(&frame, Some(Ok(f)) if f.is_trailers());
                if frame.is_none() || trailers || this.inner.is_end_stream() {
                    this.fault.0.read_to_end.store(true, Ordering::Relaxed);
                }
                Poll::Ready(frame.map(|frame| {
                    frame.map_err(|error| {
                        this.fault.set(MALFORMED);
                        Box::new(error) as BoxError
                    })
                }))
            }
            Poll::Pending => {
                let stall = this.stall;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                if timer.as_mut().poll(cx).is_ready() {
                    this.timer = None;
                    this.fault.set(STALLED);
                    return Poll::Ready(Some(Err(Box::new(Stalled(stall)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
