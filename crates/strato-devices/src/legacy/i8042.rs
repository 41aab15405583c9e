//! A minimal i8042 keyboard controller (ports 0x60 and 0x64, IRQ 1).
//!
//! Enough for Linux's i8042 and atkbd drivers to find a keyboard, for the guest to
//! reset the machine (command 0xFE, "pulse reset line": the monitor's way out), and for
//! the monitor to deliver Ctrl-Alt-Del as set-2 scancodes. There is no aux (mouse) port.
//!
//! The device sits in a 5-port window at 0x60: offset 0 is the data port (0x60),
//! offset 4 the status/command port (0x64).

use std::collections::VecDeque;
use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

use crate::bus::BusDevice;
use crate::irq::IrqTrigger;
use crate::log::warn_limited;
use crate::metrics::{Counter, Metrics};

/// Width of the port window starting at 0x60.
pub const I8042_PORT_LEN: u64 = 5;
/// Offset of the data port (0x60).
pub const DATA_OFFSET: u64 = 0;
/// Offset of the status/command port (0x64).
pub const COMMAND_OFFSET: u64 = 4;
/// Bytes the output buffer holds before dropping.
pub const OUTPUT_BUFFER_SIZE: usize = 16;

// Status register.
const SB_OUT_FULL: u8 = 0x01;
const SB_SYSTEM: u8 = 0x04;
const SB_LAST_WAS_COMMAND: u8 = 0x08;
const SB_KBD_ENABLED: u8 = 0x10;

// Command byte.
const CB_KBD_INT: u8 = 0x01;
const CB_SYSTEM: u8 = 0x04;
const CB_KBD_DISABLED: u8 = 0x10;
const CB_AUX_DISABLED: u8 = 0x20;

// Controller commands.
const CMD_READ_CMD_BYTE: u8 = 0x20;
const CMD_WRITE_CMD_BYTE: u8 = 0x60;
const CMD_AUX_DISABLE: u8 = 0xa7;
const CMD_AUX_ENABLE: u8 = 0xa8;
const CMD_SELF_TEST: u8 = 0xaa;
const CMD_KBD_TEST: u8 = 0xab;
const CMD_KBD_DISABLE: u8 = 0xad;
const CMD_KBD_ENABLE: u8 = 0xae;
const CMD_WRITE_OUTPUT_PORT: u8 = 0xd1;
const CMD_WRITE_KBD_BUFFER: u8 = 0xd2;
const CMD_WRITE_AUX_BUFFER: u8 = 0xd3;
const CMD_WRITE_AUX: u8 = 0xd4;
const CMD_PULSE_RESET: u8 = 0xfe;

// Keyboard commands and answers.
const KBD_SET_LEDS: u8 = 0xed;
const KBD_ECHO: u8 = 0xee;
const KBD_SCANCODE_SET: u8 = 0xf0;
const KBD_IDENTIFY: u8 = 0xf2;
const KBD_TYPEMATIC: u8 = 0xf3;
const KBD_RESET: u8 = 0xff;
const KBD_ACK: u8 = 0xfa;
const KBD_SELF_TEST_OK: u8 = 0xaa;

/// Ctrl-Alt-Del in scancode set 2: the three make codes, then the three break codes.
const CTRL_ALT_DEL: [u8; 11] = [
    0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14,
];

#[derive(Debug, Default)]
struct I8042Metrics {
    reset_requests: Counter,
    controller_commands: Counter,
    keyboard_commands: Counter,
    unknown_commands: Counter,
    output_dropped: Counter,
    bad_accesses: Counter,
}

/// The keyboard controller.
pub struct I8042 {
    reset_evt: EventFd,
    irq: Arc<dyn IrqTrigger>,
    status: u8,
    command_byte: u8,
    /// A controller command waiting for its data byte.
    pending_command: Option<u8>,
    /// A keyboard command waiting for its parameter byte.
    pending_kbd: Option<u8>,
    output: VecDeque<u8>,
    metrics: I8042Metrics,
}

impl I8042 {
    /// A controller that signals `reset_evt` when the guest pulses the reset line and
    /// raises `irq` (IRQ 1) for keyboard data.
    pub fn new(reset_evt: EventFd, irq: Arc<dyn IrqTrigger>) -> Self {
        Self {
            reset_evt,
            irq,
            status: SB_SYSTEM | SB_KBD_ENABLED,
            command_byte: CB_KBD_INT | CB_SYSTEM | CB_AUX_DISABLED,
            pending_command: None,
            pending_kbd: None,
            output: VecDeque::with_capacity(OUTPUT_BUFFER_SIZE),
            metrics: I8042Metrics::default(),
        }
    }

