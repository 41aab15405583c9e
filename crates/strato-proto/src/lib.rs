//! strato's public gRPC API: the messages, clients and servers generated from
//! `proto/strato/v1`, and the descriptor set for server reflection.

#![allow(
    missing_docs,
    clippy::doc_lazy_continuation,
    clippy::large_enum_variant
)]

/// Version 1 of the API.
pub mod v1 {
    tonic::include_proto!("strato.v1");

    /// Encoded `FileDescriptorSet` of the API, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("strato_v1_descriptor");
}

/// EC2 instance state codes.
pub mod state {
    /// pending
    pub const PENDING: i32 = 0;
    /// running
    pub const RUNNING: i32 = 16;
    /// shutting-down
    pub const SHUTTING_DOWN: i32 = 32;
    /// terminated
    pub const TERMINATED: i32 = 48;
    /// stopping
    pub const STOPPING: i32 = 64;
    /// stopped
    pub const STOPPED: i32 = 80;
}

/// The response metadata key carrying the EC2 error code.
pub const ERROR_CODE_METADATA: &str = "ec2-error-code";
