//! The tests' echo upstream (`wasmgate_e2e::Upstream`) as a process of its own, for
//! tests that kill an upstream with SIGKILL mid-run.
//!
//! Usage: `test-upstream ADDRESS`; prints `listening on ADDRESS` once it accepts.

use std::io::Write;

fn main() {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()
        .expect("ADDRESS is host:port");
    let upstream = wasmgate_e2e::Upstream::start_at(address, Default::default());
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", upstream.address).expect("stdout");
    stdout.flush().expect("stdout");
    loop {
        std::thread::park();
    }
}
