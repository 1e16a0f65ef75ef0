//! Example tests of quotas (guarantees and limits) and static reservations,
//! written against the harness.

use wasmesos_api::Resources;

use crate::ResourceLimits;
use crate::harness::{Cluster, GIB, res};

fn cpus_and_mem(cpus: f64, mem_gib: u64) -> ResourceLimits {
    ResourceLimits {
        cpus_milli: Some((cpus * 1000.0) as u64),
        mem_bytes: Some(mem_gib * GIB),
        ..ResourceLimits::default()
    }
}

#[test]
fn a_role_below_its_guarantee_is_served_before_fair_share() {
    // "heavy" weighs 10 and would win every agent by fair share; "small"
    // is guaranteed 2 cpus and gets them (with a matching slice of memory)
    // from the first agent before anyone is served by fair share.
    let plan = Cluster::new()
        .agents(2, res(4.0, 8))
        .framework("heavy-1", "heavy")
        .allocated("heavy-1", res(0.0, 0))
        .framework("small-1", "small")
        .allocated("small-1", res(1.0, 0))
        .role("heavy", 10.0)
        .guarantee("small", res(3.0, 0))
        .run();
    let to = |framework: &str| {
        plan.decisions
            .iter()
            .filter(|d| d.framework.as_str() == framework)
            .map(|d| (d.agent.as_str(), d.resources.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(to("small-1"), [("a000", res(2.0, 4))]);
    assert_eq!(
        to("heavy-1"),
        [("a000", res(2.0, 4)), ("a001", res(4.0, 8))],
        "the rest by fair share"
    );
}

#[test]
fn a_guarantee_is_not_served_without_demand() {
    let plan = Cluster::new()
        .agents(2, res(4.0, 8))
        .framework("heavy-1", "heavy")
        .framework("small-1", "small")
        .suppressed("small-1")
        .guarantee("small", res(8.0, 16))
        .run();
    assert_eq!(plan.agents_of("heavy-1"), ["a000", "a001"]);
    assert!(plan.agents_of("small-1").is_empty());
}

#[test]
fn a_met_guarantee_leaves_the_role_to_fair_share() {
    // "small" already holds its guarantee: "heavy" (weight 10) wins.
    let plan = Cluster::new()
        .agents(1, res(4.0, 8))
        .framework("heavy-1", "heavy")
        .framework("small-1", "small")
        .allocated("small-1", res(1.0, 1))
        .role("heavy", 10.0)
        .guarantee("small", res(1.0, 1))
        .run();
    assert_eq!(plan.agents_of("heavy-1"), ["a000"]);
}

#[test]
fn an_offer_is_cut_to_the_limit_and_the_rest_goes_to_the_next_role() {
    let plan = Cluster::new()
        .agents(4, res(4.0, 8))
        .framework("capped-1", "capped")
        .framework("other-1", "other")
        .limit("capped", cpus_and_mem(6.0, 12))
        .run();
    let mut capped = Resources::empty();
    let mut other = Resources::empty();
    for d in &plan.decisions {
        match d.framework.as_str() {
            "capped-1" => capped += &d.resources,
            _ => other += &d.resources,
        }
    }
    assert_eq!(capped, res(6.0, 12), "exactly up to the limit");
    assert_eq!(other, res(10.0, 20), "and everything else to the other");
    let split: Vec<&str> = plan
        .decisions
        .iter()
        .filter(|d| d.resources != res(4.0, 8))
        .map(|d| d.agent.as_str())
        .collect();
    assert_eq!(split.len(), 2, "one agent shared: {:?}", plan.decisions);
    assert_eq!(split[0], split[1]);
}

#[test]
fn a_role_at_or_over_its_limit_is_offered_nothing_it_limits() {
    // The limit was lowered below what the role holds: nothing more.
    let plan = Cluster::new()
        .agents(2, res(4.0, 8))
        .framework("capped-1", "capped")
        .allocated("capped-1", res(8.0, 16))
        .limit("capped", cpus_and_mem(4.0, 8))
        .run();
    assert!(plan.decisions.is_empty(), "{:?}", plan.decisions);
}

#[test]
fn a_limit_of_zero_gpus_keeps_gpus_away_but_not_the_rest() {
    let gpus = wasmesos_api::parse_resources("cpus:4,mem:8GiB,gpus:2").unwrap();
    let plan = Cluster::new()
        .agent("gpu-box", gpus)
        .framework("f1", "no-gpus")
        .limit(
            "no-gpus",
            ResourceLimits {
                scalars_milli: [("gpus".to_string(), 0)].into(),
                ..ResourceLimits::default()
            },
        )
        .run();
    assert_eq!(plan.decisions.len(), 1);
    assert_eq!(plan.decisions[0].resources, res(4.0, 8));
}

#[test]
fn reserved_resources_go_to_their_role_and_the_rest_to_anyone() {
    // "db" holds more than "web", so by fair share "web" would get the
    // whole agent; the reserved half goes to "db" regardless.
    let plan = Cluster::new()
        .agent("a1", res(4.0, 8))
        .framework("db-1", "db")
        .allocated("db-1", res(10.0, 10))
        .framework("web-1", "web")
        .reserve("a1", "db", res(2.0, 4), Resources::empty())
        .run();
    assert_eq!(plan.decisions.len(), 2);
    assert_eq!(plan.decisions[0].framework.as_str(), "db-1");
    assert_eq!(plan.decisions[0].resources, res(2.0, 4));
    assert_eq!(plan.decisions[1].framework.as_str(), "web-1");
    assert_eq!(plan.decisions[1].resources, res(2.0, 4));
}

#[test]
fn reserved_resources_stay_unoffered_when_their_role_wants_none() {
    for cluster in [
        Cluster::new()
            .agent("a1", res(4.0, 8))
            .framework("db-1", "db")
            .suppressed("db-1"),
        Cluster::new().agent("a1", res(4.0, 8)),
    ] {
        let plan = cluster
            .framework("web-1", "web")
            .reserve("a1", "db", res(2.0, 4), Resources::empty())
            .run();
        assert_eq!(plan.agents_of("web-1"), ["a1"]);
        assert_eq!(plan.decisions.len(), 1);
        assert_eq!(plan.decisions[0].resources, res(2.0, 4), "only unreserved");
    }
}

#[test]
fn what_a_role_holds_on_an_agent_uses_up_its_reservation_first() {
    let plan = Cluster::new()
        .agent_with_free("a1", res(4.0, 8), res(2.0, 4))
        .framework("db-1", "db")
        .allocated("db-1", res(10.0, 10))
        .framework("web-1", "web")
        .reserve("a1", "db", res(2.0, 4), res(2.0, 4))
        .run();
    assert_eq!(
        plan.agents_of("web-1"),
        ["a1"],
        "nothing is set aside any more"
    );
    assert_eq!(plan.decisions[0].resources, res(2.0, 4));
}

#[test]
fn pieces_of_one_agent_for_one_framework_make_one_offer() {
    let plan = Cluster::new()
        .agent("a1", res(4.0, 8))
        .framework("db-1", "db")
        .reserve("a1", "db", res(1.0, 2), Resources::empty())
        .guarantee("db", res(2.0, 0))
        .run();
    assert_eq!(plan.decisions.len(), 1, "{:?}", plan.decisions);
    assert_eq!(plan.decisions[0].resources, res(4.0, 8));
}

#[test]
fn reserved_resources_count_toward_the_limit() {
    let plan = Cluster::new()
        .agent("a1", res(4.0, 8))
        .framework("db-1", "db")
        .reserve("a1", "db", res(4.0, 8), Resources::empty())
        .limit("db", cpus_and_mem(1.0, 2))
        .run();
    assert_eq!(plan.decisions.len(), 1);
    assert_eq!(plan.decisions[0].resources, res(1.0, 2));
}
