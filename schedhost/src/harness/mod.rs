//! An offline harness for scheduler components: it runs a component against
//! a simulated cluster — no master, no network, no store, no real sleeping —
//! and records what the scheduler did. It backs `wasmesos framework test
//! sched.wasm --agents 3 --script s.json` and serves Rust tests alike.
//!
//! ```no_run
//! use wasmesos_schedhost::harness::{HarnessConfig, Script, run_script};
//! use wasmesos_schedhost::{SchedHost, SchedHostConfig};
//!
//! async fn check(component_bytes: &[u8]) {
//!     let host = SchedHost::new(SchedHostConfig::default()).unwrap();
//!     let component = host.compile(component_bytes).unwrap();
//!     let script = Script::parse(
//!         r#"[{"submit": {"count": 3}}, {"run": {}}, {"expect": {"jobs": {"*": "finished"}}}]"#,
//!     )
//!     .unwrap();
//!     let config = HarnessConfig::from_cluster(&script.cluster).unwrap();
//!     let report = run_script(&host, &component, config, &script).await;
//!     assert!(report.passed(), "{}", report.transcript(false));
//! }
//! ```
//!
//! [`Harness`] gives finer control: start it, carry out [`Step`]s one at a
//! time, and read the [`Cluster`] and the [`Record`] in between.
//!
//! # What is simulated
//!
//! The master's rules, mirrored from `master/src/core` and
//! `master/src/framework.rs`, over a clock only the script moves:
//!
//! - **Agents** (`agent-1` … by default, each `cpus:4,mem:8GiB,disk:10GiB`)
//!   offer their free resources — total less running tasks less
//!   outstanding offers — through the real allocator
//!   ([`wasmesos_allocator::allocate_with_total`]) for the one framework,
//!   agents rotated every round as the master does.
//! - **Offers** lapse when the callback that got them returns, unless used
//!   or held; a lapsed offer is filtered for 5 s (the master's default
//!   refuse). A decline filters for its own refuse time; `revive` clears
//!   every filter; `suppress` stops offers. A launch consumes its offers,
//!   and what its tasks did not take is filtered for 5 s (as Mesos does on
//!   an accept). Holds are capped at 60 s and 100 offers; an expired hold
//!   is rescinded (`offer-rescinded`).
//! - **Launches** are validated: the offers must be this callback's (or
//!   held), unused, of one agent; each task must ask for memory, fit what
//!   is left, use an unused task id, and not be an attempt of a job that
//!   ended. A refused task is recorded as invalid and answered with an
//!   ERROR status update. Accepted tasks hold their resources and go to
//!   RUNNING at once (the agent's STARTING is skipped) until a scripted or
//!   automatic status ends them. `kill` ends a task KILLED; `reconcile`
//!   answers with the tasks' states (LOST for unknown ids).
//! - **Jobs** created by `submit` steps (when the scheduler accepts them)
//!   follow their attempts (`JOB.N`) as in the master: QUEUED, RUNNING,
//!   then FINISHED, KILLED, or FAILED once the last attempt failed.
//! - **Timers** fire when the clock passes them, each at its own time, in
//!   order; at most 1000 are set at once.
//! - **Failures**: a callback that traps or breaks a limit is recorded, its
//!   instance thrown away, a fresh one started from the committed state and
//!   told `registered`, and the event delivered again — three attempts in
//!   all, then the event is abandoned (its offers lapse; a submission is
//!   not accepted). A failed start abandons whatever waits and is tried
//!   again. Six failures in a row (callbacks or starts, counted as the
//!   master counts them) and the framework FAILED: the run stops.
//! - **Durable state**: each completed callback's key-value writes are
//!   committed; a `restart` starts the scheduler again from them.
//!
//! The scheduler's `clock.now-ms` import answers simulated time
//! (`start_ms` plus the script's clock), so deadlines it keeps itself (the
//! jobs scheduler's retry backoff, say) pass with `advance` steps. Not
//! simulated: module uploads (any digest launches) and the master's restart
//! backoff.
//!
//! # Scripts
//!
//! A script is a JSON list of steps, or an object with the cluster it wants
//! and the steps (command-line flags override the object's fields):
//!
//! ```json
//! {
//!   "agents": 3,
//!   "resources": "cpus:2,mem:4GiB,disk:10GiB",
//!   "config": {"mode": "fast"},
//!   "steps": [
//!     {"submit": {"cpus": 0.5, "mem": "64MiB", "count": 4}},
//!     {"offer": "all"},
//!     {"expect": {"running": 4, "launched": ["job-1.1", "job-4.1"]}},
//!     {"status": {"task": "job-1.1", "state": "failed", "exit_code": 3}},
//!     {"finish_all": "finished"},
//!     {"advance": "5s"},
//!     {"agent_lost": "agent-2"},
//!     {"restart": true},
//!     {"run": {"rounds": 10}},
//!     {"expect": {"jobs": {"*": "finished"}, "all_free": true}}
//!   ]
//! }
//! ```
//!
//! `agents` is a count or a list of `{"id", "resources", "attributes"}`
//! (each optional). Each step is an object with one key:
//!
//! | step | what it does |
//! |---|---|
//! | `{"submit": {…}}` | a "submit" message, built as the master's `submission_json` builds it. Fields (all optional): `job_id` (default the next `job-N`), `name`, `module` (a digest), `args`, `env` (object), `cpus` (0.1), `mem` ("64MiB"), `disk`, or `resources` ("cpus:0.5,mem:64MiB") instead, `attempts` (alias `max_attempts`, 1), `priority`, `fuel`, `timeout` ("30s"), `log_limit` ("1MiB"), `count` (submit that many jobs). The job exists if the scheduler accepts it. |
//! | `{"message": {"kind": "user", "body": "…"}}` | a message; `json` instead of `body` sends a JSON value encoded; `sender` defaults to "admin" |
//! | `{"offer": "all"}` | one allocation round (or `["agent-1", …]`: over those agents only) |
//! | `{"run": {"rounds": 10, "every": "1s", "finish": "finished"}}` | up to `rounds` (100) rounds of: allocate, end every active task in `finish` state (or "none"), advance the clock by `every` — stopping early once idle (suppressed, no task running, no timer set) |
//! | `{"status": {"task": "job-1.1", "state": "failed", "exit_code": 3}}` | a status from the task's agent; optional `message`, `result` (text payload). Exit code defaults to 0 (finished) or 1 (failed) |
//! | `{"finish_all": "finished"}` | every active task ends in that terminal state |
//! | `{"advance": "5s"}` | moves the clock (`500ms`, `2m`, or seconds as a number), firing timers and expiring holds on the way |
//! | `{"agent_lost": "agent-2"}` | its held offers are rescinded, its tasks LOST, then `agent-lost` |
//! | `{"add_agent": {"id": "agent-9", "resources": "cpus:2,mem:4GiB"}}` | a new agent (fields optional) |
//! | `{"restart": true}` | a master restart: offers, filters, suppression and timers are dropped; the scheduler is instantiated from its committed state and gets `registered` (reregistered), then a reconciliation status for each active task (the master's implicit reconciliation); tasks stay |
//! | `{"expect": {…}}` | assertions, all checked, failing the run with what was found instead: `running` (active tasks), `launched` / `not_launched` (task ids), `tasks` ({id: state}), `jobs` ({id or "*": state}), `all_free`, `suppressed`, `invalid` (invalid commands so far), `failures` (failed callbacks so far), `kv` ({key: "exact text" / JSON value / null for absent}), `reply` (the last reply, exactly), `refused` (text of the last refusal), `log` (text some log line contains), `timers` (ids set), `held` (offers held) |
//!
//! A script that does not parse is reported with the step's number (from
//! 1), its text and what is wrong:
//!
//! ```text
//! step 3 {"sumbit":{}}: unknown variant `sumbit`, expected one of `submit`, `message`, ...
//! ```
//!
//! # The record and the verdict
//!
//! Every callback is recorded ([`CallbackRecord`]): the event, the commands
//! returned, commands the host rejected, launches refused with reasons,
//! what each launch started, offers that lapsed, the state writes, log
//! lines, fuel used, or how it failed. [`Report::transcript`] prints one
//! line per callback:
//!
//! ```text
//! [t=0.0s] registered -> suppress
//! [t=0.0s] submit(job-1) -> accepted; revive
//! [t=0.0s] offers(3) -> launch job-1.1 on agent-1 (cpus:0.5,mem:64MiB); decline 2 offers (5s); suppress
//! [t=0.0s] status(job-1.1 RUNNING) -> nothing
//! [t=0.0s] -- expect: ok
//! PASSED: 4 callbacks, 0 failed, 0 invalid commands, 1 tasks launched; tasks: 1 RUNNING; jobs: 1 RUNNING; t=0.0s
//! ```
//!
//! and [`Report::to_json`] gives all of it. A run passes when no step
//! failed (an expectation, a step that could not be carried out, a
//! scheduler that would not start) and the scheduler neither failed a
//! callback nor issued an invalid command — unless the script stated how
//! many it expects with `expect.failures` / `expect.invalid`.

mod apply;
mod cluster;
mod config;
mod driver;
mod error;
mod execute;
mod expect;
mod json;
mod record;
mod script;
mod step;
mod transcript;
mod values;

pub use cluster::{
    AgentSpec, Cluster, SimAgent, SimJob, SimOffer, SimTask, default_agent_resources,
};
pub use config::HarnessConfig;
pub use driver::{Harness, run_script};
pub use error::{HarnessError, ScriptError};
pub use json::{command as command_json, compact, event as event_json};
pub use record::{
    CallbackFailure, CallbackRecord, Entry, FailureKind, Invalid, LaunchOutcome, Note, Record,
    Report, Summary,
};
pub use script::{AgentEntry, Agents, ClusterSpec, Script};
pub use step::{
    Expect, Finish, MessageStep, OfferTarget, Run, StatusStep, Step, Submit, placeholder_module,
};
pub use values::{Dur, JobStateName, Res, Size, StateName, parse_duration};
