//! The power-management registers of a hardware-reduced ACPI platform (ACPI 6.5, 4.8.3.7 and
//! 4.8.3.6): the sleep control and sleep status registers, which the FADT names in place of the
//! PM1 blocks, and the reset register.
//!
//! Three byte-wide registers in a port window: offset 0 sleep control, offset 1 sleep status,
//! offset 2 reset. A guest powers off by writing `SLP_EN | (S5 << 2)` to sleep control, with
//! the S5 sleep type the DSDT's `\_S5` package gives ([`S5_SLEEP_TYPE`]); it resets by writing
//! [`RESET_VALUE`] to the reset register. Either ends the VM: the device signals the matching
//! EventFd and the monitor's event loop does the rest.

use vmm_sys_util::eventfd::EventFd;

use crate::bus::BusDevice;
use crate::log::warn_limited;
use crate::metrics::{Counter, Metrics};

/// Width of the port window.
pub const PM_PORT_LEN: u64 = 3;
/// Offset of the sleep control register.
pub const SLEEP_CONTROL_OFFSET: u64 = 0;
/// Offset of the sleep status register.
pub const SLEEP_STATUS_OFFSET: u64 = 1;
/// Offset of the reset register.
pub const RESET_OFFSET: u64 = 2;
/// The value the FADT tells the guest to write to the reset register.
pub const RESET_VALUE: u8 = 0x01;
/// Sleep control: SLP_EN, "enter the sleep state in SLP_TYP".
pub const SLP_EN: u8 = 1 << 5;
/// Sleep control: where SLP_TYP (3 bits) starts.
pub const SLP_TYP_SHIFT: u8 = 2;
/// Sleep control: the SLP_TYP bits.
pub const SLP_TYP_MASK: u8 = 0x7 << SLP_TYP_SHIFT;
/// The SLP_TYP value of S5 (soft off); the DSDT's `\_S5` package carries the same number.
pub const S5_SLEEP_TYPE: u8 = 5;

#[derive(Debug, Default)]
struct PmMetrics {
    power_off_requests: Counter,
    reset_requests: Counter,
    unsupported_sleep: Counter,
    bad_accesses: Counter,
}

/// Sleep control, sleep status and reset registers.
pub struct AcpiPm {
    poweroff_evt: EventFd,
    reset_evt: EventFd,
    metrics: PmMetrics,
}

impl AcpiPm {
    /// Registers that signal `poweroff_evt` when the guest enters S5 and `reset_evt` when it
    /// writes the reset value.
    pub fn new(poweroff_evt: EventFd, reset_evt: EventFd) -> Self {
        Self {
            poweroff_evt,
            reset_evt,
            metrics: PmMetrics::default(),
        }
    }

    fn sleep_control(&mut self, value: u8) {
        if value & SLP_EN == 0 {
            return;
        }
        let sleep_type = (value & SLP_TYP_MASK) >> SLP_TYP_SHIFT;
        if sleep_type != S5_SLEEP_TYPE {
            // S1 to S4 need firmware to resume into; the DSDT offers none of them.
            self.metrics.unsupported_sleep.inc();
            warn_limited!("acpi: ignoring sleep type {}", sleep_type);
            return;
        }
        self.metrics.power_off_requests.inc();
        if let Err(e) = self.poweroff_evt.write(1) {
            warn_limited!("acpi: signalling power-off: {}", e);
        }
    }

    fn reset(&mut self, value: u8) {
        if value != RESET_VALUE {
            self.metrics.bad_accesses.inc();
            return;
        }
        self.metrics.reset_requests.inc();
        if let Err(e) = self.reset_evt.write(1) {
            warn_limited!("acpi: signalling reset: {}", e);
        }
    }
}

impl BusDevice for AcpiPm {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        // Sleep status reads 0: WAK_STS never rises, because no sleep state is ever left.
        data.fill(0);
        if data.len() != 1 || offset >= PM_PORT_LEN {
            self.metrics.bad_accesses.inc();
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let [value] = data else {
            self.metrics.bad_accesses.inc();
            return;
        };
        match offset {
            SLEEP_CONTROL_OFFSET => self.sleep_control(*value),
            // Writing WAK_STS clears it; it is never set.
            SLEEP_STATUS_OFFSET => {}
            RESET_OFFSET => self.reset(*value),
            _ => self.metrics.bad_accesses.inc(),
        }
    }
}

impl Metrics for AcpiPm {
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let m = &self.metrics;
        vec![
            ("power_off_requests", m.power_off_requests.get()),
            ("reset_requests", m.reset_requests.get()),
            ("unsupported_sleep", m.unsupported_sleep.get()),
            ("bad_accesses", m.bad_accesses.get()),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use vmm_sys_util::eventfd::EFD_NONBLOCK;

    fn dev() -> AcpiPm {
        AcpiPm::new(
            EventFd::new(EFD_NONBLOCK).unwrap(),
            EventFd::new(EFD_NONBLOCK).unwrap(),
        )
    }

    fn counter(d: &AcpiPm, name: &str) -> u64 {
        d.counters()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
    }

    #[test]
    fn s5_signals_power_off() {
        let mut d = dev();
        d.write(
            SLEEP_CONTROL_OFFSET,
            &[SLP_EN | (S5_SLEEP_TYPE << SLP_TYP_SHIFT)],
        );
        assert_eq!(d.poweroff_evt.read().unwrap(), 1);
        assert!(d.reset_evt.read().is_err());
        assert_eq!(counter(&d, "power_off_requests"), 1);
    }

    #[test]
    fn sleep_type_without_slp_en_or_other_states_do_nothing() {
        let mut d = dev();
        // SLP_TYP alone is only a preparation.
        d.write(SLEEP_CONTROL_OFFSET, &[S5_SLEEP_TYPE << SLP_TYP_SHIFT]);
        // S3 with SLP_EN: refused, counted.
        d.write(SLEEP_CONTROL_OFFSET, &[SLP_EN | (3 << SLP_TYP_SHIFT)]);
        assert!(d.poweroff_evt.read().is_err());
        assert_eq!(counter(&d, "unsupported_sleep"), 1);
        assert_eq!(counter(&d, "power_off_requests"), 0);
    }

    #[test]
    fn reset_value_signals_reset() {
        let mut d = dev();
        d.write(RESET_OFFSET, &[0x42]);
        assert!(d.reset_evt.read().is_err());
        d.write(RESET_OFFSET, &[RESET_VALUE]);
        assert_eq!(d.reset_evt.read().unwrap(), 1);
        assert!(d.poweroff_evt.read().is_err());
        assert_eq!(counter(&d, "reset_requests"), 1);
        assert_eq!(counter(&d, "bad_accesses"), 1);
    }

    #[test]
    fn status_reads_zero_and_odd_accesses_are_ignored() {
        let mut d = dev();
        let mut b = [0xffu8];
        d.read(SLEEP_STATUS_OFFSET, &mut b);
        assert_eq!(b, [0]);
        d.write(SLEEP_STATUS_OFFSET, &[0x80]);
        let mut w = [0xffu8; 2];
        d.read(0, &mut w);
        assert_eq!(w, [0, 0]);
        d.read(7, &mut b);
        d.write(0, &[SLP_EN | (S5_SLEEP_TYPE << SLP_TYP_SHIFT), 0]);
        d.write(9, &[RESET_VALUE]);
        d.write(0, &[]);
        assert!(d.poweroff_evt.read().is_err());
        assert!(d.reset_evt.read().is_err());
        assert_eq!(counter(&d, "bad_accesses"), 5);
    }
}
