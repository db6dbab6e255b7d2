//! HTML → plain text for the `text/plain` alternative: a small, forgiving scanner (no DOM). It
//! reads tags and text in one pass, skips non-content elements, and lays text out in lines.

/// Elements whose content is never shown.
const SKIPPED: &[&str] = &["head", "script", "style", "template", "noscript", "title"];
/// Elements separated from their neighbours by a blank line.
const PARAGRAPHS: &[&str] = &[
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "ol",
    "table",
    "blockquote",
    "pre",
    "hr",
    "dl",
];
/// Elements that start and end on their own line.
const LINES: &[&str] = &[
    "div",
    "tr",
    "li",
    "dd",
    "dt",
    "section",
    "article",
    "header",
    "footer",
    "center",
    "address",
    "form",
    "figure",
    "figcaption",
    "main",
    "nav",
    "aside",
    "caption",
    "tbody",
    "thead",
    "tfoot",
];

/// See [`super::html_to_text`].
pub(super) fn convert(html: &str) -> String {
    let mut w = Writer::default();
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        w.text(&rest[..lt]);
        rest = &rest[lt..];
        rest = match parse_markup(rest) {
            Markup::Comment(after) => after,
            Markup::Tag(tag, after) => {
                if !tag.closing && SKIPPED.contains(&tag.name.as_str()) {
                    skip_element(after, &tag.name)
                } else {
                    w.tag(&tag);
                    after
                }
            }
            Markup::Text => {
                w.text("<");
                &rest[1..]
            }
        };
    }
    w.text(rest);
    w.finish()
}

struct Tag {
    name: String,
    closing: bool,
    attrs: Vec<(String, String)>,
}

impl Tag {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

enum Markup<'a> {
    /// A comment, doctype or processing instruction, and what follows it.
    Comment(&'a str),
    Tag(Tag, &'a str),
    /// A `<` that starts no markup.
    Text,
}

/// Parses the markup at the start of `s` (which starts with `<`).
fn parse_markup(s: &str) -> Markup<'_> {
    if let Some(body) = s.strip_prefix("<!--") {
        return Markup::Comment(body.find("-->").map_or("", |i| &body[i + 3..]));
    }
    let bytes = s.as_bytes();
    match bytes.get(1) {
        Some(b'!' | b'?') => {
            return Markup::Comment(s.find('>').map_or("", |i| &s[i + 1..]));
        }
        Some(b'/') if bytes.get(2).is_some_and(u8::is_ascii_alphabetic) => {}
        Some(c) if c.is_ascii_alphabetic() => {}
        _ => return Markup::Text,
    }
    let closing = bytes[1] == b'/';
    let start = if closing { 2 } else { 1 };
    let name_len = s[start..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == ':'))
        .unwrap_or(s.len() - start);
    let name = s[start..start + name_len].to_ascii_lowercase();
    let (attrs, after) = parse_attrs(&s[start + name_len..]);
    Markup::Tag(
        Tag {
            name,
            closing,
            attrs,
        },
        after,
    )
}

/// Reads attributes up to the closing `>`; returns them and the text after the tag.
fn parse_attrs(s: &str) -> (Vec<(String, String)>, &str) {
    let mut attrs = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        if rest.is_empty() {
            return (attrs, "");
        }
        if let Some(after) = rest.strip_prefix('>') {
            return (attrs, after);
        }
        let key_len = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '=' | '>' | '/'))
            .unwrap_or(rest.len())
            .max(1);
        let key = rest[..key_len].to_ascii_lowercase();
        rest = rest[key_len..].trim_start();
        let mut value = String::new();
        if let Some(after_eq) = rest.strip_prefix('=') {
            let after_eq = after_eq.trim_start();
            let (raw, after) = match after_eq.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let body = &after_eq[1..];
                    match body.find(q) {
                        Some(end) => (&body[..end], &body[end + 1..]),
                        None => (body, ""),
                    }
                }
                _ => {
                    let end = after_eq
                        .find(|c: char| c.is_whitespace() || c == '>')
                        .unwrap_or(after_eq.len());
                    after_eq.split_at(end)
                }
            };
            value = decode_entities(raw);
            rest = after;
        }
        attrs.push((key, value));
    }
}

