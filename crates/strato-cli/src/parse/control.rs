//! Structured arguments of the launch template and key pair commands:
//! `--launch-template-data` (the AWS CLI's JSON, whose `UserData` is base64),
//! `run-instances --launch-template`, and `--public-key-material`.

use base64::Engine;
use strato_proto::v1::{LaunchTemplateData, LaunchTemplateSpecification, Placement};

use super::fields::Fields;
use super::{block_device_mapping, document, file_path, tag, ParseError};

/// An OpenSSH public key given to import-key-pair; a newtype so that clap does not take
/// `Vec<u8>` for a repeated argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(pub Vec<u8>);

/// Parses `--launch-template-data`: `{"ImageId": …, "InstanceType": …, "UserData": base64,
/// "BlockDeviceMappings": […], "KeyName": …, "Placement": {…}, "SecurityGroupIds": […],
/// "InstanceInitiatedShutdownBehavior": …, "DisableApiTermination": bool,
/// "TagSpecifications": [{"ResourceType": "instance", "Tags": […]}]}`, inline or file://.
pub fn launch_template_data(raw: &str) -> Result<LaunchTemplateData, ParseError> {
    let mut f = Fields::new(document(raw)?, "launch template data")?;
    let user_data = match f.string("UserData")? {
        None => Vec::new(),
        // The AWS API carries launch template user data base64-encoded.
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| f.invalid(&format!("UserData is not valid base64: {e}")))?,
    };
    let block_device_mappings = f
        .objects("BlockDeviceMappings")?
        .into_iter()
        .map(|m| block_device_mapping(Fields::new(m, "block device mapping")?))
        .collect::<Result<_, _>>()?;
    let iam_instance_profile = match f.take("IamInstanceProfile") {
        Some(p) => {
            let mut p = Fields::new(p, "IamInstanceProfile")?;
            let arn = p.string("Arn")?.unwrap_or_default();
            let name = p.string("Name")?.unwrap_or_default();
            p.finish()?;
            if arn.is_empty() {
                name
            } else {
                arn
            }
        }
        None => String::new(),
    };
    let placement = f
        .take("Placement")
        .map(|p| {
            let mut p = Fields::new(p, "placement")?;
            let placement = Placement {
                availability_zone: p.string("AvailabilityZone")?.unwrap_or_default(),
                group_name: p.string("GroupName")?.unwrap_or_default(),
                partition_number: p.int32("PartitionNumber")?.unwrap_or_default(),
                ..Default::default()
            };
            p.finish()?;
            Ok::<_, ParseError>(placement)
        })
        .transpose()?;
    let mut tags = Vec::new();
    for spec in f.objects("TagSpecifications")? {
        let mut spec = Fields::new(spec, "tag specification")?;
        let resource_type = spec.required_string("ResourceType")?;
        if resource_type != "instance" {
            return Err(spec.invalid(&format!(
                "ResourceType={resource_type} is not supported here, only instance"
            )));
        }
        for t in spec.objects("Tags")? {
            tags.push(tag(Fields::new(t, "tag")?)?);
        }
        spec.finish()?;
    }
    let data = LaunchTemplateData {
        image_id: f.string("ImageId")?.unwrap_or_default(),
        instance_type: f.string("InstanceType")?.unwrap_or_default(),
        user_data,
        block_device_mappings,
        key_name: f.string("KeyName")?.unwrap_or_default(),
        iam_instance_profile,
        placement,
        security_group_ids: f.strings("SecurityGroupIds")?,
        instance_initiated_shutdown_behavior: f
            .string("InstanceInitiatedShutdownBehavior")?
            .unwrap_or_default(),
        disable_api_termination: f.bool("DisableApiTermination")?,
        tags,
    };
    f.finish()?;
    Ok(data)
}

/// Parses `run-instances --launch-template`:
/// `LaunchTemplateName=web,Version=2` or `LaunchTemplateId=lt-…` (or JSON).
pub fn launch_template(raw: &str) -> Result<LaunchTemplateSpecification, ParseError> {
    let mut f = Fields::new(document(raw)?, "launch template")?;
    let spec = LaunchTemplateSpecification {
        launch_template_id: f.string("LaunchTemplateId")?.unwrap_or_default(),
        launch_template_name: f.string("LaunchTemplateName")?.unwrap_or_default(),
        version: f.string("Version")?.unwrap_or_default(),
    };
    f.finish()?;
    if spec.launch_template_id.is_empty() == spec.launch_template_name.is_empty() {
        return Err(f.invalid("give either LaunchTemplateId or LaunchTemplateName"));
    }
    Ok(spec)
}

