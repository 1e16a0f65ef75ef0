//! The packer, natively.

use super::*;
use crate::Limits;

const MIB: u64 = 1 << 20;

fn offer(id: &str, agent: &str, cpus_milli: u64) -> Offer {
    Offer {
        id: id.into(),
        agent_id: agent.into(),
        hostname: format!("{agent}.local"),
        resources: Resources::new(cpus_milli, 1024 * MIB, 0),
        attributes: Vec::new(),
    }
}

fn task(id: &str, cpus_milli: u64) -> TaskInfo {
    TaskInfo {
        task_id: id.into(),
        name: id.into(),
        module_digest: String::new(),
        args: Vec::new(),
        env: Vec::new(),
        resources: Resources::new(cpus_milli, 64 * MIB, 0),
        limits: Limits {
            fuel: 0,
            timeout_ms: 0,
            log_bytes: 0,
        },
    }
}

fn tasks(prefix: &str, n: usize, cpus_milli: u64) -> Vec<TaskInfo> {
    (0..n)
        .map(|i| task(&format!("{prefix}{i}"), cpus_milli))
        .collect()
}

/// (offer ids, task ids) of each launch.
fn launches(p: &Packed) -> Vec<(Vec<String>, Vec<String>)> {
    p.launches
        .iter()
        .map(|l| {
            (
                l.offer_ids.clone(),
                l.tasks.iter().map(|t| t.task_id.clone()).collect(),
            )
        })
        .collect()
}

fn ids(list: &[TaskInfo]) -> Vec<&str> {
    list.iter().map(|t| t.task_id.as_str()).collect()
}

/// Tasks per agent, in agent order.
fn per_agent(p: &Packed) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for (_, agent) in &p.placements {
        *m.entry(agent.clone()).or_default() += 1;
    }
    m
}

#[test]
fn first_fit_in_order_with_leftovers() {
    let offers = [
        offer("o1", "a1", 1000),
        offer("o2", "a2", 1000),
        offer("o3", "a3", 1000),
    ];
    let p = pack(&offers, tasks("t", 5, 400), &Constraints::any());
    assert_eq!(
        launches(&p),
        [
            (vec!["o1".into()], vec!["t0".into(), "t1".into()]),
            (vec!["o2".into()], vec!["t2".into(), "t3".into()]),
            (vec!["o3".into()], vec!["t4".into()]),
        ]
    );
    assert!(p.unused.is_empty() && p.unplaced.is_empty());

    // A big task that fits nowhere does not stop smaller ones after it.
    let p = pack(
        &offers,
        vec![task("big", 2000), task("small", 100)],
        &Constraints::any(),
    );
    assert_eq!(ids(&p.unplaced), ["big"]);
    assert_eq!(p.placements, [("small".to_string(), "a1".to_string())]);
    assert_eq!(p.unused, ["o2", "o3"]);
}

#[test]
fn offers_of_one_agent_are_pooled_into_one_launch() {
    let offers = [
        offer("o1", "a1", 300),
        offer("o2", "a2", 100),
        offer("o3", "a1", 300),
    ];
    let p = pack(&offers, vec![task("t", 500)], &Constraints::any());
    assert_eq!(
        launches(&p),
        [(vec!["o1".into(), "o3".into()], vec!["t".into()])]
    );
    assert_eq!(p.unused, ["o2"]);
}

#[test]
fn every_resource_counts() {
    let mut offers = [offer("o1", "a1", 1000), offer("o2", "a2", 1000)];
    offers[1].resources = offers[1].resources.clone().with_scalar("gpus", 1000);
    let mut gpu = task("gpu", 100);
    gpu.resources = gpu.resources.with_scalar("gpus", 1000);
    let mut hungry = task("hungry", 100);
    hungry.resources.mem_bytes = 2048 * MIB;
    let p = pack(&offers, vec![gpu, hungry], &Constraints::any());
    assert_eq!(p.placements, [("gpu".to_string(), "a2".to_string())]);
    assert_eq!(ids(&p.unplaced), ["hungry"]);
}

