//! Throughput of the virtio-net device against writing and reading the same tap directly.
//!
//! Usage (as root): `cargo run --release -p strato-devices --example net_throughput
//! [SECONDS [KIND [SIZE]]]` (SECONDS per row pair, 2 by default; KIND `plain`, `enhanced` or
//! `enhanced-mq4` and SIZE `64B` or `64KiB` run one workload, for profiling).
//!
//! The process moves into a network namespace of its own (`unshare(CLONE_NEWNET)`), so the
//! taps it makes never touch the host's network and vanish when it exits. For each device
//! kind (plain; enhanced with offloads, mergeable receive buffers and EVENT_IDX; enhanced
//! with a 4-queue tap and 4 queue pairs) and each frame size (64 bytes; 64 KiB, with a TSO
//! header where offloads are negotiated) it measures:
//!
//! - **TX**: a simulated driver keeps the TX rings full of frames in guest memory and the
//!   device writes them to the tap, against `write` of the same frames from a host buffer.
//!   The kernel takes the frames in and drops them (they are addressed to no one), the
//!   same work for both.
//! - **RX**: the measured tap joins a bridge with a source tap; frames written into the
//!   source (not timed) queue up on the measured tap, then the device moves them into
//!   the driver's receive buffers (the driver re-posts buffers as they come back),
//!   against `read` into a host buffer. Multiqueue frames carry different TCP ports, so
//!   the tap spreads them over its queues.
//!
//! Raw and device rounds alternate, so both see the same machine load. Rounds are timed
//! in the thread's CPU time (user and system: the kernel's share of each read and write
//! included), so other load on a shared machine does not skew one side: the raw side is
//! its loop of reads or writes, the device side its event handler (the simulated
//! driver's work is the guest's). It prints the median bytes and packets per CPU-second
//! over the rounds of each side, and the device/raw ratio.

use std::error::Error;
use std::os::fd::{AsRawFd, RawFd};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strato_devices::event::EventHandler;
use strato_devices::irq::{CountingTrigger, VirtioInterrupt};
use strato_devices::metrics::Metrics;
use strato_devices::virtio::net::{
    rx_token, tap_token, tx_token, Net, NetConfig, Tap, CTRL_TOKEN, QUEUE_SIZE, VNET_HDR_LEN,
};
use strato_devices::virtio::{ActivateContext, ActiveQueue, VirtioDevice};
use virtio_bindings::bindings::virtio_net::{
    VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, VIRTIO_NET_F_CTRL_VQ,
    VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MQ,
    VIRTIO_NET_F_MRG_RXBUF,
};
use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, VolatileSlice};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

type Res<T> = Result<T, Box<dyn Error>>;

/// Ethernet frame sizes measured (the vnet header comes on top). A packet socket sends
/// at most 65534 bytes, so the "64 KiB" frame is 65530.
const SMALL: usize = 64;
const LARGE: usize = 65530;
/// Receive buffer of a mergeable driver (Linux sizes them between 1.5 and 4 KiB).
const MRG_BUF: u32 = 4096;
/// Receive buffer of a driver without mergeable buffers: a whole largest frame.
const BIG_BUF: u32 = 65562;
/// Frames queued on the tap per RX batch.
const RX_BATCH_SMALL: usize = 4096;
const RX_BATCH_LARGE: usize = 512;
/// Each pair's region of guest memory: rings, then TX frames, then RX buffers.
const PAIR_SPAN: u64 = 64 << 20;
const RINGS: u64 = 0x10_0000;
const TX_BUFS: u64 = 0x40_0000;
const RX_BUFS: u64 = 0x200_0000;
const CTRL_RING: u64 = 0x1000;
const CTRL_BUF: u64 = 0x8000;
/// The raw runs' buffers, in the same mapping as the device's (so both see the same kind
/// of memory: page size, NUMA node, cache state).
const RAW_RX: u64 = 0x340_0000;
const RAW_TX: u64 = 0x360_0000;
/// How long a batch of RX frames is left to cross the bridge before the drain is timed.
const SETTLE: Duration = Duration::from_millis(30);

/// A device kind to measure.
#[derive(Clone, Copy)]
struct Kind {
    name: &'static str,
    enhanced: bool,
    pairs: usize,
}

const KINDS: [Kind; 3] = [
    Kind {
        name: "plain",
        enhanced: false,
        pairs: 1,
    },
    Kind {
        name: "enhanced",
        enhanced: true,
        pairs: 1,
    },
    Kind {
        name: "enhanced-mq4",
        enhanced: true,
        pairs: 4,
    },
];

