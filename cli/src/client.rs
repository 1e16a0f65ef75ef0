//! Connecting to the master, with errors a person can act on.

use std::time::Duration;

use anyhow::anyhow;
use tonic::transport::{Channel, Endpoint};
use wasmesos_api::DEFAULT_MASTER;
use wasmesos_api::proto::master_client::MasterClient;

/// `--master`, shared by every client command.
#[derive(clap::Args, Clone, Debug)]
pub struct MasterArg {
    /// The master's address.
    #[arg(long, env = "WASMESOS_MASTER", default_value = DEFAULT_MASTER)]
    pub master: String,
}

/// A connected client of the master.
pub async fn connect(master: &str) -> anyhow::Result<MasterClient<Channel>> {
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
