//! The audit log: one record per consequential request (and per refusal
//! of an authenticated caller), appended through the write pipeline like
//! every other change. Entries live in buckets of [`keys::AUDIT_BUCKET`];
//! when a new bucket starts, the one [`keys::AUDIT_BUCKETS_KEPT`] back is
//! deleted whole, so the log stays bounded at no per-entry cost.

use tonic::Status;
use wasmesos_api::proto;
use wasmesos_api::{Principal, now_ms};

use super::{Core, CoreHandle, CoreMsg};
use crate::commit::put;
use crate::keys;
use wasmesos_store::Op;

impl Core {
    pub(super) fn append_audit(&mut self, mut entry: proto::AuditEntry) {
        self.seq.audit += 1;
        let seq = self.seq.audit;
        entry.seq = seq;
        entry.ts_ms = now_ms();
        let mut ops = vec![
            super::recover::seq_op("audit", seq),
            put(keys::audit(seq), &entry),
        ];
        let bucket = seq / keys::AUDIT_BUCKET;
        if seq.is_multiple_of(keys::AUDIT_BUCKET) && bucket >= keys::AUDIT_BUCKETS_KEPT {
            ops.push(Op::DeletePrefix {
                prefix: keys::audit_bucket(bucket - keys::AUDIT_BUCKETS_KEPT),
            });
        }
        self.write(ops, |_| {});
    }
}

/// How an outcome reads in the log.
pub(crate) fn outcome(error: Option<&Status>) -> String {
    match error {
        None => "ok".to_string(),
        Some(s) => format!("{:?}: {}", s.code(), s.message()),
    }
}

impl CoreHandle {
    /// Records that `who` did `action` to `target`, with its outcome.
    pub(crate) fn audit(
        &self,
        who: &Principal,
        action: &str,
        target: String,
        error: Option<&Status>,
    ) {
        let _ = self.send(CoreMsg::Audit(proto::AuditEntry {
            principal: who.name.clone(),
            tenant: who.tenant.to_string(),
            action: action.to_string(),
            target,
            outcome: outcome(error),
            ..Default::default()
        }));
    }

    /// [`CoreHandle::ask`] on `who`'s behalf, recorded in the audit log.
    pub(crate) async fn ask_audited<T>(
        &self,
        who: Principal,
        action: &str,
        target: String,
        build: impl FnOnce(Principal, tokio::sync::oneshot::Sender<Result<T, Status>>) -> CoreMsg,
    ) -> Result<T, Status> {
        let result = self.ask(|reply| build(who.clone(), reply)).await;
        self.audit(&who, action, target, result.as_ref().err());
        result
    }
}
