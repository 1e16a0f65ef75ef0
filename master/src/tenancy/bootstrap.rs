//! Zero-setup credentials: a master started with an admin (or agent) token
//! file makes sure the token in it is valid, generating one on first start.
//! `wasmesos up` and a fresh `wasmesos master` therefore need nothing from
//! the operator, and the token is as private as the file (mode 0600, in
//! the data directory). Masters of one highly available cluster can share
//! a file (`--admin-token-file`) so that each accepts the same token.
//!
//! A token in a file that an operator has since revoked stays revoked:
//! the file is not a way back in.

use std::path::{Path, PathBuf};

use wasmesos_api::now_ms;
use wasmesos_api::proto::{self, TokenKind};

use super::{Registry, token};
use crate::commit::{CommitError, Committer, put};
use crate::keys;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot read the token file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the token file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the token file {path} holds no valid token ({source}); delete it to have a new one generated"
    )]
    Malformed {
        path: PathBuf,
        source: token::Malformed,
    },
    #[error(
        "the token file {path} names token {id}, but the cluster's token {id} has another secret; delete the file to have a new one generated"
    )]
    Mismatch { path: PathBuf, id: String },
    #[error(transparent)]
    Commit(#[from] CommitError),
}

/// Makes the token in `path` a valid `kind` token of the default tenant,
/// writing a new one there if the file does not exist.
pub async fn ensure_token_file(
    path: &Path,
    kind: TokenKind,
    registry: &Registry,
    committer: &Committer,
) -> Result<(), BootstrapError> {
    let (id, secret_sha256) = match std::fs::read_to_string(path) {
        Ok(text) => {
            let (id, secret) = token::parse(&text).map_err(|source| BootstrapError::Malformed {
                path: path.to_path_buf(),
                source,
            })?;
            (id.to_string(), token::hash(secret))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let generated = token::generate();
            write_private(path, &generated.bearer).map_err(|source| BootstrapError::Write {
                path: path.to_path_buf(),
                source,
            })?;
            tracing::info!(path = %path.display(), kind = ?kind, "generated a token");
            (generated.id, generated.secret_sha256)
        }
        Err(source) => {
            return Err(BootstrapError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    match registry.token(&id) {
        Some(existing) if !token::same_hash(&existing.secret_sha256, &secret_sha256) => {
            Err(BootstrapError::Mismatch {
                path: path.to_path_buf(),
                id,
            })
        }
        Some(existing) => {
            if existing.revoked_ms != 0 {
                tracing::warn!(path = %path.display(), token = %id, "the token in this file was revoked; it stays refused");
            }
            Ok(())
        }
        None => {
            let record = proto::Token {
                id: id.clone(),
                tenant: "default".into(),
                kind: kind as i32,
                name: match kind {
                    TokenKind::Agent => "bootstrap agents".into(),
                    _ => "bootstrap admin".into(),
                },
                created_ms: now_ms(),
                created_by: "system".into(),
                secret_sha256,
                ..Default::default()
            };
            committer
                .commit(vec![put(keys::token(&id), &record)])
                .await?;
            registry.put_token(record);
            Ok(())
        }
    }
}

/// Writes `text` to a new file only its owner can read, atomically.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    wasmesos_api::secret_file::write_private(path, format!("{text}\n").as_bytes())
}
