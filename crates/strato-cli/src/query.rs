//! `--query`: JMESPath, as the AWS CLI's — paths (`Reservations[].Instances[].InstanceId`),
//! filters (`Images[?State=='available']`), functions (`length(Volumes)`), multiselect lists
//! (`Instances[].[InstanceId, State.Name]`) and hashes (`Instances[].{ID: InstanceId}`).
//! The expression is checked when the command line is parsed and runs on the command's
//! JSON result.

use serde_json::Value;

/// A parsed `--query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    text: String,
}

/// Parses a query for clap.
pub fn parse(raw: &str) -> Result<Query, String> {
    if raw.trim().is_empty() {
        return Err("an empty query selects nothing".into());
    }
    jmespath::compile(raw).map_err(|e| format!("invalid JMESPath expression: {}", e.reason))?;
    Ok(Query {
        text: raw.to_string(),
    })
}

impl Query {
    /// The part of `value` the query selects (null when absent or on a type error, as the
    /// AWS CLI prints for an expression that selects nothing).
    pub fn select(&self, value: &Value) -> Value {
        // Compiled again here: a compiled expression is not Send, which clap's values must be.
        let Ok(expr) = jmespath::compile(&self.text) else {
            return Value::Null;
        };
        expr.search(value)
            .ok()
            .and_then(|v| serde_json::to_value(&*v).ok())
            .unwrap_or(Value::Null)
    }
}

/// The AWS CLI's text form of a value: strings bare, lists tab-separated (lists of lists
/// or objects one line each), `None` for nothing.
pub fn text(value: &Value) -> String {
    let mut out = String::new();
    line(value, &mut out);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        other => other.to_string(),
    }
}

fn line(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) if items.iter().all(|i| !i.is_array() && !i.is_object()) => {
            out.push_str(&items.iter().map(scalar).collect::<Vec<_>>().join("\t"));
            out.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|i| line(i, out)),
        Value::Object(map) => {
            let scalars: Vec<String> = map
                .values()
                .filter(|v| !v.is_array() && !v.is_object())
                .map(scalar)
                .collect();
            if !scalars.is_empty() {
                out.push_str(&scalars.join("\t"));
                out.push('\n');
            }
            map.values()
                .filter(|v| v.is_array() || v.is_object())
                .for_each(|v| line(v, out));
        }
        v => {
            out.push_str(&scalar(v));
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
    }
}

impl std::fmt::Display for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_indexes_and_projections() {
        let v = json!({
            "KeyMaterial": "-----BEGIN\nx\n-----END\n",
            "Reservations": [
                {"Instances": [{"InstanceId": "i-1"}, {"InstanceId": "i-2"}]},
                {"Instances": [{"InstanceId": "i-3"}]}
            ]
        });
        let q = |s: &str| parse(s).unwrap().select(&v);
        assert_eq!(q("KeyMaterial"), "-----BEGIN\nx\n-----END\n");
        assert_eq!(q("Reservations[1].Instances[0].InstanceId"), "i-3");
        assert_eq!(
            q("Reservations[].Instances[].InstanceId"),
            json!(["i-1", "i-2", "i-3"])
        );
        assert_eq!(
            q("Reservations[0].Instances[].InstanceId"),
            json!(["i-1", "i-2"])
        );
        assert_eq!(q("Nope"), Value::Null);
        assert_eq!(q("Reservations[9]"), Value::Null);
        for bad in ["", " ", "a..b", "a[x]", "a[0", "a b", "a[0]b", "x["] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn multiselect_filters_and_functions() {
        let v = json!({"Instances": [
            {"InstanceId": "i-1", "State": {"Name": "running"}, "Tags": [{"Key": "Name", "Value": "web"}]},
            {"InstanceId": "i-2", "State": {"Name": "stopped"}, "Tags": []}
        ]});
        let q = |s: &str| parse(s).unwrap().select(&v);
        assert_eq!(
            q("Instances[].[InstanceId, State.Name]"),
            json!([["i-1", "running"], ["i-2", "stopped"]])
        );
        assert_eq!(
            q("Instances[].{ID: InstanceId, State: State.Name}"),
            json!([{"ID": "i-1", "State": "running"}, {"ID": "i-2", "State": "stopped"}])
        );
        assert_eq!(
            q("Instances[?State.Name=='running'].InstanceId"),
            json!(["i-1"])
        );
        assert_eq!(q("length(Instances)"), json!(2));
        assert_eq!(
            q("Instances[0].Tags[?Key=='Name'].Value | [0]"),
            json!("web")
        );
        // Text output of a multiselect: one line per row, as the AWS CLI prints.
        assert_eq!(
            text(&q("Instances[].[InstanceId, State.Name]")),
            "i-1\trunning\ni-2\tstopped\n"
        );
        assert_eq!(
            text(&q("Instances[].{ID: InstanceId, State: State.Name}")),
            "i-1\trunning\ni-2\tstopped\n"
        );
    }

    #[test]
    fn text_output() {
        assert_eq!(text(&json!("-----BEGIN\nx\n")), "-----BEGIN\nx\n");
        assert_eq!(text(&json!("i-1")), "i-1\n");
        assert_eq!(text(&json!(["i-1", "i-2"])), "i-1\ti-2\n");
        assert_eq!(text(&json!([["a", 1], ["b", true]])), "a\t1\nb\tTrue\n");
        assert_eq!(text(&Value::Null), "None\n");
    }
}
