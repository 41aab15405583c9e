//! The enhanced device: offloads, mergeable receive buffers, EVENT_IDX, multiqueue and
//! the control queue, each with the malformed input a guest may hand it.

use virtio_bindings::bindings::virtio_net::{
    VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, VIRTIO_NET_F_CSUM, VIRTIO_NET_F_CTRL_VQ,
    VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_GUEST_TSO4,
    VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_HOST_ECN, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6,
    VIRTIO_NET_F_MAC, VIRTIO_NET_F_MQ, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_OK,
};
use virtio_bindings::bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;

use super::*;
use crate::virtio::net::header::{tun, VnetHeader};

const fn bit(b: u32) -> u64 {
    1 << b
}

const OFFLOADS: u64 = bit(VIRTIO_NET_F_CSUM)
    | bit(VIRTIO_NET_F_HOST_TSO4)
    | bit(VIRTIO_NET_F_HOST_TSO6)
    | bit(VIRTIO_NET_F_HOST_ECN)
    | bit(VIRTIO_NET_F_GUEST_CSUM)
    | bit(VIRTIO_NET_F_GUEST_TSO4)
    | bit(VIRTIO_NET_F_GUEST_TSO6)
    | bit(VIRTIO_NET_F_GUEST_ECN);
const MRG: u64 = bit(VIRTIO_NET_F_MRG_RXBUF);
const EVENT_IDX: u64 = bit(VIRTIO_RING_F_EVENT_IDX);
const MQ: u64 = bit(VIRTIO_NET_F_CTRL_VQ) | bit(VIRTIO_NET_F_MQ);

/// Where data buffers start (queues sit below).
const BUFS: u64 = 0x10_0000;

fn enhanced(taps: usize) -> (Net<FakeTap>, Vec<Peer>) {
    let (taps, peers): (Vec<_>, Vec<_>) = (0..taps).map(|_| fake_tap()).unzip();
    let dev = Net::new(NetConfig {
        id: "eni-e".into(),
        taps,
        mac: Some(MAC),
        enhanced: true,
    })
    .unwrap();
    (dev, peers)
}

struct ERig<'a> {
    dev: Net<FakeTap>,
    peers: Vec<Peer>,
    /// Queues by index: rx0, tx0, rx1, tx1, ..., ctrl.
    qs: Vec<TestQueue<'a>>,
    h: Handles,
    m: &'a GuestMemoryMmap,
}

/// An enhanced device over `taps` fake taps, activated by a driver that acked
/// `features` (VERSION_1 added) and set up `queues` queues, RX queues of `rx_size`.
fn erig(m: &GuestMemoryMmap, taps: usize, features: u64, queues: usize, rx_size: u16) -> ERig<'_> {
    let (mut dev, peers) = enhanced(taps);
    let acked = features | VIRTIO_F_VERSION_1;
    assert_eq!(
        acked & !dev.avail_features(),
        0,
        "acking what is not offered"
    );
    let qs: Vec<_> = (0..queues)
        .map(|i| {
            let size = if i % 2 == 0 && i + 1 < queues {
                rx_size
            } else {
                QUEUE_SIZE
            };
            TestQueue::new(m, 0x1000 + 0x4000 * i as u64, size)
        })
        .collect();
    let (ctx, h) = activation(m, qs.iter().map(|q| q.queue()).collect(), acked);
    dev.activate(ctx).unwrap();
    ERig {
        dev,
        peers,
        qs,
        h,
        m,
    }
}

impl ERig<'_> {
    fn kick(&mut self, queue: usize) {
        self.h.evts[queue].write(1).unwrap();
        let token = if queue == self.qs.len() - 1 && self.dev.queue_sizes.len() % 2 == 1 {
            CTRL_TOKEN
        } else if queue.is_multiple_of(2) {
            rx_token(queue / 2)
        } else {
            tx_token(queue / 2)
        };
        self.dev.handle_event(token);
    }

    fn counter(&self, name: &str) -> u64 {
        counter(&self.dev, name)
    }

    fn tokens(&self) -> Vec<u32> {
        self.dev.event_sources().iter().map(|s| s.token).collect()
    }

    /// Offers `n` RX chains of `len` bytes on queue `q`, buffers from `at` on.
    fn post_rx(&mut self, q: usize, n: usize, len: u32, at: u64) {
        for i in 0..n as u64 {
            self.qs[q].add(&[(at + i * 0x1_0000, len, W)]);
        }
    }

    /// Sends a control command on the control queue; returns the answer byte.
    fn command(&mut self, class: u8, cmd: u8, data: &[u8]) -> u8 {
        let at = 0xf0_0000;
        let mut c = vec![class, cmd];
        c.extend_from_slice(data);
        self.m.write_slice(&c, GuestAddress(at)).unwrap();
        self.m.write_obj(0xffu8, GuestAddress(at + 0x100)).unwrap();
        let ctrl = self.qs.len() - 1;
        self.qs[ctrl].add(&[(at, c.len() as u32, 0), (at + 0x100, 1, W)]);
        self.kick(ctrl);
        self.m.read_obj(GuestAddress(at + 0x100)).unwrap()
    }
}

