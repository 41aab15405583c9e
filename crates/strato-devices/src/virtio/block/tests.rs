#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use virtio_bindings::bindings::virtio_blk::{
    VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN,
    VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_WRITE_ZEROES,
};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::desc::RawDescriptor;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::tempfile::TempFile;

use super::*;
use crate::irq::VIRTIO_INT_CONFIG;
use crate::virtio::test_utils::{activation, counter, mem, Handles, TestQueue, N, W};

const HDR: u64 = 0x10000;
const DATA: u64 = 0x20000;
const STATUS: u64 = 0x90000;
const IMAGE_LEN: usize = 1 << 20;
const OK: u8 = VIRTIO_BLK_S_OK as u8;
const IOERR: u8 = VIRTIO_BLK_S_IOERR as u8;
const UNSUPP: u8 = VIRTIO_BLK_S_UNSUPP as u8;

fn image() -> TempFile {
    let t = TempFile::new_with_prefix(std::env::temp_dir().join("strato-blk-test")).unwrap();
    let data: Vec<u8> = (0..IMAGE_LEN)
        .map(|i| (i / 512) as u8 ^ (i % 7) as u8)
        .collect();
    t.as_file().write_all(&data).unwrap();
    t
}

fn block(path: Option<&Path>, read_only: bool) -> Block {
    Block::new(BlockConfig {
        id: "vol-0123456789abcdef0".into(),
        path: path.map(Path::to_owned),
        read_only,
    })
    .unwrap()
}

struct Rig<'a> {
    dev: Block,
    q: TestQueue<'a>,
    act: Handles,
    m: &'a GuestMemoryMmap,
}

fn rig<'a>(m: &'a GuestMemoryMmap, dev: Block) -> Rig<'a> {
    let mut dev = dev;
    let q = TestQueue::new(m, 0x1000, QUEUE_SIZE);
    let (ctx, act) = activation(m, vec![q.queue()], VIRTIO_F_VERSION_1);
    dev.activate(ctx).unwrap();
    Rig { dev, q, act, m }
}

impl Rig<'_> {
    fn header(&self, t: u32, sector: u64) {
        self.m.write_obj(t, GuestAddress(HDR)).unwrap();
        self.m.write_obj(0u32, GuestAddress(HDR + 4)).unwrap();
        self.m.write_obj(sector, GuestAddress(HDR + 8)).unwrap();
        self.m.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
    }

    fn kick(&mut self) {
        self.act.evts[0].write(1).unwrap();
        self.dev.handle_event(QUEUE_TOKEN);
    }

    /// Submits one chain, runs the queue and returns (status byte, used length).
    fn submit(&mut self, descs: &[(u64, u32, u16)]) -> (u8, u32) {
        let before = self.q.used_idx();
        let head = self.q.add(descs);
        self.kick();
        assert_eq!(self.q.used_idx(), before.wrapping_add(1));
        let (id, len) = self.q.used(before);
        assert_eq!(id, u32::from(head));
        (self.m.read_obj(GuestAddress(STATUS)).unwrap(), len)
    }

    fn counter(&self, name: &str) -> u64 {
        counter(&self.dev, name)
    }
}

fn read_chain(len: u32) -> Vec<(u64, u32, u16)> {
    vec![(HDR, 16, 0), (DATA, len, W), (STATUS, 1, W)]
}

#[test]
fn reads_and_writes_through_the_queue() {
    let img = image();
    let m = mem(0x100_0000);
    let mut r = rig(&m, block(Some(img.as_path()), false));
    r.header(VIRTIO_BLK_T_IN, 3);
    assert_eq!(r.submit(&read_chain(1024)), (OK, 1025));
    let mut got = vec![0u8; 1024];
    m.read_slice(&mut got, GuestAddress(DATA)).unwrap();
    let mut want = vec![0u8; 1024];
    img.as_file().read_exact_at(&mut want, 3 * 512).unwrap();
    assert_eq!(got, want);
    assert_eq!(r.act.irq.count(), 1);

    // Write two segments, read back from the file.
    m.write_slice(&[0xab; 512], GuestAddress(DATA)).unwrap();
    m.write_slice(&[0xcd; 512], GuestAddress(DATA + 0x8000))
        .unwrap();
    r.header(VIRTIO_BLK_T_OUT, 10);
    let st = r.submit(&[
        (HDR, 16, 0),
        (DATA, 512, 0),
        (DATA + 0x8000, 512, 0),
        (STATUS, 1, W),
    ]);
    assert_eq!(st, (OK, 1));
    let mut back = vec![0u8; 1024];
    img.as_file().read_exact_at(&mut back, 10 * 512).unwrap();
    assert!(back[..512].iter().all(|&b| b == 0xab));
    assert!(back[512..].iter().all(|&b| b == 0xcd));

    r.header(VIRTIO_BLK_T_FLUSH, 0);
    assert_eq!(r.submit(&[(HDR, 16, 0), (STATUS, 1, W)]), (OK, 1));
    assert_eq!(r.counter("read_ops"), 1);
    assert_eq!(r.counter("read_bytes"), 1024);
    assert_eq!(r.counter("write_ops"), 1);
    assert_eq!(r.counter("write_bytes"), 1024);
    assert_eq!(r.counter("flush_ops"), 1);
    assert_eq!(r.counter("queue_events"), 3);
}

