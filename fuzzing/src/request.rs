//! API requests from strangers, against a live master in this process.
//!
//! The first request starts a master on loopback (embedded store in a
//! temporary directory, the built-in jobs framework), creates a tenant
//! `fuzz` with a token, and uploads [`uploaded_module`] as that tenant, so
//! that mutated submissions can get past the first checks. Each input then
//! names a target and a caller and carries the bytes of the request:
//!
//! - byte 0: the target — one of [`GRPC`] (every method of both services),
//!   or a GET under `/api/v1/`, or a POST of the sign-in form;
//! - byte 1: the caller — operator, tenant, agent, nobody, or a token that
//!   looks right but is unknown;
//! - the rest: the message bytes (for client streams, split in two at a
//!   point byte 2 chooses), the path and query, or the form body.
//!
//! A finding: a panic anywhere in the process, a connection the master
//! drops instead of answering, or a 500 answer over HTTP. A refusal of any
//! kind (invalid argument, unauthenticated, a decode error) is the master
//! doing its job.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use tonic::Status;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use wasmesos_api::proto::{self, master_client::MasterClient};
use wasmesos_api::{Bearer, Digest};
use wasmesos_master::{MasterConfig, RunningMaster};

use crate::raw_codec::RawCodec;

/// How a gRPC method streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Unary,
    ClientStream,
    ServerStream,
    Bidi,
}

/// Every gRPC method of the master's two services (a test checks this
/// list against the `.proto` files).
pub const GRPC: &[(&str, Shape)] = &[
    ("/wasmesos.v1.Master/PutModule", Shape::ClientStream),
    ("/wasmesos.v1.Master/StatModule", Shape::Unary),
    ("/wasmesos.v1.Master/Submit", Shape::Unary),
    ("/wasmesos.v1.Master/WatchJob", Shape::ServerStream),
    ("/wasmesos.v1.Master/ListTasks", Shape::Unary),
    ("/wasmesos.v1.Master/GetTask", Shape::Unary),
    ("/wasmesos.v1.Master/KillTask", Shape::Unary),
    ("/wasmesos.v1.Master/TaskLogs", Shape::ServerStream),
    ("/wasmesos.v1.Master/ListAgents", Shape::Unary),
    ("/wasmesos.v1.Master/DrainAgent", Shape::Unary),
    ("/wasmesos.v1.Master/UndrainAgent", Shape::Unary),
    ("/wasmesos.v1.Master/ListFrameworks", Shape::Unary),
    ("/wasmesos.v1.Master/GetStatus", Shape::Unary),
    ("/wasmesos.v1.Master/ListRoles", Shape::Unary),
    ("/wasmesos.v1.Master/SetRole", Shape::Unary),
    ("/wasmesos.v1.Master/DeployFramework", Shape::Unary),
    ("/wasmesos.v1.Master/UpgradeFramework", Shape::Unary),
    ("/wasmesos.v1.Master/RemoveFramework", Shape::Unary),
    ("/wasmesos.v1.Master/GetFramework", Shape::Unary),
    ("/wasmesos.v1.Master/SendMessage", Shape::Unary),
    ("/wasmesos.v1.Master/Snapshot", Shape::ServerStream),
    ("/wasmesos.v1.Master/WhoAmI", Shape::Unary),
    ("/wasmesos.v1.Master/CreateTenant", Shape::Unary),
    ("/wasmesos.v1.Master/SetTenantLimits", Shape::Unary),
    ("/wasmesos.v1.Master/ListTenants", Shape::Unary),
    ("/wasmesos.v1.Master/CreateToken", Shape::Unary),
    ("/wasmesos.v1.Master/ListTokens", Shape::Unary),
    ("/wasmesos.v1.Master/RevokeToken", Shape::Unary),
    ("/wasmesos.v1.Master/ListAudit", Shape::Unary),
    ("/wasmesos.v1.AgentLink/Attach", Shape::Bidi),
    ("/wasmesos.v1.AgentLink/FetchModule", Shape::ServerStream),
];

