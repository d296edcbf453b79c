//! Redis for the end-to-end tests: the server `scripts/test.sh` starts for the whole
//! run (`WASMGATE_TEST_REDIS_URL`), or one started here; and a server of a test's own
//! that the test may stop and start again on the same port.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` on a loopback port, stopped when dropped.
pub struct RedisServer {
    /// Its port.
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port (no persistence).
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("address")
            .port();
        let mut server = Self { port, child: None };
        server.resume();
        server
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops it (as a crash would: SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on its port, empty, and waits until it answers.
    pub fn resume(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect(
                "redis-server is needed: run scripts/test.sh (which installs it) or \
                 `apt-get install redis-server`",
            );
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The URL of the run's shared Redis (`WASMGATE_TEST_REDIS_URL`), else of a server
/// started for the caller, which keeps it alive.
pub fn shared_redis() -> (String, Option<RedisServer>) {
    match std::env::var("WASMGATE_TEST_REDIS_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let server = RedisServer::start();
            (server.url(), Some(server))
        }
    }
}

/// `[state]` on Redis at `url`, under a key prefix of its own (so tests sharing a
/// server do not see each other's keys).
pub fn redis_state_toml(url: &str, key_prefix: &str) -> String {
    format!(
        "[state]\nbackend = \"redis\"\n\n[state.redis]\nurl = {url:?}\nkey_prefix = {key_prefix:?}\n\n"
    )
}
