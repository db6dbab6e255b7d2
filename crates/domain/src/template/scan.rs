//! Finding the Liquid elements of a template without parsing it: outputs (`{{ }}`) and tags
//! (`{% %}`) with their positions, quoted strings skipped, and the content of `raw` and `comment`
//! blocks left alone. The pre-parse rules (the `??` shorthand, refused tags, the static bounds)
//! and the error locator work on these.

/// An output (`{{ }}`) or tag (`{% %}`) in a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Output,
    Tag,
}

/// One element: byte offsets of its opening delimiter, of the byte after its closing delimiter,
/// and of its content without delimiters and whitespace-control hyphens.
#[derive(Debug, Clone, Copy)]
pub(super) struct Segment {
    pub(super) kind: Kind,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) inner: (usize, usize),
}

impl Segment {
    pub(super) fn inner<'t>(&self, text: &'t str) -> &'t str {
        &text[self.inner.0..self.inner.1]
    }
}

pub(super) fn is_liquid_space(c: char) -> bool {
    matches!(c, ' ' | '\n' | '\r' | '\t')
}

/// The name of a tag: its first word.
pub(super) fn tag_name(inner: &str) -> &str {
    let t = inner.trim_start_matches(is_liquid_space);
    let len = t
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(t.len());
    &t[..len]
}

/// The next `{{` or `{%` at or after `from`.
pub(super) fn next_opening(text: &str, from: usize) -> Option<(usize, Kind)> {
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
pub(super) fn segment_at(text: &str, start: usize, kind: Kind) -> Option<Segment> {
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
pub(super) fn block_close(text: &str, from: usize, name: &str, nested: bool) -> usize {
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
pub(super) fn scan(text: &str) -> Vec<Segment> {
    scan_skipping(text, true)
}

fn scan_skipping(text: &str, skip_comments: bool) -> Vec<Segment> {
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
                // Liquid ends `raw` at the first `{% endraw %}` it sees, never later than here.
                "raw" => i = block_close(text, i, "raw", false),
                "comment" if skip_comments => i = block_close(text, i, "comment", true),
                _ => {}
            }
        }
    }
    segments
}

/// Byte offsets of `needle` in `inner` outside quoted strings.
pub(super) fn unquoted_matches(inner: &str, needle: &str) -> Vec<usize> {
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