/// A TX frame: header `h`, then `body_len` bytes.
fn tx_frame_with(h: VnetHeader, body_len: usize, seed: u8) -> Vec<u8> {
    let mut f = h.to_bytes().to_vec();
    f.extend((0..body_len).map(|i| seed.wrapping_add(i as u8)));
    f
}

#[test]
fn enhanced_features_follow_the_taps() {
    let (dev, _p) = enhanced(1);
    let f = dev.avail_features();
    assert_eq!(f & OFFLOADS, OFFLOADS);
    assert_ne!(f & MRG, 0);
    assert_ne!(f & EVENT_IDX, 0);
    assert_eq!(f & MQ, 0);
    assert_eq!(dev.queue_max_sizes().len(), 2);
    assert_eq!(
        dev.taps()[0].2,
        0,
        "offloads stay off until a driver takes them"
    );

    let (dev, _p) = enhanced(4);
    assert_eq!(dev.avail_features() & MQ, MQ);
    assert_eq!(dev.queue_max_sizes(), &[QUEUE_SIZE; 9]);
    let mut c = [0u8; 10];
    dev.read_config(0, &mut c);
    assert_eq!(&c[8..], &[4, 0]);

    // A tap that takes no receive offloads: the guest is not offered them.
    let (mut tap, _peer) = fake_tap();
    tap.3 = true;
    let dev = Net::new(NetConfig {
        id: "eni-n".into(),
        taps: vec![tap],
        mac: None,
        enhanced: true,
    })
    .unwrap();
    let f = dev.avail_features();
    assert_eq!(f & bit(VIRTIO_NET_F_GUEST_CSUM), 0);
    assert_eq!(f & bit(VIRTIO_NET_F_GUEST_TSO4), 0);
    assert_ne!(f & bit(VIRTIO_NET_F_HOST_TSO4), 0);

    let taps = |n: usize| (0..n).map(|_| fake_tap().0).collect::<Vec<_>>();
    let build = |taps, enhanced| {
        Net::new(NetConfig {
            id: "x".into(),
            taps,
            mac: None,
            enhanced,
        })
    };
    assert!(matches!(build(taps(0), true), Err(NetError::NoTap)));
    assert!(matches!(
        build(taps(2), false),
        Err(NetError::MultiqueuePlain(2))
    ));
    assert!(matches!(
        build(taps(MAX_QUEUE_PAIRS + 1), true),
        Err(NetError::TooManyQueues(_))
    ));
}

#[test]
fn tap_offloads_follow_what_the_guest_accepts() {
    let m = mem(0x100_0000);
    let mut r = erig(&m, 1, OFFLOADS, 2, QUEUE_SIZE);
    let all = tun::TUN_F_CSUM | tun::TUN_F_TSO4 | tun::TUN_F_TSO6 | tun::TUN_F_TSO_ECN;
    assert_eq!(r.dev.taps()[0].2, all);
    r.dev.reset();
    assert_eq!(r.dev.taps()[0].2, 0);
    // Checksum only.
    let mut r = erig(&m, 1, bit(VIRTIO_NET_F_GUEST_CSUM), 2, QUEUE_SIZE);
    assert_eq!(r.dev.taps()[0].2, tun::TUN_F_CSUM);
    r.dev.reset();
    // A driver like the probe guest's: nothing but the MAC, the plain paths.
    let mut r = erig(&m, 1, bit(VIRTIO_NET_F_MAC), 2, QUEUE_SIZE);
    assert_eq!(r.dev.taps()[0].2, 0);
    let f = frame(60, 4);
    m.write_slice(&f, GuestAddress(BUFS)).unwrap();
    r.qs[1].add(&[(BUFS, f.len() as u32, 0)]);
    r.kick(1);
    assert_eq!(r.peers[0].recv().unwrap(), f);
    r.peers[0].send(&frame(100, 2));
    r.post_rx(0, 1, 1526, BUFS + 0x10_0000);
    r.kick(0);
    assert_eq!(r.qs[0].used(0), (0, 112));
}

