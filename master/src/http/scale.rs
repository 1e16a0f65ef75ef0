//! The HTTP side at scale: seed agents and finished tasks straight into a
//! master's store (its own key layout), start the core on it, attach every
//! agent as connected, and hammer the JSON API while measuring how long
//! each endpoint takes, how long the core takes to answer a trivial query
//! meanwhile, and that allocation rounds keep running.
//!
//! By default a small cluster (2,000 agents, 20,000 tasks) so the suite
//! stays quick; `WASMESOS_UI_SCALE=full` seeds 100,000 agents and 1,000,000
//! tasks. Figures are printed (run with `--nocapture`), never asserted on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use wasmesos_api::proto::{self, TaskState};
use wasmesos_api::{AgentId, FrameworkId, Resources, TaskId, TenantId};
use wasmesos_store::{EmbeddedStore, Op, Store, Txn};

use super::tests::get;
use crate::commit::{Committer, put};
use crate::core::{self, CoreHandle, CoreMsg, Query};
use crate::{MasterConfig, keys};

/// Ops per seeding transaction.
const SEED_BATCH: usize = 5_000;

async fn seed(store: &Arc<EmbeddedStore>, agents: usize, tasks: usize) {
    let fw = FrameworkId::new("fw-1").unwrap();
    let tenant = TenantId::default_tenant();
    let mut ops = Vec::new();
    let flush = |ops: Vec<Op>| {
        let store = store.clone();
        async move {
            store
                .txn(Txn {
                    compares: Vec::new(),
                    success: ops,
                    failure: Vec::new(),
                })
                .await
                .expect("seeding");
        }
    };
    for i in 0..agents {
        let id = AgentId::new(format!("agent-{i:06}")).unwrap();
        let record = proto::Agent {
            agent_id: id.to_string(),
            hostname: format!("host-{i:06}.rack-{}", i % 100),
            total: Some((&Resources::new(8.0, 32 << 30, 500 << 30)).into()),
            attributes: [("rack".to_string(), format!("r{}", i % 100))].into(),
            ..Default::default()
        };
        ops.push(put(keys::agent(&id), &record));
        if ops.len() >= SEED_BATCH {
            flush(std::mem::take(&mut ops)).await;
        }
    }
    // The agent id counter, as the master keeps it, past the seeded ids.
    ops.push(Op::Put {
        key: keys::seq("agent"),
        value: agents.to_string().into_bytes(),
        lease: None,
    });
    let states = [TaskState::Finished, TaskState::Failed, TaskState::Killed];
    for i in 0..tasks {
        let task = TaskId::new(format!("seed-{i:07}.1")).unwrap();
        let mut record = proto::Task {
            task_id: task.to_string(),
            tenant: tenant.to_string(),
            framework_id: fw.to_string(),
            framework_name: "jobs".into(),
            name: format!("seeded-{}", i % 1000),
            agent_id: format!("agent-{:06}", i % agents.max(1)),
            created_ms: 1,
            finished_ms: 2,
            ..Default::default()
        };
        record.set_state(states[i % states.len()]);
        ops.push(put(keys::task(&tenant, &fw, &task), &record));
        if ops.len() >= SEED_BATCH {
            flush(std::mem::take(&mut ops)).await;
        }
    }
    flush(ops).await;
}

