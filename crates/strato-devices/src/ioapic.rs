//! An I/O APIC (Intel 82093AA register model, version 0x20 with the EOI register) for a split
//! interrupt controller: the local APICs stay in KVM, this device owns the redirection table.
//!
//! The guest reaches it through an MMIO window (IOREGSEL at 0x00, IOWIN at 0x10, EOI at 0x40).
//! Every pin's redirection entry becomes an MSI message (the format a local APIC accepts), and
//! the device reaches the guest in two ways, both through [`IoapicBackend`]:
//!
//! - **Routes.** [`IoapicBackend::routes_changed`] receives the message of every pin (`None` for
//!   a masked or undeliverable one) whenever the guest changes one. The monitor turns them into
//!   KVM's GSI routing table, so a device that signals its pin through a KVM irqfd (virtio) is
//!   delivered by KVM without a trip through this device.
//! - **Lines.** A device that raises its pin through this device ([`IoapicPin`], the UART and
//!   the i8042) gets the full pin logic: edge-triggered pins deliver on a rising edge when
//!   unmasked (a masked edge is lost, as on the hardware); level-triggered pins deliver while the
//!   line is high, unmasked and Remote IRR is clear, set Remote IRR, and deliver again after the
//!   end of interrupt if the line is still high. [`IoapicBackend::deliver`] sends the message.
//!
//! End of interrupt arrives from the local APIC (the monitor calls [`Ioapic::end_of_interrupt`]
//! on KVM's `KVM_EXIT_IOAPIC_EOI`) or through the EOI register; both clear Remote IRR of the
//! level-triggered pins with that vector. For pins KVM delivers from an irqfd this device does
//! not see the delivery, so their Remote IRR stays clear: a level-triggered pin fed by an irqfd
//! behaves as if every pulse were a new edge, which loses nothing.
//!
//! The polarity bit is kept and reported but does not invert the lines: a line here is the
//! device's logical "asserted", and the tables describe every line as active high.

use std::io;
use std::sync::{Arc, Mutex};

use crate::bus::{lock, BusDevice};
use crate::irq::IrqTrigger;
use crate::log::warn_limited;
use crate::metrics::{Counter, Metrics};

/// Input pins (GSIs 0 to 23), as on the 82093AA and KVM's in-kernel IOAPIC.
pub const IOAPIC_PINS: usize = 24;
/// Version register value: 0x20 has the EOI register.
pub const IOAPIC_VERSION: u8 = 0x20;
/// The usual guest physical address of the first IOAPIC.
pub const IOAPIC_DEFAULT_BASE: u64 = 0xfec0_0000;
/// Size of the MMIO window the monitor maps (the registers use the first 0x44 bytes).
pub const IOAPIC_WINDOW_SIZE: u64 = 0x1000;

const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
const IOEOI: u64 = 0x40;

const REG_ID: u8 = 0x00;
const REG_VERSION: u8 = 0x01;
const REG_ARBITRATION: u8 = 0x02;
const REG_REDIRECTION: u8 = 0x10;

// Redirection entry fields.
const VECTOR_MASK: u64 = 0xff;
const DELIVERY_MODE_SHIFT: u32 = 8;
const DEST_LOGICAL: u64 = 1 << 11;
const DELIVERY_STATUS: u64 = 1 << 12;
const POLARITY_LOW: u64 = 1 << 13;
const REMOTE_IRR: u64 = 1 << 14;
const TRIGGER_LEVEL: u64 = 1 << 15;
const MASKED: u64 = 1 << 16;
const DEST_SHIFT: u32 = 56;
/// Bits of the low dword the guest may write (vector to mask; not delivery status or Remote IRR).
const LOW_WRITABLE: u64 = 0x1_ffff & !(DELIVERY_STATUS | REMOTE_IRR);
/// Bits of the high dword the guest may write: the 8-bit destination.
const HIGH_WRITABLE: u64 = 0xff << DEST_SHIFT;

// MSI message format (Intel SDM vol. 3, 11.11).
const MSI_ADDRESS_BASE: u64 = 0xfee0_0000;
const MSI_ADDR_DEST_SHIFT: u32 = 12;
const MSI_ADDR_DEST_LOGICAL: u64 = 1 << 2;
const MSI_ADDR_REDIRECTION_HINT: u64 = 1 << 3;
const MSI_DATA_LEVEL_ASSERT: u32 = 1 << 14;
const MSI_DATA_TRIGGER_LEVEL: u32 = 1 << 15;

