//! Unsubscribe headers and the localised marketing footer (spec feedback-and-unsubscribe.md §5,
//! templates.md §4).
//!
//! - `List-Unsubscribe: <url>` and `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058)
//!   go on every marketing email and on any other email whose rendered body contains its own
//!   unsubscribe URL. A caller-supplied `List-Unsubscribe` or `List-Unsubscribe-Post` replaces
//!   both.
//! - Marketing email also gets `Precedence: bulk` and `X-Auto-Response-Suppress: OOF, AutoReply`;
//!   a caller-supplied header of the same name replaces each. No header ever appears twice.
//! - The footer goes on marketing email of type MARKETING (never HEADLESS) whose body does not
//!   already link its unsubscribe or manage URL: before `</body>` when there is one, else at the
//!   end, and at the end of the text part.

use crate::language::Language;
use crate::page_token::HostedUrls;

/// `List-Unsubscribe`.
pub const LIST_UNSUBSCRIBE: &str = "List-Unsubscribe";
/// `List-Unsubscribe-Post`.
pub const LIST_UNSUBSCRIBE_POST: &str = "List-Unsubscribe-Post";
/// The only value of `List-Unsubscribe-Post` (RFC 8058), also the one-click POST body.
pub const ONE_CLICK: &str = "List-Unsubscribe=One-Click";

fn has(headers: &[(String, String)], name: &str) -> bool {
    headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
}

/// Whether the unsubscribe headers apply: every marketing email, and any other whose rendered
/// body contains its own unsubscribe URL.
pub fn headers_apply(marketing: bool, html: &str, unsubscribe_url: Option<&str>) -> bool {
    marketing || unsubscribe_url.is_some_and(|u| !u.is_empty() && html.contains(u))
}

/// The caller's headers followed by the generated ones it does not replace. `unsubscribe_url`
/// is `None` when the email has no hosted links (no contact, or no public URL configured); the
/// headers that need it are then left out. Call only when [`headers_apply`] (or `marketing`).
pub fn with_generated_headers(
    mut caller: Vec<(String, String)>,
    unsubscribe_url: Option<&str>,
    marketing: bool,
) -> Vec<(String, String)> {
    let mut generated = Vec::new();
    if let Some(url) = unsubscribe_url.filter(|u| !u.is_empty()) {
        if !has(&caller, LIST_UNSUBSCRIBE) && !has(&caller, LIST_UNSUBSCRIBE_POST) {
            generated.push((LIST_UNSUBSCRIBE.to_owned(), format!("<{url}>")));
            generated.push((LIST_UNSUBSCRIBE_POST.to_owned(), ONE_CLICK.to_owned()));
        }
    }
    if marketing {
        if !has(&caller, "Precedence") {
            generated.push(("Precedence".to_owned(), "bulk".to_owned()));
        }
        if !has(&caller, "X-Auto-Response-Suppress") {
            generated.push((
                "X-Auto-Response-Suppress".to_owned(),
                "OOF, AutoReply".to_owned(),
            ));
        }
    }
    caller.extend(generated);
    caller
}

/// Whether the footer goes on: MARKETING-type marketing email whose body does not already
/// contain its unsubscribe or manage URL.
pub fn footer_applies(marketing_type: bool, html: &str, urls: &HostedUrls) -> bool {
    marketing_type && !html.contains(&urls.unsubscribe) && !html.contains(&urls.manage)
}

/// The footer's words in one language.
struct FooterText {
    question: &'static str,
    unsubscribe: &'static str,
    manage: &'static str,
}

fn words(language: Language) -> FooterText {
    let (question, unsubscribe, manage) = match language {
        Language::En => (
            "Don't want to receive these emails?",
            "Unsubscribe",
            "Manage preferences",
        ),
        Language::De => (
            "Sie möchten diese E-Mails nicht mehr erhalten?",
            "Abmelden",
            "Einstellungen verwalten",
        ),
        Language::Fr => (
            "Vous ne souhaitez plus recevoir ces e-mails ?",
            "Se désabonner",
            "Gérer mes préférences",
        ),
        Language::Es => (
            "¿No quieres recibir estos correos?",
            "Darse de baja",
            "Gestionar preferencias",
        ),
        Language::Nl => (
            "Wilt u deze e-mails niet meer ontvangen?",
            "Afmelden",
            "Voorkeuren beheren",
        ),
        Language::Pt => (
            "Não quer receber estes e-mails?",
            "Cancelar subscrição",
            "Gerir preferências",
        ),
        Language::It => (
            "Non vuoi più ricevere queste email?",
            "Annulla l'iscrizione",
            "Gestisci le preferenze",
        ),
    };
    FooterText {
        question,
        unsubscribe,
        manage,
    }
}

/// Escapes text for HTML content and double-quoted attributes.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The footer as HTML.
pub fn footer_html(language: Language, urls: &HostedUrls) -> String {
    let w = words(language);
    format!(
        "<div style=\"margin-top:24px;padding-top:12px;border-top:1px solid #e0e0e0;\
         font-family:Arial,Helvetica,sans-serif;font-size:12px;line-height:1.5;color:#6b6b6b\" \
         lang=\"{lang}\">{q} <a href=\"{u}\" style=\"color:#6b6b6b\">{unsub}</a> &middot; \
         <a href=\"{m}\" style=\"color:#6b6b6b\">{manage}</a></div>",
        lang = language.code(),
        q = escape_html(w.question),
        u = escape_html(&urls.unsubscribe),
        unsub = escape_html(w.unsubscribe),
        m = escape_html(&urls.manage),
        manage = escape_html(w.manage),
    )
}

