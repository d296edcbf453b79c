//! Logging setup: level, console or JSON format, and an optional size-rotated log file,
//! from `[log]` with environment variables taking precedence (the names AIMS used).
//!
//! | variable | `[log]` field | meaning |
//! |---|---|---|
//! | `LOG_LEVEL`, else `RUST_LOG` | `level` | a level or filter (`info,wasmgate=debug`); Python's level names too (`WARNING`, `CRITICAL`) |
//! | `LOG_FORMAT` | `format` | `console` or `json` |
//! | `JSON_LOGS` (without `LOG_FORMAT`) | `format` | `true`: `json`, `false`: `console` |
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
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

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
    let level = level_filter(
        &var("LOG_LEVEL")
            .or_else(|| var("RUST_LOG"))
            .unwrap_or_else(|| settings.level.clone()),
    );
    let format = match var("LOG_FORMAT").as_deref().map(str::to_ascii_lowercase) {
        Some(f) if f == "json" => LogFormat::Json,
        Some(f) if f == "console" || f == "text" => LogFormat::Console,
        Some(other) => return Err(format!("LOG_FORMAT={other:?}: use \"console\" or \"json\"")),
        None => match var("JSON_LOGS").as_deref().map(str::to_ascii_lowercase) {
            None => settings.format,
            Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => LogFormat::Json,
            Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "") => LogFormat::Console,
            Some(other) => return Err(format!("JSON_LOGS={other:?}: use true or false")),
        },
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

/// `filter` with each level written as Python's `logging` names it (`WARNING`,
/// `CRITICAL`, `FATAL`, `NOTSET`, any case: the seeds' `LOG_LEVEL` values) or in
/// capitals (`DEBUG`) turned into the filter's own (`warn`, `error`, `error`, `trace`,
/// `debug`), alone or after `target=`. Anything else is left as it is: a bare word
/// that is no level is a target (`wasmgate` shows only the gateway's lines).
fn level_filter(filter: &str) -> String {
    let level = |word: &str| -> Option<&'static str> {
        Some(match word.trim().to_ascii_lowercase().as_str() {
            "trace" | "notset" => "trace",
            "debug" => "debug",
            "info" => "info",
            "warn" | "warning" => "warn",
            "error" | "critical" | "fatal" => "error",
            "off" => "off",
            _ => return None,
        })
    };
    filter
        .split(',')
        .map(|directive| match directive.rsplit_once('=') {
            Some((target, word)) => match level(word) {
                Some(level) => format!("{target}={level}"),
                None => directive.to_string(),
            },
            None => level(directive).map_or_else(|| directive.to_string(), str::to_string),
        })
        .collect::<Vec<_>>()
        .join(",")
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
    JSON.store(effective.format == LogFormat::Json, Ordering::Relaxed);
    let result = match effective.format {
        LogFormat::Console => builder.try_init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(MergePluginFields(
                tracing_subscriber::fmt::format()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false),
            ))
            .try_init(),
    };
    result.map_err(|e| format!("cannot install the logger: {e}"))
}

/// Whether log lines are JSON (set once by [`init`]).
static JSON: AtomicBool = AtomicBool::new(false);

/// The field that carries a plugin's structured fields (a JSON object as text) from
/// [`plugin_line`] to the JSON formatter, which makes each a field of the line.
const PLUGIN_FIELDS: &str = "plugin_fields";

/// Most structured fields one plugin log line keeps.
pub const MAX_PLUGIN_FIELDS: usize = 32;

/// Keys of a plugin log line that the gateway writes itself.
const RESERVED_KEYS: [&str; 9] = [
    "timestamp",
    "level",
    "target",
    "message",
    "plugin",
    "route",
    "request_id",
    "trace_id",
    "dropped_fields",
];

/// A plugin's structured fields, checked: names `[a-z_][a-z0-9_]*` of at most 64
/// bytes, not a key the gateway writes, at most [`MAX_PLUGIN_FIELDS`]; the rest are
/// dropped and counted.
#[derive(Debug, Default)]
pub struct PluginFields {
    fields: Vec<(String, serde_json::Value)>,
    dropped: usize,
}

