//! The HTML of a hosted page and the headers every one carries: no caching, no referrer, no
//! cookies, nothing loaded from anywhere (inline CSS only, enforced by the CSP), not framable.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use plunk_domain::list_unsubscribe::escape_html;

/// What a page asks the reader to do.
#[derive(Debug, Clone)]
pub enum Form {
    /// One button that POSTs an empty form to the page's own URL.
    Button { label: &'static str },
    /// The manage page's two buttons: `action=unsubscribe` and `action=subscribe`; the one
    /// that changes the current state (`subscribed`) is the prominent one.
    Manage {
        unsubscribe: &'static str,
        subscribe: &'static str,
        subscribed: bool,
    },
}

/// A page before rendering.
#[derive(Debug, Clone)]
pub struct Page {
    pub status: StatusCode,
    /// The `lang` of the document.
    pub lang: &'static str,
    /// Shown above the heading: the project name (the only branding, spec §4).
    pub brand: Option<String>,
    /// Plain text; escaped when rendered.
    pub heading: String,
    /// HTML paragraphs (already escaped).
    pub paragraphs: Vec<String>,
    pub form: Option<Form>,
    /// A link below, `(href, label)`; both plain text.
    pub link: Option<(String, &'static str)>,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u32>,
}

impl Page {
    /// A page with a heading and nothing else yet.
    pub fn new(status: StatusCode, lang: &'static str, heading: impl Into<String>) -> Self {
        Self {
            status,
            lang,
            brand: None,
            heading: heading.into(),
            paragraphs: Vec::new(),
            form: None,
            link: None,
            retry_after: None,
        }
    }

    /// The document.
    pub fn html(&self) -> String {
        let mut main = String::new();
        if let Some(brand) = &self.brand {
            main.push_str(&format!("<p class=\"brand\">{}</p>", escape_html(brand)));
        }
        main.push_str(&format!("<h1>{}</h1>", escape_html(&self.heading)));
        for p in &self.paragraphs {
            main.push_str(&format!("<p>{p}</p>"));
        }
        match &self.form {
            // No action attribute: the form posts to the page's own URL, token included.
            Some(Form::Button { label }) => main.push_str(&format!(
                "<form method=\"post\"><button type=\"submit\">{}</button></form>",
                escape_html(label)
            )),
            Some(Form::Manage {
                unsubscribe,
                subscribe,
                subscribed,
            }) => {
                let (u, s) = if *subscribed {
                    ("", " class=\"secondary\"")
                } else {
                    (" class=\"secondary\"", "")
                };
                main.push_str(&format!(
                    "<form method=\"post\" class=\"choices\">\
                     <button type=\"submit\" name=\"action\" value=\"unsubscribe\"{u}>{}</button>\
                     <button type=\"submit\" name=\"action\" value=\"subscribe\"{s}>{}</button>\
                     </form>",
                    escape_html(unsubscribe),
                    escape_html(subscribe)
                ))
            }
            None => {}
        }
        if let Some((href, label)) = &self.link {
            main.push_str(&format!(
                "<p class=\"more\"><a href=\"{}\">{}</a></p>",
                escape_html(href),
                escape_html(label)
            ));
        }
        format!(
            "<!doctype html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
             <meta name=\"robots\" content=\"noindex,nofollow\">\
             <title>{title}</title><style>{STYLE}</style></head>\
             <body><main>{main}</main></body></html>\n",
            lang = self.lang,
            title = escape_html(&self.heading),
        )
    }
}

const STYLE: &str = "body{margin:0;background:#f6f6f7;color:#1f1f23;\
font:16px/1.5 -apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif}\
main{max-width:32rem;margin:12vh auto;padding:2rem;background:#fff;border:1px solid #e4e4e7;\
border-radius:8px}h1{font-size:1.4rem;margin:0 0 1rem}.brand{margin:0 0 .5rem;color:#71717a;\
font-size:.9rem}.choices{display:flex;gap:.75rem;flex-wrap:wrap}button{font:inherit;cursor:pointer;\
padding:.6rem 1.2rem;border-radius:6px;border:1px solid #1f1f23;background:#1f1f23;color:#fff}\
button.secondary{background:#fff;color:#1f1f23}.more{margin-top:1.5rem;font-size:.9rem}\
a{color:#3f3f46}";

/// Everything a browser may load or do with a page: inline styles, and forms posting back here.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
base-uri 'none'; frame-ancestors 'none'";

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let body = self.html();
        let mut response = (self.status, body).into_response();
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        if let Some(seconds) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_forms_post_to_the_same_url() {
        let mut page = Page::new(StatusCode::OK, "en", "<Unsubscribe>");
        page.brand = Some("Acme & Co".into());
        page.paragraphs.push("<strong>a***@b.co</strong>".into());
        page.form = Some(Form::Button {
            label: "Unsubscribe",
        });
        page.link = Some(("../manage/t\"x".into(), "Manage"));
        let html = page.html();
        assert!(html.contains("<h1>&lt;Unsubscribe&gt;</h1>"));
        assert!(html.contains("Acme &amp; Co"));
        assert!(html.contains("<p><strong>a***@b.co</strong></p>"));
        assert!(html.contains("<form method=\"post\"><button"));
        assert!(!html.contains("action=\""), "no form action: the same URL");
        assert!(html.contains("href=\"../manage/t&quot;x\""));
        assert!(!html.contains("http"), "nothing external: {html}");
    }

    #[test]
    fn the_manage_form_has_both_actions() {
        let mut page = Page::new(StatusCode::OK, "de", "Einstellungen");
        page.form = Some(Form::Manage {
            unsubscribe: "Abmelden",
            subscribe: "Anmelden",
            subscribed: true,
        });
        let html = page.html();
        assert!(html.contains("<html lang=\"de\">"));
        assert!(html.contains("name=\"action\" value=\"unsubscribe\">Abmelden<"));
        assert!(html.contains("name=\"action\" value=\"subscribe\" class=\"secondary\">Anmelden<"));
        page.form = Some(Form::Manage {
            unsubscribe: "Abmelden",
            subscribe: "Anmelden",
            subscribed: false,
        });
        let html = page.html();
        assert!(html.contains("value=\"unsubscribe\" class=\"secondary\">Abmelden<"));
        assert!(html.contains("value=\"subscribe\">Anmelden<"));
    }
}
