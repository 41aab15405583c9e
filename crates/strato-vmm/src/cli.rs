//! Command-line flags, in the style of Cloud Hypervisor: either `--config FILE` (JSON, see
//! `config`) or flags that describe the VM, with the same meaning as the JSON fields.

use std::path::PathBuf;

use crate::config::{
    ConfigError, CpuTemplate, DiskConfig, JailConfig, NetConfig, SmbiosConfig, VmConfig,
    MAX_MEMORY_MIB, MAX_VCPUS, MIN_MEMORY_MIB,
};

/// The help text: every flag the monitor accepts.
pub const USAGE: &str = "\
Usage: strato-vmm --kernel PATH [OPTIONS]
       strato-vmm --config FILE

Runs one KVM microVM until the guest powers off.

Options:
  --config FILE             Read the whole VM from a JSON file; no other VM flag may be given
  --kernel PATH             Guest kernel: ELF vmlinux (PVH or 64-bit entry) or bzImage (required)
  --initrd PATH             Initial ramdisk
  --cmdline TEXT            Kernel command line (at most 4096 bytes)
  --cpus N                  vCPUs, 1 to 8 (default 1)
  --memory SIZE             Guest memory in MiB, or with a suffix: 512M, 1G (default 128)
  --disk KEY=VALUE,...      A virtio-blk drive; repeatable. Keys:
                              path=FILE        backing file (without it: an empty slot for
                                               a drive attached later through the API)
                              fd=N             the backing file as an open descriptor
                              readonly=on|off  read-only drive (default off)
                              id=ID            drive ID and serial (default disk<N>)
  --net KEY=VALUE,...       A virtio-net interface; repeatable. Keys:
                              tap=NAME         tap device to open, or
                              fd=N[:N...]      an already-open tap file descriptor (one
                                               per queue of a multiqueue tap)
                              enhanced=on|off  enhanced networking (EC2's ENA): offloads,
                                               mergeable RX buffers, EVENT_IDX,
                                               multiqueue (default off)
                              queues=N         queue pairs, 1 to 8 (above 1: enhanced,
                                               and a tap= is opened multiqueue)
                              mac=MAC          guest MAC address aa:bb:cc:dd:ee:ff
                              id=ID            interface ID (default net<N>)
  --rng                     Add a virtio-rng device
  --console FILE            Write the serial console to FILE
  --console-max-bytes SIZE  Cap the console file at SIZE bytes (suffix K, M or G; default
                            1M); the oldest output is dropped past it
  --api-socket PATH         Serve the control API on this Unix socket
  --exit-status-file PATH   On exit, write the exit status and reason as JSON to PATH, so a
                            supervisor that is not the parent learns how the VM ended
  --cpu-template NAME       host (default) or emulated-kvm
  --smbios KEY=VALUE,...    The machine's identity in its SMBIOS tables. Keys:
                              product=TEXT     system product name (default strato-vmm)
                              serial=TEXT      system serial number
                              uuid=UUID        system UUID (8-4-4-4-12 hex digits)
                              asset_tag=TEXT   chassis asset tag
  --irqchip MODE            split (default: local APICs in KVM, IOAPIC in the monitor, no PIC
                            or PIT) or kernel (KVM's PIC, IOAPIC, local APICs and PIT)
  --jail[=KEY=VALUE,...]    Run the VM jailed: own namespaces, an empty root, no capabilities,
                            an unprivileged user, landlock and a seccomp filter per thread
                            (see docs/security.md). Keys:
                              uid=N, gid=N     user and group (default: the caller's own;
                                               65534 when run as root)
                              nofile=N         most open descriptors (default 1024)
                              core=on|off      allow core dumps (default off)
                              mountns=N        an empty mount namespace to copy the
                                               jail's from (root; see
                                               --serve-empty-mount-ns)
                              netns=N          a fresh network namespace made for
                                               this VM alone, to join instead of
                                               making one (root)
  --check-jail              Report which jail layers this host supports, then exit
  --serve-empty-mount-ns    Make a mount namespace holding only an empty root, print
                            `ready`, and keep it until standard input closes (open
                            /proc/PID/ns/mnt meanwhile and pass it as --jail=mountns=N)
  -h, --help                Print this help
  -V, --version             Print the version

Every flag also takes the --flag=VALUE form. IDs are 1 to 20 characters from A-Z, a-z, 0-9,
_ and -. A value that starts with -- must use the --flag=VALUE form.
";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the VM described by the flags or the config file (normalized and validated).
    Run(Box<VmConfig>),
    /// Print [`USAGE`].
    Help,
    /// Print the version.
    Version,
}

