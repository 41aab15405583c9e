//! Which instance has which instance profile: EC2's IamInstanceProfileAssociations.
//! RunInstances makes the first; AssociateIamInstanceProfile gives a profile to an instance
//! that has none, Replace swaps it (the old role's credentials are revoked at once), and
//! Disassociate takes it away (so do termination and the end of the instance).

use super::super::Cloud;
use super::roles::profile_arn;
use crate::cloud::filters::Filter;
use crate::db::roles::IamAssociation;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::lifecycle::State;

/// An association as EC2 describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationInfo {
    /// `iip-assoc-…`
    pub id: String,
    /// The instance.
    pub instance_id: String,
    /// The profile's ARN.
    pub profile_arn: String,
    /// The profile's unique ID.
    pub profile_id: String,
    /// `associated`, or `disassociating` in Disassociate's answer.
    pub state: &'static str,
    /// Unix seconds it was made.
    pub created: i64,
}

impl AssociationInfo {
    fn of(a: &IamAssociation, state: &'static str) -> AssociationInfo {
        AssociationInfo {
            id: a.id.clone(),
            instance_id: a.instance_id.clone(),
            profile_arn: profile_arn(&a.account, &a.profile),
            profile_id: super::sessions::profile_id(&a.account, &a.profile),
            state,
            created: a.created,
        }
    }
}

fn check_id(id: &str) -> ApiResult<()> {
    let hex = id.strip_prefix("iip-assoc-").unwrap_or("");
    if !hex.is_empty() && hex.len() <= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidAssociationIdMalformed,
            format!(
                "Invalid association ID: '{}'",
                id.chars().take(64).collect::<String>()
            ),
        ))
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidAssociationIdNotFound,
        format!("An association ID '{id}' does not exist."),
    )
}

impl Cloud {
    /// One association of the account, by ID.
    pub fn owned_association(&self, account: &str, id: &str) -> ApiResult<IamAssociation> {
        check_id(id)?;
        match self.db.iam_association(id)? {
            Some(a) if a.account == account => Ok(a),
            _ => Err(not_found(id)),
        }
    }

    /// AssociateIamInstanceProfile: an instance that has no profile gets one (running or
    /// stopped, as EC2 allows); its next metadata request sees the role's credentials.
    pub fn associate_iam_instance_profile(
        &self,
        account: &str,
        instance_id: &str,
        profile: &str,
    ) -> ApiResult<AssociationInfo> {
        let inst = self.owned_instance(account, instance_id)?;
        if !matches!(
            inst.state,
            State::Pending | State::Running | State::Stopping | State::Stopped
        ) {
            return Err(ApiError::incorrect_state(
                instance_id,
                inst.state.name(),
                "associated with an instance profile",
            ));
        }
        let p = self.launch_profile(account, profile)?;
        if self.db.iam_association_of(instance_id)?.is_some() {
            return Err(ApiError::new(
                ErrorCode::IncorrectState,
                format!("There is an existing association for instance {instance_id}"),
            ));
        }
        let id = self.associate_profile(instance_id, &p)?;
        tracing::info!(instance = instance_id, profile = %p.name, "instance profile associated");
        let a = self.owned_association(account, &id)?;
        Ok(AssociationInfo::of(&a, "associating"))
    }

    /// DisassociateIamInstanceProfile: the profile and its credentials go.
    pub fn disassociate_iam_instance_profile(
        &self,
        account: &str,
        id: &str,
    ) -> ApiResult<AssociationInfo> {
        let a = self.owned_association(account, id)?;
        if !self.db.delete_iam_association(&a.instance_id)? {
            return Err(not_found(id));
        }
        tracing::info!(instance = %a.instance_id, profile = %a.profile, "instance profile disassociated");
        Ok(AssociationInfo::of(&a, "disassociating"))
    }

    /// ReplaceIamInstanceProfileAssociation: another profile, under a new association ID.
    pub fn replace_iam_instance_profile_association(
        &self,
        account: &str,
        id: &str,
        profile: &str,
    ) -> ApiResult<AssociationInfo> {
        let old = self.owned_association(account, id)?;
        let p = self.launch_profile(account, profile)?;
        let new = IamAssociation {
            id: format!(
                "iip-assoc-{}",
                crate::ids::new_id(crate::ids::Kind::Instance).trim_start_matches("i-")
            ),
            instance_id: old.instance_id.clone(),
            account: account.to_string(),
            profile: p.name.clone(),
            created: crate::db::now_s(),
        };
        if !self.db.replace_iam_association(&old.id, &new)? {
            return Err(not_found(id));
        }
        tracing::info!(instance = %new.instance_id, profile = %p.name, "instance profile replaced");
        Ok(AssociationInfo::of(&new, "associating"))
    }

