//! Templates: the record and its field rules, and the template language.
//!
//! The language is Liquid as implemented by `liquid-core`/`liquid-lib` (the engine behind the
//! `liquid` crate) with its standard tags and filters, minus `include`/`render`/`layout`/
//! `tablerow`, plus:
//! - the `??` shorthand, rewritten before parsing (`{{ a ?? "x" }}` → `{{ a | default: "x" }}`);
//! - syntax errors reported as `line <L>, column <C>: <message>` against the source as written;
//! - a lenient runtime: an undefined variable is `nil` (renders empty) instead of an error, bare
//!   names fall back to keys of `data`, and the system variables are always present;
//! - array and number filters read a `nil` input as `[]` or `0` (as Liquid's reference
//!   implementation does) instead of failing the render;
//! - outputs of an HTML body are escaped unless they end in `raw`;
//! - the engine is total: bounds checked before parsing (64-bit integers, nesting, literal
//!   ranges) and while rendering (10,000 loop iterations, 1 MiB of body, 998 characters of
//!   subject, 250 ms, the memory values take), checked arithmetic, and any panic left in the
//!   engine contained to the one render.
//!
//! Known edges of the lenient runtime, which still fail a render: indexing into a scalar from a
//! loop variable (`{% for i in items %}{{ i.name.x }}` where `name` is a string), a bracket index
//! that is itself undefined (`data[undefined]`), and members of `forloop` that do not exist.
//!
//! Everything here is pure: parsing and rendering perform no I/O.
//!
//! | Module | What it holds |
//! |---|---|
//! | `lexer` | reading elements and tokens exactly as the parser will |
//! | `scan` | finding outputs and tags leniently (for `??` and error positions) |
//! | `prepare` | the `??` rewrite, refused tags, output escaping |
//! | `static_bounds` | what the parser must never see (huge integers, deep nesting, huge ranges) |
//! | `syntax` | the syntax check and its error positions |
//! | `language` | the tags, blocks and filters offered |
//! | `blocks` | the bounded `for` and `capture`, the escaped `cycle` |
//! | `filters` | the guard around every filter, and `raw` |
//! | `bounds` | the budget of one render |
//! | `runtime` | the lenient variable lookup |
//! | `render` | the render entry points |

mod blocks;
pub mod bounds;
mod filters;
mod language;
mod lexer;
mod prepare;
mod render;
mod runtime;
mod scan;
mod static_bounds;
mod syntax;

pub use bounds::Bound;
pub use render::{render, render_html, render_subject, RenderContext, RenderError};
pub use syntax::check_syntax;

use crate::email::EmailAddress;
use crate::time::Timestamp;
use crate::validation::{FieldCode, FieldError, Fields, Patch};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::fmt;
use uuid::Uuid;

// ------------------------------------------------------------------------------------------------
// The record and its field rules
// ------------------------------------------------------------------------------------------------

/// Longest `name`, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest `description`, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Longest `subject`, in characters.
pub const MAX_SUBJECT_CHARS: usize = 998;
/// Largest `body`, in UTF-8 bytes.
pub const MAX_BODY_BYTES: usize = 524_288;
/// Longest `fromName`, in characters.
pub const MAX_FROM_NAME_CHARS: usize = 100;

/// What kind of email a template makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateType {
    Transactional,
    #[default]
    Marketing,
    Headless,
}

impl TemplateType {
    /// Every type, in the order of the spec.
    pub const ALL: [TemplateType; 3] = [
        TemplateType::Transactional,
        TemplateType::Marketing,
        TemplateType::Headless,
    ];

    /// The wire form, e.g. `MARKETING`.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateType::Transactional => "TRANSACTIONAL",
            TemplateType::Marketing => "MARKETING",
            TemplateType::Headless => "HEADLESS",
        }
    }

    /// Parses the wire form (case-sensitive).
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }
}

impl fmt::Display for TemplateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A template of one project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub subject: String,
    pub body: String,
    pub from: EmailAddress,
    pub from_name: Option<String>,
    pub reply_to: Option<EmailAddress>,
    #[serde(rename = "type")]
    pub template_type: TemplateType,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The name of a duplicate: `"<name> (copy)"`, cut to [`MAX_NAME_CHARS`] characters.
pub fn copy_name(name: &str) -> String {
    format!("{name} (copy)")
        .chars()
        .take(MAX_NAME_CHARS)
        .collect()
}

impl Template {
    /// Applies validated changes; returns whether anything changed (`updatedAt` is the caller's).
    pub fn apply(&mut self, changes: &TemplateChanges) -> bool {
        let before = self.clone();
        if let Some(v) = &changes.name {
            self.name = v.clone();
        }
        apply_patch(&mut self.description, &changes.description);
        if let Some(v) = &changes.subject {
            self.subject = v.clone();
        }
        if let Some(v) = &changes.body {
            self.body = v.clone();
        }
        if let Some(v) = &changes.from {
            self.from = v.clone();
        }
        apply_patch(&mut self.from_name, &changes.from_name);
        apply_patch(&mut self.reply_to, &changes.reply_to);
        if let Some(v) = changes.template_type {
            self.template_type = v;
        }
        *self != before
    }

    /// A copy with a new id and timestamps, named by [`copy_name`], same content and type.
    pub fn duplicate(&self, id: Uuid, now: Timestamp) -> Template {
        Template {
            id,
            name: copy_name(&self.name),
            created_at: now,
            updated_at: now,
            ..self.clone()
        }
    }
}

fn apply_patch<T: Clone>(target: &mut Option<T>, patch: &Patch<T>) {
    match patch {
        Patch::Absent => {}
        Patch::Null => *target = None,
        Patch::Set(v) => *target = Some(v.clone()),
    }
}

