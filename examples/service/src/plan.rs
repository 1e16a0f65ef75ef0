//! From the instances there are to what to do about them: how many to
//! launch and which to kill. Pure, so every case is a unit test.
//!
//! With `n` instances wanted, `current` those of the spec's generation and
//! `old` those of earlier ones (killed ones do not count):
//!
//! - more current instances than `n` (scaled down): kill the extras —
//!   those not yet running first, then those on the most crowded agents,
//!   newest first — and every old one;
//! - otherwise old instances retire as current ones run: kill old ones
//!   while old + running current > `n` (a rolling upgrade kills one old
//!   instance each time a new one reports RUNNING);
//! - launch enough to make `n` (replacing what failed, always in the
//!   current generation), plus one extra while old instances remain and no
//!   current one is starting: the rolling upgrade's next step.

use std::collections::BTreeMap;

use crate::state::Instance;

/// What to do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub launch: usize,
    /// Task ids to kill.
    pub kill: Vec<String>,
    /// Instances of earlier generations still counted.
    pub old: usize,
}

pub fn plan(n: usize, generation: u64, instances: &[(String, Instance)]) -> Plan {
    let live = instances.iter().filter(|(_, i)| !i.killing);
    let (current, old): (Vec<_>, Vec<_>) = live.partition(|(_, i)| i.generation >= generation);
    let running = current.iter().filter(|(_, i)| i.running).count();
    let starting = current.len() - running;

    let mut kill = Vec::new();
    let old_left = if current.len() > n {
        kill.extend(extras(&current, current.len() - n));
        kill.extend(retirees(&old, old.len()));
        0
    } else {
        let retire = (old.len() + running).saturating_sub(n).min(old.len());
        kill.extend(retirees(&old, retire));
        old.len() - retire
    };
    let kept = current.len().min(n);
    let fill = n.saturating_sub(old_left + kept);
    let step = old_left > 0 && starting == 0 && fill == 0 && kept < n;
    Plan {
        launch: fill + usize::from(step),
        kill,
        old: old_left,
    }
}

/// `k` current instances to kill when scaling down: not yet running first,
/// then from the most crowded agents, newest first.
fn extras(current: &[&(String, Instance)], k: usize) -> Vec<String> {
    let mut per_agent: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, i) in current {
        *per_agent.entry(i.agent_id.as_str()).or_default() += 1;
    }
    let mut left: Vec<&(String, Instance)> = current.to_vec();
    let mut out = Vec::new();
    for _ in 0..k {
        // Recomputed per pick: killing one changes its agent's crowding.
        let Some(pos) = (0..left.len()).max_by_key(|&p| {
            let i = &left[p].1;
            (!i.running, per_agent[i.agent_id.as_str()], i.n)
        }) else {
            break;
        };
        let (id, i) = left.swap_remove(pos);
        if let Some(c) = per_agent.get_mut(i.agent_id.as_str()) {
            *c -= 1;
        }
        out.push(id.clone());
    }
    out
}

/// `k` old instances to retire: not yet running first, then the oldest
/// generation, then the oldest instance.
fn retirees(old: &[&(String, Instance)], k: usize) -> Vec<String> {
    let mut sorted = old.to_vec();
    sorted.sort_by_key(|(_, i)| (i.running, i.generation, i.n));
    sorted
        .into_iter()
        .take(k)
        .map(|(id, _)| id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(generation: u64, n: u64, agent: &str, running: bool) -> (String, Instance) {
        (
            format!("svc-{generation}-{n}"),
            Instance {
                generation,
                n,
                agent_id: agent.into(),
                running,
                since_ms: 0,
                killing: false,
            },
        )
    }

    fn p(launch: usize, kill: &[&str], old: usize) -> Plan {
        Plan {
            launch,
            kill: kill.iter().map(|s| s.to_string()).collect(),
            old,
        }
    }

    #[test]
    fn fills_up_to_n_and_replaces_the_missing() {
        assert_eq!(plan(3, 1, &[]), p(3, &[], 0));
        let two = [inst(1, 0, "a", true), inst(1, 1, "b", false)];
        assert_eq!(plan(3, 1, &two), p(1, &[], 0));
        assert_eq!(plan(2, 1, &two), p(0, &[], 0));
        assert_eq!(plan(0, 1, &[]), p(0, &[], 0));
    }

    #[test]
    fn killed_instances_do_not_count() {
        let mut dying = inst(1, 0, "a", true);
        dying.1.killing = true;
        assert_eq!(plan(1, 1, &[dying]), p(1, &[], 0));
    }

    #[test]
    fn scaling_down_kills_starting_then_crowded_then_newest() {
        let all = [
            inst(1, 0, "a", true),
            inst(1, 1, "a", true),
            inst(1, 2, "b", true),
            inst(1, 3, "c", false),
            inst(1, 4, "b", true),
        ];
        // Starting first (svc-1-3), then the crowded agents' newest: a and b
        // have two each, b's newest is svc-1-4 (newer than a's svc-1-1).
        assert_eq!(plan(3, 1, &all), p(0, &["svc-1-3", "svc-1-4"], 0));
        // One more: now a is the most crowded.
        assert_eq!(
            plan(2, 1, &all),
            p(0, &["svc-1-3", "svc-1-4", "svc-1-1"], 0)
        );
        assert_eq!(plan(0, 1, &all).kill.len(), 5);
    }

    #[test]
    fn a_rolling_upgrade_goes_one_at_a_time() {
        let mut s = vec![
            inst(1, 0, "a", true),
            inst(1, 1, "b", true),
            inst(1, 2, "c", true),
        ];
        // Generation 2: one new instance, nothing killed yet.
        assert_eq!(plan(3, 2, &s), p(1, &[], 3));
        s.push(inst(2, 3, "a", false));
        // While it starts: nothing more.
        assert_eq!(plan(3, 2, &s), p(0, &[], 3));
        // It runs: one old one goes and the next new one starts.
        s[3].1.running = true;
        assert_eq!(plan(3, 2, &s), p(1, &["svc-1-0"], 2));
        s.remove(0);
        s.push(inst(2, 4, "b", true));
        assert_eq!(plan(3, 2, &s), p(1, &["svc-1-1"], 1));
        s.remove(0);
        s.push(inst(2, 5, "c", true));
        assert_eq!(plan(3, 2, &s), p(0, &["svc-1-2"], 0));
        s.remove(0);
        assert_eq!(plan(3, 2, &s), p(0, &[], 0));
    }

    #[test]
    fn an_old_instance_that_fails_mid_upgrade_is_replaced_by_a_new_one() {
        // Three wanted; one old failed, one new starting: 3 exist, so wait.
        let s = [
            inst(1, 0, "a", true),
            inst(1, 1, "b", true),
            inst(2, 3, "c", false),
        ];
        assert_eq!(plan(3, 2, &s), p(0, &[], 2));
        // Two old failed: fill with new ones.
        let s = [inst(1, 0, "a", true), inst(2, 3, "c", false)];
        assert_eq!(plan(3, 2, &s), p(1, &[], 1));
    }

    #[test]
    fn scaling_down_mid_upgrade_retires_old_first() {
        let s = [
            inst(1, 0, "a", true),
            inst(1, 1, "b", false),
            inst(2, 2, "c", true),
        ];
        assert_eq!(plan(1, 2, &s), p(0, &["svc-1-1", "svc-1-0"], 0));
        let s = [
            inst(1, 0, "a", true),
            inst(2, 1, "b", true),
            inst(2, 2, "c", true),
        ];
        assert_eq!(plan(1, 2, &s), p(0, &["svc-2-2", "svc-1-0"], 0));
    }
}
