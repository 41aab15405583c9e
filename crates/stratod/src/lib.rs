//! `stratod`, strato's control daemon: the EC2-style gRPC API over an embedded SQLite state
//! store, supervising one `strato-vmm` process per running instance, with status checks,
//! consoles and metering. `../shared/DESIGN.md` has the architecture; `docs/daemon.md` the
//! user's view.

pub mod api;
pub mod catalog;
pub mod cloud;
pub mod cluster;
pub mod config;
pub mod datadir;
pub mod db;
pub mod dhcp;
pub mod dhcp6;
pub mod error;
pub mod handoff;
pub mod ids;
pub mod imds;
pub mod lab;
pub mod lifecycle;
pub mod metering;
pub mod metrics;
pub mod netns_pool;
pub mod prober;
pub mod query;
pub mod server;
pub mod states;
pub mod storage;
pub mod supervisor;
pub mod time;
pub mod tls;
pub mod web;
