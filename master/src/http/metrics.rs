//! `/metrics` in Prometheus' text exposition format (0.0.4), written by
//! hand: a few families, no registry needed. Counters and histograms are
//! atomics bumped where their numbers are produced (`core/counters.rs`, the
//! committer's latency); gauges come from one summary query to the core
//! (counts it keeps, plus one pass over the agents) and one over the
//! frameworks. A scrape never reads the store.

use std::fmt::Write;

use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use wasmesos_api::{Principal, Resources};

use super::{ApiError, HttpState};
use crate::core::counters::{BUCKETS, HistogramSnapshot};
use crate::core::{ClusterSummary, Counters, FrameworkMetrics, Query};

/// How one per-framework figure is read.
type Figure = fn(&FrameworkMetrics) -> f64;

const CONTENT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn metrics(
    State(state): State<HttpState>,
    Extension(who): Extension<Principal>,
) -> Response {
    if !who.is_operator() {
        return ApiError {
            status: http::StatusCode::FORBIDDEN,
            message: "only operators may read the master's metrics".into(),
        }
        .into_response();
    }
    let figures = async {
        let summary = state.core.query(Query::Summary).await?;
        let frameworks = state.core.query(Query::FrameworkMetrics).await?;
        Ok::<_, tonic::Status>((summary, frameworks))
    }
    .await;
    let (summary, frameworks) = match figures {
        Ok(f) => f,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let body = render(
        &state.core.counters,
        &state.committer.latency().snapshot(),
        &summary,
        &frameworks,
    );
    ([(CONTENT_TYPE, CONTENT)], body).into_response()
}

/// Escapes a label value as the text format requires.
fn label(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", label(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

fn histogram(out: &mut String, name: &str, help: &str, h: &HistogramSnapshot) {
    family(out, name, "histogram", help);
    let bucket = format!("{name}_bucket");
    for (bound, n) in BUCKETS.iter().zip(&h.cumulative) {
        sample(out, &bucket, &[("le", &bound.to_string())], n);
    }
    sample(out, &bucket, &[("le", "+Inf")], h.count);
    sample(out, &format!("{name}_sum"), &[], h.sum_seconds);
    sample(out, &format!("{name}_count"), &[], h.count);
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "counter", help);
    sample(out, name, &[], value);
}

pub(crate) fn render(
    c: &Counters,
    store: &HistogramSnapshot,
    s: &ClusterSummary,
    frameworks: &[FrameworkMetrics],
) -> String {
    let mut out = String::new();
    let o = &mut out;
    histogram(
        o,
        "wasmesos_allocation_round_seconds",
        "Time of one allocation pass (snapshot, DRF, offers handed to schedulers).",
        &c.allocation_rounds.snapshot(),
    );
    counter(
        o,
        "wasmesos_offers_made_total",
        "Offers made to frameworks.",
        Counters::get(&c.offers_made),
    );
    counter(
        o,
        "wasmesos_offers_declined_total",
        "Offers declined by a scheduler or left to lapse unused.",
        Counters::get(&c.offers_declined),
    );
    counter(
        o,
        "wasmesos_offers_rescinded_total",
        "Offers withdrawn by the master (agent lost, hold expired).",
        Counters::get(&c.offers_rescinded),
    );
    counter(
        o,
        "wasmesos_tasks_launched_total",
        "Tasks launched on agents.",
        Counters::get(&c.tasks_launched),
    );
    family(
        o,
        "wasmesos_offers_outstanding",
        "gauge",
        "Offers currently outstanding.",
    );
    sample(o, "wasmesos_offers_outstanding", &[], s.offers_outstanding);
    family(
        o,
        "wasmesos_tasks",
        "gauge",
        "Task records in the store, by state.",
    );
    for (state, n) in s.tasks.by_state() {
        sample(o, "wasmesos_tasks", &[("state", state.name())], n);
    }
    family(o, "wasmesos_agents", "gauge", "Known agents, by state.");
    sample(
        o,
        "wasmesos_agents",
        &[("state", "active")],
        s.agents_active,
    );
    sample(
        o,
        "wasmesos_agents",
        &[("state", "disconnected")],
        s.agents_disconnected,
    );
    family(
        o,
        "wasmesos_agents_draining",
        "gauge",
        "Agents being drained.",
    );
    sample(o, "wasmesos_agents_draining", &[], s.agents_draining);
    for (name, what, r) in [
        (
            "wasmesos_resources_total",
            "Resources of the active agents.",
            &s.status.total,
        ),
        (
            "wasmesos_resources_used",
            "Resources held by tasks on the active agents.",
            &s.status.used,
        ),
    ] {
        let r = Resources::from(r.as_ref());
        family(o, name, "gauge", what);
        sample(o, name, &[("resource", "cpus")], r.cpus());
        sample(o, name, &[("resource", "mem_bytes")], r.mem_bytes);
        sample(o, name, &[("resource", "disk_bytes")], r.disk_bytes);
    }

    let per_fw: [(&str, &str, &str, Figure); 6] = [
        (
            "wasmesos_framework_callbacks_total",
            "counter",
            "Scheduler callbacks completed.",
            |f| f.callbacks as f64,
        ),
        (
            "wasmesos_framework_callback_failures_total",
            "counter",
            "Scheduler failures (traps, limits, timeouts).",
            |f| f.failures as f64,
        ),
        (
            "wasmesos_framework_callback_fuel_total",
            "counter",
            "Fuel the scheduler's callbacks consumed.",
            |f| f.fuel as f64,
        ),
        (
            "wasmesos_framework_callback_seconds_total",
            "counter",
            "Wall time spent in the scheduler's callbacks.",
            |f| f.callback_seconds,
        ),
        (
            "wasmesos_framework_tasks_running",
            "gauge",
            "The framework's active tasks.",
            |f| f.tasks_running as f64,
        ),
        (
            "wasmesos_framework_dominant_share",
            "gauge",
            "The framework's dominant share of the cluster.",
            |f| f.dominant_share,
        ),
    ];
    for (name, kind, help, value) in per_fw {
        family(o, name, kind, help);
        for f in frameworks {
            sample(
                o,
                name,
                &[("framework", &f.name), ("role", &f.role)],
                value(f),
            );
        }
    }
    family(
        o,
        "wasmesos_framework_healthy",
        "gauge",
        "1 while the framework's scheduler runs, 0 after it failed.",
    );
    for f in frameworks {
        sample(
            o,
            "wasmesos_framework_healthy",
            &[("framework", &f.name), ("role", &f.role)],
            u8::from(f.healthy),
        );
    }

    histogram(
        o,
        "wasmesos_store_commit_seconds",
        "Time of one store transaction (the write pipeline merges many changes into one).",
        store,
    );
    family(
        o,
        "wasmesos_leader",
        "gauge",
        "1 on the leading master (standbys answer /metrics with 503).",
    );
    sample(
        o,
        "wasmesos_leader",
        &[
            ("store", &s.status.store),
            ("advertise", &s.status.advertise),
        ],
        1,
    );
    family(o, "wasmesos_leader_epoch", "gauge", "The leader's epoch.");
    sample(o, "wasmesos_leader_epoch", &[], s.status.leader_epoch);
    family(
        o,
        "wasmesos_master_resident_memory_bytes",
        "gauge",
        "The master process's resident memory.",
    );
    sample(
        o,
        "wasmesos_master_resident_memory_bytes",
        &[],
        s.status.rss_bytes,
    );
    out
}