    /// Queues Ctrl-Alt-Del (make and break codes) and raises IRQ 1.
    pub fn trigger_ctrl_alt_del(&mut self) {
        self.push_keyboard(&CTRL_ALT_DEL);
    }

    /// The reset EventFd (the monitor watches it).
    pub fn reset_event(&self) -> &EventFd {
        &self.reset_evt
    }

    fn status(&self) -> u8 {
        let full = if self.output.is_empty() {
            0
        } else {
            SB_OUT_FULL
        };
        self.status | full
    }

    fn push(&mut self, bytes: &[u8]) -> bool {
        let mut any = false;
        for &b in bytes {
            if self.output.len() < OUTPUT_BUFFER_SIZE {
                self.output.push_back(b);
                any = true;
            } else {
                self.metrics.output_dropped.inc();
            }
        }
        any
    }

    /// Queues controller answers (read by polling, no interrupt).
    fn push_controller(&mut self, bytes: &[u8]) {
        self.push(bytes);
    }

    /// Queues bytes from the keyboard and raises IRQ 1 if it is enabled.
    fn push_keyboard(&mut self, bytes: &[u8]) {
        if self.push(bytes) {
            self.raise();
        }
    }

    fn raise(&self) {
        if self.command_byte & CB_KBD_INT != 0 {
            if let Err(e) = self.irq.trigger() {
                warn_limited!("i8042: raising IRQ 1: {}", e);
            }
        }
    }

    fn read_data(&mut self) -> u8 {
        let byte = self.output.pop_front().unwrap_or(0);
        if !self.output.is_empty() {
            self.raise();
        }
        byte
    }

    fn write_command(&mut self, cmd: u8) {
        self.status |= SB_LAST_WAS_COMMAND;
        self.metrics.controller_commands.inc();
        match cmd {
            CMD_READ_CMD_BYTE => self.push_controller(&[self.command_byte]),
            CMD_WRITE_CMD_BYTE
            | CMD_WRITE_OUTPUT_PORT
            | CMD_WRITE_KBD_BUFFER
            | CMD_WRITE_AUX_BUFFER
            | CMD_WRITE_AUX => self.pending_command = Some(cmd),
            CMD_AUX_DISABLE => self.command_byte |= CB_AUX_DISABLED,
            CMD_AUX_ENABLE => self.command_byte &= !CB_AUX_DISABLED,
            CMD_SELF_TEST => {
                self.status |= SB_SYSTEM;
                self.push_controller(&[0x55]);
            }
            CMD_KBD_TEST => self.push_controller(&[0x00]),
            CMD_KBD_DISABLE => self.command_byte |= CB_KBD_DISABLED,
            CMD_KBD_ENABLE => self.command_byte &= !CB_KBD_DISABLED,
            CMD_PULSE_RESET => {
                self.metrics.reset_requests.inc();
                if let Err(e) = self.reset_evt.write(1) {
                    warn_limited!("i8042: signalling reset: {}", e);
                }
            }
            other => {
                self.metrics.unknown_commands.inc();
                warn_limited!("i8042: ignoring controller command {:#x}", other);
            }
        }
    }

    fn write_data(&mut self, value: u8) {
        self.status &= !SB_LAST_WAS_COMMAND;
        if let Some(cmd) = self.pending_command.take() {
            match cmd {
                CMD_WRITE_CMD_BYTE => self.command_byte = value,
                CMD_WRITE_KBD_BUFFER => self.push_keyboard(&[value]),
                // Output port, aux buffer, aux device: there is nothing behind them.
                _ => {}
            }
            return;
        }
        self.metrics.keyboard_commands.inc();
        if let Some(cmd) = self.pending_kbd.take() {
            // The parameter of a two-byte keyboard command.
            if cmd == KBD_SCANCODE_SET && value == 0 {
                self.push_keyboard(&[KBD_ACK, 0x02]);
            } else {
                self.push_keyboard(&[KBD_ACK]);
            }
            return;
        }
        match value {
            KBD_RESET => self.push_keyboard(&[KBD_ACK, KBD_SELF_TEST_OK]),
            KBD_ECHO => self.push_keyboard(&[KBD_ECHO]),
            KBD_IDENTIFY => self.push_keyboard(&[KBD_ACK, 0xab, 0x83]),
            KBD_SET_LEDS | KBD_SCANCODE_SET | KBD_TYPEMATIC => {
                self.pending_kbd = Some(value);
                self.push_keyboard(&[KBD_ACK]);
            }
            _ => self.push_keyboard(&[KBD_ACK]),
        }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let [byte] = data else {
            self.metrics.bad_accesses.inc();
            return;
        };
        *byte = match offset {
            DATA_OFFSET => self.read_data(),
            COMMAND_OFFSET => self.status(),
            _ => 0,
        };
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let [value] = data else {
            self.metrics.bad_accesses.inc();
            return;
        };
        match offset {
            DATA_OFFSET => self.write_data(*value),
            COMMAND_OFFSET => self.write_command(*value),
            _ => self.metrics.bad_accesses.inc(),
        }
    }
}