/// How a redirection entry delivers its interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMode {
    /// To the destination's vector.
    Fixed,
    /// To the lowest-priority processor of the destination set.
    LowestPriority,
    /// System management interrupt.
    Smi,
    /// Non-maskable interrupt.
    Nmi,
    /// INIT.
    Init,
    /// From an 8259 PIC, which a split irqchip does not have.
    ExtInt,
    /// A reserved encoding (3 or 6).
    Reserved(u8),
}

impl DeliveryMode {
    fn from_bits(bits: u8) -> Self {
        match bits & 7 {
            0 => Self::Fixed,
            1 => Self::LowestPriority,
            2 => Self::Smi,
            4 => Self::Nmi,
            5 => Self::Init,
            7 => Self::ExtInt,
            other => Self::Reserved(other),
        }
    }
}

/// One 64-bit redirection table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedirectionEntry(pub u64);

impl RedirectionEntry {
    /// The value after reset: masked, everything else zero.
    pub const RESET: Self = Self(MASKED);

    /// Interrupt vector.
    pub fn vector(self) -> u8 {
        (self.0 & VECTOR_MASK) as u8
    }
    /// Delivery mode.
    pub fn delivery_mode(self) -> DeliveryMode {
        DeliveryMode::from_bits((self.0 >> DELIVERY_MODE_SHIFT) as u8)
    }
    /// Logical (true) or physical destination mode.
    pub fn logical_destination(self) -> bool {
        self.0 & DEST_LOGICAL != 0
    }
    /// Active-low polarity.
    pub fn active_low(self) -> bool {
        self.0 & POLARITY_LOW != 0
    }
    /// Remote IRR: a level-triggered interrupt was accepted and not yet ended.
    pub fn remote_irr(self) -> bool {
        self.0 & REMOTE_IRR != 0
    }
    /// Level-triggered (true) or edge-triggered.
    pub fn level_triggered(self) -> bool {
        self.0 & TRIGGER_LEVEL != 0
    }
    /// Masked.
    pub fn masked(self) -> bool {
        self.0 & MASKED != 0
    }
    /// Destination APIC ID (physical) or set (logical).
    pub fn destination(self) -> u8 {
        (self.0 >> DEST_SHIFT) as u8
    }

    /// The MSI message this entry sends, or `None` when it cannot send one (ExtINT: there is no
    /// 8259 behind a split irqchip; a reserved delivery mode). The mask is not looked at.
    pub fn msi(self) -> Option<MsiMessage> {
        let mode = match self.delivery_mode() {
            DeliveryMode::Fixed => 0,
            DeliveryMode::LowestPriority => 1,
            DeliveryMode::Smi => 2,
            DeliveryMode::Nmi => 4,
            DeliveryMode::Init => 5,
            DeliveryMode::ExtInt | DeliveryMode::Reserved(_) => return None,
        };
        let mut address = MSI_ADDRESS_BASE | (u64::from(self.destination()) << MSI_ADDR_DEST_SHIFT);
        if self.logical_destination() {
            address |= MSI_ADDR_DEST_LOGICAL;
        }
        if mode == 1 {
            address |= MSI_ADDR_REDIRECTION_HINT;
        }
        let mut data = u32::from(self.vector()) | (mode << 8);
        if self.level_triggered() {
            data |= MSI_DATA_TRIGGER_LEVEL | MSI_DATA_LEVEL_ASSERT;
        }
        Some(MsiMessage { address, data })
    }
}

/// An x86 MSI message: what a write of `data` to `address` tells the local APICs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsiMessage {
    /// Address (0xfee0_0000 | destination << 12 | flags).
    pub address: u64,
    /// Data (vector, delivery mode, trigger mode).
    pub data: u32,
}

/// What the IOAPIC's messages go to: the monitor implements it with KVM's GSI routing table and
/// `KVM_SIGNAL_MSI`; tests record the calls.
pub trait IoapicBackend: Send + Sync {
    /// Sends one message now.
    fn deliver(&self, msg: MsiMessage) -> io::Result<()>;
    /// The message of every pin changed: `routes[gsi]` is what an interrupt on that pin sends,
    /// `None` while it is masked or cannot be delivered.
    fn routes_changed(&self, routes: &[Option<MsiMessage>; IOAPIC_PINS]) -> io::Result<()>;
}

