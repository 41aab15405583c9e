//! Instance roles and instance profiles. A role is strato's small policy form: a list of
//! allowed actions, each `ec2:<Action>` with `*` wildcards (or `*` alone for every action),
//! matched case-insensitively as IAM matches action names. A profile names one role of its
//! account; an instance launched with the profile gets temporary credentials limited to the
//! role's actions.

use super::super::Cloud;
use crate::db::roles::{InstanceProfile, Role};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// Actions one role may list (IAM's policy size limit, in spirit).
pub const ACTIONS_PER_ROLE: usize = 100;

/// Checks a role or profile name as IAM does: 1 to 64 of letters, digits and `+=,.@_-`.
pub fn check_name(kind: &str, name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if ok {
        Ok(())
    } else {
        let shown: String = name.chars().take(64).collect();
        Err(ApiError::invalid(format!(
            "The {kind} name '{shown}' is not valid: use 1 to 64 letters, digits and +=,.@_-"
        )))
    }
}

/// Checks one action pattern: `*`, or `ec2:` (or `sts:`) and letters, digits and `*`.
pub fn check_action(pattern: &str) -> ApiResult<()> {
    if pattern == "*" {
        return Ok(());
    }
    let ok = match pattern.split_once(':') {
        Some((service, name)) => {
            (service.eq_ignore_ascii_case("ec2") || service.eq_ignore_ascii_case("sts"))
                && !name.is_empty()
                && name.len() <= 128
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'*')
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        let shown: String = pattern.chars().take(140).collect();
        Err(ApiError::invalid(format!(
            "The action '{shown}' is not valid: use ec2:<Action> with * wildcards, or *"
        )))
    }
}

/// Whether `pattern` (already checked) matches `text`, ASCII case-insensitively; `*`
/// matches any run of characters.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    // Greedy matching with one backtrack point: linear enough for 128-byte patterns.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p].eq_ignore_ascii_case(&text[t]) {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// Whether a role's `actions` allow `action` of `service` (`ec2` or `sts`).
pub fn allows(actions: &[String], service: &str, action: &str) -> bool {
    let full = format!("{service}:{action}");
    actions
        .iter()
        .any(|p| wildcard(p.as_bytes(), full.as_bytes()))
}

/// The ARN RunInstances may name a profile by.
pub fn profile_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:instance-profile/{name}")
}

/// The profile name in an instance profile ARN of `account`; `None` when it is not one.
pub fn profile_name_from_arn<'a>(account: &str, arn: &'a str) -> Option<&'a str> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (acct, rest) = rest.split_once(':')?;
    if acct != account {
        return None;
    }
    let name = rest.strip_prefix("instance-profile/")?;
    // IAM paths (`/a/b/name`) are not kept; the name is the last segment.
    Some(name.rsplit('/').next().unwrap_or(name))
}

fn no_role(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NoSuchEntity,
        format!("The role with name {name} cannot be found."),
    )
}

fn no_profile(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NoSuchEntity,
        format!("Instance Profile {name} cannot be found."),
    )
}

impl Cloud {
    /// Creates a role of the caller's account allowing `actions`.
    pub fn create_role(&self, account: &str, name: &str, actions: &[String]) -> ApiResult<Role> {
        check_name("role", name)?;
        if actions.is_empty() || actions.len() > ACTIONS_PER_ROLE {
            return Err(ApiError::invalid(format!(
                "A role lists 1 to {ACTIONS_PER_ROLE} actions."
            )));
        }
        for a in actions {
            check_action(a)?;
        }
        let role = Role {
            account: account.to_string(),
            name: name.to_string(),
            actions: actions.to_vec(),
            created: crate::db::now_s(),
        };
        if !self.db.insert_role(&role)? {
            return Err(ApiError::new(
                ErrorCode::EntityAlreadyExists,
                format!("Role with name {name} already exists."),
            ));
        }
        tracing::info!(%account, role = %name, "role created");
        Ok(role)
    }

    /// The caller's roles.
    pub fn describe_roles(&self, account: &str) -> ApiResult<Vec<Role>> {
        Ok(self.db.roles(account)?)
    }

    /// One role of the account.
    pub fn role(&self, account: &str, name: &str) -> ApiResult<Role> {
        self.db.role(account, name)?.ok_or_else(|| no_role(name))
    }

    /// Deletes a role no profile names.
    pub fn delete_role(&self, account: &str, name: &str) -> ApiResult<()> {
        match self.db.delete_role(account, name)? {
            None => Err(no_role(name)),
            Some(false) => Err(ApiError::new(
                ErrorCode::DependencyViolation,
                format!("Cannot delete role {name}: an instance profile names it."),
            )),
            Some(true) => Ok(()),
        }
    }

    /// Creates an instance profile naming one of the account's roles.
    pub fn create_instance_profile(
        &self,
        account: &str,
        name: &str,
        role: &str,
    ) -> ApiResult<InstanceProfile> {
        check_name("instance profile", name)?;
        // Checked first for a clear error; the foreign key guards a concurrent delete.
        self.role(account, role)?;
        let p = InstanceProfile {
            account: account.to_string(),
            name: name.to_string(),
            role: role.to_string(),
            created: crate::db::now_s(),
        };
        if !self.db.insert_instance_profile(&p)? {
            return Err(ApiError::new(
                ErrorCode::EntityAlreadyExists,
                format!("Instance Profile {name} already exists."),
            ));
        }
        tracing::info!(%account, profile = %name, %role, "instance profile created");
        Ok(p)
    }

