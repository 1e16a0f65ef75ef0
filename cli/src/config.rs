//! The CLI's config file: which master to call and with which token, so
//! that after `wasmesos up` every command just works. TOML at
//! `$WASMESOS_CONFIG`, else `$XDG_CONFIG_HOME/wasmesos/config.toml`, else
//! `~/.config/wasmesos/config.toml`:
//!
//! ```toml
//! master = "http://127.0.0.1:5050"
//! token = "wsm_…"
//! ca_file = "/etc/wasmesos/ca.pem"   # for an https:// master with a private CA
//! ```
//!
//! Flags and environment variables win over it. It holds a secret, so it is
//! written with mode 0600.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CliConfig {
    pub master: Option<String>,
    pub token: Option<String>,
    /// The CA certificate (PEM) of an https:// master with a private CA.
    pub ca_file: Option<PathBuf>,
}

impl CliConfig {
    /// Where the config file is (None: no home directory to put it in).
    pub fn path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("WASMESOS_CONFIG") {
            return Some(PathBuf::from(p));
        }
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(base.join("wasmesos").join("config.toml"))
    }

    /// The config file's settings (none if there is no file).
    pub fn load() -> anyhow::Result<CliConfig> {
        let Some(path) = Self::path() else {
            return Ok(CliConfig::default());
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| anyhow!("the config file {} is not valid: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CliConfig::default()),
            Err(e) => Err(anyhow!(
                "cannot read the config file {}: {e}",
                path.display()
            )),
        }
    }

    /// Writes these settings to the config file (readable by its owner
    /// only); returns where.
    pub fn save(&self) -> anyhow::Result<PathBuf> {
        let path = Self::path().ok_or_else(|| anyhow!("no home directory for the config file"))?;
        wasmesos_api::secret_file::write_private(&path, toml::to_string(self)?.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}
