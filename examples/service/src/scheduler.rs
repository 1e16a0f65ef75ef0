//! The service scheduler's callbacks, over any [`Host`] (natively tested
//! against `MemoryHost`). Every callback that changes something ends in
//! `Service::converge`: plan from the durable state ([`plan`]), kill what
//! must go, and launch on offers (or ask for them) what is missing.

use serde::Serialize;
use wasmesos_sdk::{
    Command, Constraints, Host, Limits, Message, Offer, Outcome, Packer, Registration, Reply,
    Resources, Scheduler, TaskInfo, TaskState, TaskStatus, cmd,
};

use crate::config::Config;
use crate::plan::{Plan, plan};
use crate::spec::{Deploy, Request, Spec};
use crate::state::{self, Backoff, Instance};

/// Refuse filter when nothing needs launching (offers are suppressed too).
const IDLE_REFUSE_SECONDS: f64 = 5.0;
/// Refuse filter when instances are missing but did not fit: come back soon.
const BUSY_REFUSE_SECONDS: f64 = 1.0;
/// The timer that ends a restart backoff.
pub const RESTART_TIMER: &str = "restart";
/// Task ids per reconcile command.
const CHUNK: usize = 1000;

/// The service scheduler. Memory holds the config and the framework's name.
#[derive(Debug, Default)]
pub struct Service {
    pub config: Config,
    pub name: String,
}

impl Scheduler for Service {
    /// Reads the config, seeds the spec from it on first start, asks what
    /// became of every instance, repeats kills that may have been lost,
    /// and converges.
    fn registered(&mut self, h: &mut impl Host, info: &Registration) -> Outcome {
        self.config = Config::from_registration(info)?;
        self.name = info.name.clone();
        if state::spec(h)?.is_none()
            && let Some(deploy) = Deploy::from_config(info)?
        {
            let spec = deploy.apply(None)?;
            h.info(&format!("deploying {} from the config", describe(&spec)));
            state::set_spec(h, &spec)?;
        }
        let instances = state::instances(h)?;
        let mut out = Vec::new();
        let ids: Vec<String> = instances.iter().map(|(id, _)| id.clone()).collect();
        for chunk in ids.chunks(CHUNK) {
            out.push(cmd::reconcile(chunk.to_vec()));
        }
        out.extend(
            instances
                .iter()
                .filter(|(_, i)| i.killing)
                .map(|(id, _)| cmd::kill(id)),
        );
        out.extend(self.converge(h, None)?);
        Ok(out)
    }

    fn offers(&mut self, h: &mut impl Host, offers: &[Offer]) -> Outcome {
        for o in offers {
            state::add_agent(h, &o.agent_id)?;
        }
        self.converge(h, Some(offers))
    }

    fn status_update(&mut self, h: &mut impl Host, st: &TaskStatus) -> Outcome {
        let Some(mut inst) = state::instance(h, &st.task_id)? else {
            // Not ours (any more). A live task we do not track would run
            // forever unaccounted: stop it.
            if !st.state.is_terminal() && st.task_id.starts_with("svc-") {
                h.warn(&format!("killing untracked task {}", st.task_id));
                return Ok(vec![cmd::kill(&st.task_id)]);
            }
            return Ok(Vec::new());
        };
        let now = h.now_ms();
        match st.state {
            TaskState::Staging | TaskState::Starting => return Ok(Vec::new()),
            TaskState::Running if inst.running => return Ok(Vec::new()),
            TaskState::Running => {
                inst.running = true;
                inst.since_ms = now;
                state::set_instance(h, &st.task_id, &inst)?;
                h.info(&format!("{} running on {}", st.task_id, inst.agent_id));
            }
            _ => {
                state::remove_instance(h, &st.task_id);
                if !inst.killing {
                    let delay = self.note_failure(h, &inst, now)?;
                    h.warn(&format!(
                        "{} {}: {}; replacing it in {delay} ms",
                        st.task_id,
                        st.state.as_str(),
                        st.message
                    ));
                }
            }
        }
        self.converge(h, None)
    }

