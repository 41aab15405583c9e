#![allow(clippy::unwrap_used)]
//! Terraform's AWS provider, replayed: the create, read and delete calls of an
//! `aws_instance` (from a launch template, with a root block device, user data and
//! termination protection) made with botocore against the Query listener, every answer
//! checked as the provider reads it (tests/e2e/terraform_replay.py).

use strato_e2e::query::query_config;
use strato_e2e::Daemon;

#[test]
fn terraform_aws_instance_create_read_delete() {
    let d = Daemon::start_with("qtf", query_config());
    let ami = d.register_probe("probe");
    let aws = d.aws(None);
    let out = aws.python_with_args(include_str!("terraform_replay.py"), &[&ami]);
    assert!(out.contains("replayed i-"), "{out}");
}
