//! Connecting to the master, with errors a person can act on.

use std::time::Duration;

use anyhow::anyhow;
use tonic::transport::{Channel, Endpoint};
use wasmesos_api::DEFAULT_MASTER;
use wasmesos_api::proto::GetStatusRequest;
use wasmesos_api::proto::master_client::MasterClient;

/// `--master`, shared by every client command.
#[derive(clap::Args, Clone, Debug)]
pub struct MasterArg {
    /// The master's address; several, comma-separated, for a highly
    /// available cluster (standbys point the way to the leader).
    #[arg(long, env = "WASMESOS_MASTER", default_value = DEFAULT_MASTER)]
    pub master: String,
}

/// A connected client of the leading master. `masters` is one address or
/// several, comma-separated: each is tried in turn, and a standby's answer
/// (which names the leader) is followed.
pub async fn connect(masters: &str) -> anyhow::Result<MasterClient<Channel>> {
    let mut queue: std::collections::VecDeque<String> = masters
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect();
    if queue.is_empty() {
        return Err(anyhow!(
            "no master address given (expected e.g. {DEFAULT_MASTER})"
        ));
    }
    let mut tried = std::collections::HashSet::new();
    let mut failures = Vec::new();
    while let Some(master) = queue.pop_front() {
        if !tried.insert(master.clone()) {
            continue;
        }
        let mut client = match connect_one(&master).await {
            Ok(client) => client,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        // Who leads? A standby answers every call UNAVAILABLE, naming the
        // leader; the leader answers.
        match client.get_status(GetStatusRequest {}).await {
            Err(status) if status.code() == tonic::Code::Unavailable => {
                let leader = status
                    .metadata()
                    .get(LEADER_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .filter(|l| !l.is_empty())
                    .map(str::to_string);
                match leader {
                    // A standby: go to the leader it names, first.
                    Some(leader) => queue.push_front(leader),
                    None => failures.push(anyhow!("master at {master}: {}", status.message())),
                }
            }
            // The leader (or a call refused for another reason, which the
            // real call will report).
            _ => return Ok(client),
        }
    }
    let reasons: Vec<String> = failures.iter().map(|e| e.to_string()).collect();
    Err(anyhow!("{}", reasons.join("; ")))
}

/// The response header in which a standby names the leader.
const LEADER_HEADER: &str = "wasmesos-leader";

async fn connect_one(master: &str) -> anyhow::Result<MasterClient<Channel>> {
    let unreachable = |reason: String| {
        anyhow!("cannot reach master at {master}: is it running? try `wasmesos up` ({reason})")
    };
    let endpoint = Endpoint::from_shared(master.to_string())
        .map_err(|e| {
            anyhow!("invalid master address '{master}': {e} (expected e.g. {DEFAULT_MASTER})")
        })?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| unreachable(cause(&e)))?;
    Ok(MasterClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

/// The innermost cause of an error ("Connection refused (os error 111)").
fn cause(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

/// A failed call, as the user should read it.
pub fn failed(status: tonic::Status) -> anyhow::Error {
    match status.code() {
        tonic::Code::Unavailable if status.message().contains("transport") => {
            anyhow!("lost the connection to the master: {}", status.message())
        }
        _ => anyhow!("{}", status.message()),
    }
}