#[derive(Default)]
struct IoapicMetrics {
    delivered: Counter,
    dropped_masked: Counter,
    undeliverable: Counter,
    deliver_errors: Counter,
    eois: Counter,
    route_updates: Counter,
    route_errors: Counter,
    bad_accesses: Counter,
}

/// The IOAPIC: registers, redirection table, line levels and Remote IRR.
pub struct Ioapic {
    id: u8,
    regsel: u8,
    entries: [RedirectionEntry; IOAPIC_PINS],
    /// Level of each input line (bit per pin), for lines raised through this device.
    lines: u32,
    backend: Arc<dyn IoapicBackend>,
    routes: [Option<MsiMessage>; IOAPIC_PINS],
    metrics: IoapicMetrics,
}

impl Ioapic {
    /// An IOAPIC with APIC ID `id` (4 bits), every pin masked. It tells `backend` its (empty)
    /// routes once, so the backend starts from a known table.
    pub fn new(id: u8, backend: Arc<dyn IoapicBackend>) -> Self {
        let mut ioapic = Self {
            id: id & 0x0f,
            regsel: 0,
            entries: [RedirectionEntry::RESET; IOAPIC_PINS],
            lines: 0,
            backend,
            routes: [None; IOAPIC_PINS],
            metrics: IoapicMetrics::default(),
        };
        ioapic.push_routes();
        ioapic
    }

    /// The APIC ID the guest sees in the ID register.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// Redirection entry of `pin` (`None` past the last pin).
    pub fn entry(&self, pin: usize) -> Option<RedirectionEntry> {
        self.entries.get(pin).copied()
    }

    /// The message each pin sends now (`None` while masked or undeliverable).
    pub fn routes(&self) -> [Option<MsiMessage>; IOAPIC_PINS] {
        self.compute_routes()
    }

    /// Sets the level of input line `pin` (true: asserted). Out-of-range pins are ignored.
    pub fn set_line(&mut self, pin: usize, high: bool) {
        let Some(entry) = self.entries.get(pin).copied() else {
            self.metrics.bad_accesses.inc();
            return;
        };
        let bit = 1u32 << pin;
        let was_high = self.lines & bit != 0;
        if high {
            self.lines |= bit;
        } else {
            self.lines &= !bit;
        }
        if !high {
            return;
        }
        if entry.masked() {
            if !was_high || entry.level_triggered() {
                self.metrics.dropped_masked.inc();
            }
            return;
        }
        if entry.level_triggered() {
            if !entry.remote_irr() {
                self.deliver_level(pin);
            }
        } else if !was_high {
            self.send(entry);
        }
    }

    /// A pulse on line `pin`: raised and lowered again, the way an edge-signalling device
    /// (and an irqfd) raises an interrupt.
    pub fn pulse(&mut self, pin: usize) {
        self.set_line(pin, true);
        self.set_line(pin, false);
    }

    /// End of interrupt for `vector`: clears Remote IRR of the level-triggered pins that deliver
    /// it, and delivers again the ones whose line is still high and that are not masked.
    pub fn end_of_interrupt(&mut self, vector: u8) {
        self.metrics.eois.inc();
        for pin in 0..IOAPIC_PINS {
            let e = self.entries[pin];
            if e.vector() != vector || !e.level_triggered() || !e.remote_irr() {
                continue;
            }
            self.entries[pin].0 &= !REMOTE_IRR;
            if self.lines & (1 << pin) != 0 && !e.masked() {
                self.deliver_level(pin);
            }
        }
    }

    /// Back to the state after reset (every pin masked, lines low); the ID is kept.
    pub fn reset(&mut self) {
        self.regsel = 0;
        self.entries = [RedirectionEntry::RESET; IOAPIC_PINS];
        self.lines = 0;
        self.push_routes();
    }

    fn deliver_level(&mut self, pin: usize) {
        let e = self.entries[pin];
        if self.send(e) {
            self.entries[pin].0 |= REMOTE_IRR;
        }
    }

    /// Sends `entry`'s message; false when it has none or the backend failed.
    fn send(&mut self, entry: RedirectionEntry) -> bool {
        let Some(msg) = entry.msi() else {
            self.metrics.undeliverable.inc();
            warn_limited!(
                mode = ?entry.delivery_mode(),
                "IOAPIC: interrupt with a delivery mode a split irqchip cannot send dropped"
            );
            return false;
        };
        match self.backend.deliver(msg) {
            Ok(()) => {
                self.metrics.delivered.inc();
                true
            }
            Err(e) => {
                self.metrics.deliver_errors.inc();
                warn_limited!(error = %e, "IOAPIC: delivering an interrupt failed");
                false
            }
        }
    }