/// Skips to after `</name>` (case-insensitive); an unclosed element runs to the end. Reads `s`
/// once, in place: a document of many short skipped elements costs its length, not its length
/// times their number.
fn skip_element<'a>(s: &'a str, name: &str) -> &'a str {
    let bytes = s.as_bytes();
    let name = name.as_bytes();
    let mut from = 0;
    while let Some(i) = s[from..].find("</") {
        let at = from + i + 2;
        let matches = bytes
            .get(at..at + name.len())
            .is_some_and(|candidate| candidate.eq_ignore_ascii_case(name));
        let next = bytes.get(at + name.len());
        if matches && next.is_none_or(|c| !c.is_ascii_alphanumeric()) {
            return s[at..].find('>').map_or("", |j| &s[at + j + 1..]);
        }
        from = at;
    }
    ""
}

/// Most links followed at once (deeper nesting is read as text): each closing link looks at its
/// label, so unbounded nesting would read the text once per level.
const MAX_OPEN_LINKS: usize = 32;
/// Most indentation levels of nested lists.
const MAX_LIST_INDENT: usize = 8;

#[derive(Default)]
struct Writer {
    out: String,
    /// Line breaks owed before the next text: 1 = new line, 2 = blank line.
    pending_break: usize,
    pending_space: bool,
    pre: usize,
    /// Open links: their target and where their text starts in `out`.
    links: Vec<(Option<String>, usize)>,
    /// Links opened past [`MAX_OPEN_LINKS`], whose closings are ignored.
    ignored_links: usize,
    /// Open lists: `None` for `ul`, `Some(next number)` for `ol`.
    lists: Vec<Option<u32>>,
}

impl Writer {
    fn tag(&mut self, tag: &Tag) {
        let name = tag.name.as_str();
        match (name, tag.closing) {
            ("br", _) => self.line_break(),
            ("a", false) => {
                let href = tag
                    .attr("href")
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(str::to_string);
                if self.links.len() < MAX_OPEN_LINKS {
                    self.links.push((href, self.out.len()));
                } else {
                    self.ignored_links += 1;
                }
            }
            ("a", true) if self.ignored_links > 0 => self.ignored_links -= 1,
            ("a", true) => self.close_link(),
            ("img", false) => {
                if let Some(alt) = tag.attr("alt").filter(|a| !a.trim().is_empty()) {
                    self.text(alt);
                }
            }
            ("td" | "th", _) => self.pending_space = true,
            ("li", false) => {
                self.block(1);
                let depth = self.lists.len().clamp(1, MAX_LIST_INDENT);
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        *n += 1;
                        format!("{}. ", *n - 1)
                    }
                    _ => "- ".to_string(),
                };
                self.raw(&format!("{}{marker}", "  ".repeat(depth - 1)));
            }
            ("ul" | "ol", false) => {
                self.block(if self.lists.is_empty() { 2 } else { 1 });
                let start = tag.attr("start").and_then(|s| s.trim().parse().ok());
                self.lists
                    .push((name == "ol").then_some(start.unwrap_or(1)));
            }
            ("ul" | "ol", true) => {
                self.lists.pop();
                self.block(if self.lists.is_empty() { 2 } else { 1 });
            }
            ("pre", false) => {
                self.block(2);
                self.pre += 1;
            }
            ("pre", true) => {
                self.pre = self.pre.saturating_sub(1);
                self.block(2);
            }
            _ if PARAGRAPHS.contains(&name) => self.block(2),
            _ if LINES.contains(&name) => self.block(1),
            _ => {}
        }
    }

    fn close_link(&mut self) {
        let Some((href, start)) = self.links.pop() else {
            return;
        };
        let Some(href) = href else { return };
        let lower = href.to_ascii_lowercase();
        if href.starts_with('#') || lower.starts_with("javascript:") {
            return;
        }
        let start = start.min(self.out.len());
        let label = self.out[start..].trim();
        let bare = strip_scheme(&href);
        let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
        if same(label, &href) || same(label, bare) {
            return;
        }
        if label.is_empty() {
            self.text(bare_if_mailto(&href));
        } else {
            let space = std::mem::take(&mut self.pending_space);
            self.raw(&format!(" ({})", bare_if_mailto(&href)));
            self.pending_space = space;
        }
    }

    /// Text content: entities decoded, whitespace collapsed (kept inside `pre`).
    fn text(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        let decoded = decode_entities(s);
        for c in decoded.chars() {
            if matches!(
                c,
                '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{feff}' | '\u{34f}' | '\u{ad}'
            ) {
                continue;
            }
            if self.pre > 0 {
                self.flush_break();
                self.out.push(if c == '\u{a0}' { ' ' } else { c });
            } else if c.is_whitespace() {
                self.pending_space = true;
            } else {
                self.flush_break();
                if std::mem::take(&mut self.pending_space)
                    && !self.out.is_empty()
                    && !self.out.ends_with(char::is_whitespace)
                {
                    self.out.push(' ');
                }
                self.out.push(c);
            }
        }
    }

    /// Output that is not collapsed (list markers, link targets).
    fn raw(&mut self, s: &str) {
        self.flush_break();
        self.out.push_str(s);
    }

    fn block(&mut self, breaks: usize) {
        self.pending_break = self.pending_break.max(breaks);
        self.pending_space = false;
    }

    fn line_break(&mut self) {
        self.flush_break();
        self.trim_trailing_spaces();
        self.out.push('\n');
        self.pending_space = false;
    }

    fn flush_break(&mut self) {
        let wanted = std::mem::take(&mut self.pending_break);
        if wanted == 0 || self.out.is_empty() {
            return;
        }
        self.trim_trailing_spaces();
        let have = self.out.len() - self.out.trim_end_matches('\n').len();
        for _ in have..wanted {
            self.out.push('\n');
        }
        self.pending_space = false;
    }

    fn trim_trailing_spaces(&mut self) {
        let len = self.out.trim_end_matches([' ', '\t']).len();
        self.out.truncate(len);
    }

    fn finish(self) -> String {
        let mut result = String::with_capacity(self.out.len());
        let mut blank_run = 0;
        for line in self.out.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                blank_run += 1;
                if blank_run > 1 {
                    continue;
                }
            } else {
                blank_run = 0;
            }
            result.push_str(line);
            result.push('\n');
        }
        result.trim_matches('\n').to_string()
    }
}

