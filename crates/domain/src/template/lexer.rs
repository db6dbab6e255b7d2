//! Reads a template exactly the way Liquid's grammar (liquid-core 0.26) does, without building
//! anything: which outputs (`{{ }}`) and tags (`{% %}`) the parser will accept, where each one
//! starts and ends, and the tokens inside that matter for safety — integer literals, literal
//! ranges, bracket nesting, `and`/`or` words, the last filter of an output. Text the grammar
//! does not accept is skipped one character at a time, as the parser does.
//!
//! The static bounds and output escaping rely on this agreeing with the parser: an element the
//! parser sees but this lexer did not would escape both. So the rules below follow the grammar
//! rule by rule (whitespace is `" "` and line breaks only, variables take no inner spaces,
//! literals are tried in the grammar's order), and the content of `raw` and `comment` blocks is
//! marked the way the parser skips it.

/// Deepest nesting of brackets the lexer follows (`a[b[c]]` is 2); deeper is a hazard.
pub const MAX_BRACKET_DEPTH: usize = 16;

/// An element the parser accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Element {
    pub(super) kind: ElementKind,
    /// Byte range of the whole element, delimiters (and the whitespace a `{{-` or `{%-` takes)
    /// included.
    pub(super) span: (usize, usize),
    /// For a tag, its name's byte range.
    pub(super) name: (usize, usize),
    /// Where an output's filter chain ends (before trailing spaces and the closing delimiter).
    pub(super) chain_end: usize,
    /// The name of the last filter of an output, if it has filters.
    pub(super) last_filter: Option<(usize, usize)>,
    /// Whether the element is inside a `raw` or `comment` block (never parsed into code).
    pub(super) skipped: bool,
    pub(super) tokens: Vec<Token>,
}

/// A kind of element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ElementKind {
    Output,
    Tag,
}

/// A token that matters for safety.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token {
    /// An integer literal, its sign included.
    Integer { span: (usize, usize) },
    /// A range `(a..b)`; the bounds when they are integer literals.
    Range {
        at: usize,
        start: Option<(usize, usize)>,
        end: Option<(usize, usize)>,
    },
    /// A bare word used as a value (`and`, `or`, a variable name).
    Word { span: (usize, usize) },
    /// Brackets nested deeper than [`MAX_BRACKET_DEPTH`] at this offset.
    TooDeep { at: usize },
}

impl Element {
    /// The tag's name (empty for an output).
    pub(super) fn name<'t>(&self, text: &'t str) -> &'t str {
        &text[self.name.0..self.name.1]
    }
}

/// The elements of `text`, in order.
pub(super) fn elements(text: &str) -> Vec<Element> {
    let lexer = Lexer {
        s: text.as_bytes(),
        tokens: Vec::new(),
        depth: 0,
    };
    lexer.file()
}

struct Lexer<'t> {
    s: &'t [u8],
    tokens: Vec<Token>,
    depth: usize,
}

/// Which block's content is being skipped: `raw` ends at the first `endraw`, `comment` at the
/// `endcomment` matching its nesting.
enum Skipping {
    No,
    Raw,
    Comment(usize),
}

