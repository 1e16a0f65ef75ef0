//! Content-addressed modules. Bytes live as files named by their sha256 in
//! the blob directory beside the store (never in store keys: etcd caps a
//! request at 1.5 MiB); the store holds one small record per tenant and
//! digest. Deduplication is per tenant: a tenant must upload a module itself
//! before it can use it, even when another tenant's copy is on disk, so a
//! digest never reveals what someone else uploaded.
//!
//! On a shared store (etcd, several masters) the blob directory is only a
//! cache: the bytes are also written to the store in 1 MiB chunks before
//! the module's record is, so whichever master leads next can serve every
//! module it has a record of, fetching the chunks on first use.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::AsyncWriteExt;
use wasmesos_api::proto::{self, ModuleKind};
use wasmesos_api::{Digest, Hasher, TenantId, format_size, now_ms};

use crate::commit::{CommitError, Committer, put};
use crate::keys;

/// Why a module was refused or could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("{name}is not a WebAssembly binary: it does not start with the \\0asm magic bytes")]
    NotWasm { name: String },
    #[error("{name}is not a valid WebAssembly module: {reason}")]
    Invalid { name: String, reason: String },
    #[error("module is {size} bytes; the limit is {limit} (raise --max-module-size)")]
    TooLarge { size: u64, limit: u64 },
    #[error("upload ended after {got} of {expected} bytes")]
    Truncated { got: u64, expected: u64 },
    #[error("upload digest mismatch: the client said {claimed}, the bytes are {actual}")]
    DigestMismatch { claimed: String, actual: String },
    #[error("{0}")]
    BadDigest(#[from] wasmesos_api::DigestError),
    #[error("no module {digest} for tenant {tenant}: upload it first (wasmesos module push)")]
    NotFound { tenant: TenantId, digest: Digest },
    #[error("module storage: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Commit(#[from] CommitError),
}

/// Stores and serves modules.
#[derive(Clone)]
pub struct ModuleStore {
    dir: PathBuf,
    committer: Committer,
    max_bytes: u64,
    /// Bytes are also kept in the (shared) store, for other masters.
    replicated: bool,
}

/// Bytes per chunk of a module kept in a shared store (etcd takes at most
/// 1.5 MiB in one request).
const CHUNK: usize = 1 << 20;
/// The chunk key that records a module's size once all its chunks are in.
const SIZE: &str = "size";

static UPLOAD_SEQ: AtomicU64 = AtomicU64::new(0);

impl ModuleStore {
    /// Modules under `<data_dir>/blobs`.
    pub fn open(data_dir: &Path, committer: Committer, max_bytes: u64) -> std::io::Result<Self> {
        let dir = data_dir.join("blobs");
        std::fs::create_dir_all(dir.join("sha256"))?;
        std::fs::create_dir_all(dir.join("tmp"))?;
        let replicated = committer.store().shared();
        Ok(Self {
            dir,
            committer,
            max_bytes,
            replicated,
        })
    }

    /// Puts the bytes of `digest` in the store in chunks, unless an earlier
    /// upload already did. The size key goes last: present means complete.
    async fn replicate(&self, digest: &Digest, bytes: &[u8]) -> Result<(), ModuleError> {
        let size_key = format!("{}{SIZE}", keys::blob_chunks(digest));
        let size = bytes.len().to_string().into_bytes();
        if self.committer.get_raw(&size_key).await?.as_deref() == Some(&size[..]) {
            return Ok(());
        }
        // One chunk per transaction: each is most of what etcd takes.
        for op in replica_ops(digest, bytes) {
            self.committer.commit(vec![op]).await?;
        }
        Ok(())
    }

