//! The transmit path: frames from a pair's TX queue to its tap.

use std::io;

use virtio_queue::desc::split::Descriptor;
use virtio_queue::QueueT;
use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::backend::FrameIo;
use super::bufs::{read_at, skip};
use super::header::{tx_header, Offloads, RawHeader, VNET_HDR_LEN};
use super::queues::{QueuePair, Scratch};
use super::{return_used, ChainError, Env, ETH_HLEN, MAX_FRAME_LEN};
use crate::log::warn_limited;
use crate::virtio::chain::DescTable;
use crate::virtio::common::more_published;
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
            let Scratch { descs, bufs, frame } = &mut pair.scratch;
            let walked = table.collect_into(head, descs).map_err(ChainError::from);
            let mapped = walked
                .and_then(|()| tx_frame(mem, descs, TxScratch { bufs, frame }, &mut hdr, offloads));
            match mapped {
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
        if !more_published(&mut pair.tx, mem) {
            break;
        }
    }
    if used {
        env.notify(&mut pair.tx);
    }
}

/// Frames up to this long (header included) are copied into one host buffer and written
/// with `write`: cheaper than a `writev` over guest memory for a few dozen bytes.
const COPY_MAX: usize = 256;

/// Scratch space for one TX chain.
struct TxScratch<'a> {
    bufs: &'a mut Vec<(GuestAddress, u32)>,
    frame: &'a mut Vec<u8>,
}

/// Maps a TX chain for the tap: the header the device built from the guest's (copied
/// out of guest memory once, checked against the TX offloads) into `hdr`, then the
/// guest's frame after its header. A small frame is copied whole into scratch space,
/// the header replaced in the copy.
fn tx_frame<'a>(
    mem: &'a GuestMemoryMmap,
    descs: &[Descriptor],
    scratch: TxScratch<'a>,
    hdr: &'a mut RawHeader,
    offloads: Offloads,
) -> Result<IoVecs<'a>, ChainError> {
    let TxScratch { bufs, frame } = scratch;
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
    // total <= MAX_FRAME_LEN.
    let total = total as usize;
    bufs.clear();
    bufs.extend(descs.iter().map(|d| (d.addr(), d.len())));
    if total <= COPY_MAX {
        frame.resize(total, 0);
        if !read_at(mem, bufs, 0, frame) {
            return Err(ChainError::Memory);
        }
        let (guest_hdr, _) = frame.split_at_mut(VNET_HDR_LEN);
        let guest: RawHeader = guest_hdr.try_into().map_err(|_| ChainError::Memory)?;
        guest_hdr.copy_from_slice(&tx_header(&guest, total - VNET_HDR_LEN, offloads)?);
        return Ok(IoVecs::host(frame));
    }
    let mut guest_hdr = [0u8; VNET_HDR_LEN];
    if !read_at(mem, bufs, 0, &mut guest_hdr) {
        return Err(ChainError::Memory);
    }
    *hdr = tx_header(&guest_hdr, total - VNET_HDR_LEN, offloads)?;
    IoVecs::with_host_prefix(hdr, mem, skip(bufs, VNET_HDR_LEN)).map_err(|_| ChainError::Memory)
}
