//! The per-task memory limit: a wasmtime `ResourceLimiter` that keeps the sum
//! of a task's linear memories and tables under its cap, remembers whether it
//! ever refused to grow (so a failure that follows is reported as
//! `MemoryExceeded` rather than as a generic trap) and records the peak.

use wasmtime::ResourceLimiter;

/// Bytes charged per table element (a pointer in wasmtime's tables).
const TABLE_ELEMENT_BYTES: u64 = 8;

#[derive(Debug)]
pub(crate) struct TaskLimiter {
    limit: u64,
    used: u64,
    peak: u64,
    exceeded: bool,
}

impl TaskLimiter {
    pub(crate) fn new(limit: u64) -> TaskLimiter {
        TaskLimiter {
            limit,
            used: 0,
            peak: 0,
            exceeded: false,
        }
    }

    /// The cap in bytes.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// The most bytes the task held at once.
    pub(crate) fn peak(&self) -> u64 {
        self.peak
    }

    /// Whether a growth was refused because of the cap.
    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// Charges a growth from `current` to `desired` bytes of one memory or
    /// table; refuses it (and remembers that) when it would pass the cap.
    fn grow(&mut self, current: u64, desired: u64) -> bool {
        let delta = desired.saturating_sub(current);
        let total = self.used.saturating_add(delta);
        if total > self.limit {
            self.exceeded = true;
            return false;
        }
        self.used = total;
        self.peak = self.peak.max(total);
        true
    }
}

impl ResourceLimiter for TaskLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(current as u64, desired as u64))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(
            (current as u64).saturating_mul(TABLE_ELEMENT_BYTES),
            (desired as u64).saturating_mul(TABLE_ELEMENT_BYTES),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_memories_and_tables_and_remembers_refusals() {
        let mut l = TaskLimiter::new(1000);
        assert!(l.memory_growing(0, 600, None).unwrap());
        assert!(l.table_growing(0, 10, None).unwrap()); // 80 bytes
        assert!(!l.exceeded());
        assert!(!l.memory_growing(600, 1000, None).unwrap()); // 1080 > 1000
        assert!(l.exceeded());
        assert!(l.memory_growing(600, 900, None).unwrap()); // 980
        assert_eq!(l.peak(), 980);
        assert_eq!(l.limit(), 1000);
    }
}