    fn compute_routes(&self) -> [Option<MsiMessage>; IOAPIC_PINS] {
        let mut routes = [None; IOAPIC_PINS];
        for (route, e) in routes.iter_mut().zip(self.entries.iter()) {
            if !e.masked() {
                *route = e.msi();
            }
        }
        routes
    }

    fn push_routes(&mut self) {
        let routes = self.compute_routes();
        self.routes = routes;
        self.metrics.route_updates.inc();
        if let Err(e) = self.backend.routes_changed(&routes) {
            self.metrics.route_errors.inc();
            warn_limited!(error = %e, "IOAPIC: updating the interrupt routes failed");
        }
    }

    fn read_register(&self, reg: u8) -> u32 {
        match reg {
            REG_ID | REG_ARBITRATION => u32::from(self.id) << 24,
            REG_VERSION => u32::from(IOAPIC_VERSION) | (((IOAPIC_PINS as u32) - 1) << 16),
            r if r >= REG_REDIRECTION => {
                let index = usize::from(r - REG_REDIRECTION);
                match self.entries.get(index / 2) {
                    Some(e) if index % 2 == 0 => e.0 as u32,
                    Some(e) => (e.0 >> 32) as u32,
                    None => 0,
                }
            }
            _ => 0,
        }
    }

    fn write_register(&mut self, reg: u8, value: u32) {
        match reg {
            REG_ID => self.id = ((value >> 24) & 0x0f) as u8,
            r if r >= REG_REDIRECTION => {
                let index = usize::from(r - REG_REDIRECTION);
                let pin = index / 2;
                let Some(old) = self.entries.get(pin).copied() else {
                    self.metrics.bad_accesses.inc();
                    return;
                };
                let new = if index % 2 == 0 {
                    (old.0 & !LOW_WRITABLE) | (u64::from(value) & LOW_WRITABLE)
                } else {
                    (old.0 & !HIGH_WRITABLE) | ((u64::from(value) << 32) & HIGH_WRITABLE)
                };
                self.set_entry(pin, RedirectionEntry(new));
            }
            // Version and arbitration are read-only; the rest is reserved.
            _ => self.metrics.bad_accesses.inc(),
        }
    }

    fn set_entry(&mut self, pin: usize, mut e: RedirectionEntry) {
        // Remote IRR means nothing for an edge-triggered pin; guests without the EOI register
        // (and Linux's workaround for lost EOIs) clear it by switching the pin to edge.
        if !e.level_triggered() {
            e.0 &= !REMOTE_IRR;
        }
        self.entries[pin] = e;
        if self.compute_routes() != self.routes {
            self.push_routes();
        }
        // An unmasked level-triggered pin whose line is high delivers now.
        if e.level_triggered() && !e.masked() && !e.remote_irr() && self.lines & (1 << pin) != 0 {
            self.deliver_level(pin);
        }
    }

    /// The 32-bit register an access at `offset` belongs to, and the byte within it.
    fn register_at(offset: u64) -> Option<(u64, usize)> {
        let base = offset & !3;
        matches!(base, IOREGSEL | IOWIN | IOEOI).then_some((base, (offset & 3) as usize))
    }
}

impl BusDevice for Ioapic {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let Some((reg, byte)) = Self::register_at(offset).filter(|(_, b)| b + data.len() <= 4)
        else {
            self.metrics.bad_accesses.inc();
            return;
        };
        let value = match reg {
            IOREGSEL => u32::from(self.regsel),
            IOWIN => self.read_register(self.regsel),
            // EOI is write-only.
            _ => 0,
        };
        let bytes = value.to_le_bytes();
        data.copy_from_slice(&bytes[byte..byte + data.len()]);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some((reg, byte)) = Self::register_at(offset).filter(|(_, b)| b + data.len() <= 4)
        else {
            self.metrics.bad_accesses.inc();
            return;
        };
        // A narrower write changes only its bytes of the register.
        let old = match reg {
            IOREGSEL => u32::from(self.regsel),
            IOWIN => self.read_register(self.regsel),
            _ => 0,
        };
        let mut bytes = old.to_le_bytes();
        bytes[byte..byte + data.len()].copy_from_slice(data);
        let value = u32::from_le_bytes(bytes);
        match reg {
            IOREGSEL => self.regsel = value as u8,
            IOWIN => self.write_register(self.regsel, value),
            _ => self.end_of_interrupt(value as u8),
        }
    }
}

