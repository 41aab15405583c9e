//! Instance types: a catalog in the t3/m5 style plus custom sizes named
//! `custom-<vcpus>-<MiB>` (e.g. `custom-1-64`), for guests smaller or shaped differently than
//! the catalog's.

use crate::error::ApiError;

/// An instance type's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceType {
    /// Its name.
    pub name: String,
    /// vCPUs.
    pub vcpus: u8,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Instance-store GiB (0: EBS only).
    pub instance_store_gib: u32,
}

/// The catalog: (name, vCPUs, MiB, instance-store GiB).
const CATALOG: &[(&str, u8, u32, u32)] = &[
    ("t3.nano", 2, 512, 0),
    ("t3.micro", 2, 1024, 0),
    ("t3.small", 2, 2048, 0),
    ("t3.medium", 2, 4096, 0),
    ("t3.large", 2, 8192, 0),
    ("t3.xlarge", 4, 16384, 0),
    ("t3.2xlarge", 8, 32768, 0),
    ("m5.large", 2, 8192, 0),
    ("m5.xlarge", 4, 16384, 0),
    ("m5.2xlarge", 8, 32768, 0),
    ("m5d.large", 2, 8192, 75),
    ("m5d.xlarge", 4, 16384, 150),
    ("c5.large", 2, 4096, 0),
    ("c5.xlarge", 4, 8192, 0),
    ("r5.large", 2, 16384, 0),
];

/// Most vCPUs of a custom size (the monitor's limit).
pub const MAX_VCPUS: u8 = 8;
/// Least memory of a custom size, in MiB.
pub const MIN_MEMORY_MIB: u32 = 32;
/// Most memory of a custom size, in MiB.
pub const MAX_MEMORY_MIB: u32 = 65536;

/// Every catalog type.
pub fn all() -> Vec<InstanceType> {
    CATALOG
        .iter()
        .map(
            |&(name, vcpus, memory_mib, instance_store_gib)| InstanceType {
                name: name.to_string(),
                vcpus,
                memory_mib,
                instance_store_gib,
            },
        )
        .collect()
}

/// Looks a type up by name: a catalog type or a valid custom size.
pub fn lookup(name: &str) -> Result<InstanceType, ApiError> {
    if let Some(t) = all().into_iter().find(|t| t.name == name) {
        return Ok(t);
    }
    if let Some(rest) = name.strip_prefix("custom-") {
        return parse_custom(name, rest);
    }
    Err(ApiError::invalid(format!(
        "Invalid value '{}' for InstanceType.",
        shorten(name)
    )))
}

fn parse_custom(name: &str, rest: &str) -> Result<InstanceType, ApiError> {
    let bad = || {
        ApiError::invalid(format!(
            "Invalid custom instance type '{}': use custom-<vcpus 1-{MAX_VCPUS}>-<MiB {MIN_MEMORY_MIB}-{MAX_MEMORY_MIB}>.",
            shorten(name)
        ))
    };
    let (v, m) = rest.split_once('-').ok_or_else(bad)?;
    let vcpus: u8 = v.parse().map_err(|_| bad())?;
    let memory_mib: u32 = m.parse().map_err(|_| bad())?;
    if !(1..=MAX_VCPUS).contains(&vcpus) || !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&memory_mib)
    {
        return Err(bad());
    }
    Ok(InstanceType {
        name: format!("custom-{vcpus}-{memory_mib}"),
        vcpus,
        memory_mib,
        instance_store_gib: 0,
    })
}

fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_and_custom_sizes() {
        assert_eq!(lookup("t3.micro").unwrap().memory_mib, 1024);
        assert_eq!(lookup("m5d.large").unwrap().instance_store_gib, 75);
        let c = lookup("custom-1-64").unwrap();
        assert_eq!((c.vcpus, c.memory_mib), (1, 64));
        for bad in [
            "",
            "t9.huge",
            "custom-0-64",
            "custom-9-64",
            "custom-1-16",
            "custom-1",
            "custom-x-y",
            "custom-1-99999999999",
        ] {
            assert_eq!(
                lookup(bad).unwrap_err().code,
                "InvalidParameterValue",
                "{bad}"
            );
        }
    }
}
