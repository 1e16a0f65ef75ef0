//! Times one `allocate` call on synthetic clusters and prints the figures.
//!
//! `cargo bench -p wasmesos-allocator --bench allocate`
//!
//! Clusters are generated from a fixed seed: agents of assorted sizes, some
//! partly used; frameworks spread over ten roles (two of them weighted),
//! holding some resources, one in ten suppressed, and one in five with
//! decline filters on a few dozen agents.
//!
//! Each cluster is timed twice: as generated, and with quotas and
//! reservations (`+quota`): two roles guaranteed a tenth of the cluster's
//! cpus each (so the guarantee stage runs), two limited to a twentieth,
//! and one agent in ten reserving half of itself for one of the roles.

use std::hint::black_box;
use std::time::{Duration, Instant};

use wasmesos_allocator::{
    AgentView, Config, Filter, FrameworkView, Reservation, ResourceLimits, RoleView, Snapshot,
    allocate, dominant_shares,
};
use wasmesos_api::{AgentId, FrameworkId, Resources};

const GIB: u64 = 1 << 30;
const NOW_MS: i64 = 1_000_000;

/// SplitMix64: a fixed, dependency-free source of variety.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn cluster(agents: usize, frameworks: usize, seed: u64) -> Snapshot {
    let mut rng = Rng(seed);
    let sizes = [(4.0, 16), (8.0, 32), (16.0, 64), (32.0, 128)];
    let agents: Vec<AgentView> = (0..agents)
        .map(|i| {
            let (cpus, mem_gib) = sizes[rng.below(sizes.len() as u64) as usize];
            let total = Resources::new(cpus, mem_gib * GIB, 100 * GIB);
            // A third idle, the rest with a random part in use.
            let used_pct = if rng.below(3) == 0 { 0 } else { rng.below(100) };
            let used = Resources {
                cpus_milli: total.cpus_milli * used_pct / 100,
                mem_bytes: total.mem_bytes * used_pct / 100,
                disk_bytes: 0,
                scalars_milli: Default::default(),
            };
            AgentView {
                id: AgentId::new(format!("agent-{i:06}")).unwrap(),
                free: total.saturating_sub(&used),
                total,
            }
        })
        .collect();
    let n_agents = agents.len() as u64;
    let frameworks = (0..frameworks)
        .map(|i| {
            let filters = if rng.below(5) == 0 {
                (0..rng.below(50))
                    .map(|_| Filter {
                        agent: AgentId::new(format!("agent-{:06}", rng.below(n_agents))).unwrap(),
                        resources: Resources::new(32.0, 128 * GIB, 100 * GIB),
                        until_ms: NOW_MS + rng.below(10_000) as i64 - 2_000,
                    })
                    .collect()
            } else {
                vec![]
            };
            FrameworkView {
                id: FrameworkId::new(format!("framework-{i:05}")).unwrap(),
                role: format!("role-{}", i % 10),
                allocated: Resources::new(rng.below(64) as f64, rng.below(256) * GIB, 0),
                suppressed: rng.below(10) == 0,
                filters,
            }
        })
        .collect();
    let roles = vec![
        RoleView::weighted("role-0", 2.0),
        RoleView::weighted("role-1", 0.5),
    ];
    Snapshot {
        agents,
        frameworks,
        roles,
        now_ms: NOW_MS,
    }
}

/// `snapshot` with guarantees, limits and reservations (see the docs).
fn with_quotas(mut snapshot: Snapshot) -> Snapshot {
    let total = snapshot.total();
    let tenth = Resources::new(total.cpus() / 10.0, total.mem_bytes / 10, 0);
    for name in ["role-2", "role-3"] {
        let mut role = RoleView::weighted(name, 1.0);
        role.quota.guarantee = tenth.clone();
        snapshot.roles.push(role);
    }
    for name in ["role-4", "role-5"] {
        let mut role = RoleView::weighted(name, 1.0);
        role.quota.limit = ResourceLimits {
            cpus_milli: Some(total.cpus_milli / 20),
            mem_bytes: Some(total.mem_bytes / 20),
            ..ResourceLimits::default()
        };
        snapshot.roles.push(role);
    }
    for (i, agent) in snapshot.agents.iter().enumerate().step_by(10) {
        let half = Resources {
            cpus_milli: agent.total.cpus_milli / 2,
            mem_bytes: agent.total.mem_bytes / 2,
            ..Resources::empty()
        };
        let role = &mut snapshot.roles[2 + i % 4];
        role.reservations.push(Reservation {
            agent: agent.id.clone(),
            resources: half,
            used: Resources::empty(),
        });
    }
    snapshot
}

/// The best and median of `runs` timings of `f`.
fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[0], times[runs / 2])
}

fn main() {
    let config = Config::default();
    println!(
        "{:>8} {:>6} {:>8} {:>12} {:>12} {:>14}",
        "agents", "fws", "offers", "best", "median", "shares(median)"
    );
    for (agents, frameworks, runs) in [(1_000, 10, 50), (10_000, 100, 20), (100_000, 1_000, 7)] {
        let plain = cluster(agents, frameworks, 42);
        let quotas = with_quotas(plain.clone());
        for (label, snapshot) in [("", plain), ("+quota", quotas)] {
            let offers = allocate(&snapshot, &config).len();
            let (best, median) = time(runs, || allocate(black_box(&snapshot), &config));
            let (_, shares) = time(runs, || dominant_shares(black_box(&snapshot)));
            println!(
                "{agents:>8} {frameworks:>6} {offers:>8} {:>12} {:>12} {:>14} {label}",
                format!("{best:.2?}"),
                format!("{median:.2?}"),
                format!("{shares:.2?}"),
            );
        }
    }
}
