//! `/_local/outbox`: the messages the outbox mailer wrote, listed newest first, each viewable as
//! rendered HTML with its headers and attachments. Local server only; never deployed.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use plunk_messaging::mailer::outbox;
use std::path::PathBuf;
use std::sync::Arc;

/// The routes, over the outbox folder.
pub fn router(dir: PathBuf) -> Router {
    Router::new()
        .route("/_local/outbox", get(list))
        .route("/_local/outbox/{id}", get(show))
        .route("/_local/outbox/{id}/html", get(html))
        .route("/_local/outbox/{id}/attachments/{index}", get(attachment))
        .with_state(Arc::new(dir))
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}}\
         table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:.4rem;text-align:left}}\
         iframe{{width:100%;height:32rem;border:1px solid #ccc}}code{{font-size:.85rem}}</style></head>\
         <body><h1>{t}</h1>{body}</body></html>",
        t = esc(title)
    ))
}

async fn list(State(dir): State<Arc<PathBuf>>) -> Html<String> {
    let entries = outbox::list(&dir);
    let mut rows = String::new();
    for e in &entries {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td><a href=\"/_local/outbox/{id}\">{}</a></td><td><code>{id}</code></td></tr>",
            esc(&e.date.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
            esc(&e.to),
            esc(&e.subject),
            id = e.email_id,
        ));
    }
    let body = if entries.is_empty() {
        "<p>No messages yet. Send one with <code>POST /v1/send</code>.</p>".to_owned()
    } else {
        format!("<p>{} message(s), newest first.</p><table><tr><th>Sent</th><th>To</th><th>Subject</th><th>Email id</th></tr>{rows}</table>", entries.len())
    };
    page("Local outbox", &body)
}

async fn show(State(dir): State<Arc<PathBuf>>, Path(id): Path<String>) -> Response {
    let Some(message) = id.parse().ok().and_then(|id| outbox::read(&dir, id)) else {
        return (
            StatusCode::NOT_FOUND,
            page("Not found", "<p>No such message.</p>"),
        )
            .into_response();
    };
    let headers: String = message
        .headers
        .iter()
        .map(|(k, v)| format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v)))
        .collect();
    let attachments: String = message
        .attachments
        .iter()
        .enumerate()
        .map(|(i, a)| {
            format!(
                "<li><a href=\"/_local/outbox/{}/attachments/{i}\">{}</a> {} ({} bytes){}</li>",
                message.email_id,
                esc(a.filename.as_deref().unwrap_or("(unnamed)")),
                esc(&a.content_type),
                a.size,
                a.content_id
                    .as_deref()
                    .map(|c| format!(", inline cid:{}", esc(c)))
                    .unwrap_or_default()
            )
        })
        .collect();
    let body = format!(
        "<p><a href=\"/_local/outbox\">← outbox</a></p><table>{headers}</table>\
         <h2>HTML</h2><iframe sandbox src=\"/_local/outbox/{id}/html\"></iframe>\
         <h2>Text</h2><pre>{text}</pre><h2>Attachments</h2><ul>{attachments}</ul>",
        id = message.email_id,
        text = esc(message.text.as_deref().unwrap_or("")),
    );
    page("Message", &body).into_response()
}

async fn html(State(dir): State<Arc<PathBuf>>, Path(id): Path<String>) -> Response {
    match id.parse().ok().and_then(|id| outbox::read(&dir, id)) {
        Some(m) => Html(m.html.unwrap_or_default()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn attachment(
    State(dir): State<Arc<PathBuf>>,
    Path((id, index)): Path<(String, usize)>,
) -> Response {
    match id
        .parse()
        .ok()
        .and_then(|id| outbox::attachment(&dir, id, index))
    {
        Some((meta, bytes)) => ([(header::CONTENT_TYPE, meta.content_type)], bytes).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
