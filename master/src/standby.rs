//! Leader election on a shared store, and what a master does while another
//! leads.
//!
//! Every master campaigns by creating the `leader` key on a lease of its
//! own ([`campaign`]); the one that created it leads, and the key's create
//! revision fences every write it makes. The others are standbys: they
//! keep their listener open and answer every gRPC call with UNAVAILABLE,
//! naming the leader in the message and in the `wasmesos-leader` response
//! header (the CLI and agents follow it), and every HTTP request with a 503
//! JSON body saying the same; meanwhile they watch the `leader` key and
//! campaign again the moment it is deleted (revoked by a leader that
//! stopped, or expired with the lease of one that died). Each master also
//! keeps a `masters/<address>` key on its own lease, so `wasmesos status`
//! lists leader and standbys. While it stands by, a master compiles every
//! framework's scheduler ([`prewarm`]), so that taking over does not wait
//! for Cranelift.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use wasmesos_store::{CmpOp, Compare, EventKind, LeaseId, Op, Store, Txn};

use wasmesos_api::proto;
use wasmesos_api::{Digest, TenantId};
use wasmesos_schedhost::SchedHost;

use crate::commit::decode;
use crate::modules::ModuleStore;
use crate::{MasterError, keys};

/// The response header that names the leader on a standby's refusals.
pub const LEADER_HEADER: &str = "wasmesos-leader";

/// Tries once to take the leader key. `Ok(Some(..))`: this master leads,
/// with the fence (the key and its create revision) and the lease to keep
/// alive. `Ok(None)`: another leads (its address is in the key).
pub async fn campaign(
    store: &Arc<dyn Store>,
    advertise: &str,
    ttl: Duration,
) -> Result<Option<((String, i64), LeaseId)>, MasterError> {
    let lease = store.grant_lease(ttl).await?;
    let response = store
        .txn(
            Txn::new()
                .when(Compare::CreateRevision(
                    keys::LEADER.to_string(),
                    CmpOp::Equal,
                    0,
                ))
                .then(Op::put_with_lease(keys::LEADER, advertise, lease)),
        )
        .await?;
    if !response.succeeded {
        // Not ours: do not leave a lease behind for etcd to time out.
        let _ = store.revoke_lease(lease).await;
        return Ok(None);
    }
    let current = store.get(keys::LEADER).await?;
    let create_revision = current.map(|kv| kv.create_revision).unwrap_or(0);
    Ok(Some(((keys::LEADER.to_string(), create_revision), lease)))
}

/// The current leader's address, if any.
pub async fn leader(store: &Arc<dyn Store>) -> Result<Option<String>, MasterError> {
    Ok(store
        .get(keys::LEADER)
        .await?
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()))
}

/// Waits until the leader key is gone (or a watch error suggests looking
/// again), so that this standby campaigns.
pub async fn wait_for_vacancy(store: &Arc<dyn Store>) -> Result<(), MasterError> {
    let Some(kv) = store.get(keys::LEADER).await? else {
        return Ok(());
    };
    let mut watch = store.watch(keys::LEADER, kv.mod_revision + 1).await?;
    while let Some(batch) = watch.next().await {
        let batch = batch?;
        if batch
            .events
            .iter()
            .any(|e| e.kind == EventKind::Delete && e.kv.key == keys::LEADER)
        {
            return Ok(());
        }
    }
    Ok(())
}

/// Serves standby answers on `listener` until told to stop; then the
/// listener is closed so the master can bind its address again as leader.
pub struct StandbyServer {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl StandbyServer {
    pub fn start(
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        leader: String,
    ) -> std::io::Result<StandbyServer> {
        let (stop, stopped) = watch::channel(false);
        let leader = Arc::new(leader);
        let app = axum::Router::new().fallback(move |headers: HeaderMap| {
            let leader = leader.clone();
            async move { refuse(&headers, &leader) }
        });
        let task = match tls {
            Some(acceptor) => crate::serve(
                crate::tls::TlsListener::new(listener, acceptor)?,
                app,
                stopped,
            ),
            None => crate::serve(listener, app, stopped),
        };
        Ok(StandbyServer { stop, task })
    }

    /// Stops serving and waits until the listener is closed.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        // Open streams (an agent retrying) must not keep the port: give the
        // graceful shutdown a moment, then abort the server, which closes
        // the listener and every connection with it.
        if tokio::time::timeout(Duration::from_secs(2), &mut self.task)
            .await
            .is_err()
        {
            tracing::debug!("standby server did not stop in time; aborted");
            self.task.abort();
            let _ = (&mut self.task).await;
        }
    }
}

