//! Durable write throughput of the embedded store under group commit.
//!
//! `cargo bench -p wasmesos-store --bench commit [-- SECONDS]`
//!
//! For 1, 10, 100 and 1000 concurrent writers (tokio tasks, each awaiting one
//! durable put of a new 100-byte record at a time) it prints transactions
//! per second, durable redb commits per second, records per commit and the
//! latency of one put. A first line measures raw redb on the same disk, one
//! 100-byte record per durable commit, as the floor to compare against. The
//! state files live under the target dir (on disk, not tmpfs). Figures only:
//! nothing here asserts on speed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmesos_store::{EmbeddedStore, Store};

const VALUE_BYTES: usize = 100;

fn main() {
    let seconds: f64 = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(3.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{:>8} {:>12} {:>14} {:>12} {:>10} {:>10}",
        "writers", "txns/s", "commits/s", "recs/commit", "p50 µs", "p99 µs"
    );
    raw_redb(Duration::from_secs_f64(seconds));
    for writers in [1, 10, 100, 1000] {
        runtime.block_on(run(writers, Duration::from_secs_f64(seconds)));
    }
}

async fn run(writers: usize, duration: Duration) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = EmbeddedStore::open_in(dir.path()).unwrap();
    let before = store.stats();
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store: Arc<EmbeddedStore> = store.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let value = vec![7u8; VALUE_BYTES];
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    store
                        .put(&format!("bench/{w}/{i}"), value.clone())
                        .await
                        .unwrap();
                    latencies.push(t.elapsed());
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    let stats = store.stats();
    let (txns, commits) = (stats.txns - before.txns, stats.commits - before.commits);
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    println!(
        "{:>8} {:>12.0} {:>14.0} {:>12.1} {:>10.0} {:>10.0}",
        writers,
        txns as f64 / elapsed,
        commits as f64 / elapsed,
        txns as f64 / commits.max(1) as f64,
        pct(0.5),
        pct(0.99),
    );
}

/// One record per durable commit straight on redb: the floor of one commit.
fn raw_redb(duration: Duration) {
    const TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("raw");
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let db = redb::Database::create(dir.path().join("raw.redb")).unwrap();
    let value = vec![7u8; VALUE_BYTES];
    let mut latencies = Vec::new();
    let start = Instant::now();
    while start.elapsed() < duration {
        let t = Instant::now();
        let wtx = db.begin_write().unwrap();
        {
            let mut table = wtx.open_table(TABLE).unwrap();
            table
                .insert(latencies.len() as u64, value.as_slice())
                .unwrap();
        }
        wtx.commit().unwrap();
        latencies.push(t.elapsed());
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    let rate = latencies.len() as f64 / elapsed;
    println!(
        "{:>8} {:>12.0} {:>14.0} {:>12.1} {:>10.0} {:>10.0}",
        "raw",
        rate,
        rate,
        1.0,
        pct(0.5),
        pct(0.99)
    );
}
