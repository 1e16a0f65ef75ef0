//! Placing tasks on offers: the arithmetic every scheduler's `offers`
//! callback needs, done once.
//!
//! A [`Packer`] pools the offers of one callback by agent (a launch may use
//! several offers, all of one agent) and places tasks one at a time, each on
//! an agent with room left and that meets its [`Constraints`]: first fit in
//! offer order, or, when spreading, the agent with the fewest tasks of the
//! task's group. [`Packer::finish`] turns the placements into one launch per
//! agent and lists the offers left unused, to decline. [`pack`] does all of
//! that for a list of tasks with the same constraints.

use std::collections::BTreeMap;

use crate::{Command, Launch, Offer, Resources, TaskInfo, cmd};

/// Where a task may go, besides an agent with room for it. The default is
/// anywhere, first fit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Constraints {
    /// Tasks counted together by `max_per_agent` and `spread` (e.g. the
    /// instances of one service). Tasks placed through the packer count,
    /// and so do those declared with [`Packer::existing`].
    pub group: String,
    /// At most this many tasks of the group on one agent.
    pub max_per_agent: Option<usize>,
    /// Prefer the agent with the fewest tasks of the group (ties go to the
    /// agent offered first) rather than the first with room.
    pub spread: bool,
    /// Only agents with every one of these attributes (name, value).
    pub attributes: Vec<(String, String)>,
    /// Never these agents (e.g. where the task just failed).
    pub avoid_agents: Vec<String>,
}

impl Constraints {
    /// No constraints: first fit.
    pub fn any() -> Self {
        Self::default()
    }

    /// Constraints on the tasks of `group`; add rules with the methods below.
    pub fn group(group: &str) -> Self {
        Constraints {
            group: group.to_string(),
            ..Self::default()
        }
    }

    /// Prefer the agents with the fewest tasks of the group.
    pub fn spread(mut self) -> Self {
        self.spread = true;
        self
    }

    /// At most `k` tasks of the group per agent.
    pub fn max_per_agent(mut self, k: usize) -> Self {
        self.max_per_agent = Some(k);
        self
    }

    /// Only agents whose attribute `name` is `value`.
    pub fn with_attribute(mut self, name: &str, value: &str) -> Self {
        self.attributes.push((name.to_string(), value.to_string()));
        self
    }

    /// Never the agent `agent_id`.
    pub fn avoiding(mut self, agent_id: &str) -> Self {
        self.avoid_agents.push(agent_id.to_string());
        self
    }
}

/// One agent's offers in this callback and what has been placed on them.
#[derive(Debug, Clone)]
struct Bin {
    agent_id: String,
    attributes: Vec<(String, String)>,
    offer_ids: Vec<String>,
    left: Resources,
    tasks: Vec<TaskInfo>,
}

impl Bin {
    fn allows(&self, c: &Constraints) -> bool {
        !c.avoid_agents.contains(&self.agent_id)
            && c.attributes
                .iter()
                .all(|want| self.attributes.iter().any(|have| have == want))
    }
}

/// Places tasks on one callback's offers: pooled by agent, each task on
/// the first agent with room that meets its [`Constraints`] (or, when
/// spreading, the one with the fewest tasks of its group); then
/// [`finish`](Packer::finish) gives one launch per agent used and the
/// offers to decline.
///
/// ```
/// use wasmesos_sdk::{Constraints, Offer, Packer, Resources, TaskInfo};
/// # fn offer(id: &str, agent: &str) -> Offer {
/// #     Offer { id: id.into(), agent_id: agent.into(), hostname: "h".into(),
/// #             resources: Resources::new(1000, 1 << 30, 0), attributes: vec![] }
/// # }
/// # fn task(id: &str) -> TaskInfo {
/// #     TaskInfo { task_id: id.into(), name: id.into(), module_digest: String::new(),
/// #                args: vec![], env: vec![], resources: Resources::new(500, 1 << 20, 0),
/// #                limits: wasmesos_sdk::Limits { fuel: 0, timeout_ms: 0, log_bytes: 0 } }
/// # }
/// let offers = [offer("o1", "a1"), offer("o2", "a2")];
/// let mut packer = Packer::new(&offers);
/// packer.existing("web", "a1"); // an instance already runs on a1
/// let spread = Constraints::group("web").spread().max_per_agent(1);
/// assert_eq!(packer.place(task("web-2"), &spread).unwrap(), "a2");
/// assert!(packer.place(task("web-3"), &spread).is_err()); // one per agent at most
/// let commands = packer.finish().commands(5.0); // launch on o2, decline o1
/// assert_eq!(commands.len(), 2);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Packer {
    bins: Vec<Bin>,
    /// Tasks per (group, agent), existing and placed.
    counts: BTreeMap<(String, String), usize>,
}

impl Packer {
    /// A packer over `offers`, pooled by agent in the order each agent is
    /// first offered.
    pub fn new(offers: &[Offer]) -> Packer {
        let mut bins: Vec<Bin> = Vec::new();
        for offer in offers {
            match bins.iter_mut().find(|b| b.agent_id == offer.agent_id) {
                Some(bin) => {
                    bin.offer_ids.push(offer.id.clone());
                    bin.left += &offer.resources;
                }
                None => bins.push(Bin {
                    agent_id: offer.agent_id.clone(),
                    attributes: offer.attributes.clone(),
                    offer_ids: vec![offer.id.clone()],
                    left: offer.resources.clone(),
                    tasks: Vec::new(),
                }),
            }
        }
        Packer {
            bins,
            counts: BTreeMap::new(),
        }
    }

