//! Query-string parsing by spec README §2 and §6: the first of repeated parameters wins, booleans
//! are exactly `true`/`false`, `limit` defaults to 20 and is clamped to 100.

use axum::extract::FromRequestParts;
use http::request::Parts;
use plunk_domain::{FieldCode, FieldError};
use std::collections::HashMap;

/// Default page size.
pub const DEFAULT_LIMIT: usize = 20;
/// Largest page size; larger values are clamped.
pub const MAX_LIMIT: usize = 100;

/// The query parameters of a request, first value of each name.
#[derive(Debug, Clone, Default)]
pub struct QueryParams(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::parse(parts.uri.query().unwrap_or_default()))
    }
}

impl QueryParams {
    /// Parses a raw query string.
    pub fn parse(raw: &str) -> Self {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
            map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        Self(map)
    }

    /// The raw value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `limit`: default 20, clamped to 100; below 1 or not an integer is an error.
    pub fn limit(&self, errors: &mut Vec<FieldError>) -> usize {
        match self.get("limit") {
            None => DEFAULT_LIMIT,
            Some(raw) => match raw.parse::<i128>() {
                Ok(n) if n >= 1 => n.min(MAX_LIMIT as i128) as usize,
                Ok(_) => {
                    errors.push(FieldError::new(
                        "limit",
                        FieldCode::TooSmall,
                        "limit must be at least 1",
                    ));
                    DEFAULT_LIMIT
                }
                Err(_) => {
                    // Very long digit strings are still integers: clamp them.
                    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
                        return MAX_LIMIT;
                    }
                    errors.push(FieldError::new(
                        "limit",
                        FieldCode::InvalidType,
                        "limit must be an integer",
                    ));
                    DEFAULT_LIMIT
                }
            },
        }
    }

    /// A boolean parameter: exactly `true` or `false`.
    pub fn bool(&self, name: &str, errors: &mut Vec<FieldError>) -> Option<bool> {
        match self.get(name)? {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                errors.push(FieldError::new(
                    name,
                    FieldCode::InvalidType,
                    "Expected true or false",
                ));
                None
            }
        }
    }

    /// A parameter read by `parse`; when it is present and `parse` refuses it, a field error
    /// with `code` and `message` is recorded.
    pub fn parsed<T>(
        &self,
        name: &str,
        errors: &mut Vec<FieldError>,
        code: FieldCode,
        message: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        let raw = self.get(name)?;
        let parsed = parse(raw);
        if parsed.is_none() {
            errors.push(FieldError::new(name, code, message));
        }
        parsed
    }

    /// A UUID parameter (`contactId`, `campaignId` …).
    pub fn uuid(&self, name: &str, errors: &mut Vec<FieldError>) -> Option<uuid::Uuid> {
        self.parsed(
            name,
            errors,
            FieldCode::InvalidString,
            "Expected a UUID",
            plunk_domain::id::parse_id,
        )
    }

    /// A string parameter with a length range in characters.
    pub fn string(
        &self,
        name: &str,
        min: usize,
        max: usize,
        errors: &mut Vec<FieldError>,
    ) -> Option<String> {
        let raw = self.get(name)?;
        let len = raw.chars().count();
        if len < min {
            errors.push(FieldError::new(
                name,
                FieldCode::TooSmall,
                format!("Must be at least {min} characters"),
            ));
            None
        } else if len > max {
            errors.push(FieldError::new(
                name,
                FieldCode::TooBig,
                format!("Must be at most {max} characters"),
            ));
            None
        } else {
            Some(raw.to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_clamps_and_rejects() {
        let mut e = Vec::new();
        assert_eq!(QueryParams::parse("").limit(&mut e), 20);
        assert_eq!(QueryParams::parse("limit=500").limit(&mut e), 100);
        assert_eq!(
            QueryParams::parse("limit=99999999999999999999999999999999999999999").limit(&mut e),
            100
        );
        assert!(e.is_empty());
        QueryParams::parse("limit=0").limit(&mut e);
        QueryParams::parse("limit=1.5").limit(&mut e);
        QueryParams::parse("limit=abc").limit(&mut e);
        assert_eq!(e.len(), 3);
    }

    #[test]
    fn first_repeated_parameter_wins_and_booleans_are_strict() {
        let q = QueryParams::parse("subscribed=true&subscribed=false&x=TRUE");
        let mut e = Vec::new();
        assert_eq!(q.bool("subscribed", &mut e), Some(true));
        assert_eq!(q.bool("x", &mut e), None);
        assert_eq!(e.len(), 1);
    }
}
