//! Rendering: once per email, with the contact's data,
//! the one-shot values and the system variables, inside the render's bounds. A failure of any
//! kind — a runtime error, a crossed bound, even a panic inside the engine — is a
//! [`RenderError`] of this one render; nothing half-rendered is returned.

use super::bounds::{
    Bound, BoundedWriter, Budget, MAX_RENDERED_BODY_BYTES, MAX_RENDERED_SUBJECT_CHARS,
};
use super::prepare::{escape_outputs, prepare};
use super::runtime::{Globals, LenientRuntime};
use super::syntax::{check_syntax, parse, LiquidFailure};
use crate::contact::Contact;
use liquid_core::Renderable;
use serde_json::{Map, Value as Json};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use uuid::Uuid;

/// What a template sees.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderContext {
    /// `id`, `plunk_id`.
    pub contact_id: Uuid,
    /// `email`, `plunk_email`.
    pub email: String,
    /// `subscribed`.
    pub subscribed: bool,
    /// `locale`: `data.locale` or the project language.
    pub locale: String,
    /// `unsubscribeUrl`: the hosted page URL with this contact's and email's signed token.
    pub unsubscribe_url: String,
    /// `subscribeUrl`.
    pub subscribe_url: String,
    /// `manageUrl`.
    pub manage_url: String,
    /// `data`: the contact data overlaid with this email's one-shot values; any other bare name
    /// resolves to the same key of this object.
    pub data: Map<String, Json>,
    /// `event`: the workflow execution context; empty elsewhere.
    pub event: Map<String, Json>,
}

impl RenderContext {
    /// The context of `contact`: its data overlaid with `one_shot`, `locale` from the merged
    /// `data.locale` (a non-empty string) or else `project_language`. URLs start empty and
    /// `event` as `{}`; set them with [`Self::with_urls`] and [`Self::with_event`].
    pub fn for_contact(
        contact: &Contact,
        one_shot: &Map<String, Json>,
        project_language: &str,
    ) -> Self {
        let mut data = contact.data.clone();
        for (k, v) in one_shot {
            data.insert(k.clone(), v.clone());
        }
        let locale = match data.get("locale") {
            Some(Json::String(l)) if !l.is_empty() => l.clone(),
            _ => project_language.to_owned(),
        };
        Self {
            contact_id: contact.id,
            email: contact.email.to_string(),
            subscribed: contact.subscribed,
            locale,
            unsubscribe_url: String::new(),
            subscribe_url: String::new(),
            manage_url: String::new(),
            data,
            event: Map::new(),
        }
    }

    /// Sets the hosted page URLs.
    pub fn with_urls(
        mut self,
        unsubscribe: impl Into<String>,
        subscribe: impl Into<String>,
        manage: impl Into<String>,
    ) -> Self {
        self.unsubscribe_url = unsubscribe.into();
        self.subscribe_url = subscribe.into();
        self.manage_url = manage.into();
        self
    }

    /// Sets the workflow execution context.
    pub fn with_event(mut self, event: Map<String, Json>) -> Self {
        self.event = event;
        self
    }
}

/// A template that failed while rendering: a runtime error such as `divided_by: 0`, or a bound
/// crossed (`bounds`). The send path records it as `RENDER_FAILED: <message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderError {
    /// What went wrong, in the words of a template author.
    pub message: String,
    /// The bound crossed, when that is why.
    pub bound: Option<Bound>,
}

impl RenderError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            bound: None,
        }
    }

    fn bound(bound: Bound) -> Self {
        Self {
            message: bound.to_string(),
            bound: Some(bound),
        }
    }
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RenderError {}

/// What is being rendered, which decides escaping and the size bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// An HTML body: outputs escaped, at most 1 MiB.
    Html,
    /// Text (a webhook body, a preview of text): nothing escaped, at most 1 MiB.
    Text,
    /// A subject: nothing escaped, at most 998 characters.
    Subject,
}

/// Renders an email body (HTML): every output is HTML-escaped unless its last filter is `raw`.
pub fn render_html(source: &str, context: &RenderContext) -> Result<String, RenderError> {
    render_as(source, context, Output::Html)
}

/// Renders a subject: nothing escaped, at most 998 characters.
pub fn render_subject(source: &str, context: &RenderContext) -> Result<String, RenderError> {
    render_as(source, context, Output::Subject)
}

/// Renders text: nothing escaped, at most 1 MiB.
pub fn render(source: &str, context: &RenderContext) -> Result<String, RenderError> {
    render_as(source, context, Output::Text)
}

fn render_as(source: &str, context: &RenderContext, output: Output) -> Result<String, RenderError> {
    catch_unwind(AssertUnwindSafe(|| {
        render_contained(source, context, output)
    }))
    .unwrap_or_else(|_| {
        Err(RenderError::new(
            "the template engine failed on this template",
        ))
    })
}

fn render_contained(
    source: &str,
    context: &RenderContext,
    output: Output,
) -> Result<String, RenderError> {
    let syntax = || {
        RenderError::new(match check_syntax(source) {
            Err(e) => format!("template syntax error at {e}"),
            Ok(()) => "template syntax error".into(),
        })
    };
    let prepared = prepare(source);
    if prepared.hazard.is_some() || prepared.first_error.is_some() {
        return Err(syntax());
    }
    let text = match output {
        Output::Html => escape_outputs(&prepared.text),
        Output::Text | Output::Subject => prepared.text,
    };
    let template = liquid_core::Template::new(parse(&text).map_err(|_| syntax())?);
    let globals = Globals::new(context);
    let (limit, bound) = match output {
        Output::Html | Output::Text => (MAX_RENDERED_BODY_BYTES, Bound::BodySize),
        // Characters are at most 4 bytes; the exact count is taken after.
        Output::Subject => (4 * MAX_RENDERED_SUBJECT_CHARS, Bound::SubjectLength),
    };
    let (rendered, crossed) = Budget::run(output == Output::Html, || {
        let runtime = LenientRuntime::new(&globals);
        let mut out = Vec::with_capacity(source.len() + 256);
        template
            .render_to(&mut BoundedWriter::new(&mut out, limit, bound), &runtime)
            .map(|()| out)
    });
    if let Some(bound) = crossed {
        return Err(RenderError::bound(bound));
    }
    let out = rendered.map_err(|e| RenderError::new(LiquidFailure::of(&e).describe()))?;
    let text = String::from_utf8(out)
        .map_err(|_| RenderError::new("the rendered text is not valid UTF-8"))?;
    if output == Output::Subject && text.chars().count() > MAX_RENDERED_SUBJECT_CHARS {
        return Err(RenderError::bound(Bound::SubjectLength));
    }
    Ok(text)
}