/// The core and HTTP side as `start` wires them, on an existing store,
/// with the core's handle kept (to attach agents without a network).
async fn serve(
    cfg: MasterConfig,
    store: Arc<dyn Store>,
) -> (CoreHandle, SocketAddr, tokio::sync::watch::Sender<bool>) {
    let committer = Committer::new(store, None);
    let modules =
        crate::modules::ModuleStore::open(&cfg.data_dir, committer.clone(), cfg.max_module_bytes)
            .unwrap();
    let mut sched = cfg.schedhost.clone();
    sched.compile_cache_dir = Some(cfg.data_dir.join("compiled"));
    let host = wasmesos_schedhost::SchedHost::new(sched).unwrap();
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    let registry = Arc::new(crate::tenancy::Registry::default());
    let (id, secret) = crate::tenancy::token::parse(super::tests::TEST_TOKEN).unwrap();
    registry.put_token(wasmesos_api::proto::Token {
        id: id.into(),
        kind: wasmesos_api::proto::TokenKind::Operator as i32,
        secret_sha256: crate::tenancy::token::hash(secret),
        ..Default::default()
    });
    let (core, _join) = core::start(
        core::CoreParts {
            cfg: Arc::new(cfg),
            committer: committer.clone(),
            modules,
            host,
            epoch: 1,
            advertise: "http://scale.test".into(),
            counters: Default::default(),
            registry: registry.clone(),
        },
        shutdown_rx.clone(),
    )
    .await
    .unwrap();
    let app = super::router(super::HttpState::new(
        core.clone(),
        committer,
        Default::default(),
        registry.clone(),
        shutdown_rx,
    ))
    .layer(axum::middleware::from_fn_with_state(
        crate::auth::AuthState {
            registry,
            core: core.clone(),
        },
        crate::auth::resolve_principal,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    (core, addr, shutdown)
}

/// Attaches every seeded agent as connected (their messages go nowhere).
async fn attach(core: &CoreHandle, agents: usize) -> mpsc::UnboundedReceiver<()> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (done_tx, done) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while rx.recv().await.is_some() {}
        let _ = done_tx.send(());
    });
    let mut replies = Vec::new();
    for i in 0..agents {
        let (reply, answer) = oneshot::channel();
        core.send(CoreMsg::AgentAttach {
            register: proto::RegisterAgent {
                agent_id: format!("agent-{i:06}"),
                hostname: format!("host-{i:06}.rack-{}", i % 100),
                resources: Some((&Resources::new(8.0, 32 << 30, 500 << 30)).into()),
                epoch: 1,
                ..Default::default()
            },
            conn: i as u64 + 1,
            tx: tx.clone(),
            reply,
        })
        .unwrap();
        replies.push(answer);
    }
    for r in replies {
        r.await.unwrap().expect("attached");
    }
    done
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_stays_fast_and_allocation_keeps_running_at_scale() {
    let full = std::env::var("WASMESOS_UI_SCALE").is_ok_and(|v| v == "full");
    let (agents, tasks) = if full {
        (100_000, 1_000_000)
    } else {
        (2_000, 20_000)
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = MasterConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("m"));
    cfg.agent_timeout = Duration::from_secs(3600);
    std::fs::create_dir_all(&cfg.data_dir).unwrap();
    let store = EmbeddedStore::open(&cfg.data_dir.join("state.redb")).unwrap();

    let started = Instant::now();
    seed(&store, agents, tasks).await;
    let seeded = started.elapsed();
    let started = Instant::now();
    let (core, addr, shutdown) = serve(cfg, store).await;
    let recovered = started.elapsed();
    let started = Instant::now();
    let _sink = attach(&core, agents).await;
    let attached = started.elapsed();
    println!(
        "scale: {agents} agents, {tasks} tasks: seeded in {seeded:?}, recovered in {recovered:?}, attached in {attached:?}"
    );

    let summary = get(addr, "/api/v1/summary").await.json();
    assert_eq!(summary["agents"]["active"], agents);
    assert_eq!(summary["tasks"]["total"], tasks);
    assert_eq!(
        summary["tasks"]["by_state"]["FINISHED"],
        tasks.div_ceil(3),
        "counted at recovery"
    );

    // Hammer the API while pinging the core and watching allocation.
    let rounds_before = core.counters.allocation_rounds.snapshot().count;
    let pinger = {
        let core = core.clone();
        tokio::spawn(async move {
            let mut waits = Vec::new();
            let until = Instant::now() + Duration::from_secs(if full { 20 } else { 4 });
            while Instant::now() < until {
                let t = Instant::now();
                core.query(Query::Status).await.unwrap();
                waits.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            waits
        })
    };
    let endpoints = [
        "/api/v1/summary",
        "/api/v1/agents?limit=100",
        "/api/v1/agents?limit=100&after=agent-001000",
        "/api/v1/agents?q=rack-7&limit=50",
        "/api/v1/tasks?limit=100",
        "/api/v1/tasks?state=failed&limit=100",
        "/api/v1/tasks?state=running&limit=100",
        "/api/v1/tasks?q=seeded-999&limit=100",
        "/api/v1/tasks/jobs/seed-0000001.1",
        "/api/v1/frameworks",
        "/api/v1/roles",
        "/metrics",
    ];
    let mut figures = Vec::new();
    for path in endpoints {
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let r = get(addr, path).await;
            times.push(t.elapsed());
            assert_eq!(r.status, 200, "{path}: {}", r.body);
        }
        figures.push((path, percentile(times.clone(), 0.5), percentile(times, 1.0)));
    }
    let waits = pinger.await.unwrap();
    let rounds = core.counters.allocation_rounds.snapshot();
    for (path, p50, max) in &figures {
        println!("scale: GET {path}: p50 {p50:?}, max {max:?}");
    }
    println!(
        "scale: core answered a status query in p50 {:?}, p99 {:?}, max {:?} during the load ({} pings)",
        percentile(waits.clone(), 0.5),
        percentile(waits.clone(), 0.99),
        percentile(waits.clone(), 1.0),
        waits.len()
    );
    println!(
        "scale: allocation rounds during the load: {}; mean round {:?} over {} rounds",
        rounds.count - rounds_before,
        Duration::from_secs_f64(rounds.sum_seconds / rounds.count.max(1) as f64),
        rounds.count
    );
    assert!(
        rounds.count > rounds_before,
        "allocation kept running while the API was served"
    );

    // Paging walks every agent exactly once.
    if !full {
        let mut seen = 0;
        let mut after = String::new();
        loop {
            let page = get(addr, &format!("/api/v1/agents?limit=1000{after}"))
                .await
                .json();
            seen += page["agents"].as_array().unwrap().len();
            match page["next"].as_str() {
                Some(next) => after = format!("&after={next}"),
                None => break,
            }
        }
        assert_eq!(seen, agents);
    }
    let _ = shutdown.send(true);
}
