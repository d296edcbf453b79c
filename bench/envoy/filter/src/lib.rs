//! `bench_filter`: the proxy-wasm HTTP filter loaded by Envoy in the wasmgate
//! benchmark (the Envoy peer's `wasm` mode).
//!
//! It performs the same header transform as wasmgate's `headers` plugin in
//! the benchmark:
//! - request: sets `x-bench-request: 1` (sent on to the upstream);
//! - response: sets `x-bench-response: 1` (sent on to the client).
//!
//! Nothing else: no body access, no logging, no per-request allocation
//! beyond what the host ABI itself requires.
//!
//! Build: `cargo build --release --target wasm32-wasip1` (see ../setup.sh);
//! output: `target/wasm32-wasip1/release/bench_filter.wasm`.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(BenchRoot) });
}}

struct BenchRoot;

impl Context for BenchRoot {}

impl RootContext for BenchRoot {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(BenchHeaders))
    }
}

struct BenchHeaders;

impl Context for BenchHeaders {}

impl HttpContext for BenchHeaders {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.set_http_request_header("x-bench-request", Some("1"));
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.set_http_response_header("x-bench-response", Some("1"));
        Action::Continue
    }
}
