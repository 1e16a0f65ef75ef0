//! Decline filters: which frameworks refuse an agent's free resources.
//!
//! Filters are indexed by agent once per round, so visiting an agent costs
//! time in proportion to the filters on *that* agent, not to the number of
//! frameworks.

use std::collections::HashMap;

use wasmesos_api::{AgentId, Resources};

use crate::snapshot::{Filter, FrameworkView};

impl Filter {
    /// True while the filter still holds at `now_ms`.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.until_ms > now_ms
    }

    /// True when this filter refuses an offer of `offered` from `agent` at
    /// `now_ms`: it is active, for that agent, and `offered` fits inside the
    /// declined resources. A bigger offer gets through.
    pub fn refuses(&self, agent: &AgentId, offered: &Resources, now_ms: i64) -> bool {
        self.is_active(now_ms) && &self.agent == agent && self.resources.contains(offered)
    }
}

/// The active filters of one round, by agent.
pub(crate) struct FilterIndex<'a> {
    /// For each agent, `(framework index, declined resources)`.
    by_agent: HashMap<&'a AgentId, Vec<(usize, &'a Resources)>>,
}

impl<'a> FilterIndex<'a> {
    /// Indexes the active filters of `frameworks`, each given with the index
    /// the round knows it by.
    pub(crate) fn new(
        frameworks: impl IntoIterator<Item = (usize, &'a FrameworkView)>,
        now_ms: i64,
    ) -> Self {
        let mut by_agent: HashMap<&AgentId, Vec<(usize, &Resources)>> = HashMap::new();
        for (index, framework) in frameworks {
            for filter in framework.filters.iter().filter(|f| f.is_active(now_ms)) {
                by_agent
                    .entry(&filter.agent)
                    .or_default()
                    .push((index, &filter.resources));
            }
        }
        Self { by_agent }
    }

    /// Fills `refusing` with the indices (sorted, unique) of the frameworks
    /// that refuse `free` from `agent`.
    pub(crate) fn refusing(&self, agent: &AgentId, free: &Resources, refusing: &mut Vec<usize>) {
        refusing.clear();
        if self.by_agent.is_empty() {
            return;
        }
        if let Some(filters) = self.by_agent.get(agent) {
            refusing.extend(
                filters
                    .iter()
                    .filter(|(_, declined)| declined.contains(free))
                    .map(|(index, _)| *index),
            );
            refusing.sort_unstable();
            refusing.dedup();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmesos_api::FrameworkId;

    fn agent(id: &str) -> AgentId {
        AgentId::new(id).unwrap()
    }

    fn filter(on: &str, cpus: f64, until_ms: i64) -> Filter {
        Filter {
            agent: agent(on),
            resources: Resources::new(cpus, 0, 0),
            until_ms,
        }
    }

    #[test]
    fn a_filter_refuses_what_fits_inside_it_until_it_expires() {
        let f = filter("a1", 4.0, 100);
        let small = Resources::new(2.0, 0, 0);
        assert!(f.refuses(&agent("a1"), &small, 99));
        assert!(!f.refuses(&agent("a1"), &small, 100), "expired at until_ms");
        assert!(!f.refuses(&agent("a2"), &small, 0), "other agent");
        assert!(
            !f.refuses(&agent("a1"), &Resources::new(8.0, 0, 0), 0),
            "bigger"
        );
        assert!(
            !f.refuses(&agent("a1"), &Resources::new(1.0, 1, 0), 0),
            "more memory"
        );
    }

    #[test]
    fn the_index_lists_each_refusing_framework_once() {
        let fw = |id: &str, filters| FrameworkView {
            id: FrameworkId::new(id).unwrap(),
            role: "r".into(),
            allocated: Resources::empty(),
            suppressed: false,
            filters,
        };
        let frameworks = [
            fw("f0", vec![filter("a1", 4.0, 10), filter("a1", 8.0, 10)]),
            fw("f1", vec![filter("a1", 1.0, 10), filter("a2", 8.0, 10)]),
            fw("f2", vec![filter("a1", 8.0, 5)]),
        ];
        let index = FilterIndex::new(frameworks.iter().enumerate(), 5);
        let mut out = vec![];
        index.refusing(&agent("a1"), &Resources::new(2.0, 0, 0), &mut out);
        assert_eq!(out, [0]);
        index.refusing(&agent("a2"), &Resources::new(2.0, 0, 0), &mut out);
        assert_eq!(out, [1]);
        index.refusing(&agent("a3"), &Resources::new(2.0, 0, 0), &mut out);
        assert!(out.is_empty());
    }
}
