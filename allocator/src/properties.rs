//! Property tests over random snapshots (with weights, quotas and
//! reservations), and agreement decision for decision with the naive
//! reference model of `reference.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;
use wasmesos_api::{AgentId, FrameworkId, Resources};

use crate::harness::{Cluster, GIB, MIB, NOW_MS};
use crate::kinds::Kind;
use crate::reference::{first_frameworks, quota_of, reference, refuses, reserved_pools};
use crate::{
    AgentView, Config, Filter, FrameworkView, OfferDecision, Quota, Reservation, ResourceLimits,
    RoleView, Snapshot, allocate, below_guarantee,
};

const ROLES: [&str; 3] = ["r0", "r1", "r2"];

fn resources(max_cpus_milli: u64, max_mem_mib: u64) -> impl Strategy<Value = Resources> {
    (
        0..=max_cpus_milli,
        0..=max_mem_mib,
        0..=4u64,
        prop::option::weighted(0.2, 1..=2_000u64),
    )
        .prop_map(|(cpus_milli, mem_mib, disk_gib, gpus)| Resources {
            cpus_milli,
            mem_bytes: mem_mib * MIB,
            disk_bytes: disk_gib * GIB,
            scalars_milli: gpus.map(|g| ("gpus".to_string(), g)).into_iter().collect(),
        })
}

/// Agent ids come from a small pool, so some repeat.
fn agent() -> impl Strategy<Value = AgentView> {
    (
        0..50u32,
        resources(16_000, 65_536),
        resources(16_000, 65_536),
    )
        .prop_map(|(n, total, free)| AgentView {
            id: AgentId::new(format!("a{n}")).unwrap(),
            // Free never exceeds total.
            free: total.saturating_sub(&total.saturating_sub(&free)),
            total,
        })
}

fn filter() -> impl Strategy<Value = Filter> {
    (0..50u32, resources(20_000, 80_000), -100..100i64).prop_map(|(n, resources, offset)| Filter {
        agent: AgentId::new(format!("a{n}")).unwrap(),
        resources,
        until_ms: NOW_MS + offset,
    })
}

/// Framework ids come from a small pool, so some repeat.
fn framework() -> impl Strategy<Value = FrameworkView> {
    (
        0..10u32,
        prop::sample::select(&ROLES[..]),
        resources(8_000, 16_384),
        prop::bool::weighted(0.2),
        prop::collection::vec(filter(), 0..6),
    )
        .prop_map(|(n, role, allocated, suppressed, filters)| FrameworkView {
            id: FrameworkId::new(format!("f{n}")).unwrap(),
            role: role.to_string(),
            allocated,
            suppressed,
            filters,
        })
}

/// A bound on some kinds, often none.
fn limit() -> impl Strategy<Value = ResourceLimits> {
    let bound = |max: u64| prop::option::weighted(0.4, 0..=max);
    (
        bound(40_000),
        bound(160_000),
        bound(8),
        prop::option::weighted(0.2, 0..=3_000u64),
    )
        .prop_map(|(cpus, mem_mib, disk_gib, gpus)| ResourceLimits {
            cpus_milli: cpus,
            mem_bytes: mem_mib.map(|m| m * MIB),
            disk_bytes: disk_gib.map(|d| d * GIB),
            scalars_milli: gpus.map(|g| ("gpus".to_string(), g)).into_iter().collect(),
        })
}

fn reservation() -> impl Strategy<Value = Reservation> {
    (0..50u32, resources(8_000, 16_384), resources(4_000, 8_192)).prop_map(
        |(n, resources, used)| Reservation {
            agent: AgentId::new(format!("a{n}")).unwrap(),
            resources,
            used,
        },
    )
}

fn role() -> impl Strategy<Value = RoleView> {
    (
        prop::sample::select(&ROLES[..]),
        0.25..4.0f64,
        prop::option::weighted(0.4, resources(30_000, 100_000)),
        limit(),
        prop::collection::vec(reservation(), 0..4),
    )
        .prop_map(|(name, weight, guarantee, limit, reservations)| RoleView {
            name: name.to_string(),
            weight,
            quota: Quota {
                guarantee: guarantee.unwrap_or_default(),
                limit,
            },
            reservations,
        })
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    (
        prop::collection::vec(agent(), 0..40),
        prop::collection::vec(framework(), 0..8),
        prop::collection::vec(role(), 0..4),
    )
        .prop_map(|(agents, frameworks, roles)| Snapshot {
            agents,
            frameworks,
            roles,
            now_ms: NOW_MS,
        })
}

fn config() -> impl Strategy<Value = Config> {
    prop_oneof![
        Just(Config::default()),
        Just(Config {
            min_allocatable: Resources::empty()
        }),
        resources(4_000, 4_096).prop_map(|min_allocatable| Config { min_allocatable }),
    ]
}