#[test]
fn one_interrupt_per_batch() {
    let img = image();
    let m = mem(0x100_0000);
    let mut r = rig(&m, block(Some(img.as_path()), false));
    for i in 0..5u64 {
        let hdr = HDR + i * 0x100;
        m.write_obj(VIRTIO_BLK_T_IN, GuestAddress(hdr)).unwrap();
        m.write_obj(i, GuestAddress(hdr + 8)).unwrap();
        r.q.add(&[
            (hdr, 16, 0),
            (DATA + i * 0x1000, 512, W),
            (STATUS + i, 1, W),
        ]);
    }
    r.kick();
    assert_eq!(r.q.used_idx(), 5);
    assert_eq!(r.act.irq.count(), 1);
    assert_eq!(r.act.interrupt.status(), crate::irq::VIRTIO_INT_VRING);
    // A spurious kick with nothing to do raises nothing.
    r.kick();
    assert_eq!(r.act.irq.count(), 1);
}

#[test]
fn hostile_chains_get_ioerr_or_are_dropped() {
    let img = image();
    let m = mem(0x100_0000);
    let mut r = rig(&m, block(Some(img.as_path()), false));
    r.header(VIRTIO_BLK_T_IN, 0);
    // Data outside guest memory.
    assert_eq!(
        r.submit(&[(HDR, 16, 0), (0x2000_0000, 512, W), (STATUS, 1, W)]),
        (IOERR, 1)
    );
    // Data straddling the end of guest memory.
    assert_eq!(
        r.submit(&[(HDR, 16, 0), (0xfffe00, 1024, W), (STATUS, 1, W)]),
        (IOERR, 1)
    );
    // Header outside guest memory, header writable, header short.
    assert_eq!(
        r.submit(&[(0x2000_0000, 16, 0), (DATA, 512, W), (STATUS, 1, W)]),
        (IOERR, 1)
    );
    r.header(VIRTIO_BLK_T_IN, 0);
    assert_eq!(
        r.submit(&[(HDR, 16, W), (DATA, 512, W), (STATUS, 1, W)]),
        (IOERR, 1)
    );
    r.header(VIRTIO_BLK_T_IN, 0);
    assert_eq!(
        r.submit(&[(HDR, 15, 0), (DATA, 512, W), (STATUS, 1, W)]),
        (IOERR, 1)
    );
    // Writable buffer for a write; readable buffer for a read.
    r.header(VIRTIO_BLK_T_OUT, 0);
    assert_eq!(
        r.submit(&[(HDR, 16, 0), (DATA, 512, W), (STATUS, 1, W)]),
        (IOERR, 1)
    );
    r.header(VIRTIO_BLK_T_IN, 0);
    assert_eq!(
        r.submit(&[(HDR, 16, 0), (DATA, 512, 0), (STATUS, 1, W)]),
        (IOERR, 1)
    );
    // Zero-length data buffers are harmless.
    r.header(VIRTIO_BLK_T_IN, 0);
    assert_eq!(
        r.submit(&[(HDR, 16, 0), (DATA, 0, W), (DATA, 512, W), (STATUS, 1, W)]),
        (OK, 513)
    );
    // Readable status, zero-length status, missing status: dropped with used length 0.
    r.header(VIRTIO_BLK_T_IN, 0);
    assert_eq!(
        r.submit(&[(HDR, 16, 0), (DATA, 512, W), (STATUS, 1, 0)]),
        (0xff, 0)
    );
    assert_eq!(
        r.submit(&[(HDR, 16, 0), (DATA, 512, W), (STATUS, 0, W)]),
        (0xff, 0)
    );
    assert_eq!(r.submit(&[(HDR, 16, 0)]), (0xff, 0));
    assert_eq!(
        r.submit(&[(HDR, 16, 0), (DATA, 512, W), (0x2000_0000, 1, W)]),
        (0xff, 0)
    );
    assert_eq!(r.counter("invalid_requests"), 11);
    assert_eq!(r.counter("read_ops"), 1);
}

