//! The COM1 8250 UART (port 0x3f8, IRQ 4), built on `vm_superio::Serial`.
//!
//! Guest output goes to an optional log file and to a [`ConsoleBuffer`]: the latest
//! [`CONSOLE_BUFFER_SIZE`] bytes, readable from other threads, with a running byte
//! count so a reader can follow the console live. Input for the guest is queued with
//! [`Serial::enqueue_input`] and fed into the UART's 64-byte FIFO as the guest reads.
//! [`Serial::send_break`] queues a break condition behind that input: when it reaches the
//! receiver, the guest reads a NUL byte with the line status register's break bit (BI) set,
//! as a 16550 reports a BREAK on its line (Linux's magic SysRq key over a serial console).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use vm_superio::serial::SerialEvents;
use vm_superio::Trigger;

use super::console_log::{ConsoleLog, DEFAULT_CONSOLE_LOG_LIMIT};
use crate::bus::{lock, BusDevice};
use crate::irq::IrqTrigger;
use crate::log::warn_limited;
use crate::metrics::{Counter, Metrics};

/// Bytes of guest output kept in memory.
pub const CONSOLE_BUFFER_SIZE: usize = 64 << 10;
/// Most input bytes waiting for room in the UART's FIFO.
pub const INPUT_QUEUE_SIZE: usize = 4096;
/// Width of the UART's port window.
pub const SERIAL_PORT_LEN: u64 = 8;
/// Offset of the receive/transmit register.
const DATA_OFFSET: u64 = 0;
/// Offset of the line status register.
const LSR_OFFSET: u64 = 5;
/// Line status: break interrupt (a break condition was received).
const LSR_BREAK_BIT: u8 = 0x10;
/// The UART's receive FIFO size (vm-superio's).
const FIFO_SIZE: usize = 64;

/// One item of the input queue: a byte, or a break condition on the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Byte(u8),
    Break,
}

struct Ring {
    bytes: VecDeque<u8>,
    capacity: usize,
    total: u64,
    /// When the guest wrote its first byte.
    first: Option<std::time::Instant>,
}

/// The latest guest console output, shared between the device and its readers.
#[derive(Clone)]
pub struct ConsoleBuffer {
    ring: Arc<Mutex<Ring>>,
}

impl ConsoleBuffer {
    /// An empty buffer keeping the latest `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        let ring = Ring {
            bytes: VecDeque::with_capacity(capacity),
            capacity,
            total: 0,
            first: None,
        };
        Self {
            ring: Arc::new(Mutex::new(ring)),
        }
    }

    /// The bytes kept now, oldest first.
    pub fn snapshot(&self) -> Vec<u8> {
        lock(&self.ring).bytes.iter().copied().collect()
    }

    /// When the guest wrote its first byte, once it has.
    pub fn first_output(&self) -> Option<std::time::Instant> {
        lock(&self.ring).first
    }

    /// Bytes written since the start (including those no longer kept).
    pub fn total(&self) -> u64 {
        lock(&self.ring).total
    }

    /// The bytes written from position `pos` on (as counted by [`total`](Self::total)),
    /// and the position to ask from next time. Bytes already dropped from the buffer
    /// are skipped: the answer then starts at the oldest byte kept.
    pub fn read_from(&self, pos: u64) -> (Vec<u8>, u64) {
        let ring = lock(&self.ring);
        let oldest = ring.total - ring.bytes.len() as u64;
        let skip = usize::try_from(pos.saturating_sub(oldest)).unwrap_or(usize::MAX);
        (ring.bytes.iter().skip(skip).copied().collect(), ring.total)
    }

    fn push(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut ring = lock(&self.ring);
        ring.total += data.len() as u64;
        ring.first.get_or_insert_with(std::time::Instant::now);
        let capacity = ring.capacity;
        let data = data
            .get(data.len().saturating_sub(capacity)..)
            .unwrap_or_default();
        let kept = ring.bytes.len();
        let overflow = (kept + data.len()).saturating_sub(capacity).min(kept);
        ring.bytes.drain(..overflow);
        ring.bytes.extend(data);
    }
}

/// Where the UART's output goes: the console buffer, and the log file if any.
struct ConsoleSink {
    buffer: ConsoleBuffer,
    file: Option<ConsoleLog>,
}