proptest! {
    #[test]
    fn never_over_allocates_an_agent_and_reserved_resources_go_to_their_role_only(
        snapshot in snapshot(), config in config()
    ) {
        let decisions = allocate(&snapshot, &config);
        let mut pairs = HashSet::new();
        for d in &decisions {
            prop_assert!(pairs.insert((&d.agent, &d.framework)), "{} offered {} twice", d.agent, d.framework);
            prop_assert!(config.allocatable(&d.resources));
        }
        for agent in snapshot.unique_agents() {
            let by_role = offered_by_role(&snapshot, &decisions, &agent.id);
            let mut sum = Resources::empty();
            for offered in by_role.values() {
                sum += offered;
            }
            prop_assert!(agent.free.contains(&sum), "{}: offered {sum:?} of {:?}", agent.id, agent.free);
            let (reserved, unreserved) = reserved_pools(&snapshot, agent);
            prop_assert!(unreserved.contains(&beyond_reservations(&by_role, &reserved)));
        }
    }

    #[test]
    fn never_exceeds_a_quota_limit(snapshot in snapshot(), config in config()) {
        let decisions = allocate(&snapshot, &config);
        let before = role_allocations(&snapshot);
        let mut offered: HashMap<String, Resources> = HashMap::new();
        for d in &decisions {
            *offered.entry(role_of(&snapshot, &d.framework)).or_default() += &d.resources;
        }
        for (role, offered) in offered {
            let limit = quota_of(&snapshot, &role).limit;
            let held = before.get(&role).cloned().unwrap_or_default();
            let within = |max: Option<u64>, held: u64, more: u64| {
                max.is_none_or(|max| more == 0 || held + more <= max)
            };
            prop_assert!(within(limit.cpus_milli, held.cpus_milli, offered.cpus_milli), "{role} cpus");
            prop_assert!(within(limit.mem_bytes, held.mem_bytes, offered.mem_bytes), "{role} mem");
            prop_assert!(within(limit.disk_bytes, held.disk_bytes, offered.disk_bytes), "{role} disk");
            for (kind, max) in &limit.scalars_milli {
                let amount = |r: &Resources| r.scalars_milli.get(kind).copied().unwrap_or(0);
                prop_assert!(within(Some(*max), amount(&held), amount(&offered)), "{role} {kind}");
            }
        }
    }

    /// A role still short of its guarantee in some kind after a round,
    /// although it has a framework that wants everything and refuses
    /// nothing, and a limit that allows the guarantee: then no unreserved
    /// resource of that kind went to a role that was not itself short of
    /// its guarantee.
    #[test]
    fn guarantees_are_met_first_when_demand_exists(snapshot in snapshot()) {
        // Any non-empty slice is worth offering, so that a short role's
        // slice is never too small to make.
        let config = Config { min_allocatable: Resources::empty() };
        let decisions = allocate(&snapshot, &config);
        let before = role_allocations(&snapshot);
        let mut after = before.clone();
        for d in &decisions {
            *after.entry(role_of(&snapshot, &d.framework)).or_default() += &d.resources;
        }
        let frameworks = first_frameworks(&snapshot);
        let short_before = |role: &str| {
            below_guarantee(&quota_of(&snapshot, role).guarantee, &before.get(role).cloned().unwrap_or_default())
        };
        for (role, held) in &after {
            let quota = quota_of(&snapshot, role);
            let clean_demand = frameworks.iter().any(|f| {
                &f.role == role && !f.suppressed && f.filters.iter().all(|flt| !flt.is_active(snapshot.now_ms))
            });
            if !clean_demand {
                continue;
            }
            for kind in short_kinds(&quota, held) {
                for d in &decisions {
                    let other = role_of(&snapshot, &d.framework);
                    if &other == role || short_before(&other) {
                        continue;
                    }
                    let agent = snapshot.unique_agents().into_iter().find(|a| a.id == d.agent).unwrap();
                    let (reserved, _) = reserved_pools(&snapshot, agent);
                    let own = reserved.iter().find(|(r, _)| *r == other).map(|(_, p)| p.clone()).unwrap_or_default();
                    let unreserved = d.resources.saturating_sub(&own);
                    prop_assert_eq!(
                        kind.of(&unreserved), 0,
                        "{} got {:?} of {:?} while {} was short of it", other, kind, unreserved, role
                    );
                }
            }
        }
    }

    #[test]
    fn never_to_a_suppressed_framework_nor_through_an_active_filter(
        snapshot in snapshot(), config in config()
    ) {
        let frameworks = first_frameworks(&snapshot);
        for d in allocate(&snapshot, &config) {
            let framework = frameworks.iter().find(|f| f.id == d.framework).unwrap();
            prop_assert!(!refuses(framework, &d.agent, &d.resources, snapshot.now_ms));
        }
    }

    /// What is left unreserved on an agent after a round is left only
    /// because no framework may take it: its limit leaves nothing worth
    /// offering, or it refuses what would be left for it.
    #[test]
    fn unreserved_resources_are_left_only_when_no_one_can_take_them(
        snapshot in snapshot(), config in config()
    ) {
        let decisions = allocate(&snapshot, &config);
        let mut after = role_allocations(&snapshot);
        for d in &decisions {
            *after.entry(role_of(&snapshot, &d.framework)).or_default() += &d.resources;
        }
        for agent in snapshot.unique_agents() {
            let by_role = offered_by_role(&snapshot, &decisions, &agent.id);
            let (reserved, unreserved) = reserved_pools(&snapshot, agent);
            let left = unreserved.saturating_sub(&beyond_reservations(&by_role, &reserved));
            for framework in first_frameworks(&snapshot) {
                let limit = quota_of(&snapshot, &framework.role).limit;
                let offer = limit.cut(&left, &after[&framework.role]);
                prop_assert!(
                    !config.allocatable(&offer) || refuses(framework, &agent.id, &offer, snapshot.now_ms),
                    "{} could take {:?} of {}", framework.id, offer, agent.id
                );
            }
        }
    }

    /// Rounds in which every offer is declined for a long time: each
    /// framework that could be offered something somewhere is offered
    /// something within a bounded number of rounds.
    #[test]
    fn every_framework_with_demand_is_eventually_offered_something(
        snapshot in snapshot(), config in config()
    ) {
        let mut snapshot = snapshot;
        for f in &mut snapshot.frameworks {
            f.filters.clear();
        }
        let frameworks: Vec<FrameworkView> = first_frameworks(&snapshot).into_iter().cloned().collect();
        let agents = snapshot.unique_agents().len();
        let mut waiting: HashSet<FrameworkId> = frameworks
            .iter()
            .filter(|f| has_demand(&snapshot, f, &config))
            .map(|f| f.id.clone())
            .collect();
        // Each (framework, agent, amount) is offered once at most, and an
        // agent is offered as a handful of different amounts at most.
        let rounds = 4 * frameworks.len() * agents + 2;
        for _ in 0..rounds {
            if waiting.is_empty() {
                break;
            }
            snapshot.now_ms += 1_000;
            for d in allocate(&snapshot, &config) {
                waiting.remove(&d.framework);
                let framework = snapshot.frameworks.iter_mut().find(|f| f.id == d.framework).unwrap();
                framework.filters.push(Filter {
                    agent: d.agent,
                    resources: d.resources,
                    until_ms: i64::MAX,
                });
            }
        }
        prop_assert!(waiting.is_empty(), "never offered anything: {waiting:?}");
    }

    #[test]
    fn agrees_with_the_naive_reference(snapshot in snapshot(), config in config()) {
        prop_assert_eq!(allocate(&snapshot, &config), reference(&snapshot, &config));
    }

    #[test]
    fn deterministic_whatever_the_order_of_frameworks_and_roles(
        (snapshot, frameworks, roles) in snapshot().prop_flat_map(|mut s| {
            // Unique ids, so that order cannot pick a different entry.
            let mut seen = HashSet::new();
            s.frameworks.retain(|f| seen.insert(f.id.clone()));
            let mut seen = HashSet::new();
            s.roles.retain(|r| seen.insert(r.name.clone()));
            let frameworks = Just(s.frameworks.clone()).prop_shuffle();
            let roles = Just(s.roles.clone()).prop_shuffle();
            (Just(s), frameworks, roles)
        }),
        config in config(),
    ) {
        let first = allocate(&snapshot, &config);
        prop_assert_eq!(&first, &allocate(&snapshot, &config));
        let shuffled = Snapshot { frameworks, roles, ..snapshot.clone() };
        prop_assert_eq!(&first, &allocate(&shuffled, &config));
    }

    /// With everyone wanting everything and starting from nothing, weighted
    /// role shares end within one agent's share of each other (divided by
    /// the smallest weight), and so do the frameworks of a role.
    #[test]
    fn shares_converge_to_the_weights_under_contention(
        weights in prop::collection::vec(0.5..4.0f64, 2..=4),
        frameworks_per_role in prop::collection::vec(1..=3usize, 4),
        agents in prop::collection::vec((1..=16u64, 1..=64u64), 50..300),
    ) {
        let mut cluster = Cluster::new();
        for (i, (cpus, mem_gib)) in agents.iter().enumerate() {
            let size = Resources::new(*cpus as f64, mem_gib * GIB, 0);
            cluster = cluster.agent(&format!("a{i}"), size);
        }
        for (r, weight) in weights.iter().enumerate() {
            cluster = cluster.role(&format!("r{r}"), *weight);
            for f in 0..frameworks_per_role[r] {
                cluster = cluster.framework(&format!("f{r}-{f}"), &format!("r{r}"));
            }
        }
        let plan = cluster.run();
        let total = plan.before.total();
        let largest = plan
            .before
            .agents
            .iter()
            .map(|a| a.free.dominant_share(&total))
            .fold(0.0, f64::max);
        let lightest = weights.iter().copied().fold(f64::INFINITY, f64::min);
        let shares = plan.shares_after();

        let weighted: Vec<f64> = shares.roles.values().map(|r| r.weighted_share).collect();
        let role_spread = spread(&weighted);
        prop_assert!(
            role_spread <= largest / lightest + 1e-9,
            "weighted role shares {weighted:?} spread {role_spread} > {largest} / {lightest}"
        );

        let mut by_role: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for framework in &plan.before.frameworks {
            by_role
                .entry(&framework.role)
                .or_default()
                .push(shares.frameworks[&framework.id]);
        }
        for (role, framework_shares) in by_role {
            prop_assert!(
                spread(&framework_shares) <= largest + 1e-9,
                "frameworks of {role}: {framework_shares:?}"
            );
        }
    }
}

