//! The SecurityGroups service.

use strato_proto::v1 as pb;
use strato_proto::v1::security_groups_server::SecurityGroups;
use tonic::{Request, Response, Status};

use super::convert;
use super::Api;
use crate::cloud::network::security_groups::{GroupView, Permission};

/// Permissions from messages.
fn permissions_in(p: &[pb::IpPermission]) -> Vec<Permission> {
    p.iter()
        .map(|p| Permission {
            protocol: p.ip_protocol.clone(),
            from_port: p.from_port,
            to_port: p.to_port,
            cidrs: p.ip_ranges.iter().map(|r| r.cidr_ip.clone()).collect(),
            cidrs6: p.ipv6_ranges.iter().map(|r| r.cidr_ipv6.clone()).collect(),
            groups: p
                .user_id_group_pairs
                .iter()
                .map(|g| g.group_id.clone())
                .collect(),
        })
        .collect()
}

/// Permissions to messages.
fn permissions(p: &[Permission], owner: &str) -> Vec<pb::IpPermission> {
    p.iter()
        .map(|p| pb::IpPermission {
            ip_protocol: p.protocol.clone(),
            from_port: p.from_port,
            to_port: p.to_port,
            ip_ranges: p
                .cidrs
                .iter()
                .map(|c| pb::IpRange {
                    cidr_ip: c.clone(),
                    description: String::new(),
                })
                .collect(),
            ipv6_ranges: p
                .cidrs6
                .iter()
                .map(|c| pb::Ipv6Range {
                    cidr_ipv6: c.clone(),
                    description: String::new(),
                })
                .collect(),
            user_id_group_pairs: p
                .groups
                .iter()
                .map(|g| pb::UserIdGroupPair {
                    group_id: g.clone(),
                    group_name: String::new(),
                    user_id: owner.to_string(),
                })
                .collect(),
        })
        .collect()
}

fn group(v: GroupView) -> pb::SecurityGroup {
    let owner = v.group.owner.clone();
    pb::SecurityGroup {
        ip_permissions: permissions(&v.ingress, &owner),
        ip_permissions_egress: permissions(&v.egress, &owner),
        tags: convert::tags(&v.group.tags),
        group_id: v.group.id,
        group_name: v.group.name,
        description: v.group.description,
        vpc_id: v.group.vpc_id,
        owner_id: owner,
    }
}

impl Api {
    async fn rules(
        &self,
        op: &str,
        req: Request<pb::SecurityGroupRulesRequest>,
        authorize: bool,
        egress: bool,
    ) -> Result<Response<pb::SecurityGroupRulesResponse>, Status> {
        self.handle_async(op, req, |account, r| async move {
            let perms = permissions_in(&r.ip_permissions);
            if authorize {
                self.cloud
                    .authorize_regional(&account, &r.group_id, &r.group_name, egress, &perms)
                    .await?;
            } else {
                self.cloud
                    .revoke_regional(&account, &r.group_id, &r.group_name, egress, &perms)
                    .await?;
            }
            Ok(pb::SecurityGroupRulesResponse {})
        })
        .await
    }
}

#[tonic::async_trait]
impl SecurityGroups for Api {
    async fn create_security_group(
        &self,
        req: Request<pb::CreateSecurityGroupRequest>,
    ) -> Result<Response<pb::CreateSecurityGroupResponse>, Status> {
        self.handle_async("CreateSecurityGroup", req, |account, r| async move {
            self.cloud
                .create_security_group_regional(
                    &account,
                    &r.group_name,
                    &r.description,
                    &r.vpc_id,
                    convert::tags_in(&r.tags),
                )
                .await
                .map(|g| pb::CreateSecurityGroupResponse {
                    tags: convert::tags(&g.tags),
                    group_id: g.id,
                })
        })
        .await
    }

    async fn delete_security_group(
        &self,
        req: Request<pb::DeleteSecurityGroupRequest>,
    ) -> Result<Response<pb::DeleteSecurityGroupResponse>, Status> {
        self.handle_async("DeleteSecurityGroup", req, |account, r| async move {
            self.cloud
                .delete_security_group_regional(&account, &r.group_id, &r.group_name)
                .await
                .map(|()| pb::DeleteSecurityGroupResponse {})
        })
        .await
    }

    async fn describe_security_groups(
        &self,
        req: Request<pb::DescribeSecurityGroupsRequest>,
    ) -> Result<Response<pb::DescribeSecurityGroupsResponse>, Status> {
        self.handle("DescribeSecurityGroups", req, |account, r| {
            self.cloud
                .describe_security_groups(
                    account,
                    &r.group_ids,
                    &r.group_names,
                    &convert::filters(&r.filters),
                )
                .map(|list| pb::DescribeSecurityGroupsResponse {
                    security_groups: list.into_iter().map(group).collect(),
                })
        })
    }

    async fn authorize_security_group_ingress(
        &self,
        req: Request<pb::SecurityGroupRulesRequest>,
    ) -> Result<Response<pb::SecurityGroupRulesResponse>, Status> {
        self.rules("AuthorizeSecurityGroupIngress", req, true, false)
            .await
    }

    async fn authorize_security_group_egress(
        &self,
        req: Request<pb::SecurityGroupRulesRequest>,
    ) -> Result<Response<pb::SecurityGroupRulesResponse>, Status> {
        self.rules("AuthorizeSecurityGroupEgress", req, true, true)
            .await
    }

    async fn revoke_security_group_ingress(
        &self,
        req: Request<pb::SecurityGroupRulesRequest>,
    ) -> Result<Response<pb::SecurityGroupRulesResponse>, Status> {
        self.rules("RevokeSecurityGroupIngress", req, false, false)
            .await
    }

    async fn revoke_security_group_egress(
        &self,
        req: Request<pb::SecurityGroupRulesRequest>,
    ) -> Result<Response<pb::SecurityGroupRulesResponse>, Status> {
        self.rules("RevokeSecurityGroupEgress", req, false, true)
            .await
    }
}
