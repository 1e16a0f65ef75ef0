//! Reliable status updates: each update waits here until the master
//! acknowledges it (which it does only once the update is stored), and is
//! sent again on every new connection and periodically while unacknowledged.
//! Updates go out in the order they were made.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use wasmesos_api::proto::{AgentMessage, RunningTask, StatusUpdate, agent_message};

pub type SessionTx = mpsc::UnboundedSender<AgentMessage>;

#[derive(Default)]
pub struct Outbox {
    state: Mutex<State>,
    /// Distinguishes this process's update ids from an earlier one's.
    run: u64,
}

#[derive(Default)]
struct State {
    next: u64,
    pending: BTreeMap<u64, (StatusUpdate, Instant)>,
    ids: HashMap<String, u64>,
    session: Option<SessionTx>,
}

fn message(update: &StatusUpdate) -> AgentMessage {
    AgentMessage {
        msg: Some(agent_message::Msg::Status(update.clone())),
    }
}

impl Outbox {
    pub fn new() -> Self {
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self {
            state: Mutex::default(),
            run,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an update (giving it an id) and sends it if connected.
    pub fn push(&self, mut update: StatusUpdate) {
        let mut st = self.lock();
        st.next += 1;
        let seq = st.next;
        update.update_id = format!("{:x}-{seq}", self.run);
        if let Some(tx) = &st.session {
            let _ = tx.send(message(&update));
        }
        st.ids.insert(update.update_id.clone(), seq);
        st.pending.insert(seq, (update, Instant::now()));
    }

    /// The master stored this update.
    pub fn ack(&self, update_id: &str) {
        let mut st = self.lock();
        if let Some(seq) = st.ids.remove(update_id) {
            st.pending.remove(&seq);
        }
    }

    /// A new connection: everything pending goes out again, in order.
    pub fn attach(&self, tx: SessionTx) {
        let mut st = self.lock();
        let now = Instant::now();
        for (update, sent) in st.pending.values_mut() {
            let _ = tx.send(message(update));
            *sent = now;
        }
        st.session = Some(tx);
    }

    pub fn detach(&self) {
        self.lock().session = None;
    }

    /// Sends again what has waited longer than `age` for its ack.
    pub fn resend_older_than(&self, age: Duration) {
        let mut st = self.lock();
        let Some(tx) = st.session.clone() else {
            return;
        };
        let now = Instant::now();
        for (update, sent) in st.pending.values_mut() {
            if now.duration_since(*sent) >= age {
                let _ = tx.send(message(update));
                *sent = now;
            }
        }
    }

    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// Each task with an update not yet acknowledged, in the state of its
    /// latest such update. A registration reports them beside the running
    /// tasks: a task that ended while the master was away is not running,
    /// but the master must not take it for lost before its end arrives.
    pub fn unacknowledged_tasks(&self) -> Vec<RunningTask> {
        let st = self.lock();
        let mut latest: BTreeMap<(&str, &str), i32> = BTreeMap::new();
        for (update, _) in st.pending.values() {
            latest.insert((&update.framework_id, &update.task_id), update.state);
        }
        latest
            .into_iter()
            .map(|((fw, task), state)| RunningTask {
                framework_id: fw.to_string(),
                task_id: task.to_string(),
                state,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(task: &str) -> StatusUpdate {
        StatusUpdate {
            task_id: task.into(),
            ..Default::default()
        }
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<AgentMessage>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(AgentMessage {
            msg: Some(agent_message::Msg::Status(u)),
        }) = rx.try_recv()
        {
            out.push(u.task_id);
        }
        out
    }

    #[test]
    fn unacked_updates_are_resent_in_order_on_reconnect() {
        let outbox = Outbox::new();
        outbox.push(update("a"));
        outbox.push(update("b"));
        let (tx, mut rx) = mpsc::unbounded_channel();
        outbox.attach(tx);
        assert_eq!(drain(&mut rx), vec!["a", "b"]);
        outbox.push(update("c"));
        assert_eq!(drain(&mut rx), vec!["c"]);

        // The master stores and acknowledges "a" only.
        let first_id = {
            let st = outbox.lock();
            st.pending.values().next().unwrap().0.update_id.clone()
        };
        outbox.ack(&first_id);
        outbox.detach();
        let (tx, mut rx) = mpsc::unbounded_channel();
        outbox.attach(tx);
        assert_eq!(drain(&mut rx), vec!["b", "c"]);
        assert_eq!(outbox.pending(), 2);
        outbox.resend_older_than(Duration::ZERO);
        assert_eq!(drain(&mut rx), vec!["b", "c"]);
    }
}
