//! A raw HTTP/1.1 client over a TCP socket, for requests that well-behaved clients
//! refuse to send (ambiguous framing, duplicate `Host`, unnormalised paths).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A parsed response.
#[derive(Debug)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (after `Content-Length`, or what arrived before close).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` bytes as they are and reads one response.
pub fn raw_request(address: SocketAddr, request: &[u8]) -> RawResponse {
    let mut connection = RawConnection::open(address);
    connection.send(request);
    connection.response()
}

/// One raw keep-alive connection: send bytes, read responses one by one.
pub struct RawConnection {
    stream: TcpStream,
    received: Vec<u8>,
}

impl RawConnection {
    /// Connects to `address` (reads time out after 10 s).
    pub fn open(address: SocketAddr) -> Self {
        let stream = TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Self {
            stream,
            received: Vec::new(),
        }
    }

    /// Writes `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write request");
    }

    /// Reads the next response (with a `Content-Length`, or up to the close).
    pub fn response(&mut self) -> RawResponse {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some((response, used)) = parse(&self.received) {
                self.received.drain(..used);
                return response;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.received.extend_from_slice(&chunk[..n]),
                Err(e) => panic!(
                    "reading the response: {e}; got so far: {}",
                    String::from_utf8_lossy(&self.received)
                ),
            }
        }
        let received = std::mem::take(&mut self.received);
        parse_at_close(&received).unwrap_or_else(|| {
            panic!(
                "no complete response; got: {}",
                String::from_utf8_lossy(&received)
            )
        })
    }

    /// Whether the gateway closed the connection: the next read ends the stream
    /// (or the connection was reset) with no bytes left over.
    pub fn is_closed(&mut self) -> bool {
        let mut chunk = [0u8; 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => self.received.is_empty(),
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            Ok(_) => false,
        }
    }
}

/// A response head: status, headers, and the bytes after it.
type Head<'a> = (u16, Vec<(String, String)>, &'a [u8]);

fn split_head(bytes: &[u8]) -> Option<Head<'_>> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some((status, headers, &bytes[end + 4..]))
}

/// A complete response at the start of `bytes`, and how many bytes it took.
fn parse(bytes: &[u8]) -> Option<(RawResponse, usize)> {
    let (status, headers, rest) = split_head(bytes)?;
    let head_len = bytes.len() - rest.len();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")?
        .1
        .parse()
        .ok()?;
    (rest.len() >= length).then(|| {
        let response = RawResponse {
            status,
            headers: headers.clone(),
            body: rest[..length].to_vec(),
        };
        (response, head_len + length)
    })
}

fn parse_at_close(bytes: &[u8]) -> Option<RawResponse> {
    let (status, headers, rest) = split_head(bytes)?;
    Some(RawResponse {
        status,
        headers,
        body: rest.to_vec(),
    })
}
