//! Address-range dispatch for MMIO and port I/O exits.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A device that answers reads and writes in an address window.
///
/// `offset` is relative to the start of the window the device was inserted at.
/// Accesses come straight from the guest: implementations must accept any offset
/// and any length (answer unknown reads with zeros, ignore unknown writes).
pub trait BusDevice: Send {
    /// Reads `data.len()` bytes at `offset` into `data`.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// Writes `data` at `offset`.
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// Errors from building a bus.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// The new window overlaps one already inserted.
    #[error("bus window {base:#x}+{len:#x} overlaps an existing device")]
    Overlap {
        /// Start of the refused window.
        base: u64,
        /// Length of the refused window.
        len: u64,
    },
    /// A zero-length window, or one that wraps the address space.
    #[error("invalid bus window {base:#x}+{len:#x}")]
    InvalidWindow {
        /// Start of the refused window.
        base: u64,
        /// Length of the refused window.
        len: u64,
    },
}

/// A shared handle to a device on a bus.
pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

#[derive(Clone)]
struct Entry {
    len: u64,
    device: SharedDevice,
    /// The device's name, for the counters.
    name: Arc<str>,
    /// Accesses dispatched to it (each one a vCPU exit), shared by every clone of the bus.
    accesses: Arc<AtomicU64>,
}

/// One window of a bus as its counters show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The device's name.
    pub name: String,
    /// Start address (or port).
    pub base: u64,
    /// Length.
    pub len: u64,
    /// Accesses the bus dispatched to it: exits the device served.
    pub accesses: u64,
}

/// Maps guest addresses (MMIO) or ports (PIO) to devices, counting the accesses each device
/// serves. Cloned into every vCPU thread; the clones share the counters.
#[derive(Clone, Default)]
pub struct Bus {
    entries: BTreeMap<u64, Entry>,
}

impl Bus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts `device`, called `name` in the counters, at `[base, base + len)`.
    pub fn insert(
        &mut self,
        name: &str,
        device: SharedDevice,
        base: u64,
        len: u64,
    ) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::InvalidWindow { base, len })?;
        // The previous window must end before us, and the next must start after us.
        if let Some((&pbase, p)) = self.entries.range(..=base).next_back() {
            if pbase + p.len > base {
                return Err(BusError::Overlap { base, len });
            }
        }
        if let Some((&nbase, _)) = self.entries.range(base..).next() {
            if nbase < end {
                return Err(BusError::Overlap { base, len });
            }
        }
        self.entries.insert(
            base,
            Entry {
                len,
                device,
                name: name.into(),
                accesses: Arc::new(AtomicU64::new(0)),
            },
        );
        Ok(())
    }

    /// Every window, in address order, with its access count.
    pub fn windows(&self) -> Vec<Window> {
        self.entries
            .iter()
            .map(|(&base, e)| Window {
                name: e.name.to_string(),
                base,
                len: e.len,
                accesses: e.accesses.load(Ordering::Relaxed),
            })
            .collect()
    }

    fn find(&self, addr: u64, size: usize) -> Option<(u64, &Entry)> {
        let (&base, entry) = self.entries.range(..=addr).next_back()?;
        let off = addr - base;
        // The whole access must fit the window.
        (off.checked_add(size as u64)? <= entry.len).then_some((off, entry))
    }

    /// Dispatches a read; returns false when no device claims the whole access.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((off, e)) => {
                e.accesses.fetch_add(1, Ordering::Relaxed);
                lock(&e.device).read(off, data);
                true
            }
            None => false,
        }
    }

    /// Dispatches a write; returns false when no device claims the whole access.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((off, e)) => {
                e.accesses.fetch_add(1, Ordering::Relaxed);
                lock(&e.device).write(off, data);
                true
            }
            None => false,
        }
    }
}

/// Locks a device mutex, carrying on after a panic in another holder: device state is
/// plain data and a poisoned lock must not take the whole VM down with it.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo(Vec<u8>);
    impl BusDevice for Echo {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            for (i, b) in data.iter_mut().enumerate() {
                *b = self.0.get(offset as usize + i).copied().unwrap_or(0);
            }
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            for (i, b) in data.iter().enumerate() {
                if let Some(slot) = self.0.get_mut(offset as usize + i) {
                    *slot = *b;
                }
            }
        }
    }

    fn dev() -> SharedDevice {
        Arc::new(Mutex::new(Echo(vec![0; 16])))
    }

    #[test]
    fn dispatches_within_window() {
        let mut bus = Bus::new();
        bus.insert("d", dev(), 0x100, 16).unwrap();
        assert!(bus.write(0x104, &[1, 2]));
        let mut b = [0u8; 2];
        assert!(bus.read(0x104, &mut b));
        assert_eq!(b, [1, 2]);
        // Straddling the end, before and after the window: nobody answers.
        assert!(!bus.read(0x10f, &mut [0u8; 2]));
        assert!(!bus.read(0xff, &mut [0u8; 1]));
        assert!(!bus.read(0x110, &mut [0u8; 1]));
        // Two accesses served; the three unclaimed ones count for no device.
        let w = bus.windows();
        assert_eq!(
            (w[0].name.as_str(), w[0].base, w[0].len, w[0].accesses),
            ("d", 0x100, 16, 2)
        );
    }

    #[test]
    fn clones_share_the_access_counts() {
        let mut bus = Bus::new();
        bus.insert("a", dev(), 0x10, 4).unwrap();
        bus.insert("b", dev(), 0x20, 4).unwrap();
        let other = bus.clone();
        assert!(other.write(0x20, &[1]));
        assert!(bus.write(0x21, &[1]));
        assert!(bus.read(0x10, &mut [0u8; 1]));
        let counts: Vec<_> = bus
            .windows()
            .into_iter()
            .map(|w| (w.name, w.accesses))
            .collect();
        assert_eq!(counts, [("a".to_string(), 1), ("b".to_string(), 2)]);
    }

    #[test]
    fn refuses_overlaps_and_empty_windows() {
        let mut bus = Bus::new();
        bus.insert("d", dev(), 0x100, 16).unwrap();
        assert!(bus.insert("d", dev(), 0x108, 16).is_err());
        assert!(bus.insert("d", dev(), 0xf8, 16).is_err());
        assert!(bus.insert("d", dev(), 0x110, 0).is_err());
        assert!(bus.insert("d", dev(), u64::MAX - 2, 16).is_err());
        bus.insert("d", dev(), 0x110, 16).unwrap();
        bus.insert("d", dev(), 0xf0, 16).unwrap();
    }
}
