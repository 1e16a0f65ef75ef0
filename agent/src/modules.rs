//! Modules by digest: fetched from the master once, kept on disk under the
//! work dir, compiled once per engine by the runtime (which caches the
//! result). Launches of the same new module wait for one fetch and one
//! compile.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use wasmesos_api::proto::FetchModuleRequest;
use wasmesos_api::proto::agent_link_client::AgentLinkClient;
use wasmesos_api::{AuthedChannel, Digest, TenantId};
use wasmesos_runtime::{Metering, Program, Runtime};

pub struct ModuleCache {
    dir: PathBuf,
    runtime: Runtime,
    client: Mutex<Option<AgentLinkClient<AuthedChannel>>>,
    locks: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
}

impl ModuleCache {
    pub fn new(dir: PathBuf, runtime: Runtime) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            runtime,
            client: Mutex::new(None),
            locks: Mutex::new(HashMap::new()),
        })
    }

    /// Where the bytes of `digest` are kept once fetched.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    /// Where modules are fetched from (the current master).
    pub fn set_client(&self, client: Option<AgentLinkClient<AuthedChannel>>) {
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) = client;
    }

    /// The compiled program for `digest` on the engine of `metering`,
    /// fetching and compiling it if needed.
    pub async fn program(
        &self,
        tenant: &TenantId,
        digest: &Digest,
        metering: Metering,
    ) -> Result<Program, String> {
        if let Some(p) = self.runtime.cached(digest, metering) {
            return Ok(p);
        }
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(*digest)
            .or_default()
            .clone();
        let _guard = lock.lock().await;
        if let Some(p) = self.runtime.cached(digest, metering) {
            return Ok(p);
        }
        let bytes = self.bytes(tenant, digest).await?;
        let runtime = self.runtime.clone();
        let d = *digest;
        let program = tokio::task::spawn_blocking(move || runtime.compile(&d, &bytes, metering))
            .await
            .map_err(|e| format!("compiling {digest}: {e}"))?
            .map_err(|e| e.to_string())?;
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest);
        Ok(program)
    }

    async fn bytes(&self, tenant: &TenantId, digest: &Digest) -> Result<Vec<u8>, String> {
        let path = self.path(digest);
        if let Ok(bytes) = tokio::fs::read(&path).await {
            if Digest::of(&bytes) == *digest {
                return Ok(bytes);
            }
            tracing::warn!(%digest, "cached module is damaged; fetching it again");
        }
        let bytes = self.fetch(tenant, digest).await?;
        let tmp = path.with_extension("tmp");
        let stored = async {
            tokio::fs::write(&tmp, &bytes).await?;
            tokio::fs::rename(&tmp, &path).await
        };
        if let Err(e) = stored.await {
            tracing::warn!(%digest, "cannot cache the module on disk: {e}");
        }
        Ok(bytes)
    }

    async fn fetch(&self, tenant: &TenantId, digest: &Digest) -> Result<Vec<u8>, String> {
        let client = self
            .client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| "not connected to a master; cannot fetch the module".to_string())?;
        let mut client = client;
        let mut stream = client
            .fetch_module(FetchModuleRequest {
                tenant: tenant.to_string(),
                digest: digest.to_string(),
            })
            .await
            .map_err(|s| format!("fetching module {digest}: {}", s.message()))?
            .into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream
            .message()
            .await
            .map_err(|s| format!("fetching module {digest}: {}", s.message()))?
        {
            bytes.extend_from_slice(&chunk.data);
        }
        let got = Digest::of(&bytes);
        if got != *digest {
            return Err(format!(
                "fetched module has digest {got}, expected {digest}"
            ));
        }
        Ok(bytes)
    }
}
