//! The command line: `wasmgate run` serves a config (the gateway listener, the admin
//! API, the file watcher and `SIGHUP` reloads), `wasmgate check` validates one
//! (including loading and configuring every plugin) without serving, and `wasmgate
//! plugin new | build | inspect` (`cli/plugin.rs`) serve plugin authors.

mod plugin;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use clap::{Parser, Subcommand};

use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::health::{self, Health};
use crate::logging;
use crate::metrics::Metrics;
use crate::plugin::PluginRuntime;
use crate::reload::Reloader;
use crate::server::{self, Shared};
use crate::snapshot::{Snapshot, Sources};
use crate::state::StateStore;
use crate::status::BuiltinPaths;
use crate::watch;

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
    /// Make, build and inspect plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
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

/// Reads the config and the plugins and builds the first snapshot, keeping state in
/// `state_dir` (the config's `data_dir/state` when `None`). A check (`state_dir`
/// given) logs only warnings and errors unless `LOG_LEVEL` or `RUST_LOG` says
/// otherwise: its verdict is the output.
async fn prepare(
    file: &std::path::Path,
    state_dir: Option<&std::path::Path>,
) -> Result<(StateStore, PluginRuntime, Snapshot), Fatal> {
    let sources = Sources::read(file, |_| {}).map_err(|e| Fatal::Config(e.to_string()))?;
    let mut log = sources.config.config.log.clone();
    if state_dir.is_some() {
        log.level = "warn".into();
    }
    logging::init(&log).map_err(|e| Fatal::Config(format!("{}: [log]: {e}", file.display())))?;
    let gateway = &sources.config.config.gateway;
    let data_dir = gateway.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|e| {
        Fatal::Config(format!(
            "{}: cannot create data_dir {}: {e}",
            file.display(),
            data_dir.display()
        ))
    })?;
    let state = open_state(file, &sources.config, &data_dir, state_dir).await?;
    let cache_dir = gateway.plugin_cache.then(|| data_dir.join("plugin-cache"));
    let runtime = PluginRuntime::new(cache_dir.as_deref(), Arc::new(Metrics::new()))?;
    let snapshot = Snapshot::build(sources, &runtime, &state, 1, None)
        .await
        .map_err(|e| Fatal::Config(e.to_string()))?;
    Ok((state, runtime, snapshot))
}

/// The state store of `[state]`: sled in `state_dir` (the config's `data_dir/state`
/// when `None`), or Redis, whose reachability is logged (the gateway starts either
/// way: `kv` calls fail until Redis answers).
async fn open_state(
    file: &std::path::Path,
    loaded: &crate::config::LoadedConfig,
    data_dir: &std::path::Path,
    state_dir: Option<&std::path::Path>,
) -> Result<StateStore, Fatal> {
    let settings = &loaded.config.state;
    let redis = match (settings.backend, &settings.redis) {
        (crate::config::StateBackend::Redis, Some(redis)) => redis,
        _ => {
            let dir = state_dir.map_or_else(|| data_dir.join("state"), |d| d.to_path_buf());
            return StateStore::open(&dir).map_err(|e| {
                Fatal::Other(anyhow::anyhow!(
                    "cannot open the state store in {}: {e}",
                    dir.display()
                ))
            });
        }
    };
    let place = loaded.place(redis.span().start);
    let redis = redis.get_ref();
    // A password file's line ending is not part of the password.
    let password = match &redis.password {
        None => None,
        Some(source) => Some(
            source
                .read()
                .and_then(|bytes| {
                    String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())
                })
                .map(|text| text.trim_end_matches(['\r', '\n']).to_string())
                .map_err(|why| Fatal::Config(format!("{place}: [state.redis] password: {why}")))?,
        ),
    };
    let options = crate::state::RedisOptions {
        url: redis.url.clone(),
        password,
        key_prefix: redis.key_prefix.clone(),
        pool_size: redis.pool_size,
        timeout: std::time::Duration::from_millis(redis.timeout_ms),
    };
    let state = StateStore::redis(&options)
        .map_err(|e| Fatal::Config(format!("{}: {e}", file.display())))?;
    match state.check().await {
        Ok(()) => tracing::info!(url = %state.describe()["url"], "state store: redis"),
        Err(error) => tracing::warn!(
            %error,
            "state store: redis does not answer yet; kv calls fail until it does"
        ),
    }
    Ok(state)
}