impl Metrics for Ioapic {
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let m = &self.metrics;
        vec![
            ("delivered", m.delivered.get()),
            ("dropped_masked", m.dropped_masked.get()),
            ("undeliverable", m.undeliverable.get()),
            ("deliver_errors", m.deliver_errors.get()),
            ("eois", m.eois.get()),
            ("route_updates", m.route_updates.get()),
            ("route_errors", m.route_errors.get()),
            ("bad_accesses", m.bad_accesses.get()),
        ]
    }
}

/// One input line of a shared [`Ioapic`], as an interrupt trigger for a device: each trigger is
/// a pulse on the pin.
pub struct IoapicPin {
    ioapic: Arc<Mutex<Ioapic>>,
    pin: usize,
}

impl IoapicPin {
    /// Line `pin` of `ioapic`.
    pub fn new(ioapic: Arc<Mutex<Ioapic>>, pin: usize) -> Self {
        Self { ioapic, pin }
    }
}

impl IrqTrigger for IoapicPin {
    fn trigger(&self) -> io::Result<()> {
        lock(&self.ioapic).pulse(self.pin);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        sent: Mutex<Vec<MsiMessage>>,
        routes: Mutex<Vec<[Option<MsiMessage>; IOAPIC_PINS]>>,
        fail: std::sync::atomic::AtomicBool,
    }

    impl Recorder {
        fn take_sent(&self) -> Vec<MsiMessage> {
            std::mem::take(&mut *lock(&self.sent))
        }
        fn last_routes(&self) -> [Option<MsiMessage>; IOAPIC_PINS] {
            *lock(&self.routes).last().expect("routes pushed")
        }
        fn route_pushes(&self) -> usize {
            lock(&self.routes).len()
        }
    }

