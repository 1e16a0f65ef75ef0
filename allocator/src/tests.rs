//! Example tests of one round, written against the harness.

use wasmesos_api::{Resources, parse_resources};

use crate::harness::{Cluster, GIB, MIB, NOW_MS, res};
use crate::{Config, allocate, allocate_with_total, dominant_shares};

#[test]
fn a_single_framework_is_offered_every_agent() {
    let plan = Cluster::new()
        .agents(5, res(4.0, 8))
        .framework("f1", "r")
        .run();
    assert_eq!(
        plan.agents_of("f1"),
        ["a000", "a001", "a002", "a003", "a004"]
    );
    for d in &plan.decisions {
        assert_eq!(d.resources, res(4.0, 8), "the whole free resources");
    }
}

#[test]
fn offers_are_the_agents_free_resources_not_their_totals() {
    let plan = Cluster::new()
        .agent_with_free("a1", res(8.0, 16), res(3.0, 2))
        .framework("f1", "r")
        .run();
    assert_eq!(plan.decisions.len(), 1);
    assert_eq!(plan.decisions[0].resources, res(3.0, 2));
}

#[test]
fn a_suppressed_framework_gets_nothing() {
    let plan = Cluster::new()
        .agents(4, res(4.0, 8))
        .framework("quiet", "r")
        .framework("busy", "r")
        .suppressed("quiet")
        .run();
    assert!(plan.agents_of("quiet").is_empty());
    assert_eq!(plan.agents_of("busy").len(), 4);

    let alone = Cluster::new()
        .agents(4, res(4.0, 8))
        .framework("quiet", "r")
        .suppressed("quiet")
        .run();
    assert!(alone.decisions.is_empty());
}

#[test]
fn a_suppressed_framework_still_counts_toward_its_roles_share() {
    // "a" holds half the cluster through a suppressed framework, so role
    // "b" is served first even though "a-new" holds nothing.
    let plan = Cluster::new()
        .agents(4, res(4.0, 8))
        .framework("a-old", "a")
        .allocated("a-old", res(8.0, 16))
        .suppressed("a-old")
        .framework("a-new", "a")
        .framework("b-new", "b")
        .run();
    assert_eq!(
        plan.sequence(),
        ["b-new", "b-new", "a-new", "b-new"],
        "b catches up to a's half, then they alternate"
    );
}

#[test]
fn a_filter_refuses_offers_it_contains_but_not_bigger_ones() {
    let plan = Cluster::new()
        .agent_with_free("small", res(8.0, 16), res(2.0, 4))
        .agent("big", res(8.0, 16))
        .framework("f1", "r")
        .filter("f1", "small", res(4.0, 8), NOW_MS + 5_000)
        .filter("f1", "big", res(4.0, 8), NOW_MS + 5_000)
        .run();
    assert_eq!(plan.framework_of("small"), None, "2 cpus fit inside 4");
    assert_eq!(plan.framework_of("big"), Some("f1"), "8 cpus do not");
}

#[test]
fn a_filter_on_one_agent_leaves_the_others_alone() {
    let plan = Cluster::new()
        .agents(3, res(4.0, 8))
        .framework("f1", "r")
        .filter("f1", "a001", res(100.0, 100), NOW_MS + 1)
        .run();
    assert_eq!(plan.agents_of("f1"), ["a000", "a002"]);
}

#[test]
fn an_expired_filter_is_ignored() {
    for until_ms in [NOW_MS, NOW_MS - 1, i64::MIN] {
        let plan = Cluster::new()
            .agent("a1", res(4.0, 8))
            .framework("f1", "r")
            .filter("f1", "a1", res(100.0, 100), until_ms)
            .run();
        assert_eq!(plan.agents_of("f1"), ["a1"], "until_ms {until_ms}");
    }
}

#[test]
fn a_refused_agent_goes_to_the_next_framework_then_the_next_role() {
    let declined = res(100.0, 100);
    let until = NOW_MS + 1;
    let plan = Cluster::new()
        .agent("a1", res(4.0, 8))
        .framework("f1", "a")
        .framework("f2", "a")
        .framework("g1", "b")
        .allocated("g1", res(1.0, 1))
        .filter("f1", "a1", declined.clone(), until)
        .run();
    assert_eq!(
        plan.framework_of("a1"),
        Some("f2"),
        "same role, next framework"
    );

    let plan = Cluster::new()
        .agent("a1", res(4.0, 8))
        .framework("f1", "a")
        .framework("f2", "a")
        .framework("g1", "b")
        .allocated("g1", res(1.0, 1))
        .filter("f1", "a1", declined.clone(), until)
        .filter("f2", "a1", declined.clone(), until)
        .run();
    assert_eq!(plan.framework_of("a1"), Some("g1"), "next role");

    let plan = Cluster::new()
        .agent("a1", res(4.0, 8))
        .framework("f1", "a")
        .framework("g1", "b")
        .filter("f1", "a1", declined.clone(), until)
        .suppressed("g1")
        .run();
    assert!(plan.decisions.is_empty(), "nobody left");
}