    /// DescribeIamInstanceProfileAssociations, by ID and by the filters `instance-id` and
    /// `state`.
    pub fn describe_iam_instance_profile_associations(
        &self,
        account: &str,
        ids: &[String],
        filters: &[Filter],
    ) -> ApiResult<Vec<AssociationInfo>> {
        for id in ids {
            self.owned_association(account, id)?;
        }
        for f in filters {
            if f.name != "instance-id" && f.name != "state" {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameterValue,
                    format!("The filter '{}' is invalid", f.name),
                ));
            }
        }
        Ok(self
            .db
            .iam_associations(account)?
            .iter()
            .filter(|a| ids.is_empty() || ids.contains(&a.id))
            .map(|a| AssociationInfo::of(a, "associated"))
            .filter(|a| {
                filters.iter().all(|f| {
                    let v = if f.name == "state" {
                        a.state
                    } else {
                        a.instance_id.as_str()
                    };
                    f.values.iter().any(|p| crate::cloud::filters::glob(p, v))
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::instances::tests::sample;

    const A: &str = "111111111111";
    const I: &str = "i-0000000000000000a";

    #[test]
    fn profiles_are_associated_replaced_and_taken_away() {
        let (_d, cloud) = crate::cloud::test_cloud();
        let mut inst = sample(I, A);
        inst.state = State::Running;
        cloud.db.insert_instance(&inst).unwrap();
        let acts = |a: &str| vec![a.to_string()];
        cloud
            .create_role(A, "reader", &acts("ec2:Describe*"))
            .unwrap();
        cloud.create_role(A, "admin", &acts("*")).unwrap();
        cloud.create_instance_profile(A, "web", "reader").unwrap();
        cloud.create_instance_profile(A, "ops", "admin").unwrap();

        let a = cloud.associate_iam_instance_profile(A, I, "web").unwrap();
        assert_eq!(
            a.profile_arn,
            "arn:aws:iam::111111111111:instance-profile/web"
        );
        let err = cloud
            .associate_iam_instance_profile(A, I, "ops")
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::IncorrectState);
        assert_eq!(
            cloud
                .associate_iam_instance_profile("222222222222", I, "web")
                .unwrap_err()
                .code,
            ErrorCode::InvalidInstanceIdNotFound
        );
        let listed = cloud
            .describe_iam_instance_profile_associations(A, &[], &[])
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].state, "associated");

        let old = cloud
            .instance_credentials(I, 100)
            .unwrap()
            .unwrap()
            .credential;
        let r = cloud
            .replace_iam_instance_profile_association(
                A,
                &a.id,
                "arn:aws:iam::111111111111:instance-profile/ops",
            )
            .unwrap();
        assert_ne!(r.id, a.id);
        assert!(
            cloud
                .session_caller(&old.access_key, Some(&old.token), 200)
                .unwrap()
                .is_none(),
            "the old role's key is revoked"
        );
        let now = cloud
            .instance_credentials(I, 200)
            .unwrap()
            .unwrap()
            .credential;
        assert_eq!(now.role, "admin");
        let by_filter = |name: &str, v: &str| {
            cloud
                .describe_iam_instance_profile_associations(
                    A,
                    &[],
                    &[Filter {
                        name: name.into(),
                        values: vec![v.into()],
                    }],
                )
                .unwrap()
                .len()
        };
        assert_eq!(by_filter("instance-id", I), 1);
        assert_eq!(by_filter("instance-id", "i-0000000000000000b"), 0);
        assert_eq!(
            cloud
                .disassociate_iam_instance_profile(A, &a.id)
                .unwrap_err()
                .code,
            ErrorCode::InvalidAssociationIdNotFound,
            "the replaced ID is gone"
        );
        assert_eq!(
            cloud
                .disassociate_iam_instance_profile(A, "iip-assoc-zz")
                .unwrap_err()
                .code,
            ErrorCode::InvalidAssociationIdMalformed
        );
        let d = cloud.disassociate_iam_instance_profile(A, &r.id).unwrap();
        assert_eq!(d.state, "disassociating");
        assert_eq!(cloud.instance_credentials(I, 300).unwrap(), None);
        // With no instance holding it, the profile may go.
        cloud.delete_instance_profile(A, "ops").unwrap();
    }
}