/// Why a command line was refused.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A flag the monitor does not know, or an argument that is not a flag.
    #[error("unknown argument {0:?} (see --help)")]
    UnknownFlag(String),
    /// A flag that needs a value came last, or was followed by another flag.
    #[error("missing value for {0}")]
    MissingValue(String),
    /// A flag that takes no value was given one with `--flag=VALUE`.
    #[error("{0} takes no value")]
    UnexpectedValue(String),
    /// A flag that may appear once appeared again.
    #[error("{0} given more than once")]
    Duplicate(String),
    /// A flag's value does not parse or is out of range.
    #[error("invalid value {value:?} for {flag}: {reason}")]
    InvalidValue {
        /// The flag, e.g. `--cpus`.
        flag: String,
        /// The refused value.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// An item of a `key=value,...` list has no `=`.
    #[error("expected key=value in {flag}, got {item:?}")]
    NotKeyValue {
        /// The flag, e.g. `--disk`.
        flag: String,
        /// The refused item.
        item: String,
    },
    /// A key that the flag does not know.
    #[error("unknown key {key:?} in {flag}")]
    UnknownKey {
        /// The flag, e.g. `--disk`.
        flag: String,
        /// The refused key.
        key: String,
    },
    /// A key given twice in one flag.
    #[error("key {key:?} given more than once in {flag}")]
    DuplicateKey {
        /// The flag, e.g. `--disk`.
        flag: String,
        /// The repeated key.
        key: String,
    },
    /// A key's value does not parse.
    #[error("invalid value {value:?} for key {key:?} in {flag}: {reason}")]
    InvalidKeyValue {
        /// The flag, e.g. `--disk`.
        flag: String,
        /// The key.
        key: String,
        /// The refused value.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// `--net` without exactly one of `tap=` and `fd=`.
    #[error("--net needs exactly one of tap= and fd=, got {0:?}")]
    NetBackend(String),
    /// `--config` together with a flag that describes the VM.
    #[error("--config cannot be combined with {0}: put everything in the config file")]
    ConfigConflict(String),
    /// Neither `--kernel` nor `--config`.
    #[error("missing --kernel (or --config)")]
    MissingKernel,
    /// The `--config` file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The `--config` file is not a valid configuration.
    #[error("config file {path}: {source}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: ConfigError,
    },
    /// The VM described by the flags is not valid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The flags that describe the VM (all but `--config`, `--help` and `--version`), each with
/// whether it takes a value and whether it may be repeated.
const VM_FLAGS: &[(&str, bool, bool)] = &[
    ("--kernel", true, false),
    ("--initrd", true, false),
    ("--cmdline", true, false),
    ("--cpus", true, false),
    ("--memory", true, false),
    ("--disk", true, true),
    ("--net", true, true),
    ("--rng", false, false),
    ("--jail", false, false),
    ("--console", true, false),
    ("--console-max-bytes", true, false),
    ("--api-socket", true, false),
    ("--exit-status-file", true, false),
    ("--cpu-template", true, false),
    ("--smbios", true, false),
    ("--irqchip", true, false),
];

/// Parses the arguments (without the program name) into a [`Command`]. `--help` and
/// `--version` win over what follows them; everything before them must parse. The resulting
/// configuration is normalized ([`VmConfig::normalize`]) and validated.
pub fn parse_args(args: &[String]) -> Result<Command, CliError> {
    let mut config_file: Option<PathBuf> = None;
    let mut first_vm_flag: Option<&'static str> = None;
    let mut seen: Vec<&'static str> = Vec::new();
    let mut kernel: Option<PathBuf> = None;
    let mut config = VmConfig::new("");

    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value)),
            _ => (arg.as_str(), None),
        };
        match name {
            "-h" | "--help" | "-V" | "--version" => {
                if inline.is_some() {
                    return Err(CliError::UnexpectedValue(name.to_string()));
                }
                return Ok(if name == "-h" || name == "--help" {
                    Command::Help
                } else {
                    Command::Version
                });
            }
            "--config" => {
                if config_file.is_some() {
                    return Err(CliError::Duplicate(name.to_string()));
                }
                if let Some(flag) = first_vm_flag {
                    return Err(CliError::ConfigConflict(flag.to_string()));
                }
                let value = take_value(name, inline, &mut iter)?;
                config_file = Some(PathBuf::from(value));
                continue;
            }
            _ => {}
        }
        let Some(&(flag, takes_value, repeatable)) = VM_FLAGS.iter().find(|f| f.0 == name) else {
            return Err(CliError::UnknownFlag(arg.clone()));
        };
        if config_file.is_some() {
            return Err(CliError::ConfigConflict(flag.to_string()));
        }
        first_vm_flag.get_or_insert(flag);
        if !repeatable {
            if seen.contains(&flag) {
                return Err(CliError::Duplicate(flag.to_string()));
            }
            seen.push(flag);
        }
        if flag == "--jail" {
            // The jail's settings are optional and only given inline, so that a following
            // argument is never mistaken for them.
            config.jail = Some(parse_jail(inline.unwrap_or(""))?);
            continue;
        }
        if !takes_value {
            if inline.is_some() {
                return Err(CliError::UnexpectedValue(flag.to_string()));
            }
            // `--rng` is the only other flag without a value.
            config.rng = true;
            continue;
        }
        let value = take_value(flag, inline, &mut iter)?;
        match flag {
            "--kernel" => kernel = Some(PathBuf::from(value)),
            "--initrd" => config.initrd = Some(PathBuf::from(value)),
            "--cmdline" => config.cmdline = value.to_string(),
            "--cpus" => config.cpus = parse_cpus(value)?,
            "--memory" => config.memory_mib = parse_memory(value)?,
            "--disk" => config.disks.push(parse_disk(value)?),
            "--net" => config.nets.push(parse_net(value)?),
            "--console" => config.console = Some(PathBuf::from(value)),
            "--console-max-bytes" => config.console_max_bytes = parse_bytes(flag, value)?,
            "--api-socket" => config.api_socket = Some(PathBuf::from(value)),
            "--exit-status-file" => config.exit_status_file = Some(PathBuf::from(value)),
            "--cpu-template" => config.cpu_template = parse_cpu_template(value)?,
            "--smbios" => config.smbios = parse_smbios(value)?,
            "--irqchip" => {
                config.irqchip = value
                    .parse()
                    .map_err(|_| invalid("--irqchip", value, "expected split or kernel"))?
            }
            _ => return Err(CliError::UnknownFlag(arg.clone())),
        }
    }

    if let Some(path) = config_file {
        let text = std::fs::read_to_string(&path).map_err(|source| CliError::ReadConfig {
            path: path.clone(),
            source,
        })?;
        return VmConfig::from_json(&text)
            .map(|c| Command::Run(Box::new(c)))
            .map_err(|source| CliError::ConfigFile { path, source });
    }
    config.kernel = kernel.ok_or(CliError::MissingKernel)?;
    config.normalize();
    config.validate()?;
    Ok(Command::Run(Box::new(config)))
}

