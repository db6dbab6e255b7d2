//! Syntax checking: a template is parsed on every save and every
//! `/v1/send`; an error names its line and column in the source as written (before the `??`
//! rewriting) and says what is wrong in the words of a template author.

use super::language::language;
use super::prepare::{prepare, Prepared};
use super::scan::{is_liquid_space, scan, tag_name, unquoted_matches, Kind};
use super::TemplateSyntaxError;
use liquid_core::parser;
use liquid_core::Renderable;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Tags that exist in Liquid but are refused here: templates cannot reach other templates.
pub(super) const FORBIDDEN_TAGS: [&str; 3] = ["include", "render", "layout"];

/// Tags that open a block closed by `end<name>`.
const BLOCK_TAGS: [&str; 8] = [
    "if",
    "unless",
    "for",
    "case",
    "capture",
    "ifchanged",
    "comment",
    "raw",
];

/// Parses `text` (already prepared, without hazards). The static bounds keep every known way of
/// making the parser panic out; should an unknown one remain, it is contained here and reported
/// as an error of this template only.
pub(super) fn parse(text: &str) -> liquid_core::Result<Vec<Box<dyn Renderable>>> {
    catch_unwind(AssertUnwindSafe(|| parser::parse(text, language()))).unwrap_or_else(|_| {
        Err(liquid_core::Error::with_msg(
            "The template could not be parsed",
        ))
    })
}

/// Parses `source` as a template: Liquid syntax, the `??` rules, the refused tags and the static
/// bounds.
pub fn check_syntax(source: &str) -> Result<(), TemplateSyntaxError> {
    let prepared = prepare(source);
    let error = match &prepared.hazard {
        // The parser never sees a hazard; any other problem before it comes first.
        Some(hazard) => match &prepared.first_error {
            Some(own) if own.at < hazard.at => (own.at, own.message.clone()),
            _ => (hazard.at, hazard.message.clone()),
        },
        None => match parse_error(&prepared) {
            None => return Ok(()),
            Some(error) => error,
        },
    };
    let (line, column) = line_col(source, error.0);
    Err(TemplateSyntaxError {
        line,
        column,
        message: error.1,
    })
}

/// The first error of a prepared text without hazards: the parser's or the pre-parse rules'.
fn parse_error(prepared: &Prepared) -> Option<(usize, String)> {
    // Liquid parses the text with every non-ASCII character replaced by one ASCII control
    // character: validity is unchanged (such characters are only ever literal text or string
    // content) and the parser's columns become exact character columns.
    let ascii: String = prepared
        .text
        .chars()
        .map(|c| if c.is_ascii() { c } else { '\u{1}' })
        .collect();
    let liquid = parse(&ascii)
        .err()
        .map(|e| locate_liquid_error(prepared, &ascii, &e));
    match (&prepared.first_error, liquid) {
        (None, None) => None,
        (Some(own), None) => Some((own.at, own.message.clone())),
        (None, Some(liquid)) => Some(liquid),
        // The shorthand or tag error explains its element better than the parser does, unless
        // the parser found an earlier element at fault.
        (Some(own), Some(liquid)) if liquid.0 < own.element_start => Some(liquid),
        (Some(own), Some(_)) => Some((own.at, own.message.clone())),
    }
}

/// A Liquid error taken apart: position (line, column) when the parser gave one, its message,
/// and its `key=value` context.
#[derive(Debug)]
pub(super) struct LiquidFailure {
    position: Option<(usize, usize)>,
    message: String,
    context: Vec<(String, String)>,
}

impl LiquidFailure {
    pub(super) fn of(error: &liquid_core::Error) -> Self {
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
    pub(super) fn describe(&self) -> String {
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
            if let Err(e) = parse(&probe) {
                let lead = call.len() - call.trim_start_matches(is_liquid_space).len();
                return Some((segment.inner.0 + pipe + 1 + lead, LiquidFailure::of(&e)));
            }
        }
    }
    None
}
