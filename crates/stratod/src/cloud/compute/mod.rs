//! Compute (the API's `Compute`, `KeyPairs` and `LaunchTemplates` services): instances from
//! RunInstances to termination, what boots them and what the daemon adopts again on start,
//! their metadata options, the key pairs and launch templates a launch draws on.

pub mod boot;
pub mod console;
pub mod describe;
pub mod instances;
pub mod key_pairs;
pub mod launch;
pub mod launch_templates;
pub mod lifecycle;
pub mod metadata;
pub mod metadata_source;
pub mod restore;
pub mod status;
pub mod timeline;
