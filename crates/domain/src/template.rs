//! Templates (spec templates.md): the record and its field rules, and the template language.
//!
//! The language is Liquid as implemented by `liquid-core`/`liquid-lib` (the engine behind the
//! `liquid` crate) with its standard tags and filters, minus `include`/`render`/`layout`, plus:
//! - the `??` shorthand, rewritten before parsing (`{{ a ?? "x" }}` → `{{ a | default: "x" }}`);
//! - syntax errors reported as `line <L>, column <C>: <message>` against the source as written;
//! - a lenient runtime: an undefined variable is `nil` (renders empty) instead of an error, bare
//!   names fall back to keys of `data`, and the system variables of §3.3 are always present;
//! - array and number filters read a `nil` input as `[]` or `0` (as Liquid's reference
//!   implementation does) instead of failing the render.
//!
//! Known edges of the lenient runtime, which still fail a render: indexing into a scalar from a
//! loop variable (`{% for i in items %}{{ i.name.x }}` where `name` is a string), a bracket index
//! that is itself undefined (`data[undefined]`), and members of `forloop` that do not exist.
//!
//! Everything here is pure: parsing and rendering perform no I/O.

use crate::contact::Contact;
use crate::email::EmailAddress;
use crate::time::Timestamp;
use crate::validation::{FieldCode, FieldError, Fields, Patch};
use liquid_core::model::{
    try_find, ArrayView, DisplayCow, KString, KStringCow, KStringRef, ObjectView, ScalarCow, State,
    Value, ValueCow, ValueView,
};
use liquid_core::parser::{self, FilterArguments, Language};
use liquid_core::runtime::{PartialStore, Registers, RuntimeCore};
use liquid_core::{
    Filter, FilterReflection, ParseBlock, ParseFilter, ParseTag, Renderable, Runtime,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::OnceLock;
use uuid::Uuid;

// ------------------------------------------------------------------------------------------------
// The record and its field rules (spec templates.md §1)
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

/// What kind of email a template makes (spec templates.md §4).
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

    /// Parses the wire form (case-sensitive, spec README §2).
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
    /// failing field (spec templates.md §3.5).
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

/// A template that does not parse (spec templates.md §3.5). Line and column are 1-based, the
/// column counted in characters, against the source as written (before `??` rewriting).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct TemplateSyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A template that failed while rendering, e.g. `divided_by: 0` (spec templates.md §3.4); the
/// send path records it as `RENDER_FAILED: <message>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RenderError {
    pub message: String,
}

// ------------------------------------------------------------------------------------------------
// Syntax checking
// ------------------------------------------------------------------------------------------------

/// Tags that exist in Liquid but are refused here: templates cannot reach other templates.
const FORBIDDEN_TAGS: [&str; 3] = ["include", "render", "layout"];

/// Tags that open a block closed by `end<name>`.
const BLOCK_TAGS: [&str; 9] = [
    "if",
    "unless",
    "for",
    "case",
    "capture",
    "tablerow",
    "ifchanged",
    "comment",
    "raw",
];

/// Parses `source` as a template: Liquid syntax, the `??` rules and the refused tags.
pub fn check_syntax(source: &str) -> Result<(), TemplateSyntaxError> {
    let prepared = prepare(source);
    // Liquid parses the text with every non-ASCII character replaced by one ASCII control
    // character: validity is unchanged (such characters are only ever literal text or string
    // content) and the parser's columns become exact character columns.
    let ascii: String = prepared
        .text
        .chars()
        .map(|c| if c.is_ascii() { c } else { '\u{1}' })
        .collect();
    let liquid = parser::parse(&ascii, language())
        .err()
        .map(|e| locate_liquid_error(&prepared, &ascii, &e));
    let error = match (prepared.first_error, liquid) {
        (None, None) => return Ok(()),
        (Some(own), None) => (own.at, own.message),
        (None, Some(liquid)) => liquid,
        // The shorthand or tag error explains its element better than the parser does, unless
        // the parser found an earlier element at fault.
        (Some(own), Some(liquid)) if liquid.0 < own.element_start => liquid,
        (Some(own), Some(_)) => (own.at, own.message),
    };
    let (line, column) = line_col(source, error.0);
    Err(TemplateSyntaxError {
        line,
        column,
        message: error.1,
    })
}

/// An output (`{{ }}`) or tag (`{% %}`) in a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Output,
    Tag,
}

/// One element: byte offsets of its opening delimiter, of the byte after its closing delimiter,
/// and of its content without delimiters and whitespace-control hyphens.
#[derive(Debug, Clone, Copy)]
struct Segment {
    kind: Kind,
    start: usize,
    end: usize,
    inner: (usize, usize),
}

impl Segment {
    fn inner<'t>(&self, text: &'t str) -> &'t str {
        &text[self.inner.0..self.inner.1]
    }
}

fn is_liquid_space(c: char) -> bool {
    matches!(c, ' ' | '\n' | '\r' | '\t')
}

/// The name of a tag: its first word.
fn tag_name(inner: &str) -> &str {
    let t = inner.trim_start_matches(is_liquid_space);
    let len = t
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(t.len());
    &t[..len]
}

/// The next `{{` or `{%` at or after `from`.
fn next_opening(text: &str, from: usize) -> Option<(usize, Kind)> {
    let bytes = text.as_bytes();
    let mut i = from;
    while let Some(off) = text.get(i..)?.find('{') {
        let p = i + off;
        match bytes.get(p + 1) {
            Some(b'{') => return Some((p, Kind::Output)),
            Some(b'%') => return Some((p, Kind::Tag)),
            _ => i = p + 1,
        }
    }
    None
}

/// Completes the element opening at `start`, skipping quoted strings (Liquid strings have no
/// escapes). `None` when it is never closed.
fn segment_at(text: &str, start: usize, kind: Kind) -> Option<Segment> {
    let bytes = text.as_bytes();
    let close = match kind {
        Kind::Output => b'}',
        Kind::Tag => b'%',
    };
    let closing = match kind {
        Kind::Output => "}}",
        Kind::Tag => "%}",
    };
    let mut i = start + 2;
    let close_at = loop {
        match bytes.get(i) {
            None => return None,
            Some(&q @ (b'"' | b'\'')) => match text[i + 1..].find(q as char) {
                Some(off) => i += off + 2,
                // An unterminated string: the element ends at the next closing delimiter.
                None => break start + 2 + text[start + 2..].find(closing)?,
            },
            Some(&b) if b == close && bytes.get(i + 1) == Some(&b'}') => break i,
            Some(_) => i += 1,
        }
    };
    let mut inner_start = start + 2;
    if bytes.get(inner_start) == Some(&b'-') && inner_start < close_at {
        inner_start += 1;
    }
    let mut inner_end = close_at;
    if inner_end > inner_start && bytes[inner_end - 1] == b'-' {
        inner_end -= 1;
    }
    Some(Segment {
        kind,
        start,
        end: close_at + 2,
        inner: (inner_start, inner_end),
    })
}