#[test]
fn two_frameworks_alternate_by_share() {
    let plan = Cluster::new()
        .agents(6, res(4.0, 8))
        .framework("f1", "r")
        .framework("f2", "r")
        .run();
    assert_eq!(plan.sequence(), ["f1", "f2", "f1", "f2", "f1", "f2"]);
}

#[test]
fn a_framework_holding_more_waits_for_the_others_to_catch_up() {
    let plan = Cluster::new()
        .agents(4, res(4.0, 8))
        .framework("rich", "r")
        .allocated("rich", res(8.0, 8))
        .framework("poor", "r")
        .run();
    // rich holds 8 of 16 cpus (share 0.5); poor reaches 0.5 after two
    // agents, wins the tie by id, and only then does rich get one.
    assert_eq!(plan.sequence(), ["poor", "poor", "poor", "rich"]);
}

#[test]
fn the_dominant_resource_decides_not_cpus() {
    // 10 agents of 1 cpu and 1 GiB. "mem" holds 0.1 cpus and 6 GiB (share
    // 0.6); "cpu" holds 5 cpus and 0.1 GiB (share 0.5): "cpu" is served
    // first although it holds fifty times the cpus.
    let plan = Cluster::new()
        .agents(10, res(1.0, 1))
        .framework("mem", "r")
        .allocated("mem", Resources::new(0.1, 6 * GIB, 0))
        .framework("cpu", "r")
        .allocated("cpu", Resources::new(5.0, 100 * MIB, 0))
        .run();
    assert_eq!(plan.sequence()[0], "cpu");
}

#[test]
fn roles_are_served_fairly_before_their_frameworks() {
    // Role "a" has three frameworks, role "b" one: the roles split the
    // agents, and "a" splits its half among its frameworks.
    let plan = Cluster::new()
        .agents(6, res(4.0, 8))
        .framework("a1", "a")
        .framework("a2", "a")
        .framework("a3", "a")
        .framework("b1", "b")
        .run();
    let counts = plan.counts();
    assert_eq!(counts["b1"], 3);
    assert_eq!(counts["a1"] + counts["a2"] + counts["a3"], 3);
    assert_eq!((counts["a1"], counts["a2"], counts["a3"]), (1, 1, 1));
}

#[test]
fn a_role_of_weight_two_gets_twice_the_dominant_share() {
    let plan = Cluster::new()
        .agents(300, res(4.0, 8))
        .framework("heavy-1", "heavy")
        .framework("heavy-2", "heavy")
        .framework("light-1", "light")
        .role("heavy", 2.0)
        .run();
    let shares = plan.shares_after();
    let heavy = shares.roles["heavy"].share;
    let light = shares.roles["light"].share;
    assert!((heavy - 2.0 / 3.0).abs() < 0.01, "heavy {heavy}");
    assert!((light - 1.0 / 3.0).abs() < 0.01, "light {light}");
    assert!((shares.roles["heavy"].weighted_share - light).abs() < 0.01);
}

#[test]
fn unlisted_roles_and_unusable_weights_weigh_one() {
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let plan = Cluster::new()
            .agents(10, res(4.0, 8))
            .framework("x", "odd")
            .framework("y", "unlisted")
            .role("odd", bad)
            .run();
        let counts = plan.counts();
        assert_eq!((counts["x"], counts["y"]), (5, 5), "weight {bad}");
    }
}

#[test]
fn ties_go_to_the_lowest_id_whatever_the_snapshot_order() {
    let forward = Cluster::new()
        .agents(3, res(4.0, 8))
        .framework("fa", "ra")
        .framework("fb", "rb")
        .framework("fc", "rc");
    let mut backward = forward.clone();
    backward.snapshot.frameworks.reverse();
    assert_eq!(forward.run().sequence(), ["fa", "fb", "fc"]);
    assert_eq!(backward.run().decisions, forward.run().decisions);
}

