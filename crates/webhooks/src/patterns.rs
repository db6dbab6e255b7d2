//! Event filter patterns of a webhook (webhooks.md §1 `events`): an exact event name, a prefix
//! ending in `.*` (`email.*`), or `*` for every event.

use plunk_domain::validation::{FieldCode, FieldError};

/// Longest pattern, in characters (the longest event name).
pub const MAX_PATTERN_LEN: usize = 255;

/// Most patterns on one webhook.
pub const MAX_PATTERNS: usize = 50;

/// The pattern that matches every event, and the default filter.
pub const MATCH_ALL: &str = "*";

/// Why a pattern is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Empty after trimming.
    #[error("Pattern must not be empty")]
    Empty,
    /// Longer than 255 characters.
    #[error("Pattern must be at most 255 characters")]
    TooLong,
    /// Contains a control character.
    #[error("Pattern must not contain control characters")]
    ControlCharacter,
    /// Contains `/` (event names never do).
    #[error("Pattern must not contain '/'")]
    Slash,
    /// `*` somewhere other than a lone `*` or a trailing `.*` after a non-empty prefix.
    #[error("'*' is only allowed as '*' alone or at the end after a dot, e.g. 'email.*'")]
    MisplacedWildcard,
}

impl PatternError {
    /// The field error code for this problem (spec README §11.1).
    pub fn field_code(&self) -> FieldCode {
        match self {
            Self::Empty => FieldCode::TooSmall,
            Self::TooLong => FieldCode::TooBig,
            Self::ControlCharacter | Self::Slash | Self::MisplacedWildcard => {
                FieldCode::InvalidString
            }
        }
    }
}

/// Validates one pattern and returns it trimmed, as it should be stored.
///
/// A `*` is accepted only as the whole pattern or as the final character after `.` with a
/// non-empty prefix, so that `email*` is refused rather than silently matching nothing.
pub fn parse_pattern(raw: &str) -> Result<String, PatternError> {
    let p = raw.trim();
    if p.is_empty() {
        return Err(PatternError::Empty);
    }
    if p.chars().count() > MAX_PATTERN_LEN {
        return Err(PatternError::TooLong);
    }
    if p.chars().any(char::is_control) {
        return Err(PatternError::ControlCharacter);
    }
    if p.contains('/') {
        return Err(PatternError::Slash);
    }
    if p != MATCH_ALL {
        let head = p.strip_suffix(".*").unwrap_or(p);
        if head.is_empty() || head.contains('*') {
            return Err(PatternError::MisplacedWildcard);
        }
    }
    Ok(p.to_owned())
}