    impl IoapicBackend for Recorder {
        fn deliver(&self, msg: MsiMessage) -> io::Result<()> {
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(io::Error::other("backend down"));
            }
            lock(&self.sent).push(msg);
            Ok(())
        }
        fn routes_changed(&self, routes: &[Option<MsiMessage>; IOAPIC_PINS]) -> io::Result<()> {
            lock(&self.routes).push(*routes);
            Ok(())
        }
    }

    fn ioapic() -> (Ioapic, Arc<Recorder>) {
        let r = Arc::new(Recorder::default());
        (Ioapic::new(9, r.clone()), r)
    }

    fn write32(io: &mut Ioapic, offset: u64, v: u32) {
        io.write(offset, &v.to_le_bytes());
    }

    fn read32(io: &mut Ioapic, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        io.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    fn reg_write(io: &mut Ioapic, reg: u8, v: u32) {
        write32(io, IOREGSEL, u32::from(reg));
        write32(io, IOWIN, v);
    }

    fn reg_read(io: &mut Ioapic, reg: u8) -> u32 {
        write32(io, IOREGSEL, u32::from(reg));
        read32(io, IOWIN)
    }

    /// Programs `pin` the way Linux does: high dword (destination) first, then the low dword.
    fn program(io: &mut Ioapic, pin: u8, low: u32, dest: u8) {
        reg_write(io, REG_REDIRECTION + 2 * pin + 1, u32::from(dest) << 24);
        reg_write(io, REG_REDIRECTION + 2 * pin, low);
    }

    const LEVEL: u32 = 1 << 15;
    const MASK: u32 = 1 << 16;

    fn fixed(vector: u8, dest: u8) -> MsiMessage {
        MsiMessage {
            address: 0xfee0_0000 | (u64::from(dest) << 12),
            data: u32::from(vector),
        }
    }

    fn fixed_level(vector: u8, dest: u8) -> MsiMessage {
        MsiMessage {
            address: 0xfee0_0000 | (u64::from(dest) << 12),
            data: u32::from(vector) | 0xc000,
        }
    }

    #[test]
    fn identification_registers() {
        let (mut io, _) = ioapic();
        assert_eq!(reg_read(&mut io, REG_ID), 9 << 24);
        assert_eq!(reg_read(&mut io, REG_VERSION), 0x0017_0020);
        assert_eq!(reg_read(&mut io, REG_ARBITRATION), 9 << 24);
        // The ID is writable (4 bits), version and arbitration are not.
        reg_write(&mut io, REG_ID, 0xff00_0000);
        assert_eq!(reg_read(&mut io, REG_ID), 0x0f00_0000);
        assert_eq!(io.id(), 15);
        reg_write(&mut io, REG_VERSION, 0);
        assert_eq!(reg_read(&mut io, REG_VERSION), 0x0017_0020);
        // IOREGSEL reads back.
        write32(&mut io, IOREGSEL, 0x11);
        assert_eq!(read32(&mut io, IOREGSEL), 0x11);
    }

    #[test]
    fn redirection_table_reads_back_and_starts_masked() {
        let (mut io, rec) = ioapic();
        for pin in 0..IOAPIC_PINS as u8 {
            assert_eq!(reg_read(&mut io, REG_REDIRECTION + 2 * pin), MASK);
            assert_eq!(reg_read(&mut io, REG_REDIRECTION + 2 * pin + 1), 0);
        }
        assert_eq!(rec.last_routes(), [None; IOAPIC_PINS]);
        program(&mut io, 3, 0x0000_0931, 2);
        assert_eq!(reg_read(&mut io, REG_REDIRECTION + 6), 0x0931);
        assert_eq!(reg_read(&mut io, REG_REDIRECTION + 7), 2 << 24);
        let e = io.entry(3).unwrap();
        assert_eq!(e.vector(), 0x31);
        assert_eq!(e.delivery_mode(), DeliveryMode::LowestPriority);
        assert!(e.logical_destination());
        assert_eq!(e.destination(), 2);
        // Reserved bits of the high dword and the read-only bits are not stored.
        reg_write(&mut io, REG_REDIRECTION + 7, 0x03ff_ffff);
        assert_eq!(reg_read(&mut io, REG_REDIRECTION + 7), 0x0300_0000);
        reg_write(&mut io, REG_REDIRECTION + 6, 0x5000 | 0x31);
        assert_eq!(reg_read(&mut io, REG_REDIRECTION + 6) & 0x5000, 0);
        // Past the table: reads 0, writes are ignored.
        assert_eq!(reg_read(&mut io, REG_REDIRECTION + 48), 0);
        reg_write(&mut io, REG_REDIRECTION + 48, 0x30);
        reg_write(&mut io, 0xff, 0x30);
        assert_eq!(io.routes()[..].iter().filter(|r| r.is_some()).count(), 1);
    }

    #[test]
    fn routes_follow_the_mask_and_are_pushed_only_on_change() {
        let (mut io, rec) = ioapic();
        let pushes = rec.route_pushes();
        program(&mut io, 5, 0x25 | MASK, 0);
        // Masked: the route stays empty and nothing is pushed.
        assert_eq!(rec.route_pushes(), pushes);
        program(&mut io, 5, 0x25, 0);
        assert_eq!(rec.route_pushes(), pushes + 1);
        let mut want = [None; IOAPIC_PINS];
        want[5] = Some(fixed(0x25, 0));
        assert_eq!(rec.last_routes(), want);
        // Rewriting the same value pushes nothing.
        program(&mut io, 5, 0x25, 0);
        assert_eq!(rec.route_pushes(), pushes + 1);
        program(&mut io, 6, 0x26 | LEVEL, 1);
        want[6] = Some(fixed_level(0x26, 1));
        assert_eq!(rec.last_routes(), want);
        program(&mut io, 5, 0x25 | MASK, 0);
        want[5] = None;
        assert_eq!(rec.last_routes(), want);
        assert_eq!(io.routes(), want);
    }

    #[test]
    fn msi_encoding() {
        // Physical fixed, edge.
        assert_eq!(
            RedirectionEntry(0x30 | (3u64 << 56)).msi(),
            Some(fixed(0x30, 3))
        );
        // Logical lowest priority, level: destination mode and redirection hint in the
        // address, trigger and assert in the data.
        assert_eq!(
            RedirectionEntry(0x41 | (1 << 8) | (1 << 11) | (1 << 15) | (0x0fu64 << 56)).msi(),
            Some(MsiMessage {
                address: 0xfee0_f00c,
                data: 0xc141
            })
        );
        // NMI and INIT go as their delivery modes.
        assert_eq!(RedirectionEntry(4 << 8).msi().unwrap().data, 0x400);
        assert_eq!(RedirectionEntry(5 << 8).msi().unwrap().data, 0x500);
        // ExtINT (no 8259 here) and the reserved modes cannot be sent.
        assert_eq!(RedirectionEntry(7 << 8).msi(), None);
        assert_eq!(RedirectionEntry(3 << 8).msi(), None);
        assert_eq!(RedirectionEntry(6 << 8).msi(), None);
    }

    #[test]
    fn edge_pin_delivers_on_rising_edges_and_loses_masked_ones() {
        let (mut io, rec) = ioapic();
        io.pulse(4);
        assert!(rec.take_sent().is_empty(), "masked at reset");
        program(&mut io, 4, 0x34, 0);
        assert!(rec.take_sent().is_empty(), "a masked edge is not kept");
        io.pulse(4);
        io.pulse(4);
        assert_eq!(rec.take_sent(), vec![fixed(0x34, 0); 2]);
        // A line held high delivers once.
        io.set_line(4, true);
        io.set_line(4, true);
        io.set_line(4, false);
        assert_eq!(rec.take_sent().len(), 1);
        // EOI does nothing for an edge pin.
        io.end_of_interrupt(0x34);
        assert!(rec.take_sent().is_empty());
        program(&mut io, 4, 0x34 | MASK, 0);
        io.pulse(4);
        assert!(rec.take_sent().is_empty());
        assert_eq!(counter(&io, "dropped_masked"), 2);
        assert_eq!(counter(&io, "delivered"), 3);
    }

    fn counter(io: &Ioapic, name: &str) -> u64 {
        io.counters()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no counter {name}"))
    }

    #[test]
    fn level_pin_sets_remote_irr_until_eoi_and_redelivers_while_high() {
        let (mut io, rec) = ioapic();
        program(&mut io, 10, 0x3a | LEVEL, 1);
        io.set_line(10, true);
        assert_eq!(rec.take_sent(), vec![fixed_level(0x3a, 1)]);
        assert!(io.entry(10).unwrap().remote_irr());
        assert_ne!(reg_read(&mut io, REG_REDIRECTION + 20) & (1 << 14), 0);
        // While Remote IRR is set, nothing more is sent.
        io.set_line(10, true);
        io.pulse(10);
        io.set_line(10, true);
        assert!(rec.take_sent().is_empty());
        // An EOI for another vector changes nothing.
        io.end_of_interrupt(0x3b);
        assert!(io.entry(10).unwrap().remote_irr());
        // EOI with the line still high: delivered again, Remote IRR set again.
        io.end_of_interrupt(0x3a);
        assert_eq!(rec.take_sent(), vec![fixed_level(0x3a, 1)]);
        assert!(io.entry(10).unwrap().remote_irr());
        // Line low, then EOI: Remote IRR clears and nothing is sent.
        io.set_line(10, false);
        io.end_of_interrupt(0x3a);
        assert!(rec.take_sent().is_empty());
        assert!(!io.entry(10).unwrap().remote_irr());
    }

    #[test]
    fn eoi_register_ends_level_interrupts() {
        let (mut io, rec) = ioapic();
        program(&mut io, 2, 0x50 | LEVEL, 0);
        io.set_line(2, true);
        assert_eq!(rec.take_sent().len(), 1);
        write32(&mut io, IOEOI, 0x50);
        assert_eq!(rec.take_sent().len(), 1, "line still high: delivered again");
        io.set_line(2, false);
        write32(&mut io, IOEOI, 0x50);
        assert!(!io.entry(2).unwrap().remote_irr());
        // Reading the EOI register gives nothing.
        assert_eq!(read32(&mut io, IOEOI), 0);
    }

    #[test]
    fn masked_level_pin_delivers_when_unmasked_if_still_high() {
        let (mut io, rec) = ioapic();
        program(&mut io, 7, 0x47 | LEVEL | MASK, 0);
        io.set_line(7, true);
        assert!(rec.take_sent().is_empty());
        program(&mut io, 7, 0x47 | LEVEL, 0);
        assert_eq!(rec.take_sent(), vec![fixed_level(0x47, 0)]);
        assert!(io.entry(7).unwrap().remote_irr());
        // Masking keeps Remote IRR; an EOI while masked clears it without delivering.
        program(&mut io, 7, 0x47 | LEVEL | MASK, 0);
        io.end_of_interrupt(0x47);
        assert!(rec.take_sent().is_empty());
        assert!(!io.entry(7).unwrap().remote_irr());
        // A line that went low while masked is not delivered on unmask.
        io.set_line(7, false);
        program(&mut io, 7, 0x47 | LEVEL, 0);
        assert!(rec.take_sent().is_empty());
    }

    #[test]
    fn switching_to_edge_clears_remote_irr() {
        let (mut io, rec) = ioapic();
        program(&mut io, 9, 0x39 | LEVEL, 0);
        io.set_line(9, true);
        io.set_line(9, false);
        assert!(io.entry(9).unwrap().remote_irr());
        // Linux's EOI for an IOAPIC without the EOI register: mask + edge, then level again.
        program(&mut io, 9, 0x39 | MASK, 0);
        program(&mut io, 9, 0x39 | LEVEL, 0);
        assert!(!io.entry(9).unwrap().remote_irr());
        rec.take_sent();
        io.pulse(9);
        assert_eq!(rec.take_sent().len(), 1);
    }

    #[test]
    fn narrow_and_misplaced_accesses() {
        let (mut io, rec) = ioapic();
        // A byte write to IOREGSEL, then a byte-wise read of IOWIN (the version register).
        io.write(IOREGSEL, &[REG_VERSION]);
        let mut b = [0u8; 1];
        io.read(IOWIN + 2, &mut b);
        assert_eq!(b[0], 0x17);
        // A 16-bit write into the low dword of an entry changes only those bytes.
        program(&mut io, 1, 0x21 | MASK, 0);
        io.write(IOREGSEL, &[REG_REDIRECTION + 2]);
        io.write(IOWIN + 2, &[0, 0]);
        assert_eq!(reg_read(&mut io, REG_REDIRECTION + 2), 0x21);
        assert!(!io.entry(1).unwrap().masked());
        // Accesses that straddle a register or miss every register are ignored.
        let before = io.entries;
        io.write(IOWIN + 2, &[0xff; 4]);
        io.write(0x20, &[0xff; 4]);
        io.write(0x1000, &[0xff; 4]);
        let mut big = [0xaau8; 8];
        io.read(IOWIN, &mut big);
        assert_eq!(big, [0; 8]);
        assert_eq!(io.entries, before);
        assert!(counter(&io, "bad_accesses") >= 4);
        io.pulse(1);
        assert_eq!(rec.take_sent(), vec![fixed(0x21, 0)]);
    }

    #[test]
    fn undeliverable_modes_and_backend_errors_are_counted() {
        let (mut io, rec) = ioapic();
        // ExtINT: no route, nothing sent.
        program(&mut io, 0, 0x700, 0);
        assert_eq!(io.routes()[0], None);
        io.pulse(0);
        assert!(rec.take_sent().is_empty());
        assert_eq!(counter(&io, "undeliverable"), 1);
        // A level pin whose delivery fails does not set Remote IRR, so the next EOI or
        // assertion tries again.
        program(&mut io, 1, 0x31 | LEVEL, 0);
        rec.fail.store(true, std::sync::atomic::Ordering::SeqCst);
        io.set_line(1, true);
        assert!(!io.entry(1).unwrap().remote_irr());
        assert_eq!(counter(&io, "deliver_errors"), 1);
        rec.fail.store(false, std::sync::atomic::Ordering::SeqCst);
        io.set_line(1, false);
        io.set_line(1, true);
        assert_eq!(rec.take_sent(), vec![fixed_level(0x31, 0)]);
        // Out-of-range lines are ignored.
        io.set_line(24, true);
        io.pulse(usize::MAX);
    }

    #[test]
    fn reset_masks_everything_and_pushes_empty_routes() {
        let (mut io, rec) = ioapic();
        program(&mut io, 5, 0x25, 0);
        io.set_line(5, true);
        io.reset();
        assert_eq!(rec.last_routes(), [None; IOAPIC_PINS]);
        assert!(io.entry(5).unwrap().masked());
        assert_eq!(io.id(), 9);
    }

    #[test]
    fn pin_trigger_pulses_its_line() {
        let rec = Arc::new(Recorder::default());
        let io = Arc::new(Mutex::new(Ioapic::new(0, rec.clone())));
        program(&mut lock(&io), 4, 0x34, 0);
        let pin = IoapicPin::new(io.clone(), 4);
        pin.trigger().unwrap();
        pin.trigger().unwrap();
        assert_eq!(rec.take_sent(), vec![fixed(0x34, 0); 2]);
    }
}
