//! Builds the VM's devices, places them on the buses, wires them to KVM (irqfd,
//! ioeventfd) and writes their `virtio_mmio.device=` command-line entries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kvm_ioctls::{IoEventAddress, VmFd};
use linux_loader::loader::Cmdline;
use strato_devices::acpi::ged::GED_PORT_LEN;
use strato_devices::acpi::pm::PM_PORT_LEN;
use strato_devices::acpi::{AcpiPm, Ged};
use strato_devices::bus::{lock, Bus, BusError};
use strato_devices::irq::IrqTrigger;
use strato_devices::legacy::i8042::I8042;
use strato_devices::legacy::serial::{ConsoleBuffer, Serial};
use strato_devices::legacy::ConsoleLog;
use strato_devices::metrics::Metrics;
use strato_devices::virtio::block::backend::DiskFile;
use strato_devices::virtio::block::Block;
use strato_devices::virtio::mmio::MmioTransport;
use strato_devices::virtio::net::{tap::Tap, Net, NetConfig as NetDeviceConfig};
use strato_devices::virtio::rng::Rng;
use strato_devices::virtio::VirtioDevice;
use vm_memory::{GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use crate::arch::x86_64::acpi;
use crate::arch::x86_64::layout::*;
use crate::config::{parse_mac, VmConfig};
use crate::irqchip::Irqchip;

/// Errors building devices.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// An eventfd could not be created.
    #[error("creating an eventfd")]
    EventFd(#[source] std::io::Error),
    /// KVM refused an irqfd or ioeventfd.
    #[error("registering {what} with KVM")]
    Kvm {
        /// What was registered.
        what: &'static str,
        /// The cause.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// Two devices want the same window.
    #[error("placing a device on the bus")]
    Bus(#[source] BusError),
    /// A device could not be created.
    #[error("creating {id}: {message}")]
    Device {
        /// Device ID.
        id: String,
        /// What went wrong.
        message: String,
    },
    /// The command line has no room for the device entries.
    #[error("kernel command line is full")]
    Cmdline(#[source] linux_loader::cmdline::Error),
    /// More virtio devices than IRQs.
    #[error("too many devices: at most {0} virtio devices")]
    TooMany(u32),
}

/// Kind of a virtio device, for the API and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtioKind {
    /// virtio-blk.
    Block,
    /// virtio-net.
    Net,
    /// virtio-rng.
    Rng,
}

impl VirtioKind {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            VirtioKind::Block => "block",
            VirtioKind::Net => "net",
            VirtioKind::Rng => "rng",
        }
    }
}

/// One virtio device with its transport window.
pub struct VirtioSlot {
    /// Device ID (`disk0`, `net0`, `rng`).
    pub id: String,
    /// Kind.
    pub kind: VirtioKind,
    /// The device (also held by its transport).
    pub device: Arc<Mutex<dyn VirtioDevice>>,
    /// MMIO window base.
    pub base: u64,
    /// GSI.
    pub irq: u32,
    /// Its virtio-mmio transport (also on the MMIO bus), for its queues' live indexes.
    pub transport: Arc<Mutex<MmioTransport>>,
}

/// All devices of a VM.
pub struct DeviceManager {
    /// Port-I/O bus (serial, i8042).
    pub pio: Bus,
    /// MMIO bus (virtio-mmio windows).
    pub mmio: Bus,
    /// The serial console's buffer.
    pub console: ConsoleBuffer,
    /// The serial port.
    pub serial: Arc<Mutex<Serial>>,
    /// The keyboard controller.
    pub i8042: Arc<Mutex<I8042>>,
    /// Written by the i8042 when the guest pulses the reset line, and by the ACPI reset
    /// register.
    pub reset_evt: EventFd,
    /// The ACPI sleep control, sleep status and reset registers.
    pub acpi_pm: Arc<Mutex<AcpiPm>>,
    /// Written by the sleep control register when the guest enters S5.
    pub poweroff_evt: EventFd,
    /// The ACPI generic event device (the power button).
    pub ged: Arc<Mutex<Ged>>,
    /// Virtio devices in guest order.
    pub virtio: Vec<VirtioSlot>,
    /// Block devices by drive ID, for hot attach.
    pub blocks: HashMap<String, Arc<Mutex<Block>>>,
}

fn evt() -> Result<EventFd, DeviceError> {
    EventFd::new(libc::EFD_NONBLOCK).map_err(DeviceError::EventFd)
}

/// How a device raises GSI `gsi`, with either irqchip: an eventfd KVM turns into an interrupt
/// on that GSI (through its in-kernel IOAPIC and PIC, or through the routes the split irqchip's
/// IOAPIC programs).
pub fn irqfd(vm: &VmFd, gsi: u32) -> Result<EventFd, DeviceError> {
    let fd = evt()?;
    vm.register_irqfd(&fd, gsi)
        .map_err(|source| DeviceError::Kvm {
            what: "irqfd",
            source,
        })?;
    Ok(fd)
}

fn dev_err(id: &str, e: impl std::fmt::Display) -> DeviceError {
    DeviceError::Device {
        id: id.to_string(),
        message: e.to_string(),
    }
}

/// The files behind the devices, opened before the VM is built (see `resources`).
pub struct DeviceFiles {
    /// Each configured drive's image (`None`: an empty slot), in configuration order.
    pub disks: Vec<Option<DiskFile>>,
    /// Each configured interface's tap queues (one per queue pair), in configuration order.
    pub taps: Vec<Vec<Tap>>,
    /// The console log.
    pub console: Option<ConsoleLog>,
}

impl DeviceManager {
    /// Creates every device in `config` over `files`, adding virtio entries to `cmdline`.
    pub fn build(
        vm: &VmFd,
        irqchip: &Irqchip,
        mem: &GuestMemoryMmap,
        config: &VmConfig,
        cmdline: &mut Cmdline,
        files: DeviceFiles,
    ) -> Result<Self, DeviceError> {
        let mut pio = Bus::new();
        // The UART, the i8042 and the ACPI event device raise their lines through the split
        // irqchip's IOAPIC when there is one, so that its masking and Remote IRR apply to them.
        let legacy_line = |gsi: u32| -> Result<Arc<dyn IrqTrigger>, DeviceError> {
            Ok(match irqchip.ioapic_pin(gsi) {
                Some(pin) => Arc::new(pin),
                None => Arc::new(irqfd(vm, gsi)?),
            })
        };
        let serial = Serial::with_log(legacy_line(SERIAL_IRQ)?, files.console);
        let console = serial.console();
        let serial = Arc::new(Mutex::new(serial));
        pio.insert("serial", serial.clone(), SERIAL_PORT, 8)
            .map_err(DeviceError::Bus)?;
        let reset_evt = evt()?;
        let i8042 = Arc::new(Mutex::new(I8042::new(
            reset_evt.try_clone().map_err(DeviceError::EventFd)?,
            legacy_line(I8042_IRQ)?,
        )));
        pio.insert("i8042", i8042.clone(), I8042_PORT, 5)
            .map_err(DeviceError::Bus)?;
        let poweroff_evt = evt()?;
        let acpi_pm = Arc::new(Mutex::new(AcpiPm::new(
            poweroff_evt.try_clone().map_err(DeviceError::EventFd)?,
            reset_evt.try_clone().map_err(DeviceError::EventFd)?,
        )));
        pio.insert("acpi_pm", acpi_pm.clone(), ACPI_PM_PORT, PM_PORT_LEN)
            .map_err(DeviceError::Bus)?;
        let ged = Arc::new(Mutex::new(Ged::new(legacy_line(GED_IRQ)?)));
        pio.insert("ged", ged.clone(), GED_PORT, GED_PORT_LEN)
            .map_err(DeviceError::Bus)?;

        let mut mmio = Bus::new();
        if let Some((ioapic, base, len)) = irqchip.mmio_window() {
            mmio.insert("ioapic", ioapic, base, len)
                .map_err(DeviceError::Bus)?;
        }
        let mut dm = DeviceManager {
            pio,
            mmio,
            console,
            serial,
            i8042,
            reset_evt,
            acpi_pm,
            poweroff_evt,
            ged,
            virtio: Vec::new(),
            blocks: HashMap::new(),
        };
        let mut disk_files = files.disks.into_iter();
        for (i, d) in config.disks.iter().enumerate() {
            let id = d.id.clone().unwrap_or_else(|| format!("disk{i}"));
            let disk = disk_files.next().flatten();
            let block = Block::with_disk(id.clone(), disk, d.readonly);
            let block = Arc::new(Mutex::new(block));
            dm.blocks.insert(id.clone(), block.clone());
            dm.add_virtio(vm, mem, cmdline, id, VirtioKind::Block, block)?;
        }
        let mut taps = files.taps.into_iter();
        for (i, n) in config.nets.iter().enumerate() {
            let id = n.id.clone().unwrap_or_else(|| format!("net{i}"));
            let queues = taps.next().ok_or_else(|| dev_err(&id, "no tap given"))?;
            let mac = match &n.mac {
                Some(m) => Some(parse_mac(m).map_err(|e| dev_err(&id, e))?),
                None => None,
            };
            let net = Net::new(NetDeviceConfig {
                id: id.clone(),
                taps: queues,
                mac,
                enhanced: n.enhanced,
            })
            .map_err(|e| dev_err(&id, e))?;
            dm.add_virtio(
                vm,
                mem,
                cmdline,
                id,
                VirtioKind::Net,
                Arc::new(Mutex::new(net)),
            )?;
        }
        if config.rng {
            let rng = Rng::new("rng");
            dm.add_virtio(
                vm,
                mem,
                cmdline,
                "rng".into(),
                VirtioKind::Rng,
                Arc::new(Mutex::new(rng)),
            )?;
        }
        Ok(dm)
    }

    fn add_virtio(
        &mut self,
        vm: &VmFd,
        mem: &GuestMemoryMmap,
        cmdline: &mut Cmdline,
        id: String,
        kind: VirtioKind,
        device: Arc<Mutex<dyn VirtioDevice>>,
    ) -> Result<(), DeviceError> {
        let n = self.virtio.len() as u32;
        let irq = VIRTIO_IRQ_BASE + n;
        if irq > MAX_IRQ {
            return Err(DeviceError::TooMany(MAX_IRQ - VIRTIO_IRQ_BASE + 1));
        }
        let base = VIRTIO_MMIO_BASE + u64::from(n) * VIRTIO_MMIO_SIZE;
        let transport = MmioTransport::new(mem.clone(), device.clone(), Arc::new(irqfd(vm, irq)?))
            .map_err(|e| dev_err(&id, e))?;
        for (q, qevt) in transport.queue_events().iter().enumerate() {
            vm.register_ioevent(qevt, &IoEventAddress::Mmio(base + 0x50), q as u32)
                .map_err(|source| DeviceError::Kvm {
                    what: "ioeventfd",
                    source,
                })?;
        }
        let transport = Arc::new(Mutex::new(transport));
        self.mmio
            .insert(&id, transport.clone(), base, VIRTIO_MMIO_SIZE)
            .map_err(DeviceError::Bus)?;
        cmdline
            .add_virtio_mmio_device(VIRTIO_MMIO_SIZE, GuestAddress(base), irq, None)
            .map_err(DeviceError::Cmdline)?;
        self.virtio.push(VirtioSlot {
            id,
            kind,
            device,
            base,
            irq,
            transport,
        });
        Ok(())
    }

    /// Per-device counters: the serial port, the i8042, the ACPI devices and each virtio
    /// device.
    pub fn counters(&self) -> Vec<(String, Vec<(&'static str, u64)>)> {
        let mut out = vec![
            ("serial".to_string(), lock(&self.serial).counters()),
            ("i8042".to_string(), lock(&self.i8042).counters()),
            ("acpi_pm".to_string(), lock(&self.acpi_pm).counters()),
            ("ged".to_string(), lock(&self.ged).counters()),
        ];
        for s in &self.virtio {
            out.push((s.id.clone(), lock(&s.device).counters()));
        }
        out
    }

    /// Every virtqueue of every virtio device, with its live ring indexes.
    pub fn virtqueues(&self) -> Vec<strato_vmm_api::control::Virtqueue> {
        let mut out = Vec::new();
        for s in &self.virtio {
            for (i, q) in lock(&s.transport).queue_indexes().into_iter().enumerate() {
                out.push(strato_vmm_api::control::Virtqueue {
                    device: s.id.clone(),
                    queue: i as u16,
                    size: q.size,
                    ready: q.ready,
                    avail_idx: q.avail,
                    used_idx: q.used,
                });
            }
        }
        out
    }

    /// The virtio devices as the ACPI tables describe them.
    pub fn acpi_virtio(&self) -> Vec<acpi::VirtioMmioDevice> {
        self.virtio
            .iter()
            .map(|s| acpi::VirtioMmioDevice {
                base: s.base,
                size: VIRTIO_MMIO_SIZE,
                gsi: s.irq,
            })
            .collect()
    }

    /// Every virtio device as an event handler, with its index.
    pub fn handlers(&self) -> impl Iterator<Item = (usize, &Arc<Mutex<dyn VirtioDevice>>)> {
        self.virtio.iter().map(|s| &s.device).enumerate()
    }
}