/// The members of a create or PATCH body, each validated by its field rule. `None`/`Absent` means
/// "not given".
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateChanges {
    pub name: Option<String>,
    pub description: Patch<String>,
    pub subject: Option<String>,
    pub body: Option<String>,
    pub from: Option<EmailAddress>,
    pub from_name: Patch<String>,
    pub reply_to: Patch<EmailAddress>,
    pub template_type: Option<TemplateType>,
}

impl Default for TemplateChanges {
    fn default() -> Self {
        Self {
            name: None,
            description: Patch::Absent,
            subject: None,
            body: None,
            from: None,
            from_name: Patch::Absent,
            reply_to: Patch::Absent,
            template_type: None,
        }
    }
}

impl TemplateChanges {
    /// Reads a `POST /templates` body: `name`, `subject`, `body` and `from` are required.
    pub fn read_create(fields: &mut Fields<'_>) -> Self {
        Self::read(fields, true)
    }

    /// Reads a `PATCH /templates/:id` body: any subset; `description`, `fromName` and `replyTo`
    /// accept `null`.
    pub fn read_patch(fields: &mut Fields<'_>) -> Self {
        Self::read(fields, false)
    }

    fn read(fields: &mut Fields<'_>, create: bool) -> Self {
        let string = |fields: &mut Fields<'_>, name: &str, min: usize, max: usize| {
            if create {
                fields.required_string(name, min, max)
            } else {
                fields.optional_string(name, min, max)
            }
            .map(str::to_owned)
        };
        let name = string(fields, "name", 1, MAX_NAME_CHARS);
        let description = nullable_string(fields, "description", 0, MAX_DESCRIPTION_CHARS);
        let subject = string(fields, "subject", 1, MAX_SUBJECT_CHARS)
            .filter(|s| single_line(fields, "subject", s));
        let body = string(fields, "body", 1, usize::MAX).filter(|b| {
            let fits = b.len() <= MAX_BODY_BYTES;
            if !fits {
                fields.error(
                    "body",
                    FieldCode::TooBig,
                    format!("Must be at most {MAX_BODY_BYTES} bytes"),
                );
            }
            fits
        });
        let from = if create {
            fields.required_email("from")
        } else {
            fields.optional_email("from")
        };
        let from_name = match nullable_string(fields, "fromName", 0, MAX_FROM_NAME_CHARS) {
            Patch::Set(s) if !single_line(fields, "fromName", &s) => Patch::Absent,
            other => other,
        };
        let reply_to = match fields.raw("replyTo") {
            Some(Json::Null) => Patch::Null,
            _ => fields
                .optional_email("replyTo")
                .map_or(Patch::Absent, Patch::Set),
        };
        let template_type = read_type(fields, "type");
        Self {
            name,
            description,
            subject,
            body,
            from,
            from_name,
            reply_to,
            template_type,
        }
    }

    /// True when no member was given.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The Liquid syntax of the given `subject` and `body`: one `template_syntax` error per
    /// failing field.
    pub fn syntax_errors(&self) -> Vec<FieldError> {
        [("subject", &self.subject), ("body", &self.body)]
            .into_iter()
            .filter_map(|(field, source)| {
                let error = check_syntax(source.as_deref()?).err()?;
                Some(FieldError::new(
                    field,
                    FieldCode::TemplateSyntax,
                    error.to_string(),
                ))
            })
            .collect()
    }

    /// The new template of a create body; `None` when a required member is missing.
    pub fn into_template(self, id: Uuid, now: Timestamp) -> Option<Template> {
        Some(Template {
            id,
            name: self.name?,
            description: patch_value(self.description),
            subject: self.subject?,
            body: self.body?,
            from: self.from?,
            from_name: patch_value(self.from_name),
            reply_to: patch_value(self.reply_to),
            template_type: self.template_type.unwrap_or_default(),
            created_at: now,
            updated_at: now,
        })
    }
}

fn patch_value<T>(patch: Patch<T>) -> Option<T> {
    match patch {
        Patch::Set(v) => Some(v),
        Patch::Absent | Patch::Null => None,
    }
}

/// A string member that may also be `null`.
fn nullable_string(fields: &mut Fields<'_>, name: &str, min: usize, max: usize) -> Patch<String> {
    match fields.raw(name) {
        Some(Json::Null) => Patch::Null,
        _ => fields
            .optional_string(name, min, max)
            .map_or(Patch::Absent, |s| Patch::Set(s.to_owned())),
    }
}

/// Records an error when `value` contains CR or LF; returns whether it is a single line.
fn single_line(fields: &mut Fields<'_>, name: &str, value: &str) -> bool {
    let ok = !value.contains(['\r', '\n']);
    if !ok {
        fields.error(
            name,
            FieldCode::InvalidString,
            "Must not contain line breaks",
        );
    }
    ok
}

/// An optional `TRANSACTIONAL | MARKETING | HEADLESS` member (`null` is an error).
fn read_type(fields: &mut Fields<'_>, name: &str) -> Option<TemplateType> {
    match fields.raw(name)? {
        Json::String(s) => {
            let parsed = TemplateType::parse(s);
            if parsed.is_none() {
                fields.error(
                    name,
                    FieldCode::InvalidEnumValue,
                    "Expected one of TRANSACTIONAL, MARKETING, HEADLESS",
                );
            }
            parsed
        }
        Json::Null => {
            fields.error(
                name,
                FieldCode::InvalidType,
                "Expected a value, received null",
            );
            None
        }
        _ => {
            fields.error(name, FieldCode::InvalidType, "Expected a string");
            None
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Errors of the language
// ------------------------------------------------------------------------------------------------

/// A template that does not parse. Line and column are 1-based, the
/// column counted in characters, against the source as written (before `??` rewriting).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct TemplateSyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[cfg(test)]
mod tests;
