//! Rendering an email once, at send time (spec templates.md §3.3–§3.4): the contact's data as
//! stored now, overlaid with the one-shot values captured at acceptance, plus system variables.

use plunk_domain::contact::Contact;
use plunk_domain::email_record::{EmailContent, EmailRecord};
use plunk_domain::project::Project;
use plunk_domain::template::{render, RenderContext};
use serde_json::{Map, Value};

/// A rendered subject and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
}

/// Renders subject and body; the error is the renderer's message.
pub fn render_email(
    project: &Project,
    contact: Option<&Contact>,
    record: &EmailRecord,
    content: &EmailContent,
) -> Result<Rendered, String> {
    let mut data: Map<String, Value> = contact.map(|c| c.data.clone()).unwrap_or_default();
    for (k, v) in &content.one_shot {
        data.insert(k.clone(), v.clone());
    }
    let locale = data
        .get("locale")
        .and_then(Value::as_str)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| project.language.clone());
    let ctx = RenderContext {
        contact_id: contact.map(|c| c.id).unwrap_or_default(),
        email: record.to.clone(),
        subscribed: contact.is_some_and(|c| c.subscribed),
        locale,
        // Hosted pages and their signed links arrive with the unsubscribe issue.
        unsubscribe_url: String::new(),
        subscribe_url: String::new(),
        manage_url: String::new(),
        data,
        event: Map::new(),
    };
    Ok(Rendered {
        subject: render(&content.subject, &ctx).map_err(|e| e.message)?,
        html: render(&content.body, &ctx).map_err(|e| e.message)?,
    })
}
