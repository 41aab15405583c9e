//! KVM's binary statistics of a vCPU (`KVM_GET_STATS_FD`, Linux 5.14+): a file the kernel
//! keeps current, read with `pread` from any thread without stopping the vCPU. They say
//! what the guest cannot fake from inside: how often the vCPU left the guest (`exits`,
//! `halt_exits`, ...) and whether it is halted right now (`blocking`), so that the daemon's
//! status check tells a wedged vCPU (no exit, no halt) from an idle one (halted).
//!
//! Layout (Documentation/virt/kvm/api.rst): a header, then `num_desc` descriptors of
//! `16 + name_size` bytes each, then the data; each value is `size` u64s at
//! `data_offset + desc.offset`.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;

/// `_IO(KVMIO, 0xce)`.
const KVM_GET_STATS_FD: libc::c_ulong = 0xae_ce;
/// Header size: six u32s.
const HEADER_LEN: usize = 24;
/// Descriptor size before the name.
const DESC_LEN: usize = 16;
/// The statistics the monitor reports (those present on this kernel), with the name they
/// get in its counters.
const WANTED: &[(&str, &str)] = &[
    ("exits", "kvm_exits"),
    ("halt_exits", "kvm_halt_exits"),
    ("halt_wakeup", "kvm_halt_wakeup"),
    ("blocking", "kvm_blocking"),
    ("io_exits", "kvm_io_exits"),
    ("mmio_exits", "kvm_mmio_exits"),
    ("irq_exits", "kvm_irq_exits"),
    ("irq_window_exits", "kvm_irq_window_exits"),
    ("signal_exits", "kvm_signal_exits"),
    ("insn_emulation", "kvm_insn_emulation"),
];

/// One vCPU's statistics file and where the wanted values are in it.
#[derive(Debug)]
pub struct VcpuKvmStats {
    file: File,
    /// (counter name, file offset of the value).
    fields: Vec<(&'static str, u64)>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses the header and descriptors: (counter name, offset of its first u64 in the file).
fn parse(head: &[u8], descs: &[u8]) -> Option<Vec<(&'static str, u64)>> {
    let name_size = u32_at(head, 4)? as usize;
    let num_desc = u32_at(head, 8)? as usize;
    let data_offset = u64::from(u32_at(head, 20)?);
    let step = DESC_LEN.checked_add(name_size)?;
    let mut out = Vec::new();
    for i in 0..num_desc {
        let d = descs.get(i * step..(i + 1) * step)?;
        let size = u16::from_ne_bytes(d.get(6..8)?.try_into().ok()?);
        let offset = u64::from(u32_at(d, 8)?);
        let raw = &d[DESC_LEN..];
        let name = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
        if size == 0 {
            continue;
        }
        if let Some((_, ours)) = WANTED.iter().find(|(k, _)| k.as_bytes() == name) {
            out.push((*ours, data_offset.checked_add(offset)?));
        }
    }
    Some(out)
}

impl VcpuKvmStats {
    /// Opens the statistics of a vCPU (its file descriptor); an error where the kernel has
    /// none (before 5.14) or they cannot be parsed.
    pub fn open(vcpu: &impl AsRawFd) -> io::Result<Self> {
        // SAFETY: KVM_GET_STATS_FD takes no argument and returns a new descriptor or -1;
        // the vCPU descriptor is open for the duration of the call.
        let fd = unsafe { libc::ioctl(vcpu.as_raw_fd(), KVM_GET_STATS_FD as _, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the ioctl returned a fresh descriptor that nothing else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        let mut head = [0u8; HEADER_LEN];
        file.read_exact_at(&mut head, 0)?;
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "unreadable KVM statistics");
        let name_size = u32_at(&head, 4).ok_or_else(bad)? as usize;
        let num_desc = u32_at(&head, 8).ok_or_else(bad)? as usize;
        let desc_offset = u64::from(u32_at(&head, 16).ok_or_else(bad)?);
        let len = num_desc
            .checked_mul(DESC_LEN + name_size)
            .filter(|&n| n <= 1 << 20)
            .ok_or_else(bad)?;
        let mut descs = vec![0u8; len];
        file.read_exact_at(&mut descs, desc_offset)?;
        let fields = parse(&head, &descs).ok_or_else(bad)?;
        Ok(Self { file, fields })
    }

    /// The current values, by counter name (`kvm_exits`, `kvm_blocking`, ...).
    pub fn read(&self) -> Vec<(&'static str, u64)> {
        self.fields
            .iter()
            .filter_map(|(name, at)| {
                let mut v = [0u8; 8];
                self.file.read_exact_at(&mut v, *at).ok()?;
                Some((*name, u64::from_ne_bytes(v)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(name: &str, size: u16, offset: u32, name_size: usize) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&0u32.to_ne_bytes());
        d.extend_from_slice(&0i16.to_ne_bytes());
        d.extend_from_slice(&size.to_ne_bytes());
        d.extend_from_slice(&offset.to_ne_bytes());
        d.extend_from_slice(&0u32.to_ne_bytes());
        let mut n = name.as_bytes().to_vec();
        n.resize(name_size, 0);
        d.extend_from_slice(&n);
        d
    }

    #[test]
    fn parses_wanted_fields_and_refuses_short_input() {
        let name_size = 48;
        let mut head = Vec::new();
        for v in [0u32, name_size as u32, 3, 24, 24, 1000] {
            head.extend_from_slice(&v.to_ne_bytes());
        }
        let mut descs = desc("exits", 1, 0, name_size);
        descs.extend(desc("halt_wait_hist", 32, 8, name_size));
        descs.extend(desc("blocking", 1, 264, name_size));
        let f = parse(&head, &descs).unwrap();
        assert_eq!(f, vec![("kvm_exits", 1000), ("kvm_blocking", 1264)]);
        assert!(parse(&head, &descs[..descs.len() - 1]).is_none());
        assert!(parse(&head[..10], &descs).is_none());
    }

    /// On a kernel with binary statistics (these machines have them), a vCPU's file opens
    /// and the exit counter is there.
    #[test]
    fn reads_a_real_vcpu() {
        let kvm = kvm_ioctls::Kvm::new().expect("/dev/kvm");
        let vm = kvm.create_vm().expect("vm");
        let vcpu = vm.create_vcpu(0).expect("vcpu");
        let stats = VcpuKvmStats::open(&vcpu).expect("KVM_GET_STATS_FD");
        let got = stats.read();
        assert!(got.iter().any(|(n, _)| *n == "kvm_exits"), "{got:?}");
        assert!(got.iter().any(|(n, _)| *n == "kvm_blocking"), "{got:?}");
    }
}