    /// Counts a task of `group` that already runs on `agent_id` (the agent
    /// need not be among the offers), for `spread` and `max_per_agent`.
    pub fn existing(&mut self, group: &str, agent_id: &str) {
        *self
            .counts
            .entry((group.to_string(), agent_id.to_string()))
            .or_default() += 1;
    }

    /// Tasks of `group` on `agent_id`, existing and placed.
    pub fn count(&self, group: &str, agent_id: &str) -> usize {
        self.counts
            .get(&(group.to_string(), agent_id.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// The agents offered, in order.
    pub fn agents(&self) -> impl Iterator<Item = &str> {
        self.bins.iter().map(|b| b.agent_id.as_str())
    }

    /// What is left of `agent_id`'s offers, if it was offered.
    pub fn left(&self, agent_id: &str) -> Option<&Resources> {
        self.bins
            .iter()
            .find(|b| b.agent_id == agent_id)
            .map(|b| &b.left)
    }

    /// True when nothing at all is left of any offer.
    pub fn is_exhausted(&self) -> bool {
        self.bins.iter().all(|b| b.left.is_empty())
    }

    /// The agent a task needing `need` would go to under `c`, without
    /// placing it.
    pub fn fits(&self, need: &Resources, c: &Constraints) -> Option<&str> {
        self.choose(need, c).map(|i| self.bins[i].agent_id.as_str())
    }

    fn choose(&self, need: &Resources, c: &Constraints) -> Option<usize> {
        let mut eligible = self.bins.iter().enumerate().filter(|(_, b)| {
            b.left.contains(need)
                && b.allows(c)
                && c.max_per_agent
                    .is_none_or(|k| self.count(&c.group, &b.agent_id) < k)
        });
        if c.spread {
            // min_by_key keeps the first of equals: ties go to offer order.
            eligible
                .min_by_key(|(_, b)| self.count(&c.group, &b.agent_id))
                .map(|(i, _)| i)
        } else {
            eligible.next().map(|(i, _)| i)
        }
    }

    /// Places `task` (needing `task.resources`) under `c` and returns the
    /// agent it goes to, or gives the task back when no agent will do.
    // The task comes back by value so the caller can keep or retry it;
    // boxing it would allocate on every refusal.
    #[allow(clippy::result_large_err)]
    pub fn place(&mut self, task: TaskInfo, c: &Constraints) -> Result<String, TaskInfo> {
        let Some(i) = self.choose(&task.resources, c) else {
            return Err(task);
        };
        let bin = &mut self.bins[i];
        // choose() checked `contains`, so this cannot fail.
        bin.left = bin.left.checked_sub(&task.resources).unwrap_or_default();
        bin.tasks.push(task);
        let agent = bin.agent_id.clone();
        *self
            .counts
            .entry((c.group.clone(), agent.clone()))
            .or_default() += 1;
        Ok(agent)
    }

    /// One launch per agent given tasks (with all of that agent's offers),
    /// and the offers of the agents given none.
    pub fn finish(self) -> Packed {
        let mut packed = Packed::default();
        for bin in self.bins {
            if bin.tasks.is_empty() {
                packed.unused.extend(bin.offer_ids);
                continue;
            }
            packed.placements.extend(
                bin.tasks
                    .iter()
                    .map(|t| (t.task_id.clone(), bin.agent_id.clone())),
            );
            packed.launches.push(Launch {
                offer_ids: bin.offer_ids,
                tasks: bin.tasks,
            });
        }
        packed
    }
}

/// What a packing came to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Packed {
    /// One launch per agent given tasks, in offer order.
    pub launches: Vec<Launch>,
    /// (task id, agent id) of every task placed, agent by agent.
    pub placements: Vec<(String, String)>,
    /// Offers of agents given no task: decline them (or let them lapse).
    pub unused: Vec<String>,
    /// Tasks that fit nowhere (filled by [`pack`] only), in input order.
    pub unplaced: Vec<TaskInfo>,
}

impl Packed {
    /// The launch commands, then a decline of the unused offers (if any)
    /// with `refuse_seconds`.
    pub fn commands(self, refuse_seconds: f64) -> Vec<Command> {
        let mut out: Vec<Command> = self.launches.into_iter().map(Command::Launch).collect();
        if !self.unused.is_empty() {
            out.push(cmd::decline(self.unused, refuse_seconds));
        }
        out
    }
}

/// First fit of `tasks`, in order, onto `offers`, every task under `c`.
/// Tasks that fit nowhere come back in [`Packed::unplaced`].
pub fn pack(offers: &[Offer], tasks: Vec<TaskInfo>, c: &Constraints) -> Packed {
    let mut packer = Packer::new(offers);
    let mut unplaced = Vec::new();
    for task in tasks {
        if let Err(task) = packer.place(task, c) {
            unplaced.push(task);
        }
    }
    let mut packed = packer.finish();
    packed.unplaced = unplaced;
    packed
}

#[cfg(test)]
mod tests;
