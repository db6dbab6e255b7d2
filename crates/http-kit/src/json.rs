//! The JSON body extractor (spec README §2 "Request bodies"): content type, size, strict parsing
//! (duplicate member names are refused at any depth) and an object at the top level.

use crate::error::ApiError;
use crate::pipeline::too_large;
use crate::state::AppState;
use axum::extract::{FromRequest, Request};
use http::header;
use http_body_util::{BodyExt, Limited};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A request body that is a JSON object. An empty body is `{}`.
#[derive(Debug, Clone)]
pub struct JsonObject(pub Map<String, Value>);

impl FromRequest<AppState> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.settings.body_limit_bytes;
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().map(str::to_owned));
        let bytes = match Limited::new(req.into_body(), limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large(limit)),
            Err(_) => return Err(ApiError::bad_body("The request body could not be read")),
        };
        match content_type {
            None if bytes.is_empty() => return Ok(Self(Map::new())),
            None => {
                return Err(ApiError::bad_body(
                    "A request body needs Content-Type: application/json",
                ))
            }
            Some(Ok(ct)) if is_json_media_type(&ct) => {}
            Some(_) => return Err(ApiError::bad_body("Content-Type must be application/json")),
        }
        parse_object(&bytes).map(Self)
    }
}

/// True for `application/json`, compared case-insensitively, parameters allowed.
pub fn is_json_media_type(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// Parses a body: empty is `{}`; anything but a well-formed object without duplicates is a 400.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.is_empty() {
        return Ok(Map::new());
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::bad_body("The request body is not valid UTF-8"))?;
    let StrictValue(value) = serde_json::from_str(text)
        .map_err(|e| ApiError::bad_body(format!("Malformed JSON: {e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad_body("The request body must be a JSON object")),
    }
}

/// A JSON value whose objects must not repeat a member name.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate member name '{key}'")));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn code(bytes: &[u8]) -> Option<ErrorCode> {
        parse_object(bytes).err().map(|e| e.code)
    }

    #[test]
    fn duplicate_member_names_are_refused_at_any_depth() {
        assert_eq!(
            code(br#"{"a":1,"a":2}"#),
            Some(ErrorCode::InvalidRequestBody)
        );
        assert_eq!(
            code(br#"{"a":{"b":[{"c":1,"c":1}]}}"#),
            Some(ErrorCode::InvalidRequestBody)
        );
        assert_eq!(code(br#"{"a":{"c":1},"b":{"c":1}}"#), None);
    }

    #[test]
    fn non_objects_bad_json_and_bad_utf8_are_refused() {
        for bad in [&b"[1]"[..], b"\"x\"", b"{", b"{\"a\":\xff}", b"nul"] {
            assert_eq!(code(bad), Some(ErrorCode::InvalidRequestBody));
        }
    }

    #[test]
    fn an_empty_body_is_an_empty_object() {
        assert!(parse_object(b"").unwrap().is_empty());
    }

    #[test]
    fn media_type_is_compared_case_insensitively_with_parameters() {
        assert!(is_json_media_type("Application/JSON; charset=utf-8"));
        assert!(!is_json_media_type("text/plain"));
        assert!(!is_json_media_type("application/jsonx"));
    }
}