/// Binds a listener, naming what it is for in the error.
async fn bind(what: &str, address: &str) -> Result<tokio::net::TcpListener, Fatal> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| Fatal::Other(anyhow::anyhow!("cannot listen on {address} ({what}): {e}")))
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), Fatal> {
    match cli.command {
        Command::Plugin(command) => plugin::run(command),
        Command::Check { config } => {
            // A scratch state store: the running gateway holds the real one's lock.
            let scratch = tempfile::tempdir().map_err(anyhow::Error::from)?;
            let (_, _, snapshot) = prepare(&config, Some(scratch.path())).await?;
            let count = |n: usize, what: &str| match n {
                1 => format!("1 {what}"),
                n => format!("{n} {what}s"),
            };
            println!(
                "{}: ok ({}, {})",
                config.display(),
                count(snapshot.routes.len(), "route"),
                count(snapshot.plugins.len(), "plugin")
            );
            Ok(())
        }
        Command::Run { config } => {
            let (state, runtime, snapshot) = prepare(&config, None).await?;
            let settings = snapshot.config.config.clone();
            let listener = bind("gateway", settings.gateway.listen.get_ref()).await?;
            let address = listener.local_addr().map_err(anyhow::Error::from)?;
            let admin_listener = match settings.admin.enabled {
                true => Some(bind("admin API", settings.admin.listen.get_ref()).await?),
                false => None,
            };
            tracing::info!(
                event = "startup",
                %address,
                version = env!("CARGO_PKG_VERSION"),
                routes = snapshot.routes.len(),
                plugins = snapshot.plugins.len(),
                config = %config.display(),
                "wasmgate started"
            );
            let metrics = runtime.metrics().clone();
            metrics.generation.set(1);
            let health = Arc::new(Health::new(metrics.clone()));
            let shared = Arc::new(Shared {
                snapshot: ArcSwap::from_pointee(snapshot),
                metrics,
                health: health.clone(),
                builtin: BuiltinPaths {
                    health: settings.health.path.clone(),
                    metrics: settings.metrics.path.clone(),
                },
            });
            let reloader = Arc::new(Reloader::new(
                config.clone(),
                runtime,
                state.clone(),
                shared.clone(),
            ));
            let stop = CancellationToken::new();
            // The admin listener outlives the gateway's drain, so that an operator or
            // an orchestrator sees `/health/ready` answer 503 while in-flight requests
            // finish.
            let drained = CancellationToken::new();
            health::spawn_prober(
                health.clone(),
                shared.clone(),
                state.clone(),
                Duration::from_millis(settings.health.interval_ms),
                Duration::from_millis(settings.health.timeout_ms),
                stop.clone(),
            );
            crate::state::spawn_sweeper(
                state.clone(),
                shared.metrics.clone(),
                Duration::from_millis(settings.state.sweep_interval_ms),
                stop.clone(),
            );
            let admin = admin_listener
                .map(|listener| {
                    let admin_address = listener.local_addr().map_err(anyhow::Error::from)?;
                    tracing::info!(address = %admin_address, "admin API started");
                    // Machine-readable lines on stdout, for scripts and tests.
                    println!("wasmgate admin on http://{admin_address}");
                    let stopped = drained.clone();
                    Ok::<_, Fatal>(tokio::spawn(admin::serve(
                        listener,
                        reloader.clone(),
                        async move { stopped.cancelled().await },
                    )))
                })
                .transpose()?;
            let _watching = match settings.reload.watch {
                true => Some(
                    watch::watch_files(
                        reloader.clone(),
                        &settings.gateway.plugin_dir,
                        &config,
                        &settings.tls_files(),
                        Duration::from_millis(settings.reload.debounce_ms),
                    )
                    .map_err(|e| Fatal::Other(e.context("cannot watch for changes")))?,
                ),
                false => None,
            };
            watch::reload_on_sighup(reloader.clone());
            let scheme = match settings.gateway.tls {
                Some(_) => "https",
                None => "http",
            };
            println!("wasmgate listening on {scheme}://{address}");
            let stopping = stop.clone();
            let grace = Duration::from_millis(settings.gateway.shutdown_grace_ms);
            server::serve(
                listener,
                shared,
                settings.limits.clone(),
                grace,
                async move {
                    shutdown_signal().await;
                    health.set_draining();
                    stopping.cancel();
                },
            )
            .await;
            drained.cancel();
            if let Some(mut admin) = admin {
                // Its own requests get the same grace, and no more.
                if tokio::time::timeout(grace, &mut admin).await.is_err() {
                    tracing::warn!("admin requests outlived the grace period; closing them");
                    admin.abort();
                }
            }
            drop(reloader);
            state
                .flush()
                .map_err(|e| anyhow::anyhow!("flushing the state store: {e}"))?;
            tracing::info!(event = "shutdown", "wasmgate stopped");
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
