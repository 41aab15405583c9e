//! The EC2 error codes the API answers with. Each code knows its wire string, the gRPC
//! status that carries it, and the HTTP status EC2's Query API answers it with (400 for
//! client errors, 401 `AuthFailure`, 403 `UnauthorizedOperation`, 412 `DryRunOperation`,
//! 500 and 503 for faults of the service), so that every front end reports an error the
//! same way.

use tonic::Code;

/// Declares [`ErrorCode`] from one table: variant, wire string, gRPC code, HTTP status.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = $code:literal, $grpc:ident, $http:literal;)+) => {
        /// An EC2 error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl ErrorCode {
            /// Every code, in the table's order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The code as EC2 spells it, e.g. `InvalidInstanceID.NotFound`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)+
                }
            }

            /// The gRPC status code that carries it.
            pub fn grpc(self) -> Code {
                match self {
                    $(ErrorCode::$variant => Code::$grpc,)+
                }
            }

            /// The HTTP status EC2's Query API answers it with.
            pub fn http_status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $http,)+
                }
            }
        }
    };
}

error_codes! {
    /// No more Elastic IP addresses for the account.
    AddressLimitExceeded = "AddressLimitExceeded", ResourceExhausted, 400;
    /// No more volumes or interfaces fit the instance.
    AttachmentLimitExceeded = "AttachmentLimitExceeded", ResourceExhausted, 400;
    /// The caller could not be authenticated.
    AuthFailure = "AuthFailure", PermissionDenied, 401;
    /// The resource cannot be deleted (a default security group).
    CannotDelete = "CannotDelete", FailedPrecondition, 400;
    /// The VPC or subnet has as many CIDR blocks (of that family) as it may.
    CidrLimitExceeded = "CidrLimitExceeded", ResourceExhausted, 400;
    /// Other resources still depend on this one.
    DependencyViolation = "DependencyViolation", FailedPrecondition, 400;
    /// An instance role or profile of that name exists already (IAM's code).
    EntityAlreadyExists = "EntityAlreadyExists", AlreadyExists, 400;
    /// A dry run would have succeeded.
    DryRunOperation = "DryRunOperation", FailedPrecondition, 412;
    /// The instance is not in a state that allows the request.
    IncorrectInstanceState = "IncorrectInstanceState", FailedPrecondition, 400;
    /// The resource is not in a state that allows the request.
    IncorrectState = "IncorrectState", FailedPrecondition, 400;
    /// A ClientToken was used before with other parameters.
    IdempotentParameterMismatch = "IdempotentParameterMismatch", InvalidArgument, 400;
    /// The request's signature is not complete (a part of its Authorization is missing).
    IncompleteSignature = "IncompleteSignature", InvalidArgument, 400;
    /// The public address pool is exhausted.
    InsufficientAddressCapacity = "InsufficientAddressCapacity", ResourceExhausted, 500;
    /// The subnet has no free private address.
    InsufficientFreeAddressesInSubnet = "InsufficientFreeAddressesInSubnet", ResourceExhausted, 400;
    /// The host has no room for the instances.
    InsufficientInstanceCapacity = "InsufficientInstanceCapacity", ResourceExhausted, 500;
    /// The host has no room for the volume or snapshot (its data directory's disk is full).
    InsufficientVolumeCapacity = "InsufficientVolumeCapacity", ResourceExhausted, 500;
    /// A fault of the host, not of the request.
    InternalError = "InternalError", Internal, 500;
    /// No such access key.
    InvalidAccessKeyIdNotFound = "InvalidAccessKeyId.NotFound", NotFound, 400;
    /// A malformed access key ID.
    InvalidAccessKeyIdMalformed = "InvalidAccessKeyId.Malformed", InvalidArgument, 400;
    /// The Query API has no such action.
    InvalidAction = "InvalidAction", Unimplemented, 400;
    /// An image attribute value is not valid.
    InvalidAmiAttributeItemValue = "InvalidAMIAttributeItemValue", InvalidArgument, 400;
    /// A malformed image ID.
    InvalidAmiIdMalformed = "InvalidAMIID.Malformed", InvalidArgument, 400;
    /// No such image.
    InvalidAmiIdNotFound = "InvalidAMIID.NotFound", NotFound, 400;
    /// The image exists but cannot be used yet.
    InvalidAmiIdUnavailable = "InvalidAMIID.Unavailable", FailedPrecondition, 400;
    /// The account already has an image of that name.
    InvalidAmiNameDuplicate = "InvalidAMIName.Duplicate", AlreadyExists, 400;
    /// No such public address.
    InvalidAddressNotFound = "InvalidAddress.NotFound", NotFound, 400;
    /// A malformed Elastic IP allocation ID.
    InvalidAllocationIdMalformed = "InvalidAllocationID.Malformed", InvalidArgument, 400;
    /// No such Elastic IP allocation.
    InvalidAllocationIdNotFound = "InvalidAllocationID.NotFound", NotFound, 400;
    /// A malformed Elastic IP association ID.
    InvalidAssociationIdMalformed = "InvalidAssociationID.Malformed", InvalidArgument, 400;
    /// No such Elastic IP association.
    InvalidAssociationIdNotFound = "InvalidAssociationID.NotFound", NotFound, 400;
    /// The volume is not attached there.
    InvalidAttachmentNotFound = "InvalidAttachment.NotFound", NotFound, 400;
    /// A malformed interface attachment ID.
    InvalidAttachmentIdMalformed = "InvalidAttachmentID.Malformed", InvalidArgument, 400;
    /// No such interface attachment.
    InvalidAttachmentIdNotFound = "InvalidAttachmentID.NotFound", NotFound, 400;
    /// No such availability zone.
    InvalidAvailabilityZone = "InvalidAvailabilityZone", InvalidArgument, 400;
    /// A block device mapping is not valid.
    InvalidBlockDeviceMapping = "InvalidBlockDeviceMapping", InvalidArgument, 400;
    /// The VPC already has a security group of that name.
    InvalidGroupDuplicate = "InvalidGroup.Duplicate", AlreadyExists, 400;
    /// No such security group.
    InvalidGroupNotFound = "InvalidGroup.NotFound", NotFound, 400;
    /// A malformed security group ID.
    InvalidGroupIdMalformed = "InvalidGroupId.Malformed", InvalidArgument, 400;
    /// A resource ID of no known kind.
    InvalidId = "InvalidID", InvalidArgument, 400;
    /// The private address is taken.
    InvalidIpAddressInUse = "InvalidIPAddress.InUse", FailedPrecondition, 400;
    /// A malformed instance ID.
    InvalidInstanceIdMalformed = "InvalidInstanceID.Malformed", InvalidArgument, 400;
    /// No such instance.
    InvalidInstanceIdNotFound = "InvalidInstanceID.NotFound", NotFound, 400;
    /// The public key material does not parse.
    InvalidKeyFormat = "InvalidKey.Format", InvalidArgument, 400;
    /// The account already has a key pair of that name.
    InvalidKeyPairDuplicate = "InvalidKeyPair.Duplicate", AlreadyExists, 400;
    /// No such key pair.
    InvalidKeyPairNotFound = "InvalidKeyPair.NotFound", NotFound, 400;
    /// A malformed key pair ID.
    InvalidKeyPairIdMalformed = "InvalidKeyPairId.Malformed", InvalidArgument, 400;
    /// A malformed launch template ID.
    InvalidLaunchTemplateIdMalformed = "InvalidLaunchTemplateId.Malformed", InvalidArgument, 400;
    /// No such launch template.
    InvalidLaunchTemplateIdNotFound = "InvalidLaunchTemplateId.NotFound", NotFound, 400;
    /// The launch template has no such version.
    InvalidLaunchTemplateIdVersionNotFound = "InvalidLaunchTemplateId.VersionNotFound", NotFound, 400;
    /// The account already has a launch template of that name.
    InvalidLaunchTemplateNameAlreadyExistsException = "InvalidLaunchTemplateName.AlreadyExistsException", AlreadyExists, 400;
    /// The launch template name is not valid.
    InvalidLaunchTemplateNameMalformedException = "InvalidLaunchTemplateName.MalformedException", InvalidArgument, 400;
    /// No launch template of that name.
    InvalidLaunchTemplateNameNotFoundException = "InvalidLaunchTemplateName.NotFoundException", NotFound, 400;
    /// The network interface is attached.
    InvalidNetworkInterfaceInUse = "InvalidNetworkInterface.InUse", FailedPrecondition, 400;
    /// A malformed network interface ID.
    InvalidNetworkInterfaceIdMalformed = "InvalidNetworkInterfaceID.Malformed", InvalidArgument, 400;
    /// No such network interface.
    InvalidNetworkInterfaceIdNotFound = "InvalidNetworkInterfaceID.NotFound", NotFound, 400;
    /// The paging token is not valid.
    InvalidNextToken = "InvalidNextToken", InvalidArgument, 400;
    /// A parameter is not valid for this request.
    InvalidParameter = "InvalidParameter", InvalidArgument, 400;
    /// Parameters that cannot be given together.
    InvalidParameterCombination = "InvalidParameterCombination", InvalidArgument, 400;
    /// A parameter value is not valid.
    InvalidParameterValue = "InvalidParameterValue", InvalidArgument, 400;
    /// The security group already has the rule.
    InvalidPermissionDuplicate = "InvalidPermission.Duplicate", AlreadyExists, 400;
    /// The security group has no such rule.
    InvalidPermissionNotFound = "InvalidPermission.NotFound", NotFound, 400;
    /// The account already has a placement group of that name.
    InvalidPlacementGroupDuplicate = "InvalidPlacementGroup.Duplicate", AlreadyExists, 400;
    /// The placement group still has instances.
    InvalidPlacementGroupInUse = "InvalidPlacementGroup.InUse", FailedPrecondition, 400;
    /// No such placement group.
    InvalidPlacementGroupUnknown = "InvalidPlacementGroup.Unknown", NotFound, 400;
    /// A malformed placement group ID.
    InvalidPlacementGroupIdMalformed = "InvalidPlacementGroupId.Malformed", InvalidArgument, 400;
    /// No such region.
    InvalidRegion = "InvalidRegion", InvalidArgument, 400;
    /// The request is not valid as a whole.
    InvalidRequest = "InvalidRequest", InvalidArgument, 400;
    /// A malformed reservation ID.
    InvalidReservationIdMalformed = "InvalidReservationID.Malformed", InvalidArgument, 400;
    /// No such reservation.
    InvalidReservationIdNotFound = "InvalidReservationID.NotFound", NotFound, 400;
    /// An image still uses the snapshot.
    InvalidSnapshotInUse = "InvalidSnapshot.InUse", FailedPrecondition, 400;
    /// No such snapshot.
    InvalidSnapshotNotFound = "InvalidSnapshot.NotFound", NotFound, 400;
    /// A malformed snapshot ID.
    InvalidSnapshotIdMalformed = "InvalidSnapshotID.Malformed", InvalidArgument, 400;
    /// The subnet overlaps another of the host.
    InvalidSubnetConflict = "InvalidSubnet.Conflict", InvalidArgument, 400;
    /// The subnet range is not valid for its VPC.
    InvalidSubnetRange = "InvalidSubnet.Range", InvalidArgument, 400;
    /// A malformed subnet ID.
    InvalidSubnetIdMalformed = "InvalidSubnetID.Malformed", InvalidArgument, 400;
    /// No such subnet.
    InvalidSubnetIdNotFound = "InvalidSubnetID.NotFound", NotFound, 400;
    /// No such volume.
    InvalidVolumeNotFound = "InvalidVolume.NotFound", NotFound, 400;
    /// A malformed volume ID.
    InvalidVolumeIdMalformed = "InvalidVolumeID.Malformed", InvalidArgument, 400;
    /// The volume and the instance cannot be paired (other AZs, or other hosts of a region).
    InvalidVolumeZoneMismatch = "InvalidVolume.ZoneMismatch", InvalidArgument, 400;
    /// No such CIDR block association of a subnet.
    InvalidSubnetCidrBlockAssociationIdNotFound = "InvalidSubnetCidrBlockAssociationID.NotFound", NotFound, 400;
    /// No such CIDR block association of a VPC.
    InvalidVpcCidrBlockAssociationIdNotFound = "InvalidVpcCidrBlockAssociationID.NotFound", NotFound, 400;
    /// The VPC range is not valid.
    InvalidVpcRange = "InvalidVpc.Range", InvalidArgument, 400;
    /// A malformed VPC ID.
    InvalidVpcIdMalformed = "InvalidVpcID.Malformed", InvalidArgument, 400;
    /// No such VPC.
    InvalidVpcIdNotFound = "InvalidVpcID.NotFound", NotFound, 400;
    /// No more launch templates for the account.
    LaunchTemplateLimitExceeded = "LaunchTemplateLimitExceeded", ResourceExhausted, 400;
    /// No more versions for the launch template.
    LaunchTemplateVersionLimitExceeded = "LaunchTemplateVersionLimitExceeded", ResourceExhausted, 400;
    /// An account limit on a kind of resource is reached (access keys).
    LimitExceeded = "LimitExceeded", ResourceExhausted, 400;
    /// The request's parameters are not well-formed form encoding.
    MalformedQueryString = "MalformedQueryString", InvalidArgument, 400;
    /// The request names no action.
    MissingAction = "MissingAction", InvalidArgument, 400;
    /// The request is not signed.
    MissingAuthenticationToken = "MissingAuthenticationToken", Unauthenticated, 403;
    /// A required parameter is missing.
    MissingParameter = "MissingParameter", InvalidArgument, 400;
    /// No instance role or profile of that name (IAM's code).
    NoSuchEntity = "NoSuchEntity", NotFound, 400;
    /// The request is not allowed on this resource.
    OperationNotPermitted = "OperationNotPermitted", FailedPrecondition, 400;
    /// No more placement groups, or no more room in one.
    PlacementGroupLimitExceeded = "PlacementGroupLimitExceeded", ResourceExhausted, 400;
    /// No more private addresses on the interface.
    PrivateIpAddressLimitExceeded = "PrivateIpAddressLimitExceeded", ResourceExhausted, 400;
    /// The request's date is more than 15 minutes from the daemon's clock.
    RequestExpired = "RequestExpired", Unauthenticated, 400;
    /// The address is associated already.
    ResourceAlreadyAssociated = "Resource.AlreadyAssociated", FailedPrecondition, 400;
    /// No more rules in the security group.
    RulesPerSecurityGroupLimitExceeded = "RulesPerSecurityGroupLimitExceeded", ResourceExhausted, 400;
    /// Too many security groups for one interface.
    SecurityGroupsPerInterfaceLimitExceeded = "SecurityGroupsPerInterfaceLimitExceeded", ResourceExhausted, 400;
    /// Too many tags on the resource.
    TagLimitExceeded = "TagLimitExceeded", ResourceExhausted, 400;
    /// The caller may not do this.
    UnauthorizedOperation = "UnauthorizedOperation", PermissionDenied, 403;
    /// The request carries a parameter the action does not have.
    UnknownParameter = "UnknownParameter", InvalidArgument, 400;
    /// A service the request needs cannot be reached.
    Unavailable = "Unavailable", Unavailable, 503;
    /// The request is not supported here.
    UnsupportedOperation = "UnsupportedOperation", FailedPrecondition, 400;
    /// The request needs a VPC ID.
    VpcIdNotSpecified = "VPCIdNotSpecified", InvalidArgument, 400;
    /// The volume is attached.
    VolumeInUse = "VolumeInUse", FailedPrecondition, 400;
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code string that names no [`ErrorCode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown EC2 error code {0:?}")]
pub struct UnknownCode(pub String);

impl std::str::FromStr for ErrorCode {
    type Err = UnknownCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCode(s.to_string()))
    }
}

/// Compares with the wire form, so that a test can name the code as a client sees it.
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_string() {
        for &c in ErrorCode::ALL {
            assert_eq!(c.as_str().parse::<ErrorCode>(), Ok(c), "{c}");
        }
        assert!("NoSuchCode".parse::<ErrorCode>().is_err());
    }

    #[test]
    fn http_statuses_follow_ec2s_classes() {
        assert_eq!(ErrorCode::AuthFailure.http_status(), 401);
        assert_eq!(ErrorCode::UnauthorizedOperation.http_status(), 403);
        assert_eq!(ErrorCode::DryRunOperation.http_status(), 412);
        assert_eq!(ErrorCode::InternalError.http_status(), 500);
        assert_eq!(ErrorCode::Unavailable.http_status(), 503);
        assert_eq!(ErrorCode::InvalidInstanceIdNotFound.http_status(), 400);
        for &c in ErrorCode::ALL {
            assert!(
                [400, 401, 403, 412, 500, 503].contains(&c.http_status()),
                "{c}"
            );
            // A fault of the service is never reported to gRPC as the caller's mistake.
            if c.http_status() >= 500 {
                assert!(
                    matches!(
                        c.grpc(),
                        Code::Internal | Code::Unavailable | Code::ResourceExhausted
                    ),
                    "{c}"
                );
            }
        }
    }

    #[test]
    fn lookups_and_duplicates_map_to_their_grpc_classes() {
        for &c in ErrorCode::ALL {
            let s = c.as_str();
            if s.ends_with(".NotFound") || s.ends_with(".NotFoundException") {
                assert_eq!(c.grpc(), Code::NotFound, "{c}");
            }
            if s.ends_with(".Duplicate") || s.ends_with(".AlreadyExistsException") {
                assert_eq!(c.grpc(), Code::AlreadyExists, "{c}");
            }
            if s.ends_with(".Malformed") {
                assert_eq!(c.grpc(), Code::InvalidArgument, "{c}");
            }
            if s.ends_with("LimitExceeded") {
                assert_eq!(c.grpc(), Code::ResourceExhausted, "{c}");
            }
        }
    }
}
