//! The hostile tenant of `wasmesos bench e2e --hostile`: a second tenant
//! that does its worst to the cluster while the bench measures what the
//! first one sees. It:
//! - runs a scheduler (the `chaos` fixture) and sends it `loop` messages
//!   back to back, so each of its callbacks spins until the time limit;
//! - uploads a fresh "compile bomb" every half second — a valid module
//!   whose one huge function takes Cranelift seconds to compile — and
//!   submits a task of it, so agents compile one after another;
//! - keeps its share of the cluster full of tasks that spin until their
//!   time limit.
//!
//! What it managed to do is counted, so a report shows the hostility was
//! real, not only that the victim was fine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use wasmesos_api::Resources;
use wasmesos_api::proto::{
    CreateTenantRequest, CreateTokenRequest, DeployFrameworkRequest, JobSpec, Limits,
    SendMessageRequest, TaskSpec, TenantLimits, TokenKind,
};

use crate::client::{Client, connect_as, failed};
use crate::commands::bench::submit;
use crate::commands::submit::upload;

/// Instructions in a compile bomb's function: about 1 MiB of code that
/// takes Cranelift on the order of a second.
const BOMB_INSTRUCTIONS: usize = 60_000;

/// What the hostile tenant got done.
#[derive(Debug, Default)]
pub struct Counts {
    /// `loop` messages its scheduler took (each a callback cut at the limit).
    pub spins: AtomicU64,
    /// Those refused at once (the scheduler restarting or failed).
    pub spins_refused: AtomicU64,
    /// Compile bombs uploaded and submitted.
    pub bombs: AtomicU64,
    /// Spinning tasks submitted.
    pub spinners: AtomicU64,
    /// Submissions refused (limits, rate).
    pub refused: AtomicU64,
}

/// A running hostile tenant; stops when dropped.
pub struct Hostile {
    pub counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Creates tenant `mallory` (through the operator's `admin` client), at
/// most `max_tasks` running tasks (0: no limit), and sets it loose on the
/// cluster at `url`.
pub async fn start(
    admin: &mut Client,
    url: &str,
    task_mem: u64,
    max_tasks: u32,
) -> anyhow::Result<Hostile> {
    admin
        .create_tenant(CreateTenantRequest {
            name: "mallory".into(),
            roles: vec!["mallory".into()],
            limits: Some(TenantLimits {
                max_running_tasks: max_tasks,
                ..Default::default()
            }),
        })
        .await
        .map_err(failed)?;
    let token = admin
        .create_token(CreateTokenRequest {
            tenant: "mallory".into(),
            kind: TokenKind::Tenant as i32,
            name: "bench".into(),
            ttl_seconds: 0,
        })
        .await
        .map_err(failed)?
        .into_inner()
        .secret;
    let mut client = connect_as(url, Some(&token), None).await?;
    let chaos = upload(&mut client, wasmesos_builtin::CHAOS_SCHEDULER, "chaos.wasm").await?;
    client
        .deploy_framework(DeployFrameworkRequest {
            name: "chaos".into(),
            module_digest: chaos.to_string(),
            ..Default::default()
        })
        .await
        .map_err(failed)
        .context("the hostile tenant cannot deploy its scheduler")?;
    let hello = upload(&mut client, wasmesos_builtin::HELLO_TASK, "hello.wasm").await?;

    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let task = move |module: String, args: Vec<String>, timeout_ms: u64| JobSpec {
        name: "mallory".into(),
        task: Some(TaskSpec {
            module_digest: module,
            args,
            env: Default::default(),
            resources: Some((&Resources::new(0.5, task_mem, 0)).into()),
            limits: Some(Limits {
                timeout_ms,
                ..Default::default()
            }),
        }),
        max_attempts: 1,
        priority: 0,
    };
    let mut tasks = Vec::new();

    // A scheduler that spins in every callback.
    {
        let (mut c, counts, stop) = (client.clone(), counts.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let _ = c
                    .send_message(SendMessageRequest {
                        framework: "chaos".into(),
                        body: b"loop".to_vec(),
                    })
                    .await;
                // A callback that ran into the time limit took it; a
                // refusal (restarting, backing off) comes back at once.
                match started.elapsed() >= Duration::from_millis(500) {
                    true => counts.spins.fetch_add(1, Ordering::Relaxed),
                    false => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        counts.spins_refused.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    // Compile bombs, each new.
    {
        let (mut c, counts, stop) = (client.clone(), counts.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let bomb = compile_bomb(n);
                if let Ok(digest) = upload(&mut c, &bomb, "bomb.wasm").await {
                    let spec = task(digest.to_string(), Vec::new(), 10_000);
                    match submit(&mut c, &spec).await.is_ok() {
                        true => counts.bombs.fetch_add(1, Ordering::Relaxed),
                        false => counts.refused.fetch_add(1, Ordering::Relaxed),
                    };
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }));
    }
    // Spinning tasks, as many as it is given room for.
    {
        let (mut c, counts, stop) = (client.clone(), counts.clone(), stop.clone());
        let spec = task(hello.to_string(), vec!["--spin".into()], 2_000);
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match submit(&mut c, &spec).await.is_ok() {
                    true => counts.spinners.fetch_add(1, Ordering::Relaxed),
                    false => counts.refused.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    Ok(Hostile {
        counts,
        stop,
        tasks,
    })
}

/// A valid WASI command whose `_start` is one long chain of arithmetic on
/// locals: cheap to validate, expensive to compile. `n` makes each one new
/// (no cache helps).
fn compile_bomb(n: u32) -> Vec<u8> {
    let mut body = String::with_capacity(BOMB_INSTRUCTIONS * 40);
    for i in 0..BOMB_INSTRUCTIONS {
        let (a, b) = (i % 8, (i * 7 + 3) % 8);
        body.push_str(&format!(
            "(local.set {a} (i32.add (local.get {b}) (i32.const {})))\n",
            i as u32 ^ n
        ));
    }
    wat::parse_str(format!(
        "(module (func (export \"_start\") (local i32 i32 i32 i32 i32 i32 i32 i32)\n{body}))"
    ))
    .expect("the bomb's WAT parses")
}

impl Counts {
    /// `key=value` pairs for the report.
    pub fn line(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "hostile_spinning_callbacks={} hostile_callbacks_refused={} hostile_compile_bombs={} hostile_spinning_tasks={} hostile_submissions_refused={}",
            g(&self.spins),
            g(&self.spins_refused),
            g(&self.bombs),
            g(&self.spinners),
            g(&self.refused)
        )
    }
}
