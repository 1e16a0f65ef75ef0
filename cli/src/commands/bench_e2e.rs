//! `wasmesos bench e2e`: the launch path end to end, on processes started
//! here — one `wasmesos master` (embedded store, durable commits) and
//! `--agents K` `wasmesos agent`s on loopback — driven through the public
//! API, not a CLI process per task.
//!
//! Reports, in one run:
//! - latency: jobs one at a time, submit → RUNNING and submit → FINISHED
//!   as a client watching the job sees them (p50, p99, p99.9);
//! - throughput: N trivial jobs queued at once, first submit → last end;
//! - the master's and agents' CPU seconds over the run (from /proc) and
//!   their peak resident memory, with the master's CPU per task and per
//!   agent heartbeat, to project the cost of many agents;
//! - with `--hostile`, latency again while another tenant does its worst
//!   (`bench_hostile`), and the ratio to the quiet figures;
//! - with `--peers`, the peers of `../shared/peers` that run here, in the
//!   same run, and the ratios against them (never compare across days).
//!
//! It prints figures (`--json`: one JSON object); it asserts nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use wasmesos_api::proto::{JobSpec, Limits, ListAgentsRequest, TaskSpec, TaskState, job_event};
use wasmesos_api::{Resources, parse_size};

use crate::client::{connect_as, failed};
use crate::commands::bench::{follow_job, measure_throughput, ms, submit};
use crate::commands::bench_hostile;
use crate::commands::submit::upload;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Jobs queued at once for throughput.
    #[arg(long, default_value = "2000")]
    pub tasks: usize,
    /// Jobs one at a time for latency.
    #[arg(long, default_value = "300")]
    pub latency: usize,
    /// Agent processes.
    #[arg(long, default_value = "1")]
    pub agents: usize,
    /// Resources each agent offers.
    #[arg(long, default_value = "cpus:2,mem:4GiB,disk:1GiB")]
    pub agent_resources: String,
    /// Cpus per task (small, so that many run at once).
    #[arg(long, default_value = "0.01")]
    pub cpus: f64,
    /// Memory per task.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    pub mem: u64,
    /// Submissions in flight at once while queueing.
    #[arg(long, default_value = "64")]
    pub concurrency: usize,
    /// Also run the peers in this directory (`run-all.sh`) and print ratios.
    #[arg(long, num_args = 0..=1, default_missing_value = "../shared/peers")]
    pub peers: Option<PathBuf>,
    /// Peers to run with --peers (those that install quickly by default).
    #[arg(long, default_value = "floor,wasmtime-cli,crun")]
    pub peer_list: String,
    /// Seconds of idleness at the end, to measure what heartbeats cost the
    /// master (agents heartbeat every 2 s).
    #[arg(long, default_value = "6")]
    pub idle_s: u64,
    /// Measure latency a second time while a hostile tenant runs a
    /// spinning scheduler, uploads compile bombs and fills its share with
    /// spinning tasks (`bench_hostile`), and report the ratio.
    #[arg(long)]
    pub hostile: bool,
    /// The hostile tenant's running-task limit, as an operator hosting
    /// strangers would set one (0: none, so it may take every core the
    /// others leave idle for as long as its tasks run).
    #[arg(long, default_value = "2")]
    pub hostile_max_tasks: u32,
    /// One JSON object instead of key=value lines.
    #[arg(long)]
    pub json: bool,
}

/// A child process killed when dropped.
struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / clock_ticks()
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux in practice).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Peak resident memory (VmHWM) of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn spawn(exe: &Path, args: &[&str], log: &Path) -> anyhow::Result<Proc> {
    let log = std::fs::File::create(log)?;
    let child = Command::new(exe)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    Ok(Proc { child })
}

