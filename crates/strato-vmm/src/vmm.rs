//! Assembles a VM from its configuration and runs it: the main thread runs the event loop
//! (device events, the API socket, exit and reset notifications, SIGTERM/SIGINT) while one
//! thread per vCPU runs guest code.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::os::unix::io::{AsRawFd, RawFd};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use kvm_ioctls::{Kvm, VmFd};
use linux_loader::loader::Cmdline;
use strato_devices::bus::lock;
use strato_devices::virtio::block::BlockError;
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

use crate::api::{self, ConnState, Connection, Reply, Request};
use crate::arch::x86_64::{acpi, boot, layout, mptable, regs, smbios};
use crate::config::VmConfig;
use crate::devices::{DeviceError, DeviceFiles, DeviceManager};
use crate::irqchip::{Irqchip, IrqchipError};
use crate::memory;
use crate::resources::{ApiSocket, Resources};
use crate::seccomp::{self, ThreadKind};
use crate::signals::SignalFd;
use crate::state::{ExitReason, VmControl, VmEvent, VmState};
use crate::vcpu::{self, VcpuContext, VcpuHandle, VcpuSandbox, VcpuStats};
use strato_devices::virtio::block::backend::DiskFile;
use strato_vmm_api::control::{
    BootMarks, BusWindow, ConsoleChunk, CounterSet, Counters, InputAccepted, Lab, MemRegion,
    StateOnly, StateReply,
};