#[test]
fn offloaded_tx_passes_checked_headers_and_drops_the_rest() {
    let m = mem(0x100_0000);
    let mut r = erig(&m, 1, OFFLOADS & !bit(VIRTIO_NET_F_HOST_ECN), 2, QUEUE_SIZE);
    let tso = VnetHeader {
        flags: 1,
        gso_type: 1,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
        num_buffers: 0,
    };
    // A 20000-byte TSO frame split over three descriptors.
    let good = tx_frame_with(tso, 20000, 1);
    m.write_slice(&good, GuestAddress(BUFS)).unwrap();
    r.qs[1].add(&[
        (BUFS, 6, 0),
        (BUFS + 6, 10000, 0),
        (BUFS + 10006, (good.len() - 10006) as u32, 0),
    ]);
    // ECN without HOST_ECN, a checksum past the end, GSO without a checksum request.
    let bad = [
        VnetHeader {
            gso_type: 0x81,
            ..tso
        },
        VnetHeader {
            csum_start: 60,
            ..tso
        },
        VnetHeader { flags: 0, ..tso },
    ];
    for (i, h) in bad.into_iter().enumerate() {
        let at = BUFS + 0x10_0000 * (i as u64 + 1);
        let f = tx_frame_with(h, 60, 2);
        m.write_slice(&f, GuestAddress(at)).unwrap();
        r.qs[1].add(&[(at, f.len() as u32, 0)]);
    }
    r.kick(1);
    assert_eq!(r.peers[0].recv().unwrap(), good);
    assert!(r.peers[0].recv().is_none());
    assert_eq!(r.qs[1].used_idx(), 4);
    assert_eq!(r.counter("tx_bad_headers"), 3);
    assert_eq!(r.counter("tx_bytes"), 20000);
}

#[test]
fn mergeable_rx_spans_chains_and_counts_them() {
    let m = mem(0x100_0000);
    // A 16-entry ring the guest fills: the device reads although it holds less than a
    // largest frame, since no more buffers can come.
    let mut r = erig(&m, 1, MRG, 2, 16);
    r.peers[0].send(&frame(3000, 1));
    r.peers[0].send(&frame(100, 2));
    r.post_rx(0, 16, 1526, BUFS);
    r.kick(0);
    assert_eq!(r.qs[0].used_idx(), 3);
    assert_eq!(r.qs[0].used(0), (0, 1526));
    assert_eq!(r.qs[0].used(1), (1, 3012 - 1526));
    assert_eq!(r.qs[0].used(2), (2, 112));
    let hdr = |at: u64| VnetHeader::from_bytes(&m.read_obj(GuestAddress(at)).unwrap());
    assert_eq!(hdr(BUFS).num_buffers, 2);
    assert_eq!(hdr(BUFS + 0x2_0000).num_buffers, 1);
    // The frame continues in the second chain.
    let mut tail = [0u8; 2];
    m.read_slice(&mut tail, GuestAddress(BUFS + 0x1_0000))
        .unwrap();
    let f = frame(3000, 1);
    assert_eq!(&tail, &f[1526..1528]);
    assert_eq!(r.counter("rx_packets"), 2);
    assert_eq!(r.h.irq.count(), 1);
    // A frame bigger than the whole ring is dropped; the buffers stay for the next.
    let mut r = erig(&m, 1, MRG, 2, 16);
    r.post_rx(0, 16, 1526, BUFS);
    r.peers[0].send(&frame(30000, 3));
    r.peers[0].send(&frame(60, 4));
    r.kick(0);
    assert_eq!(r.counter("rx_dropped"), 1);
    assert_eq!(r.qs[0].used(0), (0, 72));
}

#[test]
fn mergeable_rx_over_adjacent_buffers() {
    let m = mem(0x100_0000);
    // Buffers back to back, as a guest's page-fragment allocator hands them out: the
    // device reads into them as one, and still returns them one chain at a time.
    let mut r = erig(&m, 1, MRG, 2, 16);
    for i in 0..16u64 {
        r.qs[0].add(&[(BUFS + i * 1526, 1526, W)]);
    }
    let big = frame(3000, 7);
    r.peers[0].send(&big);
    r.peers[0].send(&frame(100, 8));
    r.kick(0);
    assert_eq!(r.qs[0].used(0), (0, 1526));
    assert_eq!(r.qs[0].used(1), (1, 3012 - 1526));
    assert_eq!(r.qs[0].used(2), (2, 112));
    let mut got = vec![0u8; 3012];
    m.read_slice(&mut got, GuestAddress(BUFS)).unwrap();
    let h = VnetHeader::from_bytes(&got[..12].try_into().unwrap());
    assert_eq!(h.num_buffers, 2);
    assert_eq!(&got[12..], &big[12..]);
    let h: [u8; 12] = m.read_obj(GuestAddress(BUFS + 2 * 1526)).unwrap();
    assert_eq!(VnetHeader::from_bytes(&h).num_buffers, 1);
}

