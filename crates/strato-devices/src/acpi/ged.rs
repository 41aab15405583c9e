//! The generic event device (GED, ACPI 6.5, 5.6.9): how a hardware-reduced platform raises
//! events such as the power button without the fixed-hardware SCI.
//!
//! The device has one interrupt and one 32-bit event register (offset 0 of a 4-byte port
//! window). [`Ged::notify`] sets event bits and raises the interrupt; the guest's `_EVT`
//! method (in the DSDT) reads the register, which returns the pending bits and clears them,
//! and notifies the device each bit stands for: [`GED_POWER_BUTTON`] is the power button.

use std::io;
use std::sync::Arc;

use crate::bus::BusDevice;
use crate::irq::IrqTrigger;
use crate::metrics::{Counter, Metrics};

/// Width of the event register's window.
pub const GED_PORT_LEN: u64 = 4;
/// Event bit: the power button was pressed.
pub const GED_POWER_BUTTON: u32 = 1 << 0;

#[derive(Debug, Default)]
struct GedMetrics {
    power_button_presses: Counter,
    event_reads: Counter,
    bad_accesses: Counter,
}

/// The generic event device.
pub struct Ged {
    pending: u32,
    irq: Arc<dyn IrqTrigger>,
    metrics: GedMetrics,
}

impl Ged {
    /// A device raising `irq` for each event.
    pub fn new(irq: Arc<dyn IrqTrigger>) -> Self {
        Self {
            pending: 0,
            irq,
            metrics: GedMetrics::default(),
        }
    }

    /// Sets `events` in the event register and raises the interrupt.
    pub fn notify(&mut self, events: u32) -> io::Result<()> {
        if events & GED_POWER_BUTTON != 0 {
            self.metrics.power_button_presses.inc();
        }
        self.pending |= events;
        self.irq.trigger()
    }

    /// Presses the power button.
    pub fn press_power_button(&mut self) -> io::Result<()> {
        self.notify(GED_POWER_BUTTON)
    }
}

impl BusDevice for Ged {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let fits = offset
            .checked_add(data.len() as u64)
            .is_some_and(|end| end <= GED_PORT_LEN);
        if data.is_empty() || !fits {
            self.metrics.bad_accesses.inc();
            return;
        }
        self.metrics.event_reads.inc();
        let bytes = self.pending.to_le_bytes();
        let mut taken = 0u32;
        for (i, b) in data.iter_mut().enumerate() {
            let idx = offset as usize + i;
            *b = bytes[idx];
            taken |= 0xff << (8 * idx);
        }
        // Reading hands the events to the guest.
        self.pending &= !taken;
    }

    fn write(&mut self, _offset: u64, _data: &[u8]) {
        // The register is read-only.
        self.metrics.bad_accesses.inc();
    }
}

impl Metrics for Ged {
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let m = &self.metrics;
        vec![
            ("power_button_presses", m.power_button_presses.get()),
            ("event_reads", m.event_reads.get()),
            ("bad_accesses", m.bad_accesses.get()),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::irq::CountingTrigger;

    fn dev() -> (Ged, Arc<CountingTrigger>) {
        let irq = Arc::new(CountingTrigger::default());
        (Ged::new(irq.clone()), irq)
    }

    fn read32(d: &mut Ged) -> u32 {
        let mut b = [0u8; 4];
        d.read(0, &mut b);
        u32::from_le_bytes(b)
    }

    #[test]
    fn power_button_raises_the_interrupt_and_reads_once() {
        let (mut d, irq) = dev();
        assert_eq!(read32(&mut d), 0);
        d.press_power_button().unwrap();
        assert_eq!(irq.count(), 1);
        assert_eq!(read32(&mut d), GED_POWER_BUTTON);
        assert_eq!(read32(&mut d), 0, "a read clears the events it returned");
        assert_eq!(d.counters()[0], ("power_button_presses", 1));
    }

    #[test]
    fn presses_before_a_read_merge() {
        let (mut d, irq) = dev();
        d.press_power_button().unwrap();
        d.press_power_button().unwrap();
        assert_eq!(irq.count(), 2);
        assert_eq!(read32(&mut d), GED_POWER_BUTTON);
    }

    #[test]
    fn partial_reads_clear_only_their_bytes() {
        let (mut d, _) = dev();
        d.notify(0x0100 | GED_POWER_BUTTON).unwrap();
        let mut b = [0u8];
        d.read(1, &mut b);
        assert_eq!(b, [0x01]);
        assert_eq!(read32(&mut d), GED_POWER_BUTTON);
    }

    #[test]
    fn odd_accesses_are_ignored() {
        let (mut d, _) = dev();
        d.press_power_button().unwrap();
        let mut b = [0xffu8; 4];
        d.read(2, &mut b);
        assert_eq!(b, [0; 4]);
        d.read(u64::MAX, &mut b[..1]);
        d.read(0, &mut []);
        d.write(0, &[0xff, 0, 0, 0]);
        assert_eq!(
            read32(&mut d),
            GED_POWER_BUTTON,
            "pending survives bad accesses"
        );
        let bad = d.counters().into_iter().find(|(n, _)| *n == "bad_accesses");
        assert_eq!(bad, Some(("bad_accesses", 4)));
    }
}