impl Write for ConsoleSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.push(buf);
        if let Some(f) = &mut self.file {
            f.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Raises the UART's interrupt line.
struct IrqLine(Arc<dyn IrqTrigger>);

impl Trigger for IrqLine {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        self.0.trigger()
    }
}

#[derive(Default)]
struct SerialMetrics {
    bytes_out: Counter,
    bytes_in: Counter,
    missed_writes: Counter,
    input_dropped: Counter,
    breaks: Counter,
    bad_accesses: Counter,
}

impl SerialEvents for SerialMetrics {
    fn buffer_read(&self) {}
    fn out_byte(&self) {
        self.bytes_out.inc();
    }
    fn tx_lost_byte(&self) {
        self.missed_writes.inc();
    }
    fn in_buffer_empty(&self) {}
}

type Uart = vm_superio::Serial<IrqLine, Arc<SerialMetrics>, ConsoleSink>;

/// The 8250 UART as a port I/O device (offsets 0 to 7).
pub struct Serial {
    uart: Uart,
    console: ConsoleBuffer,
    input: VecDeque<Input>,
    /// The break bit the next line status read reports (it clears on that read).
    line_break: bool,
    metrics: Arc<SerialMetrics>,
}

impl Serial {
    /// A UART raising `irq`, copying output to `log` (if any) and to a console buffer.
    /// The log is capped at [`DEFAULT_CONSOLE_LOG_LIMIT`]; a log that cannot be set up
    /// (see [`ConsoleLog::new`]) is left out with a warning.
    pub fn new(irq: Arc<dyn IrqTrigger>, log: Option<File>) -> Self {
        let log = log.and_then(|f| match ConsoleLog::new(f, DEFAULT_CONSOLE_LOG_LIMIT) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!("serial: console log left out: {e}");
                None
            }
        });
        Self::with_log(irq, log)
    }

    /// A UART raising `irq`, copying output to `log` (if any) and to a console buffer.
    pub fn with_log(irq: Arc<dyn IrqTrigger>, log: Option<ConsoleLog>) -> Self {
        let console = ConsoleBuffer::new(CONSOLE_BUFFER_SIZE);
        let metrics = Arc::new(SerialMetrics::default());
        let sink = ConsoleSink {
            buffer: console.clone(),
            file: log,
        };
        let uart = Uart::with_events(IrqLine(irq), metrics.clone(), sink);
        Self {
            uart,
            console,
            input: VecDeque::new(),
            line_break: false,
            metrics,
        }
    }

    /// A handle on the console output, for other threads.
    pub fn console(&self) -> ConsoleBuffer {
        self.console.clone()
    }

    /// Queues bytes for the guest to read; returns how many were accepted (the rest
    /// would overflow [`INPUT_QUEUE_SIZE`] and are dropped).
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> usize {
        let room = INPUT_QUEUE_SIZE.saturating_sub(self.input.len());
        let accepted = bytes.len().min(room);
        self.input.extend(
            bytes
                .get(..accepted)
                .unwrap_or_default()
                .iter()
                .map(|b| Input::Byte(*b)),
        );
        self.metrics
            .input_dropped
            .add((bytes.len() - accepted) as u64);
        self.feed_fifo();
        accepted
    }

    /// Queues a break condition behind the input already queued; returns false when the
    /// queue is full.
    pub fn send_break(&mut self) -> bool {
        if self.input.len() >= INPUT_QUEUE_SIZE {
            self.metrics.input_dropped.inc();
            return false;
        }
        self.metrics.breaks.inc();
        self.input.push_back(Input::Break);
        self.feed_fifo();
        true
    }

    /// Moves queued input into the UART's FIFO as far as it has room. A break enters only
    /// an empty FIFO, as a NUL byte, so the break bit goes with the byte the guest reads
    /// next.
    fn feed_fifo(&mut self) {
        if self.input.front() == Some(&Input::Break) {
            if self.uart.fifo_capacity() < FIFO_SIZE {
                return;
            }
            self.input.pop_front();
            match self.uart.enqueue_raw_bytes(&[0]) {
                Ok(_) => self.line_break = true,
                Err(e) => {
                    warn_limited!("serial: queueing a break: {:?}", e);
                    self.input.push_front(Input::Break);
                }
            }
            return;
        }
        let room = self.uart.fifo_capacity();
        let chunk: Vec<u8> = self
            .input
            .iter()
            .take(room)
            .map_while(|i| match i {
                Input::Byte(b) => Some(*b),
                Input::Break => None,
            })
            .collect();
        if chunk.is_empty() {
            return;
        }
        match self.uart.enqueue_raw_bytes(&chunk) {
            Ok(n) => {
                self.metrics.bytes_in.add(n as u64);
                self.input.drain(..n.min(chunk.len()));
            }
            Err(e) => warn_limited!("serial: queueing input: {:?}", e),
        }
    }

    fn port(offset: u64, len: usize) -> Option<u8> {
        if len != 1 || offset >= SERIAL_PORT_LEN {
            return None;
        }
        u8::try_from(offset).ok()
    }
}

