//! Contacts and the `data` rules shared by every path that writes contact data (spec contacts.md §2).

use crate::email::EmailAddress;
use crate::time::Timestamp;
use crate::validation::{FieldCode, FieldError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Keys that are dropped silently from incoming `data`, whatever their value.
pub const RESERVED_DATA_KEYS: [&str; 7] = [
    "plunk_id",
    "plunk_email",
    "id",
    "email",
    "unsubscribeUrl",
    "subscribeUrl",
    "manageUrl",
];

/// Largest serialised `data`, incoming or stored after merging.
pub const MAX_DATA_BYTES: usize = 32_768;
/// Deepest nesting of a value inside `data`.
pub const MAX_DATA_DEPTH: usize = 5;
/// Longest key name, in Unicode scalar values.
pub const MAX_KEY_CHARS: usize = 128;

/// A contact of one project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub id: Uuid,
    pub email: EmailAddress,
    pub subscribed: bool,
    pub data: Map<String, Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What one incoming `data` key does to the stored object.
#[derive(Debug, Clone, PartialEq)]
enum DataOp {
    Remove,
    Set(Value),
}

/// A validated incoming `data` object, ready to merge into a stored one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataChange {
    ops: Vec<(String, DataOp)>,
    /// `{value, persistent: false}` members: available for this send or event only, never stored.
    pub one_shot: Map<String, Value>,
}

impl DataChange {
    /// Validates `incoming` (the `data` member as sent) by contacts.md §2; errors name `data.<key>`.
    pub fn parse(incoming: &Map<String, Value>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if serialized_len(incoming) > MAX_DATA_BYTES {
            errors.push(FieldError::new(
                "data",
                FieldCode::TooBig,
                format!("data must serialise to at most {MAX_DATA_BYTES} bytes"),
            ));
            return Err(errors);
        }
        let mut change = DataChange::default();
        for (key, raw) in incoming {
            if RESERVED_DATA_KEYS.contains(&key.as_str()) {
                continue;
            }
            let field = format!("data.{key}");
            let chars = key.chars().count();
            if chars == 0 || chars > MAX_KEY_CHARS {
                errors.push(FieldError::new(
                    field,
                    FieldCode::InvalidString,
                    format!("Key names must be 1-{MAX_KEY_CHARS} characters"),
                ));
                continue;
            }
            if key.contains('.') {
                errors.push(FieldError::new(
                    field,
                    FieldCode::InvalidString,
                    "Key names must not contain '.'",
                ));
                continue;
            }
            let (value, persistent) = unwrap_one_shot(raw);
            if depth(value) > MAX_DATA_DEPTH {
                errors.push(FieldError::new(
                    field,
                    FieldCode::TooBig,
                    format!("Values may nest at most {MAX_DATA_DEPTH} levels deep"),
                ));
                continue;
            }
            if key == "locale" && !matches!(value, Value::Null | Value::String(_)) {
                errors.push(FieldError::new(
                    field,
                    FieldCode::InvalidType,
                    "locale must be a string",
                ));
                continue;
            }
            match (value, persistent) {
                (v, false) => {
                    change.one_shot.insert(key.clone(), v.clone());
                }
                (Value::Null, true) => change.ops.push((key.clone(), DataOp::Remove)),
                (Value::String(s), true) if s.is_empty() => {}
                (v, true) => change.ops.push((key.clone(), DataOp::Set(v.clone()))),
            }
        }
        if errors.is_empty() {
            Ok(change)
        } else {
            Err(errors)
        }
    }

    /// Also stores `value` under `key` (e.g. the recipient name of a send as `name`).
    pub fn set(&mut self, key: &str, value: Value) {
        self.ops.retain(|(k, _)| k != key);
        self.ops.push((key.to_owned(), DataOp::Set(value)));
    }