#[test]
fn mergeable_rx_waits_for_room_for_a_largest_frame() {
    let m = mem(0x100_0000);
    let mut r = erig(&m, 1, MRG | EVENT_IDX, 2, QUEUE_SIZE);
    r.peers[0].send(&frame(60, 1));
    r.post_rx(0, 2, 1526, BUFS);
    r.dev.handle_event(TAP_TOKEN);
    // Two buffers of a 256-entry ring: not enough for a 64 KiB frame, so the device
    // waits, stops watching the tap and asks to be kicked at the next buffer.
    assert_eq!(r.qs[0].used_idx(), 0);
    assert!(!r.tokens().contains(&TAP_TOKEN));
    assert_eq!(r.qs[0].avail_event(), 2);
    r.post_rx(0, 50, 1526, BUFS + 0x2_0000);
    r.kick(0);
    assert_eq!(r.qs[0].used(0), (0, 72));
    assert!(r.tokens().contains(&TAP_TOKEN));
}

#[test]
fn mergeable_rx_refuses_hostile_chains() {
    let m = mem(0x100_0000);
    let mut r = erig(&m, 1, MRG, 2, 64);
    r.peers[0].send(&frame(60, 1));
    // Readable, too short, outside memory, a loop, then good ones.
    r.qs[0].add(&[(BUFS, 1526, 0)]);
    r.qs[0].add(&[(BUFS, 20, W)]);
    r.qs[0].add(&[(0x2000_0000, 1526, W)]);
    r.qs[0].add_raw_at(
        60,
        &[
            RawDescriptor::from(Descriptor::new(BUFS, 64, N | W, 61)),
            RawDescriptor::from(Descriptor::new(BUFS, 64, N | W, 60)),
        ],
    );
    r.post_rx(0, 50, 1526, BUFS);
    r.kick(0);
    assert_eq!(r.counter("invalid_chains"), 4);
    assert_eq!(r.qs[0].used_idx(), 5);
    for i in 0..4 {
        assert_eq!(r.qs[0].used(i).1, 0);
    }
    assert_eq!(r.qs[0].used(4), (3, 72));
}

#[test]
fn rx_headers_carry_only_negotiated_offloads() {
    let m = mem(0x100_0000);
    let partial = VnetHeader {
        flags: 1,
        csum_start: 34,
        csum_offset: 16,
        ..VnetHeader::default()
    };
    let gso = VnetHeader {
        gso_type: 1,
        gso_size: 1448,
        hdr_len: 54,
        ..partial
    };
    // Checksum offload only: the partial checksum reaches the guest, TSO does not.
    let mut r = erig(&m, 1, bit(VIRTIO_NET_F_GUEST_CSUM), 2, QUEUE_SIZE);
    r.peers[0].send(&tx_frame_with(gso, 3000, 1));
    r.peers[0].send(&tx_frame_with(partial, 100, 2));
    r.post_rx(0, 1, 4000, BUFS);
    r.kick(0);
    assert_eq!(r.counter("rx_bad_headers"), 1);
    assert_eq!(r.qs[0].used(0), (0, 112));
    let h = VnetHeader::from_bytes(&m.read_obj(GuestAddress(BUFS)).unwrap());
    assert_eq!(
        h,
        VnetHeader {
            num_buffers: 1,
            ..partial
        }
    );
    // With TSO (and big buffers, no MRG_RXBUF), the GSO frame comes through.
    let mut r = erig(
        &m,
        1,
        bit(VIRTIO_NET_F_GUEST_CSUM) | bit(VIRTIO_NET_F_GUEST_TSO4),
        2,
        QUEUE_SIZE,
    );
    r.peers[0].send(&tx_frame_with(gso, 30000, 1));
    r.qs[0].add(&[(BUFS, 12, W), (BUFS + 0x100, 65550, W)]);
    r.kick(0);
    assert_eq!(r.qs[0].used(0), (0, 30012));
    let h = VnetHeader::from_bytes(&m.read_obj(GuestAddress(BUFS)).unwrap());
    assert_eq!(
        h,
        VnetHeader {
            num_buffers: 1,
            ..gso
        }
    );
}

