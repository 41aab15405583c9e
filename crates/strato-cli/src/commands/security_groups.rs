//! Security groups.

use strato_proto::v1::{
    CreateSecurityGroupRequest, DeleteSecurityGroupRequest, DescribeSecurityGroupsRequest,
    SecurityGroupRulesRequest,
};

use crate::args::security_groups::{
    CreateSecurityGroup, DeleteSecurityGroup, DescribeSecurityGroups, SecurityGroupRules,
};
use crate::conn::Conn;
use crate::error::CliError;
use crate::output::{SecurityGroupView, View};
use crate::parse::{flatten, tags_for};

/// `create-security-group`
pub async fn create_security_group(conn: &Conn, a: CreateSecurityGroup) -> Result<View, CliError> {
    let tags = tags_for("security-group", flatten(a.tag_specifications), Vec::new())
        .map_err(CliError::Usage)?;
    let request = CreateSecurityGroupRequest {
        group_name: a.group_name,
        description: a.description,
        vpc_id: a.vpc_id.unwrap_or_default(),
        tags,
    };
    let response = conn
        .security_groups()
        .create_security_group(request)
        .await
        .map_err(conn.error("CreateSecurityGroup"))?;
    Ok(View::SecurityGroups(SecurityGroupView::Created(
        response.into_inner(),
    )))
}

/// `describe-security-groups`
pub async fn describe_security_groups(
    conn: &Conn,
    a: DescribeSecurityGroups,
) -> Result<View, CliError> {
    let request = DescribeSecurityGroupsRequest {
        group_ids: a.group_ids,
        group_names: a.group_names,
        filters: flatten(a.filters),
    };
    let response = conn
        .security_groups()
        .describe_security_groups(request)
        .await
        .map_err(conn.error("DescribeSecurityGroups"))?;
    Ok(View::SecurityGroups(SecurityGroupView::Groups(
        response.into_inner().security_groups,
    )))
}

/// `delete-security-group`
pub async fn delete_security_group(conn: &Conn, a: DeleteSecurityGroup) -> Result<View, CliError> {
    let request = DeleteSecurityGroupRequest {
        group_id: a.group_id.unwrap_or_default(),
        group_name: a.group_name.unwrap_or_default(),
    };
    conn.security_groups()
        .delete_security_group(request)
        .await
        .map_err(conn.error("DeleteSecurityGroup"))?;
    Ok(View::Empty)
}

/// Which of the four rule calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOp {
    /// authorize-security-group-ingress
    AuthorizeIngress,
    /// authorize-security-group-egress
    AuthorizeEgress,
    /// revoke-security-group-ingress
    RevokeIngress,
    /// revoke-security-group-egress
    RevokeEgress,
}

/// `authorize-security-group-ingress|egress`, `revoke-security-group-ingress|egress`
pub async fn rules(conn: &Conn, op: RuleOp, a: SecurityGroupRules) -> Result<View, CliError> {
    let request = SecurityGroupRulesRequest {
        group_id: a.group_id.clone().unwrap_or_default(),
        group_name: a.group_name.clone().unwrap_or_default(),
        ip_permissions: a.permissions().map_err(CliError::Usage)?,
    };
    let mut c = conn.security_groups();
    match op {
        RuleOp::AuthorizeIngress => c
            .authorize_security_group_ingress(request)
            .await
            .map_err(conn.error("AuthorizeSecurityGroupIngress"))?,
        RuleOp::AuthorizeEgress => c
            .authorize_security_group_egress(request)
            .await
            .map_err(conn.error("AuthorizeSecurityGroupEgress"))?,
        RuleOp::RevokeIngress => c
            .revoke_security_group_ingress(request)
            .await
            .map_err(conn.error("RevokeSecurityGroupIngress"))?,
        RuleOp::RevokeEgress => c
            .revoke_security_group_egress(request)
            .await
            .map_err(conn.error("RevokeSecurityGroupEgress"))?,
    };
    Ok(View::SecurityGroups(SecurityGroupView::Return))
}
