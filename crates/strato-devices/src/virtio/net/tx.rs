//! The transmit path: frames from a pair's TX queue to its tap.

use std::io;

use virtio_queue::desc::split::Descriptor;
use virtio_queue::QueueT;
use vm_memory::GuestMemoryMmap;

use super::backend::FrameIo;
use super::bufs::{read_at, skip};
use super::header::{tx_header, Offloads, RawHeader, VNET_HDR_LEN};
use super::queues::QueuePair;
use super::{return_used, ChainError, Env, ETH_HLEN, MAX_FRAME_LEN};
use crate::log::warn_limited;
use crate::virtio::chain::{BrokenChain, DescTable};
use crate::virtio::iovec::IoVecs;

/// Sends every frame the guest queued on `pair` to `tap`.
pub(super) fn process<T: FrameIo>(
    env: &Env<'_>,
    offloads: Offloads,
    pair: &mut QueuePair,
    tap: &mut T,
) {
    let Env {
        mem, metrics, id, ..
    } = *env;
    let mut used = false;
    let table = DescTable::new(mem, &pair.tx);
    loop {
        while let Some(chain) = pair.tx.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let mut hdr = [0u8; VNET_HDR_LEN];
            match tx_frame(mem, table.collect(head), &mut hdr, offloads) {
                Ok(iovs) => match tap.write_frame(&iovs) {
                    Ok(_) => {
                        metrics.tx_packets.inc();
                        metrics.tx_bytes.add((iovs.len() - VNET_HDR_LEN) as u64);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // The tap's queue is full: drop, as a congested link would.
                        metrics.tx_dropped.inc();
                    }
                    Err(e) => {
                        metrics.tap_write_errors.inc();
                        metrics.tx_dropped.inc();
                        warn_limited!("virtio-net {}: writing the tap: {}", id, e);
                    }
                },
                Err(ChainError::Header(why)) => {
                    metrics.tx_bad_headers.inc();
                    metrics.tx_dropped.inc();
                    warn_limited!("virtio-net {}: TX chain {}: {}", id, head, why);
                }
                Err(why) => {
                    metrics.invalid_chains.inc();
                    metrics.tx_dropped.inc();
                    warn_limited!("virtio-net {}: invalid TX chain {}: {}", id, head, why);
                }
            }
            used |= return_used(&mut pair.tx, mem, head, 0, id);
        }
        // With EVENT_IDX, ask for the next kick; frames queued meanwhile are sent now.
        if !(pair.tx.event_idx_enabled() && pair.tx.enable_notification(mem).unwrap_or(false)) {
            break;
        }
    }
    if used {
        env.notify(&mut pair.tx);
    }
}

/// Maps a TX chain for the tap: the header the device built from the guest's (copied
/// out of guest memory once, checked against the TX offloads) into `hdr`, then the
/// guest's frame after its header.
fn tx_frame<'a>(
    mem: &'a GuestMemoryMmap,
    descs: Result<Vec<Descriptor>, BrokenChain>,
    hdr: &'a mut RawHeader,
    offloads: Offloads,
) -> Result<IoVecs<'a>, ChainError> {
    let descs = descs?;
    if descs.iter().any(|d| d.is_write_only()) {
        return Err(ChainError::Direction);
    }
    let total = descs.iter().map(|d| u64::from(d.len())).sum::<u64>();
    if total > MAX_FRAME_LEN as u64 {
        return Err(ChainError::TooLong(
            usize::try_from(total).unwrap_or(usize::MAX),
        ));
    }
    if total < (VNET_HDR_LEN + ETH_HLEN) as u64 {
        return Err(ChainError::TooShort(total as usize));
    }
    let bufs: Vec<_> = descs.iter().map(|d| (d.addr(), d.len())).collect();
    let mut guest_hdr = [0u8; VNET_HDR_LEN];
    if !read_at(mem, &bufs, 0, &mut guest_hdr) {
        return Err(ChainError::Memory);
    }
    // total <= MAX_FRAME_LEN.
    *hdr = tx_header(&guest_hdr, total as usize - VNET_HDR_LEN, offloads)?;
    IoVecs::with_host_prefix(hdr, mem, skip(&bufs, VNET_HDR_LEN)).map_err(|_| ChainError::Memory)
}
