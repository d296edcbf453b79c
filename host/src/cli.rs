//! The command line: `wasmgate run` serves a config, `wasmgate check` validates one
//! (including loading and configuring every plugin) without serving.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use clap::{Parser, Subcommand};

use crate::config::LoadedConfig;
use crate::plugin::PluginRuntime;
use crate::server::{self, Shared};
use crate::snapshot::Snapshot;
use crate::state::StateStore;

/// An HTTP API gateway whose every policy is a sandboxed WebAssembly component.
#[derive(Debug, Parser)]
#[command(name = "wasmgate", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the routes of a config file.
    Run {
        /// The config file.
        #[arg(short, long, default_value = "wasmgate.toml")]
        config: PathBuf,
    },
    /// Validate a config file and every plugin it uses, then exit.
    Check {
        /// The config file.
        #[arg(short, long, default_value = "wasmgate.toml")]
        config: PathBuf,
    },
}

/// A failure that ends the process, with the exit code to use.
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    /// The config (or a plugin it names) is unusable: exit code 2.
    #[error("{0}")]
    Config(String),
    /// Anything else: exit code 1.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Fatal {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Config(_) => 2,
            Self::Other(_) => 1,
        }
    }
}

/// Loads the config and builds the first snapshot.
async fn prepare(file: &std::path::Path) -> Result<(LoadedConfig, StateStore, Snapshot), Fatal> {
    let loaded = LoadedConfig::load(file).map_err(|e| Fatal::Config(e.to_string()))?;
    let data_dir = &loaded.config.gateway.data_dir;
    std::fs::create_dir_all(data_dir).map_err(|e| {
        Fatal::Config(format!(
            "{}: cannot create data_dir {}: {e}",
            file.display(),
            data_dir.display()
        ))
    })?;
    let state = StateStore::open(&data_dir.join("state")).map_err(|e| {
        anyhow::anyhow!("cannot open the state store in {}: {e}", data_dir.display())
    })?;
    let runtime = PluginRuntime::new()?;
    let snapshot = Snapshot::build(&loaded, &runtime, &state, 1)
        .await
        .map_err(|e| Fatal::Config(e.to_string()))?;
    Ok((loaded, state, snapshot))
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), Fatal> {
    match cli.command {
        Command::Check { config } => {
            let (_, _, snapshot) = prepare(&config).await?;
            println!(
                "{}: ok ({} routes, {} plugins)",
                config.display(),
                snapshot.routes.len(),
                snapshot.plugins.len()
            );
            Ok(())
        }
        Command::Run { config } => {
            let (loaded, state, snapshot) = prepare(&config).await?;
            let settings = &loaded.config.gateway;
            let listener = tokio::net::TcpListener::bind(settings.listen.get_ref().as_str())
                .await
                .map_err(|e| {
                    anyhow::anyhow!("cannot listen on {}: {e}", settings.listen.get_ref())
                })?;
            let address = listener.local_addr().map_err(anyhow::Error::from)?;
            tracing::info!(
                %address,
                routes = snapshot.routes.len(),
                plugins = snapshot.plugins.len(),
                config = %config.display(),
                "wasmgate started"
            );
            // One machine-readable line on stdout, for scripts and tests.
            println!("wasmgate listening on http://{address}");
            let shared = Arc::new(Shared {
                snapshot: ArcSwap::from_pointee(snapshot),
            });
            server::serve(
                listener,
                shared,
                loaded.config.limits.clone(),
                Duration::from_millis(settings.shutdown_grace_ms),
                shutdown_signal(),
            )
            .await;
            state
                .flush()
                .map_err(|e| anyhow::anyhow!("flushing the state store: {e}"))?;
            tracing::info!("wasmgate stopped");
            Ok(())
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}