#[test]
fn event_idx_suppresses_interrupts_and_asks_for_kicks() {
    let m = mem(0x100_0000);
    let mut r = erig(&m, 1, EVENT_IDX, 2, QUEUE_SIZE);
    // The driver wants an interrupt once used entry 2 is there (the third).
    r.qs[1].set_used_event(2);
    let f = frame(60, 1);
    m.write_slice(&f, GuestAddress(BUFS)).unwrap();
    r.qs[1].add(&[(BUFS, f.len() as u32, 0)]);
    r.kick(1);
    assert_eq!(r.h.irq.count(), 0);
    assert_eq!(r.qs[1].avail_event(), 1);
    r.qs[1].add(&[(BUFS, f.len() as u32, 0)]);
    r.qs[1].add(&[(BUFS, f.len() as u32, 0)]);
    r.kick(1);
    assert_eq!(r.qs[1].used_idx(), 3);
    assert_eq!(r.h.irq.count(), 1);
    assert_eq!(r.qs[1].avail_event(), 3);
    // RX: out of buffers, the device asks for a kick at the next one.
    r.post_rx(0, 1, 1526, BUFS + 0x10_0000);
    r.peers[0].send(&frame(60, 2));
    r.peers[0].send(&frame(60, 3));
    r.dev.handle_event(TAP_TOKEN);
    assert_eq!(r.qs[0].used_idx(), 1);
    assert_eq!(r.qs[0].avail_event(), 1);
    assert!(!r.tokens().contains(&TAP_TOKEN));
}

#[test]
fn multiqueue_pairs_follow_the_control_queue() {
    let m = mem(0x100_0000);
    let mut r = erig(&m, 2, MQ, 5, QUEUE_SIZE);
    assert_eq!(r.dev.active_pairs(), 1);
    assert_eq!(
        r.tokens(),
        vec![
            rx_token(0),
            tx_token(0),
            rx_token(1),
            tx_token(1),
            tap_token(0),
            tap_token(1),
            CTRL_TOKEN
        ]
    );
    // One pair in use: frames on either tap queue land on receiveq1.
    r.post_rx(0, 4, 1526, BUFS);
    r.post_rx(2, 4, 1526, BUFS + 0x40_0000);
    r.peers[1].send(&frame(60, 1));
    r.dev.handle_event(tap_token(1));
    assert_eq!(r.qs[0].used(0), (0, 72));
    assert_eq!(r.qs[2].used_idx(), 0);
    // Two pairs: tap queue 1 feeds receiveq2, transmitq2 goes out on tap queue 1.
    let pairs = |n: u16| n.to_le_bytes();
    let (mq, set) = (
        VIRTIO_NET_CTRL_MQ as u8,
        VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET as u8,
    );
    assert_eq!(r.command(mq, set, &pairs(2)), VIRTIO_NET_OK as u8);
    assert_eq!(r.dev.active_pairs(), 2);
    assert!(r.dev.sources_changed());
    r.peers[1].send(&frame(60, 2));
    r.dev.handle_event(tap_token(1));
    assert_eq!(r.qs[2].used(0), (0, 72));
    let f = frame(60, 3);
    m.write_slice(&f, GuestAddress(0xe0_0000)).unwrap();
    r.qs[3].add(&[(0xe0_0000, f.len() as u32, 0)]);
    r.kick(3);
    assert_eq!(r.peers[1].recv().unwrap(), f);
    assert!(r.peers[0].recv().is_none());
    // Out of range, unknown commands, short data: refused, nothing changes.
    for (class, cmd, data) in [
        (mq, set, &pairs(0)[..]),
        (mq, set, &pairs(3)[..]),
        (mq, set, &[1][..]),
        (mq, 7, &pairs(1)[..]),
        (0, 0, &[][..]),
    ] {
        assert_eq!(r.command(class, cmd, data), 1, "{class}.{cmd} {data:?}");
    }
    assert_eq!(r.dev.active_pairs(), 2);
    assert_eq!(r.counter("ctrl_commands"), 6);
    assert_eq!(r.counter("ctrl_errors"), 5);
    // Back to one.
    assert_eq!(r.command(mq, set, &pairs(1)), 0);
    assert_eq!(r.dev.active_pairs(), 1);
}