/// Target numbers past the gRPC methods.
const HTTP_GET: usize = GRPC.len();
const HTTP_LOGIN: usize = GRPC.len() + 1;
const TARGETS: usize = GRPC.len() + 2;

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Operator = 0,
    Tenant = 1,
    Agent = 2,
    Nobody = 3,
    Unknown = 4,
}

const CALLERS: [Caller; 5] = [
    Caller::Operator,
    Caller::Tenant,
    Caller::Agent,
    Caller::Nobody,
    Caller::Unknown,
];

/// Tenants an operator input may create before further creations are
/// made as the tenant (and refused): each tenant runs a jobs scheduler, and
/// a long run must not grow the master without bound.
const MAX_CREATED_TENANTS: u32 = 32;

/// How long a stream is read before the call is dropped.
const STREAM_PATIENCE: Duration = Duration::from_millis(50);

/// The task module the `fuzz` tenant has uploaded: a WASI command.
pub fn uploaded_module() -> Vec<u8> {
    wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#)
        .expect("the uploaded module's WAT parses")
}

/// The master under test and the ways to reach it.
struct Live {
    runtime: tokio::runtime::Runtime,
    conn: Connections,
}

struct Connections {
    channel: Channel,
    http: Client<HttpConnector, Full<Bytes>>,
    base: String,
    /// A bearer token per [`Caller`] (none for nobody).
    tokens: [Option<String>; 5],
    _master: RunningMaster,
    _dir: tempfile::TempDir,
}

/// Panics seen on any thread since the last check (the master's tasks
/// run on threads of their own; tokio would otherwise swallow them).
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static CREATED_TENANTS: AtomicU32 = AtomicU32::new(0);

fn live() -> &'static Live {
    static LIVE: OnceLock<Live> = OnceLock::new();
    LIVE.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            PANICS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("thread {:?}: {info}", thread.name()));
            previous(info);
        }));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let conn = runtime.block_on(start());
        Live { runtime, conn }
    })
}

fn client(channel: &Channel, token: &str) -> MasterClient<wasmesos_api::AuthedChannel> {
    MasterClient::new(
        Bearer::new(Some(token))
            .expect("a valid token")
            .wrap(channel.clone()),
    )
}

/// The messages `wasmesos module push` sends for `bytes`.
fn put_module_messages(bytes: &[u8]) -> Vec<proto::PutModuleRequest> {
    use proto::put_module_request::Part;
    vec![
        proto::PutModuleRequest {
            part: Some(Part::Header(proto::ModuleHeader {
                size: bytes.len() as u64,
                digest: Digest::of(bytes).to_string(),
                name: "fuzz.wasm".into(),
            })),
        },
        proto::PutModuleRequest {
            part: Some(Part::Chunk(bytes.to_vec())),
        },
    ]
}

async fn start() -> Connections {
    let dir = tempfile::Builder::new()
        .prefix("wasmesos-fuzz-")
        .tempdir()
        .expect("a temporary directory");
    let cfg = MasterConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf());
    let master = wasmesos_master::start(cfg)
        .await
        .expect("the master starts");
    let base = format!("http://{}", master.addr);
    let channel = Endpoint::from_shared(base.clone())
        .unwrap()
        .connect()
        .await
        .expect("the master answers");
    let read = |name: &str| {
        std::fs::read_to_string(PathBuf::from(dir.path()).join(name))
            .expect("the master wrote its bootstrap tokens")
            .trim()
            .to_string()
    };
    let (admin, agent) = (read("admin.token"), read("agent.token"));
    let mut operator = client(&channel, &admin);
    operator
        .create_tenant(proto::CreateTenantRequest {
            name: "fuzz".into(),
            roles: vec!["fuzz".into()],
            limits: None,
        })
        .await
        .expect("tenant fuzz is created");
    let tenant = operator
        .create_token(proto::CreateTokenRequest {
            tenant: "fuzz".into(),
            kind: proto::TokenKind::Tenant as i32,
            name: "fuzzer".into(),
            ttl_seconds: 0,
        })
        .await
        .expect("a token for tenant fuzz")
        .into_inner()
        .secret;
    client(&channel, &tenant)
        .put_module(tokio_stream::iter(put_module_messages(&uploaded_module())))
        .await
        .expect("the tenant's module uploads");
    Connections {
        channel,
        http: Client::builder(TokioExecutor::new()).build_http(),
        base,
        tokens: [
            Some(admin),
            Some(tenant),
            Some(agent),
            None,
            Some(format!("wsm_{}_{}", "0".repeat(12), "0".repeat(64))),
        ],
        _master: master,
        _dir: dir,
    }
}

