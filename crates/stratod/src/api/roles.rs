//! The Roles service: instance roles and the instance profiles naming them.

use strato_proto::v1 as pb;
use strato_proto::v1::roles_server::Roles;
use tonic::{Request, Response, Status};

use super::Api;
use crate::cloud::identity::associations::AssociationInfo;
use crate::db::roles::{InstanceProfile, Role};

fn association(a: AssociationInfo) -> pb::IamInstanceProfileAssociation {
    pb::IamInstanceProfileAssociation {
        association_id: a.id,
        instance_id: a.instance_id,
        instance_profile_arn: a.profile_arn,
        instance_profile_id: a.profile_id,
        state: a.state.to_string(),
        timestamp_unix: a.created,
    }
}

fn association_response(a: AssociationInfo) -> pb::IamInstanceProfileAssociationResponse {
    pb::IamInstanceProfileAssociationResponse {
        association: Some(association(a)),
    }
}

fn role_info(r: Role) -> pb::RoleInfo {
    pb::RoleInfo {
        role_name: r.name,
        actions: r.actions,
        create_time_unix: r.created,
    }
}

fn profile_info(p: InstanceProfile) -> pb::InstanceProfileInfo {
    pb::InstanceProfileInfo {
        arn: crate::cloud::identity::roles::profile_arn(&p.account, &p.name),
        instance_profile_name: p.name,
        role_name: p.role,
        create_time_unix: p.created,
    }
}

#[tonic::async_trait]
impl Roles for Api {
    async fn create_role(
        &self,
        req: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::CreateRoleResponse>, Status> {
        self.handle("CreateRole", req, |account, r| {
            self.cloud
                .create_role(account, &r.role_name, &r.actions)
                .map(|role| pb::CreateRoleResponse {
                    role: Some(role_info(role)),
                })
        })
    }

    async fn describe_roles(
        &self,
        req: Request<pb::DescribeRolesRequest>,
    ) -> Result<Response<pb::DescribeRolesResponse>, Status> {
        self.handle("DescribeRoles", req, |account, _| {
            self.cloud
                .describe_roles(account)
                .map(|list| pb::DescribeRolesResponse {
                    roles: list.into_iter().map(role_info).collect(),
                })
        })
    }

    async fn delete_role(
        &self,
        req: Request<pb::DeleteRoleRequest>,
    ) -> Result<Response<pb::DeleteRoleResponse>, Status> {
        self.handle("DeleteRole", req, |account, r| {
            self.cloud
                .delete_role(account, &r.role_name)
                .map(|()| pb::DeleteRoleResponse {})
        })
    }

    async fn create_instance_profile(
        &self,
        req: Request<pb::CreateInstanceProfileRequest>,
    ) -> Result<Response<pb::CreateInstanceProfileResponse>, Status> {
        self.handle("CreateInstanceProfile", req, |account, r| {
            self.cloud
                .create_instance_profile(account, &r.instance_profile_name, &r.role_name)
                .map(|p| pb::CreateInstanceProfileResponse {
                    instance_profile: Some(profile_info(p)),
                })
        })
    }

    async fn describe_instance_profiles(
        &self,
        req: Request<pb::DescribeInstanceProfilesRequest>,
    ) -> Result<Response<pb::DescribeInstanceProfilesResponse>, Status> {
        self.handle("DescribeInstanceProfiles", req, |account, _| {
            self.cloud.describe_instance_profiles(account).map(|list| {
                pb::DescribeInstanceProfilesResponse {
                    instance_profiles: list.into_iter().map(profile_info).collect(),
                }
            })
        })
    }

    async fn delete_instance_profile(
        &self,
        req: Request<pb::DeleteInstanceProfileRequest>,
    ) -> Result<Response<pb::DeleteInstanceProfileResponse>, Status> {
        self.handle("DeleteInstanceProfile", req, |account, r| {
            self.cloud
                .delete_instance_profile(account, &r.instance_profile_name)
                .map(|()| pb::DeleteInstanceProfileResponse {})
        })
    }

    async fn associate_iam_instance_profile(
        &self,
        req: Request<pb::AssociateIamInstanceProfileRequest>,
    ) -> Result<Response<pb::IamInstanceProfileAssociationResponse>, Status> {
        self.handle("AssociateIamInstanceProfile", req, |account, r| {
            self.cloud
                .associate_iam_instance_profile(account, &r.instance_id, &r.iam_instance_profile)
                .map(association_response)
        })
    }

    async fn replace_iam_instance_profile_association(
        &self,
        req: Request<pb::ReplaceIamInstanceProfileAssociationRequest>,
    ) -> Result<Response<pb::IamInstanceProfileAssociationResponse>, Status> {
        self.handle("ReplaceIamInstanceProfileAssociation", req, |account, r| {
            self.cloud
                .replace_iam_instance_profile_association(
                    account,
                    &r.association_id,
                    &r.iam_instance_profile,
                )
                .map(association_response)
        })
    }

    async fn disassociate_iam_instance_profile(
        &self,
        req: Request<pb::DisassociateIamInstanceProfileRequest>,
    ) -> Result<Response<pb::IamInstanceProfileAssociationResponse>, Status> {
        self.handle("DisassociateIamInstanceProfile", req, |account, r| {
            self.cloud
                .disassociate_iam_instance_profile(account, &r.association_id)
                .map(association_response)
        })
    }

    async fn describe_iam_instance_profile_associations(
        &self,
        req: Request<pb::DescribeIamInstanceProfileAssociationsRequest>,
    ) -> Result<Response<pb::DescribeIamInstanceProfileAssociationsResponse>, Status> {
        self.handle(
            "DescribeIamInstanceProfileAssociations",
            req,
            |account, r| {
                self.cloud
                    .describe_iam_instance_profile_associations(
                        account,
                        &r.association_ids,
                        &super::convert::filters(&r.filters),
                    )
                    .map(|list| pb::DescribeIamInstanceProfileAssociationsResponse {
                        associations: list.into_iter().map(association).collect(),
                    })
            },
        )
    }
}
