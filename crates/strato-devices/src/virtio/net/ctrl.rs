//! The control queue (`VIRTIO_NET_F_CTRL_VQ`). The device offers it only for
//! multiqueue, so the one command it carries out is `VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET`;
//! every other command is answered `VIRTIO_NET_ERR`.
//!
//! A command is a chain of readable buffers (class, command, data) followed by one
//! writable byte for the answer (virtio 1.2 section 5.1.6.5).

use virtio_bindings::bindings::virtio_net::{
    VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, VIRTIO_NET_ERR, VIRTIO_NET_OK,
};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::QueueT;
use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::bufs::read_at;
use super::queues::NetQueues;
use super::{return_used, ChainError, Env};
use crate::log::warn_limited;
use crate::virtio::chain::{BrokenChain, DescTable};
use crate::virtio::guest::write_bytes;

/// Longest command read; the ones carried out are 4 bytes.
const MAX_COMMAND: usize = 64;

/// A parsed command.
#[derive(Debug, PartialEq, Eq)]
struct Command {
    class: u8,
    cmd: u8,
    data: Vec<u8>,
    /// Where the answer byte goes.
    ack: GuestAddress,
}

/// Carries out every queued command. Returns true if the pairs in use changed.
pub(super) fn process(env: &Env<'_>, queues: &mut NetQueues) -> bool {
    let Env {
        mem, metrics, id, ..
    } = *env;
    let NetQueues {
        ctrl,
        pairs,
        active_pairs,
        mq,
        ..
    } = queues;
    let Some(ctrl) = ctrl else {
        return false;
    };
    let mut changed = false;
    let mut used = false;
    let table = DescTable::new(mem, &ctrl.queue);
    while let Some(chain) = ctrl.queue.pop_descriptor_chain(mem) {
        let head = chain.head_index();
        let command = match parse(mem, table.collect(head)) {
            Ok(c) => c,
            Err(why) => {
                metrics.invalid_chains.inc();
                warn_limited!("virtio-net {}: invalid control chain {}: {}", id, head, why);
                used |= return_used(&mut ctrl.queue, mem, head, 0, id);
                continue;
            }
        };
        metrics.ctrl_commands.inc();
        let ok = match (u32::from(command.class), u32::from(command.cmd)) {
            (VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET) if *mq => {
                match command.data.get(..2) {
                    Some(&[lo, hi]) => {
                        let n = usize::from(u16::from_le_bytes([lo, hi]));
                        if (1..=pairs.len()).contains(&n) {
                            changed |= *active_pairs != n;
                            *active_pairs = n;
                            true
                        } else {
                            false
                        }
                    }
                    _ => false,
                }
            }
            _ => false,
        };
        if !ok {
            metrics.ctrl_errors.inc();
            warn_limited!(
                "virtio-net {}: control command {}.{} refused",
                id,
                command.class,
                command.cmd
            );
        }
        let answer = (if ok { VIRTIO_NET_OK } else { VIRTIO_NET_ERR }) as u8;
        let len = u32::from(write_bytes(mem, command.ack, &[answer]));
        used |= return_used(&mut ctrl.queue, mem, head, len, id);
    }
    if used {
        env.notify(&mut ctrl.queue);
    }
    changed
}

/// Splits a control chain into its command and answer byte.
fn parse(
    mem: &GuestMemoryMmap,
    descs: Result<Vec<Descriptor>, BrokenChain>,
) -> Result<Command, ChainError> {
    let descs = descs?;
    let Some((last, readable)) = descs.split_last() else {
        return Err(ChainError::TooShort(0));
    };
    if !last.is_write_only() || last.len() == 0 || readable.iter().any(|d| d.is_write_only()) {
        return Err(ChainError::Direction);
    }
    let bufs: Vec<_> = readable.iter().map(|d| (d.addr(), d.len())).collect();
    let total = bufs.iter().map(|&(_, l)| u64::from(l)).sum::<u64>();
    if total < 2 {
        return Err(ChainError::TooShort(total as usize));
    }
    // total >= 2; read at most MAX_COMMAND bytes of it.
    let mut cmd = vec![0u8; total.min(MAX_COMMAND as u64) as usize];
    if !read_at(mem, &bufs, 0, &mut cmd) {
        return Err(ChainError::Memory);
    }
    Ok(Command {
        class: cmd[0],
        cmd: cmd[1],
        data: cmd.split_off(2),
        ack: last.addr(),
    })
}
