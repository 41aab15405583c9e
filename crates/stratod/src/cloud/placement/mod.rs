//! Placement and regions (the API's `PlacementGroups` and `Regions` services): where an
//! instance runs. The region and availability zones from the config, placement groups, and
//! the scheduler that picks each instance's rack and partition.

pub mod groups;
pub mod hosts;
pub mod regions;
pub mod scheduler;