impl Kind {
    /// The features a Linux driver would take: offloads and mergeable buffers when offered.
    fn features(self, dev: &Net) -> u64 {
        let avail = dev.avail_features();
        let mut want = strato_devices::virtio::VIRTIO_F_VERSION_1 | 1 << VIRTIO_NET_F_MAC;
        if self.enhanced {
            want = avail;
        }
        if self.pairs == 1 {
            want &= !(1 << VIRTIO_NET_F_CTRL_VQ | 1 << VIRTIO_NET_F_MQ);
        }
        want & avail
    }
}

/// The driver's half of one split queue, written straight through mapped slices.
struct Ring<'a> {
    desc: VolatileSlice<'a>,
    avail: VolatileSlice<'a>,
    used: VolatileSlice<'a>,
    size: u16,
    avail_idx: u16,
    used_seen: u16,
    /// Heads to offer, oldest first (a driver re-posts buffers in the order they come
    /// back, so mergeable buffers stay in ascending address order).
    free: std::collections::VecDeque<u16>,
}

impl<'a> Ring<'a> {
    /// A ring at `base` (descriptors, available ring 4 KiB later, used ring 4 KiB after
    /// that) and the device's queue over it.
    fn new(mem: &'a GuestMemoryMmap, base: u64, size: u16) -> Res<(Self, Queue)> {
        let n = usize::from(size);
        let ring = Self {
            desc: mem.get_slice(GuestAddress(base), 16 * n)?,
            avail: mem.get_slice(GuestAddress(base + 0x1000), 6 + 2 * n)?,
            used: mem.get_slice(GuestAddress(base + 0x2000), 6 + 8 * n)?,
            size,
            avail_idx: 0,
            used_seen: 0,
            free: (0..size).collect(),
        };
        ring.avail.write_obj(0u32, 0)?;
        ring.used.write_obj(0u32, 0)?;
        let mut q = Queue::new(size)?;
        q.try_set_desc_table_address(GuestAddress(base))?;
        q.try_set_avail_ring_address(GuestAddress(base + 0x1000))?;
        q.try_set_used_ring_address(GuestAddress(base + 0x2000))?;
        q.set_ready(true);
        Ok((ring, q))
    }

    fn set_desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) -> Res<()> {
        self.desc
            .write_obj(Descriptor::new(addr, len, flags, next), 16 * usize::from(i))?;
        Ok(())
    }

    /// Offers every free one-descriptor chain; returns how many.
    fn offer_free(&mut self) -> Res<usize> {
        let n = self.free.len();
        while let Some(head) = self.free.pop_front() {
            let slot = usize::from(self.avail_idx % self.size);
            self.avail.write_obj(head, 4 + 2 * slot)?;
            self.avail_idx = self.avail_idx.wrapping_add(1);
        }
        self.avail.store(self.avail_idx, 2, Ordering::Release)?;
        Ok(n)
    }

    /// Takes back what the device used; returns (entries, bytes).
    fn reap(&mut self) -> Res<(usize, u64)> {
        let used: u16 = self.used.load(2, Ordering::Acquire)?;
        let n = used.wrapping_sub(self.used_seen);
        let mut bytes = 0;
        for k in 0..n {
            let slot = usize::from(self.used_seen.wrapping_add(k) % self.size);
            let id: u32 = self.used.read_obj(4 + 8 * slot)?;
            let len: u32 = self.used.read_obj(8 + 8 * slot)?;
            self.free.push_back(id as u16);
            bytes += u64::from(len);
        }
        self.used_seen = used;
        Ok((usize::from(n), bytes))
    }
}

