//! Tests of the framing tracker: verdicts per head, over sequences of requests on one
//! connection, and what hyper is shown of an over-long request target.

use super::*;
use Verdict::{Ambiguous, Clean, Unknown, UriTooLong};

const LIMITS: TrackLimits = TrackLimits {
    max_target: 64,
    max_buf: 64 * 1024,
};

/// Feeds `chunks` as separate reads; returns the verdicts hyper would take for
/// `requests` requests and the bytes hyper was shown.
fn follow(chunks: &[&[u8]], requests: usize) -> (Vec<Verdict>, Vec<u8>) {
    let (mut tracker, facts) = new_tracker();
    let shown = chunks
        .iter()
        .flat_map(|chunk| tracker.shown(chunk))
        .collect();
    ((0..requests).map(|_| facts.take()).collect(), shown)
}

/// The tracker of a new connection, and the facts it records.
fn new_tracker() -> (Tracker, FramingFacts) {
    let facts = FramingFacts::default();
    (Tracker::new(facts.clone(), LIMITS), facts)
}

impl Tracker {
    /// Follows `bytes` as one read; what hyper is shown of it.
    fn shown(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut bytes = bytes.to_vec();
        let kept = self.feed(&mut bytes);
        bytes.truncate(kept);
        bytes
    }
}

fn verdicts(stream: &[u8], requests: usize) -> Vec<Verdict> {
    let (verdicts, shown) = follow(&[stream], requests);
    assert_eq!(shown, stream, "only over-long targets are held back");
    verdicts
}

const SMUGGLE: &[u8] =
    b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";

#[test]
fn plain_requests_are_clean() {
    let stream = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /y HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(verdicts(stream, 3), [Clean, Clean, Clean]);
}