/// The footer as plain text (starts with a blank line).
pub fn footer_text(language: Language, urls: &HostedUrls) -> String {
    let w = words(language);
    format!(
        "\n\n--\n{}\n{}: {}\n{}: {}\n",
        w.question, w.unsubscribe, urls.unsubscribe, w.manage, urls.manage
    )
}

/// `html` with `footer` inserted before its last `</body>` (any case), else appended.
pub fn insert_before_body_end(html: &str, footer: &str) -> String {
    let lower = html.to_ascii_lowercase();
    match lower.rfind("</body") {
        // ASCII lowercasing keeps byte offsets, so the index is valid in `html`.
        Some(at) => format!("{}{footer}{}", &html[..at], &html[at..]),
        None => format!("{html}{footer}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    const URL: &str = "https://api.example.com/unsubscribe/tok.en";

    #[test]
    fn marketing_email_gets_all_four_headers_after_the_callers() {
        let out = with_generated_headers(h(&[("X-Campaign", "spring")]), Some(URL), true);
        assert_eq!(
            out,
            h(&[
                ("X-Campaign", "spring"),
                ("List-Unsubscribe", &format!("<{URL}>")),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                ("Precedence", "bulk"),
                ("X-Auto-Response-Suppress", "OOF, AutoReply"),
            ])
        );
    }

    #[test]
    fn transactional_email_gets_only_the_list_headers() {
        let out = with_generated_headers(vec![], Some(URL), false);
        assert_eq!(
            out,
            h(&[
                ("List-Unsubscribe", &format!("<{URL}>")),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ])
        );
    }

    #[test]
    fn a_caller_list_header_replaces_both_generated_ones() {
        for name in ["list-unsubscribe", "List-Unsubscribe-Post"] {
            let out = with_generated_headers(h(&[(name, "<mailto:x@y.z>")]), Some(URL), true);
            let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(
                names,
                [name, "Precedence", "X-Auto-Response-Suppress"],
                "{name}"
            );
        }
    }

    #[test]
    fn caller_precedence_and_auto_response_headers_replace_only_their_own() {
        let out = with_generated_headers(
            h(&[("precedence", "list"), ("X-AUTO-RESPONSE-SUPPRESS", "All")]),
            Some(URL),
            true,
        );
        assert_eq!(
            out,
            h(&[
                ("precedence", "list"),
                ("X-AUTO-RESPONSE-SUPPRESS", "All"),
                ("List-Unsubscribe", &format!("<{URL}>")),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ])
        );
        for name in ["precedence", "list-unsubscribe", "x-auto-response-suppress"] {
            assert_eq!(
                out.iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .count(),
                1,
                "{name} once"
            );
        }
    }

    #[test]
    fn without_a_url_only_the_marketing_headers_are_added() {
        let out = with_generated_headers(vec![], None, true);
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Precedence", "X-Auto-Response-Suppress"]);
        assert!(with_generated_headers(vec![], Some(""), false).is_empty());
    }

    #[test]
    fn headers_apply_to_marketing_or_a_body_linking_its_own_url() {
        assert!(headers_apply(true, "<p>hi</p>", None));
        assert!(!headers_apply(false, "<p>hi</p>", Some(URL)));
        assert!(headers_apply(
            false,
            &format!("<a href=\"{URL}\">bye</a>"),
            Some(URL)
        ));
        assert!(!headers_apply(false, "<p></p>", Some("")));
    }

    fn urls() -> HostedUrls {
        HostedUrls::new("https://api.example.com", "tok.en")
    }

    #[test]
    fn the_footer_is_skipped_when_the_body_links_a_page_itself_or_the_type_is_headless() {
        let u = urls();
        assert!(footer_applies(true, "<p>News</p>", &u));
        assert!(!footer_applies(false, "<p>News</p>", &u));
        assert!(!footer_applies(
            true,
            &format!("<a href=\"{}\">x</a>", u.unsubscribe),
            &u
        ));
        assert!(!footer_applies(
            true,
            &format!("<a href=\"{}\">x</a>", u.manage),
            &u
        ));
    }

    #[test]
    fn the_footer_goes_before_the_last_body_end_tag_or_at_the_end() {
        assert_eq!(
            insert_before_body_end("<html><BODY><p>x</p></Body></html>", "[F]"),
            "<html><BODY><p>x</p>[F]</Body></html>"
        );
        assert_eq!(insert_before_body_end("<p>x</p>", "[F]"), "<p>x</p>[F]");
        assert_eq!(
            insert_before_body_end("<p>Grüße</p></body></body>", "[F]"),
            "<p>Grüße</p></body>[F]</body>"
        );
    }

    #[test]
    fn the_footer_is_localised_and_links_both_pages() {
        let u = urls();
        let de = footer_html(Language::De, &u);
        assert!(de.contains("Abmelden"));
        assert!(de.contains(&format!("href=\"{}\"", u.unsubscribe)));
        assert!(de.contains(&format!("href=\"{}\"", u.manage)));
        let it = footer_html(Language::It, &u);
        assert!(it.contains("Annulla l&#39;iscrizione"), "{it}");
        let text = footer_text(Language::Fr, &u);
        assert!(text.contains(&format!("Se désabonner: {}", u.unsubscribe)));
        assert!(text.contains(&format!(": {}", u.manage)));
        for l in Language::ALL {
            assert!(footer_html(l, &u).contains(&u.unsubscribe));
        }
    }
}