/// A frame of `len` bytes (vnet header in front): Ethernet, IPv4, TCP to port `flow`.
/// With `tso`, the header asks for checksum and TCP segmentation offload.
fn frame(len: usize, flow: u16, tso: bool) -> Vec<u8> {
    let mut f = vec![0u8; VNET_HDR_LEN + len];
    if tso {
        f[0] = 1; // NEEDS_CSUM
        f[1] = 1; // GSO_TCPV4
        f[2..4].copy_from_slice(&54u16.to_le_bytes());
        f[4..6].copy_from_slice(&1448u16.to_le_bytes());
        f[6..8].copy_from_slice(&34u16.to_le_bytes());
        f[8..10].copy_from_slice(&16u16.to_le_bytes());
    }
    let e = &mut f[VNET_HDR_LEN..];
    e[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    e[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    e[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = (len - 14) as u16;
    let ip = &mut e[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let tcp = &mut e[34..54];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&flow.to_be_bytes());
    tcp[12] = 0x50;
    tcp[13] = 0x10;
    for (i, b) in e[54..].iter_mut().enumerate() {
        *b = i as u8;
    }
    f
}

/// `ip ARGS` inside our namespace.
fn ip(args: &[&str]) -> Res<()> {
    let st = Command::new("ip").args(args).status()?;
    if !st.success() {
        return Err(format!("ip {}: {st}", args.join(" ")).into());
    }
    Ok(())
}

/// What the host (or another guest) sends the guest: a tap on a bridge that the
/// measured tap joins for the RX runs. Frames written into it come out of the measured
/// tap, keeping their TSO header where that tap takes it, segmented where not.
struct Source {
    tap: Tap,
}

impl Source {
    fn new() -> Res<Self> {
        let tap = Tap::open("src%d")?;
        ip(&[
            "link",
            "add",
            "brb",
            "type",
            "bridge",
            "forward_delay",
            "0",
            "stp_state",
            "0",
        ])?;
        for dev in [tap.name(), "brb"] {
            ip(&[
                "link",
                "set",
                "dev",
                dev,
                "mtu",
                "65521",
                "txqueuelen",
                "8192",
                "up",
            ])?;
        }
        ip(&["link", "set", "dev", tap.name(), "master", "brb"])?;
        Ok(Self { tap })
    }

    /// Bridges `ifname` to the source, once frames go through.
    fn join(&self, r: &Rig<'_>, buf: &VolatileSlice<'_>) -> Res<()> {
        ip(&["link", "set", "dev", &r.ifname, "master", "brb"])?;
        let probe = frame(SMALL, 1, false);
        for _ in 0..100 {
            self.send(std::slice::from_ref(&probe))?;
            if rx_raw(r, buf)?.0 > 0 {
                return Ok(());
            }
        }
        Err("the bridge forwards nothing".into())
    }

    /// Sends `frames` (vnet header included) through the bridge, and gives the kernel
    /// time to finish forwarding them (the softirq work must not land in a timed drain).
    fn send(&self, frames: &[Vec<u8>]) -> Res<()> {
        for f in frames {
            // SAFETY: writes from a live buffer.
            let n = unsafe { libc::write(self.tap.as_raw_fd(), f.as_ptr().cast(), f.len()) };
            if n < 0 {
                return Err(std::io::Error::last_os_error().into());
            }
        }
        std::thread::sleep(SETTLE);
        Ok(())
    }
}

/// A device of `kind` over fresh taps, activated by a simulated driver.
struct Rig<'a> {
    dev: Net,
    tx: Vec<Ring<'a>>,
    rx: Vec<Ring<'a>>,
    /// Tap descriptors, for the raw runs.
    fds: Vec<RawFd>,
    ifname: String,
    _evts: Vec<EventFd>,
}

fn rig<'a>(mem: &'a GuestMemoryMmap, kind: Kind, frame_len: usize) -> Res<Rig<'a>> {
    let taps = if kind.pairs > 1 {
        Tap::open_multiqueue("bench%d", kind.pairs)?
    } else {
        vec![Tap::open("bench%d")?]
    };
    let ifname = taps[0].name().to_owned();
    let fds: Vec<RawFd> = taps.iter().map(|t| t.as_raw_fd()).collect();
    ip(&[
        "link",
        "set",
        "dev",
        &ifname,
        "mtu",
        "65521",
        "txqueuelen",
        "8192",
        "up",
    ])?;
    let mut dev = Net::new(NetConfig {
        id: "bench".into(),
        taps,
        mac: Some([0x02, 0, 0, 0, 0, 0x02]),
        enhanced: kind.enhanced,
    })?;
    let features = kind.features(&dev);
    let tso = features & 1 << VIRTIO_NET_F_GUEST_TSO4 != 0;
    let mergeable = features & 1 << VIRTIO_NET_F_MRG_RXBUF != 0;
    let (mut tx, mut rx, mut queues, mut evts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for p in 0..kind.pairs {
        let base = PAIR_SPAN * p as u64;
        let (r, rq) = Ring::new(mem, base + RINGS, QUEUE_SIZE)?;
        let (t, tq) = Ring::new(mem, base + RINGS + 0x4000, QUEUE_SIZE)?;
        let buf = if mergeable { MRG_BUF } else { BIG_BUF };
        let f = frame(frame_len, 5000 + p as u16, tso && frame_len == LARGE);
        // As the raw runs reuse one host buffer, every TX descriptor points at the same
        // frame and RX frames land in the same place: without mergeable buffers each
        // descriptor is that whole buffer; with them, descriptor i is 4 KiB piece i mod 32
        // of a 128 KiB area (32 divides the ring size, so the 17 chains a largest frame
        // takes, re-posted in order, never overlap). What the device pays for is then its
        // own work, not a larger cache footprint than the raw run's.
        mem.write_slice(&f, GuestAddress(base + TX_BUFS))?;
        let pieces = 32;
        for i in 0..QUEUE_SIZE {
            let rx_at = if mergeable {
                base + RX_BUFS + u64::from(i) % pieces * u64::from(buf)
            } else {
                base + RX_BUFS
            };
            r.set_desc(i, rx_at, buf, VRING_DESC_F_WRITE as u16, 0)?;
            t.set_desc(i, base + TX_BUFS, f.len() as u32, 0, 0)?;
        }
        for (index, q) in [(2 * p, rq), (2 * p + 1, tq)] {
            let evt = EventFd::new(EFD_NONBLOCK)?;
            queues.push(ActiveQueue {
                index,
                queue: q,
                evt: evt.try_clone()?,
            });
            evts.push(evt);
        }
        rx.push(r);
        tx.push(t);
    }
    let mut ctrl = None;
    if features & 1 << VIRTIO_NET_F_MQ != 0 {
        let (c, cq) = Ring::new(mem, CTRL_RING, 16)?;
        let evt = EventFd::new(EFD_NONBLOCK)?;
        queues.push(ActiveQueue {
            index: 2 * kind.pairs,
            queue: cq,
            evt: evt.try_clone()?,
        });
        evts.push(evt);
        ctrl = Some(c);
    }
    dev.activate(ActivateContext {
        mem: mem.clone(),
        queues,
        acked_features: features,
        interrupt: Arc::new(VirtioInterrupt::new(Arc::new(CountingTrigger::default()))),
    })?;
    if let Some(mut c) = ctrl {
        // VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, as Linux sends it at probe time.
        let pairs = kind.pairs as u16;
        let cmd = [
            VIRTIO_NET_CTRL_MQ as u8,
            VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET as u8,
            pairs as u8,
            (pairs >> 8) as u8,
        ];
        mem.write_slice(&cmd, GuestAddress(CTRL_BUF))?;
        c.set_desc(0, CTRL_BUF, 4, VRING_DESC_F_NEXT as u16, 1)?;
        c.set_desc(1, CTRL_BUF + 0x100, 1, VRING_DESC_F_WRITE as u16, 0)?;
        c.free = [0].into();
        c.offer_free()?;
        dev.handle_event(CTRL_TOKEN);
        if dev.active_pairs() != kind.pairs {
            return Err("the device refused the queue pairs".into());
        }
    }
    for r in &mut rx {
        r.offer_free()?;
    }
    Ok(Rig {
        dev,
        tx,
        rx,
        fds,
        ifname,
        _evts: evts,
    })
}

fn counter(dev: &Net, name: &str) -> u64 {
    dev.counters()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map_or(0, |(_, v)| v)
}

/// The calling thread's CPU time (user and system), which other processes on a shared
/// machine cannot inflate the way they inflate wall time.
struct CpuClock(Duration);

impl CpuClock {
    fn now() -> Self {
        // SAFETY: timespec is plain data; clock_gettime fills it.
        let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: a valid clock and a live timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        Self(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }

    fn elapsed(&self) -> Duration {
        Self::now().0.saturating_sub(self.0)
    }
}

/// The rounds of one side of a comparison.
#[derive(Default)]
struct Tally {
    /// (bytes/s, frames/s) of each round.
    rounds: Vec<(f64, f64)>,
}

impl Tally {
    fn add(&mut self, t: Duration, frames: u64, bytes: u64) {
        let s = t.as_secs_f64().max(1e-9);
        self.rounds.push((bytes as f64 / s, frames as f64 / s));
    }

    /// Median bytes/s and frames/s over the rounds: the machine is shared, and a median
    /// ignores the rounds another process stole time from.
    fn rates(&self) -> (f64, f64) {
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(0.0)
        };
        (
            median(self.rounds.iter().map(|r| r.0).collect()),
            median(self.rounds.iter().map(|r| r.1).collect()),
        )
    }
}

/// Runs the device's event handler for `token`; returns the CPU time it took. Only this
/// is the device's time: the simulated driver's work is the guest's.
fn device_event(dev: &mut Net, token: u32) -> Duration {
    let t = CpuClock::now();
    dev.handle_event(token);
    t.elapsed()
}

/// `rounds` TX rounds through the device: every pair's ring filled, kicked and reaped.
/// Returns (device CPU time, frames, bytes) sent.
fn tx_device(r: &mut Rig<'_>, rounds: usize) -> Res<(Duration, u64, u64)> {
    let (f0, b0) = (counter(&r.dev, "tx_packets"), counter(&r.dev, "tx_bytes"));
    let mut time = Duration::ZERO;
    for _ in 0..rounds {
        for p in 0..r.tx.len() {
            r.tx[p].offer_free()?;
            time += device_event(&mut r.dev, tx_token(p));
            r.tx[p].reap()?;
        }
    }
    let frames = counter(&r.dev, "tx_packets") - f0;
    if frames == 0 {
        return Err("the device sent nothing".into());
    }
    Ok((time, frames, counter(&r.dev, "tx_bytes") - b0))
}

/// The same frames written straight to the taps.
fn tx_raw(r: &Rig<'_>, frames: &[VolatileSlice<'_>], rounds: usize) -> Res<(u64, u64)> {
    let (mut n, mut bytes) = (0u64, 0u64);
    for _ in 0..rounds {
        for (p, &fd) in r.fds.iter().enumerate() {
            let f = &frames[p % frames.len()];
            for _ in 0..QUEUE_SIZE {
                // SAFETY: writes from a mapped buffer of `f.len()` bytes.
                let w = unsafe { libc::write(fd, f.ptr_guard().as_ptr().cast(), f.len()) };
                if w < 0 {
                    return Err(std::io::Error::last_os_error().into());
                }
                n += 1;
                bytes += (f.len() - VNET_HDR_LEN) as u64;
            }
        }
    }
    Ok((n, bytes))
}

