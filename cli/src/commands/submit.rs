//! `wasmesos submit`: upload a module (skipped when the master already has
//! it), submit it as a job, and with `--wait` stream its output and exit
//! with its exit code.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use wasmesos_api::proto::{
    self, JobEvent, JobSpec, JobState, Limits, LogStream, ModuleHeader, PutModuleRequest,
    StatModuleRequest, SubmitRequest, TaskSpec, WatchJobRequest, job_event, put_module_request,
};
use wasmesos_api::{Digest, Resources, parse_size};

use crate::client::Client;
use crate::client::{MasterArg, connect, failed};
use crate::format::parse_duration;

/// Module bytes per upload message.
const CHUNK: usize = 1 << 20;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The module to run: a wasm32-wasip1 module or wasm32-wasip2 component.
    pub module: PathBuf,
    /// Arguments passed to the task (after `--`).
    #[arg(last = true)]
    pub args: Vec<String>,
    /// Stream the task's output and exit with its exit code.
    #[arg(long)]
    pub wait: bool,
    /// Cpus to ask of an offer.
    #[arg(long, default_value = "0.1")]
    pub cpus: f64,
    /// Memory to ask of an offer; also the cap on the task's memory.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub mem: u64,
    /// Disk to ask of an offer.
    #[arg(long, default_value = "0", value_parser = parse_size)]
    pub disk: u64,
    /// An environment variable for the task, K=V (repeatable).
    #[arg(long = "env", value_parser = env_arg)]
    pub env: Vec<(String, String)>,
    /// A name for the job (default: the job id).
    #[arg(long)]
    pub name: Option<String>,
    /// The framework to submit to.
    #[arg(long, default_value = "jobs")]
    pub framework: String,
    /// Fuel limit (roughly, wasm instructions); default unmetered.
    #[arg(long)]
    pub fuel: Option<u64>,
    /// Wall-time limit, e.g. 30s or 5m.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Cap on each of stdout and stderr.
    #[arg(long, value_parser = parse_size)]
    pub log_limit: Option<u64>,
    /// Attempts before the job counts as failed.
    #[arg(long, default_value = "1")]
    pub attempts: u32,
    /// Higher runs first (jobs of equal priority run in submission order).
    #[arg(long, default_value = "0", allow_negative_numbers = true)]
    pub priority: i32,
    /// Submitting again with the same key returns the same job.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    #[command(flatten)]
    pub master: MasterArg,
}

fn env_arg(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("'{text}' is not K=V")),
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !(args.cpus.is_finite() && args.cpus > 0.0) {
        return Err(anyhow!(
            "--cpus must be a positive number, got {}",
            args.cpus
        ));
    }
    if args.mem == 0 {
        return Err(anyhow!(
            "--mem must be more than 0: it is the task's memory cap"
        ));
    }
    let bytes = std::fs::read(&args.module)
        .with_context(|| format!("cannot read {}", args.module.display()))?;
    let file_name = args
        .module
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut client = connect(&args.master).await?;
    let digest = upload(&mut client, &bytes, &file_name).await?;
    let spec = JobSpec {
        name: args.name.clone().unwrap_or_default(),
        task: Some(TaskSpec {
            module_digest: digest.to_string(),
            args: args.args.clone(),
            env: args.env.iter().cloned().collect(),
            resources: Some((&Resources::new(args.cpus, args.mem, args.disk)).into()),
            limits: Some(Limits {
                fuel: args.fuel.unwrap_or(0),
                timeout_ms: args.timeout.map(|t| t.as_millis() as u64).unwrap_or(0),
                log_bytes: args.log_limit.unwrap_or(0),
            }),
        }),
        max_attempts: args.attempts.max(1),
        priority: args.priority,
    };
    let response = client
        .submit(SubmitRequest {
            framework: args.framework.clone(),
            idempotency_key: args.idempotency_key.clone().unwrap_or_default(),
            spec: Some(spec),
        })
        .await
        .map_err(failed)?
        .into_inner();
    if !args.wait {
        println!("{}", response.job_id);
        return Ok(ExitCode::SUCCESS);
    }
    let job = wait(&mut client, &response.job_id, &mut |stream, data| {
        let _ = match stream {
            LogStream::Stderr => std::io::stderr().write_all(data),
            _ => std::io::stdout().write_all(data),
        };
    })
    .await?;
    let _ = std::io::stdout().flush();
    if job.state() != JobState::Finished {
        eprintln!("wasmesos: {}", describe_end(&job));
    }
    Ok(ExitCode::from(exit_code(&job)))
}

