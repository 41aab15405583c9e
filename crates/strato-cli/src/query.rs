//! `--query`: a small subset of the AWS CLI's JMESPath, enough for the common idioms —
//! `KeyMaterial`, `Instances[0].InstanceId`, `Reservations[].Instances[].InstanceId`.
//! A path is names separated by dots, each optionally followed by `[N]` (one element) or
//! `[]` (every element: what follows applies to each, and the results form a list).

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
    /// Every element of an array.
    Each,
}

/// A parsed `--query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    steps: Vec<Step>,
    text: String,
}

/// Parses a query for clap.
pub fn parse(raw: &str) -> Result<Query, String> {
    let bad =
        |why: &str| format!("unsupported query {raw:?}: {why} (use Name, A.B, A[0].B or A[].B)");
    let mut steps = Vec::new();
    for part in raw.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if name.is_empty() && (steps.is_empty() || rest.is_empty()) {
            return Err(bad("empty name"));
        }
        if !name.is_empty() {
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(bad("names are letters, digits, - and _"));
            }
            steps.push(Step::Key(name.to_string()));
        }
        while !rest.is_empty() {
            let close = rest.find(']').ok_or_else(|| bad("missing ]"))?;
            let inside = &rest[1..close];
            steps.push(if inside.is_empty() {
                Step::Each
            } else {
                Step::Index(inside.parse().map_err(|_| bad("an index is a number"))?)
            });
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(bad("unexpected text after ]"));
            }
        }
    }
    Ok(Query {
        steps,
        text: raw.to_string(),
    })
}

impl Query {
    /// The part of `value` the query selects (null when absent).
    pub fn select(&self, value: &Value) -> Value {
        select(&self.steps, value)
    }
}

fn select(steps: &[Step], value: &Value) -> Value {
    let Some((first, rest)) = steps.split_first() else {
        return value.clone();
    };
    match first {
        Step::Key(k) => value.get(k).map_or(Value::Null, |v| select(rest, v)),
        Step::Index(i) => value.get(*i).map_or(Value::Null, |v| select(rest, v)),
        Step::Each => match value {
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    match select(rest, item) {
                        Value::Null => {}
                        // Nested projections flatten, as in JMESPath.
                        Value::Array(inner) if rest.contains(&Step::Each) => out.extend(inner),
                        v => out.push(v),
                    }
                }
                Value::Array(out)
            }
            _ => Value::Null,
        },
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
        for bad in ["", "a..b", "a[x]", "a[0", "a b", "a[0]b", "[0]"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
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