/// Sends one input to the master; panics on a finding.
pub fn check(data: &[u8]) {
    let l = live();
    let (Some(&target), Some(&caller)) = (data.first(), data.get(1)) else {
        return;
    };
    let target = target as usize % TARGETS;
    let mut caller = CALLERS[caller as usize % CALLERS.len()];
    let payload = &data[2..];
    if target < GRPC.len()
        && GRPC[target].0.ends_with("/CreateTenant")
        && caller == Caller::Operator
        && CREATED_TENANTS.fetch_add(1, Ordering::Relaxed) >= MAX_CREATED_TENANTS
    {
        caller = Caller::Tenant;
    }
    let token = l.conn.tokens[caller as usize].as_deref();
    let finding = l.runtime.block_on(async {
        match target {
            HTTP_GET => l.conn.get(payload, token).await,
            HTTP_LOGIN => l.conn.login(payload).await,
            t => {
                let (path, shape) = GRPC[t];
                l.conn.grpc(path, shape, token, payload).await
            }
        }
    });
    let panics = std::mem::take(&mut *PANICS.lock().unwrap_or_else(|p| p.into_inner()));
    if !panics.is_empty() {
        panic!("the master panicked: {}", panics.join("; "));
    }
    if let Err(finding) = finding {
        panic!("{finding}");
    }
}

impl Connections {
    async fn grpc(
        &self,
        path: &'static str,
        shape: Shape,
        token: Option<&str>,
        payload: &[u8],
    ) -> Result<(), String> {
        let mut grpc =
            tonic::client::Grpc::new(self.channel.clone()).max_decoding_message_size(64 << 20);
        grpc.ready()
            .await
            .map_err(|e| format!("{path}: the channel to the master broke: {e}"))?;
        let path_q = PathAndQuery::from_static(path);
        let outcome = match shape {
            Shape::Unary => grpc
                .unary(request(payload.to_vec(), token), path_q, RawCodec)
                .await
                .map(drop),
            Shape::ServerStream => {
                match grpc
                    .server_streaming(request(payload.to_vec(), token), path_q, RawCodec)
                    .await
                {
                    Ok(response) => read_some(response.into_inner()).await,
                    Err(status) => Err(status),
                }
            }
            Shape::ClientStream => {
                let messages = tokio_stream::iter(split(payload));
                grpc.client_streaming(request(messages, token), path_q, RawCodec)
                    .await
                    .map(drop)
            }
            Shape::Bidi => {
                let messages = tokio_stream::iter(split(payload));
                match grpc
                    .streaming(request(messages, token), path_q, RawCodec)
                    .await
                {
                    Ok(response) => read_some(response.into_inner()).await,
                    Err(status) => Err(status),
                }
            }
        };
        match outcome {
            // A status the master sent is an answer; one with a source is
            // the client's own report of a broken call.
            Err(status) if std::error::Error::source(&status).is_some() => Err(format!(
                "{path}: the master dropped the call instead of answering: {status}"
            )),
            _ => Ok(()),
        }
    }

    /// GET `/api/v1/` followed by the payload as path and query.
    async fn get(&self, payload: &[u8], token: Option<&str>) -> Result<(), String> {
        let rest: String = String::from_utf8_lossy(payload)
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .collect();
        let Ok(uri) = format!("{}/api/v1/{rest}", self.base).parse::<http::Uri>() else {
            return Ok(()); // the client refuses it; nothing reaches the master
        };
        let mut req = http::Request::get(uri.clone());
        if let Some(t) = token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        self.send(req.body(Full::default()).expect("a request"), &uri)
            .await
    }

