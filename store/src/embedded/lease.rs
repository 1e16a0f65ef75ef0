//! Leases of the embedded store, held in memory: a single-node store has no
//! one to hand them to, and a lease cannot outlive the process that keeps it
//! alive. Which keys are attached to which lease is durable (the
//! `lease_keys` table), so that the next process deletes them on open.
//!
//! Expiry runs on the writer thread: it sleeps no longer than the next
//! deadline, takes the expired leases out of this table and deletes their
//! keys through the normal write path, so watchers see the deletes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::{LeaseId, StoreError};

struct Lease {
    ttl: Duration,
    deadline: Instant,
}

pub(crate) struct Leases {
    live: Mutex<HashMap<LeaseId, Lease>>,
    next_id: AtomicI64,
}

impl Leases {
    pub(crate) fn new() -> Self {
        // Ids start from the wall clock (µs) so that a lease id kept by a
        // client across a master restart does not name a new lease.
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| i64::try_from(d.as_micros()).unwrap_or(1))
            .max(1);
        Leases {
            live: Mutex::new(HashMap::new()),
            next_id: AtomicI64::new(seed),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<LeaseId, Lease>> {
        // The map holds plain data: a panic elsewhere cannot leave it torn.
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn grant(&self, ttl: Duration, now: Instant) -> Result<LeaseId, StoreError> {
        if ttl.is_zero() {
            return Err(StoreError::InvalidArgument(
                "a lease needs a TTL above zero".into(),
            ));
        }
        let deadline = now
            .checked_add(ttl)
            .ok_or_else(|| StoreError::InvalidArgument(format!("lease TTL {ttl:?} is too long")))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.live().insert(id, Lease { ttl, deadline });
        Ok(id)
    }

    /// Renews a live lease; returns its TTL.
    pub(crate) fn keep_alive(&self, id: LeaseId, now: Instant) -> Result<Duration, StoreError> {
        let mut live = self.live();
        match live.get_mut(&id) {
            Some(lease) if lease.deadline > now => {
                lease.deadline = now + lease.ttl;
                Ok(lease.ttl)
            }
            _ => Err(StoreError::LeaseNotFound(id)),
        }
    }

    /// Whether keys may be attached to the lease now.
    pub(crate) fn is_live(&self, id: LeaseId, now: Instant) -> bool {
        self.live()
            .get(&id)
            .is_some_and(|lease| lease.deadline > now)
    }

    pub(crate) fn exists(&self, id: LeaseId) -> bool {
        self.live().contains_key(&id)
    }

    /// Forgets the lease; false if it did not exist.
    pub(crate) fn remove(&self, id: LeaseId) -> bool {
        self.live().remove(&id).is_some()
    }

    /// Takes out every lease whose deadline has passed.
    pub(crate) fn take_expired(&self, now: Instant) -> Vec<LeaseId> {
        let mut live = self.live();
        let expired: Vec<LeaseId> = live
            .iter()
            .filter(|(_, lease)| lease.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            live.remove(id);
        }
        expired
    }

    /// The earliest deadline of any live lease.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.live().values().map(|lease| lease.deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_keep_alive_expire() {
        let leases = Leases::new();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let id = leases.grant(ttl, t0).unwrap();
        assert!(leases.is_live(id, t0));
        assert_eq!(leases.next_deadline(), Some(t0 + ttl));
        assert_eq!(
            leases.keep_alive(id, t0 + Duration::from_secs(5)).unwrap(),
            ttl
        );
        assert_eq!(leases.next_deadline(), Some(t0 + Duration::from_secs(15)));
        assert!(leases.take_expired(t0 + Duration::from_secs(14)).is_empty());
        assert!(!leases.is_live(id, t0 + Duration::from_secs(15)));
        assert!(matches!(
            leases.keep_alive(id, t0 + Duration::from_secs(15)),
            Err(StoreError::LeaseNotFound(i)) if i == id
        ));
        assert_eq!(leases.take_expired(t0 + Duration::from_secs(15)), vec![id]);
        assert!(!leases.exists(id));
        assert_eq!(leases.next_deadline(), None);
    }

    #[test]
    fn ids_are_distinct_and_zero_ttl_is_refused() {
        let leases = Leases::new();
        let now = Instant::now();
        let a = leases.grant(Duration::from_secs(1), now).unwrap();
        let b = leases.grant(Duration::from_secs(1), now).unwrap();
        assert_ne!(a, b);
        assert!(leases.remove(a));
        assert!(!leases.remove(a));
        assert!(matches!(
            leases.grant(Duration::ZERO, now),
            Err(StoreError::InvalidArgument(_))
        ));
    }
}