/// A standby's answer: gRPC UNAVAILABLE or HTTP 503, naming the leader.
fn refuse(headers: &HeaderMap, leader: &str) -> Response {
    let message = format!("this master is a standby; the leader is at {leader}");
    let is_grpc = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    let leader_value = HeaderValue::from_str(leader).unwrap_or(HeaderValue::from_static(""));
    if is_grpc {
        let mut response = StatusCode::OK.into_response();
        let h = response.headers_mut();
        h.insert("content-type", HeaderValue::from_static("application/grpc"));
        // 14: UNAVAILABLE. The message is percent-encoded per the gRPC spec;
        // it is plain ASCII apart from the spaces and punctuation below.
        h.insert("grpc-status", HeaderValue::from_static("14"));
        let encoded: String = message
            .bytes()
            .map(|b| match b {
                b' '..=b'~' if b != b'%' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        if let Ok(v) = HeaderValue::from_str(&encoded) {
            h.insert("grpc-message", v);
        }
        h.insert(LEADER_HEADER, leader_value);
        return response;
    }
    let body = serde_json::json!({ "role": "standby", "leader": leader, "error": message });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    response.headers_mut().insert(LEADER_HEADER, leader_value);
    response
}

/// Keeps this master's `masters/<address>` key alive on a lease of its own
/// for as long as the process runs, so that status can list standbys.
pub async fn announce(store: Arc<dyn Store>, advertise: String, ttl: Duration) {
    loop {
        let lease = match store.grant_lease(ttl).await {
            Ok(lease) => lease,
            Err(e) => {
                tracing::warn!("cannot announce this master in the store: {e}");
                tokio::time::sleep(ttl / 3).await;
                continue;
            }
        };
        let put = store
            .put_with_lease(
                &keys::master(&advertise),
                advertise.clone().into_bytes(),
                lease,
            )
            .await;
        if let Err(e) = put {
            tracing::warn!("cannot announce this master in the store: {e}");
        }
        while store.keep_alive(lease).await.is_ok() {
            tokio::time::sleep(ttl / 3).await;
        }
    }
}

/// The masters announced in the store (leader and standbys).
pub async fn masters(store: &Arc<dyn Store>) -> Result<Vec<String>, MasterError> {
    Ok(store
        .range_all(keys::MASTERS)
        .await?
        .into_iter()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
        .collect())
}

/// Renews the leader lease until shutdown. Steps down — returns an error,
/// and the master stops acting — when renewals have failed for two thirds
/// of the lease, measured on this process's monotonic clock, so it stops
/// before the lease can have expired in the store and a successor begun.
pub async fn keep_leading(
    store: Arc<dyn Store>,
    lease: LeaseId,
    ttl: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), MasterError> {
    let budget = ttl * 2 / 3;
    let mut renewed = Instant::now();
    let mut tick = tokio::time::interval(ttl / 4);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let left = budget.saturating_sub(renewed.elapsed());
                match tokio::time::timeout(left, store.keep_alive(lease)).await {
                    Ok(Ok(_)) => renewed = Instant::now(),
                    Ok(Err(e)) => tracing::warn!("cannot renew the leader lease: {e}"),
                    Err(_) => {}
                }
                if renewed.elapsed() >= budget {
                    tracing::error!(
                        "the leader lease has not been renewed for {budget:?}; stepping down"
                    );
                    return Err(MasterError::LostLeadership);
                }
            }
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => {
                let _ = store.revoke_lease(lease).await;
                return Ok(());
            }
        }
    }
}

/// Binds `addr` again (the standby's listener has just closed), retrying
/// briefly while the kernel lets go of the port.
pub async fn rebind(addr: SocketAddr) -> Result<TcpListener, MasterError> {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(MasterError::Listen {
        addr,
        source: last.unwrap_or_else(|| std::io::Error::other("bind failed")),
        hint: " (the standby could not take its port back to lead)",
    })
}

/// Compiles the scheduler of every framework in the store into `host` (and
/// its on-disk cache), fetching module bytes as needed, then keeps doing so
/// as frameworks are deployed or upgraded, until aborted. Failures only
/// mean a slower takeover: they are logged, not fatal.
pub async fn prewarm(store: Arc<dyn Store>, modules: ModuleStore, host: SchedHost) {
    let mut compiled = std::collections::HashSet::new();
    loop {
        match store.range_all(keys::FRAMEWORKS).await {
            Ok(kvs) => {
                for kv in kvs {
                    let Ok(fw) = decode::<proto::Framework>(&kv.key, &kv.value) else {
                        continue;
                    };
                    if !compiled.insert(fw.module_digest.clone()) {
                        continue;
                    }
                    if let Err(e) = compile(&modules, &host, &fw).await {
                        tracing::warn!(framework = %fw.name, "cannot precompile its scheduler: {e}");
                        compiled.remove(&fw.module_digest);
                    } else {
                        tracing::info!(framework = %fw.name, digest = %fw.module_digest, "scheduler precompiled");
                    }
                }
            }
            Err(e) => tracing::debug!("cannot list frameworks to precompile: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

async fn compile(
    modules: &ModuleStore,
    host: &SchedHost,
    fw: &proto::Framework,
) -> Result<(), String> {
    let tenant = TenantId::new(fw.tenant.clone()).map_err(|e| e.to_string())?;
    let digest = Digest::parse(&fw.module_digest).map_err(|e| e.to_string())?;
    let bytes = modules
        .read(&tenant, &digest)
        .await
        .map_err(|e| e.to_string())?;
    let host = host.clone();
    let key = fw.module_digest.clone();
    tokio::task::spawn_blocking(move || host.compile_cached(&key, &bytes).map(|_| ()))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}