#[test]
fn control_queue_refuses_hostile_chains() {
    let m = mem(0x100_0000);
    let mut r = erig(&m, 2, MQ, 5, QUEUE_SIZE);
    let at = 0xf0_0000;
    m.write_slice(&[4, 0, 2, 0], GuestAddress(at)).unwrap();
    // No answer byte, a writable command, an empty answer, one byte of command, outside
    // memory, a loop.
    r.qs[4].add(&[(at, 4, 0)]);
    r.qs[4].add(&[(at, 4, W), (at + 0x100, 1, W)]);
    r.qs[4].add(&[(at, 4, 0), (at + 0x100, 0, W)]);
    r.qs[4].add(&[(at, 1, 0), (at + 0x100, 1, W)]);
    r.qs[4].add(&[(0x2000_0000, 4, 0), (at + 0x100, 1, W)]);
    r.qs[4].add_raw_at(
        20,
        &[
            RawDescriptor::from(Descriptor::new(at, 4, N, 21)),
            RawDescriptor::from(Descriptor::new(at, 4, N, 20)),
        ],
    );
    r.kick(4);
    assert_eq!(r.qs[4].used_idx(), 6);
    for i in 0..6 {
        assert_eq!(r.qs[4].used(i).1, 0);
    }
    assert_eq!(r.counter("invalid_chains"), 6);
    assert_eq!(r.dev.active_pairs(), 1);
}

#[test]
fn multiqueue_activation_places_queues_by_index() {
    let m = mem(0x100_0000);
    let qs: Vec<_> = (0..3)
        .map(|i| TestQueue::new(&m, 0x1000 + 0x4000 * i, QUEUE_SIZE))
        .collect();
    let acked = VIRTIO_F_VERSION_1 | MQ;
    // Only the first pair and the control queue (index 2 * 4 pairs = 8) are set up.
    let (mut dev, _p) = enhanced(4);
    let (mut ctx, _h) = activation(&m, qs.iter().map(|q| q.queue()).collect(), acked);
    ctx.queues[2].index = 8;
    dev.activate(ctx).unwrap();
    assert_eq!(dev.active_pairs(), 1);
    assert!(dev.event_sources().iter().any(|s| s.token == CTRL_TOKEN));
    // Without MQ the control queue is index 2; a queue past the layout is refused.
    let (mut dev, _p) = enhanced(4);
    let (mut ctx, _h) = activation(
        &m,
        qs.iter().map(|q| q.queue()).collect(),
        VIRTIO_F_VERSION_1,
    );
    ctx.queues[2].index = 5;
    assert!(matches!(
        dev.activate(ctx),
        Err(ActivateError::InvalidQueue(5))
    ));
    assert!(!dev.is_active());
    // receiveq1 without transmitq1.
    let (mut dev, _p) = enhanced(2);
    let (mut ctx, _h) = activation(&m, vec![qs[0].queue(), qs[1].queue()], acked);
    ctx.queues[1].index = 2;
    assert!(matches!(
        dev.activate(ctx),
        Err(ActivateError::QueueCount { .. })
    ));
}

/// Runs `f` on a thread of its own and fails unless it returns within 10 s (a device that
/// spins on a hostile ring never does).
fn within_deadline(f: impl FnOnce() + Send + 'static) {
    let (done, wait) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        f();
        let _ = done.send(());
    });
    match wait.recv_timeout(std::time::Duration::from_secs(10)) {
        Ok(()) => worker.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(worker.join().unwrap_err())
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("the device did not return: it spins on the ring")
        }
    }
}

#[test]
fn an_available_index_a_ring_ahead_does_not_spin() {
    // Found by the virtio_net_tx and virtio_net_rx fuzz targets: with EVENT_IDX the paths
    // looked again whenever the available index differed from theirs, and a ring whose index
    // runs more than a ring ahead yields no chain, so they looked forever.
    for features in [EVENT_IDX, EVENT_IDX | MRG] {
        within_deadline(move || {
            let m = mem(0x100_0000);
            let mut r = erig(&m, 1, features, 2, QUEUE_SIZE);
            r.qs[1].set_avail_idx(QUEUE_SIZE + 7);
            r.kick(1);
            assert_eq!(r.qs[1].used_idx(), 0);
            r.peers[0].send(&[0u8; VNET_HDR_LEN + 60]);
            r.qs[0].set_avail_idx(QUEUE_SIZE + 7);
            r.kick(0);
            r.dev.handle_event(tap_token(0));
            assert_eq!(r.qs[0].used_idx(), 0);
        });
    }
}

/// The bytes of used entry `i`'s buffers, in order, as far as `len` goes.
fn gather(m: &GuestMemoryMmap, bufs: &[(u64, u32)], len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for &(at, n) in bufs {
        let take = (len - out.len()).min(n as usize);
        let mut b = vec![0u8; take];
        m.read_slice(&mut b, GuestAddress(at)).unwrap();
        out.extend(b);
        if out.len() == len {
            break;
        }
    }
    out
}

