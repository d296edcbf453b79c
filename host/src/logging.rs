//! Logging setup: level, console or JSON format, and an optional size-rotated log file,
//! from `[log]` with environment variables taking precedence (the names AIMS used).
//!
//! | variable | `[log]` field | meaning |
//! |---|---|---|
//! | `LOG_LEVEL`, else `RUST_LOG` | `level` | a level or filter (`info,wasmgate=debug`) |
//! | `LOG_FORMAT` | `format` | `console` or `json` |
//! | `LOG_TO_FILE` | (`file` set) | `true` also writes to the file |
//! | `LOG_FILE_PATH` | `file` | the file (default `logs/wasmgate.log`) |
//! | `LOG_FILE_MAX_BYTES` | `file_max_bytes` | rotate once the file passes this size |
//! | `LOG_FILE_BACKUP_COUNT` | `file_backups` | rotated files kept: `FILE.1` (newest) … `FILE.N` |
//!
//! The file is rotated after the write that takes it past the size, so a line is
//! never split; it holds the same format as the console, without colours.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};

use crate::config::{LogFormat, LogSettings};

/// The settings in force after the environment is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    /// The filter.
    pub level: String,
    /// The format.
    pub format: LogFormat,
    /// The file, size and backups, when writing to a file.
    pub file: Option<(PathBuf, u64, usize)>,
}

/// Applies the environment (read through `var`) over `settings`.
pub fn effective(
    settings: &LogSettings,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Effective, String> {
    let level = var("LOG_LEVEL")
        .or_else(|| var("RUST_LOG"))
        .unwrap_or_else(|| settings.level.clone());
    let format = match var("LOG_FORMAT").as_deref().map(str::to_ascii_lowercase) {
        None => settings.format,
        Some(f) if f == "json" => LogFormat::Json,
        Some(f) if f == "console" || f == "text" => LogFormat::Console,
        Some(other) => return Err(format!("LOG_FORMAT={other:?}: use \"console\" or \"json\"")),
    };
    let to_file = match var("LOG_TO_FILE").as_deref().map(str::to_ascii_lowercase) {
        None => settings.file.is_some(),
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => true,
        Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "") => false,
        Some(other) => return Err(format!("LOG_TO_FILE={other:?}: use true or false")),
    };
    let number = |name: &str, default: u64| -> Result<u64, String> {
        match var(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("{name}={v:?} is not a whole number")),
        }
    };
    let max_bytes = number("LOG_FILE_MAX_BYTES", settings.file_max_bytes)?;
    let backups = number("LOG_FILE_BACKUP_COUNT", settings.file_backups as u64)? as usize;
    if to_file && max_bytes < 1024 {
        return Err(format!("LOG_FILE_MAX_BYTES={max_bytes} is under 1024"));
    }
    let file = to_file.then(|| {
        let path = var("LOG_FILE_PATH")
            .map(PathBuf::from)
            .or_else(|| settings.file.clone())
            .unwrap_or_else(|| PathBuf::from("logs/wasmgate.log"));
        (path, max_bytes, backups)
    });
    EnvFilter::try_new(&level).map_err(|e| format!("log level {level:?}: {e}"))?;
    Ok(Effective {
        level,
        format,
        file,
    })
}

/// Installs the global subscriber for `settings` (after the environment). Call once.
pub fn init(settings: &LogSettings) -> Result<(), String> {
    let effective = effective(settings, |name| std::env::var(name).ok())?;
    let filter = EnvFilter::try_new(&effective.level).expect("checked in effective()");
    let ansi = effective.file.is_none() && std::io::stderr().is_terminal();
    let writer = match &effective.file {
        None => BoxMakeWriter::new(std::io::stderr),
        Some((path, max_bytes, backups)) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("log file {}: {e}", path.display()))?;
            }
            let file = FileRotate::new(
                path,
                AppendCount::new(*backups),
                ContentLimit::BytesSurpassed(*max_bytes as usize),
                Compression::None,
                None,
            );
            BoxMakeWriter::new(std::io::stderr.and(Mutex::new(file)))
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    let result = match effective.format {
        LogFormat::Console => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    result.map_err(|e| format!("cannot install the logger: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_environment_overrides_the_config() {
        let settings = LogSettings::default();
        let plain = effective(&settings, env(&[])).unwrap();
        assert_eq!(plain.level, "info");
        assert_eq!(plain.format, LogFormat::Console);
        assert_eq!(plain.file, None);

        let set = effective(
            &settings,
            env(&[
                ("LOG_LEVEL", "debug"),
                ("RUST_LOG", "warn"),
                ("LOG_FORMAT", "JSON"),
                ("LOG_TO_FILE", "true"),
                ("LOG_FILE_PATH", "/tmp/x.log"),
                ("LOG_FILE_MAX_BYTES", "2048"),
                ("LOG_FILE_BACKUP_COUNT", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(set.level, "debug");
        assert_eq!(set.format, LogFormat::Json);
        assert_eq!(set.file, Some((PathBuf::from("/tmp/x.log"), 2048, 3)));

        let default_file = effective(&settings, env(&[("LOG_TO_FILE", "1")])).unwrap();
        assert_eq!(
            default_file.file.unwrap().0,
            PathBuf::from("logs/wasmgate.log")
        );
    }

    #[test]
    fn bad_values_are_named() {
        let settings = LogSettings::default();
        for (name, value) in [
            ("LOG_FORMAT", "xml"),
            ("LOG_TO_FILE", "maybe"),
            ("LOG_FILE_MAX_BYTES", "ten"),
            ("LOG_LEVEL", "info,=="),
        ] {
            let error = effective(&settings, env(&[(name, value)])).unwrap_err();
            assert!(
                error.contains(name) || error.contains(value),
                "{name}: {error}"
            );
        }
    }
}
