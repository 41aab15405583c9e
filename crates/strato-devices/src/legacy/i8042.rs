//! A minimal i8042 keyboard controller: enough for Linux's and the probe's drivers to
//! probe it, for the guest to reset the machine through it (the monitor's "guest shut
//! down" signal), and for the host to press Ctrl-Alt-Del.
//!
//! The window covers ports 0x60..=0x64: offset 0 is the data port, offset 4 the
//! status (read) and command (write) port.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

use crate::bus::BusDevice;
use crate::irq::IrqTrigger;
use crate::metrics::{Counter, Metrics};

const DATA: u64 = 0;
const COMMAND: u64 = 4;

// Status register bits.
const SB_OUT_FULL: u8 = 0x01;
const SB_SYSTEM: u8 = 0x04;
const SB_LAST_WAS_CMD: u8 = 0x08;
const SB_KBD_ENABLED: u8 = 0x10;

// Controller command byte bits.
const CB_KBD_INT: u8 = 0x01;
const CB_POST_OK: u8 = 0x04;
const CB_KBD_DISABLED: u8 = 0x10;
const CB_AUX_DISABLED: u8 = 0x20;

// Controller commands.
const CMD_READ_CTR: u8 = 0x20;
const CMD_WRITE_CTR: u8 = 0x60;
const CMD_AUX_DISABLE: u8 = 0xa7;
const CMD_AUX_ENABLE: u8 = 0xa8;
const CMD_AUX_TEST: u8 = 0xa9;
const CMD_SELF_TEST: u8 = 0xaa;
const CMD_KBD_TEST: u8 = 0xab;
const CMD_KBD_DISABLE: u8 = 0xad;
const CMD_KBD_ENABLE: u8 = 0xae;
const CMD_READ_OUTPORT: u8 = 0xd0;
const CMD_WRITE_OUTPUT_BUF: u8 = 0xd2;
const CMD_WRITE_AUX: u8 = 0xd4;
const CMD_PULSE_RESET: u8 = 0xfe;

// Keyboard replies.
const KBD_ACK: u8 = 0xfa;
const KBD_ECHO: u8 = 0xee;
const KBD_BAT_OK: u8 = 0xaa;

/// Output buffer depth; a guest that never reads loses the excess (counted).
const OUT_BUFFER_DEPTH: usize = 16;

/// Ctrl-Alt-Del in scan code set 2: makes, then breaks in reverse order.
const CTRL_ALT_DEL: [u8; 11] = [
    0x14, 0x11, 0xe0, 0x71, // Ctrl, Alt, Delete down
    0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14, // Delete, Alt, Ctrl up
];

/// What the next data-port write means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    None,
    WriteCtr,
    WriteOutputBuf,
    WriteAux,
}

/// The keyboard controller.
pub struct I8042 {
    ctr: u8,
    status_cmd: bool,
    pending: Pending,
    out: VecDeque<u8>,
    reset_evt: EventFd,
    irq: Arc<dyn IrqTrigger>,
    resets: Counter,
    ctrl_alt_del: Counter,
    dropped: Counter,
    irq_errors: Counter,
}

impl I8042 {
    /// A controller that writes `reset_evt` when the guest pulses the reset line and
    /// raises `irq` (IRQ 1) when a byte is ready.
    pub fn new(reset_evt: EventFd, irq: Arc<dyn IrqTrigger>) -> Self {
        Self {
            ctr: CB_POST_OK | CB_KBD_INT,
            status_cmd: false,
            pending: Pending::None,
            out: VecDeque::with_capacity(OUT_BUFFER_DEPTH),
            reset_evt,
            irq,
            resets: Counter::default(),
            ctrl_alt_del: Counter::default(),
            dropped: Counter::default(),
            irq_errors: Counter::default(),
        }
    }

    fn raise(&self) {
        if self.ctr & CB_KBD_INT != 0 && self.irq.trigger().is_err() {
            self.irq_errors.inc();
        }
    }

    /// Queues bytes for the guest, raising the interrupt if the buffer was empty.
    fn push(&mut self, bytes: &[u8]) {
        let was_empty = self.out.is_empty();
        for b in bytes {
            if self.out.len() < OUT_BUFFER_DEPTH {
                self.out.push_back(*b);
            } else {
                self.dropped.inc();
            }
        }
        if was_empty && !self.out.is_empty() {
            self.raise();
        }
    }