/// Moves whatever the taps hold into the driver's buffers; returns (device CPU time,
/// frames, bytes).
fn rx_device(r: &mut Rig<'_>) -> Res<(Duration, u64, u64)> {
    let (f0, b0) = (counter(&r.dev, "rx_packets"), counter(&r.dev, "rx_bytes"));
    let mut time = Duration::ZERO;
    loop {
        let before = counter(&r.dev, "rx_packets");
        for k in 0..r.fds.len() {
            time += device_event(&mut r.dev, tap_token(k));
        }
        for (p, ring) in r.rx.iter_mut().enumerate() {
            ring.reap()?;
            if ring.offer_free()? > 0 {
                time += device_event(&mut r.dev, rx_token(p));
            }
        }
        if counter(&r.dev, "rx_packets") == before {
            break;
        }
    }
    Ok((
        time,
        counter(&r.dev, "rx_packets") - f0,
        counter(&r.dev, "rx_bytes") - b0,
    ))
}

/// Reads whatever the taps hold into a host buffer; returns (frames, bytes).
fn rx_raw(r: &Rig<'_>, buf: &VolatileSlice<'_>) -> Res<(u64, u64)> {
    let (mut n, mut bytes) = (0u64, 0u64);
    loop {
        let mut got = false;
        for &fd in &r.fds {
            // SAFETY: reads into a mapped buffer of `buf.len()` bytes.
            let len = unsafe { libc::read(fd, buf.ptr_guard_mut().as_ptr().cast(), buf.len()) };
            if len > 0 {
                got = true;
                n += 1;
                bytes += len as u64 - VNET_HDR_LEN as u64;
            }
        }
        if !got {
            return Ok((n, bytes));
        }
    }
}

