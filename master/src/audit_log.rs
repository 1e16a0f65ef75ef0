//! Reading the audit log (written by the core, `core/audit.rs`): the
//! newest entries first, filtered, a bucket at a time from the newest.

use prost::Message as _;
use wasmesos_api::proto;

use crate::commit::{CommitError, Committer};
use crate::keys;

/// Most entries one request returns.
const MAX_LIMIT: u32 = 1000;

pub async fn read(
    committer: &Committer,
    request: proto::ListAuditRequest,
) -> Result<Vec<proto::AuditEntry>, CommitError> {
    let limit = match request.limit {
        0 => 50,
        n => n.min(MAX_LIMIT),
    } as usize;
    let newest = crate::core::read_seq(committer, "audit").await?;
    let start = match request.before {
        0 => newest,
        b => b.saturating_sub(1).min(newest),
    };
    let matches = |e: &proto::AuditEntry| {
        e.seq <= start
            && e.tenant.contains(&request.tenant)
            && e.principal.contains(&request.principal)
            && e.action.contains(&request.action)
    };
    let mut out = Vec::new();
    let mut bucket = start / keys::AUDIT_BUCKET;
    let oldest = (newest / keys::AUDIT_BUCKET).saturating_sub(keys::AUDIT_BUCKETS_KEPT);
    loop {
        let page = committer.range_all(&keys::audit_bucket(bucket)).await?;
        for value in page.values().rev() {
            let Ok(entry) = proto::AuditEntry::decode(value.as_slice()) else {
                continue;
            };
            if matches(&entry) {
                out.push(entry);
                if out.len() == limit {
                    return Ok(out);
                }
            }
        }
        if bucket == 0 || bucket <= oldest {
            return Ok(out);
        }
        bucket -= 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wasmesos_store::{EmbeddedStore, Store};

    use super::*;
    use crate::commit::put;

    #[tokio::test]
    async fn newest_first_filtered_paged_and_across_buckets() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
        let committer = Committer::new(store, None);
        // Entries on both sides of a bucket boundary.
        let first = keys::AUDIT_BUCKET - 5;
        let last = keys::AUDIT_BUCKET + 5;
        let mut ops = Vec::new();
        for seq in first..=last {
            let entry = proto::AuditEntry {
                seq,
                tenant: if seq % 2 == 0 { "acme" } else { "globex" }.into(),
                action: "job.submit".into(),
                ..Default::default()
            };
            ops.push(put(keys::audit(seq), &entry));
        }
        ops.push(crate::core::seq_op_for_tests("audit", last));
        committer.commit(ops).await.unwrap();

        let read_with = |r: proto::ListAuditRequest| read(&committer, r);
        let all = read_with(proto::ListAuditRequest::default()).await.unwrap();
        let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (first..=last).rev().collect::<Vec<_>>());

        let acme = read_with(proto::ListAuditRequest {
            tenant: "acme".into(),
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap();
        assert_eq!(acme.len(), 3);
        assert!(acme.iter().all(|e| e.tenant == "acme"));

        let older = read_with(proto::ListAuditRequest {
            before: keys::AUDIT_BUCKET + 1,
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
        let seqs: Vec<u64> = older.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![keys::AUDIT_BUCKET, keys::AUDIT_BUCKET - 1]);
    }
}
