//! Dominant Resource Fairness over a snapshot: given the cluster's agents
//! and frameworks, decide which framework is offered which agent's free
//! resources. A pure function: no I/O, no async, no clocks (the time is an
//! argument), so it is unit-, property- and benchmark-tested in isolation.
//!
//! Neighbours: the master (`wasmesos-master`) builds a [`Snapshot`] from its
//! registry, calls [`allocate`] and turns each [`OfferDecision`] into an
//! offer delivered to the framework's scheduler; it also shows
//! [`dominant_shares`] in the CLI and UI. The simulator (`wasmesos sim`)
//! reuses the same function on synthetic clusters.
//!
//! The policy is Mesos' hierarchical DRF with quotas and static
//! reservations, coarse-grained: a round walks the agents in three stages —
//! reserved resources to their role, then slices for roles below their
//! guarantee, then the rest by fair share — and in each stage a role takes
//! an agent's whole pool, cut to its quota limit, or nothing.
//!
//! ```
//! use wasmesos_allocator::{AgentView, Config, FrameworkView, Snapshot, allocate};
//! use wasmesos_api::{AgentId, FrameworkId, Resources};
//!
//! let agent = |id: &str| AgentView {
//!     id: AgentId::new(id).unwrap(),
//!     total: Resources::new(4.0, 8 << 30, 0),
//!     free: Resources::new(4.0, 8 << 30, 0),
//! };
//! let framework = |id: &str| FrameworkView {
//!     id: FrameworkId::new(id).unwrap(),
//!     role: "default".into(),
//!     allocated: Resources::empty(),
//!     suppressed: false,
//!     filters: vec![],
//! };
//! let snapshot = Snapshot {
//!     agents: vec![agent("a1"), agent("a2")],
//!     frameworks: vec![framework("batch"), framework("web")],
//!     roles: vec![],
//!     now_ms: 0,
//! };
//! let offers = allocate(&snapshot, &Config::default());
//! // Equal shares: ties go by id, then the other framework is neediest.
//! assert_eq!(offers[0].framework.as_str(), "batch");
//! assert_eq!(offers[1].framework.as_str(), "web");
//! ```
//!
//! # Vocabulary
//!
//! - **role**: the group a framework allocates under; fairness is first
//!   between roles, then between the frameworks of a role.
//! - **weight**: a role's entitlement; weight 2 is entitled to twice the
//!   dominant share of weight 1. Unlisted roles weigh 1.
//! - **share** (dominant share): the largest fraction of the cluster total
//!   that an allocation takes of any one resource kind. A role's share is
//!   that of its frameworks' summed allocation, divided by its weight.
//! - **filter**: a framework's decline with `refuse_seconds`: offers from
//!   one agent that fit inside the declined resources are not made to it
//!   until the filter expires.
//! - **suppress**: a framework that wants no offers at all until it
//!   revives.
//! - **quota**: a role's *guarantee* (while it holds less, it is served
//!   before anyone is served by fair share) and *limit* (what it may hold
//!   at most, tasks and outstanding offers together; offers are cut down to
//!   fit).
//! - **reservation**: resources of an agent set aside for one role; they
//!   are offered to its frameworks only, and count toward its share, its
//!   guarantee and its limit like any other.
//!
//! # Layout
//!
//! - `snapshot`: the input ([`Snapshot`] and its views) and the output
//!   ([`OfferDecision`]).
//! - `config`: [`Config`], the minimum allocatable resources.
//! - `filters`: decline filters, indexed by agent for the round.
//! - `drf`: the share-ordered queues of roles and frameworks.
//! - `quota`: [`Quota`] and [`ResourceLimits`]: limit cuts and guarantee
//!   slices.
//! - `pools`: an agent's free resources split into reserved and unreserved
//!   pools.
//! - `kinds`: per-kind arithmetic on resources.
//! - `standing`: every role's and framework's share during a round.
//! - `round`: [`allocate`], the three-stage walk over agents.
//! - `shares`: [`dominant_shares`] for display.

mod config;
mod drf;
mod filters;
mod kinds;
mod pools;
mod quota;
mod round;
mod shares;
mod snapshot;
mod standing;

#[cfg(test)]
mod harness;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod quota_tests;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

pub use config::{Config, DEFAULT_MIN_ALLOCATABLE_CPUS_MILLI, DEFAULT_MIN_ALLOCATABLE_MEM_BYTES};
pub use quota::{Quota, ResourceLimits, below_guarantee, guarantee_slice};
pub use round::{allocate, allocate_with_total};
pub use shares::{RoleShare, Shares, dominant_shares};
pub use snapshot::{
    AgentView, DEFAULT_WEIGHT, Filter, FrameworkView, OfferDecision, Reservation, RoleView,
    Snapshot,
};