impl Metrics for I8042 {
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let m = &self.metrics;
        vec![
            ("reset_requests", m.reset_requests.get()),
            ("controller_commands", m.controller_commands.get()),
            ("keyboard_commands", m.keyboard_commands.get()),
            ("unknown_commands", m.unknown_commands.get()),
            ("output_dropped", m.output_dropped.get()),
            ("bad_accesses", m.bad_accesses.get()),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::irq::CountingTrigger;
    use vmm_sys_util::eventfd::EFD_NONBLOCK;

    fn dev() -> (I8042, Arc<CountingTrigger>) {
        let irq = Arc::new(CountingTrigger::default());
        (
            I8042::new(EventFd::new(EFD_NONBLOCK).unwrap(), irq.clone()),
            irq,
        )
    }

    fn inb(d: &mut I8042, off: u64) -> u8 {
        let mut b = [0u8];
        d.read(off, &mut b);
        b[0]
    }

    fn outb(d: &mut I8042, off: u64, v: u8) {
        d.write(off, &[v]);
    }

    fn counter(d: &I8042, name: &str) -> u64 {
        d.counters()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
    }

    #[test]
    fn reset_command_signals_the_eventfd() {
        let (mut d, _) = dev();
        assert!(d.reset_event().read().is_err());
        outb(&mut d, COMMAND_OFFSET, CMD_PULSE_RESET);
        assert_eq!(d.reset_event().read().unwrap(), 1);
        assert_eq!(counter(&d, "reset_requests"), 1);
    }

    #[test]
    fn controller_commands_answer() {
        let (mut d, irq) = dev();
        assert_eq!(inb(&mut d, COMMAND_OFFSET) & SB_OUT_FULL, 0);
        outb(&mut d, COMMAND_OFFSET, CMD_SELF_TEST);
        let st = inb(&mut d, COMMAND_OFFSET);
        assert_eq!(st & (SB_OUT_FULL | SB_SYSTEM | SB_LAST_WAS_COMMAND), 0x0d);
        assert_eq!(inb(&mut d, DATA_OFFSET), 0x55);
        assert_eq!(inb(&mut d, COMMAND_OFFSET) & SB_OUT_FULL, 0);
        outb(&mut d, COMMAND_OFFSET, CMD_KBD_TEST);
        assert_eq!(inb(&mut d, DATA_OFFSET), 0x00);
        // Controller answers are polled: no interrupt.
        assert_eq!(irq.count(), 0);
        // Command byte: read, write, read back.
        outb(&mut d, COMMAND_OFFSET, CMD_READ_CMD_BYTE);
        assert_eq!(
            inb(&mut d, DATA_OFFSET),
            CB_KBD_INT | CB_SYSTEM | CB_AUX_DISABLED
        );
        outb(&mut d, COMMAND_OFFSET, CMD_WRITE_CMD_BYTE);
        outb(&mut d, DATA_OFFSET, 0x45);
        outb(&mut d, COMMAND_OFFSET, CMD_AUX_ENABLE);
        outb(&mut d, COMMAND_OFFSET, CMD_KBD_DISABLE);
        outb(&mut d, COMMAND_OFFSET, CMD_READ_CMD_BYTE);
        assert_eq!(inb(&mut d, DATA_OFFSET), 0x55);
        outb(&mut d, COMMAND_OFFSET, CMD_AUX_DISABLE);
        outb(&mut d, COMMAND_OFFSET, CMD_KBD_ENABLE);
        outb(&mut d, COMMAND_OFFSET, CMD_READ_CMD_BYTE);
        assert_eq!(inb(&mut d, DATA_OFFSET), 0x65);
        // Unknown commands are ignored; aux writes swallow their data byte.
        outb(&mut d, COMMAND_OFFSET, 0xa9);
        outb(&mut d, COMMAND_OFFSET, CMD_WRITE_AUX);
        outb(&mut d, DATA_OFFSET, 0xff);
        assert_eq!(inb(&mut d, COMMAND_OFFSET) & SB_OUT_FULL, 0);
        assert_eq!(counter(&d, "unknown_commands"), 1);
    }

    #[test]
    fn keyboard_commands_are_acked_with_interrupts() {
        let (mut d, irq) = dev();
        outb(&mut d, DATA_OFFSET, KBD_RESET);
        assert_eq!(irq.count(), 1);
        assert_eq!(inb(&mut d, DATA_OFFSET), KBD_ACK);
        // One more byte left: the line is raised again.
        assert_eq!(irq.count(), 2);
        assert_eq!(inb(&mut d, DATA_OFFSET), KBD_SELF_TEST_OK);
        assert_eq!(irq.count(), 2);
        outb(&mut d, DATA_OFFSET, KBD_ECHO);
        assert_eq!(inb(&mut d, DATA_OFFSET), KBD_ECHO);
        outb(&mut d, DATA_OFFSET, KBD_IDENTIFY);
        assert_eq!(
            [inb(&mut d, 0), inb(&mut d, 0), inb(&mut d, 0)],
            [KBD_ACK, 0xab, 0x83]
        );
        // Two-byte commands ack both bytes; "get scancode set" answers set 2.
        outb(&mut d, DATA_OFFSET, KBD_SET_LEDS);
        outb(&mut d, DATA_OFFSET, 0x07);
        assert_eq!([inb(&mut d, 0), inb(&mut d, 0)], [KBD_ACK, KBD_ACK]);
        outb(&mut d, DATA_OFFSET, KBD_SCANCODE_SET);
        outb(&mut d, DATA_OFFSET, 0);
        assert_eq!(
            [inb(&mut d, 0), inb(&mut d, 0), inb(&mut d, 0)],
            [KBD_ACK, KBD_ACK, 0x02]
        );
        outb(&mut d, DATA_OFFSET, 0xf4);
        assert_eq!(inb(&mut d, DATA_OFFSET), KBD_ACK);
        // Empty buffer reads zero.
        assert_eq!(inb(&mut d, DATA_OFFSET), 0);
        // Interrupts off in the command byte: no line.
        outb(&mut d, COMMAND_OFFSET, CMD_WRITE_CMD_BYTE);
        outb(&mut d, DATA_OFFSET, 0);
        let before = irq.count();
        outb(&mut d, DATA_OFFSET, 0xf4);
        assert_eq!(irq.count(), before);
        assert_eq!(inb(&mut d, DATA_OFFSET), KBD_ACK);
    }

    #[test]
    fn ctrl_alt_del_scancodes() {
        let (mut d, irq) = dev();
        d.trigger_ctrl_alt_del();
        assert_eq!(irq.count(), 1);
        let mut got = Vec::new();
        while inb(&mut d, COMMAND_OFFSET) & SB_OUT_FULL != 0 {
            got.push(inb(&mut d, DATA_OFFSET));
        }
        assert_eq!(got, CTRL_ALT_DEL);
        assert_eq!(irq.count(), 11);
    }

    #[test]
    fn output_buffer_is_bounded() {
        let (mut d, _) = dev();
        d.trigger_ctrl_alt_del();
        d.trigger_ctrl_alt_del();
        assert_eq!(d.output.len(), OUTPUT_BUFFER_SIZE);
        assert_eq!(counter(&d, "output_dropped"), 6);
        // Write-to-output-buffer goes through the same bound.
        outb(&mut d, COMMAND_OFFSET, CMD_WRITE_KBD_BUFFER);
        outb(&mut d, DATA_OFFSET, 0x42);
        assert_eq!(counter(&d, "output_dropped"), 7);
        let (mut d, _) = dev();
        outb(&mut d, COMMAND_OFFSET, CMD_WRITE_KBD_BUFFER);
        outb(&mut d, DATA_OFFSET, 0x42);
        assert_eq!(inb(&mut d, DATA_OFFSET), 0x42);
    }

    #[test]
    fn odd_accesses_are_ignored() {
        let (mut d, _) = dev();
        let mut b = [0xffu8; 2];
        d.read(DATA_OFFSET, &mut b);
        assert_eq!(b, [0, 0]);
        assert_eq!(inb(&mut d, 2), 0);
        assert_eq!(inb(&mut d, u64::MAX), 0);
        d.write(COMMAND_OFFSET, &[CMD_PULSE_RESET, 0]);
        d.write(COMMAND_OFFSET, &[]);
        d.write(1, &[CMD_PULSE_RESET]);
        assert!(d.reset_event().read().is_err());
        assert_eq!(counter(&d, "bad_accesses"), 4);
    }
}