impl PluginFields {
    /// Checks `fields`, keeping the first of a repeated name.
    pub fn new(fields: impl IntoIterator<Item = (String, serde_json::Value)>) -> Self {
        let mut kept = Self::default();
        for (name, value) in fields {
            let valid = crate::metric_rules::is_identifier(&name)
                && name.len() <= 64
                && !RESERVED_KEYS.contains(&name.as_str())
                && !kept.fields.iter().any(|(n, _)| *n == name);
            if valid && kept.fields.len() < MAX_PLUGIN_FIELDS {
                kept.fields.push((name, value));
            } else {
                kept.dropped += 1;
            }
        }
        kept
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.dropped == 0
    }

    /// The fields as one JSON object.
    fn json(&self) -> String {
        let mut object: serde_json::Map<String, serde_json::Value> =
            self.fields.iter().cloned().collect();
        if self.dropped > 0 {
            object.insert("dropped_fields".into(), self.dropped.into());
        }
        serde_json::Value::Object(object).to_string()
    }

    /// The fields as ` name=value` pairs for the console (text quoted, and escaped as
    /// JSON, when it holds whitespace, control characters, quotes or `=`, so that no
    /// value can forge a line or a field).
    fn console(&self) -> String {
        let mut out = String::new();
        for (name, value) in &self.fields {
            let text = match value {
                serde_json::Value::String(s)
                    if !s.is_empty()
                        && !s.chars().any(|c| {
                            c.is_whitespace() || c.is_control() || c == '"' || c == '='
                        }) =>
                {
                    s.clone()
                }
                other => other.to_string(),
            };
            out.push_str(&format!(" {name}={text}"));
        }
        if self.dropped > 0 {
            out.push_str(&format!(" dropped_fields={}", self.dropped));
        }
        out
    }
}

