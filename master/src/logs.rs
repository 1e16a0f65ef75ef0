//! Relays task logs from agents to clients. A client's request gets an id
//! and a channel; the master asks the task's agent (over its stream) for
//! that id, and the agent's `LogData` messages are routed back here to the
//! channel. When the client goes away, the next piece of data for its id
//! finds the channel closed and the agent is told to stop. When an agent's
//! stream ends, the requests it was serving end with an error instead of
//! waiting for data that will never come.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use wasmesos_api::AgentId;
use wasmesos_api::proto::LogData;

/// Buffered pieces per request before the agent's stream waits.
const BUFFER: usize = 256;
/// Longest the agent's stream waits for a slow log reader.
const STALL: std::time::Duration = std::time::Duration::from_secs(5);

/// Routes `LogData` by request id. Cheap to clone.
#[derive(Clone, Default)]
pub struct LogRouter {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    next: AtomicU64,
    routes: Mutex<HashMap<u64, Route>>,
}

/// Where one request's data goes, and which agent serves it.
struct Route {
    agent: AgentId,
    tx: mpsc::Sender<LogData>,
}

/// The receiving end of one request; unregisters itself when dropped.
pub struct LogSubscription {
    pub id: u64,
    pub rx: mpsc::Receiver<LogData>,
    router: LogRouter,
}

impl Drop for LogSubscription {
    fn drop(&mut self) {
        self.router.close(self.id);
    }
}

impl LogRouter {
    /// A new request id for logs served by `agent`, and the channel its
    /// data arrives on.
    pub fn open(&self, agent: &AgentId) -> LogSubscription {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::channel(BUFFER);
        let agent = agent.clone();
        self.routes().insert(id, Route { agent, tx });
        LogSubscription {
            id,
            rx,
            router: self.clone(),
        }
    }

    /// Delivers data from an agent. Returns false when nobody waits for
    /// this id any more (the caller tells the agent to stop). A client that
    /// stops reading for [`STALL`] is cut off rather than allowed to stall
    /// the agent's stream, which also carries its heartbeats and updates.
    pub async fn deliver(&self, data: LogData) -> bool {
        let id = data.request_id;
        let tx = self.routes().get(&id).map(|r| r.tx.clone());
        let Some(tx) = tx else {
            return false;
        };
        match tokio::time::timeout(STALL, tx.send(data)).await {
            Ok(Ok(())) => true,
            _ => {
                self.close(id);
                false
            }
        }
    }

    /// Ends every request `agent` was serving with an error: its stream is
    /// gone, and whatever it had not sent will not come.
    pub fn agent_gone(&self, agent: &AgentId) {
        let mut routes = self.routes();
        routes.retain(|id, route| {
            if &route.agent != agent {
                return true;
            }
            // A full channel already holds data the client has yet to read;
            // it then sees the channel close, which ends its stream too.
            let _ = route.tx.try_send(LogData {
                request_id: *id,
                eof: true,
                error: format!(
                    "agent {agent} disconnected before sending all of the log; try again when it is back"
                ),
                ..Default::default()
            });
            false
        });
    }

    fn close(&self, id: u64) {
        self.routes().remove(&id);
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Route>> {
        // A poisoned lock only means another thread panicked mid-insert;
        // the map itself is still usable.
        self.inner
            .routes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn routes_by_id_and_forgets_dropped_subscriptions() {
        let router = LogRouter::default();
        let agent = AgentId::new("agent-1").unwrap();
        let mut a = router.open(&agent);
        let b = router.open(&agent);
        assert_ne!(a.id, b.id);
        assert!(
            router
                .deliver(LogData {
                    request_id: a.id,
                    data: b"hi".to_vec(),
                    ..Default::default()
                })
                .await
        );
        assert_eq!(a.rx.recv().await.unwrap().data, b"hi");
        let b_id = b.id;
        drop(b);
        assert!(
            !router
                .deliver(LogData {
                    request_id: b_id,
                    ..Default::default()
                })
                .await
        );
    }

    #[tokio::test]
    async fn a_lost_agent_ends_its_requests_with_an_error() {
        let router = LogRouter::default();
        let gone = AgentId::new("agent-1").unwrap();
        let other = AgentId::new("agent-2").unwrap();
        let mut a = router.open(&gone);
        let mut b = router.open(&other);
        router.agent_gone(&gone);
        let last = a.rx.recv().await.unwrap();
        assert!(last.eof);
        assert!(
            last.error.contains("agent-1 disconnected"),
            "{}",
            last.error
        );
        assert!(a.rx.recv().await.is_none(), "the route is forgotten");
        assert!(b.rx.try_recv().is_err(), "other agents' requests go on");
        assert!(
            router
                .deliver(LogData {
                    request_id: b.id,
                    ..Default::default()
                })
                .await
        );
    }
}