impl Lexer<'_> {
    fn at(&self, p: usize, lit: &str) -> bool {
        self.s.get(p..p + lit.len()) == Some(lit.as_bytes())
    }

    fn byte(&self, p: usize) -> Option<u8> {
        self.s.get(p).copied()
    }

    /// `NEWLINE`: `\n`, `\r\n` or `\r`.
    fn newline(&self, p: usize) -> Option<usize> {
        match self.byte(p)? {
            b'\n' => Some(p + 1),
            b'\r' if self.byte(p + 1) == Some(b'\n') => Some(p + 2),
            b'\r' => Some(p + 1),
            _ => None,
        }
    }

    /// `WHITESPACE*`: spaces and line breaks (not tabs).
    fn spaces(&self, mut p: usize) -> usize {
        loop {
            if self.byte(p) == Some(b' ') {
                p += 1;
            } else if let Some(q) = self.newline(p) {
                p = q;
            } else {
                return p;
            }
        }
    }

    /// `(WHITESPACE* ~ "{{-") | "{{"` (or the `%` form): where the content starts.
    fn start(&self, p: usize, brace: u8) -> Option<usize> {
        let q = self.spaces(p);
        if self.byte(q) == Some(b'{')
            && self.byte(q + 1) == Some(brace)
            && self.byte(q + 2) == Some(b'-')
        {
            return Some(q + 3);
        }
        (self.byte(p) == Some(b'{') && self.byte(p + 1) == Some(brace)).then_some(p + 2)
    }

    /// `("-}}" ~ WHITESPACE*) | "}}"` (or the `%` form): where the element ends.
    fn end(&self, p: usize, closer: &str) -> Option<usize> {
        let dashed = format!("-{closer}");
        if self.at(p, &dashed) {
            return Some(self.spaces(p + dashed.len()));
        }
        self.at(p, closer).then_some(p + closer.len())
    }

    /// `-` not starting `-}}` or `-%}`.
    fn identifier_hyphen(&self, p: usize) -> bool {
        self.byte(p) == Some(b'-') && !self.at(p, "-}}") && !self.at(p, "-%}")
    }

    fn identifier(&self, p: usize) -> Option<usize> {
        let first = self.byte(p)?;
        if !(first.is_ascii_alphabetic() || first == b'_' || self.identifier_hyphen(p)) {
            return None;
        }
        let mut q = p + 1;
        while let Some(b) = self.byte(q) {
            if b.is_ascii_alphanumeric() || b == b'_' || self.identifier_hyphen(q) {
                q += 1;
            } else {
                break;
            }
        }
        Some(q)
    }

    fn digits(&self, mut p: usize) -> Option<usize> {
        let start = p;
        while self.byte(p).is_some_and(|b| b.is_ascii_digit()) {
            p += 1;
        }
        (p > start).then_some(p)
    }

    fn sign(&self, p: usize) -> usize {
        if matches!(self.byte(p), Some(b'+' | b'-')) {
            p + 1
        } else {
            p
        }
    }

    /// A literal, in the grammar's order: nil, empty, blank, string, float, integer, boolean.
    fn literal(&mut self, p: usize) -> Option<usize> {
        for word in ["nil", "null", "empty", "blank"] {
            if self.at(p, word) {
                return Some(p + word.len());
            }
        }
        if let Some(quote @ (b'"' | b'\'')) = self.byte(p) {
            let close = self.s[p + 1..].iter().position(|&b| b == quote)?;
            return Some(p + 1 + close + 1);
        }
        let whole = self.digits(self.sign(p));
        if let Some(w) = whole {
            if self.byte(w) == Some(b'.') {
                if let Some(f) = self.digits(w + 1) {
                    return Some(f);
                }
            }
            self.tokens.push(Token::Integer { span: (p, w) });
            return Some(w);
        }
        for word in ["true", "false"] {
            if self.at(p, word) {
                return Some(p + word.len());
            }
        }
        None
    }

    /// `Variable`: an identifier, then `.name` or `[value]` parts, no spaces but inside
    /// brackets.
    fn variable(&mut self, p: usize) -> Option<usize> {
        let mut q = self.identifier(p)?;
        loop {
            if self.byte(q) == Some(b'.') {
                match self.identifier(q + 1) {
                    Some(r) => q = r,
                    None => return Some(q),
                }
            } else if self.byte(q) == Some(b'[') {
                if self.depth >= MAX_BRACKET_DEPTH {
                    self.tokens.push(Token::TooDeep { at: q });
                    return None;
                }
                let mark = self.tokens.len();
                self.depth += 1;
                let inner = self.value(self.spaces(q + 1));
                self.depth -= 1;
                let closed = inner
                    .map(|r| self.spaces(r))
                    .filter(|&r| self.byte(r) == Some(b']'));
                match closed {
                    Some(r) => q = r + 1,
                    None => {
                        self.keep_too_deep(mark);
                        return Some(q);
                    }
                }
            } else {
                return Some(q);
            }
        }
    }

    /// Drops the tokens recorded since `mark`, except a nesting hazard (which must be reported
    /// whatever the grammar then makes of the text).
    fn keep_too_deep(&mut self, mark: usize) {
        let too_deep = self.tokens[mark..]
            .iter()
            .find(|t| matches!(t, Token::TooDeep { .. }))
            .copied();
        self.tokens.truncate(mark);
        self.tokens.extend(too_deep);
    }

    /// `Value`: a literal, else a variable.
    fn value(&mut self, p: usize) -> Option<usize> {
        if let Some(q) = self.literal(p) {
            return Some(q);
        }
        let q = self.variable(p)?;
        if self.identifier(p) == Some(q) {
            self.tokens.push(Token::Word { span: (p, q) });
        }
        Some(q)
    }

    /// `FilterArgument`: `name: value` or a value.
    fn argument(&mut self, p: usize) -> Option<usize> {
        let mark = self.tokens.len();
        if let Some(q) = self.identifier(p) {
            let q = self.spaces(q);
            if self.byte(q) == Some(b':') {
                if let Some(r) = self.value(self.spaces(q + 1)) {
                    return Some(r);
                }
            }
        }
        self.keep_too_deep(mark);
        self.value(p)
    }

    /// `Filter`: a name and optional `: arg, arg`. Returns its end and name's range.
    fn filter(&mut self, p: usize) -> Option<(usize, (usize, usize))> {
        let name_end = self.identifier(p)?;
        let name = (p, name_end);
        let colon = self.spaces(name_end);
        if self.byte(colon) != Some(b':') {
            return Some((name_end, name));
        }
        let mark = self.tokens.len();
        let Some(mut q) = self.argument(self.spaces(colon + 1)) else {
            self.keep_too_deep(mark);
            return Some((name_end, name));
        };
        loop {
            let comma = self.spaces(q);
            if self.byte(comma) != Some(b',') {
                return Some((q, name));
            }
            let mark = self.tokens.len();
            match self.argument(self.spaces(comma + 1)) {
                Some(r) => q = r,
                None => {
                    self.keep_too_deep(mark);
                    return Some((q, name));
                }
            }
        }
    }

    /// `FilterChain`: a value and `| filter` parts. Returns its end and the last filter's name.
    fn chain(&mut self, p: usize) -> Option<(usize, Option<(usize, usize)>)> {
        let mut q = self.value(p)?;
        let mut last = None;
        loop {
            let pipe = self.spaces(q);
            if self.byte(pipe) != Some(b'|') {
                return Some((q, last));
            }
            let mark = self.tokens.len();
            match self.filter(self.spaces(pipe + 1)) {
                Some((r, name)) => {
                    q = r;
                    last = Some(name);
                }
                None => {
                    self.keep_too_deep(mark);
                    return Some((q, last));
                }
            }
        }
    }

    /// `Range`: `(value..value)`.
    fn range(&mut self, p: usize) -> Option<usize> {
        if self.byte(p) != Some(b'(') {
            return None;
        }
        let mark = self.tokens.len();
        let integer_at =
            |lexer: &Self, from: usize| match lexer.tokens.get(from..).and_then(|t| t.first()) {
                Some(Token::Integer { span }) => Some(*span),
                _ => None,
            };
        let a = self.spaces(p + 1);
        let before_a = self.tokens.len();
        let a_end = self.value(a);
        let start = integer_at(self, before_a).filter(|s| Some(s.1) == a_end);
        let result = a_end.and_then(|q| {
            let dots = self.spaces(q);
            if !self.at(dots, "..") {
                return None;
            }
            let b = self.spaces(dots + 2);
            let before_b = self.tokens.len();
            let b_end = self.value(b)?;
            let end = integer_at(self, before_b).filter(|s| s.1 == b_end);
            let close = self.spaces(b_end);
            (self.byte(close) == Some(b')')).then(|| (close + 1, end))
        });
        match result {
            Some((q, end)) => {
                self.tokens.push(Token::Range { at: p, start, end });
                Some(q)
            }
            None => {
                self.keep_too_deep(mark);
                None
            }
        }
    }

    /// `DoubleCharSymbol | SingleCharSymbol`.
    fn symbol(&self, p: usize) -> Option<usize> {
        for double in ["==", "!=", "<>", ">=", "<="] {
            if self.at(p, double) {
                return Some(p + 2);
            }
        }
        matches!(self.byte(p)?, b'>' | b'<' | b'=' | b',' | b':').then_some(p + 1)
    }

    /// `TagToken`.
    fn tag_token(&mut self, p: usize) -> Option<usize> {
        if let Some(q) = self.range(p) {
            return Some(q);
        }
        let mark = self.tokens.len();
        if let Some((q, _)) = self.chain(p) {
            return Some(q);
        }
        self.keep_too_deep(mark);
        self.symbol(p)
    }

    /// An output at `p`: its element, or `None` when the grammar refuses it.
    fn output(&mut self, p: usize) -> Option<Element> {
        let content = self.start(p, b'{')?;
        let (chain_end, last_filter) = self.chain(self.spaces(content))?;
        let end = self.end(self.spaces(chain_end), "}}")?;
        Some(Element {
            kind: ElementKind::Output,
            span: (p, end),
            name: (content, content),
            chain_end,
            last_filter,
            skipped: false,
            tokens: Vec::new(),
        })
    }

    /// A tag at `p`.
    fn tag(&mut self, p: usize) -> Option<Element> {
        let content = self.start(p, b'%')?;
        let name_start = self.spaces(content);
        let name_end = self.identifier(name_start)?;
        let mut q = name_end;
        loop {
            let next = self.spaces(q);
            let mark = self.tokens.len();
            match self.tag_token(next) {
                Some(r) if r > next => q = r,
                _ => {
                    self.keep_too_deep(mark);
                    break;
                }
            }
        }
        let end = self.end(self.spaces(q), "%}")?;
        Some(Element {
            kind: ElementKind::Tag,
            span: (p, end),
            name: (name_start, name_end),
            chain_end: q,
            last_filter: None,
            skipped: false,
            tokens: Vec::new(),
        })
    }

    /// Whether the tokens recorded hold a nesting hazard.
    fn too_deep(&self) -> bool {
        self.tokens
            .iter()
            .any(|t| matches!(t, Token::TooDeep { .. }))
    }

    /// Whether an element may start at `p` (where raw text stops).
    fn element_starts(&self, p: usize) -> bool {
        self.start(p, b'{').is_some() || self.start(p, b'%').is_some()
    }

    fn file(mut self) -> Vec<Element> {
        let mut elements = Vec::new();
        let mut skipping = Skipping::No;
        let mut p = 0;
        while p < self.s.len() {
            self.tokens.clear();
            let mut found = self.output(p);
            if found.is_none() && !self.too_deep() {
                self.tokens.clear();
                found = self.tag(p);
            }
            match found {
                Some(mut element) => {
                    p = element.span.1;
                    element.tokens = std::mem::take(&mut self.tokens);
                    element.skipped = self.skip(&mut skipping, &element);
                    elements.push(element);
                }
                None if self.too_deep() => {
                    // Refused by the grammar here only because the lexer stopped following
                    // the nesting: report it as a tag-less element so the bound is checked.
                    elements.push(Element {
                        kind: ElementKind::Output,
                        span: (p, p + 1),
                        name: (p, p),
                        chain_end: p,
                        last_filter: None,
                        skipped: false,
                        tokens: std::mem::take(&mut self.tokens),
                    });
                    p += 1;
                }
                None if !self.element_starts(p) => {
                    // Raw text runs to where an element may start.
                    p += 1;
                    while p < self.s.len() && !self.element_starts(p) {
                        p += 1;
                    }
                }
                // Neither an element nor text: the parser takes one character as invalid.
                None => p += 1,
            }
        }
        elements
    }

    /// Updates the raw/comment state with `element`; returns whether the element is inside a
    /// skipped block (the opening and closing tags themselves are not).
    fn skip(&self, state: &mut Skipping, element: &Element) -> bool {
        let text = std::str::from_utf8(self.s).unwrap_or_default();
        let is_tag = element.kind == ElementKind::Tag;
        let name = if is_tag { element.name(text) } else { "" };
        // An end tag closes only without arguments.
        let bare = is_tag && element.chain_end == element.name.1;
        match state {
            Skipping::No => {
                match name {
                    "raw" => *state = Skipping::Raw,
                    "comment" => *state = Skipping::Comment(1),
                    _ => {}
                }
                false
            }
            Skipping::Raw => {
                if name == "endraw" && bare {
                    *state = Skipping::No;
                    return false;
                }
                true
            }
            Skipping::Comment(depth) => {
                // Liquid counts a nested `comment` tag with or without arguments.
                if name == "comment" {
                    *depth += 1;
                } else if name == "endcomment" && bare {
                    *depth -= 1;
                    if *depth == 0 {
                        *state = Skipping::No;
                        return false;
                    }
                }
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(ElementKind, &str, bool)> {
        elements(text)
            .into_iter()
            .map(|e| (e.kind, &text[e.span.0..e.span.1], e.skipped))
            .collect()
    }

    #[test]
    fn outputs_and_tags_are_found_with_their_extent() {
        use ElementKind::*;
        assert_eq!(
            kinds("a {{ x | upcase }} b {% if y %}c{% endif %}"),
            [
                (Output, "{{ x | upcase }}", false),
                (Tag, "{% if y %}", false),
                (Tag, "{% endif %}", false)
            ]
        );
        assert_eq!(kinds("x  {{- y -}}  z"), [(Output, "  {{- y -}}  ", false)]);
        assert_eq!(kinds("{{ \"}}\" }}"), [(Output, "{{ \"}}\" }}", false)]);
    }

    #[test]
    fn text_the_grammar_refuses_is_skipped_a_character_at_a_time() {
        use ElementKind::*;
        // `{{{% … %}` is two invalid characters, then a tag.
        assert_eq!(kinds("{{{% if a %}"), [(Tag, "{% if a %}", false)]);
        // A tab is not whitespace to the grammar.
        assert_eq!(kinds("{{\tx }}"), []);
        // Variables take no spaces: the output is refused, what follows still counts.
        assert_eq!(kinds("{{ a .b }}{{ c }}"), [(Output, "{{ c }}", false)]);
    }

    #[test]
    fn raw_and_comment_content_is_marked_as_the_parser_skips_it() {
        let text = "{% comment %}{{ \"{% comment %}\" }}{% endcomment %}{{ x }}{% raw %}{{ y }}{% endraw %}";
        let marks: Vec<bool> = kinds(text).into_iter().map(|k| k.2).collect();
        assert_eq!(marks, [false, true, false, false, false, true, false]);
    }

    #[test]
    fn integer_literals_are_tokens_where_the_grammar_reads_numbers() {
        let text = "{{ 12 | plus: -3 }}{{ a1 | b-2 }}{{ 1.5 }}{{ '99' }}{% for i in (1..99) %}";
        let integers: Vec<&str> = elements(text)
            .iter()
            .flat_map(|e| e.tokens.iter())
            .filter_map(|t| match t {
                Token::Integer { span } => Some(&text[span.0..span.1]),
                _ => None,
            })
            .collect();
        assert_eq!(integers, ["12", "-3", "1", "99"]);
    }

    #[test]
    fn the_last_filter_of_an_output_is_known() {
        let text = "{{ a | upcase | raw }}{{ b }}";
        let last: Vec<Option<&str>> = elements(text)
            .iter()
            .map(|e| e.last_filter.map(|(s, t)| &text[s..t]))
            .collect();
        assert_eq!(last, [Some("raw"), None]);
    }

    #[test]
    fn deep_brackets_are_reported_without_following_them() {
        let text = format!("{{{{ {}{} }}}}", "a[".repeat(40), "]".repeat(40));
        let found = elements(&text);
        assert!(found
            .iter()
            .flat_map(|e| e.tokens.iter())
            .any(|t| matches!(t, Token::TooDeep { .. })));
    }
}
