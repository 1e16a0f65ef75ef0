//! The readable transcript of a run: one line per callback —
//!
//! ```text
//! [t=5.0s] offers(3) -> launch job-1.1 on agent-1 (cpus:0.5,mem:64MiB); decline 2 offers (5s)
//! ```
//!
//! — a `--` line for what the harness noted between callbacks (rounds
//! without offers, restarts, expectations), and a verdict at the end. With
//! `verbose`, each callback is followed by its log lines, state writes and
//! fuel, and a failure by its whole message.

use std::fmt::Write as _;
use std::time::Duration;

use super::json::{compact, level};
use super::record::{CallbackRecord, Entry, Report};
use crate::event::{Command, Event};

impl Report {
    /// The transcript, ending with the verdict.
    pub fn transcript(&self, verbose: bool) -> String {
        let mut out = String::new();
        for entry in &self.record.entries {
            match entry {
                Entry::Callback(c) => {
                    out.push_str(&callback_line(c));
                    out.push('\n');
                    if verbose {
                        details(c, &mut out);
                    }
                }
                Entry::Note(n) => {
                    let _ = writeln!(out, "[t={}] -- {}", secs(n.t_ms), n.text);
                }
            }
        }
        out.push_str(&self.verdict());
        out.push('\n');
        out
    }

    /// One line: PASSED or FAILED (with why), then the counts.
    pub fn verdict(&self) -> String {
        let s = &self.summary;
        let counts = |m: &std::collections::BTreeMap<String, usize>| {
            if m.is_empty() {
                "none".to_string()
            } else {
                m.iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let tally = format!(
            "{} callbacks, {} failed, {} invalid commands, {} tasks launched; tasks: {}; jobs: {}; t={}",
            s.callbacks,
            s.failures,
            s.invalid,
            s.launched,
            counts(&s.tasks),
            counts(&s.jobs),
            secs(s.t_ms)
        );
        let problems = self.problems();
        if problems.is_empty() {
            format!("PASSED: {tally}")
        } else {
            format!("FAILED: {}\n({tally})", problems.join("; "))
        }
    }
}

/// `5.0s`, or `5.125s` when tenths do not say it exactly.
fn secs(ms: u64) -> String {
    if ms.is_multiple_of(100) {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{:.3}s", ms as f64 / 1000.0)
    }
}

/// `5s`, `1.5s`, `250ms`.
fn dur(d: &Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 && ms > 0 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        let s = format!("{:.3}", d.as_secs_f64());
        format!("{}s", s.trim_end_matches('0'))
    }
}

fn offers(n: usize) -> String {
    if n == 1 {
        "1 offer".to_string()
    } else {
        format!("{n} offers")
    }
}

/// Text cut to `max` characters, quoted.
fn quoted(text: &str, max: usize) -> String {
    let one_line = text.replace('\n', " ");
    if one_line.chars().count() <= max {
        format!("{one_line:?}")
    } else {
        let cut: String = one_line.chars().take(max).collect();
        format!("{:?}...", cut)
    }
}

fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if line.chars().count() <= max {
        line.to_string()
    } else {
        format!("{}...", line.chars().take(max).collect::<String>())
    }
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    const SHOWN: usize = 4;
    let mut names: Vec<String> = items.iter().take(SHOWN).map(|i| i.to_string()).collect();
    if items.len() > SHOWN {
        names.push(format!("... ({} in all)", items.len()));
    }
    names.join(", ")
}

pub(crate) fn event_text(e: &Event) -> String {
    match e {
        Event::Registered(r) if r.reregistered => "registered (again)".to_string(),
        Event::Registered(_) => "registered".to_string(),
        Event::Offers(o) => format!("offers({})", o.len()),
        Event::OfferRescinded(id) => format!("offer-rescinded({id})"),
        Event::StatusUpdate(s) => {
            let exit = s
                .exit_code
                .map(|c| format!(" exit {c}"))
                .unwrap_or_default();
            let what = if s.reconciliation {
                "reconciled"
            } else {
                "status"
            };
            format!("{what}({} {}{exit})", s.task_id, s.state.name())
        }
        Event::Message(m) if m.kind == "submit" => {
            let job = serde_json::from_slice::<serde_json::Value>(&m.body)
                .ok()
                .and_then(|v| v["job_id"].as_str().map(str::to_string))
                .unwrap_or_else(|| "?".to_string());
            format!("submit({job})")
        }
        Event::Message(m) => format!(
            "message({} {})",
            m.kind,
            quoted(&String::from_utf8_lossy(&m.body), 40)
        ),
        Event::AgentLost(a) => format!("agent-lost({a})"),
        Event::Timer(id) => format!("timer({id})"),
    }
}

