//! What happens to a template's text before Liquid parses it: the `??` shorthand is rewritten,
//! refused tags and the static bounds are checked, and, for an HTML body, every output is escaped
//! unless it ends in `raw`.

use super::lexer::{self, ElementKind};
use super::scan::{is_liquid_space, scan, tag_name, unquoted_matches, Kind};
use super::static_bounds::first_hazard;
use super::syntax::FORBIDDEN_TAGS;

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
pub(super) struct Edit {
    original: (usize, usize),
    new_start: usize,
    new_len: usize,
}

/// The first problem found by the pre-parse checks: where, in which element, and what.
#[derive(Debug, Clone)]
pub(super) struct OwnError {
    pub(super) element_start: usize,
    pub(super) at: usize,
    pub(super) message: String,
}

/// A source with its `??` shorthands rewritten, the map back to the source, and the first
/// problem of the shorthand and refused-tag rules. A `hazard` is a problem the parser must not
/// see at all (see `static_bounds`).
#[derive(Debug)]
pub(super) struct Prepared {
    pub(super) text: String,
    edits: Vec<Edit>,
    pub(super) first_error: Option<OwnError>,
    pub(super) hazard: Option<OwnError>,
}

impl Prepared {
    /// The source offset of an offset in the rewritten text.
    pub(super) fn to_source(&self, offset: usize) -> usize {
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

/// Applies the `??` rewriting and the pre-parse checks.
pub(super) fn prepare(source: &str) -> Prepared {
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
    let mut prepared = Prepared {
        text,
        edits,
        first_error,
        hazard: None,
    };
    // Checked on the text the parser will read (a `??` fallback becomes a `default` argument),
    // reported at the source's positions.
    prepared.hazard = first_hazard(&prepared.text).map(|h| OwnError {
        element_start: prepared.to_source(h.element_start),
        at: prepared.to_source(h.at),
        message: h.message,
    });
    prepared
}

/// Filters that, last in an output, leave it as it is in an HTML body: `raw` by choice, and the
/// escaping filters, so a value escaped by the author is not escaped twice.
const UNESCAPED_LAST: [&str; 3] = ["raw", "escape", "escape_once"];

/// `text` (prepared, and known to parse) with ` | escape` added to every output whose last
/// filter is not in [`UNESCAPED_LAST`]. The outputs are the ones the
/// parser reads (see [`lexer`]), so none is missed, whatever surrounds it.
pub(super) fn escape_outputs(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut copied = 0;
    for element in lexer::elements(text) {
        if element.kind != ElementKind::Output || element.skipped {
            continue;
        }
        let last = element.last_filter.map(|(s, e)| &text[s..e]);
        if last.is_some_and(|name| UNESCAPED_LAST.contains(&name)) {
            continue;
        }
        out.push_str(&text[copied..element.chain_end]);
        out.push_str(" | escape");
        copied = element.chain_end;
    }
    out.push_str(&text[copied..]);
    out
}
