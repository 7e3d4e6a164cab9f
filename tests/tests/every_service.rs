//! Every service on the hub's sync port answers only an enrolled, unrevoked
//! certificate (progress, health and reflection too, not only sync), and
//! reflection lists exactly the services each port serves.

use std::time::Duration;

use htx_node::sync_client;
use htx_proto::v1 as pb;
use htx_tests::TestHub;
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

/// The services reflection lists on `channel`, sorted.
async fn listed(channel: Channel) -> Result<Vec<String>, tonic::Status> {
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await?
        .into_inner();
    let resp = stream.message().await?.expect("one reply");
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("a service list")
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    Ok(names)
}

async fn health(channel: Channel) -> Result<i32, tonic::Status> {
    Ok(tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner()
        .status)
}

async fn progress(channel: Channel) -> Result<pb::ProgressReply, tonic::Status> {
    Ok(pb::progress_client::ProgressClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .get(pb::ProgressRequest::default())
        .await?
        .into_inner())
}

fn names(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_node_gets_nothing_on_the_sync_port() {
    let hub = TestHub::start().await;
    let node = hub.enroll_node("356", "laptop");
    let open = sync_client::connect(node.node()).await.expect("mutual TLS");

    // Enrolled: every service answers, and reflection lists exactly the
    // sync port's services.
    assert_eq!(
        listed(open.clone()).await.expect("reflection"),
        names(&[
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "htx.v1.Enrolment",
            "htx.v1.Progress",
            "htx.v1.Sync",
        ])
    );
    health(open.clone()).await.expect("health");
    let reply = progress(open.clone()).await.expect("progress");
    assert!(!reply.units.is_empty());

    htx_hub::home::Home::new(hub.dir())
        .revoke("laptop")
        .expect("revoke");
    let fresh = sync_client::connect(node.node())
        .await
        .expect("the handshake itself still passes: same CA, not expired");
    for (what, channel) in [("open connection", open), ("new connection", fresh)] {
        let e = progress(channel.clone())
            .await
            .expect_err("progress refused");
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{what}: {e:?}");
        assert!(
            e.message().contains("laptop") && e.message().contains("revoked"),
            "{what}: {e:?}"
        );
        let e = health(channel.clone()).await.expect_err("health refused");
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{what}: {e:?}");
        let e = listed(channel).await.expect_err("reflection refused");
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{what}: {e:?}");
    }

    // Each refusal is in the audit log under the node's name.
    let refused: Vec<_> = htx_hub::audit::read(hub.dir(), Some("laptop"))
        .expect("audit")
        .into_iter()
        .filter(|e| e["event"] == "refused")
        .collect();
    assert!(refused.len() >= 6, "{refused:#?}");
    assert!(
        refused
            .iter()
            .all(|e| e["reason"].as_str().unwrap_or("").contains("revoked")),
        "{refused:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_exactly_the_services_of_each_port() {
    // The hub's admin port (loopback, no TLS).
    let home = TestHub::create();
    let hub = htx_hub::hub::Hub::open(home.dir()).expect("open hub");
    let sync = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(htx_hub::admin::serve(hub, sync, admin, http, async {
        let _ = stopped.await;
    }));
    lists_exactly(admin_addr, "htx.v1.HubAdmin", "the admin port").await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(20), served)
        .await
        .expect("stops")
        .unwrap()
        .unwrap();

    // The node's local API.
    let node = home.enroll_node("356", "node-356");
    let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_addr = api.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(htx_node::api::serve(node.node().clone(), api, async {
        let _ = stopped.await;
    }));
    lists_exactly(api_addr, "htx.v1.NodeApi", "the node API").await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(20), served)
        .await
        .expect("stops")
        .unwrap()
        .unwrap();
}

/// A loopback port (no TLS) answers health, and its reflection lists
/// exactly health, reflection, Progress and `own`.
async fn lists_exactly(addr: std::net::SocketAddr, own: &str, what: &str) {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        listed(channel.clone()).await.expect("reflection"),
        names(&[
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            own,
            "htx.v1.Progress",
        ]),
        "{what}"
    );
    health(channel)
        .await
        .unwrap_or_else(|e| panic!("health on {what}: {e}"));
}
