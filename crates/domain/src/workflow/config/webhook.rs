//! `WEBHOOK` steps (workflows.md §3): `{url, method?, headers?, body?}`. The URL, the header
//! values and every string inside the body may be Liquid, rendered for each execution; what is
//! literal is checked now, what is Liquid must parse now and is checked again once rendered.

use super::{has_liquid, liquid_error, Members};
use crate::validation::{FieldCode, FieldError};
use serde_json::Value;
use std::collections::HashSet;

/// Longest `url`, in characters.
pub const MAX_URL_CHARS: usize = 2048;
/// Most `headers`.
pub const MAX_HEADERS: usize = 20;
/// Headers the HTTP client sets from the request itself: a step setting them would send a
/// request whose framing or target disagrees with its body or connection.
pub const RESERVED_HEADERS: [&str; 4] =
    ["host", "content-length", "transfer-encoding", "connection"];

/// The HTTP method of a `WEBHOOK` step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WebhookMethod {
    Get,
    #[default]
    Post,
    Put,
    Patch,
    Delete,
}

impl WebhookMethod {
    /// Every method.
    pub const ALL: [WebhookMethod; 5] = [
        WebhookMethod::Get,
        WebhookMethod::Post,
        WebhookMethod::Put,
        WebhookMethod::Patch,
        WebhookMethod::Delete,
    ];

    /// The wire form, e.g. `POST`.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookMethod::Get => "GET",
            WebhookMethod::Post => "POST",
            WebhookMethod::Put => "PUT",
            WebhookMethod::Patch => "PATCH",
            WebhookMethod::Delete => "DELETE",
        }
    }
}

/// A parsed `WEBHOOK` config.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// The URL as given (trimmed), perhaps Liquid.
    pub url: String,
    pub method: WebhookMethod,
    /// Header names and values in the order given, values perhaps Liquid.
    pub headers: Vec<(String, String)>,
    /// The JSON body, its strings perhaps Liquid; `None` sends none.
    pub body: Option<Value>,
}

pub(super) fn parse(
    m: &mut Members<'_, '_>,
    url_check: &dyn Fn(&str) -> Result<(), FieldError>,
) -> Option<WebhookConfig> {
    let url = url(m, url_check);
    let methods: Vec<(&str, WebhookMethod)> = WebhookMethod::ALL
        .iter()
        .map(|w| (w.as_str(), *w))
        .collect();
    let method = if m.get("method").is_some() {
        m.choice("method", &methods, false)
    } else {
        Some(WebhookMethod::default())
    };
    let headers = headers(m);
    let body = m.get("body");
    let before = m.errors.len();
    if let Some(body) = body {
        let path = m.at("body");
        body_strings(m, body, path);
    }
    let body_ok = m.errors.len() == before;
    Some(WebhookConfig {
        url: url?,
        method: method?,
        headers: headers?,
        body: body.cloned(),
    })
    .filter(|_| body_ok)
}

fn url(
    m: &mut Members<'_, '_>,
    url_check: &dyn Fn(&str) -> Result<(), FieldError>,
) -> Option<String> {
    let url = m.string("url", 1, usize::MAX, true)?.trim();
    if url.chars().count() > MAX_URL_CHARS {
        m.error(
            "url",
            FieldCode::TooBig,
            format!("URL must be at most {MAX_URL_CHARS} characters"),
        );
        return None;
    }
    if has_liquid(url) {
        // The host may come from the data, so the address rules wait for the rendered URL; the
        // scheme cannot.
        let scheme = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        if !scheme.starts_with("http://") && !scheme.starts_with("https://") {
            m.error(
                "url",
                FieldCode::InvalidString,
                "URL must start with http:// or https://",
            );
            return None;
        }
        if let Some(error) = liquid_error(url, &m.at("url")) {
            m.push(error);
            return None;
        }
    } else if let Err(e) = url_check(url) {
        let field = m.at("url");
        m.push(FieldError::new(field, e.code, e.message));
        return None;
    }
    Some(url.to_owned())
}

fn headers(m: &mut Members<'_, '_>) -> Option<Vec<(String, String)>> {
    let Some(raw) = m.get("headers") else {
        return Some(Vec::new());
    };
    let Value::Object(object) = raw else {
        m.error("headers", FieldCode::InvalidType, "Expected an object");
        return None;
    };
    let before = m.errors.len();
    if object.len() > MAX_HEADERS {
        m.error(
            "headers",
            FieldCode::TooBig,
            format!("At most {MAX_HEADERS} headers"),
        );
        return None;
    }
    let mut h = m.nested(object, "headers");
    let mut seen = HashSet::new();
    let mut headers = Vec::with_capacity(object.len());
    for (name, value) in object {
        let lower = name.to_ascii_lowercase();
        if !is_token(name) {
            h.error(
                name,
                FieldCode::InvalidString,
                "Header names are non-empty HTTP tokens (letters, digits and !#$%&'*+-.^_`|~)",
            );
            continue;
        }
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            h.error(
                name,
                FieldCode::ReservedHeader,
                format!("{name} is set by the HTTP client"),
            );
            continue;
        }
        if !seen.insert(lower) {
            h.error(
                name,
                FieldCode::Duplicate,
                "Header names must differ case-insensitively",
            );
            continue;
        }
        let Value::String(text) = value else {
            h.error(name, FieldCode::InvalidType, "Expected a string");
            continue;
        };
        // A line break would start another header (or the body) once sent.
        if text.contains(['\r', '\n', '\0']) {
            h.error(
                name,
                FieldCode::InvalidString,
                "Header values must not contain CR, LF or NUL",
            );
            continue;
        }
        if has_liquid(text) {
            if let Some(error) = liquid_error(text, &h.at(name)) {
                h.push(error);
                continue;
            }
        }
        headers.push((name.clone(), text.clone()));
    }
    (m.errors.len() == before).then_some(headers)
}

/// Checks the Liquid of every string inside `value` (found at `path`), object keys included as
/// path members and array items as `[i]`.
fn body_strings(m: &mut Members<'_, '_>, value: &Value, path: String) {
    match value {
        Value::String(text) if has_liquid(text) => {
            if let Some(error) = liquid_error(text, &path) {
                m.push(error);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                body_strings(m, item, format!("{path}[{i}]"));
            }
        }
        Value::Object(object) => {
            for (key, item) in object {
                body_strings(m, item, format!("{path}.{key}"));
            }
        }
        _ => {}
    }
}

/// An HTTP token (RFC 9110 `tchar`s), which a header name must be.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
