//! A real master (embedded store, no built-in framework) driven over gRPC:
//! role settings and agent draining are checked, refused when wrong, and
//! still there after a restart on the same data directory.

use std::collections::HashMap;
use std::path::Path;

use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Code;
use wasmesos_api::proto::agent_link_client::AgentLinkClient;
use wasmesos_api::proto::master_client::MasterClient;
use wasmesos_api::proto::{
    self, AgentMessage, DrainAgentRequest, ListAgentsRequest, ListRolesRequest, RegisterAgent,
    ResourceLimits, SetRoleRequest, UndrainAgentRequest, agent_message, master_message,
};
use wasmesos_api::{AuthedChannel, Bearer, Resources, parse_resources};
use wasmesos_master::{MasterConfig, RunningMaster};

async fn start(dir: &Path) -> (RunningMaster, MasterClient<AuthedChannel>) {
    let mut cfg = MasterConfig::new("127.0.0.1:0".parse().unwrap(), dir.to_path_buf());
    cfg.builtin_jobs = false;
    // A stopped master's store closes once its last connection task ends.
    let mut tries = 0;
    let master = loop {
        match wasmesos_master::start(cfg.clone()).await {
            Ok(master) => break master,
            Err(e) if tries < 100 && e.to_string().contains("in use") => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("master does not start: {e}"),
        }
    };
    let client = MasterClient::new(channel(master.addr, &dir.join("admin.token")).await);
    (master, client)
}

/// A channel to `addr` whose calls carry the token in `token_file` (a
/// master writes its admin and agent tokens into its data dir).
async fn channel(addr: std::net::SocketAddr, token_file: &Path) -> AuthedChannel {
    let token = std::fs::read_to_string(token_file).expect("the master wrote its token");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("client connects");
    Bearer::new(Some(&token)).unwrap().wrap(channel)
}

/// Stops `master`; `client` goes first, so no connection holds it open.
async fn stop(master: RunningMaster, client: MasterClient<AuthedChannel>) {
    drop(client);
    master.shutdown();
    master.wait().await.expect("master stops cleanly");
}

fn res(text: &str) -> Option<proto::Resources> {
    Some((&parse_resources(text).unwrap()).into())
}

async fn role(client: &mut MasterClient<AuthedChannel>, name: &str) -> Option<proto::Role> {
    let roles = client.list_roles(ListRolesRequest {}).await.unwrap();
    roles
        .into_inner()
        .roles
        .into_iter()
        .find(|r| r.name == name)
}