/// Validates the `events` list of a webhook: 1–50 patterns, each valid, no duplicates. Errors
/// name `field[i]` for items and `field` for the list itself; on success the trimmed patterns.
pub fn validate_list<S: AsRef<str>>(
    field: &str,
    items: &[S],
) -> Result<Vec<String>, Vec<FieldError>> {
    let mut errors = Vec::new();
    if items.is_empty() {
        errors.push(FieldError::new(
            field,
            FieldCode::TooSmall,
            "Must contain at least 1 pattern",
        ));
    } else if items.len() > MAX_PATTERNS {
        errors.push(FieldError::new(
            field,
            FieldCode::TooBig,
            format!("Must contain at most {MAX_PATTERNS} patterns"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("{field}[{i}]");
        match parse_pattern(item.as_ref()) {
            Ok(p) if out.contains(&p) => {
                errors.push(FieldError::new(
                    path,
                    FieldCode::Duplicate,
                    "Duplicate pattern",
                ));
            }
            Ok(p) => out.push(p),
            Err(e) => errors.push(FieldError::new(path, e.field_code(), e.to_string())),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Whether one (stored, valid) pattern matches `event_name`. Matching is case-sensitive like
/// event names; `email.*` matches every name starting with `email.`.
pub fn pattern_matches(pattern: &str, event_name: &str) -> bool {
    if pattern == MATCH_ALL {
        return true;
    }
    match pattern.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('.') => event_name.starts_with(prefix),
        _ => pattern == event_name,
    }
}

/// Whether any of `patterns` matches `event_name`.
pub fn matches<S: AsRef<str>>(patterns: &[S], event_name: &str) -> bool {
    patterns
        .iter()
        .any(|p| pattern_matches(p.as_ref(), event_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_patterns_are_accepted_and_trimmed() {
        for (raw, stored) in [
            ("*", "*"),
            (" email.* ", "email.*"),
            ("segment.*", "segment.*"),
            ("contact.subscribed", "contact.subscribed"),
            ("signed_up", "signed_up"),
            ("a.b.*", "a.b.*"),
            ("Purchase Completed", "Purchase Completed"),
        ] {
            assert_eq!(parse_pattern(raw).as_deref(), Ok(stored), "{raw:?}");
        }
        assert!(parse_pattern(&"x".repeat(255)).is_ok());
        assert!(parse_pattern(&format!("{}.*", "é".repeat(253))).is_ok());
    }

    #[test]
    fn invalid_patterns_are_refused_with_their_reason() {
        for (raw, err) in [
            ("", PatternError::Empty),
            ("   ", PatternError::Empty),
            ("a\u{7}b", PatternError::ControlCharacter),
            ("a\nb", PatternError::ControlCharacter),
            ("a/b", PatternError::Slash),
            ("email*", PatternError::MisplacedWildcard),
            (".*", PatternError::MisplacedWildcard),
            ("**", PatternError::MisplacedWildcard),
            ("*.*", PatternError::MisplacedWildcard),
            ("a*.b", PatternError::MisplacedWildcard),
            ("*.email", PatternError::MisplacedWildcard),
        ] {
            assert_eq!(parse_pattern(raw), Err(err), "{raw:?}");
        }
        assert_eq!(parse_pattern(&"x".repeat(256)), Err(PatternError::TooLong));
        assert_eq!(
            PatternError::TooLong.field_code(),
            FieldCode::TooBig,
            "length errors use the length code"
        );
    }

    #[test]
    fn matching_follows_the_three_forms() {
        let cases = [
            ("*", "anything", true),
            ("*", "email.sent", true),
            ("email.*", "email.sent", true),
            ("email.*", "email.bounce", true),
            ("email.*", "email", false),
            ("email.*", "emails.sent", false),
            ("email.*", "Email.sent", false),
            ("contact.*", "contact.subscribed", true),
            ("email.bounce", "email.bounce", true),
            ("email.bounce", "email.bounced", false),
            ("email.bounce", "Email.Bounce", false),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(
                pattern_matches(pattern, name),
                expected,
                "{pattern} ~ {name}"
            );
        }
    }

    #[test]
    fn a_list_matches_when_any_pattern_does() {
        let patterns = ["email.bounce", "contact.*"];
        assert!(matches(&patterns, "email.bounce"));
        assert!(matches(&patterns, "contact.unsubscribed"));
        assert!(!matches(&patterns, "email.sent"));
        assert!(!matches::<&str>(&[], "email.sent"));
    }

    #[test]
    fn list_validation_reports_each_bad_item_by_index() {
        let errs = validate_list("events", &["email.*", "a/b", " email.* ", "ok"]).unwrap_err();
        let got: Vec<(&str, FieldCode)> = errs.iter().map(|e| (e.field.as_str(), e.code)).collect();
        assert_eq!(
            got,
            vec![
                ("events[1]", FieldCode::InvalidString),
                ("events[2]", FieldCode::Duplicate),
            ]
        );
    }

    #[test]
    fn list_validation_bounds_the_count() {
        let empty: [&str; 0] = [];
        let errs = validate_list("events", &empty).unwrap_err();
        assert_eq!(errs[0].code, FieldCode::TooSmall);
        let many: Vec<String> = (0..51).map(|i| format!("e{i}")).collect();
        let errs = validate_list("events", &many).unwrap_err();
        assert_eq!(
            (errs[0].field.as_str(), errs[0].code),
            ("events", FieldCode::TooBig)
        );
        let fifty: Vec<String> = (0..50).map(|i| format!("e{i}")).collect();
        assert_eq!(validate_list("events", &fifty).unwrap().len(), 50);
    }
}
