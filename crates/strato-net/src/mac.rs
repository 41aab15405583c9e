//! MAC addresses for network interfaces.
//!
//! Every address strato generates is a locally administered unicast address with first
//! octet `02`, so it never collides with a vendor-assigned (universally administered)
//! address on the host's networks and is never mistaken for multicast. Generation is
//! either deterministic from a seed (e.g. derived from the interface id, so a replayed
//! create gets the same address) or random.

use std::fmt;
use std::str::FromStr;

use crate::NetError;

/// First octet of every generated address: locally administered, unicast.
pub const LOCAL_UNICAST_PREFIX: u8 = 0x02;

/// A 48-bit Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// The address with these octets.
    pub const fn new(octets: [u8; 6]) -> Self {
        MacAddr(octets)
    }

    /// The octets.
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// A locally administered unicast address (`02:xx:xx:xx:xx:xx`) derived from `seed`:
    /// the same seed always gives the same address, nearby seeds give unrelated ones.
    pub fn from_seed(seed: u64) -> Self {
        let bytes = splitmix64(seed).to_be_bytes();
        MacAddr([
            LOCAL_UNICAST_PREFIX,
            bytes[0],
            bytes[1],
            bytes[2],
            bytes[3],
            bytes[4],
        ])
    }

    /// A random locally administered unicast address (`02:xx:xx:xx:xx:xx`).
    pub fn random() -> Self {
        let mut seed = [0u8; 8];
        // SAFETY: getrandom writes at most `seed.len()` bytes into `seed`.
        let n = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0) };
        if n != seed.len() as isize {
            // No entropy source (never on a modern kernel): mix the clock and the stack
            // address, which is still unique enough for a process-local choice.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let addr = &seed as *const _ as u64;
            seed = (nanos ^ addr.rotate_left(32) ^ u64::from(std::process::id())).to_ne_bytes();
        }
        Self::from_seed(u64::from_ne_bytes(seed))
    }

    /// True for group (multicast and broadcast) addresses.
    pub const fn is_multicast(self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True for locally administered addresses.
    pub const fn is_local(self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// True for an individual address other than all zeros.
    pub fn is_unicast(self) -> bool {
        !self.is_multicast() && self.0 != [0; 6]
    }

    /// The modified EUI-64 link-local address of this MAC (RFC 4291 appendix A:
    /// `fe80::` + the MAC with `ff:fe` in its middle and the universal/local bit flipped),
    /// what a guest kernel forms by default (`addr_gen_mode` 0).
    pub fn eui64_link_local(self) -> std::net::Ipv6Addr {
        let m = self.0;
        std::net::Ipv6Addr::from([
            0xfe,
            0x80,
            0,
            0,
            0,
            0,
            0,
            0,
            m[0] ^ 0x02,
            m[1],
            m[2],
            0xff,
            0xfe,
            m[3],
            m[4],
            m[5],
        ])
    }
}

/// The splitmix64 finalizer: a bijective mix, so distinct seeds give distinct outputs.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = NetError;

    /// Parses `xx:xx:xx:xx:xx:xx` (hex digits in either case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || NetError::InvalidMac(s.to_owned());
        let mut octets = [0u8; 6];
        let mut parts = s.split(':');
        for octet in &mut octets {
            let part = parts.next().ok_or_else(err)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(octets))
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(octets: [u8; 6]) -> Self {
        MacAddr(octets)
    }
}

impl From<MacAddr> for [u8; 6] {
    fn from(mac: MacAddr) -> Self {
        mac.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eui64_link_local() {
        let m: MacAddr = "02:00:00:aa:bb:cc".parse().unwrap();
        let want: std::net::Ipv6Addr = "fe80::ff:feaa:bbcc".parse().unwrap();
        assert_eq!(m.eui64_link_local(), want);
        let u: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        let want: std::net::Ipv6Addr = "fe80::5054:ff:fe12:3456".parse().unwrap();
        assert_eq!(u.eui64_link_local(), want);
    }

    #[test]
    fn display_and_parse_round_trip() {
        let mac = MacAddr([0x02, 0xab, 0x00, 0x1f, 0xc3, 0x09]);
        assert_eq!(mac.to_string(), "02:ab:00:1f:c3:09");
        assert_eq!("02:ab:00:1f:c3:09".parse::<MacAddr>().expect("parse"), mac);
        assert_eq!("02:AB:00:1F:C3:09".parse::<MacAddr>().expect("parse"), mac);
    }

    #[test]
    fn parse_rejects_malformed() {
        for bad in [
            "",
            "02:ab:00:1f:c3",
            "02:ab:00:1f:c3:09:00",
            "02:ab:00:1f:c3:9",
            "02:ab:00:1f:c3:009",
            "02-ab-00-1f-c3-09",
            "02:ab:00:1f:c3:0g",
            "02:ab:00:1f:c3:+9",
            "02:ab:00:1f:c3:09:",
            "02:ab:00:1f:c3:é9",
        ] {
            let err = bad.parse::<MacAddr>().expect_err(bad);
            assert!(matches!(err, NetError::InvalidMac(_)), "{bad}");
        }
    }

    #[test]
    fn seeded_addresses_are_local_unicast_and_stable() {
        let mut seen = std::collections::HashSet::new();
        for seed in 0..1000u64 {
            let mac = MacAddr::from_seed(seed);
            assert_eq!(mac.0[0], 0x02);
            assert!(mac.is_local() && mac.is_unicast() && !mac.is_multicast());
            assert_eq!(mac, MacAddr::from_seed(seed));
            assert!(seen.insert(mac), "collision at seed {seed}");
        }
    }

    #[test]
    fn random_addresses_are_local_unicast() {
        let a = MacAddr::random();
        let b = MacAddr::random();
        assert!(a.to_string().starts_with("02:") && a.is_unicast());
        assert_ne!(a, b);
    }

    #[test]
    fn flags() {
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(!MacAddr::default().is_unicast());
        assert!(!MacAddr([0x00, 0x1b, 0x21, 1, 2, 3]).is_local());
    }
}
