//! The wire codecs stratod runs on what guests send it, as pure functions over bytes: the
//! metadata service's HTTP/1.x request heads ([`imds_http`]), DHCP packets ([`dhcp`]),
//! DHCPv6 messages ([`dhcp6`]) and router solicitations and advertisements ([`ndp`]), and the neighbour solicitations
//! and advertisements of the instance status check ([`neighbour`]).
//! They live apart from the daemon so that the fuzz targets (`fuzz/`) build them without
//! the daemon's dependencies; stratod re-exports them where they always were
//! (`stratod::imds::http`, `stratod::dhcp::packet`).

pub mod dhcp;
pub mod dhcp6;
#[cfg(any(test, feature = "fuzzgen"))]
pub mod fuzzgen;
pub mod imds_http;
pub mod ndp;
pub mod neighbour;

// The property tests bound what each case holds: count allocations.
#[cfg(test)]
#[global_allocator]
static METER: strato_fuzzgen::alloc::Meter = strato_fuzzgen::alloc::Meter;
