//! # htx-proto: the wire
//!
//! Generated from `proto/htx/v1/*.proto`, the one description of what travels
//! between nodes, the hub and their clients. Nothing else in the workspace
//! defines wire types; nothing here knows about storage or Automerge.

pub mod v1 {
    tonic::include_proto!("htx.v1");
}

/// Encoded descriptors of every `htx.v1` service, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("htx_descriptor");