#[test]
fn content_length_with_transfer_encoding_is_ambiguous_and_ends_the_trust() {
    let stream = [SMUGGLE, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"].concat();
    assert_eq!(verdicts(&stream, 3), [Ambiguous, Unknown, Unknown]);
}

#[test]
fn chunked_bodies_are_followed_across_reads() {
    let a: &[u8] = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
    let b: &[u8] = b"lo\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n";
    let c: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
    let (verdicts, _) = follow(&[a, b, c], 2);
    assert_eq!(verdicts, [Clean, Clean]);
}

#[test]
fn bodies_that_look_like_headers_are_skipped() {
    let body = "Transfer-Encoding: chunked\r\nHost: x\r\n\r\n";
    let stream = format!(
        "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}GET / HTTP/1.1\r\n\r\n",
        body.len()
    );
    assert_eq!(verdicts(stream.as_bytes(), 2), [Clean, Clean]);
}

#[test]
fn http2_is_not_followed() {
    // What follows the preface is HTTP/2 frames, even if it reads like HTTP/1.
    let stream = [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".as_slice(), SMUGGLE].concat();
    assert_eq!(verdicts(&stream, 3), [Clean, Clean, Clean]);
}

#[test]
fn every_request_is_checked_whatever_came_before_it() {
    let before: [(&str, Vec<u8>); 6] = [
        (
            "an upgrade that was not performed",
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n".to_vec(),
        ),
        (
            "an upgrade with a body",
            b"POST /ws HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
        ),
        (
            "trailers",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n".to_vec(),
        ),
        (
            "trailers that look like framing headers",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        ),
        (
            "a long header line",
            format!("GET / HTTP/1.1\r\nHost: a\r\nX-Long: {}\r\n\r\n", "x".repeat(40_000)).into_bytes(),
        ),
        (
            "stray empty lines",
            b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        ),
    ];
    for (what, first) in before {
        let stream = [first.as_slice(), first.as_slice(), SMUGGLE].concat();
        assert_eq!(
            verdicts(&stream, 3),
            [Clean, Clean, Ambiguous],
            "after {what}"
        );
        // The same, one byte per read.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        let (one_by_one, _) = follow(&bytes, 3);
        assert_eq!(
            one_by_one,
            [Clean, Clean, Ambiguous],
            "after {what}, bytewise"
        );
    }
}

#[test]
fn a_lost_stream_refuses_every_later_request() {
    // A chunk size that is not hex.
    let stream =
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET / HTTP/1.1\r\n\r\n";
    assert_eq!(verdicts(stream, 2), [Clean, Unknown]);
    // A line longer than any head hyper accepts.
    let long = format!(
        "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
        "x".repeat(LIMITS.max_buf)
    );
    assert_eq!(verdicts(long.as_bytes(), 1), [Unknown]);
    // More pending heads than hyper's buffer can hold.
    let many = "GET / HTTP/1.1\r\n\r\n".repeat(LIMITS.max_buf / 8 + 65);
    assert_eq!(verdicts(many.as_bytes(), 1), [Unknown]);
}

#[test]
fn an_over_long_target_is_cut_short_and_marked() {
    let fits = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(70));
    assert_eq!(
        verdicts(fits.as_bytes(), 1),
        [Clean],
        "within the 8 bytes of slack"
    );
    let target = format!("/{}", "a".repeat(100_000));
    let stream = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    for chunk in [1, 7, 4096, stream.len()] {
        let reads: Vec<&[u8]> = stream.as_bytes().chunks(chunk).collect();
        let (verdicts, shown) = follow(&reads, 2);
        assert_eq!(verdicts, [UriTooLong, Clean], "reads of {chunk}");
        let cut = format!(
            "GET {} HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            &target[..LIMITS.max_target + 8]
        );
        assert_eq!(String::from_utf8(shown).unwrap(), cut, "reads of {chunk}");
    }
}

#[test]
fn the_head_clock_runs_from_the_start_and_from_each_new_head_until_its_blank_line() {
    let (mut tracker, facts) = new_tracker();
    let pending = || facts.head_pending_for(Duration::ZERO);
    let mut feed = |bytes: &[u8]| tracker.shown(bytes);
    assert!(pending(), "a new connection owes its first head");
    assert!(!facts.head_pending_for(Duration::from_secs(3600)));
    feed(b"GET / HTTP/1.1\r\nHost: a");
    assert!(pending(), "half a head");
    feed(b"\r\n\r\n");
    assert!(
        !pending(),
        "the head is complete: the connection is idle, not slow"
    );
    feed(b"\r\n");
    assert!(pending(), "a stray CRLF starts the clock too");
    feed(b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel");
    assert!(!pending(), "a body is not a head");
    feed(b"lo");
    assert!(!pending(), "the next head has not begun");
    feed(b"G");
    assert!(pending(), "the next head's first byte");
    feed(b"ET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    assert!(!pending(), "after a chunked body");

    // Lost framing: the clock runs from then on, even between what looked like heads.
    let (mut tracker, facts) = new_tracker();
    tracker.shown(
        b"GET / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    );
    assert!(facts.head_pending_for(Duration::ZERO), "lost framing");

    let (mut tracker, facts) = new_tracker();
    tracker.shown(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    assert!(
        !facts.head_pending_for(Duration::ZERO),
        "HTTP/2 is not clocked here"
    );
}

#[test]
fn the_tracker_follows_lines_and_pending_heads_up_to_hyper_s_limits_exactly() {
    // A header line of exactly `max_buf` bytes (with its CRLF) is followed; one more
    // byte and the stream is lost.
    let line = |length: usize| format!("X: {}\r\n", "x".repeat(length - 5));
    let stream = |length: usize| {
        format!(
            "GET / HTTP/1.1\r\n{}\r\nGET / HTTP/1.1\r\n\r\n",
            line(length)
        )
    };
    assert_eq!(line(LIMITS.max_buf).len(), LIMITS.max_buf);
    assert_eq!(
        verdicts(stream(LIMITS.max_buf).as_bytes(), 2),
        [Clean, Clean]
    );
    assert_eq!(
        verdicts(stream(LIMITS.max_buf + 1).as_bytes(), 2),
        [Unknown, Unknown]
    );
    // As many pending heads as hyper's buffer could hold are each vouched for.
    let most = LIMITS.max_buf / 8 + 64;
    let heads = "GET / HTTP/1.1\r\n\r\n".repeat(most);
    assert!(verdicts(heads.as_bytes(), most).iter().all(|&v| v == Clean));
}

/// An inbound stream that arrives in the given reads, one per poll (a read larger
/// than the buffer is split).
struct Reads(VecDeque<Vec<u8>>);

impl AsyncRead for Reads {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(mut read) = self.0.pop_front() {
            let rest = read.split_off(read.len().min(buf.remaining()));
            buf.put_slice(&read);
            if !rest.is_empty() {
                self.0.push_front(rest);
            }
        }
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn reads_that_are_all_held_back_are_not_taken_for_the_end_of_the_stream() {
    use tokio::io::AsyncReadExt;
    let head = format!("GET /{}", "a".repeat(LIMITS.max_target + 7));
    let reads = Reads(VecDeque::from([
        head.clone().into_bytes(),
        // Wholly past the limit: nothing of this read reaches hyper.
        b"bbbb".to_vec(),
        b"cccc".to_vec(),
        b" HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n".to_vec(),
    ]));
    let (mut io, facts) = SniffedIo::new(reads, LIMITS);
    let mut shown = String::new();
    io.read_to_string(&mut shown).await.unwrap();
    assert_eq!(
        shown,
        format!("{head} HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    );
    assert_eq!([facts.take(), facts.take()], [UriTooLong, Clean]);
}

#[tokio::test]
async fn writes_pass_through_untouched() {
    use tokio::io::{AsyncWriteExt, BufWriter};
    let (mut io, _) = SniffedIo::new(BufWriter::new(Vec::new()), LIMITS);
    io.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
    assert!(
        io.inner.get_ref().is_empty(),
        "buffered by the inner writer"
    );
    io.flush().await.unwrap();
    assert_eq!(io.inner.get_ref(), b"HTTP/1.1 200 OK\r\n");
    let parts = [io::IoSlice::new(b"a: 1\r\n"), io::IoSlice::new(b"\r\n")];
    assert_eq!(io.write_vectored(&parts).await.unwrap(), 8);
    io.shutdown().await.unwrap();
    assert_eq!(io.inner.get_ref(), b"HTTP/1.1 200 OK\r\na: 1\r\n\r\n");

    // Whether writes may be vectored is the inner stream's to say.
    let (vectored, _) = SniffedIo::new(Vec::<u8>::new(), LIMITS);
    assert!(vectored.is_write_vectored());
    let (plain, _) = SniffedIo::new(Unvectored, LIMITS);
    assert!(!plain.is_write_vectored());
}

/// A writer that does not take vectored writes (the trait's default).
struct Unvectored;

impl AsyncWrite for Unvectored {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The head clock against real time: a head is late once `limit` has passed since its
/// first byte (also for a head that starts long after the connection did). Only lower
/// bounds of elapsed time are relied on, so a slow machine cannot fail it.
#[test]
fn a_head_is_late_once_its_limit_has_passed_since_its_first_byte() {
    let limit = Duration::from_millis(50);
    let (mut tracker, facts) = new_tracker();
    let mut feed = |bytes: &[u8]| tracker.shown(bytes);
    std::thread::sleep(limit + Duration::from_millis(10));
    assert!(facts.head_pending_for(limit), "the first head is late");
    feed(b"GET / HTTP/1.1\r\n\r\n");
    std::thread::sleep(limit + Duration::from_millis(10));
    feed(b"G");
    std::thread::sleep(limit + Duration::from_millis(10));
    assert!(facts.head_pending_for(limit), "the second head is late");
    assert!(!facts.head_pending_for(Duration::from_secs(3600)));
}

#[test]
fn after_a_switch_to_websocket_the_bytes_pass_unfollowed() {
    let (mut tracker, facts) = new_tracker();
    tracker
        .shown(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
    facts.switched();
    // WebSocket frames, whatever they hold, are not requests: none is vouched for or
    // refused, and no head clock runs.
    let frames = [b"\x81\x05hello".as_slice(), SMUGGLE].concat();
    assert_eq!(tracker.shown(&frames), frames, "every byte passes");
    assert!(!facts.head_pending_for(Duration::ZERO));
    assert_eq!(facts.take(), Clean, "the upgrade request");
    assert_eq!(facts.take(), Unknown, "nothing was pushed after it");
}

#[test]
fn the_end_of_the_stream_is_passed_on_whatever_the_buffer_held() {
    let (mut io, _) = SniffedIo::new(Reads(VecDeque::from([b"GET /".to_vec()])), LIMITS);
    let mut storage = [0u8; 64];
    let mut buf = ReadBuf::new(&mut storage);
    buf.put_slice(b"earlier");
    let mut cx = Context::from_waker(std::task::Waker::noop());
    for expected in [b"earlierGET /".as_slice(), b"earlierGET /"] {
        let polled = Pin::new(&mut io).poll_read(&mut cx, &mut buf);
        assert!(matches!(polled, Poll::Ready(Ok(()))));
        assert_eq!(buf.filled(), expected, "a read, then the end of the stream");
    }
}