#[test]
fn loops_and_bad_heads_do_not_hang() {
    let img = image();
    let m = mem(0x100_0000);
    let mut r = rig(&m, block(Some(img.as_path()), false));
    r.header(VIRTIO_BLK_T_IN, 0);
    // 0 -> 1 -> 2 -> 1 -> ...
    let raw = [
        RawDescriptor::from(Descriptor::new(HDR, 16, N, 1)),
        RawDescriptor::from(Descriptor::new(DATA, 512, N | W, 2)),
        RawDescriptor::from(Descriptor::new(STATUS, 1, N | W, 1)),
    ];
    r.q.add_raw_at(0, &raw);
    r.kick();
    assert_eq!(r.q.used_idx(), 1);
    assert_eq!(r.q.used(0), (0, 0));
    // A head past the descriptor table: not even returnable.
    r.q.offer(QUEUE_SIZE + 3);
    r.kick();
    assert_eq!(r.q.used_idx(), 1);
    assert_eq!(r.counter("invalid_requests"), 2);
    // A descriptor pointing at a table entry that points far away.
    r.q.add_raw_at(
        10,
        &[RawDescriptor::from(Descriptor::new(HDR, 16, N, 0xffff))],
    );
    r.kick();
    assert_eq!(r.q.used_idx(), 2);
    assert_eq!(r.q.used(1), (10, 0));
    // An available index far ahead of the device is refused as a whole.
    r.q.set_avail_idx(0x8000);
    r.kick();
    assert_eq!(r.q.used_idx(), 2);
}

#[test]
fn oversized_and_out_of_range_requests() {
    let img = image();
    let m = mem(0x500_0000);
    let mut r = rig(&m, block(Some(img.as_path()), false));
    r.header(VIRTIO_BLK_T_IN, 0);
    let big = [
        (HDR, 16, 0),
        (0x100_0000, 0x400_0000, W),
        (DATA, 512, W),
        (STATUS, 1, W),
    ];
    assert_eq!(r.submit(&big), (IOERR, 1));
    let sectors = (IMAGE_LEN / 512) as u64;
    r.header(VIRTIO_BLK_T_IN, sectors - 1);
    assert_eq!(r.submit(&read_chain(512)), (OK, 513));
    r.header(VIRTIO_BLK_T_IN, sectors - 1);
    assert_eq!(r.submit(&read_chain(1024)), (IOERR, 1));
    r.header(VIRTIO_BLK_T_IN, sectors);
    assert_eq!(r.submit(&read_chain(512)), (IOERR, 1));
    for sector in [u64::MAX, u64::MAX - 1, u64::MAX >> 9, (u64::MAX >> 9) + 1] {
        r.header(VIRTIO_BLK_T_OUT, sector);
        assert_eq!(
            r.submit(&[(HDR, 16, 0), (DATA, 512, 0), (STATUS, 1, W)]),
            (IOERR, 1)
        );
    }
    // Not a whole sector.
    r.header(VIRTIO_BLK_T_IN, 0);
    assert_eq!(r.submit(&read_chain(100)), (IOERR, 1));
}

#[test]
fn get_id_fills_what_fits() {
    let m = mem(0x100_0000);
    let img = image();
    let mut r = rig(&m, block(Some(img.as_path()), false));
    r.header(VIRTIO_BLK_T_GET_ID, 0);
    m.write_slice(&[0xee; 32], GuestAddress(DATA)).unwrap();
    assert_eq!(r.submit(&read_chain(20)), (OK, 21));
    let mut id = [0u8; 21];
    m.read_slice(&mut id, GuestAddress(DATA)).unwrap();
    assert_eq!(&id[..20], b"vol-0123456789abcdef");
    assert_eq!(id[20], 0xee);
    // A short buffer gets a truncated ID.
    m.write_slice(&[0xee; 32], GuestAddress(DATA)).unwrap();
    r.header(VIRTIO_BLK_T_GET_ID, 0);
    assert_eq!(r.submit(&read_chain(8)), (OK, 9));
    let mut id = [0u8; 9];
    m.read_slice(&mut id, GuestAddress(DATA)).unwrap();
    assert_eq!(&id, b"vol-0123\xee");
    // Split over two buffers (with an empty one between), and no buffer at all.
    r.header(VIRTIO_BLK_T_GET_ID, 0);
    let chain = [
        (HDR, 16, 0),
        (DATA, 4, W),
        (DATA, 0, W),
        (DATA + 0x100, 64, W),
        (STATUS, 1, W),
    ];
    assert_eq!(r.submit(&chain), (OK, 21));
    let mut id = [0u8; 18];
    m.read_slice(&mut id, GuestAddress(DATA + 0x100)).unwrap();
    assert_eq!(&id, b"0123456789abcdef\0\0");
    r.header(VIRTIO_BLK_T_GET_ID, 0);
    assert_eq!(r.submit(&[(HDR, 16, 0), (STATUS, 1, W)]), (OK, 1));
    // A short ID is NUL-padded.
    let d = Block::new(BlockConfig {
        id: "d1".into(),
        path: None,
        read_only: false,
    })
    .unwrap();
    assert_eq!(&d.serial[..3], b"d1\0");
}

