//! Bounds a template must meet before the Liquid parser sees it.
//!
//! Some inputs make the parser itself fail in ways no error can report: an integer literal
//! beyond 64 bits panics inside it, and deep nesting (blocks inside blocks, brackets inside
//! brackets, a condition of thousands of `or`s, which Liquid evaluates and drops recursively)
//! can exhaust the stack. Those are refused here, with a position, as syntax errors; so is a
//! literal range that is over the loop bound already (`(1..100000000)`). The elements and
//! tokens come from [`super::lexer`], which reads the text as the parser will.

use super::bounds::MAX_LOOP_ITERATIONS;
use super::lexer::{self, ElementKind, Token, MAX_BRACKET_DEPTH};

/// Deepest nesting of block tags (`if` inside `for` inside …).
pub const MAX_BLOCK_DEPTH: usize = 64;
/// Most `and`/`or` joins in one tag.
pub const MAX_CONDITION_JOINS: usize = 100;

/// Block tags whose content the parser turns into code (and so nests).
const NESTING_BLOCKS: [&str; 6] = ["if", "unless", "for", "case", "capture", "ifchanged"];

/// A template the parser must not see: where (byte offset in the text), in which element, and
/// why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hazard {
    pub(super) element_start: usize,
    pub(super) at: usize,
    pub(super) message: String,
}

/// The first hazard of `text`.
pub(super) fn first_hazard(text: &str) -> Option<Hazard> {
    let mut open: Vec<&str> = Vec::new();
    for element in lexer::elements(text) {
        let hazard = |at: usize, message: String| Hazard {
            element_start: element.span.0,
            at,
            message,
        };
        let mut joins = 0;
        for token in &element.tokens {
            // The parser tokenizes everything (deep nesting is a hazard anywhere), but turns
            // nothing inside `raw` or `comment` into values.
            if element.skipped && !matches!(token, Token::TooDeep { .. }) {
                continue;
            }
            match *token {
                Token::Integer { span } => {
                    let literal = &text[span.0..span.1];
                    if literal.parse::<i64>().is_err() {
                        return Some(hazard(span.0, out_of_range(literal)));
                    }
                }
                Token::TooDeep { at } => {
                    return Some(hazard(
                        at,
                        format!("Brackets are nested more than {MAX_BRACKET_DEPTH} deep"),
                    ));
                }
                Token::Word { span } if element.kind == ElementKind::Tag => {
                    if matches!(&text[span.0..span.1], "and" | "or") {
                        joins += 1;
                        if joins > MAX_CONDITION_JOINS {
                            return Some(hazard(
                                span.0,
                                format!("A condition joins more than {MAX_CONDITION_JOINS} comparisons with 'and' or 'or'"),
                            ));
                        }
                    }
                }
                Token::Word { .. } => {}
                Token::Range {
                    at,
                    start: Some(start),
                    end: Some(end),
                } => {
                    let bound = |span: (usize, usize)| text[span.0..span.1].parse::<i64>().ok();
                    if let (Some(a), Some(b)) = (bound(start), bound(end)) {
                        let count = i128::from(b) - i128::from(a) + 1;
                        if count > i128::from(MAX_LOOP_ITERATIONS) {
                            return Some(hazard(
                                at,
                                format!("This range has {count} items; a template runs at most {MAX_LOOP_ITERATIONS} loop iterations"),
                            ));
                        }
                    }
                }
                Token::Range { .. } => {}
            }
        }
        if element.kind == ElementKind::Tag && !element.skipped {
            let name = element.name(text);
            if NESTING_BLOCKS.contains(&name) {
                open.push(name);
                if open.len() > MAX_BLOCK_DEPTH {
                    return Some(hazard(
                        element.span.0,
                        format!("Blocks are nested more than {MAX_BLOCK_DEPTH} deep"),
                    ));
                }
            } else if let Some(closed) = name.strip_prefix("end") {
                if open.last() == Some(&closed) {
                    open.pop();
                }
            }
        }
    }
    None
}

fn out_of_range(literal: &str) -> String {
    let shown: String = literal.chars().take(24).collect();
    let more = if literal.len() > shown.len() {
        "…"
    } else {
        ""
    };
    format!("The integer {shown}{more} is outside the 64-bit range")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> Option<String> {
        first_hazard(text).map(|h| h.message)
    }

    #[test]
    fn integers_past_64_bits_are_hazards_wherever_the_parser_reads_them() {
        for text in [
            "{{ 99999999999999999999 }}",
            "{{ a | plus: 99999999999999999999 }}",
            "{{ a[99999999999999999999] }}",
            "{% for i in (1..99999999999999999999) %}{% endfor %}",
            "{% assign x = -9223372036854775809 %}",
            "{% comment %}{{ \"{% comment %}\" }}{% endcomment %}{{ 99999999999999999999 }}",
        ] {
            assert!(
                message(text).is_some_and(|m| m.contains("64-bit")),
                "{text}"
            );
        }
        assert_eq!(message("{{ -9223372036854775808 }}"), None);
        // Not parsed as code: text, strings, raw blocks, comments.
        for text in [
            "order 99999999999999999999",
            "{{ '99999999999999999999' }}",
            "{% raw %}{{ 99999999999999999999 }}{% endraw %}",
            "{% comment %}{{ 99999999999999999999 }}{% endcomment %}",
        ] {
            assert_eq!(message(text), None, "{text}");
        }
    }

    #[test]
    fn literal_ranges_over_the_loop_bound_are_hazards() {
        assert_eq!(message("{% for i in (1..10000) %}{% endfor %}"), None);
        assert!(message("{% for i in (0..10000) %}{% endfor %}")
            .is_some_and(|m| m.contains("10001 items")));
        assert!(message("{% for i in (1..100000000) %}x{% endfor %}").is_some());
    }

    #[test]
    fn deep_nesting_and_long_conditions_are_hazards() {
        let blocks = "{% if a %}".repeat(MAX_BLOCK_DEPTH + 1);
        assert!(message(&blocks).is_some_and(|m| m.contains("nested")));
        let fine = "{% if a %}".repeat(MAX_BLOCK_DEPTH) + &"{% endif %}".repeat(MAX_BLOCK_DEPTH);
        assert_eq!(message(&fine), None);
        let joins = format!(
            "{{% if a{} %}}{{% endif %}}",
            " or a".repeat(MAX_CONDITION_JOINS + 1)
        );
        assert!(message(&joins).is_some_and(|m| m.contains("joins")));
        let brackets = format!("{{{{ {}0{} }}}}", "a[".repeat(20), "]".repeat(20));
        assert!(message(&brackets).is_some_and(|m| m.contains("Brackets")));
    }
}
