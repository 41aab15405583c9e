//! The crate's one error type: every failure names the operation and the object, and
//! keeps the kernel's errno (netlink errors are turned into `io::Error`s) as its source.

use std::io;
use std::net::Ipv4Addr;

/// A failure of a host networking operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The interface name is not one the kernel accepts.
    #[error("Invalid interface name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An IPv4 prefix length above 32.
    #[error("Invalid prefix length {0}: must be at most 32")]
    InvalidPrefix(u8),
    /// An IPv6 prefix length above 128.
    #[error("Invalid IPv6 prefix length {0}: must be at most 128")]
    InvalidPrefix6(u8),
    /// A VXLAN network identifier outside 1 to 2^24 - 1.
    #[error("Invalid VNI {0}: must be 1 to 16777215")]
    InvalidVni(u32),
    /// A string that is not a MAC address in `xx:xx:xx:xx:xx:xx` form.
    #[error("Invalid MAC address {0:?}")]
    InvalidMac(String),
    /// A link the operation needs does not exist.
    #[error("Link {0} does not exist")]
    NoSuchLink(String),
    /// A link exists under the name but is of another kind (a tap where a bridge is
    /// expected, say).
    #[error("Link {name} is a {found}, not a {expected}")]
    WrongKind {
        /// The link's name.
        name: String,
        /// The kind the operation needs.
        expected: &'static str,
        /// The kind the kernel reports (`device` when it reports none).
        found: String,
    },
    /// The bridge already has the gateway address, with another prefix length.
    #[error("Bridge {name} already has {addr}/{existing}, not /{wanted}")]
    AddressConflict {
        /// The bridge.
        name: String,
        /// The gateway address.
        addr: Ipv4Addr,
        /// The prefix length it has.
        existing: u8,
        /// The prefix length asked for.
        wanted: u8,
    },
    /// The kernel refused a netlink request (the source carries its errno).
    #[error("Cannot {op}: {source}")]
    Netlink {
        /// What was attempted, e.g. `create bridge br0`.
        op: String,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// An ID that cannot name an nftables object.
    #[error("Invalid nftables identifier {0:?}")]
    InvalidIdentifier(String),
    /// A firewall model that cannot be rendered.
    #[error("Cannot render the firewall: {0}")]
    Firewall(String),
    /// `nft` refused a rule set (its message).
    #[error("nftables refused the rules: {0}")]
    Nft(String),
    /// A system call failed (the source carries its errno).
    #[error("Cannot {op}: {source}")]
    Io {
        /// What was attempted, e.g. `open /dev/net/tun`.
        op: String,
        /// The system call's error.
        #[source]
        source: io::Error,
    },
}

impl NetError {
    /// The kernel errno behind the error, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetError::Netlink { source, .. } | NetError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub(crate) fn netlink(op: impl Into<String>, source: io::Error) -> Self {
        NetError::Netlink {
            op: op.into(),
            source,
        }
    }

    pub(crate) fn io(op: impl Into<String>, source: io::Error) -> Self {
        NetError::Io {
            op: op.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_op_and_errno() {
        let e = NetError::netlink("create bridge br0", io::Error::from_raw_os_error(17));
        assert_eq!(
            e.to_string(),
            "Cannot create bridge br0: File exists (os error 17)"
        );
        assert_eq!(e.errno(), Some(17));
        assert_eq!(NetError::NoSuchLink("br0".into()).errno(), None);
    }
}
