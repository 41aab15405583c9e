//! The 8250 UART at COM1: the guest's console. Output goes to an optional file and to a
//! ring buffer of the latest bytes that the control API reads live.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use vm_superio::serial::{NoEvents, Serial as Uart};
use vm_superio::Trigger;

use crate::bus::{lock, BusDevice};
use crate::irq::IrqTrigger;
use crate::log::warn_limited;
use crate::metrics::{Counter, Metrics};

/// Bytes of console output kept in memory.
pub const CONSOLE_BUFFER_SIZE: usize = 64 * 1024;

#[derive(Default)]
struct Ring {
    bytes: VecDeque<u8>,
    /// Bytes ever written; the position just past the newest byte.
    total: u64,
}

/// The latest console output, shared between the UART and its readers.
#[derive(Clone, Default)]
pub struct ConsoleBuffer {
    ring: Arc<Mutex<Ring>>,
}

impl ConsoleBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&self, data: &[u8]) {
        let mut r = lock(&self.ring);
        r.bytes.extend(data);
        let excess = r.bytes.len().saturating_sub(CONSOLE_BUFFER_SIZE);
        r.bytes.drain(..excess);
        r.total += data.len() as u64;
    }

    /// What is buffered from stream position `from` (default: the oldest byte kept) up to
    /// now, and the position to ask from next time. Output older than the buffer is gone;
    /// the reply then starts at the oldest byte kept.
    pub fn read_from(&self, from: Option<u64>) -> (Vec<u8>, u64) {
        let r = lock(&self.ring);
        let oldest = r.total - r.bytes.len() as u64;
        let start = from.unwrap_or(oldest).clamp(oldest, r.total);
        let skip = (start - oldest) as usize;
        (r.bytes.iter().skip(skip).copied().collect(), r.total)
    }

    /// Everything buffered.
    pub fn snapshot(&self) -> Vec<u8> {
        self.read_from(None).0
    }
}

/// Where the UART's transmitter writes.
struct ConsoleSink {
    buffer: ConsoleBuffer,
    file: Option<File>,
    bytes_out: Arc<Counter>,
    file_errors: Arc<Counter>,
}

impl Write for ConsoleSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.push(data);
        self.bytes_out.add(data.len() as u64);
        if let Some(f) = &mut self.file {
            // A full disk must not stall the guest: count and drop.
            if f.write_all(data).is_err() {
                self.file_errors.inc();
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Adapts an [`IrqTrigger`] to vm-superio's trigger trait.
pub struct SerialIrq(pub Arc<dyn IrqTrigger>);

impl Trigger for SerialIrq {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        self.0.trigger()
    }
}

/// The COM1 UART (a [`BusDevice`] for ports 0x3f8..0x400).
pub struct Serial {
    uart: Uart<SerialIrq, NoEvents, ConsoleSink>,
    bytes_out: Arc<Counter>,
    bytes_in: Counter,
    input_dropped: Counter,
    file_errors: Arc<Counter>,
    irq_errors: Counter,
}

impl Serial {
    /// A UART raising `irq`, writing into `buffer` and, if given, `file`.
    pub fn new(irq: Arc<dyn IrqTrigger>, buffer: ConsoleBuffer, file: Option<File>) -> Self {
        let bytes_out = Arc::new(Counter::default());
        let file_errors = Arc::new(Counter::default());
        let sink = ConsoleSink {
            buffer,
            file,
            bytes_out: bytes_out.clone(),
            file_errors: file_errors.clone(),
        };
        Self {
            uart: Uart::new(SerialIrq(irq), sink),
            bytes_out,
            bytes_in: Counter::default(),
            input_dropped: Counter::default(),
            file_errors,
            irq_errors: Counter::default(),
        }
    }

    /// Queues bytes for the guest to read; returns how many fit in the FIFO.
    pub fn enqueue_input(&mut self, data: &[u8]) -> usize {
        let n = self.uart.enqueue_raw_bytes(data).unwrap_or(0);
        self.bytes_in.add(n as u64);
        self.input_dropped.add((data.len() - n) as u64);
        n
    }
}

impl BusDevice for Serial {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match (u8::try_from(offset), data.len()) {
            (Ok(off), 1) if off < 8 => data[0] = self.uart.read(off),
            _ => data.fill(0),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let (Ok(off), [value]) = (u8::try_from(offset), data) {
            if off < 8 {
                if let Err(e) = self.uart.write(off, *value) {
                    self.irq_errors.inc();
                    warn_limited!("serial: {e}");
                }
            }
        }
    }
}

impl Metrics for Serial {
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("bytes_out", self.bytes_out.get()),
            ("bytes_in", self.bytes_in.get()),
            ("input_dropped", self.input_dropped.get()),
            ("file_errors", self.file_errors.get()),
            ("errors", self.irq_errors.get()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::CountingTrigger;

    fn serial() -> (Serial, ConsoleBuffer, Arc<CountingTrigger>) {
        let t = Arc::new(CountingTrigger::default());
        let buf = ConsoleBuffer::new();
        (Serial::new(t.clone(), buf.clone(), None), buf, t)
    }

    #[test]
    fn output_reaches_buffer() {
        let (mut s, buf, _) = serial();
        for b in b"hello\n" {
            s.write(0, &[*b]);
        }
        assert_eq!(buf.snapshot(), b"hello\n");
        assert_eq!(buf.read_from(Some(3)), (b"lo\n".to_vec(), 6));
        assert_eq!(buf.read_from(Some(100)), (Vec::new(), 6));
        assert_eq!(s.counters()[0], ("bytes_out", 6));
    }

    #[test]
    fn ring_keeps_only_the_latest_bytes() {
        let buf = ConsoleBuffer::new();
        let big = vec![b'a'; CONSOLE_BUFFER_SIZE];
        buf.push(&big);
        buf.push(b"xyz");
        let (data, next) = buf.read_from(Some(0));
        assert_eq!(data.len(), CONSOLE_BUFFER_SIZE);
        assert!(data.ends_with(b"xyz"));
        assert_eq!(next, CONSOLE_BUFFER_SIZE as u64 + 3);
    }

    #[test]
    fn odd_accesses_are_ignored() {
        let (mut s, buf, _) = serial();
        s.write(0, &[1, 2]);
        s.write(9, &[b'x']);
        s.write(u64::MAX, &[b'x']);
        let mut d = [0xffu8; 2];
        s.read(0, &mut d);
        assert_eq!(d, [0, 0]);
        let mut d = [0xffu8; 1];
        s.read(1 << 40, &mut d);
        assert_eq!(d, [0]);
        assert!(buf.snapshot().is_empty());
    }

    #[test]
    fn input_raises_interrupt_when_enabled() {
        let (mut s, _, t) = serial();
        s.write(1, &[0x01]); // IER: received-data interrupt
        assert_eq!(s.enqueue_input(b"ab"), 2);
        assert!(t.count() >= 1);
        let mut d = [0u8; 1];
        s.read(0, &mut d);
        assert_eq!(d[0], b'a');
    }

    #[test]
    fn console_file_gets_output() {
        let path = std::env::temp_dir().join(format!("strato-serial-{}", std::process::id()));
        let f = File::create(&path).unwrap();
        let mut s = Serial::new(Arc::new(CountingTrigger::default()), ConsoleBuffer::new(), Some(f));
        s.write(0, b"z");
        let got = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(got, b"z");
    }
}
