//! The virtio-mmio register file: a driver that mostly follows the initialisation sequence
//! (reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queue set-up, DRIVER_OK, notify),
//! rarely steps out of it, and in between makes random accesses anywhere in the window,
//! over a block, network or entropy device.

use std::sync::{Arc, Mutex};

use strato_fuzzgen::{alloc, Source};

use super::net::MemTap;
use super::ring::{memory, Ring};
use crate::bus::{lock, BusDevice};
use crate::irq::CountingTrigger;
use crate::virtio::block::Block;
use crate::virtio::mmio::{MmioTransport, MMIO_MAGIC_VALUE, MMIO_VERSION, MMIO_WINDOW_SIZE};
use crate::virtio::net::{Net, NetConfig};
use crate::virtio::rng::Rng;
use crate::virtio::{VirtioDevice, VIRTIO_F_VERSION_1};

/// The most one case may hold beyond its start: a device (the network device's 64 KiB
/// spill buffer, the entropy device's 64 KiB buffer), the harness's own.
pub const MEMORY_BOUND: usize = 2 << 20;

const STATUS: u64 = 0x070;
const ACK: u32 = 1;
const DRIVER: u32 = 2;
const DRIVER_OK: u32 = 4;
const FEATURES_OK: u32 = 8;
const NEEDS_RESET: u32 = 0x40;

/// Runs one case.
pub fn run(data: &[u8]) {
    alloc::bounded("virtio-mmio", MEMORY_BOUND, || case(&mut Source::new(data)));
}

fn device(src: &mut Source<'_>) -> Arc<Mutex<dyn VirtioDevice>> {
    match src.below(3) {
        0 => Arc::new(Mutex::new(Block::with_disk(
            "vol-fuzz".into(),
            None,
            src.bool(),
        ))),
        1 => {
            let net = Net::new(NetConfig {
                id: "eni-fuzz".into(),
                taps: vec![MemTap::new()],
                mac: Some([2, 0, 0, 0, 0, 1]),
                enhanced: src.bool(),
            })
            .unwrap_or_else(|e| panic!("net device: {e}"));
            Arc::new(Mutex::new(net))
        }
        _ => Arc::new(Mutex::new(Rng::new("rng-fuzz"))),
    }
}

fn read32(t: &mut MmioTransport, offset: u64) -> u32 {
    let mut b = [0u8; 4];
    t.read(offset, &mut b);
    u32::from_le_bytes(b)
}

fn write32(t: &mut MmioTransport, offset: u64, v: u32) {
    t.write(offset, &v.to_le_bytes());
}

fn case(src: &mut Source<'_>) {
    let mem = memory();
    let dev = device(src);
    let mut t = MmioTransport::new(
        mem.clone(),
        dev.clone(),
        Arc::new(CountingTrigger::default()),
    )
    .unwrap_or_else(|e| panic!("transport: {e}"));
    let queues = lock(&dev).queue_max_sizes().len();
    let mut steps = 0u32;
    while !src.is_empty() && steps < 512 {
        steps += 1;
        if src.rarely() || src.bool() {
            random_access(&mut t, src);
        } else {
            driver_step(&mut t, src, &mem, queues);
        }
        if src.rarely() {
            // The event loop runs the device's queues, whatever state it is in.
            let sources = lock(&dev).event_sources();
            for s in sources {
                lock(&dev).handle_event(s.token);
            }
        }
        check(&mut t, &dev);
    }
    write32(&mut t, STATUS, 0);
    assert_eq!(read32(&mut t, STATUS), 0, "status after a reset");
    assert!(
        !lock(&dev).is_active(),
        "the device is active after a reset"
    );
}

/// Invariants of the register file, whatever the guest wrote.
fn check(t: &mut MmioTransport, dev: &Arc<Mutex<dyn VirtioDevice>>) {
    assert_eq!(read32(t, 0), MMIO_MAGIC_VALUE);
    assert_eq!(read32(t, 4), MMIO_VERSION);
    let status = read32(t, STATUS);
    let active = lock(dev).is_active();
    if status & DRIVER_OK != 0 && status & NEEDS_RESET == 0 {
        assert!(active, "status {status:#x} but the device is not active");
    }
    if status & DRIVER_OK == 0 {
        assert!(!active, "status {status:#x} but the device is active");
    }
    assert_eq!(status & !0xff, 0, "status {status:#x}");
}

fn random_access(t: &mut MmioTransport, src: &mut Source<'_>) {
    let offset = if src.rarely() {
        src.u64()
    } else if src.bool() {
        src.below(0x100) & !3
    } else {
        src.below(MMIO_WINDOW_SIZE)
    };
    let len = if src.rarely() {
        src.below(9) as usize
    } else {
        *src.pick(&[4usize, 1, 2, 8]).unwrap_or(&4)
    };
    let mut buf = vec![0u8; len];
    if src.bool() {
        t.read(offset, &mut buf);
    } else {
        src.fill(&mut buf);
        t.write(offset, &buf);
    }
}

/// One step of a driver's initialisation, chosen from where the status says it is.
fn driver_step(
    t: &mut MmioTransport,
    src: &mut Source<'_>,
    mem: &vm_memory::GuestMemoryMmap,
    queues: usize,
) {
    let status = read32(t, STATUS);
    match status & 0xf {
        0 => write32(t, STATUS, ACK),
        ACK => write32(t, STATUS, ACK | DRIVER),
        3 => {
            // Features: the device's, rarely a random subset or random bits.
            let mut features = 0u64;
            for sel in 0..2u32 {
                write32(t, 0x014, sel);
                features |= u64::from(read32(t, 0x010)) << (32 * sel);
            }
            if src.rarely() {
                features &= src.u64();
            }
            if src.rarely() {
                features ^= 1 << src.below(64);
            }
            features |= VIRTIO_F_VERSION_1 & !(src.rarely() as u64 * VIRTIO_F_VERSION_1);
            for sel in 0..2u32 {
                write32(t, 0x024, sel);
                write32(t, 0x020, (features >> (32 * sel)) as u32);
            }
            write32(t, STATUS, 3 | FEATURES_OK);
        }
        0xb => {
            // Queues, each at its fixed place, then DRIVER_OK.
            for q in 0..queues {
                if src.rarely() {
                    continue;
                }
                write32(t, 0x030, q as u32);
                let max = read32(t, 0x034) as u16;
                let ring = Ring::new(mem, q as u64 % 5, max.clamp(1, 256));
                let size = if src.rarely() { src.u16() } else { ring.size() };
                write32(t, 0x038, u32::from(size));
                let base = super::ring::RINGS + (q as u64 % 5) * super::ring::RING_STRIDE;
                let addrs = [base, base + 0x1000, base + 0x2000];
                for (k, &a) in addrs.iter().enumerate() {
                    let a = if src.rarely() { src.u64() } else { a };
                    write32(t, 0x080 + 0x10 * k as u64, a as u32);
                    write32(t, 0x084 + 0x10 * k as u64, (a >> 32) as u32);
                }
                write32(t, 0x044, 1);
            }
            write32(t, STATUS, 0xb | DRIVER_OK);
        }
        _ => {
            if src.rarely() {
                write32(t, STATUS, 0);
            } else {
                write32(t, 0x050, src.below(queues as u64 + 1) as u32);
                let isr = read32(t, 0x060);
                write32(t, 0x064, isr);
            }
        }
    }
}