    /// True when merging changes nothing that is stored.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Merges into `stored` key by key (top level only) and checks the stored size limit.
    pub fn apply(&self, stored: &mut Map<String, Value>) -> Result<(), Vec<FieldError>> {
        for (key, op) in &self.ops {
            match op {
                DataOp::Remove => {
                    stored.remove(key);
                }
                DataOp::Set(v) => {
                    stored.insert(key.clone(), v.clone());
                }
            }
        }
        if serialized_len(stored) > MAX_DATA_BYTES {
            return Err(vec![FieldError::new(
                "data",
                FieldCode::TooBig,
                format!("The contact's data would exceed {MAX_DATA_BYTES} bytes"),
            )]);
        }
        Ok(())
    }
}

/// `{value: X, persistent: bool}` with exactly these two members is a wrapper; anything else is a
/// plain value, stored as is. Returns the value and whether it is stored.
/// A data member's value and whether it is persistent: `{value, persistent}` wrappers unwrapped,
/// anything else is a persistent value as given.
pub fn unwrap_one_shot(raw: &Value) -> (&Value, bool) {
    if let Value::Object(m) = raw {
        if m.len() == 2 {
            if let (Some(v), Some(Value::Bool(p))) = (m.get("value"), m.get("persistent")) {
                return (v, *p);
            }
        }
    }
    (raw, true)
}

/// Nesting depth: a scalar is 0, a container is one more than its deepest member.
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn serialized_len(m: &Map<String, Value>) -> usize {
    serde_json::to_vec(m).map(|v| v.len()).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn null_removes_empty_string_is_ignored_and_values_replace() {
        let mut stored = obj(json!({"name": "Ada", "trial": true, "note": "keep"}));
        let change =
            DataChange::parse(&obj(json!({"plan": "team", "trial": null, "note": ""}))).unwrap();
        change.apply(&mut stored).unwrap();
        assert_eq!(
            stored,
            obj(json!({"name": "Ada", "note": "keep", "plan": "team"}))
        );
    }

    #[test]
    fn one_shot_values_are_not_stored_and_persistent_ones_are() {
        let mut stored = Map::new();
        let change = DataChange::parse(&obj(json!({
            "code": {"value": "123456", "persistent": false},
            "plan": {"value": "pro", "persistent": true},
            "wrapperLike": {"value": 1, "persistent": true, "extra": 2}
        })))
        .unwrap();
        change.apply(&mut stored).unwrap();
        assert_eq!(change.one_shot, obj(json!({"code": "123456"})));
        assert_eq!(stored["plan"], json!("pro"));
        assert_eq!(
            stored["wrapperLike"],
            json!({"value": 1, "persistent": true, "extra": 2})
        );
    }

    #[test]
    fn reserved_keys_are_dropped_silently() {
        let mut stored = Map::new();
        let change = DataChange::parse(&obj(
            json!({"email": "x", "plunk_id": 1, "unsubscribeUrl": "u", "a": 1}),
        ))
        .unwrap();
        change.apply(&mut stored).unwrap();
        assert_eq!(stored, obj(json!({"a": 1})));
    }

    #[test]
    fn bad_keys_locale_and_depth_are_reported_per_key() {
        let errors = DataChange::parse(&obj(json!({
            "a.b": 1,
            "locale": 5,
            "deep": [[[[[[1]]]]]],
            "ok": [[[[[1]]]]]
        })))
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["data.a.b", "data.locale", "data.deep"]);
    }

    #[test]
    fn oversized_data_is_too_big() {
        let big = "x".repeat(MAX_DATA_BYTES);
        let errors = DataChange::parse(&obj(json!({ "blob": big }))).unwrap_err();
        assert_eq!(errors[0].field, "data");
        assert_eq!(errors[0].code, FieldCode::TooBig);

        let half = "y".repeat(MAX_DATA_BYTES / 2 + 10);
        let mut stored = obj(json!({ "first": half.clone() }));
        let change = DataChange::parse(&obj(json!({ "second": half }))).unwrap();
        assert_eq!(
            change.apply(&mut stored).unwrap_err()[0].code,
            FieldCode::TooBig
        );
    }
}