/// Parses `--public-key-material`: `file://PATH` or `fileb://PATH` reads the key file, else
/// the argument is the key. Material that is base64 of an OpenSSH key (what the AWS CLI v2
/// passes on for a blob) is decoded.
pub fn public_key_material(raw: &str) -> Result<PublicKey, ParseError> {
    let bytes = match file_path(raw) {
        Some(path) => std::fs::read(path).map_err(|source| ParseError::File {
            path: path.to_owned(),
            source,
        })?,
        None => raw.as_bytes().to_vec(),
    };
    let looks_openssh = |b: &[u8]| {
        let t = String::from_utf8_lossy(b);
        let t = t.trim_start();
        t.starts_with("ssh-") || t.starts_with("ecdsa-")
    };
    if !looks_openssh(&bytes) {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(text.trim()) {
            if looks_openssh(&decoded) {
                return Ok(PublicKey(decoded));
            }
        }
    }
    Ok(PublicKey(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_data_in_the_aws_shape() {
        let raw = r#"{"ImageId":"ami-1","InstanceType":"t3.micro","UserData":"ZWNobyBoaQo=",
            "BlockDeviceMappings":[{"DeviceName":"/dev/vdb","Ebs":{"VolumeSize":2}}],
            "KeyName":"k","Placement":{"GroupName":"pg","PartitionNumber":2},
            "SecurityGroupIds":["sg-1"],"InstanceInitiatedShutdownBehavior":"terminate",
            "DisableApiTermination":true,
            "TagSpecifications":[{"ResourceType":"instance","Tags":[{"Key":"a","Value":"b"}]}]}"#;
        let d = launch_template_data(raw).unwrap();
        assert_eq!(d.image_id, "ami-1");
        assert_eq!(d.user_data, b"echo hi\n");
        assert_eq!(d.block_device_mappings[0].device_name, "/dev/vdb");
        let p = d.placement.unwrap();
        assert_eq!((p.group_name.as_str(), p.partition_number), ("pg", 2));
        assert_eq!(d.security_group_ids, ["sg-1"]);
        assert_eq!(d.disable_api_termination, Some(true));
        assert_eq!(d.tags[0].key, "a");
        assert_eq!(
            launch_template_data("{}").unwrap(),
            LaunchTemplateData::default()
        );
        for bad in [
            r#"{"UserData":"not base64!"}"#,
            r#"{"ImageID":"ami-1"}"#,
            r#"{"TagSpecifications":[{"ResourceType":"volume","Tags":[]}]}"#,
            r#"{"Placement":{"Tenancy":"host"}}"#,
        ] {
            assert!(launch_template_data(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn launch_template_specifications() {
        let s = launch_template("LaunchTemplateName=web,Version=$Latest").unwrap();
        assert_eq!(
            (s.launch_template_name.as_str(), s.version.as_str()),
            ("web", "$Latest")
        );
        let s = launch_template(r#"{"LaunchTemplateId":"lt-1"}"#).unwrap();
        assert_eq!(s.launch_template_id, "lt-1");
        assert!(launch_template("Version=1").is_err());
        assert!(launch_template("LaunchTemplateId=lt-1,LaunchTemplateName=web").is_err());
    }

    #[test]
    fn public_keys_raw_from_files_or_base64() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE k\n";
        assert_eq!(public_key_material(key).unwrap().0, key.as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(key);
        assert_eq!(public_key_material(&b64).unwrap().0, key.as_bytes());
        let path = std::env::temp_dir().join(format!("strato-cli-{}-key.pub", std::process::id()));
        std::fs::write(&path, key).unwrap();
        let read = public_key_material(&format!("file://{}", path.display())).unwrap();
        assert_eq!(read.0, key.as_bytes());
        std::fs::remove_file(path).unwrap();
        // Anything else goes to the daemon as it is, which judges it.
        assert_eq!(public_key_material("garbage").unwrap().0, b"garbage");
    }
}