    /// The caller's instance profiles.
    pub fn describe_instance_profiles(&self, account: &str) -> ApiResult<Vec<InstanceProfile>> {
        Ok(self.db.instance_profiles(account)?)
    }

    /// One instance profile of the account.
    pub fn instance_profile(&self, account: &str, name: &str) -> ApiResult<InstanceProfile> {
        self.db
            .instance_profile(account, name)?
            .ok_or_else(|| no_profile(name))
    }

    /// The profile RunInstances names by name or by ARN (of the caller's account).
    pub fn launch_profile(&self, account: &str, name_or_arn: &str) -> ApiResult<InstanceProfile> {
        let name = if name_or_arn.starts_with("arn:") {
            profile_name_from_arn(account, name_or_arn).ok_or_else(|| {
                ApiError::invalid(format!(
                    "Value ({}) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN",
                    name_or_arn.chars().take(140).collect::<String>()
                ))
            })?
        } else {
            name_or_arn
        };
        self.db.instance_profile(account, name)?.ok_or_else(|| {
            ApiError::invalid(format!(
                "Value ({}) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name",
                name.chars().take(64).collect::<String>()
            ))
        })
    }

    /// Records that a new instance has `profile`.
    pub fn associate_profile(
        &self,
        instance_id: &str,
        profile: &InstanceProfile,
    ) -> ApiResult<String> {
        let id = format!(
            "iip-assoc-{}",
            crate::ids::new_id(crate::ids::Kind::Instance).trim_start_matches("i-")
        );
        self.db
            .insert_iam_association(&crate::db::roles::IamAssociation {
                id: id.clone(),
                instance_id: instance_id.to_string(),
                account: profile.account.clone(),
                profile: profile.name.clone(),
                created: crate::db::now_s(),
            })?;
        Ok(id)
    }

    /// An instance's profile ARN and association ID, if it has one.
    pub fn instance_profile_of(&self, instance_id: &str) -> ApiResult<Option<(String, String)>> {
        Ok(self
            .db
            .iam_association_of(instance_id)?
            .map(|a| (profile_arn(&a.account, &a.profile), a.id)))
    }

    /// Deletes an instance profile.
    pub fn delete_instance_profile(&self, account: &str, name: &str) -> ApiResult<()> {
        match self.db.delete_instance_profile(account, name)? {
            None => Err(no_profile(name)),
            Some(false) => Err(ApiError::new(
                ErrorCode::DependencyViolation,
                format!("Cannot delete instance profile {name}: an instance has it."),
            )),
            Some(true) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acts(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn wildcards_match_actions_case_insensitively() {
        let r = acts(&["ec2:Describe*", "ec2:StartInstances"]);
        assert!(allows(&r, "ec2", "DescribeInstances"));
        assert!(allows(&r, "ec2", "describeinstances"));
        assert!(allows(&r, "ec2", "StartInstances"));
        assert!(!allows(&r, "ec2", "StopInstances"));
        assert!(!allows(&r, "ec2", "TerminateInstances"));
        assert!(!allows(&r, "sts", "DescribeInstances"));
        assert!(allows(&acts(&["*"]), "ec2", "RunInstances"));
        assert!(allows(&acts(&["ec2:*Instances"]), "ec2", "RunInstances"));
        assert!(!allows(&acts(&["ec2:*Instances"]), "ec2", "RunInstance"));
        assert!(allows(&acts(&["ec2:D*s*e*"]), "ec2", "DescribeVolume"));
        assert!(!allows(
            &acts(&["ec2:Describe"]),
            "ec2",
            "DescribeInstances"
        ));
        assert!(!allows(&[], "ec2", "DescribeInstances"));
    }

    #[test]
    fn patterns_and_names_are_checked() {
        for ok in [
            "*",
            "ec2:Describe*",
            "EC2:RunInstances",
            "sts:GetCallerIdentity",
        ] {
            assert!(check_action(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ec2:",
            "s3:GetObject",
            "Describe*",
            "ec2:Desc?ibe",
            "ec2:a b",
        ] {
            assert!(check_action(bad).is_err(), "{bad}");
        }
        assert!(check_name("role", "web-reader_1").is_ok());
        assert!(check_name("role", "").is_err());
        assert!(check_name("role", "a/b").is_err());
        assert!(check_name("role", &"x".repeat(65)).is_err());
    }

    #[test]
    fn profiles_name_roles_of_their_account() {
        let (_dir, cloud) = crate::cloud::test_cloud();
        let a = "111111111111";
        let err = cloud
            .create_instance_profile(a, "web", "reader")
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::NoSuchEntity);
        let err = cloud
            .create_role(a, "reader", &acts(&["s3:*"]))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidParameterValue);
        cloud
            .create_role(a, "reader", &acts(&["ec2:Describe*"]))
            .unwrap();
        let err = cloud.create_role(a, "reader", &acts(&["*"])).unwrap_err();
        assert_eq!(err.code, ErrorCode::EntityAlreadyExists);
        cloud.create_instance_profile(a, "web", "reader").unwrap();
        // Another account sees neither.
        let b = "222222222222";
        assert_eq!(
            cloud.instance_profile(b, "web").unwrap_err().code,
            ErrorCode::NoSuchEntity
        );
        assert_eq!(cloud.instance_profile(a, "web").unwrap().role, "reader");
        assert_eq!(
            cloud.delete_role(a, "reader").unwrap_err().code,
            ErrorCode::DependencyViolation
        );
        cloud.delete_instance_profile(a, "web").unwrap();
        cloud.delete_role(a, "reader").unwrap();
        assert!(cloud.describe_roles(a).unwrap().is_empty());
    }
}
