//! Reloading: building a new snapshot from the config file and the plugin directory
//! as they are now, and swapping it in only if all of it builds.
//!
//! Every trigger (the file watcher, `SIGHUP`, `POST /admin/reload`) comes here, one
//! reload at a time. A reload that finds nothing changed (same config text, same plugin
//! hashes) does nothing. One that fails (a config error, a plugin that does not
//! compile or is built for another WIT version, a `configure` that refuses a route, a
//! route whose plugin was deleted) is logged in one line with the reason, recorded for
//! the admin API, and leaves the serving snapshot alone.
//!
//! The sections that shape listeners and threads (`[gateway]`, `[admin]`, `[reload]`,
//! `[limits]`, `[log]`, `[health]`, `[metrics]`) are read once at start; a reload that changes them says so in the log
//! and keeps the running values.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::config::Config;
use crate::metrics::ReloadLabels;
use crate::plugin::PluginRuntime;
use crate::server::Shared;
use crate::snapshot::{Snapshot, SnapshotError, Sources};
use crate::state::StateStore;

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The file watcher saw a change.
    Watch,
    /// `SIGHUP`.
    Signal,
    /// `POST /admin/reload`.
    Admin,
}

/// A reload that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new snapshot is serving.
    Applied {
        /// Its generation.
        generation: u64,
    },
    /// Nothing changed on disk; the current snapshot keeps serving.
    Unchanged {
        /// The current generation.
        generation: u64,
    },
}

/// A rejected reload: why, and the plugin it is about, if any.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rejection {
    /// When.
    #[serde(serialize_with = "rfc3339")]
    pub at: SystemTime,
    /// What asked for the reload.
    pub trigger: Trigger,
    /// The plugin at fault, when one is.
    pub plugin: Option<String>,
    /// The reason, as logged.
    pub reason: String,
}

/// The history the admin API shows.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReloadStatus {
    /// Reloads that swapped in a new snapshot.
    pub applied: u64,
    /// Reloads that were rejected.
    pub rejected: u64,
    /// The latest rejection.
    pub last_rejection: Option<Rejection>,
    /// The latest rejection about each plugin, by plugin name.
    #[serde(skip)]
    pub plugin_rejections: BTreeMap<String, Rejection>,
    /// The latest reloads that applied or were rejected, newest first (at most
    /// [`RECENT_RELOADS`]).
    pub recent: std::collections::VecDeque<ReloadEvent>,
}

/// How many reloads [`ReloadStatus::recent`] keeps.
pub const RECENT_RELOADS: usize = 20;

/// One reload that applied or was rejected.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadEvent {
    /// When.
    #[serde(serialize_with = "rfc3339")]
    pub at: SystemTime,
    /// What asked for it.
    pub trigger: Trigger,
    /// `"applied"` or `"rejected"`.
    pub result: &'static str,
    /// The generation serving after it.
    pub generation: u64,
    /// Why it was rejected.
    pub reason: Option<String>,
}

impl ReloadStatus {
    fn remember(&mut self, event: ReloadEvent) {
        self.recent.push_front(event);
        self.recent.truncate(RECENT_RELOADS);
    }
}

/// Builds and swaps snapshots for one running gateway.
pub struct Reloader {
    config_file: PathBuf,
    runtime: PluginRuntime,
    state: StateStore,
    shared: Arc<Shared>,
    /// The config the gateway started with: its restart-only sections stay in force.
    started_with: Config,
    /// One reload at a time.
    running: tokio::sync::Mutex<()>,
    status: Mutex<ReloadStatus>,
}

impl Reloader {
    /// A reloader for the gateway serving `shared`, started from `config_file`.
    pub fn new(
        config_file: PathBuf,
        runtime: PluginRuntime,
        state: StateStore,
        shared: Arc<Shared>,
    ) -> Self {
        let started_with = shared.snapshot.load().config.config.clone();
        Self {
            config_file,
            runtime,
            state,
            shared,
            started_with,
            running: tokio::sync::Mutex::new(()),
            status: Mutex::new(ReloadStatus::default()),
        }
    }

    /// What every connection shares, the current snapshot included.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The config file being served.
    pub fn config_file(&self) -> &std::path::Path {
        &self.config_file
    }

