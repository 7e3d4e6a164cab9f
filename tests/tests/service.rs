//! What the running services promise beyond a single sync: the node
//! reconnects by itself when the hub comes back, deletes are recorded and
//! reversible everywhere, and the hub speaks the standard gRPC health and
//! reflection services over mutual TLS.

use std::time::Duration;

use htx_node::sync_client;
use htx_tests::{TestHub, eventually};
use tokio::sync::watch;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_reconnects_by_itself_when_the_hub_comes_back() {
    let mut hub = TestHub::create();
    let mut node = hub.enroll_node("356", "node-356");
    node.reconfigure(|c| {
        c.retry_min_secs = 1;
        c.retry_max_secs = 2;
        c.sync_interval_secs = 1;
    });
    let (stop, stop_rx) = watch::channel(false);
    let looping = tokio::spawn(sync_client::run_loop(node.node().clone(), stop_rx));
    let id = node.add_coop("13633", "HTX Hạ Long");
    // The hub is down: the loop keeps failing and backing off.
    assert!(
        eventually(Duration::from_secs(5), || !node
            .node()
            .status()
            .sync
            .last_error
            .is_empty())
        .await,
        "the loop tried and recorded why it failed"
    );
    hub.serve().await;
    assert!(
        eventually(Duration::from_secs(15), || hub
            .export()
            .iter()
            .any(|r| r.id == id))
        .await,
        "the node synced on its own once the hub was back"
    );
    assert!(
        eventually(Duration::from_secs(5), || {
            let s = node.node().status().sync;
            s.last_error.is_empty() && !s.last_success.is_empty()
        })
        .await,
        "the node's status shows the sync succeeded"
    );
    let _ = stop.send(true);
    looping.await.expect("the loop stops on shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_is_recorded_and_reversible_on_every_replica() {
    let hub = TestHub::start().await;
    let node = hub.enroll_node("356", "node-356");
    let id = node.add_coop("13633", "HTX Hạ Long");
    node.node()
        .delete(&id, false, "nhập trùng")
        .expect("delete");
    node.sync().await.expect("sync");
    // Gone from exports, kept with who and when.
    assert!(node.export().iter().all(|r| r.id != id));
    assert!(hub.export().iter().all(|r| r.id != id));
    let kept = hub
        .hub()
        .export(true)
        .expect("export")
        .into_iter()
        .find(|r| r.id == id)
        .expect("still stored");
    assert_eq!(kept.text("deleted_by"), Some("node-356"));
    assert!(kept.text("deleted_at").is_some_and(|t| t.starts_with("20")));
    // Restored: back everywhere, with who restored it.
    node.node().delete(&id, true, "xóa nhầm").expect("restore");
    node.sync().await.expect("sync");
    let back = hub
        .export()
        .into_iter()
        .find(|r| r.id == id)
        .expect("restored at the hub");
    assert_eq!(back.text("restored_by"), Some("node-356"));
    assert!(!back.fields.contains_key("deleted_at"));
    assert!(node.node().delete("no-such-id", false, "thử").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_serves_health_and_reflection_to_enrolled_clients_only() {
    let hub = TestHub::start().await;
    let node = hub.enroll_node("356", "node-356");
    let channel = htx_node::sync_client::connect(node.node())
        .await
        .expect("mutual TLS");

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "htx.v1.Sync".into(),
        })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .expect("reflection")
        .into_inner();
    let resp = stream.message().await.expect("reply").expect("one reply");
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("a service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"htx.v1.Sync".to_owned()), "{names:?}");
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );

    // Without a client certificate the handshake itself fails.
    let b = node.node().bundle();
    let anonymous = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&b.ca_cert))
        .domain_name(b.hub_name.clone());
    let refused = async {
        let ch = Endpoint::from_shared(hub.url())
            .ok()?
            .tls_config(anonymous)
            .ok()?
            .connect()
            .await
            .ok()?;
        tonic_health::pb::health_client::HealthClient::new(ch)
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .ok()
    }
    .await;
    assert!(
        refused.is_none(),
        "a client with no certificate must not be served"
    );
}
