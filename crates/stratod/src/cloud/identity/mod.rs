//! Who calls: the EC2 Query API's access keys (and, with them, the secrets SigV4 verifies
//! against), and the client tokens that make calls idempotent. The gRPC API's bearer
//! tokens stay in the configuration. Instance roles and profiles live here too.

pub mod access_keys;
pub mod associations;
pub mod client_tokens;
pub mod roles;
pub mod sessions;