impl BusDevice for Serial {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let Some(port) = Self::port(offset, data.len()) else {
            self.metrics.bad_accesses.inc();
            return;
        };
        if let Some(b) = data.first_mut() {
            *b = self.uart.read(port);
            if offset == LSR_OFFSET && self.line_break {
                // Like a 16550's, the break bit clears once the status has been read.
                *b |= LSR_BREAK_BIT;
                self.line_break = false;
            }
        }
        if offset == DATA_OFFSET {
            // The byte of a break has been taken: its break bit goes with it.
            self.line_break = false;
            self.feed_fifo();
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let (Some(port), Some(&value)) = (Self::port(offset, data.len()), data.first()) else {
            self.metrics.bad_accesses.inc();
            return;
        };
        if let Err(e) = self.uart.write(port, value) {
            warn_limited!("serial: write to port offset {}: {:?}", port, e);
        }
    }
}

impl Metrics for Serial {
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let m = &self.metrics;
        vec![
            ("bytes_out", m.bytes_out.get()),
            ("bytes_in", m.bytes_in.get()),
            ("missed_writes", m.missed_writes.get()),
            ("input_dropped", m.input_dropped.get()),
            ("breaks", m.breaks.get()),
            ("bad_accesses", m.bad_accesses.get()),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::irq::CountingTrigger;
    use std::io::Read;

    const IER: u64 = 1;
    const LSR: u64 = 5;

    fn counter(s: &Serial, name: &str) -> u64 {
        s.counters()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
    }

    #[test]
    fn output_reaches_buffer_and_file() {
        let t = vmm_sys_util::tempfile::TempFile::new().unwrap();
        let irq = Arc::new(CountingTrigger::default());
        let mut s = Serial::new(irq, Some(t.as_file().try_clone().unwrap()));
        for b in b"hello\n" {
            s.write(0, &[*b]);
        }
        let console = s.console();
        assert_eq!(console.snapshot(), b"hello\n");
        assert_eq!(console.total(), 6);
        let mut logged = String::new();
        File::open(t.as_path())
            .unwrap()
            .read_to_string(&mut logged)
            .unwrap();
        assert_eq!(logged, "hello\n");
        assert_eq!(counter(&s, "bytes_out"), 6);
    }

    #[test]
    fn ring_keeps_the_latest_bytes_and_follows() {
        let c = ConsoleBuffer::new(8);
        c.push(b"0123");
        let (got, pos) = c.read_from(0);
        assert_eq!((got.as_slice(), pos), (&b"0123"[..], 4));
        c.push(b"456789ab");
        assert_eq!(c.snapshot(), b"456789ab");
        assert_eq!(c.total(), 12);
        // From an old position: what is left.
        assert_eq!(c.read_from(pos), (b"456789ab".to_vec(), 12));
        assert_eq!(c.read_from(10), (b"ab".to_vec(), 12));
        assert_eq!(c.read_from(12), (Vec::new(), 12));
        assert_eq!(c.read_from(99), (Vec::new(), 12));
        c.push(&[b'x'; 20]);
        assert_eq!(c.snapshot(), [b'x'; 8]);
        assert_eq!(c.total(), 32);
    }

    #[test]
    fn input_is_fed_as_the_guest_reads() {
        let irq = Arc::new(CountingTrigger::default());
        let mut s = Serial::new(irq.clone(), None);
        // Enable the received-data interrupt.
        s.write(IER, &[1]);
        let input: Vec<u8> = (0..100u8).collect();
        assert_eq!(s.enqueue_input(&input), 100);
        assert!(irq.count() >= 1);
        let mut got = Vec::new();
        for _ in 0..100 {
            let mut lsr = [0u8];
            s.read(LSR, &mut lsr);
            assert_eq!(lsr[0] & 1, 1, "data ready");
            let mut b = [0u8];
            s.read(0, &mut b);
            got.push(b[0]);
        }
        assert_eq!(got, input);
        let mut lsr = [0u8];
        s.read(LSR, &mut lsr);
        assert_eq!(lsr[0] & 1, 0);
        assert_eq!(counter(&s, "bytes_in"), 100);
        // Input past the queue's size is dropped and counted.
        let big = vec![b'a'; INPUT_QUEUE_SIZE + 100];
        let accepted = s.enqueue_input(&big);
        assert!(accepted < big.len());
        assert_eq!(counter(&s, "input_dropped"), (big.len() - accepted) as u64);
    }

    fn read_lsr(s: &mut Serial) -> u8 {
        let mut lsr = [0u8];
        s.read(LSR, &mut lsr);
        lsr[0]
    }

    fn read_rbr(s: &mut Serial) -> u8 {
        let mut b = [0u8];
        s.read(0, &mut b);
        b[0]
    }

    #[test]
    fn break_arrives_as_nul_with_the_break_bit_after_earlier_input() {
        let irq = Arc::new(CountingTrigger::default());
        let mut s = Serial::new(irq.clone(), None);
        s.write(IER, &[1]);
        s.enqueue_input(b"ab");
        assert!(s.send_break());
        s.enqueue_input(b"o");
        // The bytes before the break read normally, without the break bit.
        for want in [b'a', b'b'] {
            let lsr = read_lsr(&mut s);
            assert_eq!(lsr & (1 | LSR_BREAK_BIT), 1, "{lsr:#x}");
            assert_eq!(read_rbr(&mut s), want);
        }
        // Then the break: a NUL with BI, and BI clears once read.
        assert_eq!(read_lsr(&mut s) & (1 | LSR_BREAK_BIT), 1 | LSR_BREAK_BIT);
        assert_eq!(read_lsr(&mut s) & LSR_BREAK_BIT, 0);
        assert_eq!(read_rbr(&mut s), 0);
        // And what was typed after it.
        assert_eq!(read_lsr(&mut s) & (1 | LSR_BREAK_BIT), 1);
        assert_eq!(read_rbr(&mut s), b'o');
        assert_eq!(read_lsr(&mut s) & 1, 0);
        assert_eq!(counter(&s, "breaks"), 1);
        assert!(irq.count() >= 2, "the NUL of the break raised an interrupt");
    }

    #[test]
    fn break_on_an_idle_line_is_immediate_and_repeatable() {
        let irq = Arc::new(CountingTrigger::default());
        let mut s = Serial::new(irq, None);
        assert!(s.send_break());
        assert!(s.send_break());
        assert_eq!(read_lsr(&mut s) & (1 | LSR_BREAK_BIT), 1 | LSR_BREAK_BIT);
        assert_eq!(read_rbr(&mut s), 0);
        // The second break enters once the first NUL is read.
        assert_eq!(read_lsr(&mut s) & (1 | LSR_BREAK_BIT), 1 | LSR_BREAK_BIT);
        assert_eq!(read_rbr(&mut s), 0);
        assert_eq!(read_lsr(&mut s) & (1 | LSR_BREAK_BIT), 0);
    }

    #[test]
    fn odd_accesses_are_ignored() {
        let irq = Arc::new(CountingTrigger::default());
        let mut s = Serial::new(irq, None);
        let mut b = [0xffu8; 2];
        s.read(0, &mut b);
        assert_eq!(b, [0, 0]);
        let mut b = [0xffu8; 1];
        s.read(8, &mut b);
        assert_eq!(b, [0]);
        s.read(u64::MAX, &mut b);
        s.write(0, &[1, 2]);
        s.write(9, &[1]);
        s.write(0, &[]);
        assert_eq!(s.console().total(), 0);
        assert_eq!(counter(&s, "bad_accesses"), 6);
    }
}
