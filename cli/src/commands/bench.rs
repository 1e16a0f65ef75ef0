//! `wasmesos bench`: figures for a running cluster, measured through the
//! same API every client uses.
//!
//! - *latency*: one job at a time, submit → its output → its end, as
//!   `submit --wait` sees it (without the CLI's process start);
//! - *throughput*: many jobs submitted at once and queued, from the first
//!   submit until the last attempt finished, with each job's
//!   submit → finish time from the master's records.
//!
//! `wasmesos bench runtime` measures the task runtime in-process instead
//! (`bench_runtime`). It prints figures; nothing here asserts on speed.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use futures::StreamExt;
use wasmesos_api::proto::{
    JobEvent, JobSpec, JobState, Limits, ListTasksRequest, SubmitRequest, TaskSpec, TaskState,
    WatchJobRequest, job_event,
};
use wasmesos_api::{Resources, now_ms, parse_size};

use crate::client::Client;
use crate::client::{MasterArg, connect, failed};
use crate::commands::submit::upload;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub mode: Option<Mode>,
    /// Jobs one at a time, for latency.
    #[arg(long, default_value = "100")]
    pub latency: usize,
    /// Jobs queued at once, for throughput.
    #[arg(long, default_value = "1000")]
    pub jobs: usize,
    /// Submissions in flight at once while queueing.
    #[arg(long, default_value = "64")]
    pub concurrency: usize,
    /// Also deploy this many schedulers and measure their callbacks.
    #[arg(long, default_value = "0")]
    pub frameworks: usize,
    /// Jobs per framework per round with `--frameworks`.
    #[arg(long, default_value = "5")]
    pub frameworks_jobs: usize,
    /// The scheduler component `--frameworks` deploys (default: the bundled
    /// jobs scheduler); it must take "submit" messages like jobs does (e.g.
    /// the Python example).
    #[arg(long)]
    pub frameworks_scheduler: Option<PathBuf>,
    /// The module to run (default: the bundled hello task).
    #[arg(long)]
    pub module: Option<PathBuf>,
    /// Cpus per task.
    #[arg(long, default_value = "0.1")]
    pub cpus: f64,
    /// Memory per task.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub mem: u64,
    #[command(flatten)]
    pub master: MasterArg,
}