/// Writes one plugin log line (target `plugin`), tagged with the plugin, route,
/// request id and trace id, with `fields` as JSON fields or `name=value` pairs.
pub fn plugin_line(
    level: tracing::Level,
    plugin: &str,
    route: &str,
    request_id: &str,
    trace_id: &str,
    message: &str,
    fields: &PluginFields,
) {
    // The JSON format escapes the message; the console shows it as text, so a control
    // character in it (a `\r`, an ANSI escape) is written escaped.
    let message = if JSON.load(Ordering::Relaxed) {
        std::borrow::Cow::Borrowed(message)
    } else {
        console_text(message)
    };
    macro_rules! line {
        ($level:expr) => {
            if fields.is_empty() {
                tracing::event!(target: "plugin", $level, plugin, route, request_id, trace_id, "{message}")
            } else if JSON.load(Ordering::Relaxed) {
                let plugin_fields = fields.json();
                tracing::event!(target: "plugin", $level, plugin, route, request_id, trace_id, plugin_fields, "{message}")
            } else {
                let pairs = fields.console();
                tracing::event!(target: "plugin", $level, plugin, route, request_id, trace_id, "{message}{pairs}")
            }
        };
    }
    match level {
        tracing::Level::TRACE => line!(tracing::Level::TRACE),
        tracing::Level::DEBUG => line!(tracing::Level::DEBUG),
        tracing::Level::INFO => line!(tracing::Level::INFO),
        tracing::Level::WARN => line!(tracing::Level::WARN),
        _ => line!(tracing::Level::ERROR),
    }
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`), for the console.
fn console_text(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The JSON format, with a plugin's structured fields made fields of the line.
struct MergePluginFields<F>(F);

impl<S, N, F> FormatEvent<S, N> for MergePluginFields<F>
where
    F: FormatEvent<S, N>,
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        if event.metadata().fields().field(PLUGIN_FIELDS).is_none() {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match merge_plugin_fields(line.trim_end()) {
            Some(merged) => writeln!(writer, "{merged}"),
            None => writer.write_str(&line),
        }
    }
}

/// `{"…","plugin_fields":"{\"a\":1}"}` → `{"…","a":1}`; the line's own keys win.
fn merge_plugin_fields(line: &str) -> Option<String> {
    let mut object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).ok()?;
    let fields = object.remove(PLUGIN_FIELDS)?;
    let fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(fields.as_str()?).ok()?;
    for (name, value) in fields {
        object.entry(name).or_insert(value);
    }
    serde_json::to_string(&object).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn plugin_fields_are_checked_and_merged() {
        let fields = PluginFields::new([
            ("user".to_string(), serde_json::json!("alice")),
            ("attempt".to_string(), serde_json::json!(3)),
            ("Bad-Name".to_string(), serde_json::json!(1)),
            ("level".to_string(), serde_json::json!("forged")),
            ("user".to_string(), serde_json::json!("again")),
        ]);
        assert_eq!(fields.console(), " user=alice attempt=3 dropped_fields=3");
        let line =
            serde_json::json!({"level": "INFO", "message": "m", PLUGIN_FIELDS: fields.json()});
        let merged: serde_json::Value =
            serde_json::from_str(&merge_plugin_fields(&line.to_string()).unwrap()).unwrap();
        assert_eq!(merged["user"], "alice");
        assert_eq!(merged["attempt"], 3);
        assert_eq!(merged["dropped_fields"], 3);
        assert_eq!(merged["level"], "INFO");
        assert!(merged.get(PLUGIN_FIELDS).is_none());
        let many = PluginFields::new((0..40).map(|i| (format!("f{i}"), serde_json::json!(i))));
        assert_eq!(many.fields.len(), MAX_PLUGIN_FIELDS);
        assert_eq!(many.dropped, 8);
    }

    use super::*;

    #[test]
    fn console_output_cannot_forge_a_line_or_a_field() {
        let fields = PluginFields::new([
            ("user".to_string(), serde_json::json!("a\rb")),
            ("note".to_string(), serde_json::json!("x\u{1b}[31m")),
            ("ok".to_string(), serde_json::json!("plain")),
        ]);
        assert_eq!(
            fields.console(),
            r#" user="a\rb" note="x\u001b[31m" ok=plain"#
        );
        assert_eq!(console_text("a\r\nb\u{1b}[31m"), r"a\r\nb\u{1b}[31m");
        assert!(matches!(
            console_text("plain"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

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
    fn python_level_names_are_levels_not_targets() {
        let settings = LogSettings::default();
        for (given, level) in [
            ("WARNING", "warn"),
            ("CRITICAL", "error"),
            ("fatal", "error"),
            ("DEBUG", "debug"),
            ("Info", "info"),
            ("NOTSET", "trace"),
            (
                "ERROR,wasmgate::pipeline=WARNING",
                "error,wasmgate::pipeline=warn",
            ),
            ("info,wasmgate=debug", "info,wasmgate=debug"),
            ("wasmgate", "wasmgate"),
        ] {
            let set = effective(&settings, env(&[("LOG_LEVEL", given)])).unwrap();
            assert_eq!(set.level, level, "LOG_LEVEL={given}");
        }
        let config = LogSettings {
            level: "WARNING".into(),
            ..LogSettings::default()
        };
        assert_eq!(effective(&config, env(&[])).unwrap().level, "warn");
    }

    #[test]
    fn json_logs_is_log_format_json_unless_log_format_says() {
        let settings = LogSettings::default();
        let format = |vars: &[(&str, &str)]| effective(&settings, env(vars)).map(|e| e.format);
        assert_eq!(format(&[("JSON_LOGS", "true")]), Ok(LogFormat::Json));
        assert_eq!(format(&[("JSON_LOGS", "False")]), Ok(LogFormat::Console));
        assert_eq!(
            format(&[("JSON_LOGS", "true"), ("LOG_FORMAT", "console")]),
            Ok(LogFormat::Console)
        );
        assert!(
            format(&[("JSON_LOGS", "maybe")])
                .unwrap_err()
                .contains("JSON_LOGS")
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
