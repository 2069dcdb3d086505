//! The `aigw.v1` protobuf messages and the `ChatService` gRPC client and server stubs,
//! generated at build time from `proto/aigw/v1/chat.proto`.
#![forbid(unsafe_code)]
#![allow(missing_docs)] // generated code carries the .proto comments, not rustdoc on every item

/// `aigw.v1`: chat messages and the `ChatService` stubs.
pub mod v1 {
    tonic::include_proto!("aigw.v1");
}

/// The encoded file descriptor set of `aigw.v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("aigw_descriptor");
