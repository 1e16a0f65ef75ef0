//! Connecting to the master as someone, with errors a person can act on.

use std::time::Duration;

use anyhow::anyhow;
use wasmesos_api::proto::GetStatusRequest;
use wasmesos_api::proto::master_client::MasterClient;
use wasmesos_api::{AuthedChannel, Bearer, DEFAULT_MASTER};

use crate::config::CliConfig;

/// A client of the master's API.
pub type Client = MasterClient<AuthedChannel>;

/// `--master` and `--token-file`, shared by every client command.
#[derive(clap::Args, Clone, Debug)]
pub struct MasterArg {
    /// The master's address; several, comma-separated, for a highly
    /// available cluster (standbys point the way to the leader). Default:
    /// the CLI's config file's, else http://127.0.0.1:5050.
    #[arg(long, env = "WASMESOS_MASTER")]
    pub master: Option<String>,
    /// A file holding the bearer token to call with. Default: the
    /// WASMESOS_TOKEN variable, else the CLI's config file's token (which
    /// `wasmesos up` writes).
    #[arg(long, env = "WASMESOS_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// For an https:// master with a private CA: the CA's certificate
    /// (PEM). Default: the config file's `ca_file`, else the system's
    /// roots.
    #[arg(long, env = "WASMESOS_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
}

/// The CLI's config file, read at most once, and only if a setting is not
/// given by a flag or the environment.
#[derive(Default)]
struct LazyConfig(Option<CliConfig>);

impl LazyConfig {
    fn get(&mut self) -> anyhow::Result<&CliConfig> {
        if self.0.is_none() {
            self.0 = Some(CliConfig::load()?);
        }
        Ok(self.0.as_ref().expect("loaded above"))
    }
}

impl MasterArg {
    /// The master address(es) to dial.
    pub fn masters(&self) -> anyhow::Result<String> {
        self.masters_from(&mut LazyConfig::default())
    }

    fn masters_from(&self, config: &mut LazyConfig) -> anyhow::Result<String> {
        if let Some(m) = &self.master {
            return Ok(m.clone());
        }
        Ok(config
            .get()?
            .master
            .clone()
            .unwrap_or_else(|| DEFAULT_MASTER.to_string()))
    }

    /// The token to call with, if any is configured.
    fn token_from(&self, config: &mut LazyConfig) -> anyhow::Result<Option<String>> {
        if let Some(path) = &self.token_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow!("cannot read the token file {}: {e}", path.display()))?;
            return Ok(Some(text.trim().to_string()));
        }
        if let Ok(token) = std::env::var("WASMESOS_TOKEN")
            && !token.trim().is_empty()
        {
            return Ok(Some(token.trim().to_string()));
        }
        Ok(config.get()?.token.clone())
    }

    /// The CA certificate (PEM) to trust, if one is configured.
    fn ca_from(&self, config: &mut LazyConfig) -> anyhow::Result<Option<Vec<u8>>> {
        let path = match &self.ca_file {
            Some(p) => Some(p.clone()),
            None => config.get()?.ca_file.clone(),
        };
        path.map(|p| {
            std::fs::read(&p).map_err(|e| anyhow!("cannot read the CA file {}: {e}", p.display()))
        })
        .transpose()
    }
}

/// A connected client of the leading master, calling as the configured
/// token's principal.
pub async fn connect(arg: &MasterArg) -> anyhow::Result<Client> {
    let mut config = LazyConfig::default();
    let masters = arg.masters_from(&mut config)?;
    let token = arg.token_from(&mut config)?;
    let ca = arg.ca_from(&mut config)?;
    connect_as(&masters, token.as_deref(), ca.as_deref()).await
}

/// A connected client of the leading master. `masters` is one address or
/// several, comma-separated: each is tried in turn, and a standby's answer
/// (which names the leader) is followed.
pub async fn connect_as(
    masters: &str,
    token: Option<&str>,
    ca: Option<&[u8]>,
) -> anyhow::Result<Client> {
    let bearer = Bearer::new(token)?;
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
        let mut client = match connect_one(&master, bearer.clone(), ca).await {
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

async fn connect_one(master: &str, bearer: Bearer, ca: Option<&[u8]>) -> anyhow::Result<Client> {
    let unreachable = |reason: String| {
        anyhow!("cannot reach master at {master}: is it running? try `wasmesos up` ({reason})")
    };
    let allow_plaintext = std::env::var_os("WASMESOS_ALLOW_PLAINTEXT").is_some_and(|v| v == "1");
    let endpoint = wasmesos_api::endpoint(master, ca, allow_plaintext)?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true);
    let channel = endpoint.connect().await.map_err(|e| {
        let reason = cause(&e);
        if reason.contains("certificate") {
            anyhow!(
                "cannot trust the master at {master}: {reason} (give its CA with --ca-file or WASMESOS_CA_FILE)"
            )
        } else {
            unreachable(reason)
        }
    })?;
    Ok(MasterClient::new(bearer.wrap(channel))
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
        tonic::Code::Unauthenticated => anyhow!(
            "not signed in: {} (give a token with --token-file or WASMESOS_TOKEN; `wasmesos up` saves its admin token in {})",
            status.message(),
            CliConfig::path().map_or_else(
                || "the CLI's config file".to_string(),
                |p| p.display().to_string()
            )
        ),
        tonic::Code::PermissionDenied => anyhow!("permission denied: {}", status.message()),
        _ => anyhow!("{}", status.message()),
    }
}