/// Where the tag `{% end<name> %}` closing a block whose content starts at `from` begins (nested
/// same-name blocks counted when `nested`); the text's end when there is none.
fn block_close(text: &str, from: usize, name: &str, nested: bool) -> usize {
    let end_name = format!("end{name}");
    let mut depth = 1;
    let mut i = from;
    while let Some(off) = text[i..].find("{%") {
        let p = i + off;
        let rest = text[p + 2..].strip_prefix('-').unwrap_or(&text[p + 2..]);
        let rest = rest.trim_start_matches(is_liquid_space);
        let word = tag_name(rest);
        let after = rest[word.len()..].trim_start_matches(is_liquid_space);
        let bare = after.starts_with("%}") || after.starts_with("-%}");
        if bare && word == end_name {
            depth -= 1;
            if depth == 0 {
                return p;
            }
        } else if bare && nested && word == name {
            depth += 1;
        }
        i = p + 2;
    }
    text.len()
}

/// Every output and tag, in order. The content of `raw` and `comment` blocks is skipped (it is
/// not Liquid); their opening and closing tags are included.
fn scan(text: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut i = 0;
    while let Some((start, kind)) = next_opening(text, i) {
        let Some(segment) = segment_at(text, start, kind) else {
            break;
        };
        segments.push(segment);
        i = segment.end;
        if kind == Kind::Tag {
            match tag_name(segment.inner(text)) {
                "raw" => i = block_close(text, i, "raw", false),
                "comment" => i = block_close(text, i, "comment", true),
                _ => {}
            }
        }
    }
    segments
}

/// Byte offsets of `needle` in `inner` outside quoted strings.
fn unquoted_matches(inner: &str, needle: &str) -> Vec<usize> {
    let bytes = inner.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'"' | b'\'') => match inner[i + 1..].find(q as char) {
                Some(off) => i += off + 2,
                None => break,
            },
            _ if bytes[i..].starts_with(needle.as_bytes()) => {
                found.push(i);
                i += needle.len();
            }
            _ => i += 1,
        }
    }
    found
}

/// A number literal Liquid accepts: `[+-]digits[.digits]`.
fn is_number(word: &str) -> bool {
    let digits = word.strip_prefix(['+', '-']).unwrap_or(word);
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole) && fraction.is_none_or(all_digits)
}

/// Rewrites the `??` at `q` of an output's content: returns the end of the fallback (relative to
/// `inner`) and the text replacing `?? fallback`, or the offset and message of the problem.
fn rewrite_fallback(inner: &str, q: usize) -> Result<(usize, String), (usize, String)> {
    let after = q + 2;
    let rest = &inner[after..];
    let start = after + (rest.len() - rest.trim_start_matches(is_liquid_space).len());
    let tail = &inner[start..];
    if tail.is_empty() || tail.starts_with('|') {
        return Err((q, "'??' needs a fallback value".into()));
    }
    let (literal, len) = match tail.as_bytes()[0] {
        q @ (b'"' | b'\'') => match tail[1..].find(q as char) {
            Some(off) => (tail[..off + 2].to_owned(), off + 2),
            None => {
                return Err((start, "The fallback string after '??' is not closed".into()));
            }
        },
        _ => {
            let len = tail
                .find(|c: char| c.is_whitespace() || c == '|')
                .unwrap_or(tail.len());
            let word = &tail[..len];
            let literal = if is_number(word) {
                word.to_owned()
            } else if !word.contains('"') {
                format!("\"{word}\"")
            } else if !word.contains('\'') {
                format!("'{word}'")
            } else {
                return Err((
                    start,
                    "A bare fallback after '??' cannot contain both quote characters".into(),
                ));
            };
            (literal, len)
        }
    };
    Ok((start + len, format!("| default: {literal}")))
}

/// A replaced range: `original` in the source became `new_len` bytes at `new_start`.
#[derive(Debug, Clone, Copy)]
struct Edit {
    original: (usize, usize),
    new_start: usize,
    new_len: usize,
}

/// The first problem found by the pre-parse checks: where, in which element, and what.
#[derive(Debug, Clone)]
struct OwnError {
    element_start: usize,
    at: usize,
    message: String,
}

/// A source with its `??` shorthands rewritten, the map back to the source, and the first
/// problem of the shorthand and refused-tag rules.
#[derive(Debug)]
struct Prepared {
    text: String,
    edits: Vec<Edit>,
    first_error: Option<OwnError>,
}

impl Prepared {
    /// The source offset of an offset in the rewritten text.
    fn to_source(&self, offset: usize) -> usize {
        let mut shift: isize = 0;
        for edit in &self.edits {
            if offset < edit.new_start {
                break;
            }
            if offset < edit.new_start + edit.new_len {
                return edit.original.0;
            }
            shift = (edit.new_start + edit.new_len) as isize - edit.original.1 as isize;
        }
        (offset as isize - shift).max(0) as usize
    }
}

/// Applies the `??` rewriting and the pre-parse checks (spec templates.md §3.1–3.2).
fn prepare(source: &str) -> Prepared {
    let mut text = String::with_capacity(source.len() + 16);
    let mut edits = Vec::new();
    let mut first_error: Option<OwnError> = None;
    let mut record = |element_start: usize, at: usize, message: String| {
        if first_error.is_none() {
            first_error = Some(OwnError {
                element_start,
                at,
                message,
            });
        }
    };
    let mut copied = 0;
    for segment in scan(source) {
        let inner = segment.inner(source);
        let base = segment.inner.0;
        let marks = unquoted_matches(inner, "??");
        match segment.kind {
            Kind::Tag => {
                let name = tag_name(inner);
                if FORBIDDEN_TAGS.contains(&name) {
                    record(
                        segment.start,
                        segment.start,
                        format!("The '{name}' tag is not supported"),
                    );
                } else if let Some(q) = marks.first() {
                    record(
                        segment.start,
                        base + q,
                        "'??' is only allowed in output tags ({{ }}), not in {% %} tags".into(),
                    );
                }
            }
            Kind::Output => match marks.as_slice() {
                [] => {}
                [q] => match rewrite_fallback(inner, *q) {
                    Ok((end, replacement)) => {
                        text.push_str(&source[copied..base + q]);
                        edits.push(Edit {
                            original: (base + q, base + end),
                            new_start: text.len(),
                            new_len: replacement.len(),
                        });
                        text.push_str(&replacement);
                        copied = base + end;
                    }
                    Err((at, message)) => record(segment.start, base + at, message),
                },
                [_, second, ..] => record(
                    segment.start,
                    base + second,
                    "Only one '??' is allowed per output tag".into(),
                ),
            },
        }
    }
    text.push_str(&source[copied..]);
    Prepared {
        text,
        edits,
        first_error,
    }
}

/// A Liquid error taken apart: position (line, column) when the parser gave one, its message,
/// and its `key=value` context.
#[derive(Debug)]
struct LiquidFailure {
    position: Option<(usize, usize)>,
    message: String,
    context: Vec<(String, String)>,
}

impl LiquidFailure {
    fn of(error: &liquid_core::Error) -> Self {
        let text = error.to_string();
        let mut lines = text.lines();
        let head = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("liquid:")
            .trim();
        let mut failure = LiquidFailure {
            position: None,
            message: head.to_owned(),
            context: Vec::new(),
        };
        if let Some(at) = head.strip_prefix("-->") {
            failure.position = at
                .trim()
                .split_once(':')
                .and_then(|(l, c)| Some((l.trim().parse().ok()?, c.trim().parse().ok()?)));
        }
        for line in lines {
            if let Some(message) = line.strip_prefix("  = ") {
                if failure.position.is_some() && failure.message.starts_with("-->") {
                    failure.message = message.trim().to_owned();
                }
            } else if let Some(pair) = line.strip_prefix("    ") {
                if let Some((k, v)) = pair.split_once('=') {
                    failure
                        .context
                        .push((k.trim().to_owned(), v.trim().to_owned()));
                }
            }
        }
        failure
    }

