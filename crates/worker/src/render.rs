//! Rendering an email once, at send time: the contact's data as
//! stored now, overlaid with the one-shot values captured at acceptance, plus system variables
//! (the hosted-page URLs among them). Then the unsubscribe headers and the localised footer
//!.

use plunk_domain::contact::Contact;
use plunk_domain::email_record::EmailContent;
use plunk_domain::language::Language;
use plunk_domain::list_unsubscribe::{
    footer_applies, footer_html, footer_text, headers_apply, insert_before_body_end,
    with_generated_headers,
};
use plunk_domain::page_token::HostedUrls;
use plunk_domain::project::Project;
use plunk_domain::template::{
    render_html, render_subject, RenderContext, RenderError, TemplateType,
};
use serde_json::{Map, Value};

/// The part of an email that failed to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Subject,
    Body,
}

/// Why an email did not render: which part, and the engine's error (a crossed render bound
/// included). Shown as the error alone, as in `RENDER_FAILED: <message>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct RenderFailure {
    pub part: Part,
    pub error: RenderError,
}

/// A rendered subject and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    /// The language of the footer: the effective `locale`, else the project's, else English.
    pub language: Language,
}

/// Renders subject and body (the body as HTML: outputs escaped unless `raw`); the error says
/// what failed, a render bound included. `urls` are this email's hosted-page
/// links (`None` without a contact or a public URL: the variables are empty).
pub fn render_email(
    project: &Project,
    contact: Option<&Contact>,
    to: &str,
    content: &EmailContent,
    urls: Option<&HostedUrls>,
) -> Result<Rendered, RenderFailure> {
    let mut data: Map<String, Value> = contact.map(|c| c.data.clone()).unwrap_or_default();
    for (k, v) in &content.one_shot {
        data.insert(k.clone(), v.clone());
    }
    let locale = plunk_domain::language::contact_locale(&data).map(str::to_owned);
    let language = Language::pick(locale.as_deref(), &project.language);
    let url = |pick: fn(&HostedUrls) -> &String| urls.map(pick).cloned().unwrap_or_default();
    let ctx = RenderContext {
        contact_id: contact.map(|c| c.id).unwrap_or_default(),
        email: to.to_owned(),
        subscribed: contact.is_some_and(|c| c.subscribed),
        locale: locale.unwrap_or_else(|| project.language.clone()),
        unsubscribe_url: url(|u| &u.unsubscribe),
        subscribe_url: url(|u| &u.subscribe),
        manage_url: url(|u| &u.manage),
        data,
        event: content.event.clone(),
    };
    Ok(Rendered {
        subject: render_subject(&content.subject, &ctx).map_err(|error| RenderFailure {
            part: Part::Subject,
            error,
        })?,
        html: render_html(&content.body, &ctx).map_err(|error| RenderFailure {
            part: Part::Body,
            error,
        })?,
        language,
    })
}

/// The parts of the message that the unsubscribe rules touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub html: String,
    pub text: String,
    pub headers: Vec<(String, String)>,
}

/// Adds the unsubscribe headers and the footer where they apply, and derives the text part.
/// The footer goes on MARKETING-type marketing email only (a HEADLESS author places the link
/// themselves); the headers on every marketing email and on any email linking its own
/// unsubscribe URL.
pub fn finish(
    rendered: &Rendered,
    marketing: bool,
    content: &EmailContent,
    urls: Option<&HostedUrls>,
) -> Finished {
    let unsubscribe_url = urls.map(|u| u.unsubscribe.as_str());
    let headers = if headers_apply(marketing, &rendered.html, unsubscribe_url) {
        with_generated_headers(content.headers.clone(), unsubscribe_url, marketing)
    } else {
        content.headers.clone()
    };
    let mut text = plunk_messaging::mailer::mime::html_to_text(&rendered.html);
    let marketing_type = marketing && content.template_type != Some(TemplateType::Headless);
    let html = match urls.filter(|u| footer_applies(marketing_type, &rendered.html, u)) {
        Some(u) => {
            text.push_str(&footer_text(rendered.language, u));
            insert_before_body_end(&rendered.html, &footer_html(rendered.language, u))
        }
        None => rendered.html.clone(),
    };
    Finished {
        html,
        text,
        headers,
    }
}
