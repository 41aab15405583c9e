//! The monitor's configuration: one VM, described by a JSON file (`--config`) or by
//! command-line flags with the same meaning (strato-vmm's `cli` module). The daemon builds
//! this struct and writes it as JSON; the monitor parses and checks it with
//! [`VmConfig::from_json`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod net;
pub use net::{NetConfig, MAX_QUEUE_PAIRS};

/// Most vCPUs a VM may have.
pub const MAX_VCPUS: u8 = 8;

/// Least guest memory, in MiB: enough for the boot structures below 1 MiB, a small kernel at
/// 1 MiB and its early allocations.
pub const MIN_MEMORY_MIB: u32 = 16;

/// Most guest memory, in MiB (64 GiB): well within the 64-bit guest physical space, and more
/// than a microVM on one host is expected to need.
pub const MAX_MEMORY_MIB: u32 = 65536;

/// Longest command line the user may give, in bytes; the monitor appends its own
/// `virtio_mmio.device=` entries after it.
pub const MAX_CMDLINE_LEN: usize = 4096;

/// Most disks and network interfaces together. Virtio device `n` gets GSI `5 + n` and the
/// 4 KiB MMIO window `0xd0000000 + n * 0x1000` (see `docs/boot-contract.md`); the IOAPIC has
/// pins up to 23, and the optional virtio-rng device takes one more.
pub const MAX_DEVICES: usize = 16;

/// Longest drive or interface ID, in bytes: the virtio-blk serial number is 20 bytes.
pub const MAX_ID_LEN: usize = 20;

/// Longest tap device name, in bytes (`IFNAMSIZ` less the terminating NUL).
pub const MAX_TAP_NAME_LEN: usize = 15;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The JSON text could not be parsed (syntax, unknown field, wrong type); serde_json's
    /// message names the field and the line and column.
    #[error("invalid JSON config: {0}")]
    Json(#[from] serde_json::Error),
    /// `cpus` is out of range.
    #[error("cpus must be between 1 and {MAX_VCPUS}, got {0}")]
    Cpus(u8),
    /// `memory_mib` is out of range.
    #[error("memory_mib must be between {MIN_MEMORY_MIB} and {MAX_MEMORY_MIB}, got {0}")]
    Memory(u32),
    /// A path field is empty.
    #[error("{0} path is empty")]
    EmptyPath(String),
    /// The command line is too long.
    #[error("cmdline is {0} bytes long, more than {MAX_CMDLINE_LEN}")]
    CmdlineTooLong(usize),
    /// The command line contains a NUL byte.
    #[error("cmdline contains a NUL byte")]
    CmdlineNul,
    /// More disks and network interfaces than the MMIO window and IRQ lines allow.
    #[error("{0} disks and nets in total, more than {MAX_DEVICES}")]
    TooManyDevices(usize),
    /// A drive or interface ID is empty, too long or has characters outside `[A-Za-z0-9_-]`.
    #[error(
        "invalid id {id:?} for {what}: use 1 to {MAX_ID_LEN} characters from A-Z, a-z, 0-9, _ and -"
    )]
    InvalidId {
        /// Which device, e.g. `disks[1]`.
        what: String,
        /// The refused ID.
        id: String,
    },
    /// Two devices share an ID.
    #[error("duplicate device id {0:?}")]
    DuplicateId(String),
    /// A network interface has both or neither of `tap` and `fd`.
    #[error("{0} needs exactly one of tap and fd")]
    NetBackend(String),
    /// A tap device name is empty, too long or has a character the kernel refuses.
    #[error("invalid tap name {name:?} for {id}")]
    InvalidTap {
        /// Interface ID.
        id: String,
        /// The refused name.
        name: String,
    },
    /// The queue pairs of an interface are out of range, disagree with its descriptors,
    /// or ask for multiqueue on a plain device.
    #[error("{id}: {reason}")]
    QueuePairs {
        /// Interface ID.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// A tap file descriptor is negative.
    #[error("invalid tap fd {fd} for {id}")]
    InvalidFd {
        /// Interface ID.
        id: String,
        /// The refused descriptor.
        fd: i32,
    },
    /// An SMBIOS identity string is empty, too long or not printable ASCII.
    #[error(
        "invalid smbios {field} {value:?}: use 1 to {MAX_SMBIOS_STRING_LEN} printable ASCII characters"
    )]
    SmbiosString {
        /// The field, e.g. `product`.
        field: &'static str,
        /// The refused value.
        value: String,
    },
    /// The SMBIOS UUID does not parse.
    #[error("invalid smbios uuid {value:?}: {source}")]
    SmbiosUuid {
        /// The refused value.
        value: String,
        /// What is wrong with it.
        source: UuidError,
    },
    /// A descriptor named in the configuration is a standard stream, or is named twice.
    #[error("{what}: descriptor {fd} {reason}")]
    Fd {
        /// The field, e.g. `kvm_fd` or `disk disk0`.
        what: String,
        /// The descriptor.
        fd: i32,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A resource is given both as a path and as a descriptor.
    #[error("{0}: give a path or a descriptor, not both")]
    PathAndFd(String),
    /// The jail's settings are refused.
    #[error("jail: {0}")]
    Jail(&'static str),
    /// A MAC address does not parse or is not a unicast address.
    #[error("invalid MAC address {mac:?} for {id}: {source}")]
    InvalidMac {
        /// Interface ID.
        id: String,
        /// The refused address.
        mac: String,
        /// What is wrong with it.
        source: MacError,
    },
}

/// Longest SMBIOS identity string, in bytes.
pub const MAX_SMBIOS_STRING_LEN: usize = 64;

/// Why a UUID was refused by [`parse_uuid`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected 8-4-4-4-12 hex digits like ec2a1b2c-3d4e-456f-8790-0123456789ab")]
pub struct UuidError;

/// Parses a UUID written as 32 hex digits in groups of 8-4-4-4-12 (either case); the bytes
/// are in the order the text reads.
pub fn parse_uuid(s: &str) -> Result<[u8; 16], UuidError> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lens != [8, 4, 4, 4, 12] {
        return Err(UuidError);
    }
    let hex: String = groups.concat();
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = hex.get(2 * i..2 * i + 2).ok_or(UuidError)?;
        if !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(UuidError);
        }
        *byte = u8::from_str_radix(pair, 16).map_err(|_| UuidError)?;
    }
    Ok(out)
}