fn spread(values: &[f64]) -> f64 {
    let max = values.iter().copied().max_by(f64::total_cmp).unwrap_or(0.0);
    let min = values.iter().copied().min_by(f64::total_cmp).unwrap_or(0.0);
    max - min
}

/// The role of `framework` (its first entry's).
fn role_of(snapshot: &Snapshot, framework: &FrameworkId) -> String {
    first_frameworks(snapshot)
        .into_iter()
        .find(|f| &f.id == framework)
        .map(|f| f.role.clone())
        .expect("offers go to listed frameworks")
}

/// What each role holds before the round.
fn role_allocations(snapshot: &Snapshot) -> HashMap<String, Resources> {
    let mut held: HashMap<String, Resources> = HashMap::new();
    for f in first_frameworks(snapshot) {
        *held.entry(f.role.clone()).or_default() += &f.allocated;
    }
    held
}

/// What each role was offered of `agent`.
fn offered_by_role(
    snapshot: &Snapshot,
    decisions: &[OfferDecision],
    agent: &AgentId,
) -> HashMap<String, Resources> {
    let mut by_role: HashMap<String, Resources> = HashMap::new();
    for d in decisions.iter().filter(|d| &d.agent == agent) {
        *by_role.entry(role_of(snapshot, &d.framework)).or_default() += &d.resources;
    }
    by_role
}