    /// `deploy`, `upgrade` and `scale` change the spec and reply with the
    /// state; `status` only replies.
    fn message(&mut self, h: &mut impl Host, msg: &Message) -> Outcome<Result<Reply, String>> {
        if msg.kind != "user" {
            return Ok(Err(format!(
                "the service scheduler takes \"user\" messages, not {:?}",
                msg.kind
            )));
        }
        let request = match Request::parse(&msg.body) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let mut commands = Vec::new();
        if let Some(deploy) = request.into_deploy() {
            let current = state::spec(h)?;
            let spec = match deploy.apply(current.as_ref()) {
                Ok(s) => s,
                Err(e) => return Ok(Err(e)),
            };
            if current.as_ref() != Some(&spec) {
                h.info(&format!("{} (by {})", describe(&spec), msg.sender));
                state::set_spec(h, &spec)?;
                // A new spec is a fresh start: no failure history holds it back.
                state::set_backoff(h, &Backoff::default())?;
                commands = self.converge(h, None)?;
            }
        }
        Ok(Ok(cmd::reply_json(&summary(h)?, commands)))
    }

    /// Each of the agent's tasks also gets a `lost` update; forget the
    /// agent so the spread no longer counts it.
    fn agent_lost(&mut self, h: &mut impl Host, agent_id: &str) -> Outcome {
        state::remove_agent(h, agent_id);
        Ok(Vec::new())
    }

    fn timer(&mut self, h: &mut impl Host, id: &str) -> Outcome {
        if id != RESTART_TIMER {
            return Ok(Vec::new());
        }
        self.converge(h, None)
    }
}

impl Service {
    /// Counts a failure and pushes the next restart back; returns the delay.
    /// An instance that ran for a while before failing starts the count
    /// afresh: it was not crash-looping.
    fn note_failure(&self, h: &mut impl Host, inst: &Instance, now: u64) -> Outcome<u64> {
        let mut b = state::backoff(h)?;
        let stable = inst.running && now.saturating_sub(inst.since_ms) >= self.config.stable_ms;
        b.failures = if stable { 1 } else { b.failures + 1 };
        let delay = self.config.restart_delay_ms(b.failures);
        b.until_ms = now.saturating_add(delay);
        state::set_backoff(h, &b)?;
        Ok(delay)
    }

    /// Kills what the plan retires, then launches what is missing on
    /// `offers` (when called from `offers`) or asks for offers (otherwise),
    /// unless a restart backoff holds launches back.
    fn converge(&self, h: &mut impl Host, offers: Option<&[Offer]>) -> Outcome {
        let decline_all = |refuse: f64| -> Vec<Command> {
            Packer::new(offers.unwrap_or_default())
                .finish()
                .commands(refuse)
        };
        let Some(spec) = state::spec(h)? else {
            let mut out = decline_all(IDLE_REFUSE_SECONDS);
            out.push(cmd::suppress());
            return Ok(out);
        };
        let instances = state::instances(h)?;
        let Plan { launch, kill, .. } = plan(spec.instances as usize, spec.generation, &instances);
        let mut out = Vec::new();
        for id in &kill {
            if let Some((_, mut inst)) = instances.iter().find(|(i, _)| i == id).cloned() {
                inst.killing = true;
                state::set_instance(h, id, &inst)?;
                out.push(cmd::kill(id));
            }
        }
        let backoff = state::backoff(h)?;
        let now = h.now_ms();
        if launch > 0 && backoff.until_ms > now {
            out.extend(decline_all(IDLE_REFUSE_SECONDS));
            out.push(cmd::suppress());
            out.push(cmd::set_timer(RESTART_TIMER, backoff.until_ms - now));
            return Ok(out);
        }
        let Some(offers) = offers else {
            out.push(if launch > 0 {
                cmd::revive()
            } else {
                cmd::suppress()
            });
            return Ok(out);
        };
        let launched = self.launch(h, &spec, &instances, offers, launch, &mut out)?;
        if launched == launch {
            out.push(cmd::suppress());
        }
        Ok(out)
    }

