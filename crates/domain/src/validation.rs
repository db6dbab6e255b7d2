//! Field-level validation that collects every problem instead of stopping at the first
//! (the `errors` of a `VALIDATION_ERROR`, with the field codes).

use crate::email::EmailAddress;
use serde::Serialize;
use serde_json::{Map, Value};

/// A field error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldCode {
    Required,
    InvalidType,
    InvalidString,
    TooSmall,
    TooBig,
    InvalidEnumValue,
    InvalidDate,
    InvalidBase64,
    Duplicate,
    ReservedEvent,
    ReservedHeader,
    TemplateSyntax,
    TemplateRender,
    ForbiddenAddress,
    NotFound,
    SegmentCycle,
    GraphCycle,
    InvalidOperator,
    Custom,
}

/// One problem with one field. `field` is a path with dots and `[index]`; `""` is the whole body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    pub code: FieldCode,
}

/// Longest field path or message an error carries, in characters: both can echo what the
/// client sent (a member name, a header name, a value), and an error answer stays small
/// whatever the request held.
pub const MAX_ERROR_TEXT_CHARS: usize = 256;

/// `text` cut to [`MAX_ERROR_TEXT_CHARS`] characters, an ellipsis marking the cut.
pub fn cut_for_error(text: String) -> String {
    if text.chars().count() <= MAX_ERROR_TEXT_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_ERROR_TEXT_CHARS - 1).collect();
    cut.push('…');
    cut
}

impl FieldError {
    /// Builds an error for `field`; the path and the message are cut to
    /// [`MAX_ERROR_TEXT_CHARS`] characters.
    pub fn new(field: impl Into<String>, code: FieldCode, message: impl Into<String>) -> Self {
        Self {
            field: cut_for_error(field.into()),
            message: cut_for_error(message.into()),
            code,
        }
    }
}

/// A member that may be absent, explicitly `null`, or set (PATCH semantics).
#[derive(Debug, Clone, PartialEq)]
pub enum Patch<T> {
    Absent,
    Null,
    Set(T),
}

