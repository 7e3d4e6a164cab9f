//! # The hub's administration API (gRPC, loopback), and its servers
//!
//! [`serve`] runs both of the hub's servers: the sync endpoint over mutual
//! TLS for nodes, and this API on loopback for the `htx-hub` commands.

use axum::serve::ListenerExt;
use htx_core::wire;
use htx_proto::v1::{
    self as pb, enrolment_server::EnrolmentServer, hub_admin_server::HubAdminServer,
    progress_server::ProgressServer, sync_server::SyncServer,
};
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::hub::Hub;
use crate::sync_service::{EnrolmentService, SyncService};

/// Every listener answers at once: no reply waits for a delayed ACK
/// (the sync port sets it in `crate::tls`).
fn nodelay(tcp: &mut tokio::net::TcpStream) {
    let _ = tcp.set_nodelay(true);
}

/// A node as the admin API (and `htx-hub nodes` on a stopped hub) shows it.
pub fn node_info(v: crate::hub::NodeView, now: time::OffsetDateTime) -> pb::NodeInfo {
    pb::NodeInfo {
        state: v.enrolment.state(now).label().to_owned(),
        expires_at: v.enrolment.expires_at,
        software: v.stats.software,
        protocol: v.stats.protocol,
        name: v.enrolment.name,
        unit: v.enrolment.unit,
        enrolled_at: v.enrolment.enrolled_at,
        last_seen: v.stats.last_seen,
        last_sync: v.stats.last_sync,
        documents: v.documents as u32,
        documents_behind: v.documents_behind as u32,
        bytes_received: v.stats.bytes_received,
        bytes_sent: v.stats.bytes_sent,
        changes_received: v.stats.changes_received,
        changes_sent: v.stats.changes_sent,
        sessions: v.stats.sessions,
        last_error: v.stats.last_error,
        recovered_changes: v.stats.recovered_changes,
        last_recovery: v.stats.last_recovery,
    }
}

pub struct AdminService {
    hub: Hub,
}

#[tonic::async_trait]
impl pb::hub_admin_server::HubAdmin for AdminService {
    async fn nodes(
        &self,
        _: Request<pb::NodesRequest>,
    ) -> Result<Response<pb::NodesReply>, Status> {
        let hub = self.hub.clone();
        let views = tokio::task::spawn_blocking(move || hub.nodes())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::internal(e.to_string()))?;
        let now = time::OffsetDateTime::now_utc();
        let nodes = views.into_iter().map(|v| node_info(v, now)).collect();
        Ok(Response::new(pb::NodesReply { nodes }))
    }

    async fn export(
        &self,
        req: Request<pb::ExportRequest>,
    ) -> Result<Response<pb::ExportReply>, Status> {
        let hub = self.hub.clone();
        let all = req.into_inner().include_deleted;
        let records = tokio::task::spawn_blocking(move || hub.export(all))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::ExportReply {
            records: records.iter().map(wire::record_to_wire).collect(),
        }))
    }

    type BackupStream = tokio_stream::Iter<std::vec::IntoIter<Result<pb::BackupChunk, Status>>>;

    async fn backup(
        &self,
        _: Request<pb::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        let hub = self.hub.clone();
        let file = backup_file(&hub.home().dir);
        let chunks = tokio::task::spawn_blocking(move || {
            let copied = hub.backup(&file).map_err(|e| e.to_string());
            let chunks = copied.and_then(|c| {
                tracing::info!(entries = c.entries, bytes = c.bytes, "backup taken");
                wire::backup_chunks(&file, c.entries as u64).map_err(|e| e.to_string())
            });
            let _ = std::fs::remove_file(&file);
            chunks
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(Status::internal)?;
        Ok(Response::new(tokio_stream::iter(
            chunks.into_iter().map(Ok).collect::<Vec<_>>(),
        )))
    }
}

/// Where a backup is written before it is streamed: inside the home
/// directory (the only place the service may write), removed once read.
pub fn backup_file(dir: &std::path::Path) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    dir.join(format!("backup-{}-{nanos}.redb", std::process::id()))
}

/// Progress over gRPC: a thin conversion of [`crate::hub::Hub::progress`].
#[derive(Clone)]
pub struct ProgressService {
    hub: Hub,
}