    /// Places up to `want` new instances on `offers`, spread across agents
    /// (at most ceil(N / agents) per agent, fewest first), records them,
    /// and appends the launches and the decline of what is unused.
    fn launch(
        &self,
        h: &mut impl Host,
        spec: &Spec,
        instances: &[(String, Instance)],
        offers: &[Offer],
        want: usize,
        out: &mut Vec<Command>,
    ) -> Outcome<usize> {
        const GROUP: &str = "current";
        let mut packer = Packer::new(offers);
        for (_, i) in instances {
            if !i.killing && i.generation == spec.generation {
                packer.existing(GROUP, &i.agent_id);
            }
        }
        let agents = state::agent_count(h).max(1);
        let cap = (spec.instances as usize).div_ceil(agents).max(1);
        let spread = Constraints::group(GROUP).spread().max_per_agent(cap);
        let first = state::next(h)?;
        let mut launched = 0;
        while launched < want {
            let n = first + launched as u64;
            let task = self.task_info(spec, n);
            let id = task.task_id.clone();
            let Ok(agent_id) = packer.place(task, &spread) else {
                break;
            };
            let inst = Instance {
                generation: spec.generation,
                n,
                agent_id,
                running: false,
                since_ms: h.now_ms(),
                killing: false,
            };
            state::set_instance(h, &id, &inst)?;
            launched += 1;
        }
        if launched > 0 {
            state::set_next(h, first + launched as u64)?;
        }
        let refuse = if launched < want {
            BUSY_REFUSE_SECONDS
        } else {
            IDLE_REFUSE_SECONDS
        };
        out.extend(packer.finish().commands(refuse));
        Ok(launched)
    }

    fn task_info(&self, spec: &Spec, n: u64) -> TaskInfo {
        TaskInfo {
            task_id: state::task_id(spec.generation, n),
            name: if self.name.is_empty() {
                "service".to_string()
            } else {
                self.name.clone()
            },
            module_digest: spec.module.clone(),
            args: spec.args.clone(),
            env: Vec::new(),
            resources: Resources::new(spec.cpus_milli, spec.mem_bytes, 0),
            limits: Limits {
                fuel: 0,
                timeout_ms: spec.timeout_ms,
                log_bytes: 0,
            },
        }
    }
}

fn describe(s: &Spec) -> String {
    format!(
        "generation {}: {} x {} ({} millicpus, {} bytes, args {:?})",
        s.generation, s.instances, s.module, s.cpus_milli, s.mem_bytes, s.args
    )
}

/// The reply to every message: what should run and what does.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub generation: u64,
    pub module: String,
    /// Instances wanted.
    pub instances: u32,
    /// Current-generation instances reported RUNNING.
    pub running: usize,
    /// Current-generation instances launched and not yet RUNNING.
    pub starting: usize,
    /// Earlier-generation instances still counted (a rolling upgrade).
    pub old: usize,
    /// Instances told to stop and not yet gone.
    pub killing: usize,
    /// Milliseconds until restarts may launch again (0: not backing off).
    pub backoff_ms: u64,
    pub tasks: Vec<TaskView>,
}

#[derive(Debug, Serialize)]
pub struct TaskView {
    pub task_id: String,
    pub generation: u64,
    pub agent_id: String,
    /// "starting", "running" or "killing".
    pub state: &'static str,
}

pub fn summary(h: &impl Host) -> Outcome<Summary> {
    let spec = state::spec(h)?;
    let instances = state::instances(h)?;
    let generation = spec.as_ref().map_or(0, |s| s.generation);
    let live = |i: &Instance| !i.killing;
    let current = |i: &Instance| live(i) && i.generation >= generation;
    let count = |f: &dyn Fn(&Instance) -> bool| instances.iter().filter(|(_, i)| f(i)).count();
    let backoff = state::backoff(h)?;
    Ok(Summary {
        generation,
        module: spec.as_ref().map(|s| s.module.clone()).unwrap_or_default(),
        instances: spec.as_ref().map_or(0, |s| s.instances),
        running: count(&|i| current(i) && i.running),
        starting: count(&|i| current(i) && !i.running),
        old: count(&|i| live(i) && i.generation < generation),
        killing: count(&|i| i.killing),
        backoff_ms: backoff.until_ms.saturating_sub(h.now_ms()),
        tasks: instances
            .into_iter()
            .map(|(task_id, i)| TaskView {
                task_id,
                generation: i.generation,
                agent_id: i.agent_id,
                state: match (i.killing, i.running) {
                    (true, _) => "killing",
                    (false, true) => "running",
                    (false, false) => "starting",
                },
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests;