fn strip_scheme(href: &str) -> &str {
    for scheme in ["mailto:", "tel:", "https://", "http://"] {
        if href.len() >= scheme.len() && href[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return &href[scheme.len()..];
        }
    }
    href
}

fn bare_if_mailto(href: &str) -> &str {
    if href.len() > 7 && href[..7].eq_ignore_ascii_case("mailto:") {
        &href[7..]
    } else {
        href
    }
}

/// Decodes character references: numeric, and the named ones email HTML uses.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest
            .char_indices()
            .skip(1)
            .take(33)
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '#'))
            .map_or(rest.len().min(34), |(i, _)| i);
        let name = &rest[1..end];
        let with_semicolon = rest[end..].starts_with(';');
        match decode_entity(name) {
            Some(c) => {
                out.push(c);
                rest = &rest[end + usize::from(with_semicolon)..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return Some(match code {
            0 => '\u{fffd}',
            _ => char::from_u32(code).unwrap_or('\u{fffd}'),
        });
    }
    Some(match name {
        "amp" | "AMP" => '&',
        "lt" | "LT" => '<',
        "gt" | "GT" => '>',
        "quot" | "QUOT" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "ensp" | "emsp" | "thinsp" => ' ',
        "copy" | "COPY" => '©',
        "reg" | "REG" => '®',
        "trade" => '™',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "lsquo" => '‘',
        "rsquo" => '’',
        "sbquo" => '‚',
        "ldquo" => '“',
        "rdquo" => '”',
        "bdquo" => '„',
        "laquo" => '«',
        "raquo" => '»',
        "lsaquo" => '‹',
        "rsaquo" => '›',
        "bull" => '•',
        "middot" => '·',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "sect" => '§',
        "para" => '¶',
        "deg" => '°',
        "plusmn" => '±',
        "times" => '×',
        "divide" => '÷',
        "frac12" => '½',
        "frac14" => '¼',
        "frac34" => '¾',
        "iexcl" => '¡',
        "iquest" => '¿',
        "larr" => '←',
        "rarr" => '→',
        "uarr" => '↑',
        "darr" => '↓',
        "check" => '✓',
        "dagger" => '†',
        "zwnj" => '\u{200c}',
        "zwj" => '\u{200d}',
        "shy" => '\u{ad}',
        "auml" => 'ä',
        "ouml" => 'ö',
        "uuml" => 'ü',
        "Auml" => 'Ä',
        "Ouml" => 'Ö',
        "Uuml" => 'Ü',
        "szlig" => 'ß',
        "eacute" => 'é',
        "egrave" => 'è',
        "ecirc" => 'ê',
        "aacute" => 'á',
        "agrave" => 'à',
        "acirc" => 'â',
        "iacute" => 'í',
        "oacute" => 'ó',
        "uacute" => 'ú',
        "ntilde" => 'ñ',
        "ccedil" => 'ç',
        "Eacute" => 'É',
        "aring" => 'å',
        "Aring" => 'Å',
        "oslash" => 'ø',
        "Oslash" => 'Ø',
        "aelig" => 'æ',
        "AElig" => 'Æ',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::{convert, MAX_LIST_INDENT, MAX_OPEN_LINKS};

    #[test]
    fn tags_are_stripped_and_whitespace_collapsed() {
        assert_eq!(
            convert("<p>Hello   <b>big</b>\n\n   world</p>"),
            "Hello big world"
        );
        assert_eq!(convert("plain text"), "plain text");
        assert_eq!(convert(""), "");
    }

    #[test]
    fn paragraphs_are_separated_by_a_blank_line_and_br_breaks_a_line() {
        assert_eq!(
            convert("<h1>Title</h1><p>One<br>two<br/>three</p><p>Next</p>"),
            "Title\n\nOne\ntwo\nthree\n\nNext"
        );
        assert_eq!(convert("<div>a</div><div>b</div>"), "a\nb");
        assert_eq!(convert("a<br><br><br><br>b"), "a\n\nb");
    }

    #[test]
    fn links_keep_their_url_after_the_text() {
        assert_eq!(
            convert(r#"Read <a href="https://acme.io/a?x=1&amp;y=2">the post</a> now."#),
            "Read the post (https://acme.io/a?x=1&y=2) now."
        );
        assert_eq!(
            convert(r#"<a href="https://acme.io/">https://acme.io</a>"#),
            "https://acme.io"
        );
        assert_eq!(
            convert(r#"<a href="mailto:help@acme.io">help@acme.io</a>"#),
            "help@acme.io"
        );
        assert_eq!(
            convert(r##"<a href="#top">Top</a> <a href="javascript:void(0)">x</a>"##),
            "Top x"
        );
        assert_eq!(
            convert(r#"<a href="https://acme.io/logo"><img src="l.png"></a>"#),
            "https://acme.io/logo"
        );
        assert_eq!(
            convert(r#"<a href='https://a.io/b'><img alt="Logo" src="l.png"></a>"#),
            "Logo (https://a.io/b)"
        );
    }

    #[test]
    fn entities_are_decoded() {
        assert_eq!(
            convert("Fish &amp; chips &lt;3 &quot;ok&quot; &#39;a&#x27; &euro;5&nbsp;only &copy; &unknown; & done"),
            "Fish & chips <3 \"ok\" 'a' €5 only © &unknown; & done"
        );
    }

    #[test]
    fn head_script_style_and_comments_are_dropped() {
        let html = "<!DOCTYPE html><html><head><title>T</title><style>p{color:red}</style></head>\
                    <body><!-- hidden <p>no</p> --><script>var a = '<p>';</script><p>Shown</p></body></html>";
        assert_eq!(convert(html), "Shown");
    }

    #[test]
    fn lists_get_markers_and_tables_get_rows() {
        assert_eq!(
            convert("<ul><li>one</li><li>two</li></ul><ol><li>first</li><li>second</li></ol>"),
            "- one\n- two\n\n1. first\n2. second"
        );
        assert_eq!(
            convert("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>"),
            "a b\nc d"
        );
    }

    #[test]
    fn preformatted_text_keeps_its_whitespace() {
        assert_eq!(
            convert("<p>x</p><pre>a  b\n  c</pre><p>y</p>"),
            "x\n\na  b\n  c\n\ny"
        );
    }

    #[test]
    fn stray_angle_brackets_and_invisible_characters_survive_or_vanish_sensibly() {
        assert_eq!(convert("1 < 2 and 3 > 2"), "1 < 2 and 3 > 2");
        assert_eq!(convert("a\u{200c}b&zwnj;c\u{feff}"), "abc");
        assert_eq!(convert("<p>unclosed <b attr=\"x>y\">bold"), "unclosed bold");
    }

    #[test]
    fn pathological_documents_keep_their_text_and_their_shape() {
        // Many skipped elements: only the text between them remains.
        let styles = "<style></style>x".repeat(30_000);
        assert_eq!(convert(&styles), "x".repeat(30_000));
        assert_eq!(
            convert("<STYLE>a</StYlE>b<script>c</scriptx></script>d"),
            "bd"
        );
        // Links nested past the bound read as text; their closings stay balanced.
        let deep = format!(
            "{}label{}",
            "<a href=\"https://a.io\">".repeat(100),
            "</a>".repeat(100)
        );
        let out = convert(&deep);
        assert!(out.starts_with("label (https://a.io)"), "{out}");
        assert_eq!(out.matches("https://a.io").count(), MAX_OPEN_LINKS);
        // Deep lists indent at most so far.
        let lists = format!("{}<li>x{}", "<ul>".repeat(1_000), "</ul>".repeat(1_000));
        assert_eq!(
            convert(&lists),
            format!("{}- x", "  ".repeat(MAX_LIST_INDENT - 1))
        );
    }
}
