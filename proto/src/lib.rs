//! The v2x.v1 wire protocol.
//!
//! - [`wire`]: the prost types generated from `proto/v2x/v1/*.proto`.
//! - [`FILE_DESCRIPTOR_SET`]: the serialized schemas, embedded in every replay log.

/// Generated protobuf types of package `v2x.v1`.
#[allow(missing_docs, clippy::all)]
pub mod wire {
    include!(concat!(env!("OUT_DIR"), "/v2x.v1.rs"));
}

/// The serialized `google.protobuf.FileDescriptorSet` of every v2x.v1 schema, imports included.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/v2x_v1_descriptor.bin"));
