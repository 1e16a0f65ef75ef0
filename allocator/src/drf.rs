//! The ordering at the heart of Dominant Resource Fairness: clients (roles,
//! or the frameworks of one role) kept sorted by share, lowest first, ties
//! broken by index (which the round assigns in id order).
//!
//! Changing one client's share costs O(log n), so a round never rescans all
//! frameworks to find the next one to serve.

use std::cmp::Ordering;
use std::collections::BTreeSet;

/// A share as a totally ordered key. Shares are never NaN (totals of zero
/// give share 0, weights are positive), so `total_cmp` orders them as
/// numbers.
#[derive(Clone, Copy, Debug)]
struct Share(f64);

impl PartialEq for Share {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Share {}

impl PartialOrd for Share {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Share {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Clients ordered by `(share, index)`. The caller remembers each client's
/// current share and passes it back when the share changes.
#[derive(Debug, Default)]
pub(crate) struct ShareQueue {
    order: BTreeSet<(Share, usize)>,
}

impl ShareQueue {
    pub(crate) fn insert(&mut self, index: usize, share: f64) {
        self.order.insert((Share(share), index));
    }

    /// Moves `index` from `old` share to `new` share.
    pub(crate) fn reposition(&mut self, index: usize, old: f64, new: f64) {
        let removed = self.order.remove(&(Share(old), index));
        debug_assert!(removed, "client {index} was not queued at share {old}");
        self.order.insert((Share(new), index));
    }

    /// Takes `index`, queued at `share`, out of the queue.
    pub(crate) fn remove(&mut self, index: usize, share: f64) {
        let removed = self.order.remove(&(Share(share), index));
        debug_assert!(removed, "client {index} was not queued at share {share}");
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Client indices, lowest share first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.order.iter().map(|(_, index)| *index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_share_first_then_lowest_index() {
        let mut q = ShareQueue::default();
        q.insert(2, 0.5);
        q.insert(0, 0.5);
        q.insert(1, 0.1);
        q.insert(3, 0.0);
        assert_eq!(q.iter().collect::<Vec<_>>(), [3, 1, 0, 2]);
        q.reposition(3, 0.0, 0.7);
        assert_eq!(q.iter().collect::<Vec<_>>(), [1, 0, 2, 3]);
        q.reposition(2, 0.5, 0.1);
        assert_eq!(q.iter().collect::<Vec<_>>(), [1, 2, 0, 3]);
    }
}