#[test]
fn mergeable_rx_over_chains_of_several_buffers_with_a_short_last_one() {
    let m = mem(0x100_0000);
    let mut r = erig(&m, 1, MRG, 2, 16);
    // Chain 0: a header-sized buffer then 1000 bytes; chain 1: 500 bytes; chain 2: three
    // buffers of 1000; then plain ones to fill the ring (so the device reads at once).
    let c0 = [(BUFS, 12), (BUFS + 0x1000, 1000)];
    let c1 = [(BUFS + 0x2000, 500)];
    let c2 = [
        (BUFS + 0x3000, 1000),
        (BUFS + 0x4000, 1000),
        (BUFS + 0x5000, 1000),
    ];
    for c in [&c0[..], &c1[..], &c2[..]] {
        let descs: Vec<_> = c.iter().map(|&(at, n)| (at, n, W)).collect();
        r.qs[0].add(&descs);
    }
    r.post_rx(0, 10, 1526, BUFS + 0x10_0000);
    // 2012 bytes: chain 0 takes 1012, chain 1 500, chain 2 only 500 of its 3000 (its
    // first buffer, not even full). The next frame starts in a chain of its own.
    let big = frame(2000, 3);
    r.peers[0].send(&big);
    r.peers[0].send(&frame(100, 4));
    r.kick(0);
    assert_eq!(r.qs[0].used_idx(), 4);
    assert_eq!(r.qs[0].used(0), (0, 1012));
    assert_eq!(r.qs[0].used(1), (2, 500));
    assert_eq!(r.qs[0].used(2), (3, 500));
    // Chain 3 is the first plain one (descriptor index 6 after 2 + 1 + 3).
    assert_eq!(r.qs[0].used(3), (6, 112));
    let all: Vec<_> = c0.iter().chain(&c1).chain(&c2).copied().collect();
    let got = gather(&m, &all, big.len());
    let h = VnetHeader::from_bytes(&got[..12].try_into().unwrap());
    assert_eq!(h.num_buffers, 3);
    assert_eq!(&got[12..], &big[12..]);
    // The rest of chain 2 is untouched.
    assert_eq!(
        m.read_obj::<u8>(GuestAddress(BUFS + 0x3000 + 500)).unwrap(),
        0
    );
    assert_eq!(m.read_obj::<u8>(GuestAddress(BUFS + 0x4000)).unwrap(), 0);
    let h: [u8; 12] = m.read_obj(GuestAddress(BUFS + 0x10_0000)).unwrap();
    assert_eq!(VnetHeader::from_bytes(&h).num_buffers, 1);
    assert_eq!(r.counter("rx_packets"), 2);
    assert_eq!(r.h.irq.count(), 1);
}

#[test]
fn mergeable_rx_skips_broken_chains_between_the_buffers_of_a_frame() {
    let m = mem(0x100_0000);
    let mut r = erig(&m, 1, MRG, 2, 16);
    r.qs[0].add(&[(BUFS, 1000, W)]);
    // A chain that ends early: it says "next", and next is past the table.
    r.qs[0].add_raw_at(
        1,
        &[RawDescriptor::from(Descriptor::new(
            BUFS + 0x1_0000,
            1000,
            N | W,
            16,
        ))],
    );
    r.qs[0].add_raw_at(
        2,
        &[RawDescriptor::from(Descriptor::new(
            BUFS + 0x2_0000,
            1000,
            W,
            0,
        ))],
    );
    // And one that is readable.
    r.qs[0].add_raw_at(
        3,
        &[RawDescriptor::from(Descriptor::new(
            BUFS + 0x3_0000,
            1000,
            0,
            0,
        ))],
    );
    for i in 4..16u16 {
        let at = BUFS + 0x1_0000 * u64::from(i);
        r.qs[0].add_raw_at(i, &[RawDescriptor::from(Descriptor::new(at, 1000, W, 0))]);
    }
    let big = frame(2500, 9);
    r.peers[0].send(&big);
    r.kick(0);
    assert_eq!(r.counter("invalid_chains"), 2);
    // The broken chains come back empty as they are found; the frame lies in chains 0, 2
    // and 4, and says so.
    let used: Vec<_> = (0..r.qs[0].used_idx()).map(|i| r.qs[0].used(i)).collect();
    assert_eq!(used, vec![(1, 0), (3, 0), (0, 1000), (2, 1000), (4, 512)]);
    let bufs = [
        (BUFS, 1000),
        (BUFS + 0x2_0000, 1000),
        (BUFS + 0x4_0000, 1000),
    ];
    let got = gather(&m, &bufs, big.len());
    assert_eq!(
        VnetHeader::from_bytes(&got[..12].try_into().unwrap()).num_buffers,
        3
    );
    assert_eq!(&got[12..], &big[12..]);
}

