//! A value tree to a response document, by the model: element names are the members'
//! `locationName`s (lowerCamel in EC2: `reservationSet`, `instanceState`), lists are
//! `<name><item>…</item></name>` (an empty list `<name/>`), booleans `true`/`false`, times
//! ISO 8601, blobs base64. EC2 answers without a Result wrapper and with `requestId`
//! first; the awsQuery protocol (STS) wraps members in `<OpResult>` and ends with
//! `ResponseMetadata`. Errors are EC2's `<Response><Errors><Error>` document or awsQuery's
//! `<ErrorResponse>`.

use std::fmt::Write;

use base64::Engine;

use super::model::{Kind, Model, Shape};
use super::value::{iso8601, Value};

/// A value that does not fit the model: a mistake of the action's mapping, not of the
/// request.
#[derive(Debug, thiserror::Error)]
#[error("response does not fit the model at {0}: {1}")]
pub struct FitError(pub String, pub &'static str);

const PROLOG: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// The document answering operation `op` of `model` with `value`.
pub fn response(
    model: &Model,
    op: &str,
    value: &Value,
    request_id: &str,
) -> Result<String, FitError> {
    let o = model
        .operations
        .get(op)
        .ok_or_else(|| FitError(op.to_string(), "no such operation"))?;
    let mut body = String::new();
    if let Some(out) = &o.output {
        let shape = model
            .shape(out)
            .ok_or_else(|| FitError(out.clone(), "no such shape"))?;
        members(model, shape, value, out, &mut body)?;
    }
    let ns = model.namespace();
    let mut doc = String::with_capacity(body.len() + 256);
    doc.push_str(PROLOG);
    if model.metadata.protocol == "ec2" {
        let _ = write!(
            doc,
            r#"<{op}Response xmlns="{ns}"><requestId>{}</requestId>{body}</{op}Response>"#,
            escape(request_id)
        );
    } else {
        let wrapper = o
            .result_wrapper
            .clone()
            .unwrap_or_else(|| format!("{op}Result"));
        let _ = write!(
            doc,
            r#"<{op}Response xmlns="{ns}"><{wrapper}>{body}</{wrapper}><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{op}Response>"#,
            escape(request_id)
        );
    }
    Ok(doc)
}

/// EC2's error document.
pub fn ec2_error(code: &str, message: &str, request_id: &str) -> String {
    format!(
        "{PROLOG}<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
        escape(code),
        escape(message),
        escape(request_id)
    )
}

/// The awsQuery protocol's error document (STS); `sender` tells the client's fault from the
/// service's.
pub fn query_error(code: &str, message: &str, request_id: &str, sender: bool) -> String {
    format!(
        "{PROLOG}<ErrorResponse><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        if sender { "Sender" } else { "Receiver" },
        escape(code),
        escape(message),
        escape(request_id)
    )
}

fn members(
    model: &Model,
    shape: &Shape,
    value: &Value,
    path: &str,
    out: &mut String,
) -> Result<(), FitError> {
    let Value::Struct(map) = value else {
        return Err(FitError(path.to_string(), "expected a structure"));
    };
    for name in map.keys() {
        if !shape.members.contains_key(name) {
            return Err(FitError(format!("{path}.{name}"), "no such member"));
        }
    }
    // The model's member order (sorted by name) keeps documents stable.
    for (name, r) in &shape.members {
        let Some(v) = map.get(name) else { continue };
        if matches!(v, Value::Null) {
            continue;
        }
        let s = model
            .shape(&r.shape)
            .ok_or_else(|| FitError(r.shape.clone(), "no such shape"))?;
        element(model, s, r.element(name), v, &format!("{path}.{name}"), out)?;
    }
    Ok(())
}

fn element(
    model: &Model,
    shape: &Shape,
    tag: &str,
    value: &Value,
    path: &str,
    out: &mut String,
) -> Result<(), FitError> {
    match shape.kind {
        Kind::Structure => {
            let _ = write!(out, "<{tag}>");
            members(model, shape, value, path, out)?;
            let _ = write!(out, "</{tag}>");
        }
        Kind::List => {
            let Value::List(items) = value else {
                return Err(FitError(path.to_string(), "expected a list"));
            };
            let m = shape
                .member
                .as_ref()
                .ok_or_else(|| FitError(path.to_string(), "list without a member"))?;
            let ms = model
                .shape(&m.shape)
                .ok_or_else(|| FitError(m.shape.clone(), "no such shape"))?;
            let item = m.location_name.as_deref().unwrap_or("item");
            if shape.flattened {
                for v in items {
                    element(model, ms, item, v, path, out)?;
                }
            } else if items.is_empty() {
                let _ = write!(out, "<{tag}/>");
            } else {
                let _ = write!(out, "<{tag}>");
                for v in items {
                    element(model, ms, item, v, path, out)?;
                }
                let _ = write!(out, "</{tag}>");
            }
        }
        Kind::Map => return Err(FitError(path.to_string(), "maps are not served")),
        kind => {
            let text = scalar(kind, value)
                .ok_or_else(|| FitError(path.to_string(), "wrong scalar type"))?;
            let _ = write!(out, "<{tag}>{}</{tag}>", escape(&text));
        }
    }
    Ok(())
}

fn scalar(kind: Kind, v: &Value) -> Option<String> {
    Some(match (kind, v) {
        (Kind::String, Value::Str(s)) => s.clone(),
        (Kind::Integer | Kind::Long, Value::Int(i)) => i.to_string(),
        (Kind::Double | Kind::Float, Value::Float(f)) => f.to_string(),
        (Kind::Double | Kind::Float, Value::Int(i)) => i.to_string(),
        (Kind::Boolean, Value::Bool(b)) => b.to_string(),
        (Kind::Timestamp, Value::Time(t)) => iso8601(*t),
        (Kind::Blob, Value::Blob(b)) => base64::engine::general_purpose::STANDARD.encode(b),
        _ => return None,
    })
}

/// Escapes text for an element's content or an attribute; characters XML 1.0 cannot carry
/// (most control characters) become U+FFFD.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s
        .chars()
        .any(|c| matches!(c, '<' | '>' | '&' | '"' | '\'' | '\r') || forbidden(c))
    {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            c if forbidden(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out.into()
}

fn forbidden(c: char) -> bool {
    (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec2_lists_are_item_sets_without_a_result_wrapper() {
        let m = Model::ec2().unwrap();
        let v = Value::obj([
            (
                "Reservations",
                Value::list([Value::obj([
                    ("ReservationId", "r-1".into()),
                    (
                        "Instances",
                        Value::list([Value::obj([
                            ("InstanceId", "i-1".into()),
                            (
                                "State",
                                Value::obj([("Code", 16i64.into()), ("Name", "running".into())]),
                            ),
                            ("LaunchTime", Value::Time(0)),
                            ("EbsOptimized", false.into()),
                            ("SecurityGroups", Value::list(Vec::<Value>::new())),
                            (
                                "Tags",
                                Value::list([Value::obj([
                                    ("Key", "a<b".into()),
                                    ("Value", "".into()),
                                ])]),
                            ),
                        ])]),
                    ),
                ])]),
            ),
            ("NextToken", Value::Null),
        ]);
        let doc = response(&m, "DescribeInstances", &v, "req-1").unwrap();
        assert!(doc.starts_with(
            r#"<?xml version="1.0" encoding="UTF-8"?><DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>req-1</requestId><reservationSet><item>"#
        ), "{doc}");
        for part in [
            "<instancesSet><item>",
            "<instanceId>i-1</instanceId>",
            "<instanceState><code>16</code><name>running</name></instanceState>",
            "<launchTime>1970-01-01T00:00:00.000Z</launchTime>",
            "<ebsOptimized>false</ebsOptimized>",
            "<groupSet/>",
            "<tagSet><item><key>a&lt;b</key><value></value></item></tagSet>",
            "<reservationId>r-1</reservationId>",
        ] {
            assert!(doc.contains(part), "{part} in {doc}");
        }
        assert!(!doc.contains("nextToken"));
    }

    #[test]
    fn values_that_do_not_fit_are_caught() {
        let m = Model::ec2().unwrap();
        let bad = Value::obj([("Reservation", Value::list(Vec::<Value>::new()))]);
        assert!(response(&m, "DescribeInstances", &bad, "r").is_err());
        let bad = Value::obj([("NextToken", 5i64.into())]);
        assert!(response(&m, "DescribeInstances", &bad, "r").is_err());
    }

    #[test]
    fn sts_wraps_its_result() {
        let m = Model::sts().unwrap();
        let v = Value::obj([("Account", "100000000001".into())]);
        let doc = response(&m, "GetCallerIdentity", &v, "id").unwrap();
        assert!(doc.contains(r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Account>100000000001</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>id</RequestId></ResponseMetadata></GetCallerIdentityResponse>"#), "{doc}");
    }

    #[test]
    fn errors_and_escaping() {
        let e = ec2_error("InvalidInstanceID.NotFound", "no 'i-1' & <x>", "r");
        assert!(e.ends_with("<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>no &apos;i-1&apos; &amp; &lt;x&gt;</Message></Error></Errors><RequestID>r</RequestID></Response>"));
        assert!(query_error("X", "y", "r", true).contains("<Type>Sender</Type>"));
        assert_eq!(escape("a\u{1}b"), "a\u{FFFD}b");
    }
}
