//! Arguments of the key pair commands.

use clap::{ArgGroup, Args};
use strato_proto::v1::Filter;

use crate::parse::{self, Many, PublicKey, TagSpecification};

/// Arguments of `create-key-pair`.
#[derive(Debug, Args)]
pub struct CreateKeyPair {
    /// The key pair's name, unique in the account.
    #[arg(long)]
    pub key_name: String,

    /// rsa (the default, 2048 bits, PKCS#1 PEM) or ed25519 (OpenSSH format).
    #[arg(long)]
    pub key_type: Option<String>,

    /// ResourceType=key-pair,Tags=[{Key=k,Value=v}].
    #[arg(long, num_args = 1.., value_parser = parse::tag_specifications)]
    pub tag_specifications: Vec<Many<TagSpecification>>,
}

/// Arguments of `import-key-pair`.
#[derive(Debug, Args)]
pub struct ImportKeyPair {
    /// The key pair's name, unique in the account.
    #[arg(long)]
    pub key_name: String,

    /// The OpenSSH public key: file://PATH (e.g. file://~/.ssh/id_ed25519.pub expanded by
    /// the shell), fileb://PATH, or the key itself.
    #[arg(long, value_parser = parse::public_key_material)]
    pub public_key_material: PublicKey,

    /// ResourceType=key-pair,Tags=[{Key=k,Value=v}].
    #[arg(long, num_args = 1.., value_parser = parse::tag_specifications)]
    pub tag_specifications: Vec<Many<TagSpecification>>,
}

/// Arguments of `describe-key-pairs`.
#[derive(Debug, Args)]
pub struct DescribeKeyPairs {
    /// Only these key pairs, by name.
    #[arg(long, num_args = 1..)]
    pub key_names: Vec<String>,

    /// Only these key pairs, by ID.
    #[arg(long, num_args = 1..)]
    pub key_pair_ids: Vec<String>,

    /// Filters, e.g. Name=key-type,Values=ed25519.
    #[arg(long, num_args = 1.., value_parser = parse::filters)]
    pub filters: Vec<Many<Filter>>,

    /// Include each public key.
    #[arg(long)]
    pub include_public_key: bool,
}

/// Arguments of `delete-key-pair`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("key").required(true).args(["key_name", "key_pair_id"])))]
pub struct DeleteKeyPair {
    /// The key pair's name.
    #[arg(long)]
    pub key_name: Option<String>,

    /// The key pair's ID.
    #[arg(long)]
    pub key_pair_id: Option<String>,
}

/// Arguments of `create-access-key`.
#[derive(Debug, Args)]
pub struct CreateAccessKey {
    /// The 12-digit account the key speaks for (default: the caller's; another account only
    /// for the admin).
    #[arg(long)]
    pub account_id: Option<String>,
}

/// Arguments of `describe-access-keys`.
#[derive(Debug, Args)]
pub struct DescribeAccessKeys {
    /// Another account's keys (the admin only).
    #[arg(long, conflicts_with = "all")]
    pub account_id: Option<String>,

    /// Every account's keys (the admin only).
    #[arg(long)]
    pub all: bool,
}

/// Arguments of `delete-access-key`.
#[derive(Debug, Args)]
pub struct DeleteAccessKey {
    /// The access key ID (AKIA…).
    #[arg(long)]
    pub access_key_id: String,
}