#[test]
fn read_only_disks_refuse_writes() {
    let img = image();
    let m = mem(0x100_0000);
    let dev = block(Some(img.as_path()), true);
    assert_ne!(dev.avail_features() & 1 << VIRTIO_BLK_F_RO, 0);
    assert_eq!(dev.avail_features() & 1 << VIRTIO_BLK_F_DISCARD, 0);
    let mut r = rig(&m, dev);
    m.write_slice(&[0x55; 512], GuestAddress(DATA)).unwrap();
    r.header(VIRTIO_BLK_T_OUT, 0);
    assert_eq!(
        r.submit(&[(HDR, 16, 0), (DATA, 512, 0), (STATUS, 1, W)]),
        (IOERR, 1)
    );
    let mut back = [0u8; 512];
    img.as_file().read_exact_at(&mut back, 0).unwrap();
    assert_ne!(back, [0x55; 512]);
    r.header(VIRTIO_BLK_T_IN, 0);
    assert_eq!(r.submit(&read_chain(512)), (OK, 513));
    assert_eq!(r.counter("io_errors"), 1);
}

#[test]
fn unsupported_types_get_unsupp() {
    let img = image();
    let m = mem(0x100_0000);
    let mut r = rig(&m, block(Some(img.as_path()), false));
    for t in [2u32, 5, 14, 0xdead_beef] {
        r.header(t, 0);
        assert_eq!(r.submit(&read_chain(512)), (UNSUPP, 1));
    }
    assert_eq!(r.counter("unsupported"), 4);
}

#[test]
fn discard_and_write_zeroes() {
    let img = image();
    let m = mem(0x100_0000);
    let mut r = rig(&m, block(Some(img.as_path()), false));
    let seg = |at: u64, sector: u64, n: u32, flags: u32| {
        m.write_obj(sector, GuestAddress(at)).unwrap();
        m.write_obj(n, GuestAddress(at + 8)).unwrap();
        m.write_obj(flags, GuestAddress(at + 12)).unwrap();
    };
    seg(DATA, 8, 8, 0);
    r.header(VIRTIO_BLK_T_DISCARD, 0);
    assert_eq!(
        r.submit(&[(HDR, 16, 0), (DATA, 16, 0), (STATUS, 1, W)]),
        (OK, 1)
    );
    seg(DATA, 64, 8, 0);
    seg(DATA + 16, 128, 1, 1);
    r.header(VIRTIO_BLK_T_WRITE_ZEROES, 0);
    assert_eq!(
        r.submit(&[(HDR, 16, 0), (DATA, 32, 0), (STATUS, 1, W)]),
        (OK, 1)
    );
    let mut buf = vec![0xffu8; 4096];
    img.as_file().read_exact_at(&mut buf, 64 * 512).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
    img.as_file()
        .read_exact_at(&mut buf[..512], 128 * 512)
        .unwrap();
    assert!(buf[..512].iter().all(|&b| b == 0));
    // Unknown flags: UNSUPP; past the end: IOERR.
    seg(DATA, 8, 8, 2);
    r.header(VIRTIO_BLK_T_WRITE_ZEROES, 0);
    assert_eq!(
        r.submit(&[(HDR, 16, 0), (DATA, 16, 0), (STATUS, 1, W)]),
        (UNSUPP, 1)
    );
    seg(DATA, (IMAGE_LEN / 512) as u64, 1, 0);
    r.header(VIRTIO_BLK_T_DISCARD, 0);
    assert_eq!(
        r.submit(&[(HDR, 16, 0), (DATA, 16, 0), (STATUS, 1, W)]),
        (IOERR, 1)
    );
    assert_eq!(r.counter("discard_ops"), 1);
    assert_eq!(r.counter("write_zeroes_ops"), 1);
}

