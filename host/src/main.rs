//! The `wasmgate` binary: parse the command line, run (logging is set up by `cli`
//! once the config is read, since `[log]` lives there).

use clap::Parser;

fn main() {
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
