//! Who calls: the EC2 Query API's access keys (and, with them, the secrets SigV4 verifies
//! against). The gRPC API's bearer tokens stay in the configuration.

pub mod access_keys;
