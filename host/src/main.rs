//! The `wasmgate` binary: parse the command line, run (logging is set up by `cli`
//! once the config is read, since `[log]` lives there).

use clap::Parser;

/// mimalloc, not glibc's malloc: a request's buffers are often freed on another
/// worker thread than the one that allocated them, which glibc serialises on the
/// arena's lock (see BENCHMARKS.md, "Optimisation log").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the `mi_option_t` enum of the bundled mimalloc 2.x
/// (`libmimalloc-sys` does not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory freed is given back to the OS at once rather than 10 ms later: the
/// threads that compile plugins at start then sleep, and a thread's delayed purges
/// run only when it allocates again, so their memory stayed resident. The
/// environment (`MIMALLOC_PURGE_DELAY`) still decides when it is set.
#[allow(unsafe_code)] // the one FFI call of the binary
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets an option of the allocator, which may happen at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
}

fn main() {
    tune_allocator();
    let cli = wasmgate::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            std::process::exit(1);
        }
    };
    if let Err(fatal) = runtime.block_on(wasmgate::cli::run(cli)) {
        eprintln!("error: {fatal:#}");
        std::process::exit(fatal.exit_code());
    }
}
