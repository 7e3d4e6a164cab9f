//! # The node's local API (gRPC, loopback)
//!
//! A thin layer: converts between wire and domain types and calls [`Node`].
//! Also serves the standard health service and reflection.

use htx_core::wire;
use htx_proto::v1::{self as pb, node_api_server::NodeApiServer};
use prost::Message;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

use crate::node::{Node, NodeError, Unreadable};
use crate::sync_client::{self, SyncError};

pub struct NodeApiService {
    node: Node,
}

impl From<NodeError> for Status {
    fn from(e: NodeError) -> Status {
        match e {
            NodeError::Invalid(_) | NodeError::BadRows(_) => {
                Status::invalid_argument(e.to_string())
            }
            NodeError::StoreUnavailable(_) => Status::unavailable(e.to_string()),
            // The message says what reading the store back showed.
            NodeError::CommitFailed { .. } => Status::data_loss(e.to_string()),
            NodeError::NotFound(_) => Status::not_found(e.to_string()),
            NodeError::Reason => Status::invalid_argument(e.to_string()),
            NodeError::Settled => Status::failed_precondition(e.to_string()),
            NodeError::Setup(_) => Status::invalid_argument(e.to_string()),
            _ => Status::internal(e.to_string()),
        }
    }
}

impl From<SyncError> for Status {
    fn from(e: SyncError) -> Status {
        match e {
            SyncError::Unreachable { .. } => Status::unavailable(e.to_string()),
            SyncError::Node(n) => n.into(),
            other => Status::failed_precondition(other.to_string()),
        }
    }
}

async fn blocking<T: Send + 'static>(
    node: &Node,
    f: impl FnOnce(Node) -> Result<T, NodeError> + Send + 'static,
) -> Result<T, Status> {
    let node = node.clone();
    tokio::task::spawn_blocking(move || f(node))
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(Status::from)
}

#[tonic::async_trait]
impl pb::node_api_server::NodeApi for NodeApiService {
    async fn write(
        &self,
        req: Request<pb::WriteRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        let records = req
            .into_inner()
            .records
            .iter()
            .map(wire::record_from_wire)
            .collect();
        let ids = blocking(&self.node, move |n| n.write(records)).await?;
        self.node.wake().notify_one();
        Ok(Response::new(pb::WriteReply { ids }))
    }

    async fn import(
        &self,
        req: Request<Streaming<pb::ImportChunk>>,
    ) -> Result<Response<pb::ImportReply>, Status> {
        let mut stream = req.into_inner();
        let (mut rows, mut unreadable, mut bytes) = (Vec::new(), Vec::new(), 0usize);
        // Everything is gathered before anything is written: a stream cut
        // half-way ends here with an error, and the store is untouched.
        while let Some(chunk) = stream.message().await? {
            bytes += chunk.encoded_len();
            if bytes > crate::cli::MAX_IMPORT_BYTES as usize {
                return Err(Status::resource_exhausted(format!(
                    "an import may hold at most {} MiB; split the file / tệp nhập quá lớn, hãy chia nhỏ",
                    crate::cli::MAX_IMPORT_BYTES >> 20
                )));
            }
            for r in chunk.rows {
                let record = r
                    .record
                    .as_ref()
                    .map(wire::record_from_wire)
                    .unwrap_or_default();
                rows.push((r.row, record));
            }
            unreadable.extend(chunk.unreadable.into_iter().map(|u| Unreadable {
                row: u.row,
                id: u.id,
                reason: u.reason,
            }));
        }
        let imported = blocking(&self.node, move |n| n.import(rows, unreadable)).await?;
        self.node.wake().notify_one();
        Ok(Response::new(pb::ImportReply {
            imported: imported as u64,
        }))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        let req = req.into_inner();
        let id = req.id.clone();
        blocking(&self.node, move |n| {
            n.delete(&req.id, req.restore, &req.reason)
        })
        .await?;
        self.node.wake().notify_one();
        Ok(Response::new(pb::WriteReply { ids: vec![id] }))
    }

    async fn export(
        &self,
        req: Request<pb::ExportRequest>,
    ) -> Result<Response<pb::ExportReply>, Status> {
        let all = req.into_inner().include_deleted;
        let records = blocking(&self.node, move |n| n.export(all)).await?;
        Ok(Response::new(pb::ExportReply {
            records: records.iter().map(wire::record_to_wire).collect(),
        }))
    }

    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::NodeStatus>, Status> {
        let s = blocking(&self.node, |n| Ok(n.status())).await?;
        Ok(Response::new(pb::NodeStatus {
            node: s.node,
            unit: s.unit,
            hub: s.hub,
            documents: s.documents as u32,
            records: s.records as u32,
            documents_not_at_hub: s.documents_not_at_hub as u32,
            last_attempt: s.sync.last_attempt,
            last_success: s.sync.last_success,
            last_error: s.sync.last_error,
            bytes_sent: s.sync.bytes_sent,
            bytes_received: s.sync.bytes_received,
            refused_records: s.sync.refused_records,
            damaged_documents: s.damaged_documents,
        }))
    }

    type BackupStream = tokio_stream::Iter<std::vec::IntoIter<Result<pb::BackupChunk, Status>>>;

    async fn backup(
        &self,
        _: Request<pb::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        // Written inside the node directory (the only place the service may
        // write), read back, removed.
        let file = self
            .node
            .dir()
            .join(format!("backup-{}-{nanos}.redb", std::process::id()));
        let chunks = blocking(&self.node, move |n| {
            let copied = n.backup(&file);
            let chunks = copied.and_then(|c| {
                tracing::info!(entries = c.entries, bytes = c.bytes, "backup taken");
                wire::backup_chunks(&file, c.entries as u64).map_err(|e| NodeError::Store(e.into()))
            });
            let _ = std::fs::remove_file(&file);
            chunks
        })
        .await?;
        Ok(Response::new(tokio_stream::iter(
            chunks.into_iter().map(Ok).collect::<Vec<_>>(),
        )))
    }

    async fn sync_now(
        &self,
        _: Request<pb::SyncNowRequest>,
    ) -> Result<Response<pb::SyncReport>, Status> {
        let r = sync_client::sync_once(&self.node).await?;
        Ok(Response::new(r.into()))
    }
}

#[tonic::async_trait]
impl pb::progress_server::Progress for NodeApiService {
    async fn get(
        &self,
        req: Request<pb::ProgressRequest>,
    ) -> Result<Response<pb::ProgressReply>, Status> {
        let r = req.into_inner();
        let reply = blocking(&self.node, move |n| {
            n.progress(Some(&r.unit), Some(&r.as_of), Some(&r.hierarchy))
        })
        .await?;
        Ok(Response::new(reply))
    }
}

/// Serves the local API on `listener` until `shutdown` resolves.
pub async fn serve(
    node: Node,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<NodeApiServer<NodeApiService>>()
        .await;
    // Reflection lists exactly what this port serves.
    use tonic::server::NamedService;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(htx_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .with_service_name(
            <pb::progress_server::ProgressServer<NodeApiService> as NamedService>::NAME,
        )
        .with_service_name(<NodeApiServer<NodeApiService> as NamedService>::NAME)
        .build_v1()?;
    tonic::transport::Server::builder()
        .add_service(health)
        .add_service(reflection)
        .add_service(pb::progress_server::ProgressServer::new(NodeApiService {
            node: node.clone(),
        }))
        .add_service(NodeApiServer::new(NodeApiService { node }))
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await?;
    Ok(())
}