/// Drains anything left on the taps (frames the kernel queued, e.g. IPv6 router
/// solicitations), so a measurement starts empty.
fn drain(r: &Rig<'_>, buf: &VolatileSlice<'_>) {
    let _ = rx_raw(r, buf);
}

fn bench(
    mem: &GuestMemoryMmap,
    source: &Source,
    kind: Kind,
    len: usize,
    target: Duration,
) -> Res<Vec<String>> {
    let mut r = rig(mem, kind, len)?;
    let features = kind.features(&r.dev);
    let tso = len == LARGE && features & 1 << VIRTIO_NET_F_GUEST_TSO4 != 0;
    let offloads = if features & 1 << VIRTIO_NET_F_GUEST_CSUM != 0 {
        "offloads"
    } else {
        "no offloads"
    };
    let mut frames = Vec::new();
    for p in 0..kind.pairs {
        let f = frame(len, 5000 + p as u16, tso);
        let at = GuestAddress(RAW_TX + p as u64 * 0x1_0100);
        mem.write_slice(&f, at)?;
        frames.push(mem.get_slice(at, f.len())?);
    }
    let buf = mem.get_slice(GuestAddress(RAW_RX), 70000)?;
    drain(&r, &buf);

    // TX.
    let rounds = if len == LARGE { 2 } else { 16 };
    let (mut raw, mut dev) = (Tally::default(), Tally::default());
    tx_raw(&r, &frames, 1)?;
    tx_device(&mut r, 1)?;
    let start = Instant::now();
    while start.elapsed() < target {
        let t = CpuClock::now();
        let (n, b) = tx_raw(&r, &frames, rounds)?;
        raw.add(t.elapsed(), n, b);
        let (t, n, b) = tx_device(&mut r, rounds)?;
        dev.add(t, n, b);
    }
    let mut rows = vec![row("tx", kind, len, offloads, &raw, &dev)];

    // RX: a batch queued on the tap through the bridge, then drained by one side; sides
    // alternate.
    source.join(&r, &buf)?;
    let batch = if len == LARGE {
        RX_BATCH_LARGE
    } else {
        RX_BATCH_SMALL
    };
    let flows: Vec<Vec<u8>> = (0..batch)
        .map(|i| frame(len, 6000 + (i % 64) as u16, tso))
        .collect();
    // One round each untimed: the first touch of the buffers faults their pages in.
    for _ in 0..2 {
        drain(&r, &buf);
        source.send(&flows)?;
        rx_raw(&r, &buf)?;
        drain(&r, &buf);
        source.send(&flows)?;
        rx_device(&mut r)?;
    }
    let (mut raw, mut dev) = (Tally::default(), Tally::default());
    let start = Instant::now();
    while start.elapsed() < target {
        drain(&r, &buf);
        source.send(&flows)?;
        let t = CpuClock::now();
        let (n, b) = rx_raw(&r, &buf)?;
        raw.add(t.elapsed(), n, b);
        drain(&r, &buf);
        source.send(&flows)?;
        let (t, n, b) = rx_device(&mut r)?;
        dev.add(t, n, b);
    }
    if dev.rates().1 == 0.0 || raw.rates().1 == 0.0 {
        return Err(format!("{}: nothing received", kind.name).into());
    }
    rows.push(row("rx", kind, len, offloads, &raw, &dev));
    Ok(rows)
}