/// Uploads `bytes` unless the master has them already; returns the digest.
pub async fn upload(client: &mut Client, bytes: &[u8], name: &str) -> anyhow::Result<Digest> {
    let digest = Digest::of(bytes);
    let known = client
        .stat_module(StatModuleRequest {
            digest: digest.to_string(),
        })
        .await
        .map_err(failed)?
        .into_inner()
        .exists;
    if known {
        return Ok(digest);
    }
    let mut parts = vec![PutModuleRequest {
        part: Some(put_module_request::Part::Header(ModuleHeader {
            size: bytes.len() as u64,
            digest: digest.to_string(),
            name: name.to_string(),
        })),
    }];
    parts.extend(bytes.chunks(CHUNK).map(|c| PutModuleRequest {
        part: Some(put_module_request::Part::Chunk(c.to_vec())),
    }));
    client
        .put_module(tokio_stream::iter(parts))
        .await
        .map_err(failed)?;
    Ok(digest)
}

/// Follows a job to its end, passing its output to `sink`; returns the
/// finished job.
pub async fn wait(
    client: &mut Client,
    job_id: &str,
    sink: &mut dyn FnMut(LogStream, &[u8]),
) -> anyhow::Result<proto::Job> {
    let mut events = client
        .watch_job(WatchJobRequest {
            job_id: job_id.to_string(),
            logs: true,
        })
        .await
        .map_err(failed)?
        .into_inner();
    let mut launched = false;
    let waiting_note = tokio::time::sleep(Duration::from_secs(2));
    tokio::pin!(waiting_note);
    loop {
        let event = tokio::select! {
            e = events.message() => e.map_err(failed)?,
            _ = &mut waiting_note, if !launched => {
                eprintln!("wasmesos: {job_id} is queued, waiting for resources…");
                launched = true;
                continue;
            }
        };
        let Some(JobEvent { event: Some(event) }) = event else {
            return Err(anyhow!(
                "the master ended the watch of {job_id} before it finished; see `wasmesos tasks`"
            ));
        };
        match event {
            job_event::Event::TaskLaunched(_) => launched = true,
            job_event::Event::TaskUpdated(_) => {}
            job_event::Event::Output(chunk) => sink(chunk.stream(), &chunk.data),
            job_event::Event::JobFinished(job) => return Ok(job),
        }
    }
}

/// The process exit code for a finished job: the task's own code when it
/// exited, 137 when killed (as for SIGKILL), 1 otherwise.
pub fn exit_code(job: &proto::Job) -> u8 {
    match (job.state(), job.exit_code) {
        (JobState::Finished, _) => 0,
        (JobState::Killed, _) => 137,
        (_, Some(code)) if (1..=255).contains(&code) => code as u8,
        _ => 1,
    }
}

/// "job-3 FAILED: exited with code 3" and the like.
pub fn describe_end(job: &proto::Job) -> String {
    let state = wasmesos_api::job_state_name(job.state());
    let attempts = match job.attempts.len() {
        0 | 1 => String::new(),
        n => format!(" after {n} attempts"),
    };
    if job.message.is_empty() {
        format!("{} {state}{attempts}", job.job_id)
    } else {
        format!("{} {state}{attempts}: {}", job.job_id, job.message)
    }
}
