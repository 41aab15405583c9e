//! Typed access to the keys of one parsed object, shared by every structured argument.

use serde_json::{Map, Value};

use super::ParseError;

/// The keys of one object, taken one by one; whatever is left over is an unknown key.
pub struct Fields {
    map: Map<String, Value>,
    context: &'static str,
}

impl Fields {
    /// Wraps `value`, which must be an object; `context` names it in errors.
    pub fn new(value: Value, context: &'static str) -> Result<Self, ParseError> {
        match value {
            Value::Object(map) => Ok(Self { map, context }),
            other => Err(ParseError::Invalid {
                context,
                message: format!("expected an object, found {other}"),
            }),
        }
    }

    /// Removes and returns `key`, whatever its type.
    pub fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key)
    }

    /// The error for a required `key` that is absent.
    pub fn missing(&self, key: &'static str) -> ParseError {
        ParseError::Missing {
            key,
            context: self.context,
        }
    }

    /// An error about this object.
    pub fn invalid(&self, message: &str) -> ParseError {
        ParseError::Invalid {
            context: self.context,
            message: message.to_owned(),
        }
    }

    fn wrong_type(&self, key: &str, expected: &str, found: &Value) -> ParseError {
        self.invalid(&format!("{key} must be {expected}, found {found}"))
    }

    /// An optional string; numbers and booleans are taken as written.
    pub fn string(&mut self, key: &str) -> Result<Option<String>, ParseError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(other) => Err(self.wrong_type(key, "a string", &other)),
        }
    }

    /// A string that must be present and non-empty.
    pub fn required_string(&mut self, key: &'static str) -> Result<String, ParseError> {
        match self.string(key)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(self.missing(key)),
        }
    }

    /// An optional boolean: JSON `true`/`false` or the strings `true`/`false`.
    pub fn bool(&mut self, key: &str) -> Result<Option<bool>, ParseError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(other) => Err(self.wrong_type(key, "true or false", &other)),
        }
    }

    /// An optional integer: a JSON number or a numeric string.
    pub fn int(&mut self, key: &str) -> Result<Option<i64>, ParseError> {
        let parsed = match self.take(key) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_i64().ok_or(Value::Number(n)),
            Some(Value::String(s)) => s.trim().parse().map_err(|_| Value::String(s)),
            Some(other) => Err(other),
        };
        parsed
            .map(Some)
            .map_err(|found| self.wrong_type(key, "an integer", &found))
    }

    /// An optional integer that must fit in 32 bits.
    pub fn int32(&mut self, key: &str) -> Result<Option<i32>, ParseError> {
        match self.int(key)? {
            None => Ok(None),
            Some(n) => i32::try_from(n)
                .map(Some)
                .map_err(|_| self.invalid(&format!("{key} {n} is out of range"))),
        }
    }

    /// A list of scalars; a single scalar is a list of one.
    pub fn strings(&mut self, key: &str) -> Result<Vec<String>, ParseError> {
        let items = match self.take(key) {
            None => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(single) => vec![single],
        };
        items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                Value::Number(n) => Ok(n.to_string()),
                Value::Bool(b) => Ok(b.to_string()),
                other => Err(self.wrong_type(key, "a list of strings", &other)),
            })
            .collect()
    }

    /// A list of objects; a single object is a list of one.
    pub fn objects(&mut self, key: &str) -> Result<Vec<Value>, ParseError> {
        Ok(match self.take(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(single) => vec![single],
        })
    }

    /// Fails on the first key nobody took.
    pub fn finish(&self) -> Result<(), ParseError> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(key) => Err(ParseError::UnknownKey {
                key: key.clone(),
                context: self.context,
            }),
        }
    }
}
