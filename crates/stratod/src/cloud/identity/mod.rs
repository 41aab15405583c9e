//! Who calls: the EC2 Query API's access keys (and, with them, the secrets SigV4 verifies
//! against), and the client tokens that make calls idempotent. The gRPC API's bearer
//! tokens stay in the configuration.

pub mod access_keys;
pub mod client_tokens;