#[test]
fn empty_slot_then_hot_attach_then_detach() {
    let img = image();
    let m = mem(0x100_0000);
    let dev = block(None, false);
    assert!(!dev.is_attached());
    assert_eq!(dev.path(), None);
    assert_eq!(dev.capacity(), 0);
    let mut r = rig(&m, dev);
    let mut cap = [0xffu8; 8];
    r.dev.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 0);
    for t in [VIRTIO_BLK_T_IN, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID] {
        r.header(t, 0);
        assert_eq!(
            r.submit(&read_chain(if t == VIRTIO_BLK_T_IN { 0 } else { 20 }))
                .0,
            IOERR
        );
    }
    r.header(VIRTIO_BLK_T_IN, 0);
    assert_eq!(r.submit(&read_chain(512)).0, IOERR);

    let irqs = r.act.irq.count();
    r.dev.attach(img.as_path(), false).unwrap();
    assert!(r.dev.is_attached());
    assert_eq!(r.dev.path(), Some(img.as_path()));
    assert_eq!(r.dev.config_generation(), 1);
    assert_eq!(r.act.irq.count(), irqs + 1);
    assert_ne!(r.act.interrupt.status() & VIRTIO_INT_CONFIG, 0);
    r.dev.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), (IMAGE_LEN / 512) as u64);
    r.header(VIRTIO_BLK_T_IN, 0);
    assert_eq!(r.submit(&read_chain(512)), (OK, 513));

    r.dev.detach().unwrap();
    assert_eq!(r.dev.config_generation(), 2);
    assert_eq!(r.act.irq.count(), irqs + 3);
    r.dev.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 0);
    r.header(VIRTIO_BLK_T_IN, 0);
    assert_eq!(r.submit(&read_chain(512)).0, IOERR);
    assert!(matches!(r.dev.detach(), Err(BlockError::NotAttached)));
    assert!(r
        .dev
        .attach(Path::new("/nonexistent/strato.img"), false)
        .is_err());
    assert_eq!(r.counter("config_changes"), 2);
}

#[test]
fn attach_while_inactive_raises_no_interrupt() {
    let img = image();
    let mut dev = block(None, true);
    dev.attach(img.as_path(), true).unwrap();
    assert_eq!(dev.config_generation(), 1);
    assert_eq!(dev.capacity(), (IMAGE_LEN / 512) as u64);
}

#[test]
fn config_space_layout_and_odd_reads() {
    let img = image();
    let dev = block(Some(img.as_path()), false);
    let mut c = [0u8; CONFIG_LEN];
    dev.read_config(0, &mut c);
    assert_eq!(
        u64::from_le_bytes(c[0..8].try_into().unwrap()),
        (IMAGE_LEN / 512) as u64
    );
    assert_eq!(u32::from_le_bytes(c[12..16].try_into().unwrap()), 254);
    assert_eq!(u32::from_le_bytes(c[20..24].try_into().unwrap()), 512);
    let mut b = [0xffu8; 4];
    dev.read_config(1, &mut b);
    assert_eq!(b, c[1..5]);
    dev.read_config(58, &mut b);
    assert_eq!(b, [0, 0, 0, 0]);
    dev.read_config(u64::MAX, &mut b);
    assert_eq!(b, [0; 4]);
    let mut dev = dev;
    dev.write_config(0, &[1, 2, 3]);
    dev.read_config(0, &mut c[..8]);
    assert_eq!(
        u64::from_le_bytes(c[0..8].try_into().unwrap()),
        (IMAGE_LEN / 512) as u64
    );
}