    fn context(&self, key: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The message shown to template authors.
    fn describe(&self) -> String {
        let message = self.message.trim_end_matches('.');
        match (message, self.context("requested")) {
            ("Unknown tag", Some(name))
                if name.starts_with("end") || ["else", "elsif", "when"].contains(&name) =>
            {
                return format!("Unexpected '{name}' tag");
            }
            ("Unknown tag", Some(name)) => return format!("Unknown tag '{name}'"),
            _ => {}
        }
        if message == "Unknown filter" {
            if let Some(name) = self.context("requested filter") {
                return format!("Unknown filter '{name}'");
            }
        }
        let mut out = message.to_owned();
        if let Some(cause) = self.context("cause") {
            out.push_str(": ");
            out.push_str(cause);
        }
        if let Some(filter) = self.context("filter") {
            out.push_str(&format!(" (filter '{}')", filter.trim()));
        }
        out
    }
}

/// Where (offset in the source) and why the parser refused the prepared text.
fn locate_liquid_error(
    prepared: &Prepared,
    ascii: &str,
    error: &liquid_core::Error,
) -> (usize, String) {
    let failure = LiquidFailure::of(error);
    if failure.message.starts_with("Unclosed block") {
        if let Some((name, at)) = innermost_unclosed(&prepared.text) {
            return (
                prepared.to_source(at),
                format!("'{name}' tag is not closed"),
            );
        }
    }
    // A tag whose filter chain fails (e.g. `assign` with an unknown filter) reports only that
    // the chain did not parse: the filter call itself says why.
    if failure.position.is_none() || failure.message.contains("FilterChain") {
        if let Some((at, failure)) = first_failing_filter(&prepared.text) {
            return (prepared.to_source(at), failure.describe());
        }
    }
    if let Some((line, column)) = failure.position {
        let chars = char_offset(ascii, line, column);
        let offset = prepared
            .text
            .char_indices()
            .nth(chars)
            .map_or(prepared.text.len(), |(b, _)| b);
        return (prepared.to_source(offset), failure.describe());
    }
    (0, failure.describe())
}

/// The character offset of a 1-based line and column in an ASCII text.
fn char_offset(ascii: &str, line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match ascii[start..].find('\n') {
            Some(off) => start += off + 1,
            None => break,
        }
    }
    (start + column.saturating_sub(1)).min(ascii.len())
}

/// The 1-based line and character column of a byte offset (lines end at `\n`).
fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The innermost block left open at the end of `text`: its name and where its tag starts.
fn innermost_unclosed(text: &str) -> Option<(String, usize)> {
    let mut open: Vec<(&str, usize)> = Vec::new();
    for segment in scan(text).into_iter().filter(|s| s.kind == Kind::Tag) {
        let name = tag_name(segment.inner(text));
        if BLOCK_TAGS.contains(&name) {
            open.push((name, segment.start));
        } else if let Some(closed) = name.strip_prefix("end") {
            if open.last().is_some_and(|(n, _)| *n == closed) {
                open.pop();
            }
        }
    }
    open.last().map(|(n, at)| ((*n).to_owned(), *at))
}

/// The first filter call (`| name: args`) of any element that fails to parse on its own: where
/// its name starts and the failure.
fn first_failing_filter(text: &str) -> Option<(usize, LiquidFailure)> {
    for segment in scan(text) {
        let inner = segment.inner(text);
        let pipes = unquoted_matches(inner, "|");
        for (i, &pipe) in pipes.iter().enumerate() {
            let end = pipes.get(i + 1).copied().unwrap_or(inner.len());
            let call = &inner[pipe + 1..end];
            let probe = format!("{{{{ x |{call} }}}}");
            if let Err(e) = parser::parse(&probe, language()) {
                let lead = call.len() - call.trim_start_matches(is_liquid_space).len();
                return Some((segment.inner.0 + pipe + 1 + lead, LiquidFailure::of(&e)));
            }
        }
    }
    None
}

/// The standard tags, blocks and filters, without `include` and `render`; built once.
fn language() -> &'static Language {
    static LANGUAGE: OnceLock<Language> = OnceLock::new();
    LANGUAGE.get_or_init(|| {
        use liquid_lib::stdlib;
        let mut lang = Language::empty();
        let tags: Vec<Box<dyn ParseTag>> = vec![
            Box::new(stdlib::AssignTag),
            Box::new(stdlib::BreakTag),
            Box::new(stdlib::ContinueTag),
            Box::new(stdlib::CycleTag),
            Box::new(stdlib::IncrementTag),
            Box::new(stdlib::DecrementTag),
        ];
        for tag in tags {
            lang.tags.register(tag.reflection().tag().to_owned(), tag);
        }
        let blocks: Vec<Box<dyn ParseBlock>> = vec![
            Box::new(stdlib::RawBlock),
            Box::new(stdlib::IfBlock),
            Box::new(stdlib::UnlessBlock),
            Box::new(stdlib::IfChangedBlock),
            Box::new(stdlib::ForBlock),
            Box::new(stdlib::TableRowBlock),
            Box::new(stdlib::CommentBlock),
            Box::new(stdlib::CaptureBlock),
            Box::new(stdlib::CaseBlock),
        ];
        for block in blocks {
            lang.blocks
                .register(block.reflection().start_tag().to_owned(), block);
        }
        let filters: Vec<Box<dyn ParseFilter>> = vec![
            Box::new(stdlib::Abs),
            Box::new(stdlib::Append),
            Box::new(stdlib::AtLeast),
            Box::new(stdlib::AtMost),
            Box::new(stdlib::Capitalize),
            Box::new(stdlib::Ceil),
            Box::new(stdlib::Compact),
            Box::new(stdlib::Concat),
            Box::new(stdlib::Date),
            Box::new(stdlib::Default),
            Box::new(stdlib::DividedBy),
            Box::new(stdlib::Downcase),
            Box::new(stdlib::Escape),
            Box::new(stdlib::EscapeOnce),
            Box::new(stdlib::First),
            Box::new(stdlib::Floor),
            Box::new(stdlib::Join),
            Box::new(stdlib::Last),
            Box::new(stdlib::Lstrip),
            Box::new(stdlib::Map),
            Box::new(stdlib::Minus),
            Box::new(stdlib::Modulo),
            Box::new(stdlib::NewlineToBr),
            Box::new(stdlib::Plus),
            Box::new(stdlib::Prepend),
            Box::new(stdlib::Remove),
            Box::new(stdlib::RemoveFirst),
            Box::new(stdlib::Replace),
            Box::new(stdlib::ReplaceFirst),
            Box::new(stdlib::Reverse),
            Box::new(stdlib::Round),
            Box::new(stdlib::Rstrip),
            Box::new(stdlib::Size),
            Box::new(stdlib::Slice),
            Box::new(stdlib::Sort),
            Box::new(stdlib::SortNatural),
            Box::new(stdlib::Split),
            Box::new(stdlib::Strip),
            Box::new(stdlib::StripHtml),
            Box::new(stdlib::StripNewlines),
            Box::new(stdlib::Times),
            Box::new(stdlib::Truncate),
            Box::new(stdlib::TruncateWords),
            Box::new(stdlib::Uniq),
            Box::new(stdlib::Upcase),
            Box::new(stdlib::UrlDecode),
            Box::new(stdlib::UrlEncode),
            Box::new(stdlib::Where),
        ];
        for filter in filters {
            let name = filter.reflection().name().to_owned();
            let filter: Box<dyn ParseFilter> = match NilAs::for_filter(&name) {
                Some(nil_as) => Box::new(NilTolerant {
                    inner: filter,
                    nil_as,
                }),
                None => filter,
            };
            lang.filters.register(name, filter);
        }
        lang
    })
}

