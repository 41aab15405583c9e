//! The AWS CLI shorthand syntax, parsed into a JSON value so that shorthand and JSON
//! arguments share one typed conversion.
//!
//! ```text
//! params   = keyval *("," keyval)
//! keyval   = key "=" values
//! values   = "[" [value *("," value)] "]" / "{" params "}" / scalar *("," scalar)
//! value    = "{" params "}" / scalar
//! scalar   = unquoted / 'single quoted' / "double quoted"   (backslash escapes a char)
//! ```
//!
//! As in the AWS CLI, `Values=a,b` is the list `["a","b"]` while `Value=a` is the string
//! `"a"`; a comma followed by `key=` starts the next key instead of another value.
//! Every scalar stays a string; the typed conversion decides what it must be.

use serde_json::{Map, Value};

/// Why a shorthand argument could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at character {at}")]
pub struct SyntaxError {
    /// What was expected or found.
    pub what: String,
    /// 1-based character position of the problem.
    pub at: usize,
}

/// Parses `Key=value,Other=[{A=b}]` into a JSON object.
pub fn parse(input: &str) -> Result<Value, SyntaxError> {
    let mut parser = Parser {
        chars: input.chars().collect(),
        pos: 0,
    };
    let object = parser.params(None)?;
    parser.skip_ws();
    match parser.peek() {
        None => Ok(Value::Object(object)),
        Some(c) => Err(parser.error(format!("unexpected {c:?}"))),
    }
}