#[test]
fn agents_are_visited_in_snapshot_order() {
    let plan = Cluster::new()
        .agent("z", res(1.0, 1))
        .agent("a", res(8.0, 8))
        .framework("f1", "r")
        .framework("f2", "r")
        .run();
    assert_eq!(plan.framework_of("z"), Some("f1"));
    assert_eq!(plan.framework_of("a"), Some("f2"));
}

#[test]
fn too_little_free_is_not_offered() {
    let plan = Cluster::new()
        .agent_with_free("crumbs", res(4.0, 8), Resources::new(0.005, 16 * MIB, 0))
        .agent_with_free("cpu-only", res(4.0, 8), Resources::new(0.01, 0, 0))
        .agent_with_free("mem-only", res(4.0, 8), Resources::new(0.0, 32 * MIB, 0))
        .agent_with_free("disk-only", res(4.0, 8), Resources::new(0.0, 0, GIB))
        .agent_with_free("full", res(4.0, 8), Resources::empty())
        .framework("f1", "r")
        .run();
    assert_eq!(plan.agents_of("f1"), ["cpu-only", "mem-only"]);
}

#[test]
fn the_minimum_is_configurable() {
    let plan = Cluster::new()
        .agent_with_free("a1", res(4.0, 8), Resources::new(0.5, 0, 0))
        .agent_with_free("a2", res(4.0, 8), Resources::new(1.0, 0, 0))
        .agent_with_free("a3", res(4.0, 8), parse_resources("gpus:1").unwrap())
        .framework("f1", "r")
        .min_allocatable(parse_resources("cpus:1,gpus:1").unwrap())
        .run();
    assert_eq!(plan.agents_of("f1"), ["a2", "a3"]);
}

#[test]
fn an_empty_snapshot_offers_nothing() {
    assert!(Cluster::new().run().decisions.is_empty());
    assert!(
        Cluster::new()
            .agents(3, res(4.0, 8))
            .run()
            .decisions
            .is_empty()
    );
    assert!(
        Cluster::new()
            .framework("f1", "r")
            .run()
            .decisions
            .is_empty()
    );
    let shares = dominant_shares(&Cluster::new().snapshot);
    assert!(shares.frameworks.is_empty() && shares.roles.is_empty());
}

#[test]
fn a_repeated_agent_is_offered_once() {
    let plan = Cluster::new()
        .agent("a1", res(4.0, 8))
        .agent("a1", res(4.0, 8))
        .framework("f1", "r")
        .framework("f2", "r")
        .run();
    assert_eq!(plan.decisions.len(), 1);
    assert_eq!(dominant_shares(&plan.before).total, res(4.0, 8));
}

#[test]
fn dominant_shares_are_the_ones_allocation_uses() {
    let cluster = Cluster::new()
        .agents(4, res(4.0, 8)) // 16 cpus, 32 GiB
        .framework("f1", "a")
        .allocated("f1", res(4.0, 4)) // 0.25 of cpus
        .framework("f2", "a")
        .allocated("f2", res(1.0, 16)) // 0.5 of memory
        .framework("g1", "b")
        .role("b", 4.0)
        .role("idle", 3.0);
    let shares = dominant_shares(&cluster.snapshot);
    assert_eq!(shares.total, res(16.0, 32));
    assert_eq!(shares.frameworks[&crate::harness::framework_id("f1")], 0.25);
    assert_eq!(shares.frameworks[&crate::harness::framework_id("f2")], 0.5);
    let a = &shares.roles["a"];
    assert_eq!((a.weight, a.share, a.weighted_share), (1.0, 0.625, 0.625));
    assert_eq!(shares.roles["b"].weight, 4.0);
    assert_eq!(shares.roles["idle"].weight, 3.0);
    assert_eq!(shares.roles["idle"].share, 0.0);
}

#[test]
fn an_incremental_round_measures_shares_against_the_whole_cluster() {
    // Only a1 is in the snapshot. Against a1 alone, f1's 4 cpus are a share
    // of 1.0 and f2's 16 GiB a share of 2.0; against the whole cluster
    // (40 cpus, 1000 GiB) they are 0.1 and 0.016, so f2 is the neediest.
    let cluster = Cluster::new()
        .agent("a1", res(4.0, 8))
        .framework("f1", "r")
        .allocated("f1", res(4.0, 0))
        .framework("f2", "r")
        .allocated("f2", res(0.0, 16));
    let config = Config::default();
    let partial = allocate(&cluster.snapshot, &config);
    assert_eq!(partial[0].framework.as_str(), "f1");
    let whole = allocate_with_total(&cluster.snapshot, &res(40.0, 1000), &config);
    assert_eq!(whole[0].framework.as_str(), "f2");
}