/// What a filter that fails on `nil` reads an undefined (`nil`) input as, the way Liquid's
/// reference implementation does, so an undefined variable never fails a render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NilAs {
    EmptyArray,
    Zero,
}

impl NilAs {
    fn for_filter(name: &str) -> Option<Self> {
        const ARRAY: [&str; 11] = [
            "join",
            "first",
            "last",
            "map",
            "compact",
            "uniq",
            "reverse",
            "concat",
            "sort",
            "sort_natural",
            "where",
        ];
        const NUMBER: [&str; 11] = [
            "plus",
            "minus",
            "times",
            "divided_by",
            "modulo",
            "round",
            "ceil",
            "floor",
            "abs",
            "at_least",
            "at_most",
        ];
        if ARRAY.contains(&name) {
            Some(NilAs::EmptyArray)
        } else if NUMBER.contains(&name) {
            Some(NilAs::Zero)
        } else {
            None
        }
    }

    fn value(self) -> Value {
        match self {
            NilAs::EmptyArray => Value::Array(Vec::new()),
            NilAs::Zero => Value::scalar(0i64),
        }
    }
}

/// A standard filter whose `nil` input is replaced by a neutral value (see [`NilAs`]).
#[derive(Clone)]
struct NilTolerant {
    inner: Box<dyn ParseFilter>,
    nil_as: NilAs,
}

impl ParseFilter for NilTolerant {
    fn parse(&self, arguments: FilterArguments) -> liquid_core::Result<Box<dyn Filter>> {
        Ok(Box::new(NilTolerantFilter {
            inner: self.inner.parse(arguments)?,
            nil_as: self.nil_as,
        }))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self.inner.reflection()
    }
}

#[derive(Debug)]
struct NilTolerantFilter {
    inner: Box<dyn Filter>,
    nil_as: NilAs,
}

impl fmt::Display for NilTolerantFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl Filter for NilTolerantFilter {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> liquid_core::Result<Value> {
        if input.is_nil() {
            self.inner.evaluate(&self.nil_as.value(), runtime)
        } else {
            self.inner.evaluate(input, runtime)
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Rendering
// ------------------------------------------------------------------------------------------------

/// What a template sees (spec templates.md §3.3).
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

/// Renders a subject or body for one recipient. A template that does not parse, or a runtime
/// failure such as `divided_by: 0`, is an error: nothing half-rendered is returned.
pub fn render(source: &str, context: &RenderContext) -> Result<String, RenderError> {
    let prepared = prepare(source);
    let syntax = |source: &str| RenderError {
        message: match check_syntax(source) {
            Err(e) => format!("template syntax error at {e}"),
            Ok(()) => "template syntax error".into(),
        },
    };
    if prepared.first_error.is_some() {
        return Err(syntax(source));
    }
    let elements = parser::parse(&prepared.text, language()).map_err(|_| syntax(source))?;
    let template = liquid_core::runtime::Template::new(elements);
    let globals = Globals::new(context);
    let runtime = LenientRuntime::new(&globals);
    let mut out = Vec::with_capacity(source.len() + 256);
    template
        .render_to(&mut out, &runtime)
        .map_err(|e| RenderError {
            message: LiquidFailure::of(&e).describe(),
        })?;
    String::from_utf8(out).map_err(|_| RenderError {
        message: "the rendered text is not valid UTF-8".into(),
    })
}

/// A value whose objects answer `nil` for missing keys, so a path through undefined members
/// never fails, wherever the lookup happens (including loop variables).
#[derive(Debug)]
enum Lenient {
    /// A scalar, a state (`empty`, `blank`) or `nil`.
    Leaf(Value),
    /// What a missing member reads as: `nil`, and an empty object when indexed further.
    Missing,
    Array(Vec<Lenient>),
    Object(LenientObject),
}

/// An object with lenient member access, in insertion order.
#[derive(Debug, Default)]
struct LenientObject(Vec<(KString, Lenient)>);

static MISSING: Lenient = Lenient::Missing;
static EMPTY_OBJECT: LenientObject = LenientObject(Vec::new());

impl Lenient {
    fn from_json(value: &Json) -> Self {
        match value {
            Json::Null => Lenient::Leaf(Value::Nil),
            Json::Bool(b) => Lenient::Leaf(Value::scalar(*b)),
            Json::Number(n) => Lenient::Leaf(match n.as_i64() {
                Some(i) => Value::scalar(i),
                None => Value::scalar(n.as_f64().unwrap_or_default()),
            }),
            Json::String(s) => Lenient::Leaf(Value::scalar(s.clone())),
            Json::Array(items) => Lenient::Array(items.iter().map(Self::from_json).collect()),
            Json::Object(map) => Lenient::Object(LenientObject::from_json(map)),
        }
    }

    fn from_value(value: &Value) -> Self {
        match value {
            Value::Array(items) => Lenient::Array(items.iter().map(Self::from_value).collect()),
            Value::Object(map) => Lenient::Object(LenientObject(
                map.iter()
                    .map(|(k, v)| (k.clone(), Self::from_value(v)))
                    .collect(),
            )),
            leaf => Lenient::Leaf(leaf.clone()),
        }
    }

    fn text(value: &str) -> Self {
        Lenient::Leaf(Value::scalar(value.to_owned()))
    }
}

impl LenientObject {
    fn from_json(map: &Map<String, Json>) -> Self {
        LenientObject(
            map.iter()
                .map(|(k, v)| (KString::from_ref(k), Lenient::from_json(v)))
                .collect(),
        )
    }

    fn find(&self, key: &str) -> Option<&Lenient> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn rendered(&self) -> String {
        self.to_value().render().to_string()
    }
}

impl ValueView for Lenient {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        match self {
            Lenient::Leaf(v) => v.render(),
            Lenient::Missing => DisplayCow::Borrowed(&""),
            Lenient::Array(a) => a.render(),
            Lenient::Object(o) => o.render(),
        }
    }
    fn source(&self) -> DisplayCow<'_> {
        match self {
            Lenient::Leaf(v) => v.source(),
            Lenient::Missing => DisplayCow::Borrowed(&"nil"),
            Lenient::Array(a) => a.source(),
            Lenient::Object(o) => o.source(),
        }
    }
    fn type_name(&self) -> &'static str {
        match self {
            Lenient::Leaf(v) => v.type_name(),
            Lenient::Missing => "nil",
            Lenient::Array(_) => "array",
            Lenient::Object(_) => "object",
        }
    }
    fn query_state(&self, state: State) -> bool {
        match self {
            Lenient::Leaf(v) => v.query_state(state),
            Lenient::Missing => Value::Nil.query_state(state),
            Lenient::Array(a) => a.query_state(state),
            Lenient::Object(o) => o.query_state(state),
        }
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        match self {
            Lenient::Leaf(v) => v.to_kstr(),
            Lenient::Missing => KStringCow::from_static(""),
            Lenient::Array(a) => a.to_kstr(),
            Lenient::Object(o) => o.to_kstr(),
        }
    }
    fn to_value(&self) -> Value {
        match self {
            Lenient::Leaf(v) => v.clone(),
            Lenient::Missing => Value::Nil,
            Lenient::Array(a) => a.to_value(),
            Lenient::Object(o) => o.to_value(),
        }
    }
    fn as_scalar(&self) -> Option<ScalarCow<'_>> {
        match self {
            Lenient::Leaf(v) => v.as_scalar(),
            _ => None,
        }
    }
    fn as_array(&self) -> Option<&dyn ArrayView> {
        match self {
            Lenient::Array(a) => Some(a),
            _ => None,
        }
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        match self {
            Lenient::Object(o) => Some(o),
            Lenient::Missing => Some(&EMPTY_OBJECT),
            _ => None,
        }
    }
    fn as_state(&self) -> Option<State> {
        match self {
            Lenient::Leaf(v) => v.as_state(),
            _ => None,
        }
    }
    fn is_nil(&self) -> bool {
        match self {
            Lenient::Leaf(v) => v.is_nil(),
            Lenient::Missing => true,
            _ => false,
        }
    }
}

