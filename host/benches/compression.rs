//! What response compression costs: for each coding and level, 4 MiB bodies (API-like
//! JSON, log lines, and this repository's own source and docs) through the gateway's
//! own path (`CompressionPolicy::apply`, the encoder fed 64 KiB frames as from an
//! upstream) on one thread: CPU time per MiB (median of 5 samples of 4 bodies each,
//! from `/proc/thread-self/schedstat`), the ratio, and the most heap the encoders held
//! at once (counted by this binary's allocator; zstd allocates in C, which it does not
//! see).
//!
//! `cargo bench -p wasmgate --bench compression` (release build, no criterion).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use bytes::Bytes;
use http::{Method, Response, header};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_spanned::Spanned;
use wasmgate::compress::{CompressionPolicy, Encoding};
use wasmgate::config::CompressionConfig;
use wasmgate::metrics::Metrics;
use wasmgate::upstream::{BoxError, ProxyBody};

/// The system allocator, counting the bytes held and their peak.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to `System` unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let held = HELD.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(held, Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size(), Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: usize = 1 << 20;
const BODY: usize = 4 * MIB;
const RUNS: usize = 5;
/// Bodies compressed per sample: this machine's CPU clock ticks in milliseconds.
const REPEAT: usize = 4;

/// An API's JSON: records with ids, names, addresses, numbers and flags.
fn json_body() -> Bytes {
    let mut text = String::from("[");
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut i = 0;
    while text.len() < BODY {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.push_str(&format!(
            r#"{{"id":{i},"uuid":"{x:016x}","name":"customer {}","email":"c{}@example.com","plan":"{}","balance":{}.{:02},"active":{},"tags":["{}","eu"]}},"#,
            x % 50_000,
            x % 50_000,
            ["free", "pro", "team"][(x % 3) as usize],
            x % 100_000,
            x % 100,
            x.is_multiple_of(2),
            ["new", "vip", "churn-risk", "trial"][(x % 4) as usize],
        ));
        i += 1;
    }
    text.truncate(BODY - 1);
    text.push(']');
    Bytes::from(text)
}

/// Log-like text lines.
fn text_body() -> Bytes {
    let mut text = String::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut line = 0;
    while text.len() < BODY {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.push_str(&format!(
            "2026-12-01T12:{:02}:{:02}Z level=info route=orders status={} took_us={} id={x:016x} line={line}\n",
            (x >> 8) % 60,
            x % 60,
            200 + (x % 4) * 100,
            x % 10_000
        ));
        line += 1;
    }
    text.truncate(BODY);
    Bytes::from(text)
}

/// Real text: this repository's Rust and Markdown files (not `target/`), in path
/// order, cut at 4 MiB.
fn source_body() -> Bytes {
    fn walk(dir: &std::path::Path, files: &mut Vec<std::path::PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("a directory")
            .map(|e| e.expect("an entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap().to_string_lossy();
            if path.is_dir() && !name.starts_with('.') && name != "target" {
                walk(&path, files);
            } else if name.ends_with(".rs") || name.ends_with(".md") {
                files.push(path);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut text = Vec::new();
    for file in files {
        text.extend(std::fs::read(file).expect("readable"));
    }
    text.truncate(BODY);
    Bytes::from(text)
}

/// This thread's time on a CPU, in ns.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .expect("schedstat")
        .split_whitespace()
        .next()
        .and_then(|ns| ns.parse().ok())
        .expect("on-CPU ns")
}

fn policy(encoding: Encoding, level: i32) -> CompressionPolicy {
    let config = CompressionConfig {
        encodings: vec![Spanned::new(0..0, encoding.as_str().to_string())],
        levels: BTreeMap::from([(encoding.as_str().to_string(), Spanned::new(0..0, level))]),
        ..CompressionConfig::default()
    };
    CompressionPolicy::new("bench", &config, &Metrics::new()).expect("enabled")
}

/// `body` as an upstream's response, in 64 KiB frames.
fn streamed(body: &Bytes) -> Response<ProxyBody> {
    let frames: Vec<Result<Frame<Bytes>, BoxError>> = body
        .chunks(64 * 1024)
        .map(|c| Ok(Frame::data(body.slice_ref(c))))
        .collect();
    let streamed: ProxyBody = BodyExt::boxed(StreamBody::new(futures_util::stream::iter(frames)));
    let mut response = Response::new(streamed);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    response
}

/// One sample: (CPU ns per body, compressed bytes, peak heap held by the encoder).
async fn run(policy: &CompressionPolicy, encoding: Encoding, body: &Bytes) -> (u64, usize, usize) {
    let responses: Vec<_> = (0..REPEAT).map(|_| streamed(body)).collect();
    let base = HELD.load(Relaxed);
    PEAK.store(base, Relaxed);
    let started = cpu_ns();
    let mut sent = 0;
    for response in responses {
        let mut out = policy
            .apply(&Method::GET, Some(encoding), response)
            .into_body();
        sent = 0;
        while let Some(frame) = out.frame().await {
            // Counted and dropped, as a socket would take it.
            sent += frame.unwrap().data_ref().map_or(0, Bytes::len);
        }
    }
    let took = (cpu_ns() - started) / REPEAT as u64;
    (took, sent, PEAK.load(Relaxed).saturating_sub(base))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let bodies = [
        ("JSON", json_body()),
        ("logs", text_body()),
        ("source", source_body()),
    ];
    let levels = [
        (Encoding::Gzip, &[1, 4, 6, 9][..]),
        (Encoding::Brotli, &[1, 2, 3, 4, 5]),
        (Encoding::Zstd, &[1, 2, 3, 6, 9]),
    ];
    println!(
        "| body | coding | level | CPU ms per MiB (median of {RUNS}) | MiB/s | ratio | encoder heap peak |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, body) in &bodies {
        for (encoding, levels) in levels {
            for &level in levels {
                let policy = policy(encoding, level);
                let mut times = Vec::new();
                let (mut sent, mut heap) = (0, 0);
                for _ in 0..RUNS {
                    let (ns, bytes, peak) = runtime.block_on(run(&policy, encoding, body));
                    times.push(ns);
                    (sent, heap) = (bytes, heap.max(peak));
                }
                times.sort_unstable();
                let ms_per_mib = times[RUNS / 2] as f64 / 1e6 / (body.len() as f64 / MIB as f64);
                let default = if level == encoding.default_level() {
                    " (default)"
                } else {
                    ""
                };
                let heap = if encoding == Encoding::Zstd {
                    "(in C)".to_string()
                } else {
                    format!("{} KiB", heap / 1024)
                };
                println!(
                    "| {name} | {} | {level}{default} | {ms_per_mib:.1} | {:.0} | {:.2} | {heap} |",
                    encoding.as_str(),
                    1000.0 / ms_per_mib,
                    body.len() as f64 / sent as f64,
                );
            }
        }
    }
}