/// What the roles were offered beyond their reserved pools: what came out
/// of the unreserved pool.
fn beyond_reservations(
    by_role: &HashMap<String, Resources>,
    reserved: &[(String, Resources)],
) -> Resources {
    let mut sum = Resources::empty();
    for (role, offered) in by_role {
        let own = reserved
            .iter()
            .find(|(r, _)| r == role)
            .map(|(_, pool)| pool.clone())
            .unwrap_or_default();
        sum += &offered.saturating_sub(&own);
    }
    sum
}

/// The kinds `held` is short of the guarantee in, where the limit allows
/// the guarantee.
fn short_kinds<'a>(quota: &'a Quota, held: &Resources) -> Vec<Kind<'a>> {
    let g = &quota.guarantee;
    let mut kinds = vec![Kind::Cpus, Kind::Mem, Kind::Disk];
    kinds.extend(g.scalars_milli.keys().map(|k| Kind::Scalar(k)));
    kinds
        .into_iter()
        .filter(|k| k.of(g) > k.of(held))
        .filter(|k| quota.limit.of(*k).is_none_or(|max| max >= k.of(g)))
        .collect()
}

/// True when some agent has a pool `framework` may be offered something
/// of, as far as its role's limit goes.
fn has_demand(snapshot: &Snapshot, framework: &FrameworkView, config: &Config) -> bool {
    if framework.suppressed {
        return false;
    }
    let held = role_allocations(snapshot)
        .remove(&framework.role)
        .unwrap_or_default();
    let limit = quota_of(snapshot, &framework.role).limit;
    snapshot.unique_agents().into_iter().any(|agent| {
        let (reserved, unreserved) = reserved_pools(snapshot, agent);
        let own = reserved
            .into_iter()
            .find(|(r, _)| *r == framework.role)
            .map(|(_, pool)| pool)
            .unwrap_or_default();
        config.allocatable(&limit.cut(&(unreserved + &own), &held))
    })
}
