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
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request).expect("write request");
    let mut received = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(response) = parse(&received) {
            return response;
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) => panic!(
                "reading the response: {e}; got so far: {}",
                String::from_utf8_lossy(&received)
            ),
        }
    }
    parse_at_close(&received).unwrap_or_else(|| {
        panic!(
            "no complete response; got: {}",
            String::from_utf8_lossy(&received)
        )
    })
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

fn parse(bytes: &[u8]) -> Option<RawResponse> {
    let (status, headers, rest) = split_head(bytes)?;
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")?
        .1
        .parse()
        .ok()?;
    (rest.len() >= length).then(|| RawResponse {
        status,
        headers: headers.clone(),
        body: rest[..length].to_vec(),
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