/// Errors building or starting a VM.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// /dev/kvm could not be opened or the VM created.
    #[error("KVM: {0}")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
    /// Guest memory.
    #[error("guest memory")]
    Memory(#[from] memory::MemoryError),
    /// Kernel, initrd or boot information.
    #[error("boot")]
    Boot(#[from] boot::BootError),
    /// Boot tables.
    #[error("boot tables")]
    Regs(#[from] regs::RegsError),
    /// Interrupt controllers.
    #[error("interrupt controllers")]
    Irqchip(#[from] IrqchipError),
    /// MP table.
    #[error("MP table")]
    Mptable(#[from] mptable::MptableError),
    /// ACPI tables.
    #[error("ACPI tables")]
    Acpi(#[from] acpi::AcpiError),
    /// SMBIOS tables.
    #[error("SMBIOS tables")]
    Smbios(#[from] smbios::SmbiosError),
    /// Devices.
    #[error("devices")]
    Devices(#[from] DeviceError),
    /// vCPUs.
    #[error("vCPUs")]
    Vcpu(#[from] vcpu::VcpuError),
    /// The command line.
    #[error("kernel command line")]
    Cmdline(#[source] linux_loader::cmdline::Error),
    /// seccomp.
    #[error("seccomp")]
    Seccomp(#[from] seccomp::SeccompError),
    /// Event loop plumbing (epoll, eventfd, signalfd).
    #[error("event loop")]
    EventLoop(#[source] std::io::Error),
}

/// Maps guest memory and hands it to KVM.
fn setup_memory(vm: &VmFd, mib: u32) -> Result<GuestMemoryMmap, VmmError> {
    let mem = memory::create(mib)?;
    for (slot, region) in mem.iter().enumerate() {
        let r = kvm_bindings::kvm_userspace_memory_region {
            slot: slot as u32,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: region.as_ptr() as u64,
            flags: 0,
        };
        // SAFETY: the region is a live mapping owned by `mem`, which the Vmm keeps
        // alive for as long as the VM exists; slots do not overlap.
        unsafe { vm.set_user_memory_region(r) }
            .map_err(|e| VmmError::Kvm("KVM_SET_USER_MEMORY_REGION", e))?;
    }
    Ok(mem)
}

/// A built VM, ready to run.
pub struct Vmm {
    _kvm: Kvm,
    vm: Arc<VmFd>,
    irqchip: Irqchip,
    mem: GuestMemoryMmap,
    devices: DeviceManager,
    control: Arc<VmControl>,
    exit_evt: EventFd,
    rescan_evt: EventFd,
    api: Option<ApiSocket>,
    /// Jailed: every thread gets a seccomp filter, and no path is ever opened.
    jailed: bool,
    config: VmConfig,
    kernel: boot::LoadedKernel,
    vcpus: Vec<VcpuHandle>,
    /// Boot milestones (CLOCK_MONOTONIC ns) measured while building.
    marks: BootMarks,
}

// Epoll tokens on the main loop; connections use CONN_BASE + n.
const TOKEN_EXIT: u64 = 1;
const TOKEN_RESET: u64 = 2;
const TOKEN_RESCAN: u64 = 3;
const TOKEN_SIGNAL: u64 = 4;
const TOKEN_API: u64 = 5;
const TOKEN_DEVICES: u64 = 6;
const TOKEN_POWEROFF: u64 = 7;
const CONN_BASE: u64 = 1 << 32;

impl Vmm {
    /// Builds the VM from its configuration and the files opened for it: KVM objects,
    /// memory, kernel, devices, boot information.
    pub fn build(config: VmConfig, resources: Resources) -> Result<Self, VmmError> {
        let started = Instant::now();
        let mut marks = BootMarks {
            build_start_ns: Some(crate::vcpu::monotonic_ns()),
            ..Default::default()
        };
        let Resources {
            kvm,
            mut kernel,
            initrd,
            disks,
            taps,
            console,
            api,
            exit_status: _,
        } = resources;
        let vm = Arc::new(
            kvm.create_vm()
                .map_err(|e| VmmError::Kvm("KVM_CREATE_VM", e))?,
        );
        marks.vm_created_ns = Some(crate::vcpu::monotonic_ns());
        // The interrupt controllers and the memory slots are independent, and on a nested
        // host each can take milliseconds inside KVM: set them up side by side. The IOAPIC
        // takes the APIC ID after the last vCPU's.
        let (chips, mem) = std::thread::scope(|scope| {
            let chips = scope.spawn(|| Irqchip::create(&vm, config.irqchip, config.cpus + 1));
            let mem = setup_memory(&vm, config.memory_mib);
            (chips.join(), mem)
        });
        let irqchip = chips
            .map_err(|_| VmmError::EventLoop(std::io::Error::other("irqchip thread panicked")))??;
        let mem = mem?;
        marks.memory_mapped_ns = Some(crate::vcpu::monotonic_ns());

        let kernel = boot::load_kernel_file(&mem, &mut kernel, &config.kernel)?;
        let initrd = match (initrd, &config.initrd) {
            (Some(mut f), Some(p)) => Some(boot::load_initrd_file(&mem, &mut f, p, kernel.end)?),
            _ => None,
        };
        let mut cmdline = Cmdline::new(layout::CMDLINE_MAX_SIZE).map_err(VmmError::Cmdline)?;
        if !config.cmdline.is_empty() {
            cmdline
                .insert_str(&config.cmdline)
                .map_err(VmmError::Cmdline)?;
        }
        let files = DeviceFiles {
            disks,
            taps,
            console,
        };
        let devices = DeviceManager::build(&vm, &irqchip, &mem, &config, &mut cmdline, files)?;
        let virtio = devices.acpi_virtio();
        let rsdp = acpi::write_tables(
            &mem,
            &acpi::Platform {
                cpus: config.cpus,
                irqchips: &irqchip.platform(),
                virtio: &virtio,
                pm_port: layout::ACPI_PM_PORT as u16,
                ged_port: layout::GED_PORT as u16,
                ged_gsi: layout::GED_IRQ,
            },
        )?;
        smbios::write_tables(
            &mem,
            &smbios::SmbiosInfo::from_config(&config.smbios, config.cpus)?,
        )?;
        boot::write_boot_info(&mem, &kernel, &cmdline, initrd, rsdp)?;
        regs::write_boot_tables(&mem)?;
        mptable::setup_mptable(&mem, config.cpus, &irqchip.platform())?;

        let evt = || EventFd::new(libc::EFD_NONBLOCK).map_err(VmmError::EventLoop);
        tracing::info!(
            elapsed_us = started.elapsed().as_micros() as u64,
            entry = kernel.entry,
            mode = ?kernel.mode,
            irqchip = irqchip.mode().name(),
            "VM built"
        );
        Ok(Self {
            _kvm: kvm,
            vm,
            irqchip,
            mem,
            devices,
            control: Arc::new(VmControl::new()),
            exit_evt: evt()?,
            rescan_evt: evt()?,
            api,
            jailed: config.jail.is_some(),
            config,
            kernel,
            vcpus: Vec::new(),
            marks,
        })
    }

    fn start_vcpus(&mut self) -> Result<(), VmmError> {
        vcpu::install_kick_handler()?;
        let cpuid = vcpu::supported_cpuid(&self._kvm)?;
        let count = self.config.cpus;
        let mut fds = Vec::with_capacity(count as usize);
        for i in 0..count {
            let boot = (i == 0).then_some((self.kernel.mode, self.kernel.entry));
            fds.push(vcpu::create(
                &self.vm,
                &cpuid,
                i,
                count,
                self.config.cpu_template,
                boot,
            )?);
        }
        let sandbox = if self.jailed {
            Some(Arc::new(VcpuSandbox {
                filter: seccomp::vcpu_filter()?,
                start: Barrier::new(usize::from(count) + 1),
            }))
        } else {
            None
        };
        let event_loop_filter = match &sandbox {
            Some(_) => Some(seccomp::event_loop_filter()?),
            None => None,
        };
        self.control
            .apply(VmEvent::Start, None)
            .map_err(|e| VmmError::EventLoop(std::io::Error::other(e.to_string())))?;
        for (i, fd) in fds.into_iter().enumerate() {
            let ctx = VcpuContext {
                pio: self.devices.pio.clone(),
                mmio: self.devices.mmio.clone(),
                mem: self.mem.clone(),
                control: self.control.clone(),
                exit_evt: self.exit_evt.try_clone().map_err(VmmError::EventLoop)?,
                rescan_evt: self.rescan_evt.try_clone().map_err(VmmError::EventLoop)?,
                template: self.config.cpu_template,
                ioapic: self.irqchip.eoi_target(),
                stats: Arc::new(VcpuStats::default()),
                sandbox: sandbox.clone(),
            };
            self.vcpus.push(vcpu::spawn(fd, ctx, i as u8)?);
        }
        // The vCPU threads were spawned without a filter and install their own; the event
        // loop's goes in before any of them may enter the guest.
        if let (Some(sandbox), Some(filter)) = (&sandbox, &event_loop_filter) {
            let installed = seccomp::apply(filter);
            if installed.is_err() {
                self.control.exit(ExitReason::Error(
                    "the event loop's seccomp filter could not be installed".into(),
                ));
            }
            sandbox.start.wait();
            installed?;
            seccomp::test_hook(ThreadKind::EventLoop);
        }
        Ok(())
    }

    fn kick_all(&self) {
        for v in &self.vcpus {
            v.kick();
        }
    }

    /// Runs the VM until it exits; returns why.
    pub fn run(mut self) -> Result<ExitReason, VmmError> {
        let signals = SignalFd::termination().map_err(VmmError::EventLoop)?;
        let epoll = Epoll::new().map_err(VmmError::EventLoop)?;
        let add = |fd: RawFd, token: u64| {
            epoll
                .ctl(
                    ControlOperation::Add,
                    fd,
                    EpollEvent::new(EventSet::IN, token),
                )
                .map_err(VmmError::EventLoop)
        };
        add(self.exit_evt.as_raw_fd(), TOKEN_EXIT)?;
        add(self.devices.reset_evt.as_raw_fd(), TOKEN_RESET)?;
        add(self.devices.poweroff_evt.as_raw_fd(), TOKEN_POWEROFF)?;
        add(self.rescan_evt.as_raw_fd(), TOKEN_RESCAN)?;
        add(signals.as_raw_fd(), TOKEN_SIGNAL)?;
        if let Some(a) = &self.api {
            add(a.listener.as_raw_fd(), TOKEN_API)?;
        }
        let mut dev_loop = DeviceLoop::new(&self.devices, &epoll).map_err(VmmError::EventLoop)?;

        self.start_vcpus()?;
        let mut conns: HashMap<u64, Connection> = HashMap::new();
        let mut next_conn = CONN_BASE;
        let mut events = vec![EpollEvent::default(); 32];
        while self.control.state() != VmState::Exited {
            let n = match epoll.wait(-1, &mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(VmmError::EventLoop(e)),
            };
            for ev in &events[..n] {
                match ev.data() {
                    TOKEN_EXIT => {
                        let _ = self.exit_evt.read();
                    }
                    TOKEN_RESET => {
                        let _ = self.devices.reset_evt.read();
                        tracing::info!("guest reset (i8042 reset line or ACPI reset register)");
                        self.control.exit(ExitReason::GuestReset);
                    }
                    TOKEN_POWEROFF => {
                        let _ = self.devices.poweroff_evt.read();
                        tracing::info!("guest entered ACPI S5");
                        self.control.exit(ExitReason::GuestPowerOff);
                    }
                    TOKEN_RESCAN => {
                        let _ = self.rescan_evt.read();
                        dev_loop
                            .rescan(&self.devices, &epoll, true)
                            .map_err(VmmError::EventLoop)?;
                    }
                    TOKEN_SIGNAL => {
                        if let Some(sig) = signals.read() {
                            tracing::info!(signal = sig, "stopping on signal");
                            self.control.exit(ExitReason::Stopped);
                        }
                    }
                    TOKEN_DEVICES => dev_loop
                        .dispatch(&self.devices, &epoll)
                        .map_err(VmmError::EventLoop)?,
                    TOKEN_API => {
                        if let Some(a) = &self.api {
                            while let Ok((s, _)) = a.listener.accept() {
                                let Ok(c) = Connection::new(s) else { continue };
                                let token = next_conn;
                                next_conn += 1;
                                if add(c.stream().as_raw_fd(), token).is_ok() {
                                    conns.insert(token, c);
                                }
                            }
                        }
                    }
                    token => {
                        let Some(mut c) = conns.remove(&token) else {
                            continue;
                        };
                        let state = c.service(&mut ApiHandler { vmm: &mut self });
                        if state == ConnState::Open {
                            conns.insert(token, c);
                        } else {
                            let _ = epoll.ctl(
                                ControlOperation::Delete,
                                c.stream().as_raw_fd(),
                                EpollEvent::default(),
                            );
                        }
                    }
                }
            }
        }
        // Bring every vCPU out of the guest and wait for it.
        self.kick_all();
        for v in self.vcpus.drain(..) {
            v.join();
        }
        // A jailed monitor cannot remove its socket file; whoever made the jail does.
        if let Some(path) = self.api.as_ref().and_then(|a| a.path.as_ref()) {
            if !self.jailed {
                let _ = std::fs::remove_file(path);
            }
        }
        Ok(self
            .control
            .exit_reason()
            .unwrap_or(ExitReason::Error("VM ended without a reason".into())))
    }

    /// The `lab` reply: the memory map, the bus windows' accesses, the virtqueues, the
    /// boot milestones.
    fn lab(&self) -> Lab {
        let mut memory_map: Vec<MemRegion> = memory::ram_ranges(self.config.memory_mib)
            .into_iter()
            .map(|(base, len)| MemRegion {
                kind: "ram".into(),
                name: "RAM".into(),
                base: base.0,
                len: len as u64,
            })
            .collect();
        let fixed = [
            (
                "boot",
                "boot data (GDT, PVH info, zero page, page tables)",
                layout::GDT_ADDR,
                layout::PD_ADDR + 0x1000,
            ),
            (
                "boot",
                "kernel command line",
                layout::CMDLINE_ADDR,
                layout::CMDLINE_ADDR + layout::CMDLINE_MAX_SIZE as u64,
            ),
            ("mptable", "MP table", layout::MPTABLE_START, 0xa_0000),
            ("acpi", "ACPI tables", layout::ACPI_START, layout::ACPI_END),
            (
                "smbios",
                "SMBIOS tables",
                layout::SMBIOS_START,
                layout::SMBIOS_END,
            ),
        ];
        memory_map.extend(fixed.iter().map(|&(kind, name, start, end)| MemRegion {
            kind: kind.into(),
            name: name.into(),
            base: start,
            len: end - start,
        }));
        let windows = |bus: &str, b: &strato_devices::bus::Bus| -> Vec<BusWindow> {
            b.windows()
                .into_iter()
                .map(|w| BusWindow {
                    bus: bus.into(),
                    device: w.name,
                    base: w.base,
                    len: w.len,
                    accesses: w.accesses,
                })
                .collect()
        };
        let bus: Vec<BusWindow> = windows("pio", &self.devices.pio)
            .into_iter()
            .chain(windows("mmio", &self.devices.mmio))
            .collect();
        memory_map.extend(bus.iter().filter(|w| w.bus == "mmio").map(|w| MemRegion {
            kind: "mmio".into(),
            name: w.device.clone(),
            base: w.base,
            len: w.len,
        }));
        memory_map.sort_by_key(|r| (r.base, r.len));
        let now_ns = crate::vcpu::monotonic_ns();
        let since = |t: Instant| now_ns.saturating_sub(t.elapsed().as_nanos() as u64);
        let mut boot = self.marks.clone();
        boot.first_kvm_run_ns = self
            .vcpus
            .first()
            .map(|v| {
                v.stats
                    .first_run_ns
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .filter(|&n| n != 0);
        boot.first_console_byte_ns = self.devices.console.first_output().map(since);
        Lab {
            memory_map,
            bus,
            virtqueues: self.devices.virtqueues(),
            boot,
        }
    }

    fn counters(&self) -> Counters {
        let set = |pairs: Vec<(&'static str, u64)>| -> CounterSet {
            pairs.into_iter().map(|(k, n)| (k.to_string(), n)).collect()
        };
        Counters {
            vcpus: self
                .vcpus
                .iter()
                .map(|v| {
                    let mut c = v.stats.counters();
                    if let Some(k) = &v.kvm_stats {
                        c.extend(k.read());
                    }
                    set(c)
                })
                .collect(),
            devices: self
                .devices
                .counters()
                .into_iter()
                .chain(self.irqchip.counters().map(|c| ("ioapic".to_string(), c)))
                .map(|(id, c)| (id, set(c)))
                .collect(),
        }
    }
}

/// The devices' descriptors live in their own epoll set, nested in the main one, so that
/// the whole set can be rebuilt when a device is activated or reset without tracking
/// which old descriptors are gone (a closed descriptor's number may already be reused).
struct DeviceLoop {
    epoll: Epoll,
}

impl DeviceLoop {
    /// Builds the set and registers it with `main`.
    fn new(devices: &DeviceManager, main: &Epoll) -> std::io::Result<Self> {
        let epoll = Self::build(devices)?;
        main.ctl(
            ControlOperation::Add,
            epoll.as_raw_fd(),
            EpollEvent::new(EventSet::IN, TOKEN_DEVICES),
        )?;
        Ok(Self { epoll })
    }

    fn build(devices: &DeviceManager) -> std::io::Result<Epoll> {
        let epoll = Epoll::new()?;
        for (i, d) in devices.handlers() {
            for s in lock(d).event_sources() {
                let data = ((i as u64) << 32) | u64::from(s.token);
                epoll.ctl(
                    ControlOperation::Add,
                    s.fd,
                    EpollEvent::new(EventSet::IN, data),
                )?;
            }
        }
        Ok(epoll)
    }

    /// Rebuilds the set when any device reports a change (or when `force`), swapping the
    /// new set into `main`.
    fn rescan(
        &mut self,
        devices: &DeviceManager,
        main: &Epoll,
        force: bool,
    ) -> std::io::Result<()> {
        let mut changed = force;
        for (_, d) in devices.handlers() {
            changed |= lock(d).sources_changed();
        }
        if !changed {
            return Ok(());
        }
        let new = Self::build(devices)?;
        main.ctl(
            ControlOperation::Add,
            new.as_raw_fd(),
            EpollEvent::new(EventSet::IN, TOKEN_DEVICES),
        )?;
        // Dropping the old set closes it, which also takes it out of `main`.
        self.epoll = new;
        Ok(())
    }

    fn dispatch(&mut self, devices: &DeviceManager, main: &Epoll) -> std::io::Result<()> {
        let mut events = vec![EpollEvent::default(); 64];
        let n = self.epoll.wait(0, &mut events)?;
        let mut changed = false;
        for ev in &events[..n] {
            let idx = (ev.data() >> 32) as usize;
            let token = ev.data() as u32;
            if let Some((_, d)) = devices.handlers().nth(idx) {
                let mut d = lock(d);
                d.handle_event(token);
                changed |= d.sources_changed();
            }
        }
        if changed {
            self.rescan(devices, main, true)?;
        }
        Ok(())
    }
}

struct ApiHandler<'a> {
    vmm: &'a mut Vmm,
}

impl api::Handler for ApiHandler<'_> {
    fn handle(&mut self, req: Request, fds: Vec<OwnedFd>) -> Result<Reply, String> {
        let vmm = &mut *self.vmm;
        let control = vmm.control.clone();
        let state = || {
            Reply::StateOnly(StateOnly {
                state: control.state(),
            })
        };
        match req {
            Request::State {} => Ok(Reply::State(StateReply {
                state: vmm.control.state(),
                uptime_ms: vmm.control.uptime().as_millis() as u64,
                vcpus: vmm.config.cpus,
                memory_mib: vmm.config.memory_mib,
                first_kvm_run_monotonic_ns: vmm.vcpus.first().map(|v| {
                    v.stats
                        .first_run_ns
                        .load(std::sync::atomic::Ordering::Relaxed)
                }),
            })),
            Request::Counters {} => Ok(Reply::Counters(vmm.counters())),
            Request::Lab {} => Ok(Reply::Lab(vmm.lab())),
            Request::Pause {} => {
                vmm.control
                    .apply(VmEvent::Pause, None)
                    .map_err(|e| e.to_string())?;
                vmm.kick_all();
                if !vmm
                    .control
                    .wait_parked(vmm.vcpus.len(), Duration::from_secs(5))
                {
                    return Err("vCPUs did not stop within 5 s".into());
                }
                // Parked vCPUs publish nothing new: serve what they did publish and make
                // every image durable, so that a copy taken while paused is whole.
                for (id, block) in &vmm.devices.blocks {
                    let served = lock(block)
                        .quiesce()
                        .map_err(|e| format!("paused, but drive {id}: {e}"))?;
                    if served > 0 {
                        tracing::debug!(drive = %id, served, "served requests on pause");
                    }
                }
                Ok(state())
            }
            Request::Resume {} => {
                vmm.control
                    .apply(VmEvent::Resume, None)
                    .map_err(|e| e.to_string())?;
                Ok(state())
            }
            Request::Stop {} => {
                vmm.control.exit(ExitReason::Stopped);
                Ok(state())
            }
            Request::CtrlAltDel {} => {
                if vmm.control.state() != VmState::Running {
                    return Err(format!("VM is {}", vmm.control.state().name()));
                }
                lock(&vmm.devices.i8042).trigger_ctrl_alt_del();
                Ok(Reply::Done)
            }
            Request::AttachDrive { id, path, readonly } => {
                let block = vmm
                    .devices
                    .blocks
                    .get(&id)
                    .ok_or_else(|| format!("no drive slot {id}"))?;
                let disk = attached_disk(path, fds, readonly, vmm.jailed)
                    .map_err(|e| format!("attach {id}: {e}"))?;
                lock(block)
                    .attach_disk(disk)
                    .map_err(|e| format!("attach {id}: {e}"))?;
                Ok(Reply::Done)
            }
            Request::DetachDrive { id } => {
                let block = vmm
                    .devices
                    .blocks
                    .get(&id)
                    .ok_or_else(|| format!("no drive slot {id}"))?;
                // Emptying an empty slot is done already: a detach the daemon retries after
                // a timeout (the first one carried out late) must not fail.
                match lock(block).detach() {
                    Ok(()) | Err(BlockError::NotAttached) => Ok(Reply::Done),
                    Err(e) => Err(format!("detach {id}: {e}")),
                }
            }
            Request::ConsoleInput { data } => {
                let accepted = lock(&vmm.devices.serial).enqueue_input(&data);
                Ok(Reply::InputAccepted(InputAccepted {
                    accepted: accepted as u64,
                }))
            }
            Request::ConsoleBreak {} => {
                if !lock(&vmm.devices.serial).send_break() {
                    return Err("the console input queue is full".into());
                }
                Ok(Reply::Done)
            }
            Request::PowerButton {} => {
                if vmm.control.state() != VmState::Running {
                    return Err(format!("VM is {}", vmm.control.state().name()));
                }
                lock(&vmm.devices.ged)
                    .press_power_button()
                    .map_err(|e| format!("power button: {e}"))?;
                Ok(Reply::Done)
            }
            Request::Console { from } => {
                // Position 0 means "the oldest byte still kept".
                let (data, next) = vmm.devices.console.read_from(from.unwrap_or(0));
                Ok(Reply::Console(ConsoleChunk {
                    data: String::from_utf8_lossy(&data).into_owned(),
                    next,
                }))
            }
        }
    }
}

/// The image for `attach-drive`: the descriptor sent with the request, or (unjailed only)
/// the path it names.
fn attached_disk(
    path: Option<std::path::PathBuf>,
    fds: Vec<OwnedFd>,
    readonly: bool,
    jailed: bool,
) -> Result<DiskFile, String> {
    let mut fds = fds.into_iter();
    match (path, fds.next()) {
        (Some(_), Some(_)) => Err("give a path or a descriptor, not both".into()),
        (None, Some(fd)) => DiskFile::from_file(
            std::fs::File::from(fd),
            "a descriptor from the control socket".into(),
            readonly,
        )
        .map_err(|e| e.to_string()),
        (Some(_), None) if jailed => Err(
            "this monitor is jailed and opens no paths: send the image's descriptor with the request (SCM_RIGHTS)".into(),
        ),
        (Some(p), None) => DiskFile::open(&p, readonly).map_err(|e| e.to_string()),
        (None, None) => Err("needs a path or a descriptor sent with the request".into()),
    }
}