#[test]
fn spread_prefers_the_agents_with_fewest() {
    let offers = [
        offer("o1", "a1", 4000),
        offer("o2", "a2", 4000),
        offer("o3", "a3", 4000),
    ];
    let c = Constraints::group("web").spread();
    let p = pack(&offers, tasks("w", 4, 100), &c);
    let counts = per_agent(&p);
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), [2, 1, 1]);
    // Ties go to offer order: w0 a1, w1 a2, w2 a3, w3 a1.
    assert_eq!(p.placements[1], ("w3".to_string(), "a1".to_string()));

    // Tasks already running count: a1 and a2 have one each, so a3 first.
    let mut packer = Packer::new(&offers);
    packer.existing("web", "a1");
    packer.existing("web", "a2");
    packer.existing("db", "a3"); // another group does not count
    assert_eq!(packer.fits(&task("x", 100).resources, &c), Some("a3"));
    assert_eq!(packer.place(task("w4", 100), &c).unwrap(), "a3");
    assert_eq!(packer.place(task("w5", 100), &c).unwrap(), "a1");
    assert_eq!(packer.count("web", "a1"), 2);
}

#[test]
fn spread_skips_agents_without_room() {
    let offers = [offer("o1", "a1", 100), offer("o2", "a2", 1000)];
    let mut packer = Packer::new(&offers);
    packer.existing("web", "a2");
    packer.existing("web", "a2");
    let c = Constraints::group("web").spread();
    assert_eq!(packer.place(task("w", 500), &c).unwrap(), "a2");
}

#[test]
fn at_most_k_per_agent() {
    let offers = [offer("o1", "a1", 4000), offer("o2", "a2", 4000)];
    let c = Constraints::group("web").max_per_agent(2);
    let p = pack(&offers, tasks("w", 5, 100), &c);
    assert_eq!(
        per_agent(&p),
        BTreeMap::from([("a1".to_string(), 2), ("a2".to_string(), 2)])
    );
    assert_eq!(ids(&p.unplaced), ["w4"]);

    // With one already on a1, it takes only one more.
    let mut packer = Packer::new(&offers);
    packer.existing("web", "a1");
    for t in tasks("w", 3, 100) {
        packer.place(t, &c).unwrap();
    }
    assert_eq!(packer.count("web", "a1"), 2);
    assert_eq!(packer.count("web", "a2"), 2);
    // Other groups are not limited by it.
    assert!(packer.place(task("db", 100), &Constraints::any()).is_ok());
}

#[test]
fn attributes_and_avoided_agents() {
    let mut offers = [
        offer("o1", "a1", 1000),
        offer("o2", "a2", 1000),
        offer("o3", "a3", 1000),
    ];
    offers[1].attributes = vec![("zone".into(), "b".into())];
    offers[2].attributes = vec![("zone".into(), "b".into()), ("ssd".into(), "yes".into())];
    let packer = Packer::new(&offers);
    let need = task("x", 100).resources;
    let zone_b = Constraints::any().with_attribute("zone", "b");
    assert_eq!(packer.fits(&need, &zone_b), Some("a2"));
    assert_eq!(
        packer.fits(&need, &zone_b.clone().avoiding("a2")),
        Some("a3")
    );
    let ssd_a = Constraints::any()
        .with_attribute("ssd", "yes")
        .with_attribute("zone", "a");
    assert_eq!(packer.fits(&need, &ssd_a), None);
}

#[test]
fn commands_launch_then_decline_the_rest() {
    let offers = [offer("o1", "a1", 1000), offer("o2", "a2", 1000)];
    let p = pack(&offers, vec![task("t", 100)], &Constraints::any());
    let cmds = p.commands(3.0);
    assert!(matches!(&cmds[0], Command::Launch(l) if l.offer_ids == ["o1"]));
    assert_eq!(cmds[1], cmd::decline(vec!["o2".into()], 3.0));
    assert_eq!(cmds.len(), 2);

    let nothing = pack(&offers, Vec::new(), &Constraints::any());
    assert_eq!(
        nothing.commands(1.0),
        [cmd::decline(vec!["o1".into(), "o2".into()], 1.0)]
    );
    assert!(Packer::new(&[]).finish().commands(1.0).is_empty());
}

#[test]
fn exhaustion_and_what_is_left() {
    let offers = [offer("o1", "a1", 1000)];
    let mut packer = Packer::new(&offers);
    assert!(!packer.is_exhausted());
    let mut whole = task("whole", 1000);
    whole.resources.mem_bytes = 1024 * MIB;
    packer.place(whole, &Constraints::any()).unwrap();
    assert!(packer.is_exhausted());
    assert_eq!(packer.left("a1"), Some(&Resources::empty()));
    assert_eq!(packer.left("a9"), None);
    assert_eq!(packer.agents().collect::<Vec<_>>(), ["a1"]);
}
