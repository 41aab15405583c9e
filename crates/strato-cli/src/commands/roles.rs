//! Instance roles and instance profiles.

use strato_proto::v1::{
    AssociateIamInstanceProfileRequest, CreateInstanceProfileRequest, CreateRoleRequest,
    DeleteInstanceProfileRequest, DeleteRoleRequest, DescribeIamInstanceProfileAssociationsRequest,
    DescribeInstanceProfilesRequest, DescribeRolesRequest, DisassociateIamInstanceProfileRequest,
    ReplaceIamInstanceProfileAssociationRequest,
};

use crate::args::roles::{
    profile_spec, AssociateIamInstanceProfile, CreateInstanceProfile, CreateRole,
    DeleteInstanceProfile, DeleteRole, DescribeIamInstanceProfileAssociations,
    DisassociateIamInstanceProfile, ReplaceIamInstanceProfileAssociation,
};
use crate::conn::Conn;
use crate::error::CliError;
use crate::output::{ControlView, View};

/// `create-role`
pub async fn create_role(conn: &Conn, a: CreateRole) -> Result<View, CliError> {
    let request = CreateRoleRequest {
        role_name: a.role_name,
        actions: a.actions,
    };
    let response = conn
        .roles()
        .create_role(request)
        .await
        .map_err(conn.error("CreateRole"))?;
    Ok(View::Control(ControlView::Roles(
        response.into_inner().role.into_iter().collect(),
    )))
}

/// `describe-roles`
pub async fn describe_roles(conn: &Conn) -> Result<View, CliError> {
    let response = conn
        .roles()
        .describe_roles(DescribeRolesRequest {})
        .await
        .map_err(conn.error("DescribeRoles"))?;
    Ok(View::Control(ControlView::Roles(
        response.into_inner().roles,
    )))
}

/// `delete-role`
pub async fn delete_role(conn: &Conn, a: DeleteRole) -> Result<View, CliError> {
    conn.roles()
        .delete_role(DeleteRoleRequest {
            role_name: a.role_name,
        })
        .await
        .map_err(conn.error("DeleteRole"))?;
    Ok(View::Control(ControlView::Nothing))
}

/// `create-instance-profile`
pub async fn create_instance_profile(
    conn: &Conn,
    a: CreateInstanceProfile,
) -> Result<View, CliError> {
    let request = CreateInstanceProfileRequest {
        instance_profile_name: a.instance_profile_name,
        role_name: a.role_name,
    };
    let response = conn
        .roles()
        .create_instance_profile(request)
        .await
        .map_err(conn.error("CreateInstanceProfile"))?;
    Ok(View::Control(ControlView::InstanceProfiles(
        response.into_inner().instance_profile.into_iter().collect(),
    )))
}

/// `describe-instance-profiles`
pub async fn describe_instance_profiles(conn: &Conn) -> Result<View, CliError> {
    let response = conn
        .roles()
        .describe_instance_profiles(DescribeInstanceProfilesRequest {})
        .await
        .map_err(conn.error("DescribeInstanceProfiles"))?;
    Ok(View::Control(ControlView::InstanceProfiles(
        response.into_inner().instance_profiles,
    )))
}

/// `delete-instance-profile`
pub async fn delete_instance_profile(
    conn: &Conn,
    a: DeleteInstanceProfile,
) -> Result<View, CliError> {
    conn.roles()
        .delete_instance_profile(DeleteInstanceProfileRequest {
            instance_profile_name: a.instance_profile_name,
        })
        .await
        .map_err(conn.error("DeleteInstanceProfile"))?;
    Ok(View::Control(ControlView::Nothing))
}

/// `associate-iam-instance-profile`
pub async fn associate(conn: &Conn, a: AssociateIamInstanceProfile) -> Result<View, CliError> {
    let request = AssociateIamInstanceProfileRequest {
        instance_id: a.instance_id,
        iam_instance_profile: profile_spec(&a.iam_instance_profile),
    };
    let response = conn
        .roles()
        .associate_iam_instance_profile(request)
        .await
        .map_err(conn.error("AssociateIamInstanceProfile"))?;
    Ok(View::Control(ControlView::Association(
        response.into_inner().association,
    )))
}

/// `replace-iam-instance-profile-association`
pub async fn replace(
    conn: &Conn,
    a: ReplaceIamInstanceProfileAssociation,
) -> Result<View, CliError> {
    let request = ReplaceIamInstanceProfileAssociationRequest {
        association_id: a.association_id,
        iam_instance_profile: profile_spec(&a.iam_instance_profile),
    };
    let response = conn
        .roles()
        .replace_iam_instance_profile_association(request)
        .await
        .map_err(conn.error("ReplaceIamInstanceProfileAssociation"))?;
    Ok(View::Control(ControlView::Association(
        response.into_inner().association,
    )))
}

/// `disassociate-iam-instance-profile`
pub async fn disassociate(
    conn: &Conn,
    a: DisassociateIamInstanceProfile,
) -> Result<View, CliError> {
    let response = conn
        .roles()
        .disassociate_iam_instance_profile(DisassociateIamInstanceProfileRequest {
            association_id: a.association_id,
        })
        .await
        .map_err(conn.error("DisassociateIamInstanceProfile"))?;
    Ok(View::Control(ControlView::Association(
        response.into_inner().association,
    )))
}

/// `describe-iam-instance-profile-associations`
pub async fn describe_associations(
    conn: &Conn,
    a: DescribeIamInstanceProfileAssociations,
) -> Result<View, CliError> {
    let response = conn
        .roles()
        .describe_iam_instance_profile_associations(DescribeIamInstanceProfileAssociationsRequest {
            association_ids: a.association_ids,
            filters: crate::parse::flatten(a.filters),
        })
        .await
        .map_err(conn.error("DescribeIamInstanceProfileAssociations"))?;
    Ok(View::Control(ControlView::Associations(
        response.into_inner().associations,
    )))
}
