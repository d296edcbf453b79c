//! A WebSocket upstream on a loopback port (plain, or over TLS): it echoes every text and binary message,
//! closes with `4000` when sent the text `close`, and refuses handshakes on paths
//! that contain `refuse` with a 403. It records each handshake it accepted (target
//! and headers) and every message it received, so tests can tell what reached it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::background::Background;

/// A handshake the upstream accepted.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// The request target (path and query).
    pub target: String,
    /// The request headers, names lower-case.
    pub headers: http::HeaderMap,
}

#[derive(Default)]
struct Seen {
    handshakes: Mutex<Vec<Handshake>>,
    messages: Mutex<Vec<Message>>,
}

/// A running WebSocket echo upstream; stops when dropped.
pub struct WsUpstream {
    /// Where it listens.
    pub address: SocketAddr,
    seen: Arc<Seen>,
    _server: Background,
}

impl WsUpstream {
    /// Starts it on a free loopback port.
    pub fn start() -> Self {
        Self::serve(None)
    }

    /// Starts it over TLS with `issued` (`wss://`), offering ALPN `h2` and
    /// `http/1.1` as an HTTPS server for both would (only `http/1.1` can switch).
    pub fn start_tls(issued: &crate::Issued) -> Self {
        Self::serve(Some(tokio_rustls::TlsAcceptor::from(
            crate::tls::server_config(issued, None),
        )))
    }

    fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let address = listener.local_addr().expect("address");
        let seen = Arc::new(Seen::default());
        let recorder = seen.clone();
        let server = Background::spawn(2, move |mut stopped| async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let tcp = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((tcp, _)) => tcp,
                        Err(_) => continue,
                    },
                    _ = &mut stopped => break,
                };
                let recorder = recorder.clone();
                match tls.clone() {
                    None => drop(tokio::spawn(echo(tcp, recorder))),
                    Some(acceptor) => drop(tokio::spawn(async move {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            echo(stream, recorder).await;
                        }
                    })),
                }
            }
        });
        Self {
            address,
            seen,
            _server: server,
        }
    }

    /// The handshakes it accepted, in order.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.seen.handshakes.lock().unwrap().clone()
    }

    /// The data messages it received (text and binary), in order.
    pub fn messages(&self) -> Vec<Message> {
        self.seen.messages.lock().unwrap().clone()
    }
}

async fn echo<S>(stream: S, seen: Arc<Seen>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let recorder = seen.clone();
    // tungstenite's callback type: its error is a whole response.
    #[allow(clippy::result_large_err)]
    let check = move |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let target = request.uri().to_string();
        if target.contains("refuse") {
            let mut refusal = ErrorResponse::new(Some("refused by the upstream".into()));
            *refusal.status_mut() = http::StatusCode::FORBIDDEN;
            return Err(refusal);
        }
        recorder.handshakes.lock().unwrap().push(Handshake {
            target,
            headers: request.headers().clone(),
        });
        Ok(response)
    };
    let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, check).await else {
        return;
    };
    while let Some(Ok(message)) = socket.next().await {
        match &message {
            Message::Text(text) if text.as_str() == "close" => {
                seen.messages.lock().unwrap().push(message.clone());
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: CloseCode::Library(4000),
                        reason: "asked to".into(),
                    })))
                    .await;
            }
            Message::Text(_) | Message::Binary(_) => {
                seen.messages.lock().unwrap().push(message.clone());
                if socket.send(message).await.is_err() {
                    return;
                }
            }
            _ => {}
        }
    }
}