impl ValueView for LenientObject {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        DisplayCow::Owned(Box::new(self.rendered()))
    }
    fn source(&self) -> DisplayCow<'_> {
        DisplayCow::Owned(Box::new(self.to_value().source().to_string()))
    }
    fn type_name(&self) -> &'static str {
        "object"
    }
    fn query_state(&self, state: State) -> bool {
        match state {
            State::Truthy => true,
            State::DefaultValue | State::Empty | State::Blank => self.0.is_empty(),
        }
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        KStringCow::from_string(self.rendered())
    }
    fn to_value(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v.to_value()))
                .collect(),
        )
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        Some(self)
    }
}

impl ObjectView for LenientObject {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        self.0.len() as i64
    }
    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        Box::new(self.0.iter().map(|(k, _)| KStringCow::from(k.as_ref())))
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        Box::new(self.0.iter().map(|(_, v)| v as &dyn ValueView))
    }
    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        Box::new(
            self.0
                .iter()
                .map(|(k, v)| (KStringCow::from(k.as_ref()), v as &dyn ValueView)),
        )
    }
    fn contains_key(&self, index: &str) -> bool {
        self.find(index).is_some()
    }
    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        match self.find(index) {
            Some(v) => Some(v),
            // `size` of an object is computed by the lookup when the key is absent.
            None if index == "size" => None,
            None => Some(&MISSING),
        }
    }
}

/// The system variables and `data` of one render.
struct Globals {
    system: LenientObject,
}

impl Globals {
    fn new(context: &RenderContext) -> Self {
        let id = context.contact_id.to_string();
        let system = vec![
            ("id", Lenient::text(&id)),
            ("plunk_id", Lenient::text(&id)),
            ("email", Lenient::text(&context.email)),
            ("plunk_email", Lenient::text(&context.email)),
            (
                "subscribed",
                Lenient::Leaf(Value::scalar(context.subscribed)),
            ),
            ("locale", Lenient::text(&context.locale)),
            ("unsubscribeUrl", Lenient::text(&context.unsubscribe_url)),
            ("subscribeUrl", Lenient::text(&context.subscribe_url)),
            ("manageUrl", Lenient::text(&context.manage_url)),
            (
                "data",
                Lenient::Object(LenientObject::from_json(&context.data)),
            ),
            (
                "event",
                Lenient::Object(LenientObject::from_json(&context.event)),
            ),
        ];
        Globals {
            system: LenientObject(
                system
                    .into_iter()
                    .map(|(k, v)| (KString::from_static(k), v))
                    .collect(),
            ),
        }
    }

    /// A root name: a system variable, else the same key of `data` (spec templates.md §3.3).
    fn root(&self, name: &str) -> Option<&Lenient> {
        self.system
            .find(name)
            .or_else(|| match self.system.find("data") {
                Some(Lenient::Object(data)) => data.find(name),
                _ => None,
            })
    }
}

/// Values set by `assign` and `capture`. They are kept for the whole render (append-only, in
/// chunks that never move) so lookups can lend them out like the globals.
struct Assigned {
    head: Chunk,
    count: Cell<usize>,
    names: RefCell<HashMap<String, usize>>,
}

const CHUNK_SLOTS: usize = 32;

struct Chunk {
    slots: Vec<OnceCell<Lenient>>,
    next: OnceCell<Box<Chunk>>,
}

impl Chunk {
    fn new() -> Self {
        Chunk {
            slots: (0..CHUNK_SLOTS).map(|_| OnceCell::new()).collect(),
            next: OnceCell::new(),
        }
    }
}

impl Assigned {
    fn new() -> Self {
        Assigned {
            head: Chunk::new(),
            count: Cell::new(0),
            names: RefCell::new(HashMap::new()),
        }
    }

    fn slot(&self, index: usize) -> &OnceCell<Lenient> {
        let mut chunk = &self.head;
        for _ in 0..index / CHUNK_SLOTS {
            chunk = chunk.next.get_or_init(|| Box::new(Chunk::new()));
        }
        &chunk.slots[index % CHUNK_SLOTS]
    }

    fn set(&self, name: &str, value: Lenient) {
        let index = self.count.get();
        self.count.set(index + 1);
        // A fresh slot is always empty, so this never fails.
        let _ = self.slot(index).set(value);
        self.names.borrow_mut().insert(name.to_owned(), index);
    }

    fn get(&self, name: &str) -> Option<&Lenient> {
        let index = *self.names.borrow().get(name)?;
        self.slot(index).get()
    }
}

/// The root of the runtime stack: assigned values first, then the globals; anything undefined
/// is `nil` instead of an error. Loop scopes stack on top of it.
struct LenientRuntime<'g> {
    core: RuntimeCore<'static>,
    globals: &'g Globals,
    assigned: Assigned,
    indexes: RefCell<liquid_core::Object>,
}

impl<'g> LenientRuntime<'g> {
    fn new(globals: &'g Globals) -> Self {
        LenientRuntime {
            core: RuntimeCore::new(),
            globals,
            assigned: Assigned::new(),
            indexes: RefCell::new(liquid_core::Object::new()),
        }
    }

    fn root(&self, name: &str) -> Option<&Lenient> {
        self.assigned.get(name).or_else(|| self.globals.root(name))
    }
}

