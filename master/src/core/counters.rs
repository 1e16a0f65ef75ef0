//! Counters the master keeps where its numbers are produced, for `/metrics`
//! and the UI: plain atomics bumped by the core loop (allocation rounds,
//! offers, launches) and by the committer (store latency), read by a
//! scrape without asking the core anything. Task counts by state are kept
//! by the core itself ([`TaskCounts`]): it is their only writer, and a
//! query reads them in constant time instead of scanning a million records.
//!
//! Neighbours: `core/allocation.rs`, `core/callbacks.rs` and
//! `core/status.rs` bump them; `commit` times its transactions into a
//! [`Histogram`]; `http/metrics.rs` renders them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmesos_api::proto::TaskState;

/// Bucket bounds in seconds: 100 µs to 10 s, roughly ×2.5 apart, which
/// covers both a sub-millisecond allocation round and a slow etcd commit.
pub const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0, 10.0,
];

/// A latency histogram of atomics: observing is a few relaxed adds.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// A histogram's figures at one moment (cumulative bucket counts).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramSnapshot {
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        // Only the first bucket that holds it; cumulative sums are made
        // when read, so an observation costs one add, not twelve.
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            elapsed.as_nanos().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                running += b.load(Ordering::Relaxed);
                running
            })
            .collect();
        HistogramSnapshot {
            cumulative,
            count: self.count.load(Ordering::Relaxed),
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// The master's counters, shared by the core, the pipeline and `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    pub allocation_rounds: Histogram,
    pub offers_made: AtomicU64,
    /// Offers a scheduler declined (with a filter) or let lapse unused.
    pub offers_declined: AtomicU64,
    pub offers_rescinded: AtomicU64,
    pub tasks_launched: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Every task record in the store, by state: counted once at recovery and
/// kept by the core as it creates and moves tasks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskCounts([u64; 9]);

impl TaskCounts {
    pub fn add(&mut self, state: TaskState) {
        self.0[state as usize] += 1;
    }

    pub fn moved(&mut self, from: TaskState, to: TaskState) {
        if from != to {
            self.0[from as usize] = self.0[from as usize].saturating_sub(1);
            self.0[to as usize] += 1;
        }
    }

    pub fn get(&self, state: TaskState) -> u64 {
        self.0[state as usize]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Every state (UNKNOWN left out) with its count, in life-cycle order.
    pub fn by_state(&self) -> Vec<(TaskState, u64)> {
        (1..self.0.len() as i32)
            .filter_map(|i| TaskState::try_from(i).ok())
            .map(|s| (s, self.get(s)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_sum_in_seconds() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.cumulative[0], 1, "50 µs is under the first bound");
        assert_eq!(s.cumulative[5], 2, "3 ms is under 5 ms");
        assert_eq!(
            *s.cumulative.last().unwrap(),
            2,
            "60 s is only in +Inf (the count)"
        );
        assert!((s.sum_seconds - 60.00305).abs() < 1e-9);
    }

    #[test]
    fn task_counts_follow_moves() {
        let mut c = TaskCounts::default();
        c.add(TaskState::Staging);
        c.add(TaskState::Staging);
        c.moved(TaskState::Staging, TaskState::Running);
        c.moved(TaskState::Running, TaskState::Finished);
        assert_eq!(c.get(TaskState::Staging), 1);
        assert_eq!(c.get(TaskState::Running), 0);
        assert_eq!(c.get(TaskState::Finished), 1);
        assert_eq!(c.total(), 2);
        assert_eq!(c.by_state().len(), 8);
    }
}