fn row(dir: &str, kind: Kind, len: usize, offloads: &str, raw: &Tally, dev: &Tally) -> String {
    let (rb, rp) = raw.rates();
    let (db, dp) = dev.rates();
    let size = if len == LARGE { "64KiB" } else { "64B" };
    format!(
        "{dir} {:13} {size:6} {offloads:11} raw {:8.1} MiB/s {:9.0} pkt/s  device {:8.1} MiB/s {:9.0} pkt/s  ratio {:.2}",
        kind.name,
        rb / (1 << 20) as f64,
        rp,
        db / (1 << 20) as f64,
        dp,
        db / rb
    )
}

fn main() -> Res<()> {
    let secs: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(2.0);
    // SAFETY: changes only this (still single-threaded) process's network namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNET): {} (run as root)",
            std::io::Error::last_os_error()
        )
        .into());
    }
    // Nothing but our frames on the taps.
    for conf in ["all", "default"] {
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6"), "1");
    }
    let source = Source::new()?;
    let pairs = KINDS.iter().map(|k| k.pairs).max().unwrap_or(1);
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), PAIR_SPAN as usize * pairs)])?;
    let target = Duration::from_secs_f64(secs / 2.0);
    println!("virtio-net device vs. the same tap read and written directly; {secs} s per row pair");
    // Optional filters, for profiling one workload: a kind name and "64B" or "64KiB".
    let only_kind = std::env::args().nth(2);
    let only_size = std::env::args().nth(3);
    for kind in KINDS {
        if only_kind.as_deref().is_some_and(|k| k != kind.name) {
            continue;
        }
        for len in [SMALL, LARGE] {
            let size = if len == LARGE { "64KiB" } else { "64B" };
            if only_size.as_deref().is_some_and(|s| s != size) {
                continue;
            }
            for line in bench(&mem, &source, kind, len, target)? {
                println!("{line}");
            }
        }
    }
    Ok(())
}
