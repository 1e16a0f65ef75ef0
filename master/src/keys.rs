//! The store's key layout. Every key names its kind first, then its tenant
//! (for tenant-owned objects), so that one prefix lists a kind across all
//! tenants for operators and another lists one tenant's objects.
//!
//! | key | value |
//! |---|---|
//! | `leader` | the leader's advertise address, on its lease; its create revision fences every write |
//! | `meta/epoch` | leader epoch, bumped by each master start |
//! | `seq/<name>` | counters for ids (`job`, `agent`, `framework`) |
//! | `agents/<agent>` | [`proto::Agent`](wasmesos_api::proto::Agent) (cluster-owned), draining included |
//! | `roles/<role>` | [`proto::Role`](wasmesos_api::proto::Role): weight and quota, set by operators (cluster-owned) |
//! | `frameworks/<tenant>/<name>` | [`proto::Framework`](wasmesos_api::proto::Framework) |
//! | `fwkv/<tenant>/<framework>/<key>` | a framework's durable key-value state |
//! | `jobs/<tenant>/<job>` | [`proto::Job`](wasmesos_api::proto::Job) |
//! | `idem/<tenant>/<framework>/<idempotency key>` | the job id it created |
//! | `tasks/<tenant>/<framework>/<task>` | [`proto::Task`](wasmesos_api::proto::Task) |
//! | `modules/<tenant>/<hex digest>` | [`proto::Module`](wasmesos_api::proto::Module); bytes live in the blob directory |
//! | `blobs/<hex digest>/<n>` | on a shared store (etcd) only: the module's bytes in chunks, so that any master can serve them |
//! | `tenants/<tenant>` | [`proto::Tenant`](wasmesos_api::proto::Tenant): its roles |
//! | `tokens/<token id>` | [`proto::Token`](wasmesos_api::proto::Token): owner, kind, expiry, revocation, the secret's SHA-256 |
//! | `audit/<bucket>/<seq>` | [`proto::AuditEntry`](wasmesos_api::proto::AuditEntry); a bucket holds [`AUDIT_BUCKET`] entries, the oldest are dropped a bucket at a time |
//! | `masters/<advertise address>` | on a shared store: each running master (leader or standby), on its lease |

use wasmesos_api::{AgentId, Digest, FrameworkId, JobId, TaskId, TenantId};

pub const LEADER: &str = "leader";
pub const EPOCH: &str = "meta/epoch";

pub fn seq(name: &str) -> String {
    format!("seq/{name}")
}

pub const AGENTS: &str = "agents/";

pub fn agent(id: &AgentId) -> String {
    format!("{AGENTS}{id}")
}

pub const ROLES: &str = "roles/";

/// Role names follow the rules of ids (checked before), so they cannot add
/// path segments.
pub fn role(name: &str) -> String {
    format!("{ROLES}{name}")
}

pub const TENANTS: &str = "tenants/";

pub fn tenant(name: &TenantId) -> String {
    format!("{TENANTS}{name}")
}

pub const TOKENS: &str = "tokens/";

/// Token ids are 12 hex digits (checked when parsed).
pub fn token(id: &str) -> String {
    format!("{TOKENS}{id}")
}

pub const AUDIT: &str = "audit/";
/// Audit entries per bucket (a bucket's key prefix is deleted whole).
pub const AUDIT_BUCKET: u64 = 10_000;
/// Buckets kept: the newest 100,000 entries.
pub const AUDIT_BUCKETS_KEPT: u64 = 10;

pub fn audit_bucket(bucket: u64) -> String {
    format!("{AUDIT}{bucket:012}/")
}

pub fn audit(seq: u64) -> String {
    format!("{}{seq:020}", audit_bucket(seq / AUDIT_BUCKET))
}

pub const FRAMEWORKS: &str = "frameworks/";

pub fn framework(tenant: &TenantId, name: &str) -> String {
    format!("{FRAMEWORKS}{tenant}/{name}")
}

pub fn fw_kv_prefix(tenant: &TenantId, fw: &FrameworkId) -> String {
    format!("fwkv/{tenant}/{fw}/")
}

pub const JOBS: &str = "jobs/";

pub fn jobs_of(tenant: &TenantId) -> String {
    format!("{JOBS}{tenant}/")
}

pub fn job(tenant: &TenantId, id: &JobId) -> String {
    format!("{JOBS}{tenant}/{id}")
}

/// Idempotency keys are arbitrary client strings: hex-encode them so they
/// cannot break the key structure.
pub fn idempotency(tenant: &TenantId, fw: &FrameworkId, key: &str) -> String {
    format!("idem/{tenant}/{fw}/{}", hex::encode(key.as_bytes()))
}

pub const TASKS: &str = "tasks/";

pub fn tasks_of(tenant: &TenantId) -> String {
    format!("{TASKS}{tenant}/")
}

pub fn task(tenant: &TenantId, fw: &FrameworkId, id: &TaskId) -> String {
    format!("{TASKS}{tenant}/{fw}/{id}")
}

pub fn module(tenant: &TenantId, digest: &Digest) -> String {
    format!("modules/{tenant}/{}", digest.hex())
}

/// The chunks of a module's bytes, on a shared store.
pub fn blob_chunks(digest: &Digest) -> String {
    format!("blobs/{}/", digest.hex())
}

/// Chunk `n` of a module's bytes; fixed width, so key order is chunk order.
pub fn blob_chunk(digest: &Digest, n: usize) -> String {
    format!("blobs/{}/{n:06}", digest.hex())
}

pub const MASTERS: &str = "masters/";

/// A running master's presence, by its advertise address (made a single
/// key segment).
pub fn master(advertise: &str) -> String {
    format!("{MASTERS}{}", advertise.replace('/', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_prefix_their_tenants() {
        let t = TenantId::new("acme").unwrap();
        let fw = FrameworkId::new("fw-1").unwrap();
        let task = task(&t, &fw, &TaskId::new("job-1.1").unwrap());
        assert!(task.starts_with(TASKS));
        assert!(task.starts_with(&tasks_of(&t)));
        assert_eq!(task, "tasks/acme/fw-1/job-1.1");
        assert_eq!(
            idempotency(&t, &fw, "a/b"),
            "idem/acme/fw-1/612f62",
            "client keys cannot add path segments"
        );
    }
}
