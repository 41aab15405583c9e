//! Resource IDs in EC2 form (`i-` and 17 lowercase hex digits), their generation and their
//! validation, with the EC2 error codes for malformed and unknown IDs.

use crate::error::{ApiError, ErrorCode};

/// The kinds of resource IDs the daemon hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `i-`
    Instance,
    /// `ami-`
    Image,
    /// `vol-`
    Volume,
    /// `snap-`
    Snapshot,
    /// `r-`
    Reservation,
    /// `subnet-`
    Subnet,
    /// `vpc-`
    Vpc,
    /// `eni-`
    NetworkInterface,
    /// `sg-`
    SecurityGroup,
    /// `pg-`
    PlacementGroup,
    /// `lt-`
    LaunchTemplate,
    /// `key-`
    KeyPair,
    /// `eni-attach-`
    NetworkInterfaceAttachment,
    /// `eipalloc-`
    Allocation,
    /// `eipassoc-`
    Association,
    /// `vpc-cidr-assoc-`
    VpcCidrAssociation,
    /// `subnet-cidr-assoc-`
    SubnetCidrAssociation,
}

impl Kind {
    /// The ID prefix, with its dash.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Instance => "i-",
            Kind::Image => "ami-",
            Kind::Volume => "vol-",
            Kind::Snapshot => "snap-",
            Kind::Reservation => "r-",
            Kind::Subnet => "subnet-",
            Kind::Vpc => "vpc-",
            Kind::NetworkInterface => "eni-",
            Kind::SecurityGroup => "sg-",
            Kind::PlacementGroup => "pg-",
            Kind::LaunchTemplate => "lt-",
            Kind::KeyPair => "key-",
            Kind::NetworkInterfaceAttachment => "eni-attach-",
            Kind::Allocation => "eipalloc-",
            Kind::Association => "eipassoc-",
            Kind::VpcCidrAssociation => "vpc-cidr-assoc-",
            Kind::SubnetCidrAssociation => "subnet-cidr-assoc-",
        }
    }

    /// EC2's error code for a malformed ID of this kind.
    pub fn malformed_code(self) -> ErrorCode {
        match self {
            Kind::Instance => ErrorCode::InvalidInstanceIdMalformed,
            Kind::Image => ErrorCode::InvalidAmiIdMalformed,
            Kind::Volume => ErrorCode::InvalidVolumeIdMalformed,
            Kind::Snapshot => ErrorCode::InvalidSnapshotIdMalformed,
            Kind::Reservation => ErrorCode::InvalidReservationIdMalformed,
            Kind::Subnet => ErrorCode::InvalidSubnetIdMalformed,
            Kind::Vpc => ErrorCode::InvalidVpcIdMalformed,
            Kind::NetworkInterface => ErrorCode::InvalidNetworkInterfaceIdMalformed,
            Kind::SecurityGroup => ErrorCode::InvalidGroupIdMalformed,
            Kind::PlacementGroup => ErrorCode::InvalidPlacementGroupIdMalformed,
            Kind::LaunchTemplate => ErrorCode::InvalidLaunchTemplateIdMalformed,
            Kind::KeyPair => ErrorCode::InvalidKeyPairIdMalformed,
            Kind::NetworkInterfaceAttachment => ErrorCode::InvalidAttachmentIdMalformed,
            Kind::Allocation => ErrorCode::InvalidAllocationIdMalformed,
            Kind::Association => ErrorCode::InvalidAssociationIdMalformed,
            // EC2 has no Malformed code for these; it answers a bad one as a bad value.
            Kind::VpcCidrAssociation | Kind::SubnetCidrAssociation => {
                ErrorCode::InvalidParameterValue
            }
        }
    }

    /// EC2's error code for a well-formed ID that names nothing (for this caller).
    pub fn not_found_code(self) -> ErrorCode {
        match self {
            Kind::Instance => ErrorCode::InvalidInstanceIdNotFound,
            Kind::Image => ErrorCode::InvalidAmiIdNotFound,
            Kind::Volume => ErrorCode::InvalidVolumeNotFound,
            Kind::Snapshot => ErrorCode::InvalidSnapshotNotFound,
            Kind::Reservation => ErrorCode::InvalidReservationIdNotFound,
            Kind::Subnet => ErrorCode::InvalidSubnetIdNotFound,
            Kind::Vpc => ErrorCode::InvalidVpcIdNotFound,
            Kind::NetworkInterface => ErrorCode::InvalidNetworkInterfaceIdNotFound,
            Kind::SecurityGroup => ErrorCode::InvalidGroupNotFound,
            Kind::PlacementGroup => ErrorCode::InvalidPlacementGroupUnknown,
            Kind::LaunchTemplate => ErrorCode::InvalidLaunchTemplateIdNotFound,
            Kind::KeyPair => ErrorCode::InvalidKeyPairNotFound,
            Kind::NetworkInterfaceAttachment => ErrorCode::InvalidAttachmentIdNotFound,
            Kind::Allocation => ErrorCode::InvalidAllocationIdNotFound,
            Kind::Association => ErrorCode::InvalidAssociationIdNotFound,
            Kind::VpcCidrAssociation => ErrorCode::InvalidVpcCidrBlockAssociationIdNotFound,
            Kind::SubnetCidrAssociation => ErrorCode::InvalidSubnetCidrBlockAssociationIdNotFound,
        }
    }

    /// The `NotFound` error for `id`.
    pub fn not_found(self, id: &str) -> ApiError {
        let what = match self {
            Kind::Instance => "instance ID",
            Kind::Image => "image id",
            Kind::Volume => "volume",
            Kind::Snapshot => "snapshot",
            Kind::Reservation => "reservation ID",
            Kind::Subnet => "subnet ID",
            Kind::Vpc => "vpc ID",
            Kind::NetworkInterface => "network interface ID",
            Kind::SecurityGroup => "security group",
            Kind::PlacementGroup => "placement group",
            Kind::LaunchTemplate => "launch template ID",
            Kind::KeyPair => "key pair ID",
            Kind::NetworkInterfaceAttachment => "network interface attachment ID",
            Kind::Allocation => "allocation ID",
            Kind::Association => "association ID",
            Kind::VpcCidrAssociation => "vpc CIDR block association ID",
            Kind::SubnetCidrAssociation => "subnet CIDR block association ID",
        };
        ApiError::new(
            self.not_found_code(),
            format!("The {what} '{id}' does not exist"),
        )
    }
}

