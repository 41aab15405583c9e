//! Arguments of the Images commands.

use std::path::PathBuf;

use clap::{ArgGroup, Args};
use strato_proto::v1::{BlockDeviceMapping, Filter};

use super::Wait;
use crate::parse::{self, LaunchPermissionChange, Many};

/// Arguments of `register-image`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["bundle", "kernel"])))]
pub struct RegisterImage {
    /// The image name.
    #[arg(long)]
    pub name: String,

    /// A description.
    #[arg(long)]
    pub description: Option<String>,

    /// An image bundle folder (with manifest.json) on the daemon's host.
    #[arg(long)]
    pub bundle: Option<PathBuf>,

    /// The guest kernel on the daemon's host (with --root-volume).
    #[arg(long, requires = "root_volume")]
    pub kernel: Option<PathBuf>,

    /// The root volume image on the daemon's host (with --kernel).
    #[arg(long, requires = "kernel")]
    pub root_volume: Option<PathBuf>,

    /// The kernel command line.
    #[arg(long)]
    pub boot_args: Option<String>,

    /// The root device, e.g. /dev/vda.
    #[arg(long)]
    pub root_device_name: Option<String>,

    /// The architecture, e.g. x86_64.
    #[arg(long)]
    pub architecture: Option<String>,

    /// Give its instances enhanced networking (EnaSupport). Without this or
    /// --no-ena-support a bundle's manifest decides (true unless it says otherwise) and
    /// explicit files get none, as in EC2.
    #[arg(long, conflicts_with = "no_ena_support")]
    pub ena_support: bool,

    /// No enhanced networking for its instances.
    #[arg(long)]
    pub no_ena_support: bool,

    /// Block device mappings: the AWS CLI's JSON list, shorthand, or file://PATH.
    #[arg(long, num_args = 1.., value_parser = parse::block_device_mappings)]
    pub block_device_mappings: Vec<Many<BlockDeviceMapping>>,

    /// Wait until the image is available, showing the copy progress.
    #[command(flatten)]
    pub wait: Wait,
}

/// Arguments of `describe-images`.
#[derive(Debug, Args)]
pub struct DescribeImages {
    /// Only these images.
    #[arg(long, num_args = 1..)]
    pub image_ids: Vec<String>,

    /// Only images owned by these accounts.
    #[arg(long, num_args = 1..)]
    pub owners: Vec<String>,

    /// Only images these accounts may launch ("all" for public).
    #[arg(long, num_args = 1..)]
    pub executable_users: Vec<String>,

    /// Filters, e.g. Name=name,Values=debian-12.
    #[arg(long, num_args = 1.., value_parser = parse::filters)]
    pub filters: Vec<Many<Filter>>,

    /// Items per API call, 5 to 1000 (the CLI follows every page).
    #[arg(long, value_parser = clap::value_parser!(i32).range(5..=1000))]
    pub page_size: Option<i32>,
}

/// Arguments of commands that act on one image.
#[derive(Debug, Args)]
pub struct ImageId {
    /// The image.
    #[arg(long)]
    pub image_id: String,
}

/// Arguments of `create-image`.
#[derive(Debug, Args)]
pub struct CreateImage {
    /// The instance to image.
    #[arg(long)]
    pub instance_id: String,

    /// The image name.
    #[arg(long)]
    pub name: String,

    /// A description.
    #[arg(long)]
    pub description: Option<String>,

    /// Do not reboot the instance before imaging it.
    #[arg(long)]
    pub no_reboot: bool,

    /// Wait until the image is available, showing the copy progress.
    #[command(flatten)]
    pub wait: Wait,
}

/// Arguments of `copy-image`.
#[derive(Debug, Args)]
pub struct CopyImage {
    /// The region the image is in (a peer of the daemon's region).
    #[arg(long)]
    pub source_region: String,

    /// The image to copy.
    #[arg(long)]
    pub source_image_id: String,

    /// The copy's name.
    #[arg(long)]
    pub name: String,

    /// A description (default: the source's).
    #[arg(long)]
    pub description: Option<String>,

    /// Wait until the copy is available, showing its progress.
    #[command(flatten)]
    pub wait: Wait,
}

/// Arguments of `modify-image-attribute`.
#[derive(Debug, Args)]
pub struct ModifyImageAttribute {
    /// The image.
    #[arg(long)]
    pub image_id: String,

    /// Add=[{UserId=123456789012}],Remove=[{Group=all}] or the JSON form.
    #[arg(long, value_parser = parse::launch_permission)]
    pub launch_permission: LaunchPermissionChange,
}

/// Arguments of `describe-image-attribute`.
#[derive(Debug, Args)]
pub struct DescribeImageAttribute {
    /// The image.
    #[arg(long)]
    pub image_id: String,

    /// The attribute to show.
    #[arg(long, value_parser = ["launchPermission"])]
    pub attribute: String,
}

#[cfg(test)]
mod tests {
    use crate::args::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("strato").chain(args.iter().copied()))
            .map(|cli| cli.command)
    }

    #[test]
    fn register_image_needs_one_source() {
        assert!(parse(&["register-image", "--name", "n", "--bundle", "b"]).is_ok());
        assert!(parse(&[
            "register-image",
            "--name",
            "n",
            "--kernel",
            "k",
            "--root-volume",
            "r"
        ])
        .is_ok());
        for bad in [
            &["register-image", "--name", "n"][..],
            &["register-image", "--name", "n", "--kernel", "k"],
            &[
                "register-image",
                "--name",
                "n",
                "--bundle",
                "b",
                "--kernel",
                "k",
                "--root-volume",
                "r",
            ],
        ] {
            assert_eq!(parse(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn modify_image_attribute_parses_launch_permission() {
        let command = parse(&[
            "modify-image-attribute",
            "--image-id",
            "ami-1",
            "--launch-permission",
            "Add=[{Group=all}]",
        ])
        .unwrap();
        let Command::ModifyImageAttribute(modify) = command else {
            panic!("wrong command");
        };
        assert_eq!(modify.launch_permission.add[0].group, "all");
        assert!(parse(&[
            "modify-image-attribute",
            "--image-id",
            "a",
            "--launch-permission",
            "x"
        ])
        .is_err());
    }
}
