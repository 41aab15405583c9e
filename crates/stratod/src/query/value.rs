//! The codec's value tree: a request's parameters once parsed by the model, and a
//! response's members before they are written as XML. Member names are the model's (as
//! boto3 spells them: `InstanceIds`, `Reservations`), never the wire's.

use std::collections::BTreeMap;

/// A parsed parameter or a response member.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Absent (a response member that is left out).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer or long.
    Int(i64),
    /// A double or float.
    Float(f64),
    /// Text.
    Str(String),
    /// Bytes (base64 on the wire).
    Blob(Vec<u8>),
    /// A point in time, Unix seconds.
    Time(i64),
    /// A list.
    List(Vec<Value>),
    /// A structure's members by name.
    Struct(BTreeMap<String, Value>),
}

impl Value {
    /// A structure from its members; `Null` members are left out.
    pub fn obj<'a>(members: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Struct(
            members
                .into_iter()
                .filter(|(_, v)| !matches!(v, Value::Null))
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    /// This structure with `members` added (`Null` ones left out); any other value as it is.
    pub fn with<'a>(mut self, members: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        if let Value::Struct(m) = &mut self {
            for (k, v) in members {
                if !matches!(v, Value::Null) {
                    m.insert(k.to_string(), v);
                }
            }
        }
        self
    }

    /// A list from anything that converts.
    pub fn list<T: Into<Value>>(items: impl IntoIterator<Item = T>) -> Value {
        Value::List(items.into_iter().map(Into::into).collect())
    }

    /// A member of a structure.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(m) => m.get(name),
            _ => None,
        }
    }

    /// A text member, if present.
    pub fn opt_str(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// A text member, empty when absent.
    pub fn str(&self, name: &str) -> &str {
        self.opt_str(name).unwrap_or("")
    }

    /// An integer member, if present.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.get(name) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }

    /// A boolean member, if present.
    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.get(name) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// A blob member, if present.
    pub fn blob(&self, name: &str) -> Option<&[u8]> {
        match self.get(name) {
            Some(Value::Blob(b)) => Some(b),
            _ => None,
        }
    }

    /// A list member's items, none when absent.
    pub fn items(&self, name: &str) -> &[Value] {
        match self.get(name) {
            Some(Value::List(l)) => l,
            _ => &[],
        }
    }

    /// A list of text, none when absent.
    pub fn strs(&self, name: &str) -> Vec<String> {
        self.items(name)
            .iter()
            .filter_map(|v| match v {
                Value::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    /// This value's text, if it is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_string())
    }
}

impl From<&String> for Value {
    fn from(s: &String) -> Value {
        Value::Str(s.clone())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<i32> for Value {
    fn from(i: i32) -> Value {
        Value::Int(i64::from(i))
    }
}

impl From<u32> for Value {
    fn from(i: u32) -> Value {
        Value::Int(i64::from(i))
    }
}

impl From<Vec<Value>> for Value {
    fn from(l: Vec<Value>) -> Value {
        Value::List(l)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Value {
        o.map_or(Value::Null, Into::into)
    }
}

/// Text that is left out of a response when empty (EC2 omits unset members).
pub fn nonempty(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::Str(s.to_string())
    }
}

/// Unix seconds as ISO 8601 with milliseconds, as EC2 writes times
/// (`2026-12-02T05:08:23.000Z`).
pub fn iso8601(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The civil date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a civil date (the inverse of [`civil`]).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an ISO 8601 time (`2026-12-02T05:08:23Z`, with optional fraction and offset) or
/// Unix seconds, as botocore may send a timestamp parameter.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<f64>() {
        return n.is_finite().then_some(n as i64);
    }
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &r[n..];
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hm = rest[1..].replace(':', "");
            if hm.len() != 4 || !hm.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let oh: i64 = hm[..2].parse().ok()?;
            let om: i64 = hm[2..].parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    Some(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_796_188_103), "2026-12-02T05:08:23.000Z");
        for t in [0, 951_782_400, 1_796_188_103, 4_102_444_800] {
            assert_eq!(parse_time(&iso8601(t)), Some(t));
        }
        assert_eq!(parse_time("2026-12-02T05:08:23Z"), Some(1_796_188_103));
        assert_eq!(parse_time("2026-12-02T07:08:23+02:00"), Some(1_796_188_103));
        assert_eq!(parse_time("1796188103"), Some(1_796_188_103));
        assert_eq!(parse_time("2026-13-02T05:08:23Z"), None);
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2026-12-02T05:08:23.Z"), None);
    }

    #[test]
    fn accessors_and_builders() {
        let v = Value::obj([
            ("A", "x".into()),
            ("B", Value::Null),
            ("C", Value::list(["1", "2"])),
            ("D", 7i64.into()),
            ("E", true.into()),
        ]);
        assert_eq!(v.str("A"), "x");
        assert_eq!(v.get("B"), None);
        assert_eq!(v.strs("C"), ["1", "2"]);
        assert_eq!(v.int("D"), Some(7));
        assert_eq!(v.bool("E"), Some(true));
        assert_eq!(v.str("Z"), "");
        assert!(v.items("Z").is_empty());
        assert_eq!(nonempty(""), Value::Null);
    }
}
