//! Property tests over random snapshots, and a naive reference model the
//! real allocator must agree with decision for decision.

use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;
use wasmesos_api::{AgentId, FrameworkId, Resources};

use crate::harness::{Cluster, GIB, MIB, NOW_MS};
use crate::{
    AgentView, Config, Filter, FrameworkView, OfferDecision, RoleView, Snapshot, allocate,
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

fn role() -> impl Strategy<Value = RoleView> {
    (prop::sample::select(&ROLES[..]), 0.25..4.0f64).prop_map(|(name, weight)| RoleView {
        name: name.to_string(),
        weight,
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

/// The first entry of each framework id: the one the allocator uses.
fn first_frameworks(snapshot: &Snapshot) -> Vec<&FrameworkView> {
    let mut seen = HashSet::new();
    snapshot
        .frameworks
        .iter()
        .filter(|f| seen.insert(&f.id))
        .collect()
}

fn refuses(framework: &FrameworkView, agent: &AgentView, now_ms: i64) -> bool {
    framework.suppressed
        || framework
            .filters
            .iter()
            .any(|f| f.refuses(&agent.id, &agent.free, now_ms))
}

/// The semantics written as plainly as possible: for every agent, rescan
/// every framework and recompute every share from scratch.
fn reference(snapshot: &Snapshot, config: &Config) -> Vec<OfferDecision> {
    let total = snapshot.total();
    let mut frameworks: Vec<(&FrameworkView, Resources)> = first_frameworks(snapshot)
        .into_iter()
        .map(|f| (f, f.allocated.clone()))
        .collect();
    let role_share = |frameworks: &[(&FrameworkView, Resources)], role: &str| {
        let mut sum = Resources::empty();
        for (_, allocated) in frameworks.iter().filter(|(f, _)| f.role == role) {
            sum += allocated;
        }
        sum.dominant_share(&total) / snapshot.weight(role)
    };
    let mut decisions = vec![];
    for agent in snapshot.unique_agents() {
        if !config.allocatable(&agent.free) {
            continue;
        }
        let best = (0..frameworks.len())
            .filter(|i| !refuses(frameworks[*i].0, agent, snapshot.now_ms))
            .min_by(|a, b| {
                let (fa, aa) = &frameworks[*a];
                let (fb, ab) = &frameworks[*b];
                role_share(&frameworks, &fa.role)
                    .total_cmp(&role_share(&frameworks, &fb.role))
                    .then_with(|| fa.role.cmp(&fb.role))
                    .then_with(|| {
                        aa.dominant_share(&total)
                            .total_cmp(&ab.dominant_share(&total))
                    })
                    .then_with(|| fa.id.cmp(&fb.id))
            });
        if let Some(best) = best {
            frameworks[best].1 += &agent.free;
            decisions.push(OfferDecision {
                framework: frameworks[best].0.id.clone(),
                agent: agent.id.clone(),
                resources: agent.free.clone(),
            });
        }
    }
    decisions
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
    fn offers_are_exactly_an_agents_free_resources_and_each_agent_once(
        snapshot in snapshot(), config in config()
    ) {
        let decisions = allocate(&snapshot, &config);
        let agents = snapshot.unique_agents();
        let mut offered = HashSet::new();
        for d in &decisions {
            prop_assert!(offered.insert(&d.agent), "{} offered twice", d.agent);
            let agent = agents.iter().find(|a| a.id == d.agent).unwrap();
            prop_assert_eq!(&d.resources, &agent.free);
            prop_assert!(agent.total.contains(&d.resources));
            prop_assert!(config.allocatable(&d.resources));
        }
    }

    #[test]
    fn never_to_a_suppressed_framework_nor_through_an_active_filter(
        snapshot in snapshot(), config in config()
    ) {
        let frameworks = first_frameworks(&snapshot);
        let agents = snapshot.unique_agents();
        for d in allocate(&snapshot, &config) {
            let framework = frameworks.iter().find(|f| f.id == d.framework).unwrap();
            let agent = agents.iter().find(|a| a.id == d.agent).unwrap();
            prop_assert!(!framework.suppressed);
            prop_assert!(!refuses(framework, agent, snapshot.now_ms));
        }
    }

    #[test]
    fn an_allocatable_agent_is_left_out_only_when_everyone_refuses_it(
        snapshot in snapshot(), config in config()
    ) {
        let decisions = allocate(&snapshot, &config);
        let offered: HashSet<_> = decisions.iter().map(|d| &d.agent).collect();
        for agent in snapshot.unique_agents() {
            if config.allocatable(&agent.free) && !offered.contains(&agent.id) {
                for framework in first_frameworks(&snapshot) {
                    prop_assert!(refuses(framework, agent, snapshot.now_ms));
                }
            }
        }
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
