//! `/_local/outbox`: the messages the outbox mailer wrote, listed newest first, each viewable as
//! rendered HTML with its headers and attachments. Local server only; never deployed.
//!
//! A message's HTML and attachments are whatever a project sent, so they never run on the API's
//! origin: the HTML is shown in a sandboxed frame and served with a sandboxing
//! `Content-Security-Policy` (no scripts, an opaque origin, even when opened directly), and
//! attachments are downloads under the same policy.

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
         <h2>HTML</h2><iframe sandbox referrerpolicy=\"no-referrer\" src=\"/_local/outbox/{id}/html\"></iframe>\
         <h2>Text</h2><pre>{text}</pre><h2>Attachments</h2><ul>{attachments}</ul>",
        id = message.email_id,
        text = esc(message.text.as_deref().unwrap_or("")),
    );
    page("Message", &body).into_response()
}

/// The policy of sent content: a sandbox without scripts (an opaque origin), nothing loaded but
/// images, styles and fonts.
pub const SENT_CONTENT_POLICY: &str = "sandbox; default-src 'none'; img-src * data:; \
     style-src * 'unsafe-inline'; font-src * data:";

/// Headers that keep sent content off the API's origin.
fn contained() -> [(header::HeaderName, &'static str); 3] {
    [
        (header::CONTENT_SECURITY_POLICY, SENT_CONTENT_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ]
}

async fn html(State(dir): State<Arc<PathBuf>>, Path(id): Path<String>) -> Response {
    match id.parse().ok().and_then(|id| outbox::read(&dir, id)) {
        Some(m) => (contained(), Html(m.html.unwrap_or_default())).into_response(),
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
        Some((meta, bytes)) => (
            contained(),
            [
                (header::CONTENT_TYPE, meta.content_type),
                (header::CONTENT_DISPOSITION, "attachment".to_owned()),
            ],
            bytes,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use plunk_messaging::mailer::outbox::OutboxMailer;
    use plunk_messaging::mailer::{Attachment, Disposition, Mailbox, Mailer, OutgoingEmail};
    use tower::ServiceExt;

    #[tokio::test]
    async fn sent_html_and_attachments_never_run_on_the_api_origin() {
        let dir = tempfile::tempdir().unwrap();
        let email_id = uuid::Uuid::now_v7();
        OutboxMailer::new(dir.path())
            .send(&OutgoingEmail {
                email_id,
                project_id: uuid::Uuid::now_v7(),
                from: Mailbox {
                    name: None,
                    email: "a@acme.io".into(),
                },
                to: Mailbox {
                    name: None,
                    email: "b@example.org".into(),
                },
                reply_to: None,
                subject: "s".into(),
                html: "<p>hi</p><script>fetch('/contacts')</script>".into(),
                text: "hi".into(),
                headers: vec![],
                attachments: vec![Attachment {
                    filename: "page.html".into(),
                    content_type: "text/html".into(),
                    disposition: Disposition::Attachment,
                    content_id: None,
                    content: b"<script>alert(1)</script>".to_vec(),
                }],
                configuration_set: None,
            })
            .await
            .unwrap();
        let app = router(dir.path().to_path_buf());
        for path in [
            format!("/_local/outbox/{email_id}/html"),
            format!("/_local/outbox/{email_id}/attachments/0"),
        ] {
            let res = app
                .clone()
                .oneshot(axum::http::Request::get(&path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            let policy = res.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap();
            assert!(policy.starts_with("sandbox;"), "{policy}");
            assert!(!policy.contains("allow-scripts") && !policy.contains("script-src"));
            assert_eq!(res.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
        let page = app
            .oneshot(
                axum::http::Request::get(format!("/_local/outbox/{email_id}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = axum::body::to_bytes(page.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("<iframe sandbox "), "{body}");
        assert!(
            !body.contains("<script>fetch"),
            "the message's HTML is only in the frame"
        );
    }
}