    /// POST the sign-in form with the payload as its body.
    async fn login(&self, payload: &[u8]) -> Result<(), String> {
        let uri: http::Uri = format!("{}/login", self.base).parse().expect("a URI");
        let req = http::Request::post(uri.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(Full::new(Bytes::copy_from_slice(payload)))
            .expect("a request");
        self.send(req, &uri).await
    }

    async fn send(&self, req: http::Request<Full<Bytes>>, uri: &http::Uri) -> Result<(), String> {
        let response = self
            .http
            .request(req)
            .await
            .map_err(|e| format!("{uri}: the master dropped the request: {e}"))?;
        // 503 says "try again" (an agent away, a standby): an answer. 500
        // says the master failed at something it should have refused.
        if response.status() == http::StatusCode::INTERNAL_SERVER_ERROR {
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            return Err(format!("{uri}: answered {status}: {body}"));
        }
        // Streams (/api/v1/events) are not read: the answer is the header.
        Ok(())
    }
}

fn request<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(t) = token
        && let Ok(value) = format!("Bearer {t}").parse()
    {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// A client stream's messages: the payload split in two where its first
/// byte says (all of it in one message when it is 255).
fn split(payload: &[u8]) -> Vec<Vec<u8>> {
    match payload.split_first() {
        None => vec![Vec::new()],
        Some((&255, rest)) => vec![rest.to_vec()],
        Some((&at, rest)) => {
            let at = (at as usize).min(rest.len());
            vec![rest[..at].to_vec(), rest[at..].to_vec()]
        }
    }
}

/// Reads a few messages of a stream, then drops it.
async fn read_some(mut stream: tonic::Streaming<Vec<u8>>) -> Result<(), Status> {
    for _ in 0..4 {
        match tokio::time::timeout(STREAM_PATIENCE, stream.message()).await {
            Err(_) | Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(_))) => {}
            Ok(Err(status)) => return Err(status),
        }
    }
    Ok(())
}

/// One input: `target`, `caller`, then the payload.
fn input(target: usize, caller: Caller, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![target as u8, caller as u8];
    out.extend_from_slice(payload);
    out
}

fn target_of(name: &str) -> usize {
    GRPC.iter()
        .position(|(p, _)| p.rsplit('/').next() == Some(name))
        .unwrap_or_else(|| panic!("no method {name}"))
}

