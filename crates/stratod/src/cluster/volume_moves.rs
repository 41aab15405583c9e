//! A blank volume moves to its instance's host. A volume is a file on the host that made
//! it, and CreateVolume names only an AZ, which every host may serve: a volume made through
//! one host and attached to an instance on another would otherwise be refused. One that
//! holds no data (available, never attached or written, no snapshot taken of it: its
//! sparse file has no block) has nothing to copy, so AttachVolume moves it: the instance's
//! host makes its blank copy under the same ID and creation time, the old host deletes its
//! own on the condition that it is still blank and free (else the copy is deleted again
//! and the attach refused, as before, with `InvalidVolume.ZoneMismatch`), and the attach
//! runs on the instance's host. A volume with data stays where it is.

use std::sync::Arc;

use strato_proto::v1 as pb;

use super::forward::Link;
use super::volumes::apart;
use crate::cloud::Cloud;
use crate::db::volumes::Volume;
use crate::error::{ApiResult, ErrorCode};
use crate::ids::Kind;
use crate::states::VolumeState;

/// Whether a volume, as its host describes it, may move: available, detached, not made
/// from a snapshot (whether it was ever written only its host can tell).
pub fn may_move(v: &pb::Volume) -> bool {
    v.state == VolumeState::Available.to_string()
        && v.attachments.is_empty()
        && v.snapshot_id.is_empty()
}

/// The CreateVolume that makes a moving volume's copy on its new host.
pub fn copy_request(v: &pb::Volume) -> pb::CreateVolumeRequest {
    pb::CreateVolumeRequest {
        size: v.size,
        volume_type: v.volume_type.clone(),
        availability_zone: v.availability_zone.clone(),
        snapshot_id: String::new(),
        tags: v.tags.clone(),
        region_volume_id: v.volume_id.clone(),
        region_created_unix: v.create_time_unix,
    }
}

/// The volume a [`copy_request`] makes here for `account`.
pub fn moved_volume(account: &str, r: &pb::CreateVolumeRequest) -> Volume {
    Volume {
        id: r.region_volume_id.clone(),
        owner: account.to_string(),
        size_gib: r.size,
        volume_type: r.volume_type.clone(),
        az: r.availability_zone.clone(),
        snapshot_id: String::new(),
        state: VolumeState::Available,
        created: r.region_created_unix,
        instance_id: None,
        device: None,
        attach_state: None,
        delete_on_termination: false,
        slot: None,
        tags: crate::api::convert::tags_in(&r.tags),
    }
}

impl Cloud {
    /// Moves blank volume `volume_id` from host `from` to host `to` (either may be this
    /// one), for an attach to `instance_id` on `to`; refused with the pair's
    /// `InvalidVolume.ZoneMismatch` when the volume holds data.
    pub(super) async fn move_blank_volume(
        self: &Arc<Self>,
        link: &Link,
        account: &str,
        volume_id: &str,
        instance_id: &str,
        (from, to): (&str, &str),
    ) -> ApiResult<()> {
        let me = self.cluster.as_ref().map(|r| r.host().to_string());
        let here = |h: &str| me.as_deref() == Some(h);
        let v = if here(from) {
            Some(crate::api::volumes::volume(
                &self.owned_volume(account, volume_id)?,
            ))
        } else {
            link.describe_volumes(from, account, vec![volume_id.to_string()], &[])
                .await?
                .into_iter()
                .next()
        };
        let v = v.ok_or_else(|| Kind::Volume.not_found(volume_id))?;
        if !may_move(&v) {
            return Err(apart(volume_id, instance_id, from, to));
        }
        let copy = copy_request(&v);
        if here(to) {
            self.adopt_blank_volume(moved_volume(account, &copy))?;
            self.index_volumes(&[(volume_id.to_string(), account.to_string())])
                .await;
        } else {
            link.create_volume(to, account, copy).await?;
        }
        let released = if here(from) {
            match self.release_moved_volume(account, volume_id) {
                Ok(()) => {
                    self.unindex(volume_id).await;
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else {
            link.release_moved_volume(from, account, volume_id).await
        };
        if let Err(e) = released {
            let undo = if here(to) {
                self.delete_volume(account, volume_id)
            } else {
                link.delete_volume(to, account, volume_id).await
            };
            if let Err(u) = undo {
                tracing::warn!(volume = volume_id, host = to, error = %u.message, "a refused move left the volume's copy behind");
            }
            return Err(match e.code {
                ErrorCode::InvalidVolumeZoneMismatch => apart(volume_id, instance_id, from, to),
                _ => e,
            });
        }
        tracing::info!(
            volume = volume_id,
            from,
            to,
            "blank volume moved to its instance's host"
        );
        Ok(())
    }
}

impl Link {
    /// The old host's half of a blank volume's move: DeleteVolume on `host` on the
    /// condition that the volume is still blank and free.
    pub async fn release_moved_volume(
        &self,
        host: &str,
        account: &str,
        volume_id: &str,
    ) -> ApiResult<()> {
        let msg = pb::DeleteVolumeRequest {
            volume_id: volume_id.to_string(),
            region_move: true,
        };
        self.on(
            host,
            account,
            msg,
            |mut c: super::forward::Volumes, r| async move { c.delete_volume(r).await },
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank() -> pb::Volume {
        pb::Volume {
            volume_id: "vol-0123456789abcdef0".into(),
            size: 2,
            volume_type: "gp3".into(),
            availability_zone: "home-1a".into(),
            state: "available".into(),
            create_time_unix: 77,
            tags: vec![pb::Tag {
                key: "k".into(),
                value: "v".into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn only_a_free_blank_volume_moves() {
        assert!(may_move(&blank()));
        let mut v = blank();
        v.state = "in-use".into();
        assert!(!may_move(&v));
        let mut v = blank();
        v.snapshot_id = "snap-1".into();
        assert!(!may_move(&v), "made from a snapshot: it has data");
        let mut v = blank();
        v.attachments.push(pb::VolumeAttachment::default());
        assert!(!may_move(&v));
    }

    #[test]
    fn the_copy_keeps_id_time_size_and_tags() {
        let r = copy_request(&blank());
        let m = moved_volume("111111111111", &r);
        assert_eq!(
            (m.id.as_str(), m.created, m.size_gib, m.az.as_str()),
            ("vol-0123456789abcdef0", 77, 2, "home-1a")
        );
        assert_eq!(m.tags.len(), 1);
        assert_eq!(m.owner, "111111111111");
        assert!(m.snapshot_id.is_empty());
    }
}
