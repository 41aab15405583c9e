//! Instance roles and instance profiles.

use strato_proto::v1::{
    CreateInstanceProfileRequest, CreateRoleRequest, DeleteInstanceProfileRequest,
    DeleteRoleRequest, DescribeInstanceProfilesRequest, DescribeRolesRequest,
};

use crate::args::roles::{CreateInstanceProfile, CreateRole, DeleteInstanceProfile, DeleteRole};
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