/// Starting inputs: every target with an empty message as each caller, and
/// well-formed requests that reach deep (a submission of the uploaded
/// module, an upload, task and job lookups, tenant and role changes, an
/// agent registering), from which a fuzzer mutates.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for target in 0..TARGETS {
        for caller in CALLERS {
            out.push(input(target, caller, &[]));
        }
    }
    let digest = Digest::of(&uploaded_module()).to_string();
    let task = |t: &str| {
        Some(proto::TaskRef {
            task: t.to_string(),
        })
    };
    let grpc = |name: &str, caller: Caller, msg: &dyn Fn() -> Vec<u8>| {
        input(target_of(name), caller, &msg())
    };
    let submit = proto::SubmitRequest {
        framework: String::new(),
        idempotency_key: "k1".into(),
        spec: Some(proto::JobSpec {
            name: "seed".into(),
            task: Some(proto::TaskSpec {
                module_digest: digest.clone(),
                args: vec!["a".into()],
                env: [("K".to_string(), "V".to_string())].into(),
                resources: Some(proto::Resources {
                    cpus_milli: 100,
                    mem_bytes: 16 << 20,
                    ..Default::default()
                }),
                limits: None,
            }),
            max_attempts: 2,
            priority: 1,
        }),
    };
    out.push(grpc("Submit", Caller::Tenant, &|| submit.encode_to_vec()));
    out.push(grpc("Submit", Caller::Operator, &|| submit.encode_to_vec()));
    let mut upload = vec![40u8];
    let messages = put_module_messages(&uploaded_module());
    let header = messages[0].encode_to_vec();
    upload[0] = header.len() as u8;
    upload.extend_from_slice(&header);
    upload.extend_from_slice(&messages[1].encode_to_vec());
    out.push(input(target_of("PutModule"), Caller::Tenant, &upload));
    out.push(grpc("StatModule", Caller::Tenant, &|| {
        proto::StatModuleRequest {
            digest: digest.clone(),
        }
        .encode_to_vec()
    }));
    for name in ["GetTask", "KillTask"] {
        out.push(grpc(name, Caller::Tenant, &|| {
            proto::GetTaskRequest {
                task: task("job-1.1"),
            }
            .encode_to_vec()
        }));
    }
    out.push(grpc("TaskLogs", Caller::Tenant, &|| {
        proto::TaskLogsRequest {
            task: task("jobs/job-1.1"),
            stream: proto::LogStream::Stderr as i32,
            follow: true,
            tail_bytes: 100,
        }
        .encode_to_vec()
    }));
    out.push(grpc("WatchJob", Caller::Tenant, &|| {
        proto::WatchJobRequest {
            job_id: "job-1".into(),
            logs: true,
        }
        .encode_to_vec()
    }));
    out.push(grpc("ListTasks", Caller::Operator, &|| {
        proto::ListTasksRequest {
            state: proto::TaskState::Running as i32,
            framework: "jobs".into(),
            include_queued: true,
            limit: 3,
            page_token: "abc".into(),
            ..Default::default()
        }
        .encode_to_vec()
    }));
    out.push(grpc("CreateTenant", Caller::Operator, &|| {
        proto::CreateTenantRequest {
            name: "acme".into(),
            roles: vec!["analytics".into()],
            limits: Some(proto::TenantLimits {
                max_running_tasks: 3,
                max_requests_per_second: 1000,
                ..Default::default()
            }),
        }
        .encode_to_vec()
    }));
    out.push(grpc("SetTenantLimits", Caller::Operator, &|| {
        proto::SetTenantLimitsRequest {
            name: "fuzz".into(),
            limits: Some(proto::TenantLimits {
                max_task_fuel: 1000,
                ..Default::default()
            }),
        }
        .encode_to_vec()
    }));
    out.push(grpc("SetRole", Caller::Operator, &|| {
        proto::SetRoleRequest {
            name: "fuzz".into(),
            weight: Some(2.0),
            guarantee: Some(proto::Resources {
                cpus_milli: 1000,
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }));
    out.push(grpc("CreateToken", Caller::Operator, &|| {
        proto::CreateTokenRequest {
            tenant: "fuzz".into(),
            kind: proto::TokenKind::Tenant as i32,
            name: "ci".into(),
            ttl_seconds: 60,
        }
        .encode_to_vec()
    }));
    out.push(grpc("ListAudit", Caller::Operator, &|| {
        proto::ListAuditRequest {
            limit: 5,
            tenant: "fuzz".into(),
            action: "job.submit".into(),
            ..Default::default()
        }
        .encode_to_vec()
    }));
    out.push(grpc("SendMessage", Caller::Tenant, &|| {
        proto::SendMessageRequest {
            framework: "jobs".into(),
            body: b"{}".to_vec(),
        }
        .encode_to_vec()
    }));
    out.push(grpc("FetchModule", Caller::Agent, &|| {
        proto::FetchModuleRequest {
            tenant: "fuzz".into(),
            digest: digest.clone(),
        }
        .encode_to_vec()
    }));
    let register = proto::AgentMessage {
        msg: Some(proto::agent_message::Msg::Register(proto::RegisterAgent {
            agent_id: "fuzz-agent".into(),
            hostname: "localhost".into(),
            address: "127.0.0.1:1".into(),
            resources: Some(proto::Resources {
                cpus_milli: 2000,
                mem_bytes: 1 << 30,
                disk_bytes: 1 << 30,
                ..Default::default()
            }),
            ..Default::default()
        })),
    }
    .encode_to_vec();
    let mut attach = vec![255u8];
    attach.extend_from_slice(&register);
    out.push(input(target_of("Attach"), Caller::Agent, &attach));
    for query in [
        "tasks?state=RUNNING&limit=2&page_token=x",
        "tasks/jobs/job-1.1/logs?stream=stdout&tail=10",
        "agents?limit=0",
        "audit?limit=3&before=5",
        "frameworks/jobs",
        "summary",
    ] {
        out.push(input(HTTP_GET, Caller::Operator, query.as_bytes()));
    }
    out.push(input(HTTP_LOGIN, Caller::Nobody, b"token=wsm_abc&next=%2F"));
    out
}