    /// Fetches the bytes of `digest` from the store's chunks into the blob
    /// directory (another master uploaded them), checking their digest.
    async fn fetch(&self, digest: &Digest) -> Result<(), ModuleError> {
        // One chunk per read: a response must stay small too.
        let size_key = format!("{}{SIZE}", keys::blob_chunks(digest));
        let size: Option<usize> = self
            .committer
            .get_raw(&size_key)
            .await?
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok());
        let Some(size) = size else {
            return Err(ModuleError::Io(std::io::Error::other(format!(
                "the bytes of module {digest} are neither on this master nor in the store"
            ))));
        };
        let mut bytes = Vec::with_capacity(size);
        for n in 0..size.div_ceil(CHUNK) {
            let chunk = self.committer.get_raw(&keys::blob_chunk(digest, n)).await?;
            bytes.extend_from_slice(&chunk.unwrap_or_default());
        }
        let mut hasher = Digest::hasher();
        hasher.update(&bytes);
        if bytes.len() != size || hasher.finish() != *digest {
            return Err(ModuleError::Io(std::io::Error::other(format!(
                "the chunks of module {digest} in the store do not add up to it"
            ))));
        }
        let tmp = self.dir.join("tmp").join(format!(
            "fetch-{}-{}",
            std::process::id(),
            UPLOAD_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        tokio::fs::write(&tmp, &bytes).await?;
        tokio::fs::rename(&tmp, self.blob_path(digest)).await?;
        tracing::info!(%digest, size = %format_size(size as u64), "module fetched from the store");
        Ok(())
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("sha256").join(digest.hex())
    }

    /// Starts an upload of `size` bytes.
    pub async fn begin(&self, size: u64, name: &str) -> Result<Upload, ModuleError> {
        if size > self.max_bytes {
            return Err(ModuleError::TooLarge {
                size,
                limit: self.max_bytes,
            });
        }
        let tmp = self.dir.join("tmp").join(format!(
            "{}-{}",
            std::process::id(),
            UPLOAD_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let file = tokio::fs::File::create(&tmp).await?;
        Ok(Upload {
            store: self.clone(),
            tmp,
            file: Some(file),
            hasher: Digest::hasher(),
            expected: size,
            got: 0,
            name: name.to_string(),
        })
    }

    /// Stores `bytes` as a module of `tenant` (used for bundled modules).
    pub async fn put_bytes(
        &self,
        tenant: &TenantId,
        bytes: &[u8],
        name: &str,
    ) -> Result<proto::Module, ModuleError> {
        let mut upload = self.begin(bytes.len() as u64, name).await?;
        upload.write(bytes).await?;
        upload.finish(tenant, None).await
    }

    /// The record of a tenant's module, if it has one.
    pub async fn stat(
        &self,
        tenant: &TenantId,
        digest: &Digest,
    ) -> Result<Option<proto::Module>, ModuleError> {
        let record: Option<proto::Module> =
            self.committer.get(&keys::module(tenant, digest)).await?;
        // A record without its blob (a crash between the two) counts as
        // absent. On a shared store the record is written after the chunks.
        Ok(record.filter(|_| self.replicated || self.blob_path(digest).exists()))
    }

    /// The bytes of a tenant's module.
    pub async fn read(&self, tenant: &TenantId, digest: &Digest) -> Result<Vec<u8>, ModuleError> {
        if self.stat(tenant, digest).await?.is_none() {
            return Err(ModuleError::NotFound {
                tenant: tenant.clone(),
                digest: *digest,
            });
        }
        let path = self.blob_path(digest);
        if self.replicated && !path.exists() {
            self.fetch(digest).await?;
        }
        Ok(tokio::fs::read(path).await?)
    }
}

/// The store writes that keep `bytes` (of module `digest`) in a shared
/// store: its chunks in order, then its size, which marks them complete.
pub(crate) fn replica_ops(digest: &Digest, bytes: &[u8]) -> Vec<wasmesos_store::Op> {
    let mut ops: Vec<wasmesos_store::Op> = bytes
        .chunks(CHUNK)
        .enumerate()
        .map(|(n, chunk)| wasmesos_store::Op::put(keys::blob_chunk(digest, n), chunk.to_vec()))
        .collect();
    ops.push(wasmesos_store::Op::put(
        format!("{}{SIZE}", keys::blob_chunks(digest)),
        bytes.len().to_string(),
    ));
    ops
}

impl ModuleStore {
    /// The bytes of a module by digest whichever tenant uploaded it (for
    /// snapshots), or `None` when they are nowhere to be found.
    pub async fn read_any(&self, digest: &Digest) -> std::io::Result<Option<Vec<u8>>> {
        let path = self.blob_path(digest);
        if self.replicated && !path.exists() && self.fetch(digest).await.is_err() {
            return Ok(None);
        }
        match tokio::fs::read(path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// An upload in progress: bytes are hashed as they arrive and land in a
/// temporary file that is renamed into place once verified.
pub struct Upload {
    store: ModuleStore,
    tmp: PathBuf,
    file: Option<tokio::fs::File>,
    hasher: Hasher,
    expected: u64,
    got: u64,
    name: String,
}

impl Upload {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), ModuleError> {
        self.got += chunk.len() as u64;
        if self.got > self.expected || self.got > self.store.max_bytes {
            return Err(ModuleError::TooLarge {
                size: self.got.max(self.expected),
                limit: self.store.max_bytes.min(self.expected),
            });
        }
        self.hasher.update(chunk);
        if let Some(f) = self.file.as_mut() {
            f.write_all(chunk).await?;
        }
        Ok(())
    }

    /// Verifies and stores the module for `tenant`. `claimed` is the digest
    /// the client computed, if it sent one.
    pub async fn finish(
        mut self,
        tenant: &TenantId,
        claimed: Option<&str>,
    ) -> Result<proto::Module, ModuleError> {
        if self.got != self.expected {
            return Err(ModuleError::Truncated {
                got: self.got,
                expected: self.expected,
            });
        }
        let mut file = self.file.take().expect("finish is called once");
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        let digest = std::mem::take(&mut self.hasher).finish();
        if let Some(claimed) = claimed.filter(|c| !c.is_empty()) {
            let claimed_digest = Digest::parse(claimed)?;
            if claimed_digest != digest {
                return Err(ModuleError::DigestMismatch {
                    claimed: claimed.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        let bytes = tokio::fs::read(&self.tmp).await?;
        let name = if self.name.is_empty() {
            String::new()
        } else {
            format!("{} ", self.name)
        };
        let kind = validate(&bytes, &name)?;
        if self.store.replicated {
            self.store.replicate(&digest, &bytes).await?;
        }
        let target = self.store.blob_path(&digest);
        tokio::fs::rename(&self.tmp, &target).await?;
        let record = proto::Module {
            digest: digest.to_string(),
            tenant: tenant.to_string(),
            size: self.got,
            kind: kind as i32,
            uploaded_ms: now_ms(),
        };
        self.store
            .committer
            .commit(vec![put(keys::module(tenant, &digest), &record)])
            .await?;
        tracing::info!(%tenant, %digest, size = %format_size(self.got), "module stored");
        Ok(record)
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // Unfinished or refused uploads leave nothing behind.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Checks that `bytes` are a valid core module or component.
pub fn validate(bytes: &[u8], name: &str) -> Result<ModuleKind, ModuleError> {
    if !bytes.starts_with(b"\0asm") {
        return Err(ModuleError::NotWasm {
            name: name.to_string(),
        });
    }
    let kind = if wasmparser::Parser::is_component(bytes) {
        ModuleKind::Component
    } else {
        ModuleKind::Core
    };
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::default())
        .validate_all(bytes)
        .map_err(|e| ModuleError::Invalid {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_tells_garbage_from_broken_wasm() {
        assert!(matches!(
            validate(b"hello", "x "),
            Err(ModuleError::NotWasm { .. })
        ));
        let broken = [0, b'a', b's', b'm', 1, 0, 0, 0, 1, 5, 0xff];
        let err = validate(&broken, "x.wasm ").unwrap_err();
        assert!(matches!(err, ModuleError::Invalid { .. }), "{err}");
        assert!(
            err.to_string().starts_with("x.wasm is not a valid"),
            "{err}"
        );
        let empty_module = [0, b'a', b's', b'm', 1, 0, 0, 0];
        assert_eq!(validate(&empty_module, "").unwrap(), ModuleKind::Core);
    }
}