impl Runtime for LenientRuntime<'_> {
    fn partials(&self) -> &dyn PartialStore {
        self.core.partials()
    }

    fn name(&self) -> Option<KStringRef<'_>> {
        None
    }

    fn roots(&self) -> BTreeSet<KStringCow<'_>> {
        let mut roots: BTreeSet<KStringCow<'_>> =
            self.globals.system.keys().collect::<BTreeSet<_>>();
        if let Some(Lenient::Object(data)) = self.globals.system.find("data") {
            roots.extend(data.keys());
        }
        roots.extend(
            self.assigned
                .names
                .borrow()
                .keys()
                .map(|k| KStringCow::from_string(k.clone())),
        );
        roots
    }

    fn try_get(&self, path: &[ScalarCow<'_>]) -> Option<ValueCow<'_>> {
        let name = path.first()?.to_kstr();
        let root = self.root(name.as_str())?;
        try_find(root, &path[1..])
    }

    fn get(&self, path: &[ScalarCow<'_>]) -> liquid_core::Result<ValueCow<'_>> {
        Ok(self.try_get(path).unwrap_or(ValueCow::Owned(Value::Nil)))
    }

    fn set_global(&self, name: KString, val: Value) -> Option<Value> {
        self.assigned.set(name.as_str(), Lenient::from_value(&val));
        None
    }

    fn set_index(&self, name: KString, val: Value) -> Option<Value> {
        self.indexes.borrow_mut().insert(name, val)
    }

    fn get_index<'a>(&'a self, name: &str) -> Option<ValueCow<'a>> {
        self.indexes
            .borrow()
            .get(name)
            .map(|v| ValueCow::Owned(v.clone()))
    }

    fn registers(&self) -> &Registers {
        self.core.registers()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn syntax(source: &str) -> String {
        check_syntax(source).unwrap_err().to_string()
    }

    fn context(data: Json) -> RenderContext {
        RenderContext {
            contact_id: Uuid::nil(),
            email: "ada@example.org".into(),
            subscribed: true,
            locale: "en".into(),
            unsubscribe_url: "https://u.example/unsub".into(),
            subscribe_url: "https://u.example/sub".into(),
            manage_url: "https://u.example/manage".into(),
            data: data.as_object().cloned().unwrap_or_default(),
            event: Map::new(),
        }
    }

    fn r(source: &str, data: Json) -> String {
        render(source, &context(data)).unwrap_or_else(|e| panic!("{source}: {e}"))
    }

    #[test]
    fn the_spec_example_of_an_unclosed_block() {
        assert_eq!(
            syntax("{% if plan %}unclosed"),
            "line 1, column 1: 'if' tag is not closed"
        );
    }

    #[test]
    fn unclosed_blocks_point_at_the_innermost_open_tag() {
        assert_eq!(
            syntax("a\n  {% for x in xs %}\n{% if x %}{% endif %}"),
            "line 2, column 3: 'for' tag is not closed"
        );
        assert_eq!(
            syntax("{% if a %}\n{% unless b %}x"),
            "line 2, column 1: 'unless' tag is not closed"
        );
        assert_eq!(
            syntax("{% raw %}{% if %}"),
            "line 1, column 1: 'raw' tag is not closed"
        );
    }

    #[test]
    fn errors_carry_positions_on_later_lines() {
        assert_eq!(
            syntax("line1\n  {{ a | upcase: }}"),
            "line 2, column 18: expected Identifier or Value"
        );
        assert_eq!(
            syntax("x\n{% if a == %}y{% endif %}"),
            "line 2, column 11: Value expected"
        );
        assert_eq!(
            syntax("a\nb {% iff x %}"),
            "line 2, column 6: Unknown tag 'iff'"
        );
        assert_eq!(
            syntax("{% endif %}"),
            "line 1, column 4: Unexpected 'endif' tag"
        );
    }

    #[test]
    fn columns_count_characters_and_survive_non_ascii_text() {
        assert_eq!(
            syntax("Grüße,\n  é{{ a | upcase: }}"),
            "line 2, column 19: expected Identifier or Value"
        );
        assert_eq!(syntax("é {{ ü }}"), "line 1, column 6: expected Value");
        assert_eq!(
            syntax("a\r\nb {% iff %}"),
            "line 2, column 6: Unknown tag 'iff'"
        );
    }

    #[test]
    fn unknown_filters_are_errors_located_at_the_filter() {
        assert_eq!(
            syntax("Hi {{ name | nosuchfilter }}"),
            "line 1, column 14: Unknown filter 'nosuchfilter'"
        );
        assert_eq!(
            syntax("ok {{ a | upcase }}\n{{ a | default: 1 }} {{ b | default }}"),
            "line 2, column 29: Invalid number of arguments: expected at least 1 positional argument (filter 'default')"
        );
        assert_eq!(
            syntax("{% assign x = a | nope %}"),
            "line 1, column 19: Unknown filter 'nope'"
        );
    }

    #[test]
    fn include_render_and_layout_are_rejected() {
        for tag in ["include", "render", "layout"] {
            assert_eq!(
                syntax(&format!("hi\n {{% {tag} 'footer' %}}")),
                format!("line 2, column 2: The '{tag}' tag is not supported")
            );
        }
        assert!(check_syntax("{% raw %}{% include 'x' %}{% endraw %}").is_ok());
    }

    #[test]
    fn the_standard_library_parses() {
        let ok = [
            "{% if a %}1{% elsif b %}2{% else %}3{% endif %}",
            "{% unless a %}x{% endunless %}",
            "{% case a %}{% when 1 %}one{% when 2, 3 %}more{% else %}none{% endcase %}",
            "{% for i in items limit: 2 offset: 1 reversed %}{{ forloop.index }}{% endfor %}",
            "{% assign x = 'a' | upcase %}{% capture y %}b{% endcapture %}",
            "{% raw %}{{ not parsed }}{% endraw %}{% comment %}{{ x ?? }}{% endcomment %}",
            "{% increment n %}{% decrement n %}{% cycle 'a', 'b' %}",
            "{{ 'x' | append: 'y' | truncate: 3 | url_encode }}",
            "",
            "plain text",
        ];
        for source in ok {
            assert!(
                check_syntax(source).is_ok(),
                "{source}: {:?}",
                check_syntax(source)
            );
        }
    }

    #[test]
    fn fallback_shorthand_is_rewritten_to_default() {
        let cases = [
            (
                r#"{{ name ?? "friend" }}"#,
                r#"{{ name | default: "friend" }}"#,
            ),
            ("{{ name ?? 'there' }}", "{{ name | default: 'there' }}"),
            ("{{ count ?? 0 }}", "{{ count | default: 0 }}"),
            ("{{ price ?? -1.5 }}", "{{ price | default: -1.5 }}"),
            ("{{ name ?? friend }}", r#"{{ name | default: "friend" }}"#),
            ("{{ name ?? it\"s }}", "{{ name | default: 'it\"s' }}"),
            (
                r#"{{ name ?? "x" | upcase }}"#,
                r#"{{ name | default: "x" | upcase }}"#,
            ),
            ("{{name??x|upcase}}", r#"{{name| default: "x"|upcase}}"#),
            ("{{- a ?? b -}}", r#"{{- a | default: "b" -}}"#),
            (r#"{{ "a??b" }}"#, r#"{{ "a??b" }}"#),
            (
                "{% raw %}{{ a ?? b }}{% endraw %}",
                "{% raw %}{{ a ?? b }}{% endraw %}",
            ),
            ("a ?? b", "a ?? b"),
        ];
        for (source, expected) in cases {
            assert_eq!(prepare(source).text, expected, "{source}");
            assert!(check_syntax(source).is_ok(), "{source}");
        }
    }

    #[test]
    fn fallback_shorthand_errors_have_positions() {
        assert_eq!(
            syntax("{{ a ?? b ?? c }}"),
            "line 1, column 11: Only one '??' is allowed per output tag"
        );
        assert_eq!(
            syntax("x\n{% if a ?? b %}{% endif %}"),
            "line 2, column 9: '??' is only allowed in output tags ({{ }}), not in {% %} tags"
        );
        assert_eq!(
            syntax("{{ a ?? }}"),
            "line 1, column 6: '??' needs a fallback value"
        );
        assert_eq!(
            syntax("{{ a ?? | upcase }}"),
            "line 1, column 6: '??' needs a fallback value"
        );
        // An earlier element at fault wins over a later shorthand problem.
        assert_eq!(
            syntax("{{ a | nope }} {{ b ?? }}"),
            "line 1, column 8: Unknown filter 'nope'"
        );
        // Positions after a rewritten shorthand refer to the source as written.
        assert_eq!(
            syntax(r#"{{ a ?? "long fallback" }} {{ b | upcase: }}"#),
            "line 1, column 43: expected Identifier or Value"
        );
    }

    #[test]
    fn fallbacks_apply_to_missing_nil_false_and_empty_values() {
        let data = json!({"nil": null, "no": false, "blank": "", "list": [], "obj": {},
            "zero": 0, "name": "Ada", "space": " "});
        for key in ["missing", "nil", "no", "blank", "list", "obj"] {
            assert_eq!(
                r(&format!("{{{{ {key} ?? 'x' }}}}"), data.clone()),
                "x",
                "{key}"
            );
        }
        assert_eq!(r("{{ zero ?? 'x' }}", data.clone()), "0");
        assert_eq!(r("{{ space ?? 'x' }}", data.clone()), " ");
        assert_eq!(r("{{ name ?? 'x' | upcase }}", data.clone()), "ADA");
        assert_eq!(r("{{ missing ?? there | upcase }}", data.clone()), "THERE");
        assert_eq!(r("{{ data.firstName ?? \"friend\" }}", data), "friend");
    }

    #[test]
    fn the_spec_example_renders() {
        let body = "<h1>Hi {{ firstName ?? 'there' }}</h1>{% if plan == \"pro\" %}<p>Thanks for going Pro.</p>{% endif %}";
        assert_eq!(r(body, json!({})), "<h1>Hi there</h1>");
        assert_eq!(
            r(body, json!({"firstName": "Ada", "plan": "pro"})),
            "<h1>Hi Ada</h1><p>Thanks for going Pro.</p>"
        );
        assert_eq!(
            r(
                "Welcome, {{ data.firstName ?? \"friend\" }}",
                json!({"firstName": "Kim"})
            ),
            "Welcome, Kim"
        );
    }

    #[test]
    fn system_variables_and_bare_names_resolve_in_order() {
        let mut ctx = context(json!({"plan": "pro", "email": "shadow@x.io", "first name": "Ada"}));
        ctx.event = json!({"order": {"total": 42}})
            .as_object()
            .cloned()
            .unwrap();
        let out = render(
            "{{ id }}|{{ plunk_id }}|{{ email }}|{{ plunk_email }}|{{ subscribed }}|{{ locale }}|\
             {{ unsubscribeUrl }}|{{ subscribeUrl }}|{{ manageUrl }}|{{ plan }}|{{ data.plan }}|\
             {{ data[\"first name\"] }}|{{ event.order.total }}",
            &ctx,
        )
        .unwrap();
        assert_eq!(
            out,
            "00000000-0000-0000-0000-000000000000|00000000-0000-0000-0000-000000000000|\
             ada@example.org|ada@example.org|true|en|https://u.example/unsub|\
             https://u.example/sub|https://u.example/manage|pro|pro|Ada|42"
        );
    }

    #[test]
    fn undefined_variables_render_empty_and_are_nil_in_conditions() {
        let data = json!({"a": {"x": 1}, "items": [{"name": "n1"}, {"name": "n2", "tag": "t"}]});
        assert_eq!(r("[{{ nothere }}]", data.clone()), "[]");
        assert_eq!(r("[{{ a.b.c }}][{{ nothere.b.c }}]", data.clone()), "[][]");
        assert_eq!(
            r("{% if nothere %}y{% else %}n{% endif %}", data.clone()),
            "n"
        );
        assert_eq!(
            r("{% if nothere == nil %}nil{% endif %}", data.clone()),
            "nil"
        );
        assert_eq!(
            r(
                "{% if plan == \"pro\" %}y{% else %}n{% endif %}",
                data.clone()
            ),
            "n"
        );
        assert_eq!(
            r("{% if a.b.c > 3 %}y{% else %}n{% endif %}", data.clone()),
            "n"
        );
        assert_eq!(
            r(
                "{% assign k = 'nope' %}[{{ data[k] }}{{ event.x.y }}]",
                data.clone()
            ),
            "[]"
        );
        assert_eq!(
            r(
                "{% for i in items %}{{ i.name }}:{{ i.tag }}{{ i.nope.deep }};{% endfor %}",
                data.clone()
            ),
            "n1:;n2:t;"
        );
        assert_eq!(
            r(
                "{% assign p = a %}{{ p.x }}{{ p.missing.deeper }}",
                data.clone()
            ),
            "1"
        );
        assert_eq!(
            r(
                "{% assign sorted = items | sort: 'name' %}{% for i in sorted %}{{ i.nope.x }}{{ i.name }}{% endfor %}",
                data.clone()
            ),
            "n1n2"
        );
        assert_eq!(r("{% for x in nothere %}x{% endfor %}", data), "");
    }

    #[test]
    fn filters_read_undefined_input_as_empty_or_zero_instead_of_failing() {
        let calls = [
            ("join: ','", ""),
            ("first", ""),
            ("last", ""),
            ("map: 'a' | join", ""),
            ("compact | size", "0"),
            ("uniq | size", "0"),
            ("reverse | size", "0"),
            ("sort | size", "0"),
            ("sort_natural | size", "0"),
            ("where: 'a' | size", "0"),
            ("plus: 1", "1"),
            ("minus: 1", "-1"),
            ("times: 2", "0"),
            ("divided_by: 2", "0"),
            ("modulo: 2", "0"),
            ("round", "0"),
            ("ceil", "0"),
            ("floor", "0"),
            ("abs", "0"),
            ("at_least: 5", "5"),
            ("at_most: 5", "0"),
            ("size", "0"),
            ("upcase", ""),
            ("append: 'x'", "x"),
        ];
        let data = json!({"nothing": null});
        for (call, expected) in calls {
            for input in ["nothere", "data.nothere", "nothing"] {
                assert_eq!(
                    r(&format!("{{{{ {input} | {call} }}}}"), data.clone()),
                    expected,
                    "{input} | {call}"
                );
            }
        }
        // Defined values keep the standard behaviour.
        assert_eq!(
            r("{{ items | join: '-' }}", json!({"items": [1, 2]})),
            "1-2"
        );
        assert!(render("{{ 'x' | plus: 1 }}", &context(json!({}))).is_err());
    }

    #[test]
    fn truthiness_is_standard_liquid() {
        let data = json!({"text": "", "zero": 0, "no": false, "nothing": null, "list": []});
        for (key, expected) in [
            ("text", "t"),
            ("zero", "t"),
            ("list", "t"),
            ("no", "f"),
            ("nothing", "f"),
            ("missing", "f"),
        ] {
            let out = r(
                &format!("{{% if {key} %}}t{{% else %}}f{{% endif %}}"),
                data.clone(),
            );
            assert_eq!(out, expected, "{key}");
        }
        assert_eq!(
            r(
                "{% if text != blank %}full{% else %}blank{% endif %}",
                data.clone()
            ),
            "blank"
        );
        assert_eq!(r("{% if list == empty %}e{% endif %}", data), "e");
    }

    #[test]
    fn the_standard_library_renders() {
        let data = json!({"items": ["a", "b", "c"], "n": 7});
        assert_eq!(
            r(
                "{% for i in items limit: 2 reversed %}{{ forloop.index }}{{ i }}{% endfor %}",
                data.clone()
            ),
            "1b2a"
        );
        assert_eq!(
            r(
                "{% assign x = 'hi' | upcase %}{% capture y %}{{ x }}!{% endcapture %}{{ y }}",
                data.clone()
            ),
            "HI!"
        );
        assert_eq!(
            r(
                "{% case n %}{% when 7 %}seven{% else %}other{% endcase %}",
                data.clone()
            ),
            "seven"
        );
        assert_eq!(r("{{ n | plus: 1 | times: 2 }}", data.clone()), "16");
        assert_eq!(r("{% raw %}{{ n }}{% endraw %}", data), "{{ n }}");
    }

    #[test]
    fn runtime_failures_are_render_errors() {
        let e = render("{{ 1 | divided_by: 0 }}", &context(json!({}))).unwrap_err();
        assert!(!e.message.is_empty());
        let e = render("{% if %}", &context(json!({}))).unwrap_err();
        assert!(
            e.message.starts_with("template syntax error at line 1"),
            "{e}"
        );
    }

    #[test]
    fn locale_comes_from_data_or_the_project_language() {
        let contact = Contact {
            id: Uuid::nil(),
            email: EmailAddress::parse("kim@example.org").unwrap(),
            subscribed: false,
            data: json!({"locale": "de", "name": "Kim"})
                .as_object()
                .cloned()
                .unwrap(),
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
        };
        let one_shot = json!({"code": "123"}).as_object().cloned().unwrap();
        let ctx = RenderContext::for_contact(&contact, &one_shot, "en");
        assert_eq!(ctx.locale, "de");
        assert_eq!(
            render("{{ code }} {{ name }} {{ locale }}", &ctx).unwrap(),
            "123 Kim de"
        );
        let mut plain = contact.clone();
        plain.data.clear();
        assert_eq!(
            RenderContext::for_contact(&plain, &Map::new(), "fr").locale,
            "fr"
        );
    }

    fn changes(body: Json, create: bool) -> Result<TemplateChanges, Vec<FieldError>> {
        let map = body.as_object().unwrap();
        let mut fields = Fields::new(map);
        let changes = if create {
            TemplateChanges::read_create(&mut fields)
        } else {
            TemplateChanges::read_patch(&mut fields)
        };
        fields.finish().map(|()| changes)
    }

    #[test]
    fn field_rules_report_every_bad_member() {
        let errors = changes(
            json!({"name": "", "description": "d".repeat(501), "subject": "a\nb", "body": "",
                "from": "nope", "fromName": "x\r", "replyTo": 5, "type": "OTHER"}),
            true,
        )
        .unwrap_err();
        let got: Vec<_> = errors.iter().map(|e| (e.field.as_str(), e.code)).collect();
        assert_eq!(
            got,
            vec![
                ("name", FieldCode::TooSmall),
                ("description", FieldCode::TooBig),
                ("subject", FieldCode::InvalidString),
                ("body", FieldCode::TooSmall),
                ("from", FieldCode::InvalidString),
                ("fromName", FieldCode::InvalidString),
                ("replyTo", FieldCode::InvalidType),
                ("type", FieldCode::InvalidEnumValue),
            ]
        );
        let errors = changes(json!({}), true).unwrap_err();
        let got: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(got, vec!["name", "subject", "body", "from"]);
    }

    #[test]
    fn limits_are_counted_as_the_spec_says() {
        let ok = changes(
            json!({"name": "é".repeat(100), "subject": "s".repeat(998),
                "body": "b".repeat(MAX_BODY_BYTES), "from": "a@b.co"}),
            true,
        );
        assert!(ok.is_ok());
        let errors = changes(
            json!({"subject": "s".repeat(999), "body": "é".repeat(MAX_BODY_BYTES / 2 + 1)}),
            false,
        )
        .unwrap_err();
        assert_eq!(errors[0].code, FieldCode::TooBig);
        assert_eq!(errors[1].field, "body");
        assert_eq!(errors[1].code, FieldCode::TooBig);
    }

    #[test]
    fn patch_accepts_null_only_where_nullable() {
        let c = changes(
            json!({"description": null, "fromName": null, "replyTo": null}),
            false,
        )
        .unwrap();
        assert_eq!(c.description, Patch::Null);
        assert_eq!(c.from_name, Patch::Null);
        assert_eq!(c.reply_to, Patch::Null);
        let errors = changes(
            json!({"name": null, "subject": null, "body": null, "from": null, "type": null}),
            false,
        )
        .unwrap_err();
        assert!(errors.iter().all(|e| e.code == FieldCode::InvalidType));
        assert_eq!(errors.len(), 5);
        assert!(changes(json!({}), false).unwrap().is_empty());
    }

    #[test]
    fn create_defaults_to_marketing_and_apply_reports_changes() {
        let c = changes(
            json!({"name": "Welcome", "subject": "Hi", "body": "<p>x</p>", "from": "Hello@Acme.io",
                "fromName": "Acme"}),
            true,
        )
        .unwrap();
        let now = Timestamp::now();
        let mut t = c.into_template(Uuid::nil(), now).unwrap();
        assert_eq!(t.template_type, TemplateType::Marketing);
        assert_eq!(t.from.as_str(), "hello@acme.io");
        assert_eq!(t.description, None);
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["type"], json!("MARKETING"));
        assert_eq!(json["replyTo"], Json::Null);
        assert_eq!(json["fromName"], json!("Acme"));
        let same = changes(json!({"name": "Welcome"}), false).unwrap();
        assert!(!t.apply(&same));
        let other = changes(json!({"fromName": null, "type": "HEADLESS"}), false).unwrap();
        assert!(t.apply(&other));
        assert_eq!(t.from_name, None);
        assert_eq!(t.template_type, TemplateType::Headless);
    }

    #[test]
    fn syntax_errors_name_the_failing_fields() {
        let c = changes(
            json!({"subject": "Hi {{ name | nosuchfilter }}", "body": "{% if plan %}unclosed"}),
            false,
        )
        .unwrap();
        let errors = c.syntax_errors();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].field, "subject");
        assert_eq!(errors[0].code, FieldCode::TemplateSyntax);
        assert_eq!(
            errors[1],
            FieldError::new(
                "body",
                FieldCode::TemplateSyntax,
                "line 1, column 1: 'if' tag is not closed"
            )
        );
    }

    #[test]
    fn copies_are_named_and_cut_to_the_limit() {
        assert_eq!(copy_name("Welcome"), "Welcome (copy)");
        let long = "n".repeat(95);
        assert_eq!(copy_name(&long).chars().count(), MAX_NAME_CHARS);
        assert_eq!(copy_name(&long), format!("{long} (cop"));
    }
}
