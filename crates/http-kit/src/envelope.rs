//! The success envelope `{"success": true, "data": …}` (spec README §3).

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

/// The content type of every JSON response.
pub const JSON_UTF8: &str = "application/json; charset=utf-8";

/// A successful response: 200 unless built with `created` (201) or `accepted` (202).
#[derive(Debug)]
pub struct Envelope<T> {
    status: StatusCode,
    data: T,
}

impl<T: Serialize> Envelope<T> {
    /// 200 with `data`.
    pub fn ok(data: T) -> Self {
        Self {
            status: StatusCode::OK,
            data,
        }
    }

    /// 201 with the created resource.
    pub fn created(data: T) -> Self {
        Self {
            status: StatusCode::CREATED,
            data,
        }
    }

    /// 202 for documented asynchronous actions.
    pub fn accepted(data: T) -> Self {
        Self {
            status: StatusCode::ACCEPTED,
            data,
        }
    }
}

#[derive(Serialize)]
struct Body<'a, T> {
    success: bool,
    data: &'a T,
}

/// A JSON response with the charset the spec asks for.
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    response
}

impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&Body {
            success: true,
            data: &self.data,
        }) {
            Ok(bytes) => json_response(self.status, bytes),
            Err(e) => crate::ApiError::internal(&e).into_response(),
        }
    }
}