/// An agent registered by hand: attached while this lives.
#[derive(Debug)]
struct FakeAgent {
    id: String,
    _tx: mpsc::UnboundedSender<AgentMessage>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Registers a fake agent offering `total`, reserving `reserved`.
async fn attach(
    dir: &Path,
    addr: std::net::SocketAddr,
    total: &str,
    reserved: &[(&str, &str)],
) -> Result<FakeAgent, tonic::Status> {
    let mut link = AgentLinkClient::new(channel(addr, &dir.join("agent.token")).await);
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(AgentMessage {
        msg: Some(agent_message::Msg::Register(RegisterAgent {
            hostname: "fake".into(),
            address: "http://127.0.0.1:1".into(),
            resources: res(total),
            reserved: reserved
                .iter()
                .map(|(role, r)| (role.to_string(), res(r).unwrap()))
                .collect::<HashMap<_, _>>(),
            ..Default::default()
        })),
    })
    .unwrap();
    let mut inbound = link
        .attach(UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    let first = inbound.message().await?.expect("a first message");
    let Some(master_message::Msg::Registered(registered)) = first.msg else {
        panic!("expected a registration, got {first:?}");
    };
    // The master keeps the agent while the stream is open.
    let reader = tokio::spawn(async move { while let Ok(Some(_)) = inbound.message().await {} });
    Ok(FakeAgent {
        id: registered.agent_id,
        _tx: tx,
        reader,
    })
}

#[tokio::test]
async fn roles_are_checked_set_in_parts_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (master, mut client) = start(dir.path()).await;

    let set = client
        .set_role(SetRoleRequest {
            name: "batch".into(),
            weight: Some(2.0),
            guarantee: res("cpus:1,mem:1GiB"),
            limit: Some(ResourceLimits {
                cpus_milli: Some(4000),
                mem_bytes: Some(8 << 30),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("a valid role is set")
        .into_inner();
    assert_eq!(set.weight, 2.0);
    assert!(set.configured);

    let refused = |r: Result<tonic::Response<proto::Role>, tonic::Status>| {
        let status = r.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        status.message().to_string()
    };
    let negative = SetRoleRequest {
        name: "batch".into(),
        weight: Some(-1.0),
        ..Default::default()
    };
    assert!(refused(client.set_role(negative).await).contains("positive"));
    let above = SetRoleRequest {
        name: "batch".into(),
        guarantee: res("cpus:8"),
        ..Default::default()
    };
    assert!(refused(client.set_role(above).await).contains("above the limit"));
    let typo = SetRoleRequest {
        name: "batch".into(),
        guarantee: res("cpu:1"),
        ..Default::default()
    };
    let message = refused(client.set_role(typo).await);
    assert!(message.contains("unknown resource 'cpu'"), "{message}");
    let bad_name = SetRoleRequest {
        name: "no spaces".into(),
        weight: Some(1.0),
        ..Default::default()
    };
    refused(client.set_role(bad_name).await);

    // Only what is given changes.
    let reweighed = SetRoleRequest {
        name: "batch".into(),
        weight: Some(3.0),
        ..Default::default()
    };
    let r = client.set_role(reweighed).await.unwrap().into_inner();
    assert_eq!(r.weight, 3.0);
    assert_eq!(
        Resources::from(r.guarantee.as_ref()),
        parse_resources("cpus:1,mem:1GiB").unwrap()
    );
    assert_eq!(r.limit.as_ref().and_then(|l| l.cpus_milli), Some(4000));

    stop(master, client).await;
    let (master, mut client) = start(dir.path()).await;
    let r = role(&mut client, "batch").await.expect("recovered");
    assert_eq!(r.weight, 3.0);
    assert_eq!(r.limit.as_ref().and_then(|l| l.mem_bytes), Some(8 << 30));

    let unlimited = SetRoleRequest {
        name: "batch".into(),
        clear_limit: true,
        ..Default::default()
    };
    let r = client.set_role(unlimited).await.unwrap().into_inner();
    assert!(r.limit.is_none());
    stop(master, client).await;
}

#[tokio::test]
async fn an_agent_drains_undrains_and_stays_drained_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (master, mut client) = start(dir.path()).await;

    let too_much = attach(
        dir.path(),
        master.addr,
        "cpus:2,mem:2GiB",
        &[("db", "cpus:4")],
    )
    .await;
    let status = too_much.expect_err("reserving more than it has is refused");
    assert!(status.message().contains("reserves"), "{status:?}");

    let fake = attach(
        dir.path(),
        master.addr,
        "cpus:2,mem:2GiB",
        &[("db", "cpus:1,mem:1GiB")],
    )
    .await
    .expect("attached");
    let agent = fake.id.clone();
    let drained = client
        .drain_agent(DrainAgentRequest {
            agent_id: agent.clone(),
            deadline_ms: 600_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(drained.draining);
    assert!(drained.drain_deadline_ms > wasmesos_api::now_ms());
    assert_eq!(
        Resources::from(drained.reserved.get("db")),
        parse_resources("cpus:1,mem:1GiB").unwrap()
    );
    let missing = client
        .drain_agent(DrainAgentRequest {
            agent_id: "agent-99".into(),
            deadline_ms: 0,
        })
        .await
        .expect_err("no such agent");
    assert_eq!(missing.code(), Code::NotFound);

    drop(fake);
    stop(master, client).await;
    let (master, mut client) = start(dir.path()).await;
    let agents = client.list_agents(ListAgentsRequest {}).await.unwrap();
    let listed = agents.into_inner().agents;
    let after = listed
        .iter()
        .find(|a| a.agent_id == agent)
        .expect("recovered");
    assert!(after.draining, "{after:?}");
    assert_eq!(after.drain_deadline_ms, drained.drain_deadline_ms);

    let undrained = client
        .undrain_agent(UndrainAgentRequest {
            agent_id: agent.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!undrained.draining);
    assert_eq!(undrained.drain_deadline_ms, 0);
    stop(master, client).await;
}