    /// Presses and releases Ctrl-Alt-Del: a guest treats it as a request to shut down.
    pub fn trigger_ctrl_alt_del(&mut self) -> io::Result<()> {
        if self.out.len() + CTRL_ALT_DEL.len() > OUT_BUFFER_DEPTH {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "keyboard buffer is full",
            ));
        }
        self.ctrl_alt_del.inc();
        self.push(&CTRL_ALT_DEL);
        Ok(())
    }

    fn status(&self) -> u8 {
        let mut s = SB_SYSTEM;
        if !self.out.is_empty() {
            s |= SB_OUT_FULL;
        }
        if self.status_cmd {
            s |= SB_LAST_WAS_CMD;
        }
        if self.ctr & CB_KBD_DISABLED == 0 {
            s |= SB_KBD_ENABLED;
        }
        s
    }

    fn command(&mut self, cmd: u8) {
        self.status_cmd = true;
        match cmd {
            CMD_READ_CTR => self.push(&[self.ctr]),
            CMD_WRITE_CTR => self.pending = Pending::WriteCtr,
            CMD_WRITE_OUTPUT_BUF => self.pending = Pending::WriteOutputBuf,
            CMD_WRITE_AUX => self.pending = Pending::WriteAux,
            CMD_SELF_TEST => self.push(&[0x55]),
            CMD_KBD_TEST => self.push(&[0x00]),
            // No auxiliary (mouse) port: its test reports a clock line stuck low.
            CMD_AUX_TEST => self.push(&[0x01]),
            CMD_KBD_DISABLE => self.ctr |= CB_KBD_DISABLED,
            CMD_KBD_ENABLE => self.ctr &= !CB_KBD_DISABLED,
            CMD_AUX_DISABLE => self.ctr |= CB_AUX_DISABLED,
            CMD_AUX_ENABLE => self.ctr &= !CB_AUX_DISABLED,
            CMD_READ_OUTPORT => self.push(&[0x01]),
            CMD_PULSE_RESET => {
                self.resets.inc();
                if self.reset_evt.write(1).is_err() {
                    self.irq_errors.inc();
                }
            }
            _ => {}
        }
    }

    fn data_write(&mut self, value: u8) {
        self.status_cmd = false;
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::WriteCtr => self.ctr = value,
            Pending::WriteOutputBuf => self.push(&[value]),
            Pending::WriteAux => {}
            Pending::None => match value {
                0xff => self.push(&[KBD_ACK, KBD_BAT_OK]),
                0xee => self.push(&[KBD_ECHO]),
                0xf2 => self.push(&[KBD_ACK, 0xab, 0x83]),
                _ => self.push(&[KBD_ACK]),
            },
        }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let Some(first) = data.first_mut() else {
            return;
        };
        match offset {
            DATA => {
                if let Some(b) = self.out.pop_front() {
                    *first = b;
                    if !self.out.is_empty() {
                        self.raise();
                    }
                }
            }
            COMMAND => *first = self.status(),
            _ => {}
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let [value] = data else { return };
        match offset {
            DATA => self.data_write(*value),
            COMMAND => self.command(*value),
            _ => {}
        }
    }
}

impl Metrics for I8042 {
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("resets", self.resets.get()),
            ("ctrl_alt_del", self.ctrl_alt_del.get()),
            ("bytes_dropped", self.dropped.get()),
            ("errors", self.irq_errors.get()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::CountingTrigger;

    fn dev() -> (I8042, EventFd, Arc<CountingTrigger>) {
        let evt = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let irq = Arc::new(CountingTrigger::default());
        (I8042::new(evt.try_clone().unwrap(), irq.clone()), evt, irq)
    }

    fn read(d: &mut I8042, off: u64) -> u8 {
        let mut b = [0u8];
        d.read(off, &mut b);
        b[0]
    }

    #[test]
    fn reset_line_signals_the_monitor() {
        let (mut d, evt, _) = dev();
        assert!(evt.read().is_err());
        d.write(COMMAND, &[CMD_PULSE_RESET]);
        assert_eq!(evt.read().unwrap(), 1);
        assert_eq!(d.counters()[0], ("resets", 1));
    }

    #[test]
    fn self_test_and_command_byte() {
        let (mut d, _, _) = dev();
        d.write(COMMAND, &[CMD_SELF_TEST]);
        assert_ne!(read(&mut d, COMMAND) & SB_OUT_FULL, 0);
        assert_eq!(read(&mut d, DATA), 0x55);
        assert_eq!(read(&mut d, COMMAND) & SB_OUT_FULL, 0);
        d.write(COMMAND, &[CMD_WRITE_CTR]);
        d.write(DATA, &[0x45]);
        d.write(COMMAND, &[CMD_READ_CTR]);
        assert_eq!(read(&mut d, DATA), 0x45);
    }

    #[test]
    fn keyboard_commands_are_acknowledged() {
        let (mut d, _, _) = dev();
        d.write(DATA, &[0xff]);
        assert_eq!((read(&mut d, DATA), read(&mut d, DATA)), (KBD_ACK, KBD_BAT_OK));
        d.write(DATA, &[0xf4]);
        assert_eq!(read(&mut d, DATA), KBD_ACK);
    }

    #[test]
    fn ctrl_alt_del_queues_scancodes_with_interrupts() {
        let (mut d, _, irq) = dev();
        d.trigger_ctrl_alt_del().unwrap();
        assert_eq!(irq.count(), 1);
        let mut got = vec![];
        while read(&mut d, COMMAND) & SB_OUT_FULL != 0 {
            got.push(read(&mut d, DATA));
        }
        assert_eq!(got, CTRL_ALT_DEL.to_vec());
        // One interrupt per byte.
        assert_eq!(irq.count(), 11);
    }

    #[test]
    fn full_buffer_refuses_and_drops() {
        let (mut d, _, _) = dev();
        d.trigger_ctrl_alt_del().unwrap();
        assert!(d.trigger_ctrl_alt_del().is_err());
        for _ in 0..10 {
            d.write(DATA, &[0xee]);
        }
        assert!(d.counters()[2].1 > 0);
    }

    #[test]
    fn odd_accesses_are_harmless() {
        let (mut d, _, _) = dev();
        d.write(2, &[0xfe]);
        d.write(COMMAND, &[0xfe, 0xfe]);
        d.write(COMMAND, &[]);
        let mut empty: [u8; 0] = [];
        d.read(DATA, &mut empty);
        let mut wide = [0xffu8; 4];
        d.read(7, &mut wide);
        assert_eq!(wide, [0; 4]);
        assert_eq!(d.counters()[0], ("resets", 0));
    }
}