/// Benchmarks other than the running cluster's.
#[derive(clap::Subcommand, Debug)]
pub enum Mode {
    /// The task runtime in this process (no cluster), beside fork/exec,
    /// the wasmtime CLI and crun.
    Runtime(crate::commands::bench_runtime::Args),
    /// A master and agents started here as separate processes, driven
    /// through the API: throughput, latency, their CPU and memory; with
    /// --peers, the peers of ../shared/peers in the same run.
    E2e(crate::commands::bench_e2e::Args),
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.mode {
        Some(Mode::Runtime(a)) => return crate::commands::bench_runtime::run(a).await,
        Some(Mode::E2e(a)) => return crate::commands::bench_e2e::run(a).await,
        None => {}
    }
    let bytes = match &args.module {
        Some(p) => std::fs::read(p).map_err(|e| anyhow!("cannot read {}: {e}", p.display()))?,
        None => wasmesos_builtin::HELLO_TASK.to_vec(),
    };
    let mut client = connect(&args.master).await?;
    let digest = upload(&mut client, &bytes, "bench.wasm").await?;
    let spec = JobSpec {
        name: "bench".into(),
        task: Some(TaskSpec {
            module_digest: digest.to_string(),
            args: vec!["bench".into()],
            env: Default::default(),
            resources: Some((&Resources::new(args.cpus, args.mem, 0)).into()),
            limits: Some(Limits::default()),
        }),
        max_attempts: 1,
        priority: 0,
    };
    println!(
        "# wasmesos bench unix_ms={} master={} module={} cpus={} mem={}",
        now_ms(),
        args.master.masters()?,
        digest.short(),
        args.cpus,
        wasmesos_api::format_size(args.mem)
    );
    if args.latency > 0 {
        latency(&mut client, &spec, args.latency).await?;
    }
    if args.jobs > 0 {
        throughput(&client, &spec, args.jobs, args.concurrency.max(1)).await?;
    }
    if args.frameworks > 0 {
        let scheduler = match &args.frameworks_scheduler {
            Some(path) => std::fs::read(path)
                .with_context(|| format!("cannot read the scheduler {}", path.display()))?,
            None => wasmesos_builtin::JOBS_SCHEDULER.to_vec(),
        };
        crate::commands::bench_frameworks::run(
            &mut client,
            &spec,
            &scheduler,
            args.frameworks,
            args.frameworks_jobs,
        )
        .await?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn submit(client: &mut Client, spec: &JobSpec) -> anyhow::Result<String> {
    Ok(client
        .submit(SubmitRequest {
            framework: String::new(),
            idempotency_key: String::new(),
            spec: Some(spec.clone()),
        })
        .await
        .map_err(failed)?
        .into_inner()
        .job_id)
}

/// One job at a time: submit → first output → end.
async fn latency(client: &mut Client, spec: &JobSpec, n: usize) -> anyhow::Result<()> {
    let mut to_output = Vec::with_capacity(n);
    let mut to_end = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let job = submit(client, spec).await?;
        let first_output = follow_job(client, &job, true, start, |e| {
            matches!(e, job_event::Event::Output(_))
        })
        .await?;
        to_end.push(start.elapsed());
        to_output.push(first_output.unwrap_or_else(|| start.elapsed()));
    }
    let (o50, o99) = percentiles(&mut to_output);
    let (e50, e99) = percentiles(&mut to_end);
    println!(
        "bench=latency jobs={n} submit_to_output_p50_ms={:.2} submit_to_output_p99_ms={:.2} submit_to_end_p50_ms={:.2} submit_to_end_p99_ms={:.2}",
        ms(o50),
        ms(o99),
        ms(e50),
        ms(e99)
    );
    Ok(())
}

/// Watches `job` (with its output when `logs`) until it ends, and returns
/// how long after `start` the first event that `first` picks came; an error
/// when the job ends other than FINISHED.
pub async fn follow_job(
    client: &mut Client,
    job: &str,
    logs: bool,
    start: Instant,
    first: impl Fn(&job_event::Event) -> bool,
) -> anyhow::Result<Option<Duration>> {
    let mut events = client
        .watch_job(WatchJobRequest {
            job_id: job.to_string(),
            logs,
        })
        .await
        .map_err(failed)?
        .into_inner();
    let mut seen = None;
    loop {
        match events.message().await.map_err(failed)? {
            Some(JobEvent {
                event: Some(job_event::Event::JobFinished(j)),
            }) => {
                if j.state() != JobState::Finished {
                    return Err(anyhow!("{job} ended {:?}: {}", j.state(), j.message));
                }
                return Ok(seen);
            }
            Some(JobEvent { event: Some(e) }) if first(&e) => {
                seen.get_or_insert_with(|| start.elapsed());
            }
            Some(_) => {}
            None => return Err(anyhow!("the watch of {job} ended early")),
        }
    }
}

/// What a throughput run measured.
pub struct Throughput {
    pub jobs: usize,
    pub failed: usize,
    pub submit: Duration,
    /// First submit to the last attempt's end, from the master's records.
    pub wall: Duration,
    pub tasks_per_s: f64,
    pub launch_to_end_p50: Duration,
    pub launch_to_end_p99: Duration,
}

/// Many jobs queued at once.
async fn throughput(
    client: &Client,
    spec: &JobSpec,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let t = measure_throughput(client, spec, n, concurrency).await?;
    println!(
        "bench=throughput jobs={n} failed={} submit_s={:.3} wall_s={:.3} tasks_per_s={:.1} launch_to_end_p50_ms={:.1} launch_to_end_p99_ms={:.1}",
        t.failed,
        t.submit.as_secs_f64(),
        t.wall.as_secs_f64(),
        t.tasks_per_s,
        ms(t.launch_to_end_p50),
        ms(t.launch_to_end_p99),
    );
    Ok(())
}

/// Submits `n` jobs, `concurrency` at a time, and waits for all to end.
pub async fn measure_throughput(
    client: &Client,
    spec: &JobSpec,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Throughput> {
    let start = Instant::now();
    let started_ms = now_ms();
    let mut ids = HashSet::with_capacity(n);
    let mut pending = futures::stream::FuturesUnordered::new();
    let mut submitted = 0;
    while ids.len() < n {
        while submitted < n && pending.len() < concurrency {
            let mut c = client.clone();
            let s = spec.clone();
            pending.push(async move { submit(&mut c, &s).await });
            submitted += 1;
        }
        match pending.next().await {
            Some(r) => {
                ids.insert(r?);
            }
            None => break,
        }
    }
    let submit_time = start.elapsed();

    // Wait until every attempt has ended, reading the records.
    let mut client = client.clone();
    let deadline = Instant::now() + Duration::from_secs(600);
    let finished = loop {
        let tasks = all_tasks(&mut client).await?;
        let ours: Vec<_> = tasks
            .into_iter()
            .filter(|t| ids.contains(&t.job_id))
            .collect();
        let ended = ours.iter().filter(|t| t.state().is_terminal()).count();
        if ended >= n {
            break ours;
        }
        if Instant::now() > deadline {
            return Err(anyhow!("only {ended} of {n} jobs ended within 10 minutes"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let failed_count = finished
        .iter()
        .filter(|t| t.state() != TaskState::Finished)
        .count();
    let last_end = finished
        .iter()
        .map(|t| t.finished_ms)
        .max()
        .unwrap_or(started_ms);
    let wall_ms = (last_end - started_ms).max(1);
    let mut latencies: Vec<Duration> = finished
        .iter()
        .map(|t| Duration::from_millis((t.finished_ms - t.created_ms).max(0) as u64))
        .collect();
    let (p50, p99) = percentiles(&mut latencies);
    Ok(Throughput {
        jobs: n,
        failed: failed_count,
        submit: submit_time,
        wall: Duration::from_millis(wall_ms as u64),
        tasks_per_s: n as f64 * 1000.0 / wall_ms as f64,
        launch_to_end_p50: p50,
        launch_to_end_p99: p99,
    })
}

async fn all_tasks(client: &mut Client) -> anyhow::Result<Vec<wasmesos_api::proto::Task>> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_tasks(ListTasksRequest {
                limit: 5000,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .map_err(failed)?
            .into_inner();
        out.extend(page.tasks);
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        token = page.next_page_token;
    }
}

fn percentiles(v: &mut [Duration]) -> (Duration, Duration) {
    if v.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    v.sort();
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    (at(0.50), at(0.99))
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
