//! Images and storage (the API's `Images` and `Volumes` services): AMIs (registration,
//! permissions, CreateImage, CopyImage from a peer region) and EBS-style volumes and
//! snapshots, the files under the data directory behind them.

pub mod consistent;
pub mod copy;
pub mod describe;
pub mod images;
pub mod pull;
pub mod shared_images;
pub mod source;
pub mod space;
pub mod sweep;
pub mod volumes;
