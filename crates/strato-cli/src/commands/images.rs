//! Machine images (AMIs).

use std::path::PathBuf;

use strato_proto::v1::{
    CopyImageRequest, CreateImageRequest, DeregisterImageRequest, DescribeImageAttributeRequest,
    DescribeImagesRequest, ModifyImageAttributeRequest, RegisterImageRequest,
};

use crate::args::images::{
    CopyImage, CreateImage, DescribeImageAttribute, DescribeImages, ImageId, ModifyImageAttribute,
    RegisterImage,
};
use crate::conn::Conn;
use crate::error::CliError;
use crate::output::View;
use crate::parse::flatten;
use crate::wait;

/// `register-image`
pub async fn register_image(conn: &Conn, a: RegisterImage) -> Result<View, CliError> {
    let request = RegisterImageRequest {
        name: a.name,
        description: a.description.unwrap_or_default(),
        bundle_path: host_path(a.bundle)?,
        kernel_path: host_path(a.kernel)?,
        root_volume_path: host_path(a.root_volume)?,
        boot_args: a.boot_args.unwrap_or_default(),
        root_device_name: a.root_device_name.unwrap_or_default(),
        architecture: a.architecture.unwrap_or_default(),
        block_device_mappings: flatten(a.block_device_mappings),
        ena_support: if a.ena_support {
            Some(true)
        } else if a.no_ena_support {
            Some(false)
        } else {
            None
        },
    };
    let image_id = conn
        .images()
        .register_image(request)
        .await
        .map_err(conn.error("RegisterImage"))?
        .into_inner()
        .image_id;
    if a.wait.wait {
        wait::image(conn, &image_id, a.wait, "Registering").await?;
    }
    Ok(View::ImageId(image_id))
}

/// A path for the daemon, which resolves it on its own host: a relative path is made
/// absolute here, since the daemon's working directory is not the caller's.
fn host_path(path: Option<PathBuf>) -> Result<String, CliError> {
    let Some(path) = path else {
        return Ok(String::new());
    };
    let path = std::path::absolute(&path).unwrap_or(path);
    path.into_os_string()
        .into_string()
        .map_err(|p| CliError::Usage(format!("path {p:?} is not valid UTF-8")))
}

/// `describe-images`
pub async fn describe_images(conn: &Conn, a: DescribeImages) -> Result<View, CliError> {
    let request = DescribeImagesRequest {
        image_ids: a.image_ids,
        owners: a.owners,
        filters: flatten(a.filters),
        executable_users: a.executable_users,
        max_results: a.page_size.unwrap_or_default(),
        next_token: String::new(),
    };
    let client = conn.images();
    let err = conn.error("DescribeImages");
    let items = super::all_pages(|next_token| {
        let mut client = client.clone();
        let request = DescribeImagesRequest {
            next_token,
            ..request.clone()
        };
        let err = &err;
        async move {
            let page = client
                .describe_images(request)
                .await
                .map_err(err)?
                .into_inner();
            Ok((page.images, page.next_token))
        }
    })
    .await?;
    Ok(View::Images(items))
}

/// `deregister-image`
pub async fn deregister_image(conn: &Conn, a: ImageId) -> Result<View, CliError> {
    let request = DeregisterImageRequest {
        image_id: a.image_id,
    };
    conn.images()
        .deregister_image(request)
        .await
        .map_err(conn.error("DeregisterImage"))?;
    Ok(View::Empty)
}

/// `create-image`
pub async fn create_image(conn: &Conn, a: CreateImage) -> Result<View, CliError> {
    let request = CreateImageRequest {
        instance_id: a.instance_id,
        name: a.name,
        description: a.description.unwrap_or_default(),
        no_reboot: a.no_reboot,
    };
    let image_id = conn
        .images()
        .create_image(request)
        .await
        .map_err(conn.error("CreateImage"))?
        .into_inner()
        .image_id;
    if a.wait.wait {
        wait::image(conn, &image_id, a.wait, "Creating").await?;
    }
    Ok(View::ImageId(image_id))
}

/// `copy-image`
pub async fn copy_image(conn: &Conn, a: CopyImage) -> Result<View, CliError> {
    let request = CopyImageRequest {
        source_region: a.source_region,
        source_image_id: a.source_image_id,
        name: a.name,
        description: a.description.unwrap_or_default(),
    };
    let image_id = conn
        .images()
        .copy_image(request)
        .await
        .map_err(conn.error("CopyImage"))?
        .into_inner()
        .image_id;
    if a.wait.wait {
        wait::image(conn, &image_id, a.wait, "Copying").await?;
    }
    Ok(View::ImageId(image_id))
}

/// `modify-image-attribute`
pub async fn modify_image_attribute(
    conn: &Conn,
    a: ModifyImageAttribute,
) -> Result<View, CliError> {
    let request = ModifyImageAttributeRequest {
        image_id: a.image_id,
        add: a.launch_permission.add,
        remove: a.launch_permission.remove,
    };
    conn.images()
        .modify_image_attribute(request)
        .await
        .map_err(conn.error("ModifyImageAttribute"))?;
    Ok(View::Empty)
}

/// `describe-image-attribute`
pub async fn describe_image_attribute(
    conn: &Conn,
    a: DescribeImageAttribute,
) -> Result<View, CliError> {
    let request = DescribeImageAttributeRequest {
        image_id: a.image_id,
        attribute: a.attribute,
    };
    let response = conn
        .images()
        .describe_image_attribute(request)
        .await
        .map_err(conn.error("DescribeImageAttribute"))?;
    Ok(View::LaunchPermissions(response.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_paths_become_absolute() {
        assert_eq!(host_path(None).unwrap(), "");
        assert_eq!(host_path(Some("/srv/img".into())).unwrap(), "/srv/img");
        let relative = host_path(Some("images/probe".into())).unwrap();
        assert!(
            relative.starts_with('/') && relative.ends_with("/images/probe"),
            "{relative}"
        );
    }
}