/// Reads typed members out of a JSON object, recording an error for every bad one.
pub struct Fields<'a> {
    object: &'a Map<String, Value>,
    prefix: String,
    errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    /// Starts reading `object`; error paths are relative to the body root.
    pub fn new(object: &'a Map<String, Value>) -> Self {
        Self {
            object,
            prefix: String::new(),
            errors: Vec::new(),
        }
    }

    /// The full path of member `name`.
    pub fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// Records an error against member `name`.
    pub fn error(&mut self, name: &str, code: FieldCode, message: impl Into<String>) {
        let field = self.path(name);
        self.errors.push(FieldError::new(field, code, message));
    }

    /// Records an already-built error.
    pub fn push(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    /// The raw member, treating `null` as present.
    pub fn raw(&self, name: &str) -> Option<&'a Value> {
        self.object.get(name)
    }

    fn present(&mut self, name: &str, required: bool) -> Option<&'a Value> {
        match self.object.get(name) {
            None | Some(Value::Null) if required => {
                self.error(name, FieldCode::Required, "Required");
                None
            }
            None => None,
            Some(Value::Null) => {
                self.error(
                    name,
                    FieldCode::InvalidType,
                    "Expected a value, received null",
                );
                None
            }
            Some(v) => Some(v),
        }
    }

    /// A required email address.
    pub fn required_email(&mut self, name: &str) -> Option<EmailAddress> {
        let v = self.present(name, true)?;
        self.email_value(name, v)
    }

    /// An optional email address (`null` is an error).
    pub fn optional_email(&mut self, name: &str) -> Option<EmailAddress> {
        let v = self.present(name, false)?;
        self.email_value(name, v)
    }

    fn email_value(&mut self, name: &str, v: &Value) -> Option<EmailAddress> {
        match v {
            Value::String(s) => match EmailAddress::parse(s) {
                Ok(e) => Some(e),
                Err(e) => {
                    self.error(name, FieldCode::InvalidString, e.to_string());
                    None
                }
            },
            _ => {
                self.error(name, FieldCode::InvalidType, "Expected a string");
                None
            }
        }
    }

    /// An optional boolean (`null` is an error).
    pub fn optional_bool(&mut self, name: &str) -> Option<bool> {
        match self.present(name, false)? {
            Value::Bool(b) => Some(*b),
            _ => {
                self.error(name, FieldCode::InvalidType, "Expected a boolean");
                None
            }
        }
    }

    /// An optional string with a length range in Unicode scalar values (`null` is an error).
    pub fn optional_string(&mut self, name: &str, min: usize, max: usize) -> Option<&'a str> {
        let v = self.present(name, false)?;
        self.string_value(name, v, min, max)
    }

    /// A required string with a length range in Unicode scalar values.
    pub fn required_string(&mut self, name: &str, min: usize, max: usize) -> Option<&'a str> {
        let v = self.present(name, true)?;
        self.string_value(name, v, min, max)
    }

    fn string_value(
        &mut self,
        name: &str,
        v: &'a Value,
        min: usize,
        max: usize,
    ) -> Option<&'a str> {
        let Value::String(s) = v else {
            self.error(name, FieldCode::InvalidType, "Expected a string");
            return None;
        };
        let len = s.chars().count();
        if len < min {
            self.error(
                name,
                FieldCode::TooSmall,
                format!("Must be at least {min} characters"),
            );
            None
        } else if len > max {
            self.error(
                name,
                FieldCode::TooBig,
                format!("Must be at most {max} characters"),
            );
            None
        } else {
            Some(s.as_str())
        }
    }

    /// An optional JSON object that may also be `null` (PATCH semantics).
    pub fn nullable_object(&mut self, name: &str) -> Patch<&'a Map<String, Value>> {
        match self.object.get(name) {
            None => Patch::Absent,
            Some(Value::Null) => Patch::Null,
            Some(Value::Object(m)) => Patch::Set(m),
            Some(_) => {
                self.error(name, FieldCode::InvalidType, "Expected an object");
                Patch::Absent
            }
        }
    }

    /// An optional JSON object (`null` is an error).
    pub fn optional_object(&mut self, name: &str) -> Option<&'a Map<String, Value>> {
        match self.present(name, false)? {
            Value::Object(m) => Some(m),
            _ => {
                self.error(name, FieldCode::InvalidType, "Expected an object");
                None
            }
        }
    }

    /// A required array with an item-count range.
    pub fn required_array(&mut self, name: &str, min: usize, max: usize) -> Option<&'a Vec<Value>> {
        let v = self.present(name, true)?;
        let Value::Array(items) = v else {
            self.error(name, FieldCode::InvalidType, "Expected an array");
            return None;
        };
        if items.len() < min {
            self.error(
                name,
                FieldCode::TooSmall,
                format!("Must contain at least {min} item(s)"),
            );
            None
        } else if items.len() > max {
            self.error(
                name,
                FieldCode::TooBig,
                format!("Must contain at most {max} items"),
            );
            None
        } else {
            Some(items)
        }
    }

    /// True when no error has been recorded so far.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// Ends reading: every recorded error, or `Ok` when there were none.
    pub fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_paths_and_messages_are_cut_to_256_characters() {
        let long = "h".repeat(10_000);
        let e = FieldError::new(
            format!("headers.{long}"),
            FieldCode::InvalidString,
            long.clone(),
        );
        assert_eq!(e.field.chars().count(), MAX_ERROR_TEXT_CHARS);
        assert!(e.field.starts_with("headers.hhh") && e.field.ends_with('…'));
        assert_eq!(e.message.chars().count(), MAX_ERROR_TEXT_CHARS);
        let short = FieldError::new("to[1]", FieldCode::InvalidString, "Invalid email address");
        assert_eq!(
            (short.field.as_str(), short.message.as_str()),
            ("to[1]", "Invalid email address")
        );
    }

    #[test]
    fn every_bad_field_is_reported_not_just_the_first() {
        let body = json!({"email": "nope", "subscribed": "yes", "data": 3});
        let mut f = Fields::new(body.as_object().unwrap());
        assert!(f.required_email("email").is_none());
        assert!(f.optional_bool("subscribed").is_none());
        assert!(f.optional_object("data").is_none());
        let errors = f.finish().unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| (e.field.as_str(), e.code)).collect();
        assert_eq!(
            fields,
            vec![
                ("email", FieldCode::InvalidString),
                ("subscribed", FieldCode::InvalidType),
                ("data", FieldCode::InvalidType)
            ]
        );
    }

    #[test]
    fn missing_required_member_is_reported_as_required() {
        let body = json!({});
        let mut f = Fields::new(body.as_object().unwrap());
        f.required_email("email");
        assert_eq!(f.finish().unwrap_err()[0].code, FieldCode::Required);
    }

    #[test]
    fn patch_distinguishes_absent_null_and_set() {
        let body = json!({"a": null, "b": {}});
        let mut f = Fields::new(body.as_object().unwrap());
        assert_eq!(f.nullable_object("a"), Patch::Null);
        assert!(matches!(f.nullable_object("b"), Patch::Set(_)));
        assert_eq!(f.nullable_object("c"), Patch::Absent);
    }
}
