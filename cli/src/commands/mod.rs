//! One module per subcommand, plus what the daemons share.

pub mod agent;
pub mod agent_drain;
pub mod agents;
pub mod audit;
pub mod bench;
pub mod bench_e2e;
pub mod bench_frameworks;
pub mod bench_hostile;
pub mod bench_runtime;
pub mod executor;
pub mod framework;
pub mod framework_test;
pub mod frameworks;
pub mod logs;
pub mod master;
pub mod role;
pub mod role_args;
pub mod roles;
pub mod snapshot;
pub mod status;
pub mod submit;
pub mod task;
pub mod tasks;
pub mod tenant;
pub mod token;
pub mod up;

use std::path::PathBuf;

use wasmesos_api::{Resources, parse_resources};

/// Logs of the daemons go to stderr; `RUST_LOG` overrides the level.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Where state lives by default: `$WASMESOS_DATA_DIR`, else
/// `$XDG_DATA_HOME/wasmesos`, else `~/.local/share/wasmesos`.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WASMESOS_DATA_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("wasmesos");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/wasmesos"),
        None => PathBuf::from(".wasmesos"),
    }
}

/// For clap: `cpus:2,mem:4GiB,disk:10GiB`.
pub fn resources_arg(text: &str) -> Result<Resources, String> {
    parse_resources(text).map_err(|e| e.to_string())
}

/// This machine's resources, for an agent started without `--resources`:
/// every cpu, the memory less a reserve for the system (1 GiB, or half on
/// small machines), and 10 GiB of disk.
pub fn detect_resources() -> Resources {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(2 << 30);
    let reserve = (1u64 << 30).min(mem / 2);
    Resources::new(cpus, mem - reserve, 10 << 30)
}

/// For clap: `in-process` (or `none`) or `cgroups`.
pub fn isolation_arg(text: &str) -> Result<wasmesos_agent::Isolation, String> {
    match text {
        "in-process" | "none" => Ok(wasmesos_agent::Isolation::InProcess),
        "cgroups" => Ok(wasmesos_agent::Isolation::Cgroups),
        other => Err(format!(
            "'{other}' is not an isolation: use in-process (the default) or cgroups"
        )),
    }
}

/// For clap: a size such as `64MiB`.
pub fn size_arg(text: &str) -> Result<u64, String> {
    wasmesos_api::parse_size(text).map_err(|e| e.to_string())
}

/// For clap: `zone:a,rack:3`.
pub fn attributes_arg(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| format!("'{p}' is not NAME:VALUE (e.g. zone:a)"))
        })
        .collect()
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn interrupted() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
