//! The gateway's TOML configuration: the schema, its defaults, environment variables
//! in its text (`interpolate.rs`), and loading with validation that reports
//! `file:line: what is wrong`.
//!
//! This module owns what an operator may write. It does not build anything that serves
//! traffic: `snapshot` turns a validated [`Config`] into a runtime snapshot.

mod interpolate;
mod schema;
mod validate;

use std::path::{Path, PathBuf};

pub use schema::{
    AdminSettings, Balance, BreakerConfig, CertificateSettings, ChainEntry, ClientCertificates,
    CompressionConfig, Config, EndpointConfig, GatewaySettings, GlobalPluginRef, GlobalSettings,
    HealthSettings, LargeResponses, Limits, Listener, LogFormat, LogSettings, MatchCondition,
    MetricsSettings, OnError, OutlierConfig, PluginRef, PluginSettings, Position, RedisSettings,
    ReloadSettings, RetryConfig, RouteConfig, SecretSource, ServiceConfig, StateBackend,
    TlsSettings, WebSocketSettings, WeightedService, default_connect_timeout_ms,
};
pub use validate::{is_plugin_name, route_conditions};

/// A configuration that cannot be used, with the place that is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The config file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema.
    #[error("{file}:{line}: {message}")]
    Parse {
        /// The config file.
        file: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The file parsed but a value is wrong (unknown service, duplicate route…).
    #[error("{file}:{line}: {message}")]
    Invalid {
        /// The config file.
        file: PathBuf,
        /// 1-based line of the offending value.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// A config file read from disk and validated, with paths resolved against its folder.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The config as written (relative paths already resolved).
    pub config: Config,
    /// Where it was read from.
    pub file: PathBuf,
    /// The text it was parsed from, to turn spans into lines.
    pub text: String,
}

impl LoadedConfig {
    /// Reads, parses and validates the config file at `file`.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Self::parse(file, &text)
    }

    /// Parses and validates `text` as if read from `file`, with the process's
    /// environment variables in place of `${NAME}` and `${NAME:-default}`.
    pub fn parse(file: &Path, text: &str) -> Result<Self, ConfigError> {
        let text = &interpolate::interpolate(text, |name| std::env::var(name).ok()).map_err(
            |unresolved| ConfigError::Invalid {
                file: file.to_path_buf(),
                line: line_of(text, unresolved.offset),
                message: unresolved.message,
            },
        )?;
        let mut config: Config = toml::from_str(text).map_err(|error| ConfigError::Parse {
            file: file.to_path_buf(),
            line: error
                .span()
                .map(|span| line_of(text, span.start))
                .unwrap_or(1),
            message: error.message().trim().to_string(),
        })?;
        let base = file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        validate::validate(&config, text).map_err(|(offset, message)| ConfigError::Invalid {
            file: file.to_path_buf(),
            line: line_of(text, offset),
            message,
        })?;
        config.gateway.plugin_dir = base.join(&config.gateway.plugin_dir);
        config.gateway.data_dir = base.join(&config.gateway.data_dir);
        if let Some(tls) = &mut config.gateway.tls {
            if let Some(client_ca) = &mut tls.get_mut().client_ca {
                *client_ca.get_mut() = base.join(client_ca.get_ref());
            }
            for entry in &mut tls.get_mut().certificates {
                let entry = entry.get_mut();
                entry.cert = base.join(&entry.cert);
                entry.key = base.join(&entry.key);
            }
        }
        if let Some(file) = &config.log.file {
            config.log.file = Some(base.join(file));
        }
        for service in config.services.values_mut() {
            let service = service.get_mut();
            for file in [
                &mut service.ca_file,
                &mut service.client_cert,
                &mut service.client_key,
            ]
            .into_iter()
            .flatten()
            {
                *file.get_mut() = base.join(file.get_ref());
            }
        }
        if let Some(redis) = &mut config.state.redis
            && let Some(file) = redis
                .get_mut()
                .password
                .as_mut()
                .and_then(|p| p.file.as_mut())
        {
            *file = base.join(&*file);
        }
        for settings in config.plugins.values_mut() {
            for source in settings.get_mut().secrets.values_mut() {
                if let Some(file) = &mut source.get_mut().file {
                    *file = base.join(&*file);
                }
            }
        }
        Ok(Self {
            config,
            file: file.to_path_buf(),
            text: text.to_string(),
        })
    }
}

impl LoadedConfig {
    /// `file:line` of a byte offset in the config text.
    pub fn place(&self, offset: usize) -> String {
        format!("{}:{}", self.file.display(), line_of(&self.text, offset))
    }
}

/// The 1-based line that byte `offset` of `text` is on.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests;
