//! Networking (the API's `Vpcs`, `NetworkInterfaces`, `SecurityGroups` and `Addresses`
//! services): VPCs and subnets and their bridges, network interfaces and their taps,
//! security groups and the host firewall that enforces them, public and Elastic IPs and the
//! NAT table; `overlay` joins a VPC's bridges on several hosts by VXLAN; `plumbing` holds what they share (the default VPC, CIDR arithmetic, taps).

pub mod addresses;
pub mod applies;
pub mod dhcp;
pub mod dns;
pub mod firewall;
pub mod ipv6;
pub mod ipv6_router;
pub mod network_interfaces;
pub mod overlay;
pub mod plumbing;
pub mod private_ips;
pub mod region;
pub mod region_default;
pub mod region_holds;
pub mod security_groups;
pub mod shared_addresses;
pub mod vpcs;