/// Characters allowed in a key (as the AWS CLI allows).
fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '#' | '/' | ':')
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn error(&self, what: String) -> SyntaxError {
        SyntaxError {
            what,
            at: self.pos + 1,
        }
    }

    fn expect(&mut self, want: char) -> Result<(), SyntaxError> {
        self.skip_ws();
        match self.peek() {
            Some(c) if c == want => {
                self.pos += 1;
                Ok(())
            }
            Some(c) => Err(self.error(format!("expected {want:?}, found {c:?}"))),
            None => Err(self.error(format!("expected {want:?}, found the end"))),
        }
    }

    /// `keyval *("," keyval)`, up to the end of input or `close`.
    fn params(&mut self, close: Option<char>) -> Result<Map<String, Value>, SyntaxError> {
        let mut object = Map::new();
        loop {
            let key = self.key()?;
            self.expect('=')?;
            let value = self.values(close)?;
            if object.insert(key.clone(), value).is_some() {
                return Err(self.error(format!("duplicate key {key:?}")));
            }
            self.skip_ws();
            if self.peek() == Some(',') {
                self.pos += 1;
            } else {
                return Ok(object);
            }
        }
    }

    fn key(&mut self) -> Result<String, SyntaxError> {
        self.skip_ws();
        let start = self.pos;
        while self.peek().is_some_and(is_key_char) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(match self.peek() {
                Some(c) => self.error(format!("expected a key, found {c:?}")),
                None => self.error("expected a key, found the end".into()),
            });
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }

    /// Whether the text after the current position reads `key=`.
    fn at_key(&self) -> bool {
        let mut pos = self.pos;
        while self.chars.get(pos).is_some_and(|c| c.is_whitespace()) {
            pos += 1;
        }
        let start = pos;
        while self.chars.get(pos).copied().is_some_and(is_key_char) {
            pos += 1;
        }
        pos > start && self.chars.get(pos) == Some(&'=')
    }

    /// The value of a key: a list, a hash, or one or more comma-separated scalars.
    fn values(&mut self, close: Option<char>) -> Result<Value, SyntaxError> {
        self.skip_ws();
        match self.peek() {
            Some('[') => self.list(),
            Some('{') => self.hash(),
            _ => {
                let first = self.scalar(close)?;
                let mut rest = Vec::new();
                while self.peek() == Some(',') {
                    self.pos += 1;
                    if self.at_key() {
                        // Hand the comma back to `params`.
                        self.pos -= 1;
                        break;
                    }
                    self.skip_ws();
                    if self.peek().is_none() || self.peek() == close {
                        return Err(self.error("expected a value after ','".into()));
                    }
                    rest.push(self.scalar(close)?);
                }
                if rest.is_empty() {
                    Ok(Value::String(first))
                } else {
                    rest.insert(0, first);
                    Ok(Value::Array(rest.into_iter().map(Value::String).collect()))
                }
            }
        }
    }

    fn list(&mut self) -> Result<Value, SyntaxError> {
        self.expect('[')?;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            let item = if self.peek() == Some('{') {
                self.hash()?
            } else {
                Value::String(self.scalar(Some(']'))?)
            };
            items.push(item);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error("expected ',' or ']'".into())),
            }
        }
    }

    fn hash(&mut self) -> Result<Value, SyntaxError> {
        self.expect('{')?;
        let object = self.params(Some('}'))?;
        self.expect('}')?;
        Ok(Value::Object(object))
    }

    /// A single value, ending at a comma, at `close`, or at the end.
    fn scalar(&mut self, close: Option<char>) -> Result<String, SyntaxError> {
        self.skip_ws();
        if let Some(quote @ ('\'' | '"')) = self.peek() {
            return self.quoted(quote);
        }
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if c == ',' || Some(c) == close {
                break;
            }
            self.pos += 1;
            if c == '\\' {
                match self.peek() {
                    Some(escaped) => {
                        out.push(escaped);
                        self.pos += 1;
                    }
                    None => return Err(self.error("nothing to escape after '\\'".into())),
                }
            } else {
                out.push(c);
            }
        }
        Ok(out.trim_end().to_owned())
    }

    fn quoted(&mut self, quote: char) -> Result<String, SyntaxError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(SyntaxError {
                        what: format!("unterminated {quote} quote"),
                        at: open + 1,
                    })
                }
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') if quote == '"' => {
                    self.pos += 1;
                    if let Some(escaped) = self.peek() {
                        out.push(escaped);
                        self.pos += 1;
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_scalars_and_csv_lists() {
        assert_eq!(
            parse("Name=instance-state-name,Values=running,stopped").unwrap(),
            json!({"Name": "instance-state-name", "Values": ["running", "stopped"]})
        );
        assert_eq!(
            parse("Key=a,Value=b").unwrap(),
            json!({"Key": "a", "Value": "b"})
        );
        assert_eq!(
            parse("Name=tag:Role,Values=web").unwrap()["Name"],
            "tag:Role"
        );
    }

    #[test]
    fn parses_nested_lists_and_hashes() {
        assert_eq!(
            parse("Add=[{UserId=123456789012},{Group=all}],Remove=[]").unwrap(),
            json!({"Add": [{"UserId": "123456789012"}, {"Group": "all"}], "Remove": []})
        );
        assert_eq!(
            parse("DeviceName=/dev/vdb,Ebs={VolumeSize=1,DeleteOnTermination=true}").unwrap(),
            json!({"DeviceName": "/dev/vdb", "Ebs": {"VolumeSize": "1",
                   "DeleteOnTermination": "true"}})
        );
        assert_eq!(
            parse("ResourceType=instance,Tags=[{Key=a,Value=b},{Key=c,Value=d}]").unwrap(),
            json!({"ResourceType": "instance",
                   "Tags": [{"Key": "a", "Value": "b"}, {"Key": "c", "Value": "d"}]})
        );
        assert_eq!(parse("L=[a, b ,c]").unwrap(), json!({"L": ["a", "b", "c"]}));
    }

    #[test]
    fn handles_empty_quoted_and_escaped_values() {
        assert_eq!(parse("NoDevice=").unwrap(), json!({"NoDevice": ""}));
        assert_eq!(
            parse(r#"Key=a,Value="x, y""#).unwrap(),
            json!({"Key": "a", "Value": "x, y"})
        );
        assert_eq!(parse(r"Value=a\,b").unwrap(), json!({"Value": "a,b"}));
        assert_eq!(parse("Value='it''").unwrap_err().at, 11);
        assert_eq!(parse("Value=a=b").unwrap(), json!({"Value": "a=b"}));
    }

    #[test]
    fn rejects_malformed_input() {
        for bad in [
            "",
            "Key",
            "=value",
            "Key=a,",
            "Key=a,Key=b",
            "Tags=[{Key=a}",
            "Tags=[{Key=a}}",
            "Tags={Key=a",
            "Add=[{UserId=1}]x",
            "Value='open",
            "Value=a\\",
            "L=[a,b",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn reports_the_position() {
        let err = parse("Tags=[{Key=a}").unwrap_err();
        assert_eq!(err.to_string(), "expected ',' or ']' at character 14");
        // A bare word after a comma is one more value, as in the AWS CLI.
        assert_eq!(
            parse("Key=a,Value").unwrap(),
            json!({"Key": ["a", "Value"]})
        );
    }
}