#[test]
fn event_glue_follows_activation() {
    let img = image();
    let m = mem(0x100_0000);
    let mut dev = block(Some(img.as_path()), false);
    assert!(dev.event_sources().is_empty());
    assert!(!dev.is_active());
    // Wrong queue count.
    let q = TestQueue::new(&m, 0x1000, 16);
    let (ctx, _) = activation(&m, vec![q.queue(), q.queue()], VIRTIO_F_VERSION_1);
    assert!(matches!(
        dev.activate(ctx),
        Err(ActivateError::QueueCount {
            expected: 1,
            got: 2
        })
    ));
    assert!(!dev.sources_changed());

    let (ctx, _act) = activation(&m, vec![q.queue()], VIRTIO_F_VERSION_1);
    dev.activate(ctx).unwrap();
    assert!(dev.is_active());
    assert!(dev.sources_changed());
    assert!(!dev.sources_changed());
    let sources = dev.event_sources();
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].token, QUEUE_TOKEN);
    // An unknown token does nothing.
    dev.handle_event(7);
    dev.reset();
    assert!(!dev.is_active());
    assert!(dev.sources_changed());
    assert!(dev.event_sources().is_empty());
    // The retired descriptor stays open until the next activation.
    assert_eq!(dev.common.retired(), 1);
    dev.handle_event(QUEUE_TOKEN);
    let (ctx, _act) = activation(&m, vec![q.queue()], VIRTIO_F_VERSION_1);
    dev.activate(ctx).unwrap();
    assert_eq!(dev.common.retired(), 0);
}

#[test]
fn end_to_end_through_the_mmio_transport() {
    use crate::bus::BusDevice;
    use crate::irq::CountingTrigger;
    use crate::virtio::mmio::MmioTransport;
    use std::sync::Mutex;

    let img = image();
    let m = mem(0x100_0000);
    let blk = Arc::new(Mutex::new(block(Some(img.as_path()), false)));
    let irq = Arc::new(CountingTrigger::default());
    let mut t = MmioTransport::new(m.clone(), blk.clone(), irq.clone()).unwrap();
    let w = |t: &mut MmioTransport, off: u64, v: u32| t.write(off, &v.to_le_bytes());
    let r = |t: &mut MmioTransport, off: u64| {
        let mut b = [0u8; 4];
        t.read(off, &mut b);
        u32::from_le_bytes(b)
    };
    assert_eq!(r(&mut t, 0x008), 2);
    w(&mut t, 0x070, 1);
    w(&mut t, 0x070, 3);
    w(&mut t, 0x014, 1);
    assert_eq!(r(&mut t, 0x010), 1);
    w(&mut t, 0x024, 1);
    w(&mut t, 0x020, 1);
    w(&mut t, 0x070, 0xb);
    assert_eq!(r(&mut t, 0x070), 0xb);
    let mut q = TestQueue::new(&m, 0x1000, QUEUE_SIZE);
    let (desc, avail, used) = q.addrs();
    w(&mut t, 0x030, 0);
    assert_eq!(r(&mut t, 0x034), u32::from(QUEUE_SIZE));
    w(&mut t, 0x038, u32::from(QUEUE_SIZE));
    w(&mut t, 0x080, desc as u32);
    w(&mut t, 0x090, avail as u32);
    w(&mut t, 0x0a0, used as u32);
    w(&mut t, 0x044, 1);
    w(&mut t, 0x070, 0xf);
    assert_eq!(r(&mut t, 0x070), 0xf);
    assert!(blk.lock().unwrap().is_active());
    assert!(blk.lock().unwrap().sources_changed());
    let mut cap = [0u8; 8];
    t.read(0x100, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), (IMAGE_LEN / 512) as u64);

    // A read, kicked through QueueNotify (no ioeventfd), served by the event handler.
    m.write_obj(VIRTIO_BLK_T_IN, GuestAddress(HDR)).unwrap();
    m.write_obj(1u64, GuestAddress(HDR + 8)).unwrap();
    q.add(&read_chain(512));
    w(&mut t, 0x050, 0);
    assert_eq!(t.queue_events()[0].read().unwrap(), 1);
    t.queue_events()[0].write(1).unwrap();
    let token = blk.lock().unwrap().event_sources()[0].token;
    blk.lock().unwrap().handle_event(token);
    assert_eq!(q.used(0), (0, 513));
    assert_eq!(m.read_obj::<u8>(GuestAddress(STATUS)).unwrap(), OK);
    assert_eq!(irq.count(), 1);
    assert_eq!(r(&mut t, 0x060), 1);
    w(&mut t, 0x064, 1);
    assert_eq!(r(&mut t, 0x060), 0);

    // Hot detach: config interrupt, new generation, capacity 0.
    blk.lock().unwrap().detach().unwrap();
    assert_eq!(r(&mut t, 0x060), VIRTIO_INT_CONFIG);
    assert_eq!(r(&mut t, 0x0fc), 1);
    t.read(0x100, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 0);

    // Reset.
    w(&mut t, 0x070, 0);
    assert!(!blk.lock().unwrap().is_active());
    assert_eq!(r(&mut t, 0x060), 0);
}
