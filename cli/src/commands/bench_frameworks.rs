//! `wasmesos bench --frameworks N`: many schedulers in one master.
//!
//! Deploys N copies of the jobs scheduler (or `--frameworks-scheduler`)
//! and reports: the cold deploy time (a component the master has not
//! compiled yet: the greedy neighbour, and the first copy of the measured
//! scheduler unless an earlier run left it in the master's compile cache)
//! and the warm one, the
//! master's memory per idle framework, and — running jobs through half of
//! them so offers and status updates flow — their callback latency as the
//! master measures it and the round's wall time; then the same through the
//! other half while a greedy neighbour burns nearly its whole fuel budget in
//! every callback it can get. Everything it deployed is removed at the end.

use std::time::{Duration, Instant};

use anyhow::anyhow;
use wasmesos_api::proto::{
    DeployFrameworkRequest, GetFrameworkRequest, GetStatusRequest, JobSpec, ListTasksRequest,
    RemoveFrameworkRequest, SendMessageRequest, SubmitRequest, TaskState,
};

use crate::client::Client;
use crate::client::failed;
use crate::commands::submit::upload;

const PREFIX: &str = "bench-fw-";

async fn rss(client: &mut Client) -> anyhow::Result<u64> {
    Ok(client
        .get_status(GetStatusRequest {})
        .await
        .map_err(failed)?
        .into_inner()
        .rss_bytes)
}

/// Runs the benchmark with `n` frameworks and `jobs_each` jobs per round.
pub async fn run(
    client: &mut Client,
    spec: &JobSpec,
    scheduler: &[u8],
    n: usize,
    jobs_each: usize,
) -> anyhow::Result<()> {
    let jobs_digest = upload(client, scheduler, "scheduler.wasm").await?;
    let chaos_digest = upload(client, wasmesos_builtin::CHAOS_SCHEDULER, "chaos.wasm").await?;
    let rss_before = rss(client).await?;
    // The greedy neighbour first: its compile is the cold deploy.
    let started = Instant::now();
    client
        .deploy_framework(DeployFrameworkRequest {
            name: format!("{PREFIX}greedy"),
            role: "bench-greedy".into(),
            weight: 1.0,
            config: Default::default(),
            module_digest: chaos_digest.to_string(),
        })
        .await
        .map_err(failed)?;
    let cold = started.elapsed();
    let mut deploy_times = Vec::with_capacity(n);
    let mut rss_first = 0;
    for i in 0..n {
        let started = Instant::now();
        client
            .deploy_framework(DeployFrameworkRequest {
                name: format!("{PREFIX}{i}"),
                role: format!("bench-{i}"),
                weight: 1.0,
                config: Default::default(),
                module_digest: jobs_digest.to_string(),
            })
            .await
            .map_err(failed)?;
        deploy_times.push(started.elapsed());
        if i == 0 {
            // The compiled code is shared by every copy: count it once, apart.
            tokio::time::sleep(Duration::from_millis(500)).await;
            rss_first = rss(client).await?;
        }
    }
    // Let every scheduler start and settle before measuring memory.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = rss(client).await?;
    println!(
        "bench=frameworks-deploy frameworks={n} scheduler_bytes={} cold_deploy_ms={:.1} first_deploy_ms={:.1} warm_deploy_p50_ms={:.1} master_rss_before_mib={:.1} master_rss_after_first_mib={:.1} master_rss_after_mib={:.1} rss_per_framework_kib={:.0}",
        scheduler.len(),
        ms(cold),
        ms(deploy_times.first().copied().unwrap_or_default()),
        ms(median(&deploy_times)),
        mib(rss_before),
        mib(rss_first),
        mib(rss_after),
        rss_after.saturating_sub(rss_first) as f64 / 1024.0 / n.saturating_sub(1).max(1) as f64,
    );

    let half = n / 2;
    let quiet = round(client, spec, 0..half, jobs_each).await?;
    let (p50, p99) = latencies(client, 0..half).await?;
    println!(
        "bench=frameworks-callbacks frameworks={half} jobs={} wall_s={:.2} callback_p50_us={p50} callback_p99_us={p99}",
        half * jobs_each,
        quiet.as_secs_f64()
    );

    let greedy = {
        let mut c = client.clone();
        tokio::spawn(async move {
            loop {
                // About 1.8e9 of its 2e9 fuel per callback: it never fails,
                // it only takes all the time it is allowed.
                let _ = c
                    .send_message(SendMessageRequest {
                        framework: format!("{PREFIX}greedy"),
                        body: b"fuel:100000000".to_vec(),
                    })
                    .await;
            }
        })
    };
    let noisy = round(client, spec, half..n, jobs_each).await?;
    greedy.abort();
    let (p50, p99) = latencies(client, half..n).await?;
    println!(
        "bench=frameworks-callbacks-beside-greedy frameworks={} jobs={} wall_s={:.2} callback_p50_us={p50} callback_p99_us={p99}",
        n - half,
        (n - half) * jobs_each,
        noisy.as_secs_f64()
    );

    for name in (0..n)
        .map(|i| format!("{PREFIX}{i}"))
        .chain([format!("{PREFIX}greedy")])
    {
        client
            .remove_framework(RemoveFrameworkRequest { name })
            .await
            .map_err(failed)?;
    }
    Ok(())
}

/// Submits `jobs_each` jobs to each framework of `which` and waits for all
/// to end; returns how long that took.
async fn round(
    client: &mut Client,
    spec: &JobSpec,
    which: std::ops::Range<usize>,
    jobs_each: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut ids = std::collections::HashSet::new();
    for _ in 0..jobs_each {
        for i in which.clone() {
            let r = client
                .submit(SubmitRequest {
                    framework: format!("{PREFIX}{i}"),
                    idempotency_key: String::new(),
                    spec: Some(spec.clone()),
                })
                .await
                .map_err(failed)?
                .into_inner();
            ids.insert(r.job_id);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut ended = 0;
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
            ended += page
                .tasks
                .iter()
                .filter(|t| {
                    ids.contains(&t.job_id)
                        && t.state() != TaskState::Unspecified
                        && t.state().is_terminal()
                })
                .count();
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        if ended >= ids.len() {
            return Ok(started.elapsed());
        }
        if Instant::now() > deadline {
            return Err(anyhow!(
                "only {ended} of {} jobs ended within 10 minutes",
                ids.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The medians, over the frameworks of `which`, of their p50 and p99
/// callback times.
async fn latencies(
    client: &mut Client,
    which: std::ops::Range<usize>,
) -> anyhow::Result<(u64, u64)> {
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    for i in which {
        let f = client
            .get_framework(GetFrameworkRequest {
                name: format!("{PREFIX}{i}"),
            })
            .await
            .map_err(failed)?
            .into_inner()
            .framework
            .unwrap_or_default();
        p50s.push(f.callback_p50_us);
        p99s.push(f.callback_p99_us);
    }
    let mid = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    Ok((mid(&mut p50s), mid(&mut p99s)))
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