#[test]
fn mergeable_rx_of_a_largest_frame_counts_every_buffer() {
    let m = mem(0x200_0000);
    // A Linux-like guest: 4 KiB buffers, segmentation offload, 64 KiB frames.
    let mut r = erig(&m, 1, MRG | OFFLOADS | EVENT_IDX, 2, QUEUE_SIZE);
    r.post_rx(0, 40, 4096, BUFS);
    let gso = VnetHeader {
        flags: 1,
        gso_type: 1,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
        ..VnetHeader::default()
    };
    let big = tx_frame_with(gso, 65550, 5);
    r.peers[0].send(&big);
    r.peers[0].send(&big);
    r.kick(0);
    // 65562 bytes: 16 full buffers and 26 bytes in a 17th, twice.
    assert_eq!(r.qs[0].used_idx(), 34);
    for frame in 0..2u16 {
        for i in 0..16 {
            assert_eq!(
                r.qs[0].used(17 * frame + i),
                (u32::from(17 * frame + i), 4096)
            );
        }
        let last = 17 * frame + 16;
        assert_eq!(r.qs[0].used(last), (u32::from(last), 26));
        let first = BUFS + 0x1_0000 * u64::from(17 * frame);
        let bufs: Vec<_> = (0..17u64).map(|i| (first + 0x1_0000 * i, 4096)).collect();
        let got = gather(&m, &bufs, big.len());
        let h = VnetHeader::from_bytes(&got[..12].try_into().unwrap());
        assert_eq!(
            h,
            VnetHeader {
                num_buffers: 17,
                ..gso
            }
        );
        assert_eq!(&got[12..], &big[12..]);
    }
    assert_eq!(r.counter("rx_packets"), 2);
}

#[test]
fn rx_interrupts_follow_used_event_over_batched_publication() {
    let m = mem(0x100_0000);
    for features in [EVENT_IDX, EVENT_IDX | MRG] {
        let mut r = erig(&m, 1, features, 2, 128);
        r.post_rx(0, 128, 1526, BUFS);
        // The driver wants an interrupt once entry 4 is used (the fifth).
        r.qs[0].set_used_event(4);
        for i in 0..3 {
            r.peers[0].send(&frame(60, i));
        }
        r.dev.handle_event(TAP_TOKEN);
        assert_eq!(r.qs[0].used_idx(), 3);
        assert_eq!(r.h.irq.count(), 0);
        for i in 0..3 {
            r.peers[0].send(&frame(60, i));
        }
        r.dev.handle_event(TAP_TOKEN);
        assert_eq!(r.qs[0].used_idx(), 6);
        assert_eq!(r.h.irq.count(), 1);
        // More than a publication batch at once (published mid-way, then at the end):
        // every entry is there, and one interrupt covers them all (entry 40 is among
        // them).
        r.qs[0].set_used_event(40);
        for i in 0..70 {
            r.peers[0].send(&frame(60, i));
        }
        r.dev.handle_event(TAP_TOKEN);
        assert_eq!(r.qs[0].used_idx(), 76);
        assert_eq!(r.h.irq.count(), 2);
        // used_event already behind: no interrupt until it is moved.
        r.peers[0].send(&frame(60, 1));
        r.dev.handle_event(TAP_TOKEN);
        assert_eq!(r.qs[0].used_idx(), 77);
        assert_eq!(r.h.irq.count(), 2);
        r.qs[0].set_used_event(77);
        r.peers[0].send(&frame(60, 2));
        r.dev.handle_event(TAP_TOKEN);
        assert_eq!(r.h.irq.count(), 3);
    }
    // Without EVENT_IDX every batch with entries interrupts, and one without does not.
    let mut r = erig(&m, 1, MRG, 2, 64);
    r.post_rx(0, 64, 1526, BUFS);
    for i in 0..3 {
        r.peers[0].send(&frame(60, i));
    }
    r.dev.handle_event(TAP_TOKEN);
    assert_eq!(r.h.irq.count(), 1);
    r.dev.handle_event(TAP_TOKEN);
    assert_eq!(r.h.irq.count(), 1);
    r.peers[0].send(&frame(60, 9));
    r.dev.handle_event(TAP_TOKEN);
    assert_eq!((r.qs[0].used_idx(), r.h.irq.count()), (4, 2));
}
