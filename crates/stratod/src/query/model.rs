//! botocore's service models, trimmed to the operations strato serves
//! (`scripts/extract-ec2-model.py` writes `model/*.json`; `model/NOTICE` has botocore's
//! Apache-2.0 attribution). The codec reads names, nesting and types from here, never from
//! hand-written tables, so requests parse and responses serialize as the clients built from
//! the same model expect.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

/// EC2's model, `2016-11-15`.
const EC2_JSON: &str = include_str!("model/ec2-2016-11-15.json");
/// STS's model, `2011-06-15` (GetCallerIdentity only).
const STS_JSON: &str = include_str!("model/sts-2011-06-15.json");

/// A service model.
#[derive(Debug, Deserialize)]
pub struct Model {
    /// Where the extract came from.
    pub source: String,
    /// The service's protocol facts.
    pub metadata: Metadata,
    /// Operations by name.
    pub operations: BTreeMap<String, Operation>,
    /// Shapes by name.
    pub shapes: HashMap<String, Shape>,
}

/// A model's protocol facts.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// `2016-11-15`.
    pub api_version: String,
    /// `ec2` or `query`.
    pub protocol: String,
    /// The namespace of response documents.
    pub xml_namespace: String,
}

/// One operation.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// Its input shape.
    pub input: Option<String>,
    /// Its output shape.
    pub output: Option<String>,
    /// The element the awsQuery protocol wraps the output in (`GetCallerIdentityResult`).
    pub result_wrapper: Option<String>,
}

/// A shape's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Members by name.
    Structure,
    /// Items of one shape.
    List,
    /// Keys and values (EC2's model has none; the codec refuses them).
    Map,
    /// Text.
    String,
    /// 32-bit integer.
    Integer,
    /// 64-bit integer.
    Long,
    /// `true` / `false`.
    Boolean,
    /// Double precision.
    Double,
    /// Single precision.
    Float,
    /// A point in time (ISO 8601 on the wire).
    Timestamp,
    /// Bytes (base64 on the wire).
    Blob,
}

/// A reference to a shape from a member, list item, map key or value.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ref {
    /// The shape's name.
    pub shape: String,
    /// The element name in XML (and, capitalised, the request parameter name).
    pub location_name: Option<String>,
    /// The request parameter name, where it differs.
    pub query_name: Option<String>,
    /// botocore fills this member with a fresh UUID when the caller leaves it out.
    #[serde(default)]
    pub idempotency_token: bool,
}

/// A shape.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shape {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Structure members by name.
    #[serde(default)]
    pub members: BTreeMap<String, Ref>,
    /// Required structure members.
    #[serde(default)]
    pub required: Vec<String>,
    /// The item of a list.
    pub member: Option<Ref>,
    /// A flattened list (items repeat without a wrapping element).
    #[serde(default)]
    pub flattened: bool,
}

/// A model that does not hold together.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The JSON does not parse.
    #[error("the service model does not parse")]
    Json(#[from] serde_json::Error),
    /// A reference names no shape.
    #[error("shape {0} refers to missing shape {1}")]
    Missing(String, String),
}

impl Model {
    /// EC2's model.
    pub fn ec2() -> Result<Model, ModelError> {
        Self::parse(EC2_JSON)
    }

    /// STS's model.
    pub fn sts() -> Result<Model, ModelError> {
        Self::parse(STS_JSON)
    }

    fn parse(json: &str) -> Result<Model, ModelError> {
        let m: Model = serde_json::from_str(json)?;
        let check = |from: &str, r: &str| {
            if m.shapes.contains_key(r) {
                Ok(())
            } else {
                Err(ModelError::Missing(from.to_string(), r.to_string()))
            }
        };
        for (name, op) in &m.operations {
            for s in op.input.iter().chain(op.output.iter()) {
                check(name, s)?;
            }
        }
        for (name, s) in &m.shapes {
            for r in s.members.values().chain(s.member.iter()) {
                check(name, &r.shape)?;
            }
        }
        Ok(m)
    }

    /// A shape by name (every reference was checked when the model was loaded).
    pub fn shape(&self, name: &str) -> Option<&Shape> {
        self.shapes.get(name)
    }

    /// The namespace responses carry, with EC2's trailing slash.
    pub fn namespace(&self) -> String {
        let ns = &self.metadata.xml_namespace;
        if ns.ends_with('/') {
            ns.clone()
        } else {
            format!("{ns}/")
        }
    }
}

impl Ref {
    /// The request parameter name of a member, as botocore's EC2 serializer writes it: the
    /// `queryName`, else the `locationName` with its first letter capitalised, else the
    /// member's own name.
    pub fn query_param<'a>(&'a self, member: &'a str) -> std::borrow::Cow<'a, str> {
        if let Some(q) = &self.query_name {
            return q.as_str().into();
        }
        if let Some(l) = &self.location_name {
            let mut c = l.chars();
            return match c.next() {
                Some(f) => format!("{}{}", f.to_ascii_uppercase(), c.as_str()).into(),
                None => member.into(),
            };
        }
        member.into()
    }

    /// The XML element name of a member: its `locationName`, else its own name.
    pub fn element<'a>(&'a self, member: &'a str) -> &'a str {
        self.location_name.as_deref().unwrap_or(member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_models_load_and_hold_together() {
        let ec2 = Model::ec2().unwrap();
        assert_eq!(ec2.metadata.api_version, "2016-11-15");
        assert_eq!(ec2.metadata.protocol, "ec2");
        assert_eq!(ec2.namespace(), "http://ec2.amazonaws.com/doc/2016-11-15/");
        assert!(ec2.source.contains("Apache-2.0"));
        assert!(ec2.operations.contains_key("RunInstances"));
        let sts = Model::sts().unwrap();
        assert_eq!(sts.metadata.protocol, "query");
        assert_eq!(
            sts.operations["GetCallerIdentity"]
                .result_wrapper
                .as_deref(),
            Some("GetCallerIdentityResult")
        );
    }

    #[test]
    fn parameter_names_follow_botocores_rules() {
        let ec2 = Model::ec2().unwrap();
        let req = ec2.shape("DescribeInstancesRequest").unwrap();
        // locationName capitalised.
        assert_eq!(
            req.members["InstanceIds"].query_param("InstanceIds"),
            "InstanceId"
        );
        assert_eq!(req.members["DryRun"].query_param("DryRun"), "DryRun");
        assert_eq!(req.members["Filters"].query_param("Filters"), "Filter");
        // No locationName: the member name.
        assert_eq!(
            req.members["MaxResults"].query_param("MaxResults"),
            "MaxResults"
        );
        // A queryName wins over the locationName (`ipv6AddressesSet`).
        let eni = ec2.shape("InstanceNetworkInterfaceSpecification").unwrap();
        assert_eq!(
            eni.members["Ipv6Addresses"].query_param("Ipv6Addresses"),
            "Ipv6Addresses"
        );
        let run = ec2.shape("RunInstancesRequest").unwrap();
        assert_eq!(
            run.members["SecurityGroupIds"].query_param("SecurityGroupIds"),
            "SecurityGroupId"
        );
        assert!(run.members["ClientToken"].idempotency_token);
        let out = ec2.shape("DescribeInstancesResult").unwrap();
        assert_eq!(
            out.members["Reservations"].element("Reservations"),
            "reservationSet"
        );
    }
}