fn is_valid_smbios_string(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SMBIOS_STRING_LEN
        && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// Why a MAC address was refused by [`parse_mac`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    /// Not six `:`-separated pairs of hex digits.
    #[error("expected six hex pairs like aa:bb:cc:dd:ee:ff")]
    Syntax,
    /// The group bit (bit 0 of the first byte) is set.
    #[error("multicast address, a guest needs a unicast one")]
    Multicast,
    /// All zeros.
    #[error("all-zero address")]
    Zero,
}

/// Parses a guest MAC address written as six `:`-separated pairs of hex digits
/// (`aa:bb:cc:dd:ee:ff`, either case) and checks that a guest NIC may use it: unicast (bit 0 of
/// the first byte clear) and not all zeros.
pub fn parse_mac(s: &str) -> Result<[u8; 6], MacError> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in mac.iter_mut() {
        let part = parts.next().ok_or(MacError::Syntax)?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(MacError::Syntax);
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| MacError::Syntax)?;
    }
    if parts.next().is_some() {
        return Err(MacError::Syntax);
    }
    if mac[0] & 1 != 0 {
        return Err(MacError::Multicast);
    }
    if mac == [0; 6] {
        return Err(MacError::Zero);
    }
    Ok(mac)
}

/// Whether `id` is a valid drive or interface ID: 1 to [`MAX_ID_LEN`] bytes of `[A-Za-z0-9_-]`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn is_valid_tap_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TAP_NAME_LEN
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
}

fn check_path(what: &str, path: &Path) -> Result<(), ConfigError> {
    if path.as_os_str().is_empty() {
        return Err(ConfigError::EmptyPath(what.to_string()));
    }
    Ok(())
}

/// Which CPUID/emulation profile the monitor applies (the daemon chooses; the monitor obeys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CpuTemplate {
    /// The host's CPUID, normalized per vCPU.
    #[default]
    Host,
    /// For hosts whose KVM emulates guest kernel code (see `emulation`): masks the
    /// instructions that emulator refuses and steps over INT3/FWAIT.
    EmulatedKvm,
}

impl CpuTemplate {
    /// The template's name in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            CpuTemplate::Host => "host",
            CpuTemplate::EmulatedKvm => "emulated-kvm",
        }
    }
}

/// A CPU template name that is not one of the templates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown CPU template {0:?}: use host or emulated-kvm")]
pub struct UnknownTemplate(pub String);

impl std::str::FromStr for CpuTemplate {
    type Err = UnknownTemplate;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [CpuTemplate::Host, CpuTemplate::EmulatedKvm]
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| UnknownTemplate(s.to_string()))
    }
}

/// Where the VM's interrupt controllers live (the daemon chooses; the monitor obeys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum IrqchipMode {
    /// Local APICs in KVM, the IOAPIC in the monitor, no 8259 PIC and no PIT
    /// (`KVM_CAP_SPLIT_IRQCHIP`): the cheapest to create and to tear down. The guest needs the
    /// local APIC timer (Linux uses it, with TSC deadline mode where KVM offers it).
    #[default]
    Split,
    /// KVM's in-kernel PIC, IOAPIC, local APICs and PIT, for guests that need an 8259 or a PIT.
    Kernel,
}

impl IrqchipMode {
    /// The mode's name in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            IrqchipMode::Split => "split",
            IrqchipMode::Kernel => "kernel",
        }
    }
}

/// An irqchip mode name that is not one of the modes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown irqchip mode {0:?}: use split or kernel")]
pub struct UnknownIrqchipMode(pub String);

