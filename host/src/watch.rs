//! Watching the plugin directory, the config file and the files it names that are
//! read again on reload (TLS certificates, keys and CA files), and `SIGHUP`: both end in
//! [`Reloader::reload`].
//!
//! File events are debounced: a reload starts once no relevant event has arrived for
//! the debounce period, so copying a file (many writes) or an editor's save (write a
//! temporary file, rename it) makes one reload. Only `NAME.wasm` files in the plugin
//! directory, the config file itself and the named files count; an upload to a
//! temporary name is ignored until it is renamed into place.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::reload::{Reloader, Trigger};
use crate::snapshot::plugin_file_name;

/// Keeps the file watcher running; dropping it stops watching.
pub struct WatchGuard {
    _watcher: notify::RecommendedWatcher,
}

/// Watches `plugin_dir`, `config_file` and `files` and reloads after each burst of
/// changes.
pub fn watch_files(
    reloader: Arc<Reloader>,
    plugin_dir: &Path,
    config_file: &Path,
    files: &[PathBuf],
    debounce: Duration,
) -> anyhow::Result<WatchGuard> {
    let plugin_dir = plugin_dir
        .canonicalize()
        .map_err(|e| anyhow::anyhow!("plugin_dir {}: {e}", plugin_dir.display()))?;
    let (config_dir, config_name) = canonical(config_file, "config file ")?;
    let config_path = config_dir.join(&config_name);
    // Each named file by its directory's canonical path (the watcher reports those),
    // and the directories to watch besides the two above.
    let mut named = Vec::new();
    let mut dirs: Vec<PathBuf> = Vec::new();
    for file in files {
        let (dir, name) = canonical(file, "")?;
        named.push(dir.join(name));
        if dir != plugin_dir && dir != config_dir && !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }

    let (changed, mut changes) = mpsc::unbounded_channel::<PathBuf>();
    let watched_plugin_dir = plugin_dir.clone();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) => {
                if !matters(&event.kind) {
                    return;
                }
                for path in event.paths {
                    let is_plugin = path.parent() == Some(watched_plugin_dir.as_path())
                        && path
                            .file_name()
                            .and_then(|n| n.to_str())
                            .and_then(plugin_file_name)
                            .is_some();
                    if is_plugin || path == config_path || named.contains(&path) {
                        let _ = changed.send(path);
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "file watcher error"),
        })?;
    watcher.watch(&plugin_dir, RecursiveMode::NonRecursive)?;
    if config_dir != plugin_dir {
        watcher.watch(&config_dir, RecursiveMode::NonRecursive)?;
    }
    for dir in &dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    tracing::info!(
        plugin_dir = %plugin_dir.display(),
        config = %config_dir.join(&config_name).display(),
        debounce_ms = debounce.as_millis() as u64,
        "watching for changes"
    );

    tokio::spawn(async move {
        while let Some(first) = changes.recv().await {
            tracing::debug!(path = %first.display(), "change seen; waiting for quiet");
            loop {
                match tokio::time::timeout(debounce, changes.recv()).await {
                    Ok(Some(_)) => continue,
                    Ok(None) => return,
                    Err(_quiet) => break,
                }
            }
            // The outcome is logged and recorded by the reloader.
            let _ = reloader.reload(Trigger::Watch).await;
        }
    });
    Ok(WatchGuard { _watcher: watcher })
}

/// `file`'s directory, canonical (as the watcher reports paths), and its name; errors
/// start with `what`.
fn canonical(file: &Path, what: &str) -> anyhow::Result<(PathBuf, std::ffi::OsString)> {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .canonicalize()
        .map_err(|e| anyhow::anyhow!("{what}{}: {e}", file.display()))?;
    let name = file
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("{what}{} has no name", file.display()))?
        .to_os_string();
    Ok((dir, name))
}

/// Whether an event can change what a reload reads: anything but reads and opens.
fn matters(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(notify::event::AccessKind::Close(notify::event::AccessMode::Write)) => {
            true
        }
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Reloads on every `SIGHUP`, for as long as the process runs.
pub fn reload_on_sighup(reloader: Arc<Reloader>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; reload with the admin API");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP received: reloading");
            let _ = reloader.reload(Trigger::Signal).await;
        }
    });
    #[cfg(not(unix))]
    let _ = reloader;
}
