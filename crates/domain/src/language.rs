//! The languages of the hosted pages and the marketing footer (spec feedback-and-unsubscribe.md
//! §4: the contact's `data.locale`, else the project language, else English).

/// A supported language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Language {
    #[default]
    En,
    De,
    Fr,
    Es,
    Nl,
    Pt,
    It,
}

impl Language {
    /// Every supported language.
    pub const ALL: [Language; 7] = [
        Language::En,
        Language::De,
        Language::Fr,
        Language::Es,
        Language::Nl,
        Language::Pt,
        Language::It,
    ];

    /// The ISO 639-1 code, e.g. `de` (also the page's `lang` attribute).
    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::De => "de",
            Language::Fr => "fr",
            Language::Es => "es",
            Language::Nl => "nl",
            Language::Pt => "pt",
            Language::It => "it",
        }
    }

    /// The language of a locale tag by its primary subtag, case-insensitively: `de-AT`, `pt_BR`
    /// and `FR` are German, Portuguese and French. `None` when unsupported.
    pub fn from_locale(locale: &str) -> Option<Self> {
        let primary = locale.trim().split(['-', '_']).next()?;
        Self::ALL
            .into_iter()
            .find(|l| l.code().eq_ignore_ascii_case(primary))
    }

    /// The contact's locale if supported, else the project language if supported, else English.
    pub fn pick(contact_locale: Option<&str>, project_language: &str) -> Self {
        contact_locale
            .and_then(Self::from_locale)
            .or_else(|| Self::from_locale(project_language))
            .unwrap_or_default()
    }
}

/// The `data.locale` of a contact's data, when it is a non-empty string.
pub fn contact_locale(data: &serde_json::Map<String, serde_json::Value>) -> Option<&str> {
    data.get("locale")
        .and_then(serde_json::Value::as_str)
        .filter(|l| !l.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_subtag_decides_case_insensitively() {
        assert_eq!(Language::from_locale("de-AT"), Some(Language::De));
        assert_eq!(Language::from_locale("pt_BR"), Some(Language::Pt));
        assert_eq!(Language::from_locale("FR"), Some(Language::Fr));
        assert_eq!(Language::from_locale(" nl "), Some(Language::Nl));
        assert_eq!(Language::from_locale("ja-JP"), None);
        assert_eq!(Language::from_locale(""), None);
        assert_eq!(Language::from_locale("english"), None);
    }

    #[test]
    fn contact_then_project_then_english() {
        assert_eq!(Language::pick(Some("it"), "de"), Language::It);
        assert_eq!(Language::pick(Some("ja"), "de"), Language::De);
        assert_eq!(Language::pick(None, "es-MX"), Language::Es);
        assert_eq!(Language::pick(Some("ja"), "zh"), Language::En);
        assert_eq!(Language::pick(None, ""), Language::En);
    }

    #[test]
    fn only_non_empty_string_locales_count() {
        let data = |v: serde_json::Value| v.as_object().cloned().unwrap();
        assert_eq!(
            contact_locale(&data(serde_json::json!({"locale": "de"}))),
            Some("de")
        );
        assert_eq!(
            contact_locale(&data(serde_json::json!({"locale": ""}))),
            None
        );
        assert_eq!(
            contact_locale(&data(serde_json::json!({"locale": 3}))),
            None
        );
        assert_eq!(contact_locale(&data(serde_json::json!({}))), None);
    }
}