/// The flag's value: the `=VALUE` part, or else the next argument unless that is a flag.
fn take_value<'a>(
    flag: &str,
    inline: Option<&'a str>,
    iter: &mut std::slice::Iter<'a, String>,
) -> Result<&'a str, CliError> {
    if let Some(value) = inline {
        return Ok(value);
    }
    match iter.as_slice().first() {
        Some(next) if !next.starts_with("--") => {
            iter.next();
            Ok(next)
        }
        _ => Err(CliError::MissingValue(flag.to_string())),
    }
}

fn invalid(flag: &str, value: &str, reason: &str) -> CliError {
    CliError::InvalidValue {
        flag: flag.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

fn parse_cpus(value: &str) -> Result<u8, CliError> {
    let reason = format!("expected a number from 1 to {MAX_VCPUS}");
    let cpus: u32 = value
        .parse()
        .map_err(|_| invalid("--cpus", value, &reason))?;
    match u8::try_from(cpus) {
        Ok(cpus) if (1..=MAX_VCPUS).contains(&cpus) => Ok(cpus),
        _ => Err(invalid("--cpus", value, &reason)),
    }
}

/// MiB from `N`, `NM` or `NG` (either case).
fn parse_memory(value: &str) -> Result<u32, CliError> {
    let reason = format!(
        "expected MiB from {MIN_MEMORY_MIB} to {MAX_MEMORY_MIB}, optionally with an M or G suffix"
    );
    let (digits, scale) = match value.as_bytes().last() {
        Some(b'M' | b'm') => (&value[..value.len() - 1], 1),
        Some(b'G' | b'g') => (&value[..value.len() - 1], 1024),
        _ => (value, 1),
    };
    let mib = digits
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|mib| (MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(mib));
    mib.ok_or_else(|| invalid("--memory", value, &reason))
}

/// Bytes from `N`, `NK`, `NM` or `NG` (either case, powers of 1024).
fn parse_bytes(flag: &str, value: &str) -> Result<u64, CliError> {
    let (digits, shift) = match value.as_bytes().last() {
        Some(b'K' | b'k') => (&value[..value.len() - 1], 10),
        Some(b'M' | b'm') => (&value[..value.len() - 1], 20),
        Some(b'G' | b'g') => (&value[..value.len() - 1], 30),
        _ => (value, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| {
            invalid(
                flag,
                value,
                "expected bytes, optionally with a K, M or G suffix",
            )
        })
}

fn parse_jail(value: &str) -> Result<JailConfig, CliError> {
    let mut jail = JailConfig::default();
    if value.is_empty() {
        return Ok(jail);
    }
    for (key, val) in key_values(
        "--jail",
        value,
        &["uid", "gid", "nofile", "core", "mountns", "netns"],
    )? {
        let bad = |reason: &str| CliError::InvalidKeyValue {
            flag: "--jail".into(),
            key: key.into(),
            value: val.into(),
            reason: reason.into(),
        };
        match key {
            "uid" => jail.uid = Some(val.parse().map_err(|_| bad("expected a user ID"))?),
            "gid" => jail.gid = Some(val.parse().map_err(|_| bad("expected a group ID"))?),
            "nofile" => {
                jail.max_open_files = val.parse().map_err(|_| bad("expected a number"))?;
            }
            "mountns" => {
                let fd = val.parse::<i32>().ok().filter(|fd| *fd >= 0);
                jail.mount_ns_fd = Some(fd.ok_or_else(|| bad("expected a file descriptor"))?);
            }
            "netns" => {
                let fd = val.parse::<i32>().ok().filter(|fd| *fd >= 0);
                jail.net_ns_fd = Some(fd.ok_or_else(|| bad("expected a file descriptor"))?);
            }
            _ => {
                jail.core_dumps = match val {
                    "on" => true,
                    "off" => false,
                    _ => return Err(bad("expected on or off")),
                }
            }
        }
    }
    Ok(jail)
}

fn parse_cpu_template(value: &str) -> Result<CpuTemplate, CliError> {
    match value {
        "host" => Ok(CpuTemplate::Host),
        "emulated-kvm" => Ok(CpuTemplate::EmulatedKvm),
        _ => Err(invalid(
            "--cpu-template",
            value,
            "expected host or emulated-kvm",
        )),
    }
}

/// Splits `key=value,...` into pairs, refusing keys outside `known` and repeated keys.
fn key_values<'a>(
    flag: &str,
    value: &'a str,
    known: &[&str],
) -> Result<Vec<(&'a str, &'a str)>, CliError> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for item in value.split(',') {
        let Some((key, val)) = item.split_once('=') else {
            return Err(CliError::NotKeyValue {
                flag: flag.into(),
                item: item.into(),
            });
        };
        if !known.contains(&key) {
            return Err(CliError::UnknownKey {
                flag: flag.into(),
                key: key.into(),
            });
        }
        if pairs.iter().any(|(k, _)| *k == key) {
            return Err(CliError::DuplicateKey {
                flag: flag.into(),
                key: key.into(),
            });
        }
        if val.is_empty() {
            return Err(CliError::InvalidKeyValue {
                flag: flag.into(),
                key: key.into(),
                value: String::new(),
                reason: "empty value".into(),
            });
        }
        pairs.push((key, val));
    }
    Ok(pairs)
}

fn parse_disk(value: &str) -> Result<DiskConfig, CliError> {
    let mut disk = DiskConfig {
        id: None,
        path: None,
        fd: None,
        readonly: false,
    };
    for (key, val) in key_values("--disk", value, &["path", "fd", "readonly", "id"])? {
        match key {
            "path" => disk.path = Some(PathBuf::from(val)),
            "id" => disk.id = Some(val.to_string()),
            "fd" => {
                let fd = val.parse::<i32>().ok().filter(|fd| *fd >= 0);
                disk.fd = Some(fd.ok_or_else(|| CliError::InvalidKeyValue {
                    flag: "--disk".into(),
                    key: key.into(),
                    value: val.into(),
                    reason: "expected a file descriptor number".into(),
                })?);
            }
            _ => {
                disk.readonly = match val {
                    "on" => true,
                    "off" => false,
                    _ => {
                        return Err(CliError::InvalidKeyValue {
                            flag: "--disk".into(),
                            key: key.into(),
                            value: val.into(),
                            reason: "expected on or off".into(),
                        })
                    }
                }
            }
        }
    }
    Ok(disk)
}

fn parse_smbios(value: &str) -> Result<SmbiosConfig, CliError> {
    let mut smbios = SmbiosConfig::default();
    for (key, val) in key_values(
        "--smbios",
        value,
        &["product", "serial", "uuid", "asset_tag"],
    )? {
        let val = Some(val.to_string());
        match key {
            "product" => smbios.product = val,
            "serial" => smbios.serial = val,
            "uuid" => smbios.uuid = val,
            _ => smbios.asset_tag = val,
        }
    }
    Ok(smbios)
}

fn parse_net(value: &str) -> Result<NetConfig, CliError> {
    let mut net = NetConfig::default();
    let known = ["tap", "fd", "mac", "id", "enhanced", "queues"];
    for (key, val) in key_values("--net", value, &known)? {
        let invalid = |reason: &str| CliError::InvalidKeyValue {
            flag: "--net".into(),
            key: key.into(),
            value: val.into(),
            reason: reason.into(),
        };
        match key {
            "tap" => net.tap = Some(val.to_string()),
            "mac" => net.mac = Some(val.to_string()),
            "id" => net.id = Some(val.to_string()),
            "enhanced" => {
                net.enhanced = match val {
                    "on" => true,
                    "off" => false,
                    _ => return Err(invalid("expected on or off")),
                }
            }
            "queues" => {
                let n = val.parse::<u16>().ok().filter(|n| *n > 0);
                net.queue_pairs = Some(n.ok_or_else(|| invalid("expected a queue count"))?);
            }
            _ => {
                // `fd=3:4:5`: one descriptor per queue of a multiqueue tap.
                let mut fds = Vec::new();
                for part in val.split(':') {
                    let fd = part.parse::<i32>().ok().filter(|fd| *fd >= 0);
                    fds.push(fd.ok_or_else(|| invalid("expected a file descriptor number"))?);
                }
                net.fd = fds.first().copied();
                net.queue_fds = fds.into_iter().skip(1).collect();
            }
        }
    }
    if net.tap.is_some() == net.fd.is_some() {
        return Err(CliError::NetBackend(value.to_string()));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> Vec<String> {
        line.iter().map(|s| s.to_string()).collect()
    }

    fn run(line: &[&str]) -> VmConfig {
        match parse_args(&args(line)) {
            Ok(Command::Run(config)) => *config,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    fn refused(line: &[&str]) -> String {
        match parse_args(&args(line)) {
            Ok(command) => panic!("{line:?} accepted: {command:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn json(text: &str) -> VmConfig {
        match VmConfig::from_json(text) {
            Ok(config) => config,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    fn temp_file(name: &str, contents: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("strato-cli-{}-{name}", std::process::id()));
        if let Err(e) = std::fs::write(&path, contents) {
            panic!("write {}: {e}", path.display());
        }
        path
    }

    #[test]
    fn enhanced_multiqueue_net_flags() {
        let config = run(&[
            "--kernel",
            "/k",
            "--net",
            "fd=5:6:7,enhanced=on",
            "--net",
            "tap=t1,enhanced=on,queues=4",
        ]);
        assert_eq!(
            config.nets,
            json(
                r#"{"kernel": "/k", "nets": [
                    {"fd": 5, "queue_fds": [6, 7], "enhanced": true},
                    {"tap": "t1", "enhanced": true, "queue_pairs": 4}]}"#
            )
            .nets
        );
        assert_eq!(config.nets[0].queue_pairs(), 3);
        let msg = refused(&["--kernel", "/k", "--net", "tap=t0,queues=2"]);
        assert!(msg.contains("need enhanced=true"), "{msg}");
        let msg = refused(&["--kernel", "/k", "--net", "fd=3:x,enhanced=on"]);
        assert!(msg.contains("expected a file descriptor number"), "{msg}");
        let msg = refused(&["--kernel", "/k", "--net", "tap=t0,enhanced=yes"]);
        assert!(msg.contains("expected on or off"), "{msg}");
        let msg = refused(&["--kernel", "/k", "--net", "tap=t0,enhanced=on,queues=9"]);
        assert!(msg.contains("use 1 to 8"), "{msg}");
    }

    #[test]
    fn minimal_flags_match_minimal_json() {
        assert_eq!(run(&["--kernel", "/k"]), json(r#"{"kernel": "/k"}"#));
    }

    #[test]
    fn full_flags_match_full_json() {
        let flags = run(&[
            "--kernel",
            "/boot/vmlinux",
            "--initrd=/boot/initrd",
            "--cmdline",
            "console=ttyS0 reboot=k",
            "--cpus",
            "4",
            "--memory=1G",
            "--disk",
            "path=/v/root.img",
            "--disk",
            "id=data,path=/v/data.img,readonly=on",
            "--disk=id=slot1",
            "--net",
            "tap=tap0,mac=02:00:00:00:00:01",
            "--net",
            "fd=7,id=eth1",
            "--rng",
            "--console",
            "/tmp/console.log",
            "--api-socket",
            "/run/vm.sock",
            "--cpu-template",
            "emulated-kvm",
            "--smbios",
            "product=t3.micro,serial=ec2a1b2c-3d4e-456f-8790-0123456789ab,asset_tag=i-0123456789abcdef0,uuid=ec2a1b2c-3d4e-456f-8790-0123456789ab",
            "--jail=uid=20001,gid=20002,nofile=512,core=on",
            "--console-max-bytes",
            "64K",
            "--irqchip",
            "kernel",
        ]);
        let from_json = json(
            r#"{
                "kernel": "/boot/vmlinux",
                "initrd": "/boot/initrd",
                "cmdline": "console=ttyS0 reboot=k",
                "cpus": 4,
                "memory_mib": 1024,
                "disks": [{"path": "/v/root.img"},
                          {"id": "data", "path": "/v/data.img", "readonly": true},
                          {"id": "slot1"}],
                "nets": [{"tap": "tap0", "mac": "02:00:00:00:00:01"}, {"fd": 7, "id": "eth1"}],
                "rng": true,
                "console": "/tmp/console.log",
                "api_socket": "/run/vm.sock",
                "cpu_template": "emulated-kvm",
                "smbios": {"product": "t3.micro", "serial": "ec2a1b2c-3d4e-456f-8790-0123456789ab",
                           "uuid": "ec2a1b2c-3d4e-456f-8790-0123456789ab",
                           "asset_tag": "i-0123456789abcdef0"},
                "jail": {"uid": 20001, "gid": 20002, "max_open_files": 512, "core_dumps": true},
                "console_max_bytes": 65536,
                "irqchip": "kernel"
            }"#,
        );
        assert_eq!(flags, from_json);
        assert_eq!(flags.disks[0].id.as_deref(), Some("disk0"));
        assert_eq!(flags.nets[0].id.as_deref(), Some("net0"));
    }

    #[test]
    fn memory_forms() {
        assert_eq!(run(&["--kernel", "/k", "--memory", "512"]).memory_mib, 512);
        assert_eq!(run(&["--kernel", "/k", "--memory", "512M"]).memory_mib, 512);
        assert_eq!(run(&["--kernel", "/k", "--memory", "2g"]).memory_mib, 2048);
        assert_eq!(run(&["--kernel", "/k", "--memory=64G"]).memory_mib, 65536);
        for bad in [
            "",
            "M",
            "1.5G",
            "-1",
            "15",
            "65G",
            "4294967295G",
            "12K",
            "1 G",
        ] {
            let msg = refused(&["--kernel", "/k", "--memory", bad]);
            assert!(
                msg.contains("--memory") && msg.contains(&format!("{bad:?}")),
                "{msg}"
            );
        }
    }

    #[test]
    fn readonly_off_and_cmdline_with_equals() {
        let config = run(&[
            "--kernel=/k",
            "--disk",
            "path=/d,readonly=off",
            "--cmdline=a=b c",
        ]);
        assert!(!config.disks[0].readonly);
        assert_eq!(config.cmdline, "a=b c");
        assert_eq!(run(&["--kernel", "/k", "--cmdline", ""]).cmdline, "");
        assert_eq!(run(&["--kernel", "/k", "--cmdline=--x"]).cmdline, "--x");
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse_args(&args(&["--help"])).ok(), Some(Command::Help));
        assert_eq!(parse_args(&args(&["-h"])).ok(), Some(Command::Help));
        assert_eq!(
            parse_args(&args(&["--kernel", "/k", "-V"])).ok(),
            Some(Command::Version)
        );
        assert_eq!(
            parse_args(&args(&["--version"])).ok(),
            Some(Command::Version)
        );
        assert_eq!(refused(&["--help=yes"]), "--help takes no value");
        for (flag, _, _) in VM_FLAGS {
            assert!(USAGE.contains(flag), "{flag} missing from USAGE");
        }
        for flag in ["--config", "--help", "--version", "-h", "-V"] {
            assert!(USAGE.contains(flag), "{flag} missing from USAGE");
        }
    }

    #[test]
    fn unknown_flags_and_arguments() {
        assert_eq!(
            refused(&["--kernel", "/k", "--cpu", "2"]),
            r#"unknown argument "--cpu" (see --help)"#
        );
        assert!(refused(&["--kernel", "/k", "--bogus=1"]).contains(r#""--bogus=1""#));
        assert!(refused(&["--kernel", "/k", "stray"]).contains(r#""stray""#));
        assert!(refused(&["-x"]).contains(r#""-x""#));
        assert_eq!(refused(&[]), "missing --kernel (or --config)");
        assert_eq!(refused(&["--cpus", "2"]), "missing --kernel (or --config)");
    }

    #[test]
    fn missing_values() {
        assert_eq!(refused(&["--kernel"]), "missing value for --kernel");
        assert_eq!(
            refused(&["--kernel", "--cpus", "2"]),
            "missing value for --kernel"
        );
        assert_eq!(
            refused(&["--kernel", "/k", "--disk"]),
            "missing value for --disk"
        );
        assert_eq!(refused(&["--config"]), "missing value for --config");
        assert_eq!(
            refused(&["--kernel", "/k", "--rng=on"]),
            "--rng takes no value"
        );
    }

    #[test]
    fn duplicates() {
        assert_eq!(
            refused(&["--kernel", "/a", "--kernel", "/b"]),
            "--kernel given more than once"
        );
        assert_eq!(
            refused(&["--kernel", "/k", "--cpus=1", "--cpus", "2"]),
            "--cpus given more than once"
        );
        assert_eq!(
            refused(&["--kernel", "/k", "--rng", "--rng"]),
            "--rng given more than once"
        );
        assert_eq!(
            refused(&["--config", "/a", "--config", "/b"]),
            "--config given more than once"
        );
        let msg = refused(&["--kernel", "/k", "--disk", "path=/a,path=/b"]);
        assert_eq!(msg, r#"key "path" given more than once in --disk"#);
        // Repeatable flags repeat.
        assert_eq!(
            run(&["--kernel", "/k", "--disk", "id=a", "--disk", "id=b"])
                .disks
                .len(),
            2
        );
    }

    #[test]
    fn bad_cpus() {
        for bad in ["0", "9", "two", "-1", "256", ""] {
            let msg = refused(&["--kernel", "/k", "--cpus", bad]);
            assert_eq!(
                msg,
                format!("invalid value {bad:?} for --cpus: expected a number from 1 to 8"),
            );
        }
        assert_eq!(run(&["--kernel", "/k", "--cpus", "8"]).cpus, 8);
    }

    #[test]
    fn bad_smbios() {
        let msg = refused(&["--kernel", "/k", "--smbios", "vendor=x"]);
        assert!(msg.contains("unknown key \"vendor\" in --smbios"), "{msg}");
        let msg = refused(&["--kernel", "/k", "--smbios", "uuid=not-a-uuid"]);
        assert!(msg.starts_with("invalid smbios uuid"), "{msg}");
        let msg = refused(&[
            "--kernel",
            "/k",
            "--smbios",
            "product=a",
            "--smbios",
            "serial=b",
        ]);
        assert!(msg.contains("--smbios given more than once"), "{msg}");
    }

    #[test]
    fn bad_cpu_template() {
        let msg = refused(&["--kernel", "/k", "--cpu-template", "fast"]);
        assert!(
            msg.contains(r#""fast""#) && msg.contains("--cpu-template"),
            "{msg}"
        );
    }

    #[test]
    fn irqchip_flag() {
        assert_eq!(
            run(&["--kernel", "/k"]).irqchip,
            crate::config::IrqchipMode::Split
        );
        assert_eq!(
            run(&["--kernel", "/k", "--irqchip=kernel"]).irqchip,
            crate::config::IrqchipMode::Kernel
        );
        let msg = refused(&["--kernel", "/k", "--irqchip", "userspace"]);
        assert!(
            msg.contains(r#""userspace""#) && msg.contains("--irqchip"),
            "{msg}"
        );
    }

    #[test]
    fn bad_disk_keys() {
        let msg = refused(&["--kernel", "/k", "--disk", "path=/x,redonly=on"]);
        assert_eq!(msg, r#"unknown key "redonly" in --disk"#);
        let msg = refused(&["--kernel", "/k", "--disk", "path=/x,readonly=maybe"]);
        assert_eq!(
            msg,
            r#"invalid value "maybe" for key "readonly" in --disk: expected on or off"#
        );
        let msg = refused(&["--kernel", "/k", "--disk", "/x.img"]);
        assert_eq!(msg, r#"expected key=value in --disk, got "/x.img""#);
        let msg = refused(&["--kernel", "/k", "--disk", "path=/x,"]);
        assert_eq!(msg, r#"expected key=value in --disk, got """#);
        let msg = refused(&["--kernel", "/k", "--disk", "path="]);
        assert!(msg.contains(r#"key "path" in --disk"#), "{msg}");
        let msg = refused(&["--kernel", "/k", "--disk", "id=a b"]);
        assert!(msg.contains(r#"invalid id "a b""#), "{msg}");
    }

    #[test]
    fn bad_net_keys() {
        let msg = refused(&["--kernel", "/k", "--net", "tap=t0,ip=10.0.0.1"]);
        assert_eq!(msg, r#"unknown key "ip" in --net"#);
        let msg = refused(&["--kernel", "/k", "--net", "fd=x"]);
        assert!(
            msg.starts_with(r#"invalid value "x" for key "fd" in --net"#),
            "{msg}"
        );
        let msg = refused(&["--kernel", "/k", "--net", "fd=-3"]);
        assert!(msg.contains(r#""-3""#), "{msg}");
        let msg = refused(&["--kernel", "/k", "--net", "tap=t0,fd=3"]);
        assert_eq!(
            msg,
            r#"--net needs exactly one of tap= and fd=, got "tap=t0,fd=3""#
        );
        let msg = refused(&["--kernel", "/k", "--net", "mac=02:00:00:00:00:01"]);
        assert!(
            msg.starts_with("--net needs exactly one of tap= and fd="),
            "{msg}"
        );
        let msg = refused(&["--kernel", "/k", "--net", "tap=t0,mac=zz:00:00:00:00:01"]);
        assert!(
            msg.starts_with(r#"invalid MAC address "zz:00:00:00:00:01" for net0"#),
            "{msg}"
        );
    }

    #[test]
    fn validation_runs_after_parsing() {
        let msg = refused(&["--kernel", "/k", "--disk", "path=/a", "--disk", "id=disk0"]);
        assert_eq!(msg, r#"duplicate device id "disk0""#);
        assert_eq!(refused(&["--kernel", ""]), "kernel path is empty");
    }

    #[test]
    fn config_file() {
        let path = temp_file("good.json", r#"{"kernel": "/k", "cpus": 2, "disks": [{}]}"#);
        let arg = path.to_string_lossy().to_string();
        let expected = json(r#"{"kernel": "/k", "cpus": 2, "disks": [{"id": "disk0"}]}"#);
        assert_eq!(run(&["--config", &arg]), expected);
        assert_eq!(run(&[&format!("--config={arg}")]), expected);

        let msg = refused(&["--config", &arg, "--cpus", "2"]);
        assert_eq!(
            msg,
            "--config cannot be combined with --cpus: put everything in the config file"
        );
        let msg = refused(&["--rng", "--config", &arg]);
        assert!(
            msg.starts_with("--config cannot be combined with --rng"),
            "{msg}"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn config_file_with_unknown_field() {
        let path = temp_file(
            "unknown.json",
            "{\n  \"kernel\": \"/k\",\n  \"vcpus\": 2\n}\n",
        );
        let arg = path.to_string_lossy().to_string();
        let msg = refused(&["--config", &arg]);
        let _ = std::fs::remove_file(&path);
        assert!(msg.contains(&arg), "{msg}");
        assert!(msg.contains("unknown field `vcpus`"), "{msg}");
        assert!(msg.contains("line 3 column"), "{msg}");
    }

    #[test]
    fn config_file_missing() {
        let msg = refused(&["--config", "/nonexistent/strato/vm.json"]);
        assert!(
            msg.starts_with("cannot read config file /nonexistent/strato/vm.json"),
            "{msg}"
        );
    }

    #[test]
    fn jail_and_descriptor_flags() {
        let c = run(&["--kernel", "/k", "--jail", "--disk", "fd=5,readonly=on"]);
        assert_eq!(c.jail, Some(JailConfig::default()));
        assert_eq!(c.disks[0].fd, Some(5));
        assert!(refused(&["--kernel", "/k", "--jail=uid=x"]).contains("expected a user ID"));
        assert!(refused(&["--kernel", "/k", "--jail=root=1"]).contains("unknown key"));
        assert!(refused(&["--kernel", "/k", "--jail=uid=0"]).contains("must not be 0"));
        assert!(refused(&["--kernel", "/k", "--disk", "fd=-2"]).contains("descriptor"));
        assert!(refused(&["--kernel", "/k", "--console-max-bytes", "1T"]).contains("suffix"));
        let c = run(&["--kernel", "/k", "--console-max-bytes=2M"]);
        assert_eq!(c.console_max_bytes, 2 << 20);
    }
}