    /// A copy of the reload history.
    pub fn status(&self) -> ReloadStatus {
        self.status.lock().expect("status lock").clone()
    }

    /// Reads the config and plugins, builds a snapshot and swaps it in; on failure,
    /// logs and records the reason and keeps the current snapshot.
    pub async fn reload(&self, trigger: Trigger) -> Result<Outcome, Rejection> {
        let _one_at_a_time = self.running.lock().await;
        let current = self.shared.snapshot.load_full();
        match self.build(&current).await {
            Ok(None) => {
                // At info like the other outcomes: an operator who sent SIGHUP sees
                // that it was heard.
                tracing::info!(
                    ?trigger,
                    generation = current.generation,
                    "reload: nothing changed"
                );
                Ok(Outcome::Unchanged {
                    generation: current.generation,
                })
            }
            Ok(Some(snapshot)) => {
                let generation = snapshot.generation;
                let (routes, plugins) = (snapshot.routes.len(), snapshot.plugins.len());
                self.shared.snapshot.store(Arc::new(snapshot));
                {
                    let mut status = self.status.lock().expect("status lock");
                    status.applied += 1;
                    status.remember(ReloadEvent {
                        at: SystemTime::now(),
                        trigger,
                        result: "applied",
                        generation,
                        reason: None,
                    });
                }
                self.shared
                    .metrics
                    .reloads
                    .get_or_create(&ReloadLabels { result: "applied" })
                    .inc();
                tracing::info!(
                    event = "reload_applied",
                    ?trigger,
                    generation,
                    routes,
                    plugins,
                    "reload applied"
                );
                Ok(Outcome::Applied { generation })
            }
            Err(error) => {
                let rejection = Rejection {
                    at: SystemTime::now(),
                    trigger,
                    plugin: error.plugin().map(str::to_string),
                    reason: error.to_string(),
                };
                self.shared
                    .metrics
                    .reloads
                    .get_or_create(&ReloadLabels { result: "rejected" })
                    .inc();
                tracing::warn!(
                    event = "reload_rejected",
                    ?trigger,
                    plugin = rejection.plugin.as_deref().unwrap_or("-"),
                    generation = current.generation,
                    "reload rejected, generation {} keeps serving: {}",
                    current.generation,
                    rejection.reason
                );
                let mut status = self.status.lock().expect("status lock");
                status.rejected += 1;
                if let Some(plugin) = &rejection.plugin {
                    status
                        .plugin_rejections
                        .insert(plugin.clone(), rejection.clone());
                }
                status.last_rejection = Some(rejection.clone());
                status.remember(ReloadEvent {
                    at: rejection.at,
                    trigger,
                    result: "rejected",
                    generation: current.generation,
                    reason: Some(rejection.reason.clone()),
                });
                Err(rejection)
            }
        }
    }

    /// The state store behind the plugins' `kv`.
    pub fn state(&self) -> &StateStore {
        &self.state
    }

    /// The new snapshot, or `None` when nothing changed since `current`.
    async fn build(&self, current: &Snapshot) -> Result<Option<Snapshot>, SnapshotError> {
        let sources = Sources::read(&self.config_file, |config| self.keep_restart_only(config))?;
        if sources.fingerprint() == current.fingerprint {
            return Ok(None);
        }
        Snapshot::build(
            sources,
            &self.runtime,
            &self.state,
            current.generation + 1,
            Some(current),
        )
        .await
        .map(Some)
    }

    /// Puts the running values back into the sections that need a restart, and says
    /// which of them the file changed.
    fn keep_restart_only(&self, config: &mut Config) {
        let running = &self.started_with;
        let mut changed = Vec::new();
        // Each section named here is read only at start.
        macro_rules! keep {
            ($($section:ident),*) => {$(
                if config.$section != running.$section {
                    changed.push(concat!("[", stringify!($section), "]"));
                    config.$section = running.$section.clone();
                }
            )*};
        }
        keep!(gateway, admin, reload, limits, log, health, metrics, state);
        if !changed.is_empty() {
            tracing::warn!(
                sections = %changed.join(", "),
                "the config changes sections that take effect only after a restart; \
                 the running values stay until then"
            );
        }
    }
}

/// Serialises a time as RFC 3339 (UTC).
pub fn rfc3339<S: serde::Serializer>(at: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_rfc3339_millis(*at))
}
