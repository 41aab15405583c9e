//! Device IDs that the daemon and the monitor both use: the daemon names drives and
//! interfaces in the config it writes and in its control requests; the monitor shows them
//! in its counters and as the virtio-blk serial number (at most
//! [`crate::config::MAX_ID_LEN`] bytes).

/// The ID of the read-only config drive (user data and meta-data).
pub const CONFIG_DRIVE: &str = "config-drive";

/// The drive ID of an EBS-style volume: its volume ID without the dash
/// (`vol-0123…` → `vol0123…`, 21 → 20 bytes).
pub fn volume_drive(volume_id: &str) -> String {
    volume_id.replace('-', "")
}

/// The ID of empty hot-attach slot `k`.
pub fn hot_slot(k: usize) -> String {
    format!("slot{k}")
}

/// The first of `count` hot-attach slots that is not in `used`.
pub fn free_hot_slot<S: AsRef<str>>(count: usize, used: &[S]) -> Option<String> {
    (0..count)
        .map(hot_slot)
        .find(|s| !used.iter().any(|u| u.as_ref() == s))
}

/// The ID of network interface `k` (the guest sees it as `eth<k>`).
pub fn net(k: usize) -> String {
    format!("eth{k}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::is_valid_id;

    #[test]
    fn names_are_valid_monitor_ids() {
        let vol = volume_drive("vol-0123456789abcdef0");
        assert_eq!(vol, "vol0123456789abcdef0");
        for id in [vol, hot_slot(7), net(3), CONFIG_DRIVE.to_string()] {
            assert!(is_valid_id(&id), "{id}");
        }
    }

    #[test]
    fn free_slot_skips_used_ones() {
        assert_eq!(free_hot_slot::<&str>(3, &[]), Some("slot0".into()));
        assert_eq!(free_hot_slot(3, &["slot0", "slot2"]), Some("slot1".into()));
        assert_eq!(free_hot_slot(2, &["slot0", "slot1"]), None);
    }
}
