#![allow(clippy::unwrap_used)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use virtio_queue::desc::split::Descriptor;
use virtio_queue::desc::RawDescriptor;
use vm_memory::{Bytes, GuestAddress};

use super::*;
use crate::virtio::iovec::IoVecs;
use crate::virtio::test_utils::{activation, counter, mem, Handles, TestQueue, N, W};

/// A packet-preserving stand-in for a tap: one end of a SOCK_SEQPACKET pair; reads fail
/// while `.1` is set; `.2` is the last offload flags set, `.3` refuses any.
struct FakeTap(OwnedFd, bool, u32, bool);

impl AsRawFd for FakeTap {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl FrameIo for FakeTap {
    fn read_frame(&mut self, bufs: &IoVecs<'_>) -> io::Result<usize> {
        if self.1 {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        bufs.readv(self.0.as_raw_fd())
    }
    fn write_frame(&mut self, bufs: &IoVecs<'_>) -> io::Result<usize> {
        bufs.writev(self.0.as_raw_fd())
    }
    fn set_offloads(&mut self, flags: u32) -> io::Result<()> {
        if self.3 && flags != 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        self.2 = flags;
        Ok(())
    }
}

/// The host side of the fake tap.
struct Peer(OwnedFd);

impl Peer {
    fn send(&self, frame: &[u8]) {
        // SAFETY: sends `frame.len()` bytes from a live slice.
        let n = unsafe { libc::send(self.0.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(n, frame.len() as isize);
    }

    fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 70000];
        // SAFETY: receives at most `buf.len()` bytes into a live buffer.
        let n = unsafe {
            libc::recv(
                self.0.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        let n = usize::try_from(n).ok()?;
        buf.truncate(n);
        Some(buf)
    }
}

fn fake_tap() -> (FakeTap, Peer) {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two descriptors into `fds`.
    let ret = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(ret, 0);
    // SAFETY: both descriptors were just created and are owned by nobody else.
    unsafe {
        (
            FakeTap(OwnedFd::from_raw_fd(fds[0]), false, 0, false),
            Peer(OwnedFd::from_raw_fd(fds[1])),
        )
    }
}

mod enhanced;

const MAC: [u8; 6] = [0x06, 0, 0xac, 0x10, 0, 2];
/// Offset of `num_buffers` in the vnet header.
const NUM_BUFFERS_OFFSET: usize = 10;

struct Rig<'a> {
    dev: Net<FakeTap>,
    peer: Peer,
    rx: TestQueue<'a>,
    tx: TestQueue<'a>,
    h: Handles,
    m: &'a GuestMemoryMmap,
}

fn rig(m: &GuestMemoryMmap) -> Rig<'_> {
    let (tap, peer) = fake_tap();
    let mut dev = Net::new(NetConfig {
        id: "eni-0".into(),
        taps: vec![tap],
        mac: Some(MAC),
        enhanced: false,
    })
    .unwrap();
    let rx = TestQueue::new(m, 0x1000, QUEUE_SIZE);
    let tx = TestQueue::new(m, 0x8000, QUEUE_SIZE);
    let (ctx, h) = activation(m, vec![rx.queue(), tx.queue()], VIRTIO_F_VERSION_1);
    dev.activate(ctx).unwrap();
    assert!(dev.sources_changed());
    Rig {
        dev,
        peer,
        rx,
        tx,
        h,
        m,
    }
}

impl Rig<'_> {
    fn kick_tx(&mut self) {
        self.h.evts[1].write(1).unwrap();
        self.dev.handle_event(TX_TOKEN);
    }

    fn kick_rx(&mut self) {
        self.h.evts[0].write(1).unwrap();
        self.dev.handle_event(RX_TOKEN);
    }

    fn tokens(&self) -> Vec<u32> {
        self.dev.event_sources().iter().map(|s| s.token).collect()
    }