/// A fresh random ID of `kind`.
pub fn new_id(kind: Kind) -> String {
    let n = random_u128();
    format!("{}{:017x}", kind.prefix(), n & ((1u128 << 68) - 1))
}

/// Checks that `id` is an ID of `kind`: the prefix and then 8 (legacy) or 17 lowercase hex
/// digits.
pub fn check(kind: Kind, id: &str) -> Result<(), ApiError> {
    let ok = id
        .strip_prefix(kind.prefix())
        .map(|hex| {
            (hex.len() == 8 || hex.len() == 17)
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        let shown: String = id.chars().take(64).collect();
        // EC2's own wording: instance IDs get no "(expecting ...)" tail, the others do.
        let message = match kind {
            Kind::Instance => format!("Invalid id: \"{shown}\""),
            _ => format!(
                "Invalid id: \"{shown}\" (expecting \"{}...\")",
                kind.prefix()
            ),
        };
        Err(ApiError::new(kind.malformed_code(), message))
    }
}

/// Checks every ID in a list.
pub fn check_all(kind: Kind, ids: &[String]) -> Result<(), ApiError> {
    ids.iter().try_for_each(|id| check(kind, id))
}

/// 128 random bits from the kernel.
pub fn random_u128() -> u128 {
    let mut buf = [0u8; 16];
    fill_random(&mut buf);
    u128::from_le_bytes(buf)
}

/// Fills `buf` from getrandom(2); falls back to the clock and a counter, which still gives
/// distinct IDs, if the call is refused (it is not on Linux 3.17 and later).
pub fn fill_random(buf: &mut [u8]) {
    // SAFETY: getrandom writes at most `buf.len()` bytes into the valid, writable `buf`.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == buf.len() as isize {
        return;
    }
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let c = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as u128;
    let mixed = (t ^ (c << 64)).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (mixed >> ((i % 16) * 8)) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_well_formed_and_distinct() {
        let a = new_id(Kind::Instance);
        let b = new_id(Kind::Instance);
        assert_ne!(a, b);
        assert_eq!(a.len(), 2 + 17);
        check(Kind::Instance, &a).unwrap();
        check(Kind::Image, &new_id(Kind::Image)).unwrap();
        for kind in [
            Kind::PlacementGroup,
            Kind::LaunchTemplate,
            Kind::KeyPair,
            Kind::Allocation,
            Kind::Association,
        ] {
            let id = new_id(kind);
            assert!(id.starts_with(kind.prefix()), "{id}");
            check(kind, &id).unwrap();
        }
        assert_eq!(
            check(Kind::LaunchTemplate, "pg-0123456789abcdef0")
                .unwrap_err()
                .code,
            "InvalidLaunchTemplateId.Malformed"
        );
    }

    #[test]
    fn malformed_ids_are_refused_with_the_kind_code() {
        for bad in [
            "",
            "i-",
            "i-xyz",
            "i-0123456789ABCDEF0",
            "ami-0123456789abcdef0",
            "i-0123",
        ] {
            let e = check(Kind::Instance, bad).unwrap_err();
            assert_eq!(e.code, "InvalidInstanceID.Malformed", "{bad}");
        }
        assert!(check(Kind::Instance, "i-0123abcd").is_ok());
        // EC2's wording, per kind.
        assert_eq!(
            check(Kind::Instance, "i-nope").unwrap_err().message,
            "Invalid id: \"i-nope\""
        );
        assert_eq!(
            check(Kind::Image, "probe").unwrap_err().message,
            "Invalid id: \"probe\" (expecting \"ami-...\")"
        );
        let e = check(Kind::Volume, &"x".repeat(10_000)).unwrap_err();
        assert!(e.message.len() < 200);
    }
}
