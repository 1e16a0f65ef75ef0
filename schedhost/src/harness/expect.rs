//! Checking an `expect` step against the simulated cluster and the record
//! so far. Every field set is checked and every failure is described with
//! what was found instead, so that one failed run says all that is wrong.

use serde_json::Value;
use wasmesos_api::TaskId;

use super::cluster::Cluster;
use super::record::Record;
use super::step::Expect;

/// `Ok` when everything `e` states holds; otherwise each failure, joined.
pub(crate) fn check(e: &Expect, cluster: &Cluster, record: &Record) -> Result<(), String> {
    let mut failed: Vec<String> = Vec::new();
    if let Some(want) = e.running {
        let active = cluster.active_tasks();
        if active.len() != want {
            let found: Vec<String> = active
                .iter()
                .map(|t| format!("{} {}", t.id, t.state.name()))
                .collect();
            failed.push(format!(
                "running: expected {want} active task(s), found {}{}",
                active.len(),
                listed(&found)
            ));
        }
    }
    let launched = record.launched();
    if let Some(want) = &e.launched {
        let missing: Vec<&TaskId> = want.iter().filter(|t| !launched.contains(t)).collect();
        if !missing.is_empty() {
            failed.push(format!(
                "launched: {} never launched (launched so far: {})",
                join(&missing),
                if launched.is_empty() {
                    "none".to_string()
                } else {
                    join(&launched)
                }
            ));
        }
    }
    if let Some(unwanted) = &e.not_launched {
        let found: Vec<&TaskId> = unwanted.iter().filter(|t| launched.contains(t)).collect();
        if !found.is_empty() {
            failed.push(format!("not_launched: {} launched", join(&found)));
        }
    }
    if let Some(want) = &e.tasks {
        for (id, state) in want {
            match cluster.task(id) {
                None => failed.push(format!("tasks: no task {id}")),
                Some(t) if t.state != state.0 => failed.push(format!(
                    "tasks: {id} is {}, expected {}{}",
                    t.state.name(),
                    state.0.name(),
                    said(&t.message)
                )),
                Some(_) => {}
            }
        }
    }
    if let Some(want) = &e.jobs {
        for (id, state) in want {
            let jobs: Vec<_> = if id == "*" {
                cluster.jobs().collect()
            } else {
                match cluster.job(id) {
                    Some(j) => vec![j],
                    None => {
                        failed.push(format!("jobs: no job {id} was accepted"));
                        continue;
                    }
                }
            };
            for j in jobs.into_iter().filter(|j| j.state != state.0) {
                failed.push(format!(
                    "jobs: {} is {}, expected {}{}",
                    j.id,
                    wasmesos_api::job_state_name(j.state),
                    wasmesos_api::job_state_name(state.0),
                    said(&j.message)
                ));
            }
        }
    }
    if let Some(want) = e.all_free {
        match (want, cluster.all_free()) {
            (true, Err(busy)) => failed.push(format!("all_free: in use: {busy}")),
            (false, Ok(())) => {
                failed.push("all_free: expected something in use, all is free".into())
            }
            _ => {}
        }
    }
    if let Some(want) = e.suppressed
        && cluster.suppressed() != want
    {
        failed.push(format!(
            "suppressed: expected {want}, the framework is {}",
            if cluster.suppressed() {
                "suppressed"
            } else {
                "not suppressed"
            }
        ));
    }
    if let Some(want) = e.invalid {
        let found = record.invalid_count();
        if found != want {
            let reasons: Vec<String> = record
                .callbacks()
                .flat_map(|c| {
                    c.invalid
                        .iter()
                        .map(|i| i.reason.clone())
                        .chain(c.rejected.iter().cloned())
                })
                .collect();
            failed.push(format!(
                "invalid: expected {want} invalid command(s), found {found}{}",
                listed(&reasons)
            ));
        }
    }
    if let Some(want) = e.failures {
        let found: Vec<String> = record
            .failures()
            .map(|c| {
                let f = c.failure.as_ref().expect("a failure");
                format!("{} {}", c.event.name(), f.kind.name())
            })
            .collect();
        if found.len() != want {
            failed.push(format!(
                "failures: expected {want} failed callback(s), found {}{}",
                found.len(),
                listed(&found)
            ));
        }
    }
    if let Some(want) = &e.kv {
        for (key, value) in want {
            if let Some(problem) = kv_mismatch(cluster, key, value) {
                failed.push(problem);
            }
        }
    }
    check_reply(e, record, &mut failed);
    if let Some(text) = &e.log
        && !record.logs().any(|l| l.message.contains(text.as_str()))
    {
        failed.push(format!("log: no log line contains {text:?}"));
    }
    if let Some(want) = &e.timers {
        let mut found = cluster.timers();
        found.sort();
        let mut want = want.clone();
        want.sort();
        if found != want {
            failed.push(format!(
                "timers: expected [{}], found [{}]",
                want.join(", "),
                found.join(", ")
            ));
        }
    }
    if let Some(want) = e.held
        && cluster.held_offers() != want
    {
        failed.push(format!(
            "held: expected {want} held offer(s), found {}",
            cluster.held_offers()
        ));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

fn check_reply(e: &Expect, record: &Record, failed: &mut Vec<String>) {
    let last = record.last_reply();
    if let Some(want) = &e.reply {
        match last {
            Some(Ok(body)) if body == want.as_bytes() => {}
            Some(Ok(body)) => failed.push(format!(
                "reply: expected {want:?}, the last reply was {:?}",
                String::from_utf8_lossy(body)
            )),
            Some(Err(refusal)) => failed.push(format!(
                "reply: expected {want:?}, the last message was refused: {refusal}"
            )),
            None => failed.push("reply: no message has been answered".into()),
        }
    }
    if let Some(want) = &e.refused {
        match last {
            Some(Err(refusal)) if refusal.contains(want.as_str()) => {}
            Some(Err(refusal)) => failed.push(format!(
                "refused: expected a refusal containing {want:?}, got {refusal:?}"
            )),
            Some(Ok(_)) => failed.push(format!(
                "refused: expected a refusal containing {want:?}, the last message was accepted"
            )),
            None => failed.push("refused: no message has been answered".into()),
        }
    }
}

/// Why `key` does not hold `want` (a string: exactly; null: absent; other
/// JSON: the value parsed as JSON), or `None` when it does.
fn kv_mismatch(cluster: &Cluster, key: &str, want: &Value) -> Option<String> {
    let found = cluster.kv().get(key);
    let text = found.map(|v| String::from_utf8_lossy(v).into_owned());
    let ok = match (want, &text) {
        (Value::Null, None) => true,
        (Value::Null, Some(_)) | (_, None) => false,
        (Value::String(s), Some(t)) => s == t,
        (other, Some(t)) => serde_json::from_str::<Value>(t).ok().as_ref() == Some(other),
    };
    if ok {
        return None;
    }
    Some(match text {
        None => format!("kv: {key} is absent, expected {want}"),
        Some(t) if want.is_null() => format!("kv: {key} is {t:?}, expected it absent"),
        Some(t) => format!("kv: {key} is {t:?}, expected {want}"),
    })
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// ` (a, b, c)` for a non-empty list, at most ten shown.
fn listed(items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let shown: Vec<&str> = items.iter().take(10).map(String::as_str).collect();
    let more = if items.len() > 10 {
        format!(", and {} more", items.len() - 10)
    } else {
        String::new()
    };
    format!(" ({}{more})", shown.join(", "))
}

fn said(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    }
}