    fn counter(&self, name: &str) -> u64 {
        counter(&self.dev, name)
    }
}

/// A frame with a zeroed vnet header and a recognisable body.
fn frame(body_len: usize, seed: u8) -> Vec<u8> {
    let mut f = vec![0u8; VNET_HDR_LEN];
    f.extend((0..body_len).map(|i| seed.wrapping_add(i as u8)));
    f
}

#[test]
fn transmits_frames_unchanged() {
    let m = mem(0x100_0000);
    let mut r = rig(&m);
    let f = frame(60, 7);
    m.write_slice(&f[..20], GuestAddress(0x20000)).unwrap();
    m.write_slice(&f[20..], GuestAddress(0x30000)).unwrap();
    r.tx.add(&[(0x20000, 20, 0), (0x30000, (f.len() - 20) as u32, 0)]);
    r.kick_tx();
    assert_eq!(r.peer.recv().unwrap(), f);
    assert_eq!(r.tx.used(0), (0, 0));
    assert_eq!(r.h.irq.count(), 1);
    assert_eq!(r.counter("tx_packets"), 1);
    assert_eq!(r.counter("tx_bytes"), 60);
}

#[test]
fn refuses_hostile_tx_chains() {
    let m = mem(0x100_0000);
    let mut r = rig(&m);
    // Writable buffer, too long, too short, outside memory.
    r.tx.add(&[(0x20000, 64, 0), (0x30000, 64, W)]);
    r.tx.add(&[(0x100000, MAX_FRAME_LEN as u32, 0), (0x200000, 1, 0)]);
    r.tx.add(&[(0x20000, 20, 0)]);
    r.tx.add(&[(0x20000, 12, 0), (0x2000_0000, 60, 0)]);
    // A loop.
    r.tx.add_raw_at(
        20,
        &[
            RawDescriptor::from(Descriptor::new(0x20000, 64, N, 21)),
            RawDescriptor::from(Descriptor::new(0x20000, 64, N, 20)),
        ],
    );
    r.kick_tx();
    assert_eq!(r.tx.used_idx(), 5);
    for i in 0..5 {
        assert_eq!(r.tx.used(i).1, 0);
    }
    assert!(r.peer.recv().is_none());
    assert_eq!(r.counter("invalid_chains"), 5);
    assert_eq!(r.counter("tx_dropped"), 5);
    assert_eq!(r.h.irq.count(), 1);
}

#[test]
fn receives_frames_and_sets_num_buffers() {
    let m = mem(0x100_0000);
    let mut r = rig(&m);
    let mut f = frame(100, 3);
    f[NUM_BUFFERS_OFFSET] = 0xee;
    r.peer.send(&f);
    // Header and frame split across buffers: 4 + 1522.
    m.write_slice(&[0xffu8; 16], GuestAddress(0x20000)).unwrap();
    r.rx.add(&[(0x20000, 4, W), (0x30000, 1522, W)]);
    r.dev.handle_event(TAP_TOKEN);
    assert_eq!(r.rx.used(0), (0, f.len() as u32));
    let mut got = vec![0u8; f.len() - 4];
    m.read_slice(&mut got, GuestAddress(0x30000)).unwrap();
    let mut want = f.clone();
    want[NUM_BUFFERS_OFFSET] = 1;
    want[NUM_BUFFERS_OFFSET + 1] = 0;
    assert_eq!(&got[..], &want[4..]);
    assert_eq!(r.counter("rx_packets"), 1);
    assert_eq!(r.counter("rx_bytes"), 100);
    assert_eq!(r.h.irq.count(), 1);
}

#[test]
fn drops_frames_too_big_for_the_buffers() {
    let m = mem(0x100_0000);
    let mut r = rig(&m);
    r.peer.send(&frame(3000, 1));
    r.peer.send(&frame(50, 2));
    r.rx.add(&[(0x20000, 1526, W)]);
    r.dev.handle_event(TAP_TOKEN);
    // The big one is dropped; the same buffers take the small one.
    assert_eq!(r.counter("rx_dropped"), 1);
    assert_eq!(r.rx.used_idx(), 1);
    assert_eq!(r.rx.used(0), (0, 62));
    let mut got = [0u8; 2];
    m.read_slice(&mut got, GuestAddress(0x20000 + 12)).unwrap();
    assert_eq!(got, [2, 3]);
}

#[test]
fn stops_watching_the_tap_without_buffers() {
    let m = mem(0x100_0000);
    let mut r = rig(&m);
    assert_eq!(r.tokens(), vec![RX_TOKEN, TX_TOKEN, TAP_TOKEN]);
    r.peer.send(&frame(60, 9));
    r.dev.handle_event(TAP_TOKEN);
    // No RX buffers: the tap leaves the watch list, the frame stays queued.
    assert!(r.dev.sources_changed());
    assert_eq!(r.tokens(), vec![RX_TOKEN, TX_TOKEN]);
    assert_eq!(r.rx.used_idx(), 0);
    // The guest adds buffers and kicks: the frame is delivered, and with the ring dry
    // again the tap stays off the list.
    r.rx.add(&[(0x20000, 1526, W)]);
    r.kick_rx();
    assert_eq!(r.rx.used(0), (0, 72));
    r.dev.sources_changed();
    assert_eq!(r.tokens(), vec![RX_TOKEN, TX_TOKEN]);
    // Two buffers: one is left after the frame, so the tap is watched again.
    r.peer.send(&frame(60, 9));
    r.rx.add(&[(0x40000, 1526, W)]);
    r.rx.add(&[(0x50000, 1526, W)]);
    r.kick_rx();
    assert!(r.dev.sources_changed());
    assert_eq!(r.tokens(), vec![RX_TOKEN, TX_TOKEN, TAP_TOKEN]);
    assert_eq!(r.rx.used(1), (1, 72));
    // A spurious tap event with a buffer but no frame consumes nothing.
    r.dev.handle_event(TAP_TOKEN);
    assert_eq!(r.rx.used_idx(), 2);
    assert!(!r.dev.sources_changed());
    r.peer.send(&frame(60, 9));
    r.dev.handle_event(TAP_TOKEN);
    assert_eq!(r.rx.used(2), (2, 72));
}

#[test]
fn refuses_hostile_rx_chains() {
    let m = mem(0x100_0000);
    let mut r = rig(&m);
    r.peer.send(&frame(60, 1));
    r.rx.add(&[(0x20000, 1526, 0)]);
    r.rx.add(&[(0x20000, 20, W)]);
    r.rx.add(&[(0x2000_0000, 1526, W)]);
    r.rx.add(&[(0x20000, 1526, W)]);
    r.dev.handle_event(TAP_TOKEN);
    assert_eq!(r.rx.used_idx(), 4);
    assert_eq!(r.rx.used(0), (0, 0));
    assert_eq!(r.rx.used(1), (1, 0));
    assert_eq!(r.rx.used(2), (2, 0));
    assert_eq!(r.rx.used(3), (3, 72));
    assert_eq!(r.counter("invalid_chains"), 3);
}

#[test]
fn config_features_and_mac() {
    let (tap, _peer) = fake_tap();
    let dev = Net::new(NetConfig {
        id: "eni-0".into(),
        taps: vec![tap],
        mac: Some(MAC),
        enhanced: false,
    })
    .unwrap();
    assert_ne!(dev.avail_features() & 1 << VIRTIO_NET_F_MAC, 0);
    let mut c = [0u8; 10];
    dev.read_config(0, &mut c);
    assert_eq!(&c[..6], &MAC);
    assert_eq!(&c[6..], &[1, 0, 0, 0]);
    dev.read_config(u64::MAX, &mut c);
    assert_eq!(c, [0; 10]);
    assert_eq!(dev.mac(), Some(MAC));
    assert_eq!(dev.device_type(), device_type::NET);

    let (tap, _peer) = fake_tap();
    let dev = Net::new(NetConfig {
        id: "eni-1".into(),
        taps: vec![tap],
        mac: None,
        enhanced: false,
    })
    .unwrap();
    assert_eq!(dev.avail_features() & 1 << VIRTIO_NET_F_MAC, 0);

    let (tap, _peer) = fake_tap();
    let e = Net::new(NetConfig {
        id: "eni-2".into(),
        taps: vec![tap],
        mac: Some([1, 0, 0, 0, 0, 0]),
        enhanced: false,
    });
    assert!(matches!(e, Err(NetError::MulticastMac(_))));
}

#[test]
fn activation_and_reset() {
    let m = mem(0x100_0000);
    let (tap, _peer) = fake_tap();
    let mut dev = Net::new(NetConfig {
        id: "eni-0".into(),
        taps: vec![tap],
        mac: None,
        enhanced: false,
    })
    .unwrap();
    assert!(dev.event_sources().is_empty());
    dev.handle_event(TAP_TOKEN);
    let q = TestQueue::new(&m, 0x1000, 16);
    let (ctx, _h) = activation(&m, vec![q.queue()], VIRTIO_F_VERSION_1);
    assert!(matches!(
        dev.activate(ctx),
        Err(ActivateError::QueueCount {
            expected: 2,
            got: 1
        })
    ));
    let mut r = rig(&m);
    r.dev.handle_event(99);
    r.dev.reset();
    assert!(!r.dev.is_active());
    assert!(r.dev.sources_changed());
    assert!(r.dev.event_sources().is_empty());
    assert_eq!(r.dev.common.retired(), 2);
    let _ = r.m;
}

#[test]
fn tap_errors_park_the_tap_until_a_kick() {
    let m = mem(0x100_0000);
    let mut r = rig(&m);
    r.rx.add(&[(0x20000, 1526, W)]);
    r.dev.taps[0].1 = true;
    r.peer.send(&frame(60, 9));
    r.dev.handle_event(TAP_TOKEN);
    assert_eq!(r.counter("tap_read_errors"), 1);
    assert!(r.dev.sources_changed());
    assert_eq!(r.tokens(), vec![RX_TOKEN, TX_TOKEN]);
    assert_eq!(r.rx.used_idx(), 0);
    // The tap recovers; a TX kick brings it back and the frame comes through.
    r.dev.taps[0].1 = false;
    r.kick_tx();
    assert!(r.dev.sources_changed());
    assert_eq!(r.tokens(), vec![RX_TOKEN, TX_TOKEN, TAP_TOKEN]);
    r.dev.handle_event(TAP_TOKEN);
    assert_eq!(r.rx.used(0), (0, 72));
}

#[test]
fn tx_headers_reach_the_tap_only_as_the_device_builds_them() {
    let m = mem(0x100_0000);
    let mut r = rig(&m);
    // Stray fields with no offload asked for: the tap gets a zero header. The guest's
    // header is split 4 + 8 across descriptors, the frame follows in the second one.
    let mut f = frame(60, 5);
    f[2..12].copy_from_slice(&[9, 0, 7, 0, 1, 0, 2, 0, 0xff, 0xff]);
    m.write_slice(&f[..4], GuestAddress(0x20000)).unwrap();
    m.write_slice(&f[4..], GuestAddress(0x30000)).unwrap();
    r.tx.add(&[(0x20000, 4, 0), (0x30000, (f.len() - 4) as u32, 0)]);
    // Offloads this device did not negotiate: a partial checksum, then TSO.
    let mut csum = frame(60, 6);
    csum[0] = 1;
    m.write_slice(&csum, GuestAddress(0x40000)).unwrap();
    r.tx.add(&[(0x40000, csum.len() as u32, 0)]);
    let mut tso = frame(60, 7);
    tso[1] = 1;
    tso[4] = 0xa8;
    m.write_slice(&tso, GuestAddress(0x50000)).unwrap();
    r.tx.add(&[(0x50000, tso.len() as u32, 0)]);
    r.kick_tx();
    let mut want = frame(60, 5);
    want[..12].fill(0);
    assert_eq!(r.peer.recv().unwrap(), want);
    assert!(r.peer.recv().is_none());
    assert_eq!(r.tx.used_idx(), 3);
    assert_eq!(r.counter("tx_packets"), 1);
    assert_eq!(r.counter("tx_bad_headers"), 2);
    assert_eq!(r.counter("tx_dropped"), 2);
    assert_eq!(r.counter("invalid_chains"), 0);
}
