//! The 8250 UART and the i8042: random port accesses (mostly one byte at the device's own
//! offsets), console input and breaks, Ctrl-Alt-Del.

use std::sync::Arc;

use strato_fuzzgen::{alloc, Source};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::bus::BusDevice;
use crate::irq::CountingTrigger;
use crate::legacy::serial::{CONSOLE_BUFFER_SIZE, INPUT_QUEUE_SIZE, SERIAL_PORT_LEN};
use crate::legacy::{Serial, I8042};

/// The most one case may hold beyond its start: the console buffer (64 KiB), the input
/// queue, the harness's copies.
pub const MEMORY_BOUND: usize = 1 << 20;

const I8042_PULSE_RESET: u8 = 0xfe;

/// An access length: mostly one byte, rarely anything up to 8.
fn access_len(src: &mut Source<'_>) -> usize {
    if src.rarely() {
        src.below(9) as usize
    } else {
        1
    }
}

/// Runs one UART case.
pub fn run_uart(data: &[u8]) {
    alloc::bounded("8250 UART", MEMORY_BOUND, || {
        uart_case(&mut Source::new(data))
    });
}

fn uart_case(src: &mut Source<'_>) {
    let irq = Arc::new(CountingTrigger::default());
    let mut uart = Serial::with_log(irq, None);
    let console = uart.console();
    let mut data_writes = 0u64;
    while !src.is_empty() {
        let offset = if src.rarely() {
            src.u64()
        } else {
            src.below(SERIAL_PORT_LEN)
        };
        match src.below(8) {
            0..=2 => {
                let mut buf = vec![0u8; access_len(src)];
                uart.read(offset, &mut buf);
            }
            3..=5 => {
                let mut buf = vec![0u8; access_len(src)];
                src.fill(&mut buf);
                if offset == 0 {
                    data_writes += 1;
                }
                uart.write(offset, &buf);
            }
            6 => {
                let max = if src.rarely() { 8192 } else { 16 };
                let n = src.below(max) as usize;
                let bytes = vec![src.u8(); n];
                let accepted = uart.enqueue_input(&bytes);
                assert!(
                    accepted <= n.min(INPUT_QUEUE_SIZE),
                    "accepted {accepted} of {n}"
                );
            }
            _ => {
                uart.send_break();
            }
        }
    }
    // Output reaches the console only through the data register.
    assert!(
        console.total() <= data_writes,
        "{} console bytes from {data_writes} data writes",
        console.total()
    );
    assert!(console.snapshot().len() <= CONSOLE_BUFFER_SIZE);
    let (bytes, next) = console.read_from(0);
    assert!(bytes.len() <= CONSOLE_BUFFER_SIZE && next <= console.total());
}

/// Runs one i8042 case.
pub fn run_i8042(data: &[u8]) {
    alloc::bounded("i8042", MEMORY_BOUND, || i8042_case(&mut Source::new(data)));
}

fn i8042_case(src: &mut Source<'_>) {
    let reset = EventFd::new(EFD_NONBLOCK).unwrap_or_else(|e| panic!("eventfd: {e}"));
    let watch = reset.try_clone().unwrap_or_else(|e| panic!("eventfd: {e}"));
    let irq = Arc::new(CountingTrigger::default());
    let mut kbd = I8042::new(reset, irq);
    let mut pulses = 0u64;
    while !src.is_empty() {
        let offset = if src.rarely() {
            src.u64()
        } else {
            *src.pick(&[0u64, 4]).unwrap_or(&0)
        };
        match src.below(8) {
            0..=2 => {
                let mut buf = vec![0u8; access_len(src)];
                kbd.read(offset, &mut buf);
            }
            3..=6 => {
                let mut buf = vec![0u8; access_len(src)];
                src.fill(&mut buf);
                if offset == 4 && buf == [I8042_PULSE_RESET] {
                    pulses += 1;
                }
                kbd.write(offset, &buf);
            }
            _ => kbd.trigger_ctrl_alt_del(),
        }
    }
    // Only the guest's reset pulses ask for a reboot, each one once.
    let signalled = watch.read().unwrap_or(0);
    assert_eq!(
        signalled, pulses,
        "reset signalled {signalled} times for {pulses} pulses"
    );
}