impl std::str::FromStr for IrqchipMode {
    type Err = UnknownIrqchipMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [IrqchipMode::Split, IrqchipMode::Kernel]
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownIrqchipMode(s.to_string()))
    }
}

/// One virtio-blk drive, or an empty slot to hot-attach a file to later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    /// Drive ID (used by the API's attach/detach and as the virtio-blk serial). Defaults to
    /// `disk<N>` in declaration order.
    #[serde(default)]
    pub id: Option<String>,
    /// Backing file; `None` (and no `fd`) declares an empty hot-attach slot.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The backing file as an inherited descriptor instead of a path (opened read-only for
    /// a read-only drive).
    #[serde(default)]
    pub fd: Option<i32>,
    /// Read-only drive.
    #[serde(default)]
    pub readonly: bool,
}

/// The machine's identity in its SMBIOS tables (system information and chassis); the
/// manufacturer is always `strato`. The daemon sets the instance type as product, the same
/// `ec2`-prefixed UUID as UUID and serial number (as EC2 guests see), and the instance ID as
/// asset tag.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmbiosConfig {
    /// System product name (`strato-vmm` when unset).
    #[serde(default)]
    pub product: Option<String>,
    /// System serial number.
    #[serde(default)]
    pub serial: Option<String>,
    /// System UUID, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    #[serde(default)]
    pub uuid: Option<String>,
    /// Chassis asset tag.
    #[serde(default)]
    pub asset_tag: Option<String>,
}

