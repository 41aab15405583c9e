//! One virtio-net interface of the configuration: its tap (by name or as descriptors, one
//! per queue pair of a multiqueue tap) and whether the device is the enhanced one.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// One virtio-net interface on a tap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// Interface ID. Defaults to `net<N>`.
    #[serde(default)]
    pub id: Option<String>,
    /// Tap device name to open; exactly one of `tap` and `fd`.
    #[serde(default)]
    pub tap: Option<String>,
    /// An already-open tap file descriptor inherited from the parent (the daemon).
    #[serde(default)]
    pub fd: Option<i32>,
    /// Guest MAC address, `aa:bb:cc:dd:ee:ff`.
    #[serde(default)]
    pub mac: Option<String>,
    /// Enhanced networking (EC2's ENA): checksum and segmentation offloads, mergeable
    /// receive buffers, EVENT_IDX and multiqueue. Off, the device is today's plain one.
    #[serde(default)]
    pub enhanced: bool,
    /// Queue pairs; above 1 the tap is multiqueue (`IFF_MULTI_QUEUE`) and the device
    /// enhanced. With `tap` the monitor opens that many queues; with `fd` the default is
    /// one plus the length of `queue_fds`, and a given value must match it.
    #[serde(default)]
    pub queue_pairs: Option<u16>,
    /// The descriptors of queue pairs 2 and up of a multiqueue tap whose first queue is
    /// `fd` (the daemon opens every queue and hands each one over).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queue_fds: Vec<i32>,
}

impl NetConfig {
    /// This interface's ID: the configured one, or `net<index>` where `index` is its position
    /// in [`VmConfig::nets`].
    pub fn id_or_default(&self, index: usize) -> String {
        self.id.clone().unwrap_or_else(|| format!("net{index}"))
    }

    /// How many queue pairs (tap queues) the interface has.
    pub fn queue_pairs(&self) -> usize {
        match (self.queue_pairs, self.fd) {
            (Some(n), _) => usize::from(n),
            (None, Some(_)) => 1 + self.queue_fds.len(),
            (None, None) => 1,
        }
    }

    pub(super) fn validate_queues(&self, id: &str) -> Result<(), ConfigError> {
        let wrong = |reason: String| ConfigError::QueuePairs {
            id: id.to_string(),
            reason,
        };
        let pairs = self.queue_pairs();
        if pairs == 0 || pairs > MAX_QUEUE_PAIRS {
            return Err(wrong(format!(
                "{pairs} queue pairs, use 1 to {MAX_QUEUE_PAIRS}"
            )));
        }
        if pairs > 1 && !self.enhanced {
            return Err(wrong(format!(
                "{pairs} queue pairs need enhanced=true (a plain device has one)"
            )));
        }
        if self.tap.is_some() && !self.queue_fds.is_empty() {
            return Err(wrong("queue_fds go with fd, not tap".into()));
        }
        if self.fd.is_some() && pairs != 1 + self.queue_fds.len() {
            return Err(wrong(format!(
                "{pairs} queue pairs but {} descriptors",
                1 + self.queue_fds.len()
            )));
        }
        Ok(())
    }
}

/// The most queue pairs of one interface (the device's limit, one per vCPU up to it).
pub const MAX_QUEUE_PAIRS: usize = 8;
