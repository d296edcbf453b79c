//! WebSocket load for `bench/websockets.sh`.
//!
//! - `ws-bench upstream ADDRESS`: a WebSocket echo server (every text or binary
//!   message sent back); prints `listening on ADDRESS`.
//! - `ws-bench clients URL TOTAL ECHOING HOLD_S ECHO_S`: opens TOTAL WebSockets to
//!   URL (200 handshakes at a time), holds them all idle for HOLD_S seconds, then has
//!   ECHOING of them each send a 64-byte message and wait for its echo, again and
//!   again, for ECHO_S seconds; checks that every connection is still open, closes all
//!   with 1000, and prints one JSON line: connections opened and failed, the time to
//!   open them, echoes done, their rate, latency percentiles, and connections found
//!   closed. Progress goes to stderr (`held`, `echoing`, `closing`) so a script can
//!   sample the gateway in each phase.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.first().map(String::as_str) {
        Some("upstream") if args.len() == 2 => runtime.block_on(upstream(&args[1])),
        Some("clients") if args.len() == 6 => {
            let number = |i: usize| -> u64 { args[i].parse().expect("a number") };
            runtime.block_on(clients(
                &args[1],
                number(2) as usize,
                number(3) as usize,
                Duration::from_secs(number(4)),
                Duration::from_secs(number(5)),
            ));
        }
        _ => {
            eprintln!(
                "usage: ws-bench upstream ADDRESS | ws-bench clients URL TOTAL ECHOING HOLD_S ECHO_S"
            );
            std::process::exit(2);
        }
    }
}

/// Small buffers: the benchmark measures the gateway, and both ends hold many sockets.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

async fn upstream(address: &str) {
    let listener = tokio::net::TcpListener::bind(address).await.expect("bind");
    println!("listening on {}", listener.local_addr().expect("address"));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let Ok(mut socket) =
                tokio_tungstenite::accept_async_with_config(tcp, Some(config())).await
            else {
                return;
            };
            while let Some(Ok(message)) = socket.next().await {
                if (message.is_text() || message.is_binary()) && socket.send(message).await.is_err()
                {
                    return;
                }
            }
        });
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn clients(url: &str, total: usize, echoing: usize, hold: Duration, echo_for: Duration) {
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(200));
    let mut opening = Vec::with_capacity(total);
    for _ in 0..total {
        let gate = gate.clone();
        let url = url.to_string();
        opening.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore");
            let connect = tokio_tungstenite::connect_async_with_config(url, Some(config()), false);
            match tokio::time::timeout(Duration::from_secs(30), connect).await {
                Ok(Ok((socket, _))) => Some(socket),
                _ => None,
            }
        }));
    }
    let mut sockets: Vec<Socket> = Vec::with_capacity(total);
    for task in opening {
        if let Some(socket) = task.await.expect("task") {
            sockets.push(socket);
        }
    }
    let open_s = started.elapsed().as_secs_f64();
    let failed = total - sockets.len();
    eprintln!("held {} ({failed} failed) in {open_s:.1} s", sockets.len());
    tokio::time::sleep(hold).await;

    eprintln!("echoing on {echoing}");
    let rest = sockets.split_off(echoing.min(sockets.len()));
    let deadline = Instant::now() + echo_for;
    let mut echoers = Vec::new();
    for mut socket in sockets {
        echoers.push(tokio::spawn(async move {
            let payload = "x".repeat(64);
            let mut latencies = Vec::new();
            let mut broken = false;
            while Instant::now() < deadline {
                let sent = Instant::now();
                if socket.send(Message::text(payload.clone())).await.is_err() {
                    broken = true;
                    break;
                }
                match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
                    Ok(Some(Ok(Message::Text(_)))) => latencies.push(sent.elapsed()),
                    _ => {
                        broken = true;
                        break;
                    }
                }
            }
            (socket, latencies, broken)
        }));
    }
    let mut latencies = Vec::new();
    let mut sockets = Vec::new();
    let mut closed = 0;
    for echoer in echoers {
        let (socket, mut own, broken) = echoer.await.expect("echoer");
        latencies.append(&mut own);
        closed += usize::from(broken);
        sockets.push(socket);
    }
    sockets.extend(rest);

    eprintln!("closing");
    // Every idle one must still be open: a ping gets its pong.
    let gate = Arc::new(Semaphore::new(500));
    let mut checks = Vec::new();
    for mut socket in sockets {
        let gate = gate.clone();
        checks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore");
            let alive = async {
                socket.send(Message::Ping("p".into())).await.ok()?;
                loop {
                    match socket.next().await? {
                        Ok(Message::Pong(_)) => return Some(()),
                        Ok(_) => continue,
                        Err(_) => return None,
                    }
                }
            };
            let alive = tokio::time::timeout(Duration::from_secs(10), alive)
                .await
                .ok()
                .flatten()
                .is_some();
            let _ = socket.close(None).await;
            alive
        }));
    }
    for check in checks {
        closed += usize::from(!check.await.expect("check"));
    }
    latencies.sort();
    let percentile = |p: f64| -> f64 {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{}",
        serde_json::json!({
            "opened": total - failed,
            "failed": failed,
            "open_s": open_s,
            "echoes": latencies.len(),
            "echoes_per_s": latencies.len() as f64 / echo_for.as_secs_f64(),
            "p50_ms": percentile(0.5),
            "p99_ms": percentile(0.99),
            "max_ms": latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
            "found_closed": closed,
        })
    );
}
