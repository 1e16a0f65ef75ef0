//! Every gRPC method of both services (read from the `.proto` files, so a
//! new method cannot be forgotten) refuses a call without a token, with a
//! revoked or an expired token, and with the wrong kind of token (an
//! agent's on the client API, a user's on the agent protocol), before any
//! handler runs.

use std::time::Duration;

use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic_prost::ProstCodec;
use wasmesos_api::proto::{self, CreateTokenRequest, RevokeTokenRequest, TokenKind};
use wasmesos_api::{Bearer, proto::master_client::MasterClient};
use wasmesos_master::MasterConfig;

/// `/wasmesos.v1.SERVICE/METHOD` for every rpc of `service` in `file`.
fn methods(file: &str, service: &str) -> Vec<String> {
    wasmesos_testkit::rpcs(file, service)
        .into_iter()
        .map(|r| r.path)
        .collect()
}

/// Calls `path` with an empty message and `token`; the code it fails with.
async fn call(channel: &Channel, path: &str, token: Option<&str>) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(proto::GetStatusRequest {});
    if let Some(t) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let codec = ProstCodec::<proto::GetStatusRequest, proto::GetStatusRequest>::default();
    match grpc
        .unary(
            request,
            PathAndQuery::try_from(path.to_string()).unwrap(),
            codec,
        )
        .await
    {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_refuses_missing_revoked_expired_and_wrong_kind_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = MasterConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf());
    cfg.builtin_jobs = false;
    let master = wasmesos_master::start(cfg).await.expect("master starts");
    let url = format!("http://{}", master.addr);
    let channel = Endpoint::from_shared(url).unwrap().connect().await.unwrap();
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let (admin, agent) = (read("admin.token"), read("agent.token"));
    let mut client = MasterClient::new(Bearer::new(Some(&admin)).unwrap().wrap(channel.clone()));
    let mut issue = async |ttl_seconds| {
        client
            .create_token(CreateTokenRequest {
                kind: TokenKind::Operator as i32,
                ttl_seconds,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    };
    let revoked = issue(0).await;
    let expiring = issue(1).await;
    client
        .revoke_token(RevokeTokenRequest {
            id: revoked.token.unwrap().id,
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let client_api = methods("master.proto", "Master");
    let agent_api = methods("agent.proto", "AgentLink");
    for path in client_api.iter().chain(&agent_api) {
        for (what, token) in [
            ("no token", None),
            ("a malformed token", Some("Bearer-ish")),
            ("a revoked token", Some(revoked.secret.as_str())),
            ("an expired token", Some(expiring.secret.as_str())),
        ] {
            assert_eq!(
                call(&channel, path, token).await,
                Code::Unauthenticated,
                "{path} with {what}"
            );
        }
    }
    for path in &client_api {
        assert_eq!(
            call(&channel, path, Some(agent.trim())).await,
            Code::PermissionDenied,
            "{path} as an agent"
        );
    }
    for path in &agent_api {
        assert_eq!(
            call(&channel, path, Some(admin.trim())).await,
            Code::PermissionDenied,
            "{path} as an operator"
        );
    }
    // The admin token itself works.
    assert_ne!(
        call(
            &channel,
            "/wasmesos.v1.Master/GetStatus",
            Some(admin.trim())
        )
        .await,
        Code::Unauthenticated
    );
    drop(client);
    master.shutdown();
    let _ = master.wait().await;
}