async fn wait_for_file(path: &Path, proc: &mut Proc, log: &Path) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && !s.trim().is_empty()
        {
            return Ok(s.trim().to_string());
        }
        if let Ok(Some(status)) = proc.child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            bail!("a process exited ({status}) before listening:\n{log}");
        }
        if Instant::now() > deadline {
            bail!("{} did not appear within 60 s", path.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn quantile(v: &[Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.agents == 0 {
        bail!("--agents must be at least 1");
    }
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let work = tempfile::tempdir()?;
    let w = work.path();
    let master_log = w.join("master.log");
    let mut master = spawn(
        &exe,
        &[
            "master",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &w.join("master").display().to_string(),
            "--addr-file",
            &w.join("master.addr").display().to_string(),
        ],
        &master_log,
    )?;
    let addr = wait_for_file(&w.join("master.addr"), &mut master, &master_log).await?;
    let url = format!("http://{addr}");
    let mut agents = Vec::new();
    for i in 0..args.agents {
        let log = w.join(format!("agent-{i}.log"));
        let addr_file = w.join(format!("agent-{i}.addr"));
        let mut agent = spawn(
            &exe,
            &[
                "agent",
                "--master",
                &url,
                "--listen",
                "127.0.0.1:0",
                "--resources",
                &args.agent_resources,
                "--work-dir",
                &w.join(format!("agent-{i}")).display().to_string(),
                "--addr-file",
                &addr_file.display().to_string(),
                "--token-file",
                &w.join("master").join("agent.token").display().to_string(),
            ],
            &log,
        )?;
        wait_for_file(&addr_file, &mut agent, &log).await?;
        agents.push(agent);
    }
    let token = std::fs::read_to_string(w.join("master").join("admin.token"))?;
    let mut client = connect_as(&url, Some(&token), None).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = client
            .list_agents(ListAgentsRequest {})
            .await
            .map_err(failed)?
            .into_inner()
            .agents;
        let active = listed
            .iter()
            .filter(|a| a.state() == wasmesos_api::proto::AgentState::Active)
            .count();
        if active >= args.agents {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "only {active} of {} agents registered within 60 s",
                args.agents
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let digest = upload(&mut client, wasmesos_builtin::HELLO_TASK, "hello.wasm").await?;
    let spec = JobSpec {
        name: "e2e".into(),
        task: Some(TaskSpec {
            module_digest: digest.to_string(),
            args: vec!["e2e".into()],
            env: Default::default(),
            resources: Some((&Resources::new(args.cpus, args.mem, 0)).into()),
            limits: Some(Limits::default()),
        }),
        max_attempts: 1,
        priority: 0,
    };
    // Warm up (module fetched and compiled on every agent) before measuring.
    for _ in 0..(2 * args.agents) {
        submit(&mut client, &spec).await?;
    }
    measure_throughput(&client, &spec, 20 * args.agents, 16).await?;

    let pids: Vec<u32> = agents.iter().map(|a| a.child.id()).collect();
    let master_pid = master.child.id();
    let cpu_before = (
        cpu_seconds(master_pid),
        pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>(),
    );

    // Latency: one job at a time, as a watching client sees it.
    let (to_running, to_finished) = measure_latency(&mut client, &spec, args.latency).await?;

    let throughput = measure_throughput(&client, &spec, args.tasks, args.concurrency).await?;
    let master_cpu = cpu_seconds(master_pid) - cpu_before.0;
    let agents_cpu = pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>() - cpu_before.1;
    let master_rss = peak_rss(master_pid);
    let agent_rss = pids.iter().map(|p| peak_rss(*p)).max().unwrap_or(0);
    let tasks_run = args.latency + args.tasks;
    // Idle: only heartbeats (every 2 s, the master's default) and timers.
    let idle_before = cpu_seconds(master_pid);
    tokio::time::sleep(Duration::from_secs(args.idle_s)).await;
    let idle_cpu = cpu_seconds(master_pid) - idle_before;
    let heartbeats = (args.idle_s as f64 / 2.0) * args.agents as f64;
    let per_heartbeat_ms = idle_cpu * 1000.0 / heartbeats.max(1.0);

    // Latency again while another tenant does its worst: last, so its
    // leftover tasks touch none of the figures above.
    let hostile = match args.hostile {
        false => None,
        true => {
            let h =
                bench_hostile::start(&mut client, &url, args.mem, args.hostile_max_tasks).await?;
            // Let it fill its share and get its bombs compiling.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let latencies = measure_latency(&mut client, &spec, args.latency).await?;
            let counts = format!(
                "hostile_max_tasks={} {}",
                args.hostile_max_tasks,
                h.counts.line()
            );
            drop(h);
            Some((latencies, counts))
        }
    };

    let peers = match &args.peers {
        Some(dir) => run_peers(dir, &args.peer_list)?,
        None => Vec::new(),
    };

    let q = |v: &[Duration], p| ms(quantile(v, p));
    if args.json {
        let out = json!({
            "agents": args.agents,
            "latency": {
                "jobs": args.latency,
                "submit_to_running_ms": {"p50": q(&to_running, 0.5), "p99": q(&to_running, 0.99), "p999": q(&to_running, 0.999)},
                "submit_to_finished_ms": {"p50": q(&to_finished, 0.5), "p99": q(&to_finished, 0.99), "p999": q(&to_finished, 0.999)},
            },
            "latency_hostile": hostile.as_ref().map(|((running, finished), counts)| json!({
                "submit_to_running_ms": {"p50": q(running, 0.5), "p99": q(running, 0.99)},
                "submit_to_finished_ms": {"p50": q(finished, 0.5), "p99": q(finished, 0.99)},
                "hostile": counts,
            })),
            "throughput": {
                "tasks": throughput.jobs,
                "failed": throughput.failed,
                "wall_s": throughput.wall.as_secs_f64(),
                "tasks_per_s": throughput.tasks_per_s,
            },
            "master": {"cpu_s": master_cpu, "peak_rss_bytes": master_rss,
                       "cpu_ms_per_task": master_cpu * 1000.0 / tasks_run as f64,
                       "idle_cpu_ms_per_heartbeat": per_heartbeat_ms},
            "agents_total": {"cpu_s": agents_cpu, "peak_rss_bytes_max": agent_rss},
            "peers": peers.iter().map(|(line, tps)| json!({"line": line, "tasks_per_s": tps})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "# wasmesos bench e2e agents={} task_cpus={} task_mem={} nproc={}",
        args.agents,
        args.cpus,
        wasmesos_api::format_size(args.mem),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "bench=e2e-latency jobs={} submit_to_running_p50_ms={:.2} p99_ms={:.2} p999_ms={:.2} submit_to_finished_p50_ms={:.2} p99_ms={:.2} p999_ms={:.2}",
        args.latency,
        q(&to_running, 0.5),
        q(&to_running, 0.99),
        q(&to_running, 0.999),
        q(&to_finished, 0.5),
        q(&to_finished, 0.99),
        q(&to_finished, 0.999),
    );
    if let Some(((running, finished), counts)) = &hostile {
        println!(
            "bench=e2e-latency-hostile jobs={} submit_to_running_p50_ms={:.2} p99_ms={:.2} submit_to_finished_p50_ms={:.2} p99_ms={:.2} finished_p50_ratio={:.2} finished_p99_ratio={:.2} {counts}",
            args.latency,
            q(running, 0.5),
            q(running, 0.99),
            q(finished, 0.5),
            q(finished, 0.99),
            q(finished, 0.5) / q(&to_finished, 0.5),
            q(finished, 0.99) / q(&to_finished, 0.99),
        );
    }
    println!(
        "bench=e2e-throughput tasks={} failed={} wall_s={:.3} tasks_per_s={:.1}",
        throughput.jobs,
        throughput.failed,
        throughput.wall.as_secs_f64(),
        throughput.tasks_per_s
    );
    println!(
        "bench=e2e-cost master_cpu_s={master_cpu:.2} master_cpu_ms_per_task={:.3} master_idle_cpu_ms_per_heartbeat={per_heartbeat_ms:.3} master_peak_rss_mib={:.1} agents_cpu_s={agents_cpu:.2} agent_peak_rss_mib={:.1}",
        master_cpu * 1000.0 / tasks_run as f64,
        master_rss as f64 / (1 << 20) as f64,
        agent_rss as f64 / (1 << 20) as f64,
    );
    if !peers.is_empty() {
        println!("# peers, same run (tasks/s; ratio = wasmesos ÷ peer):");
        for (line, tps) in &peers {
            match tps {
                Some(t) => println!("{line} ratio={:.2}", throughput.tasks_per_s / t),
                None => println!("{line}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Jobs one at a time: submit → RUNNING and submit → FINISHED, each
/// sorted.
async fn measure_latency(
    client: &mut crate::client::Client,
    spec: &JobSpec,
    n: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let mut to_running = Vec::with_capacity(n);
    let mut to_finished = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let job = submit(client, spec).await?;
        let running = follow_job(client, &job, false, start, |e| {
            matches!(e, job_event::Event::TaskUpdated(t)
                if t.state() == TaskState::Running || t.state().is_terminal())
        })
        .await?;
        let end = start.elapsed();
        to_finished.push(end);
        to_running.push(running.unwrap_or(end));
    }
    to_running.sort();
    to_finished.sort();
    Ok((to_running, to_finished))
}

/// Runs the peers' `run-all.sh` for `list` and returns each result line
/// with its tasks/s (when it has one).
fn run_peers(dir: &Path, list: &str) -> anyhow::Result<Vec<(String, Option<f64>)>> {
    let script = dir.join("run-all.sh");
    if !script.exists() {
        bail!(
            "no peers at {} (expected run-all.sh): pass --peers DIR",
            dir.display()
        );
    }
    let results = tempfile::NamedTempFile::new()?;
    let names: Vec<&str> = list.split(',').filter(|p| !p.is_empty()).collect();
    let output = Command::new("bash")
        .arg(&script)
        .args(&names)
        .env("RESULTS", results.path())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run the peers")?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .lines()
        .filter(|l| l.starts_with("peer="))
        .map(|l| {
            let tps = l
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("tasks_per_s="))
                .and_then(|v| v.parse().ok());
            (l.to_string(), tps)
        })
        .collect())
}
