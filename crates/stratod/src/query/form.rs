//! Request parameters to a value tree, by the model: the inverse of botocore's EC2
//! serializer. A member's parameter name is its `queryName`, else its capitalised
//! `locationName`, else its own name; structures nest with dots
//! (`Placement.AvailabilityZone`); lists are always flattened as `Prefix.N` from 1 and end at
//! the first missing index (`Filter.1.Value.2`). Indexes and integers are decimal whatever
//! their leading zeros, and list items keep their numeric order. A parameter the model does
//! not know is `UnknownParameter`; a value of the wrong type `InvalidParameterValue`; a
//! missing required member `MissingParameter`.

use std::collections::BTreeMap;

use base64::Engine;

use super::model::{Kind, Model, Shape};
use super::value::{parse_time, Value};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// Most parameters one request may carry.
pub const MAX_PARAMS: usize = 10_000;

/// Parameters sharing a dotted prefix.
#[derive(Debug, Default)]
struct Node<'a> {
    value: Option<&'a str>,
    children: BTreeMap<&'a str, Node<'a>>,
}

impl<'a> Node<'a> {
    fn insert(&mut self, key: &'a str, value: &'a str) -> ApiResult<()> {
        let mut node = self;
        for part in key.split('.') {
            node = node.children.entry(part).or_default();
        }
        if node.value.is_some() {
            return Err(ApiError::invalid(format!(
                "The parameter {key} is given more than once."
            )));
        }
        node.value = Some(value);
        Ok(())
    }
}

fn unknown(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::UnknownParameter,
        format!("The parameter {name} is not recognized"),
    )
}

fn bad_value(name: &str, value: &str, expected: &str) -> ApiError {
    ApiError::invalid(format!(
        "Value ({value}) for parameter {name} is invalid. Expected: '{expected}'."
    ))
}

/// Parses an operation's parameters (without `Action` and `Version`) by its input shape.
pub fn parse(model: &Model, input: &str, params: &[(String, String)]) -> ApiResult<Value> {
    if params.len() > MAX_PARAMS {
        return Err(ApiError::invalid(format!(
            "A request may carry at most {MAX_PARAMS} parameters."
        )));
    }
    let mut root = Node::default();
    for (k, v) in params {
        if k.is_empty() || k.split('.').any(str::is_empty) {
            return Err(unknown(k));
        }
        root.insert(k, v)?;
    }
    let shape = model
        .shape(input)
        .ok_or_else(|| ApiError::internal(format!("The model has no shape {input}.")))?;
    structure(model, shape, &root, "")
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn structure(model: &Model, shape: &Shape, node: &Node<'_>, path: &str) -> ApiResult<Value> {
    if node.value.is_some() {
        return Err(unknown(path));
    }
    let mut out = BTreeMap::new();
    for (&param, child) in &node.children {
        let here = join(path, param);
        let (member, r) = shape
            .members
            .iter()
            .find(|(m, r)| r.query_param(m) == param)
            .ok_or_else(|| unknown(&here))?;
        let s = model
            .shape(&r.shape)
            .ok_or_else(|| ApiError::internal(format!("The model has no shape {}.", r.shape)))?;
        out.insert(member.clone(), value(model, s, child, &here)?);
    }
    for req in &shape.required {
        if !out.contains_key(req) {
            let name = shape
                .members
                .get(req)
                .map(|r| r.query_param(req).into_owned())
                .unwrap_or_else(|| req.clone());
            return Err(ApiError::missing(&join(path, &name)));
        }
    }
    Ok(Value::Struct(out))
}

fn value(model: &Model, shape: &Shape, node: &Node<'_>, path: &str) -> ApiResult<Value> {
    match shape.kind {
        Kind::Structure => structure(model, shape, node, path),
        Kind::List => list(model, shape, node, path),
        Kind::Map => Err(unknown(path)),
        _ => {
            if let Some((k, _)) = node.children.iter().next() {
                return Err(unknown(&join(path, k)));
            }
            let Some(text) = node.value else {
                return Err(unknown(path));
            };
            scalar(shape.kind, text, path)
        }
    }
}

fn list(model: &Model, shape: &Shape, node: &Node<'_>, path: &str) -> ApiResult<Value> {
    if node.value.is_some() {
        return Err(unknown(path));
    }
    let Some(member) = &shape.member else {
        return Err(ApiError::internal(format!(
            "List {path} has no member shape."
        )));
    };
    let item = model
        .shape(&member.shape)
        .ok_or_else(|| ApiError::internal(format!("The model has no shape {}.", member.shape)))?;
    let mut indexed = BTreeMap::new();
    for (&k, child) in &node.children {
        // Decimal, whatever the leading zeros; never 0.
        let n: u32 = match k.parse() {
            Ok(n) if n >= 1 && k.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(unknown(&join(path, k))),
        };
        if indexed.insert(n, (k, child)).is_some() {
            return Err(ApiError::invalid(format!(
                "The parameter {} is given more than once.",
                join(path, k)
            )));
        }
    }
    let mut out = Vec::new();
    // Items run from 1 and end at the first missing index, as EC2 reads them.
    for (expect, (n, (k, child))) in (1u32..).zip(indexed) {
        if n != expect {
            break;
        }
        out.push(value(model, item, child, &join(path, k))?);
    }
    Ok(Value::List(out))
}

fn scalar(kind: Kind, text: &str, path: &str) -> ApiResult<Value> {
    Ok(match kind {
        Kind::String => Value::Str(text.to_string()),
        Kind::Integer => {
            let n: i64 = text.parse().map_err(|_| bad_value(path, text, "integer"))?;
            i32::try_from(n).map_err(|_| bad_value(path, text, "integer"))?;
            Value::Int(n)
        }
        Kind::Long => Value::Int(text.parse().map_err(|_| bad_value(path, text, "long"))?),
        Kind::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad_value(path, text, "boolean")),
        },
        Kind::Double | Kind::Float => {
            let f: f64 = text.parse().map_err(|_| bad_value(path, text, "number"))?;
            if !f.is_finite() {
                return Err(bad_value(path, text, "number"));
            }
            Value::Float(f)
        }
        Kind::Timestamp => {
            Value::Time(parse_time(text).ok_or_else(|| bad_value(path, text, "timestamp"))?)
        }
        Kind::Blob => Value::Blob(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| bad_value(path, text, "base64"))?,
        ),
        Kind::Structure | Kind::List | Kind::Map => return Err(unknown(path)),
    })
}