impl SmbiosConfig {
    /// Checks every field: strings of 1 to [`MAX_SMBIOS_STRING_LEN`] printable ASCII
    /// characters, a UUID that [`parse_uuid`] reads.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("product", &self.product),
            ("serial", &self.serial),
            ("asset_tag", &self.asset_tag),
        ] {
            if let Some(v) = value {
                if !is_valid_smbios_string(v) {
                    return Err(ConfigError::SmbiosString {
                        field,
                        value: v.clone(),
                    });
                }
            }
        }
        if let Some(u) = &self.uuid {
            parse_uuid(u).map_err(|source| ConfigError::SmbiosUuid {
                value: u.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// The whole VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmConfig {
    /// Guest kernel: ELF vmlinux (with or without a PVH note) or bzImage.
    pub kernel: PathBuf,
    /// Optional initial ramdisk.
    #[serde(default)]
    pub initrd: Option<PathBuf>,
    /// Kernel command line (the monitor appends its `virtio_mmio.device=` entries).
    #[serde(default)]
    pub cmdline: String,
    /// vCPUs, 1 to `MAX_VCPUS`.
    #[serde(default = "default_cpus")]
    pub cpus: u8,
    /// Guest memory in MiB.
    #[serde(default = "default_memory")]
    pub memory_mib: u32,
    /// Drives in guest order.
    #[serde(default)]
    pub disks: Vec<DiskConfig>,
    /// Network interfaces in guest order.
    #[serde(default)]
    pub nets: Vec<NetConfig>,
    /// Whether to add a virtio-rng device.
    #[serde(default)]
    pub rng: bool,
    /// File that receives the serial console (it is also kept in memory for the API).
    #[serde(default)]
    pub console: Option<PathBuf>,
    /// The console file as an inherited descriptor (readable too, so that old output can be
    /// kept when the cap is reached).
    #[serde(default)]
    pub console_fd: Option<i32>,
    /// Most bytes the console file holds; past it the oldest output is dropped.
    #[serde(default = "default_console_max_bytes")]
    pub console_max_bytes: u64,
    /// Unix socket for the control API.
    #[serde(default)]
    pub api_socket: Option<PathBuf>,
    /// The control API's listening Unix socket as an inherited descriptor.
    #[serde(default)]
    pub api_socket_fd: Option<i32>,
    /// `/dev/kvm` as an inherited descriptor (default: the monitor opens `/dev/kvm`).
    #[serde(default)]
    pub kvm_fd: Option<i32>,
    /// Where to record how the VM ended (`{"code": N, "reason": "..."}`), written atomically
    /// before the process exits: a supervisor that adopted this process after a restart is
    /// not its parent and cannot read its exit status.
    #[serde(default)]
    pub exit_status_file: Option<PathBuf>,
    /// The exit status record as an inherited, writable descriptor.
    #[serde(default)]
    pub exit_status_fd: Option<i32>,
    /// CPU template.
    #[serde(default)]
    pub cpu_template: CpuTemplate,
    /// The identity in the guest's SMBIOS tables.
    #[serde(default)]
    pub smbios: SmbiosConfig,
    /// Interrupt controllers.
    #[serde(default)]
    pub irqchip: IrqchipMode,
    /// Run the VM in a jail (see the monitor's `jail` module); `None` runs it unconfined.
    #[serde(default)]
    pub jail: Option<JailConfig>,
}

/// The jail a monitor puts itself in before the guest runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JailConfig {
    /// User the monitor runs as; default: the caller's own, or 65534 (`nobody`) for root.
    /// Root must give every VM a uid of its own: VMs sharing one may signal and trace each
    /// other if one escapes.
    #[serde(default)]
    pub uid: Option<u32>,
    /// Group the monitor runs as; default as for `uid`.
    #[serde(default)]
    pub gid: Option<u32>,
    /// Most open descriptors (RLIMIT_NOFILE).
    #[serde(default = "default_max_open_files")]
    pub max_open_files: u64,
    /// Allow core dumps (off by default: a dump holds guest memory).
    #[serde(default)]
    pub core_dumps: bool,
    /// A mount namespace holding only an empty root, as an inherited descriptor (what
    /// `strato-vmm --serve-empty-mount-ns` makes; the daemon makes one for all its VMs).
    /// The jail's own mount namespace is then copied from it instead of from the host's
    /// whole mount table, so that its cost does not grow with the host's mounts. Root only.
    #[serde(default)]
    pub mount_ns_fd: Option<i32>,
    /// A network namespace made ahead for this VM alone, as an inherited descriptor. The
    /// jail joins it instead of creating one as it starts (as Firecracker's jailer joins
    /// the namespace its `--netns` names), which takes the namespace's creation, about half
    /// a millisecond, off the start. It must be fresh and never given to a second VM: it is
    /// then as much the VM's own as one the jail makes. Root only.
    #[serde(default)]
    pub net_ns_fd: Option<i32>,
}

impl Default for JailConfig {
    fn default() -> Self {
        JailConfig {
            uid: None,
            gid: None,
            max_open_files: default_max_open_files(),
            core_dumps: false,
            mount_ns_fd: None,
            net_ns_fd: None,
        }
    }
}

/// Least RLIMIT_NOFILE a jail accepts: the monitor's own descriptors (KVM, eventfds, epoll,
/// sockets) for the largest VM fit well below it.
pub const MIN_OPEN_FILES: u64 = 256;

fn default_max_open_files() -> u64 {
    1024
}

/// The console file's cap when the configuration names none: 1 MiB.
pub const DEFAULT_CONSOLE_MAX_BYTES: u64 = 1 << 20;

fn default_console_max_bytes() -> u64 {
    DEFAULT_CONSOLE_MAX_BYTES
}

fn default_cpus() -> u8 {
    1
}

fn default_memory() -> u32 {
    128
}

impl DiskConfig {
    /// This drive's ID: the configured one, or `disk<index>` where `index` is its position
    /// in [`VmConfig::disks`].
    pub fn id_or_default(&self, index: usize) -> String {
        self.id.clone().unwrap_or_else(|| format!("disk{index}"))
    }
}

impl VmConfig {
    /// Every descriptor the configuration names, with the field that names it.
    pub fn named_fds(&self) -> Vec<(String, i32)> {
        let mut fds = Vec::new();
        let mut push = |what: &str, fd: Option<i32>| {
            if let Some(fd) = fd {
                fds.push((what.to_string(), fd));
            }
        };
        push("kvm_fd", self.kvm_fd);
        push("console_fd", self.console_fd);
        push("api_socket_fd", self.api_socket_fd);
        push("exit_status_fd", self.exit_status_fd);
        push(
            "jail.mount_ns_fd",
            self.jail.as_ref().and_then(|j| j.mount_ns_fd),
        );
        push(
            "jail.net_ns_fd",
            self.jail.as_ref().and_then(|j| j.net_ns_fd),
        );
        for (i, d) in self.disks.iter().enumerate() {
            push(&format!("disk {}", d.id_or_default(i)), d.fd);
        }
        for (i, n) in self.nets.iter().enumerate() {
            push(&format!("net {}", n.id_or_default(i)), n.fd);
            for (q, fd) in n.queue_fds.iter().enumerate() {
                push(
                    &format!("net {} queue {}", n.id_or_default(i), q + 2),
                    Some(*fd),
                );
            }
        }
        fds
    }

    /// Paths and descriptors: one of the two per resource, descriptors above the standard
    /// streams and each named once (two owners would close it twice).
    fn validate_fds(&self) -> Result<(), ConfigError> {
        let both = [
            (
                "console",
                self.console.is_some() && self.console_fd.is_some(),
            ),
            (
                "api_socket",
                self.api_socket.is_some() && self.api_socket_fd.is_some(),
            ),
            (
                "exit_status",
                self.exit_status_file.is_some() && self.exit_status_fd.is_some(),
            ),
        ];
        if let Some((what, _)) = both.iter().find(|(_, b)| *b) {
            return Err(ConfigError::PathAndFd(what.to_string()));
        }
        for (i, d) in self.disks.iter().enumerate() {
            if d.path.is_some() && d.fd.is_some() {
                return Err(ConfigError::PathAndFd(format!(
                    "disk {}",
                    d.id_or_default(i)
                )));
            }
        }
        let mut seen = HashSet::new();
        for (what, fd) in self.named_fds() {
            // Negative tap descriptors keep their own message (see `validate`).
            if what.starts_with("net ") && fd < 0 {
                continue;
            }
            if fd < 3 {
                return Err(ConfigError::Fd {
                    what,
                    fd,
                    reason: "is not above the standard streams",
                });
            }
            if !seen.insert(fd) {
                return Err(ConfigError::Fd {
                    what,
                    fd,
                    reason: "is named twice",
                });
            }
        }
        Ok(())
    }

    /// A configuration with the given kernel and every other field at its default, as an
    /// empty JSON object with only `kernel` would give.
    pub fn new(kernel: impl Into<PathBuf>) -> Self {
        VmConfig {
            kernel: kernel.into(),
            initrd: None,
            cmdline: String::new(),
            cpus: default_cpus(),
            memory_mib: default_memory(),
            disks: Vec::new(),
            nets: Vec::new(),
            rng: false,
            console: None,
            console_fd: None,
            console_max_bytes: DEFAULT_CONSOLE_MAX_BYTES,
            api_socket: None,
            api_socket_fd: None,
            kvm_fd: None,
            exit_status_file: None,
            exit_status_fd: None,
            cpu_template: CpuTemplate::default(),
            smbios: SmbiosConfig::default(),
            irqchip: IrqchipMode::default(),
            jail: None,
        }
    }

    /// Parses a JSON configuration, fills in default device IDs ([`VmConfig::normalize`]) and
    /// checks it ([`VmConfig::validate`]). Unknown fields are refused; the error names the
    /// field and its line and column.
    pub fn from_json(text: &str) -> Result<VmConfig, ConfigError> {
        let mut config: VmConfig = serde_json::from_str(text)?;
        config.normalize();
        config.validate()?;
        Ok(config)
    }

    /// Gives every drive and interface without an ID its default one (`disk<N>`, `net<N>`,
    /// by position). [`VmConfig::validate`] gives the same result before or after this.
    pub fn normalize(&mut self) {
        for (index, disk) in self.disks.iter_mut().enumerate() {
            if disk.id.is_none() {
                disk.id = Some(format!("disk{index}"));
            }
        }
        for (index, net) in self.nets.iter_mut().enumerate() {
            if net.id.is_none() {
                net.id = Some(format!("net{index}"));
            }
        }
    }

    /// Checks every field: vCPU count (1 to [`MAX_VCPUS`]), memory ([`MIN_MEMORY_MIB`] to
    /// [`MAX_MEMORY_MIB`]), non-empty paths, command line length, device count (at most
    /// [`MAX_DEVICES`] disks and nets), device IDs (valid, and unique across disks and nets,
    /// counting default IDs), one tap backend per interface, MAC addresses, and the SMBIOS identity.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cpus == 0 || self.cpus > MAX_VCPUS {
            return Err(ConfigError::Cpus(self.cpus));
        }
        if !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&self.memory_mib) {
            return Err(ConfigError::Memory(self.memory_mib));
        }
        check_path("kernel", &self.kernel)?;
        if let Some(initrd) = &self.initrd {
            check_path("initrd", initrd)?;
        }
        if let Some(console) = &self.console {
            check_path("console", console)?;
        }
        if let Some(socket) = &self.api_socket {
            check_path("api_socket", socket)?;
        }
        if let Some(path) = &self.exit_status_file {
            check_path("exit_status_file", path)?;
        }
        if self.cmdline.len() > MAX_CMDLINE_LEN {
            return Err(ConfigError::CmdlineTooLong(self.cmdline.len()));
        }
        if self.cmdline.contains('\0') {
            return Err(ConfigError::CmdlineNul);
        }
        let devices = self.disks.len() + self.nets.len();
        if devices > MAX_DEVICES {
            return Err(ConfigError::TooManyDevices(devices));
        }
        self.smbios.validate()?;

        self.validate_fds()?;
        if let Some(jail) = &self.jail {
            if jail.uid == Some(0) || jail.gid == Some(0) {
                return Err(ConfigError::Jail("uid and gid must not be 0"));
            }
            if jail.max_open_files < MIN_OPEN_FILES {
                return Err(ConfigError::Jail("max_open_files must be at least 256"));
            }
        }

        let mut ids = HashSet::new();
        let mut check_id = |what: String, id: String| {
            if !is_valid_id(&id) {
                return Err(ConfigError::InvalidId { what, id });
            }
            if !ids.insert(id.clone()) {
                return Err(ConfigError::DuplicateId(id));
            }
            Ok(())
        };
        for (index, disk) in self.disks.iter().enumerate() {
            check_id(format!("disks[{index}]"), disk.id_or_default(index))?;
            if let Some(path) = &disk.path {
                check_path(&format!("disk {}", disk.id_or_default(index)), path)?;
            }
        }
        for (index, net) in self.nets.iter().enumerate() {
            let id = net.id_or_default(index);
            check_id(format!("nets[{index}]"), id.clone())?;
            match (&net.tap, net.fd) {
                (Some(name), None) => {
                    if !is_valid_tap_name(name) {
                        return Err(ConfigError::InvalidTap {
                            id,
                            name: name.clone(),
                        });
                    }
                }
                (None, Some(fd)) => {
                    if fd < 0 {
                        return Err(ConfigError::InvalidFd { id, fd });
                    }
                }
                _ => return Err(ConfigError::NetBackend(id)),
            }
            net.validate_queues(&id)?;
            if let Some(mac) = &net.mac {
                parse_mac(mac).map_err(|source| ConfigError::InvalidMac {
                    id: id.clone(),
                    mac: mac.clone(),
                    source,
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<VmConfig, ConfigError> {
        VmConfig::from_json(text)
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(config) => panic!("accepted {text}: {config:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn minimal_json_gets_defaults() {
        let config = parse(r#"{"kernel": "/k"}"#).expect("minimal config");
        assert_eq!(config, VmConfig::new("/k"));
        assert_eq!(config.cpus, 1);
        assert_eq!(config.memory_mib, 128);
        assert_eq!(config.cpu_template, CpuTemplate::Host);
        assert_eq!(config.irqchip, IrqchipMode::Split);
    }

    #[test]
    fn full_json_round_trips() {
        let text = r#"{
            "kernel": "/boot/vmlinux",
            "initrd": "/boot/initrd",
            "cmdline": "console=ttyS0",
            "cpus": 4,
            "memory_mib": 1024,
            "disks": [{"path": "/v/root.img"}, {"id": "data", "path": "/v/d", "readonly": true},
                      {"id": "slot1"}],
            "nets": [{"tap": "tap0", "mac": "02:00:00:00:00:01"}, {"fd": 7, "id": "eth1"}],
            "rng": true,
            "console": "/tmp/console.log",
            "api_socket": "/run/vm.sock",
            "cpu_template": "emulated-kvm",
            "irqchip": "kernel"
        }"#;
        let config = parse(text).expect("full config");
        assert_eq!(config.disks[0].id.as_deref(), Some("disk0"));
        assert_eq!(config.disks[2].path, None);
        assert_eq!(config.nets[0].id.as_deref(), Some("net0"));
        assert_eq!(config.nets[1].id.as_deref(), Some("eth1"));
        assert_eq!(config.cpu_template, CpuTemplate::EmulatedKvm);
        assert_eq!(config.irqchip, IrqchipMode::Kernel);
        let text = serde_json::to_string(&config).expect("serialize");
        let again = parse(&text).expect("serialized config");
        assert_eq!(again, config);
    }

    #[test]
    fn unknown_field_is_named_with_position() {
        let msg = err("{\n  \"kernel\": \"/k\",\n  \"memroy_mib\": 5\n}");
        assert!(msg.contains("unknown field `memroy_mib`"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
        let msg = err(r#"{"kernel": "/k", "disks": [{"path": "/x", "redonly": true}]}"#);
        assert!(msg.contains("unknown field `redonly`"), "{msg}");
        let msg = err(r#"{"kernel": "/k", "nets": [{"tap": "t", "macc": "x"}]}"#);
        assert!(msg.contains("unknown field `macc`"), "{msg}");
    }

    #[test]
    fn missing_kernel_and_bad_types() {
        assert!(err("{}").contains("missing field `kernel`"));
        assert!(err(r#"{"kernel": "/k", "cpus": "two"}"#).contains("invalid type"));
        assert!(err(r#"{"kernel": "/k", "cpus": 300}"#).contains("invalid value"));
        assert!(err(r#"{"kernel": "/k", "cpu_template": "fast"}"#).contains("fast"));
        assert!(err(r#"{"kernel": "/k", "irqchip": "userspace"}"#).contains("userspace"));
        assert!(err("not json").contains("line 1"));
    }

    #[test]
    fn irqchip_mode_names() {
        for mode in [IrqchipMode::Split, IrqchipMode::Kernel] {
            assert_eq!(mode.name().parse::<IrqchipMode>(), Ok(mode));
        }
        let e = "in-kernel"
            .parse::<IrqchipMode>()
            .expect_err("unknown mode");
        assert!(e.to_string().contains("in-kernel"), "{e}");
    }

    #[test]
    fn cpu_and_memory_bounds() {
        assert!(err(r#"{"kernel": "/k", "cpus": 0}"#).contains("cpus"));
        assert!(err(r#"{"kernel": "/k", "cpus": 9}"#).contains("got 9"));
        assert!(parse(r#"{"kernel": "/k", "cpus": 8}"#).is_ok());
        assert!(err(r#"{"kernel": "/k", "memory_mib": 15}"#).contains("memory_mib"));
        assert!(err(r#"{"kernel": "/k", "memory_mib": 65537}"#).contains("65537"));
        assert!(parse(r#"{"kernel": "/k", "memory_mib": 16}"#).is_ok());
        assert!(parse(r#"{"kernel": "/k", "memory_mib": 65536}"#).is_ok());
    }

    #[test]
    fn paths_and_cmdline() {
        assert_eq!(err(r#"{"kernel": ""}"#), "kernel path is empty");
        assert!(err(r#"{"kernel": "/k", "initrd": ""}"#).contains("initrd"));
        assert!(err(r#"{"kernel": "/k", "disks": [{"path": ""}]}"#).contains("disk disk0"));
        let mut config = VmConfig::new("/k");
        config.cmdline = "a".repeat(MAX_CMDLINE_LEN);
        assert!(config.validate().is_ok());
        config.cmdline.push('b');
        let msg = config.validate().expect_err("long cmdline").to_string();
        assert!(msg.contains("4097"), "{msg}");
        config.cmdline = "a\0b".into();
        assert!(matches!(config.validate(), Err(ConfigError::CmdlineNul)));
    }

    #[test]
    fn ids() {
        let msg = err(r#"{"kernel": "/k", "disks": [{"path": "/a"}, {"id": "disk0"}]}"#);
        assert_eq!(msg, r#"duplicate device id "disk0""#);
        let msg =
            err(r#"{"kernel": "/k", "disks": [{"id": "x"}], "nets": [{"id": "x", "fd": 3}]}"#);
        assert!(msg.contains(r#""x""#), "{msg}");
        let msg = err(r#"{"kernel": "/k", "disks": [{"id": ""}]}"#);
        assert!(msg.contains("disks[0]"), "{msg}");
        let msg = err(r#"{"kernel": "/k", "disks": [{"id": "a b"}]}"#);
        assert!(msg.contains(r#""a b""#), "{msg}");
        let long = "x".repeat(MAX_ID_LEN + 1);
        let msg = err(&format!(
            r#"{{"kernel": "/k", "nets": [{{"id": "{long}", "fd": 3}}]}}"#
        ));
        assert!(msg.contains("nets[0]"), "{msg}");
        let ok = "A-z_09".to_string() + &"y".repeat(MAX_ID_LEN - 6);
        assert!(parse(&format!(
            r#"{{"kernel": "/k", "disks": [{{"id": "{ok}"}}]}}"#
        ))
        .is_ok());
    }

    #[test]
    fn normalize_and_validate_agree() {
        let mut config = VmConfig::new("/k");
        config.disks.push(DiskConfig {
            id: None,
            path: None,
            fd: None,
            readonly: false,
        });
        config.disks.push(DiskConfig {
            id: Some("disk0".into()),
            path: None,
            fd: None,
            readonly: false,
        });
        assert!(config.validate().is_err());
        config.normalize();
        assert!(config.validate().is_err());
        config.disks[1].id = Some("other".into());
        assert!(config.validate().is_ok());
        config.normalize();
        assert_eq!(config.disks[0].id.as_deref(), Some("disk0"));
    }

    #[test]
    fn net_backends() {
        let msg = err(r#"{"kernel": "/k", "nets": [{"tap": "t0", "fd": 3}]}"#);
        assert_eq!(msg, "net0 needs exactly one of tap and fd");
        let msg = err(r#"{"kernel": "/k", "nets": [{"fd": 3}, {"id": "e1"}]}"#);
        assert_eq!(msg, "e1 needs exactly one of tap and fd");
        assert!(err(r#"{"kernel": "/k", "nets": [{"fd": -1}]}"#).contains("-1"));
        assert!(err(r#"{"kernel": "/k", "nets": [{"tap": ""}]}"#).contains("tap name"));
        let long = "t".repeat(MAX_TAP_NAME_LEN + 1);
        assert!(err(&format!(
            r#"{{"kernel": "/k", "nets": [{{"tap": "{long}"}}]}}"#
        ))
        .contains("tap name"));
        assert!(err(r#"{"kernel": "/k", "nets": [{"tap": "a/b"}]}"#).contains("tap name"));
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:00:00:00:00:01"), Ok([2, 0, 0, 0, 0, 1]));
        assert_eq!(
            parse_mac("AA:bb:Cc:dd:ee:ff"),
            Ok([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff])
        );
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "2:00:00:00:00:01",
            "02-00-00-00-00-01",
            "zz:00:00:00:00:01",
            "02:00:00:00:00:+1",
            "02:00:00:00:00:01:",
        ] {
            assert_eq!(parse_mac(bad), Err(MacError::Syntax), "{bad}");
        }
        assert_eq!(parse_mac("01:00:5e:00:00:01"), Err(MacError::Multicast));
        assert_eq!(parse_mac("ff:ff:ff:ff:ff:ff"), Err(MacError::Multicast));
        assert_eq!(parse_mac("00:00:00:00:00:00"), Err(MacError::Zero));
        let msg = err(r#"{"kernel": "/k", "nets": [{"tap": "t", "mac": "zz:00:00:00:00:01"}]}"#);
        assert!(
            msg.starts_with(r#"invalid MAC address "zz:00:00:00:00:01" for net0"#),
            "{msg}"
        );
        let msg = err(r#"{"kernel": "/k", "nets": [{"tap": "t", "mac": "01:00:00:00:00:01"}]}"#);
        assert!(msg.contains("multicast"), "{msg}");
    }

    #[test]
    fn smbios_identity() {
        let text = r#"{"kernel": "/k", "smbios": {"product": "t3.micro",
            "serial": "ec2a1b2c-3d4e-456f-8790-0123456789ab",
            "uuid": "EC2A1B2C-3D4E-456F-8790-0123456789AB", "asset_tag": "i-0123456789abcdef0"}}"#;
        let config = parse(text).expect("smbios config");
        assert_eq!(config.smbios.product.as_deref(), Some("t3.micro"));
        assert_eq!(
            parse_uuid(config.smbios.uuid.as_deref().unwrap()),
            Ok([
                0xec, 0x2a, 0x1b, 0x2c, 0x3d, 0x4e, 0x45, 0x6f, 0x87, 0x90, 0x01, 0x23, 0x45, 0x67,
                0x89, 0xab
            ])
        );
        assert!(err(r#"{"kernel": "/k", "smbios": {"produkt": "x"}}"#).contains("produkt"));
        let msg = err(r#"{"kernel": "/k", "smbios": {"product": ""}}"#);
        assert!(msg.starts_with("invalid smbios product"), "{msg}");
        let long = "x".repeat(MAX_SMBIOS_STRING_LEN + 1);
        assert!(err(&format!(
            r#"{{"kernel": "/k", "smbios": {{"serial": "{long}"}}}}"#
        ))
        .contains("serial"));
        assert!(
            err(r#"{"kernel": "/k", "smbios": {"asset_tag": "tab\there"}}"#).contains("asset_tag")
        );
        for bad in [
            "ec2a1b2c3d4e456f87900123456789ab",
            "ec2a1b2c-3d4e-456f-8790-0123456789a",
            "ec2a1b2c-3d4e-456f-8790-0123456789ag",
            "ec2a1b2c-3d4e-456f-8790_0123456789ab",
            "+c2a1b2c-3d4e-456f-8790-0123456789ab",
        ] {
            assert_eq!(parse_uuid(bad), Err(UuidError), "{bad}");
        }
        let msg = err(r#"{"kernel": "/k", "smbios": {"uuid": "nope"}}"#);
        assert!(msg.starts_with("invalid smbios uuid \"nope\""), "{msg}");
    }

    #[test]
    fn descriptors() {
        let config = parse(
            r#"{"kernel": "/k", "kvm_fd": 3, "console_fd": 4, "api_socket_fd": 5,
                "exit_status_fd": 6, "disks": [{"fd": 7, "readonly": true}], "nets": [{"fd": 8}],
                "console_max_bytes": 65536, "jail": {"uid": 20000, "gid": 20000}}"#,
        )
        .expect("descriptor config");
        assert_eq!(config.named_fds().len(), 6);
        assert_eq!(config.console_max_bytes, 65536);
        assert_eq!(config.jail.as_ref().and_then(|j| j.uid), Some(20000));
        assert_eq!(
            parse(r#"{"kernel": "/k"}"#).unwrap().console_max_bytes,
            DEFAULT_CONSOLE_MAX_BYTES
        );
        let msg = err(r#"{"kernel": "/k", "kvm_fd": 4, "console_fd": 4}"#);
        assert_eq!(msg, "console_fd: descriptor 4 is named twice");
        let msg = err(r#"{"kernel": "/k", "disks": [{"fd": 3}], "nets": [{"fd": 3}]}"#);
        assert!(
            msg.contains("net net0: descriptor 3 is named twice"),
            "{msg}"
        );
        let msg = err(r#"{"kernel": "/k", "kvm_fd": 2}"#);
        assert!(msg.contains("standard streams"), "{msg}");
        let msg = err(r#"{"kernel": "/k", "disks": [{"fd": 5, "path": "/x"}]}"#);
        assert_eq!(msg, "disk disk0: give a path or a descriptor, not both");
        let msg = err(r#"{"kernel": "/k", "console": "/c", "console_fd": 5}"#);
        assert!(msg.starts_with("console:"), "{msg}");
        let msg = err(r#"{"kernel": "/k", "jail": {"uid": 0}}"#);
        assert!(msg.contains("must not be 0"), "{msg}");
        let msg = err(r#"{"kernel": "/k", "jail": {"max_open_files": 10}}"#);
        assert!(msg.contains("max_open_files"), "{msg}");
        assert!(err(r#"{"kernel": "/k", "jail": {"uid": 5, "chroot": "/"}}"#).contains("chroot"));
    }

    #[test]
    fn device_limit() {
        let mut config = VmConfig::new("/k");
        for _ in 0..MAX_DEVICES - 1 {
            config.disks.push(DiskConfig {
                id: None,
                path: None,
                fd: None,
                readonly: false,
            });
        }
        config.nets.push(NetConfig {
            id: None,
            tap: Some("t".into()),
            fd: None,
            mac: None,
            ..NetConfig::default()
        });
        assert!(config.validate().is_ok());
        config.nets.push(NetConfig {
            id: None,
            tap: Some("u".into()),
            fd: None,
            mac: None,
            ..NetConfig::default()
        });
        assert!(matches!(
            config.validate(),
            Err(ConfigError::TooManyDevices(17))
        ));
    }
}