pub(crate) fn callback_line(c: &CallbackRecord) -> String {
    let head = format!("[t={}] {}", secs(c.t_ms), event_text(&c.event));
    if let Some(f) = &c.failure {
        let next = if f.retried {
            "re-instantiating"
        } else {
            "giving up"
        };
        return format!(
            "{head} !! {}: {} (attempt {}; {next})",
            f.kind.name(),
            first_line(&f.message, 160),
            c.attempt
        );
    }
    let mut parts: Vec<String> = Vec::new();
    match &c.reply {
        Some(Ok(body)) if body.is_empty() => parts.push("accepted".into()),
        Some(Ok(body)) => parts.push(format!(
            "reply {}",
            quoted(&String::from_utf8_lossy(body), 60)
        )),
        Some(Err(refusal)) => parts.push(format!("refused: {}", quoted(refusal, 100))),
        None => {}
    }
    for (i, command) in c.commands.iter().enumerate() {
        parts.extend(command_text(c, i, command));
    }
    parts.extend(c.rejected.iter().map(|r| format!("REJECTED: {r}")));
    if !c.lapsed.is_empty() {
        parts.push(format!("{} lapsed", offers(c.lapsed.len())));
    }
    parts.extend(c.notes.iter().map(|n| format!("({n})")));
    let body = if parts.is_empty() {
        "nothing".to_string()
    } else {
        parts.join("; ")
    };
    format!("{head} -> {body}")
}

fn command_text(c: &CallbackRecord, index: usize, command: &Command) -> Vec<String> {
    let one = match command {
        Command::Launch { .. } => {
            let mut out = Vec::new();
            if let Some(l) = c.launches.iter().find(|l| l.command == index)
                && !l.tasks.is_empty()
            {
                out.push(format!(
                    "launch {} on {} ({})",
                    list(&l.tasks),
                    l.agent,
                    compact(&l.resources)
                ));
            }
            for inv in c.invalid.iter().filter(|i| i.command == index) {
                let task = inv.task.as_ref().map(|t| t.to_string()).unwrap_or_default();
                out.push(format!("INVALID launch {task}: {}", inv.reason));
            }
            return out;
        }
        Command::Decline { offer_ids, refuse } => {
            format!("decline {} ({})", offers(offer_ids.len()), dur(refuse))
        }
        Command::Kill(t) => format!("kill {t}"),
        Command::Reconcile(ids) if ids.is_empty() => "reconcile all".to_string(),
        Command::Reconcile(ids) => format!("reconcile {}", list(ids)),
        Command::Suppress => "suppress".to_string(),
        Command::Revive => "revive".to_string(),
        Command::Hold {
            offer_ids,
            duration,
        } => format!("hold {} ({})", offers(offer_ids.len()), dur(duration)),
        Command::SetTimer { id, after } => format!("set-timer {id} in {}", dur(after)),
        Command::CancelTimer(id) => format!("cancel-timer {id}"),
    };
    vec![one]
}

fn details(c: &CallbackRecord, out: &mut String) {
    if let Some(f) = &c.failure {
        for line in f.message.lines() {
            let _ = writeln!(out, "      {line}");
        }
        return;
    }
    for l in &c.logs {
        let _ = writeln!(out, "      log {}: {}", level(l.level), l.message);
    }
    if c.logs_dropped > 0 {
        let _ = writeln!(out, "      log: {} line(s) dropped", c.logs_dropped);
    }
    for (key, value) in &c.kv_writes {
        let _ = match value {
            Some(v) => writeln!(out, "      kv set {key} ({} bytes)", v.len()),
            None => writeln!(out, "      kv delete {key}"),
        };
    }
    let _ = writeln!(
        out,
        "      fuel {}, {:.2}ms",
        c.fuel_used,
        c.elapsed.as_secs_f64() * 1000.0
    );
}
