//! The rules a plugin's metric must follow: names, labels and series. One file for
//! the gateway (`metrics`, which enforces them) and the plugin SDK's test harness
//! (which includes this file, so that `cargo test` refuses what the gateway would,
//! with the same messages). Plain `std` only.

use std::collections::HashSet;

/// Prefixes of the gateway's own metric names, refused for plugin metrics.
pub const RESERVED_PREFIXES: [&str; 6] = [
    "http_",
    "plugin_",
    "upstream_",
    "service_",
    "wasmgate_",
    "process_",
];
/// Longest metric or label name.
pub const MAX_NAME: usize = 64;
/// Most labels a plugin metric may carry (besides `plugin`).
pub const MAX_LABELS: usize = 4;
/// Longest label value a plugin may set.
pub const MAX_LABEL_VALUE: usize = 128;
/// Most label combinations per plugin metric and plugin.
pub const MAX_SERIES: usize = 100;

pub fn is_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Checks a plugin metric's name: an identifier, not one of the gateway's prefixes.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_NAME || !is_identifier(name) {
        return Err(format!(
            "metric name {name:?} must be [a-z_][a-z0-9_]* and at most {MAX_NAME} bytes"
        ));
    }
    if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| name.starts_with(**p)) {
        return Err(format!(
            "metric name {name:?} starts with {prefix:?}, which the gateway keeps for its own metrics"
        ));
    }
    Ok(())
}

/// Checks a plugin metric's labels: how many, their names, and their values' length.
pub fn check_labels(labels: &[(String, String)]) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!(
            "{} labels given; at most {MAX_LABELS} are allowed",
            labels.len()
        ));
    }
    let mut seen = HashSet::new();
    for (name, value) in labels {
        if !is_identifier(name) || name == "plugin" || name.len() > MAX_NAME {
            return Err(format!(
                "label name {name:?} must be [a-z_][a-z0-9_]* and not \"plugin\""
            ));
        }
        if !seen.insert(name) {
            return Err(format!("label {name:?} is given twice"));
        }
        if value.len() > MAX_LABEL_VALUE {
            return Err(format!(
                "the value of label {name:?} is over {MAX_LABEL_VALUE} bytes"
            ));
        }
    }
    Ok(())
}