/// Splits an `application/x-www-form-urlencoded` body or query string into decoded pairs
/// (`+` is a space).
pub fn decode_pairs(text: &str) -> ApiResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for part in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((unescape(k)?, unescape(v)?));
    }
    Ok(out)
}

fn unescape(s: &str) -> ApiResult<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(malformed)?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| malformed())
}

fn malformed() -> ApiError {
    ApiError::new(
        ErrorCode::MalformedQueryString,
        "The query string is not well formed.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &str) -> Vec<(String, String)> {
        decode_pairs(s).unwrap()
    }

    fn describe(s: &str) -> ApiResult<Value> {
        parse(
            &Model::ec2().unwrap(),
            "DescribeInstancesRequest",
            &pairs(s),
        )
    }

    #[test]
    fn lists_structures_and_booleans() {
        let v = describe(
            "InstanceId.1=i-1&InstanceId.2=i-2&DryRun=true&Filter.1.Name=instance-state-name\
             &Filter.1.Value.1=running&Filter.1.Value.2=stopped&MaxResults=5",
        )
        .unwrap();
        assert_eq!(v.strs("InstanceIds"), ["i-1", "i-2"]);
        assert_eq!(v.bool("DryRun"), Some(true));
        assert_eq!(v.int("MaxResults"), Some(5));
        let f = &v.items("Filters")[0];
        assert_eq!(f.str("Name"), "instance-state-name");
        assert_eq!(f.strs("Values"), ["running", "stopped"]);
    }

    #[test]
    fn indexes_sort_as_numbers_and_integers_are_decimal() {
        let q: String = (1..=12)
            .map(|n| format!("InstanceId.{n}=i-{n}&"))
            .collect::<String>()
            + "MaxResults=010";
        let v = describe(&q).unwrap();
        let ids = v.strs("InstanceIds");
        assert_eq!(ids.len(), 12);
        assert_eq!(ids[1], "i-2");
        assert_eq!(ids[9], "i-10");
        assert_eq!(v.int("MaxResults"), Some(10));
        // A leading zero in an index is still the same index.
        let v = describe("InstanceId.01=a&InstanceId.2=b").unwrap();
        assert_eq!(v.strs("InstanceIds"), ["a", "b"]);
        assert!(describe("InstanceId.1=a&InstanceId.01=b").is_err());
    }

    #[test]
    fn a_list_ends_at_its_first_gap() {
        let v = describe("InstanceId.1=a&InstanceId.2=b&InstanceId.4=d").unwrap();
        assert_eq!(v.strs("InstanceIds"), ["a", "b"]);
        let v = describe("InstanceId.2=b").unwrap();
        assert!(v.strs("InstanceIds").is_empty());
    }

    #[test]
    fn unknown_parameters_are_named() {
        for (q, name) in [
            ("Bogus=1", "Bogus"),
            ("InstanceId=i-1", "InstanceId"),
            ("InstanceId.0=i-1", "InstanceId.0"),
            ("InstanceId.x=i-1", "InstanceId.x"),
            ("Filter.1.Nam=x", "Filter.1.Nam"),
            ("MaxResults.1=5", "MaxResults.1"),
            ("instanceId.1=i-1", "instanceId"),
        ] {
            let e = describe(q).unwrap_err();
            assert_eq!(e.code, ErrorCode::UnknownParameter, "{q}");
            assert!(e.message.contains(name), "{q}: {}", e.message);
        }
    }

    #[test]
    fn values_of_the_wrong_type_are_refused() {
        for q in ["MaxResults=five", "DryRun=yes", "MaxResults=99999999999"] {
            assert_eq!(
                describe(q).unwrap_err().code,
                ErrorCode::InvalidParameterValue,
                "{q}"
            );
        }
    }

    #[test]
    fn required_members_and_nested_names() {
        let m = Model::ec2().unwrap();
        let e = parse(&m, "RunInstancesRequest", &pairs("MinCount=1")).unwrap_err();
        assert_eq!(e.code, ErrorCode::MissingParameter);
        assert!(e.message.contains("MaxCount"));
        let v = parse(
            &m,
            "RunInstancesRequest",
            &pairs(
                "MinCount=1&MaxCount=1&ImageId=ami-1&Placement.AvailabilityZone=home-1a\
                 &TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=Name\
                 &TagSpecification.1.Tag.1.Value=web&SecurityGroupId.1=sg-1\
                 &IamInstanceProfile.Name=role&UserData=aGk%3D\
                 &BlockDeviceMapping.1.DeviceName=%2Fdev%2Fvda&BlockDeviceMapping.1.Ebs.VolumeSize=8",
            ),
        )
        .unwrap();
        assert_eq!(
            v.get("Placement").unwrap().str("AvailabilityZone"),
            "home-1a"
        );
        let ts = &v.items("TagSpecifications")[0];
        assert_eq!(ts.str("ResourceType"), "instance");
        assert_eq!(ts.items("Tags")[0].str("Value"), "web");
        assert_eq!(v.strs("SecurityGroupIds"), ["sg-1"]);
        assert_eq!(v.get("IamInstanceProfile").unwrap().str("Name"), "role");
        assert_eq!(v.str("UserData"), "aGk=");
        let bdm = &v.items("BlockDeviceMappings")[0];
        assert_eq!(bdm.str("DeviceName"), "/dev/vda");
        assert_eq!(bdm.get("Ebs").unwrap().int("VolumeSize"), Some(8));
    }

    #[test]
    fn blobs_are_base64() {
        let m = Model::ec2().unwrap();
        let v = parse(
            &m,
            "ImportKeyPairRequest",
            &pairs("KeyName=k&PublicKeyMaterial=c3NoLWVkMjU1MTkgQQ%3D%3D"),
        )
        .unwrap();
        assert_eq!(v.blob("PublicKeyMaterial"), Some(&b"ssh-ed25519 A"[..]));
        let e = parse(
            &m,
            "ImportKeyPairRequest",
            &pairs("KeyName=k&PublicKeyMaterial=!!"),
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    }

    #[test]
    fn form_decoding() {
        assert_eq!(
            pairs("a=b+c&d=%2Fx%3D&e"),
            [
                ("a".to_string(), "b c".to_string()),
                ("d".into(), "/x=".into()),
                ("e".into(), "".into())
            ]
        );
        assert_eq!(
            decode_pairs("a=%zz").unwrap_err().code,
            ErrorCode::MalformedQueryString
        );
        assert!(decode_pairs("a=%ff").is_err());
        assert_eq!(
            describe("A..B=1").unwrap_err().code,
            ErrorCode::UnknownParameter
        );
    }
}