#[tonic::async_trait]
impl pb::progress_server::Progress for ProgressService {
    async fn get(
        &self,
        req: Request<pb::ProgressRequest>,
    ) -> Result<Response<pb::ProgressReply>, Status> {
        let r = req.into_inner();
        let query = crate::progress::Query {
            unit: Some(r.unit),
            as_of: Some(r.as_of),
            hierarchy: Some(r.hierarchy),
            plan: Some(r.plan),
        };
        let hub = self.hub.clone();
        let view = tokio::task::spawn_blocking(move || hub.progress(&query))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(view))
    }
}

/// The reflection service for a port serving `services`, besides health
/// and reflection themselves (served on every port).
pub fn reflection(
    services: &[&str],
) -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::Error,
> {
    let mut b = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(htx_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection");
    for s in services {
        b = b.with_service_name(*s);
    }
    b.build_v1()
}

/// Serves the sync endpoint (mutual TLS) on `sync`, the admin API on
/// `admin` and progress over HTTP on `http`, until `shutdown` resolves.
pub async fn serve(
    hub: Hub,
    sync: TcpListener,
    admin: TcpListener,
    http: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (cert, key) = hub.home().server_identity()?;
    let tls =
        crate::tls::server_config(&hub.home().ca_pem()?, &cert, &key, hub.home().dir.clone())?;
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<SyncServer<SyncService>>()
        .await;
    // Reflection lists what each port serves, nothing more.
    let sync_reflection = reflection(&[
        <ProgressServer<ProgressService> as NamedService>::NAME,
        <EnrolmentServer<EnrolmentService> as NamedService>::NAME,
        <SyncServer<SyncService> as NamedService>::NAME,
    ])?;
    let admin_reflection = reflection(&[
        <ProgressServer<ProgressService> as NamedService>::NAME,
        <HubAdminServer<AdminService> as NamedService>::NAME,
    ])?;
    // Every service of the sync port (health and reflection included)
    // answers only an enrolled, unrevoked certificate: checked once, here,
    // in front of all of them, so no service can forget it.
    let enrolled_only = tonic::service::InterceptorLayer::new({
        let hub = hub.clone();
        move |req: Request<()>| crate::sync_service::identify(&hub, &req).map(|_| req)
    });
    let max = hub.config().max_message_bytes;
    let trim = std::time::Duration::from_secs(hub.config().memory_trim_secs);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let mut stop_admin = stop_rx.clone();
    let mut stop_http = stop_rx.clone();
    let progress = ProgressService { hub: hub.clone() };
    crate::telemetry::install();
    let routes = crate::http::router(hub.clone()).merge(crate::telemetry::router(hub.clone()));
    let web = axum::serve(http.tap_io(nodelay), routes).with_graceful_shutdown(async move {
        let _ = stop_http.changed().await;
    });
    let sync_server = tonic::transport::Server::builder()
        .max_concurrent_streams(Some(hub.config().max_streams_per_connection))
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .layer(enrolled_only)
        .add_service(health.clone())
        .add_service(sync_reflection)
        .add_service(ProgressServer::new(progress.clone()))
        .add_service(EnrolmentServer::new(EnrolmentService::new(hub.clone())))
        .add_service(
            SyncServer::new(SyncService::new(hub.clone()))
                .max_decoding_message_size(max)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip),
        )
        .serve_with_incoming_shutdown(crate::tls::incoming(sync, tls), async move {
            let mut rx = stop_rx;
            let _ = rx.changed().await;
        });
    let admin_server = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(admin_reflection)
        .add_service(ProgressServer::new(progress))
        .add_service(
            HubAdminServer::new(AdminService { hub }).max_encoding_message_size(usize::MAX),
        )
        .serve_with_incoming_shutdown(
            TcpIncoming::from(admin).with_nodelay(Some(true)),
            async move {
                let _ = stop_admin.changed().await;
            },
        );
    let trimmer = tokio::spawn(crate::memory::give_back_every(trim, stop_tx.subscribe()));
    let stopper = tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(());
    });
    let (a, b, c) = tokio::join!(sync_server, admin_server, web);
    stopper.abort();
    trimmer.abort();
    a?;
    b?;
    c?;
    Ok(())
}
