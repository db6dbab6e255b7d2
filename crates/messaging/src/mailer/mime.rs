//! MIME building: turns an [`OutgoingEmail`] into the complete RFC 5322 message every adapter
//! sends (SES raw, SMTP, the outbox), using `mail-builder` for encoding and folding.
//!
//! Structure:
//!
//! ```text
//! multipart/mixed                      only with regular attachments
//! ├── multipart/related                only with inline attachments
//! │   ├── multipart/alternative
//! │   │   ├── text/plain; charset=utf-8
//! │   │   └── text/html; charset=utf-8
//! │   └── image/png  (inline, Content-ID <cid>)
//! └── application/pdf  (attachment; filename per RFC 2231 when non-ASCII)
//! ```
//!
//! Headers: `From`, `To`, `Reply-To` (only when set), `Subject`, `Date`, `Message-ID`,
//! `MIME-Version`, then the custom headers in the given order. A custom value that is printable
//! ASCII is written as given and folded at its spaces (so structured values such as
//! `List-Unsubscribe` stay parseable); any other value is RFC 2047-encoded.

mod html_text;

use super::{Disposition, OutgoingEmail};
use base64::Engine;
use chrono::{DateTime, Utc};
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::{BodyPart, MimePart};
use mail_builder::MessageBuilder;
use std::borrow::Cow;

/// A finished message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltMessage {
    /// The `Message-ID` value without angle brackets (`<emailId>@<sender domain>`).
    pub message_id: String,
    /// The complete message: headers, blank line, body; CRLF line endings, 7-bit clean.
    pub bytes: Vec<u8>,
}

/// Builds the message with the current time as its `Date`.
pub fn build(email: &OutgoingEmail) -> BuiltMessage {
    build_at(email, Utc::now())
}

/// Builds the message with the given `Date` (deterministic output apart from MIME boundaries).
pub fn build_at(email: &OutgoingEmail, date: DateTime<Utc>) -> BuiltMessage {
    let message_id = message_id(email);
    let mut builder = MessageBuilder::new()
        .from(address(email.from.name.as_deref(), &email.from.email))
        .to(address(email.to.name.as_deref(), &email.to.email));
    if let Some(reply_to) = email.reply_to.as_deref().filter(|r| !r.is_empty()) {
        builder = builder.reply_to(Address::new_address(None::<&str>, reply_to));
    }
    builder = builder
        .subject(Text::new(email.subject.as_str()))
        .date(Date::new(date.timestamp()))
        .message_id(MessageId::new(message_id.as_str()))
        .header("MIME-Version", Raw::new("1.0"));
    for (name, value) in &email.headers {
        builder = if is_plain_ascii(value) && fits_on_a_line(name, value) {
            builder.header(name.as_str(), Raw::new(value.as_str()))
        } else {
            builder.header(name.as_str(), Text::new(value.as_str()))
        };
    }

    let mut bytes = Vec::new();
    builder.body(body(email)).serialize(&mut bytes);
    BuiltMessage { message_id, bytes }
}

/// Derives a readable plain-text alternative from HTML: drops `head`, `script`, `style` and
/// comments, turns blocks, `br` and list items into lines, keeps links as `text (url)`, decodes
/// entities and collapses whitespace.
pub fn html_to_text(html: &str) -> String {
    html_text::convert(html)
}

/// `<emailId>@<sender domain>`: stable across retries of the same email, so a recipient system
/// that deduplicates by `Message-ID` drops a second copy.
fn message_id(email: &OutgoingEmail) -> String {
    let domain = email
        .from
        .email
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .filter(|d| !d.is_empty() && d.is_ascii())
        .unwrap_or_else(|| "localhost".into());
    format!("{}@{domain}", email.email_id)
}

fn address<'a>(name: Option<&'a str>, email: &'a str) -> Address<'a> {
    Address::new_address(name.filter(|n| !n.trim().is_empty()), email)
}

/// Printable ASCII and tabs only: safe to write unencoded.
fn is_plain_ascii(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// Whether folding at spaces keeps every line within RFC 5322's 998 characters; if not, the
/// value is written as encoded words, which can always be folded.
fn fits_on_a_line(name: &str, value: &str) -> bool {
    let longest_word = value.split([' ', '\t']).map(str::len).max().unwrap_or(0);
    name.len() + 2 + longest_word <= 998
}

/// Control characters other than tab and line breaks, which a 7bit or 8bit part must not carry
/// (RFC 2045 §2.7, §2.8).
fn has_controls(text: &str) -> bool {
    text.bytes()
        .any(|b| b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n') || b == 0x7f)
}

/// A text part. mail-builder picks 7bit, quoted-printable or base64 by line length and 8-bit
/// bytes; a text with other control characters (a NUL in a body) is base64-encoded here, so no
/// part carries them raw.
fn text_part<'a>(mime_type: &'a str, text: Cow<'a, str>) -> MimePart<'a> {
    if !has_controls(&text) {
        return MimePart::new(mime_type, BodyPart::Text(text));
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(76)
        .map(|line| std::str::from_utf8(line).unwrap_or_default())
        .collect();
    MimePart::new(
        ContentType::new(mime_type).attribute("charset", "utf-8"),
        BodyPart::Text(Cow::Owned(lines.join("\r\n"))),
    )
    .transfer_encoding("base64")
}

fn body(email: &OutgoingEmail) -> MimePart<'_> {
    let text: Cow<'_, str> = if email.text.trim().is_empty() {
        Cow::Owned(html_to_text(&email.html))
    } else {
        Cow::Borrowed(email.text.as_str())
    };
    let mut root = MimePart::new(
        "multipart/alternative",
        vec![
            text_part("text/plain", text),
            text_part("text/html", Cow::Borrowed(email.html.as_str())),
        ],
    );

    let (inline, regular): (Vec<_>, Vec<_>) = email
        .attachments
        .iter()
        .partition(|a| a.disposition == Disposition::Inline);
    if !inline.is_empty() {
        let mut parts = vec![root];
        parts.extend(inline.into_iter().map(|a| {
            let part = MimePart::new(
                content_type(&a.content_type, &a.filename),
                a.content.as_slice(),
            )
            .header(
                "Content-Disposition",
                ContentType::new("inline").attribute("filename", a.filename.as_str()),
            );
            match a.content_id.as_deref() {
                Some(cid) => part.cid(cid),
                None => part,
            }
        }));
        root = MimePart::new(
            ContentType::new("multipart/related").attribute("type", "multipart/alternative"),
            parts,
        );
    }
    if !regular.is_empty() {
        let mut parts = vec![root];
        parts.extend(regular.into_iter().map(|a| {
            MimePart::new(
                content_type(&a.content_type, &a.filename),
                a.content.as_slice(),
            )
            .attachment(a.filename.as_str())
        }));
        root = MimePart::new("multipart/mixed", parts);
    }
    root
}

/// Splits a validated `type/subtype; key=value` into mail-builder's form and adds a `name`
/// parameter (what older clients show) unless one is given.
fn content_type<'a>(value: &'a str, filename: &'a str) -> ContentType<'a> {
    let mut pieces = split_params(value).into_iter();
    let mime = pieces
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let mut ct = ContentType::new(if mime.is_empty() {
        "application/octet-stream".to_string()
    } else {
        mime
    });
    let mut has_name = false;
    for param in pieces {
        let Some((key, val)) = param.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let val = val.trim();
        let val = val
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .map(|v| v.replace("\\\"", "\"").replace("\\\\", "\\"))
            .unwrap_or_else(|| val.to_string());
        if key.is_empty() || key == "boundary" {
            continue;
        }
        has_name |= key == "name";
        ct = ct.attribute(key, val);
    }
    if !has_name {
        ct = ct.attribute("name", filename);
    }
    ct
}

/// Splits at `;` outside double quotes.
fn split_params(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailer::{Attachment, Mailbox};
    use mail_parser::{MessageParser, MimeHeaders, PartType};
    use uuid::Uuid;

    fn email() -> OutgoingEmail {
        OutgoingEmail {
            email_id: Uuid::parse_str("0193a1f2-5b80-7e44-9b02-7c1d2e3f4a56").unwrap(),
            project_id: Uuid::from_u128(42),
            from: Mailbox {
                name: Some("Acme Billing".into()),
                email: "billing@Acme.io".into(),
            },
            to: Mailbox {
                name: Some("Ada".into()),
                email: "ada@example.org".into(),
            },
            reply_to: None,
            subject: "Your receipt".into(),
            html: "<p>Thanks <b>Ada</b>!</p>".into(),
            text: "Thanks Ada!".into(),
            headers: vec![],
            attachments: vec![],
            configuration_set: None,
        }
    }

    fn attachment(name: &str, ct: &str, content: &[u8]) -> Attachment {
        Attachment {
            filename: name.into(),
            content_type: ct.into(),
            disposition: Disposition::Attachment,
            content_id: None,
            content: content.to_vec(),
        }
    }

    fn inline(name: &str, cid: &str, content: &[u8]) -> Attachment {
        Attachment {
            filename: name.into(),
            content_type: "image/png".into(),
            disposition: Disposition::Inline,
            content_id: Some(cid.into()),
            content: content.to_vec(),
        }
    }

    fn mime_type(part: &mail_parser::MessagePart<'_>) -> String {
        let ct = part.content_type().expect("content type");
        format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default())
    }

    /// The MIME types of a part's children.
    fn children(msg: &mail_parser::Message<'_>, part: usize) -> Vec<String> {
        match &msg.parts[part].body {
            PartType::Multipart(ids) => ids
                .iter()
                .map(|&id| mime_type(&msg.parts[id as usize]))
                .collect(),
            _ => vec![],
        }
    }

    fn child_ids(msg: &mail_parser::Message<'_>, part: usize) -> Vec<usize> {
        match &msg.parts[part].body {
            PartType::Multipart(ids) => ids.iter().map(|&id| id as usize).collect(),
            _ => vec![],
        }
    }

    #[test]
    fn a_plain_message_is_multipart_alternative_with_text_then_html() {
        let built = build(&email());
        let msg = MessageParser::new().parse(&built.bytes).unwrap();
        assert_eq!(mime_type(&msg.parts[0]), "multipart/alternative");
        assert_eq!(children(&msg, 0), ["text/plain", "text/html"]);
        assert_eq!(msg.body_text(0).unwrap().trim_end(), "Thanks Ada!");
        assert_eq!(msg.body_html(0).unwrap(), "<p>Thanks <b>Ada</b>!</p>");
        let html_ct = msg.parts[2].content_type().unwrap();
        assert_eq!(html_ct.attribute("charset"), Some("utf-8"));
    }

    #[test]
    fn the_standard_headers_are_present_and_reply_to_is_absent_unless_set() {
        let date = DateTime::parse_from_rfc3339("2026-03-01T09:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let built = build_at(&email(), date);
        let msg = MessageParser::new().parse(&built.bytes).unwrap();
        let from = msg.from().unwrap().first().unwrap();
        assert_eq!(from.name(), Some("Acme Billing"));
        assert_eq!(from.address(), Some("billing@Acme.io"));
        let to = msg.to().unwrap().first().unwrap();
        assert_eq!(
            (to.name(), to.address()),
            (Some("Ada"), Some("ada@example.org"))
        );
        assert_eq!(msg.subject(), Some("Your receipt"));
        assert_eq!(msg.date().unwrap().to_timestamp(), date.timestamp());
        assert_eq!(
            msg.message_id(),
            Some("0193a1f2-5b80-7e44-9b02-7c1d2e3f4a56@acme.io")
        );
        assert_eq!(built.message_id, msg.message_id().unwrap());
        assert!(msg.header("MIME-Version").is_some());
        assert!(msg.reply_to().is_none());
        let raw = String::from_utf8(built.bytes).unwrap();
        assert_eq!(raw.matches("MIME-Version:").count(), 1);
        assert_eq!(raw.matches("Message-ID:").count(), 1);
        assert_eq!(raw.matches("Date:").count(), 1);

        let mut with_reply = email();
        with_reply.reply_to = Some("support@acme.io".into());
        let built = build(&with_reply);
        let msg = MessageParser::new().parse(&built.bytes).unwrap();
        assert_eq!(
            msg.reply_to().unwrap().first().unwrap().address(),
            Some("support@acme.io")
        );
    }

    #[test]
    fn the_message_is_seven_bit_with_crlf_line_endings_and_short_lines() {
        let mut e = email();
        e.subject = "Reçu n° 42 — merci beaucoup pour votre commande ".repeat(4);
        e.html = format!("<p>{}</p>\n", "Grüße aus Köln ".repeat(40));
        e.text = html_to_text(&e.html);
        e.to.name = Some("Zoë Ångström".into());
        let built = build(&e);
        assert!(
            built.bytes.iter().all(|b| *b < 0x80),
            "8-bit byte in output"
        );
        let raw = String::from_utf8(built.bytes.clone()).unwrap();
        for line in raw.split("\r\n") {
            assert!(!line.contains('\n'), "bare LF in {line:?}");
            assert!(line.len() <= 998, "line of {} chars", line.len());
        }
        let msg = MessageParser::new().parse(&built.bytes).unwrap();
        assert_eq!(msg.subject(), Some(e.subject.as_str()));
        assert_eq!(
            msg.to().unwrap().first().unwrap().name(),
            Some("Zoë Ångström")
        );
        assert_eq!(msg.body_html(0).unwrap(), e.html);
    }

    #[test]
    fn custom_headers_keep_their_order_and_non_ascii_values_are_rfc_2047_encoded() {
        let mut e = email();
        let long = format!(
            "<https://acme.io/unsubscribe/{}>, <mailto:unsubscribe@acme.io?subject={}>",
            "a".repeat(60),
            "b".repeat(40)
        );
        e.headers = vec![
            ("X-Campaign".into(), "spring sale".into()),
            ("List-Unsubscribe".into(), long.clone()),
            ("X-Greeting".into(), "Grüße aus Köln, こんにちは".into()),
            ("X-Empty".into(), "".into()),
        ];
        let built = build(&e);
        let raw = String::from_utf8(built.bytes.clone()).unwrap();
        let head = raw.split("\r\n\r\n").next().unwrap();
        // Long ASCII values are folded at spaces, never encoded.
        assert!(head.contains("List-Unsubscribe: <https://acme.io/unsubscribe/"));
        assert!(!head.contains("List-Unsubscribe: =?"));
        for line in head.split("\r\n") {
            assert!(line.len() <= 998);
        }
        assert!(head.contains("X-Greeting: =?utf-8?"), "{head}");
        let pos = |name: &str| head.find(&format!("\r\n{name}:")).unwrap();
        assert!(pos("X-Campaign") < pos("List-Unsubscribe"));
        assert!(pos("List-Unsubscribe") < pos("X-Greeting"));

        let msg = crate::mailer::outbox::display_parser()
            .parse(&built.bytes)
            .unwrap();
        let text = |name: &str| {
            msg.header_raw(name)
                .map(|v| v.replace("\r\n", "").trim().to_string())
        };
        assert_eq!(text("X-Campaign").as_deref(), Some("spring sale"));
        assert_eq!(
            text("List-Unsubscribe").unwrap().replace("  ", " "),
            long.replace("  ", " ")
        );
        assert_eq!(text("X-Empty").as_deref(), Some(""));
        let greeting = msg
            .headers()
            .iter()
            .find(|h| h.name() == "X-Greeting")
            .unwrap();
        assert_eq!(
            greeting.value().as_text(),
            Some("Grüße aus Köln, こんにちは")
        );
    }

    #[test]
    fn an_unbreakable_ascii_value_too_long_for_one_line_is_encoded_instead() {
        let mut e = email();
        let value = format!("https://acme.io/{}", "x".repeat(980));
        e.headers = vec![("X-Very-Long-Header-Name".into(), value.clone())];
        let built = build(&e);
        let raw = String::from_utf8(built.bytes.clone()).unwrap();
        for line in raw.split("\r\n") {
            assert!(line.len() <= 998, "line of {} chars", line.len());
        }
        let msg = crate::mailer::outbox::display_parser()
            .parse(&built.bytes)
            .unwrap();
        let got = msg
            .headers()
            .iter()
            .find(|h| h.name() == "X-Very-Long-Header-Name")
            .and_then(|h| h.value().as_text())
            .unwrap();
        assert_eq!(got, value);
    }

    #[test]
    fn regular_attachments_wrap_the_alternative_in_multipart_mixed() {
        let mut e = email();
        let pdf = b"%PDF-1.4\n\x00\x01\x02binary\xff".to_vec();
        e.attachments = vec![
            attachment("invoice.pdf", "application/pdf", &pdf),
            attachment(
                "notes.txt",
                "text/plain; charset=utf-8",
                b"line one\nline two\n",
            ),
        ];
        let built = build(&e);
        let msg = MessageParser::new().parse(&built.bytes).unwrap();
        assert_eq!(mime_type(&msg.parts[0]), "multipart/mixed");
        assert_eq!(
            children(&msg, 0),
            ["multipart/alternative", "application/pdf", "text/plain"]
        );
        assert_eq!(msg.attachment_count(), 2);
        let a = msg.attachment(0).unwrap();
        assert_eq!(a.attachment_name(), Some("invoice.pdf"));
        assert_eq!(a.contents(), pdf.as_slice());
        assert_eq!(
            a.content_disposition().map(|d| d.ctype()),
            Some("attachment")
        );
        let notes = msg.attachment(1).unwrap();
        assert_eq!(notes.contents(), b"line one\nline two\n");
        assert_eq!(
            notes.content_type().unwrap().attribute("charset"),
            Some("utf-8")
        );
        assert_eq!(msg.body_text(0).unwrap().trim_end(), "Thanks Ada!");
    }

    #[test]
    fn non_ascii_filenames_are_encoded_per_rfc_2231() {
        let mut e = email();
        e.attachments = vec![attachment(
            "Jahresabschluß 2024 – Übersicht.pdf",
            "application/pdf",
            b"pdf",
        )];
        let built = build(&e);
        let raw = String::from_utf8(built.bytes.clone()).unwrap();
        assert!(
            raw.contains("filename*0*=UTF-8''Jahresabschlu%C3%9F"),
            "{raw}"
        );
        let msg = MessageParser::new().parse(&built.bytes).unwrap();
        assert_eq!(
            msg.attachment(0).unwrap().attachment_name(),
            Some("Jahresabschluß 2024 – Übersicht.pdf")
        );
    }

    #[test]
    fn inline_images_go_in_multipart_related_with_their_content_id() {
        let mut e = email();
        e.html = r#"<p><img src="cid:logo@acme"></p>"#.into();
        let png = b"\x89PNG\r\n\x1a\nfake".to_vec();
        e.attachments = vec![inline("logo.png", "logo@acme", &png)];
        let built = build(&e);
        let raw = String::from_utf8(built.bytes.clone()).unwrap();
        assert!(raw.contains("Content-ID: <logo@acme>"), "{raw}");
        assert!(raw.contains("type=\"multipart/alternative\""), "{raw}");
        let msg = MessageParser::new().parse(&built.bytes).unwrap();
        assert_eq!(mime_type(&msg.parts[0]), "multipart/related");
        assert_eq!(children(&msg, 0), ["multipart/alternative", "image/png"]);
        let img = &msg.parts[child_ids(&msg, 0)[1]];
        assert_eq!(img.content_id(), Some("logo@acme"));
        assert_eq!(img.content_disposition().map(|d| d.ctype()), Some("inline"));
        assert_eq!(img.contents(), png.as_slice());
    }

    #[test]
    fn inline_and_regular_attachments_nest_related_inside_mixed() {
        let mut e = email();
        e.attachments = vec![
            attachment("a.pdf", "application/pdf", b"a"),
            inline("logo.png", "logo", b"png"),
            attachment("b.csv", "text/csv", b"x,y\r\n1,2\r\n"),
        ];
        let built = build(&e);
        let msg = MessageParser::new().parse(&built.bytes).unwrap();
        assert_eq!(
            children(&msg, 0),
            ["multipart/related", "application/pdf", "text/csv"]
        );
        let related = child_ids(&msg, 0)[0];
        assert_eq!(
            children(&msg, related),
            ["multipart/alternative", "image/png"]
        );
        let alt = child_ids(&msg, related)[0];
        assert_eq!(children(&msg, alt), ["text/plain", "text/html"]);
    }

    #[test]
    fn an_empty_text_part_is_derived_from_the_html() {
        let mut e = email();
        e.text = String::new();
        e.html = r#"<p>Hi <a href="https://acme.io/x">there</a></p>"#.into();
        let built = build(&e);
        let msg = MessageParser::new().parse(&built.bytes).unwrap();
        assert_eq!(
            msg.body_text(0).unwrap().trim_end(),
            "Hi there (https://acme.io/x)"
        );
    }

    #[test]
    fn content_type_parameters_are_parsed_and_a_name_is_added() {
        let ct = content_type("Text/Plain; charset=\"utf-8\"; format=flowed", "a.txt");
        assert_eq!(ct.c_type, "text/plain");
        let attrs: Vec<_> = ct
            .attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            attrs,
            [
                ("charset".to_string(), "utf-8".to_string()),
                ("format".to_string(), "flowed".to_string()),
                ("name".to_string(), "a.txt".to_string())
            ]
        );
        let ct = content_type("application/x-thing; name=\"given;odd\"", "b.bin");
        assert_eq!(ct.attributes.len(), 1);
        assert_eq!(ct.attributes[0].1, "given;odd");
    }

    #[test]
    fn control_characters_in_a_body_are_encoded_not_written_raw() {
        let mut e = email();
        e.text = "line\0one\x07".into();
        e.html = "<p>nul\0byte\x1b</p>".into();
        let built = build(&e);
        assert!(
            !built
                .bytes
                .iter()
                .any(|b| *b == 0 || *b == 0x07 || *b == 0x1b),
            "no raw control byte in the message"
        );
        let msg = MessageParser::new().parse(&built.bytes).unwrap();
        assert_eq!(msg.body_html(0).unwrap(), "<p>nul\0byte\x1b</p>");
        assert_eq!(msg.body_text(0).unwrap(), "line\0one\x07");
        let text = String::from_utf8_lossy(&built.bytes);
        assert_eq!(text.matches("Content-Transfer-Encoding: base64").count(), 2);
        // Plain bodies keep mail-builder's own choice.
        assert!(!has_controls("tabs\tand\r\nbreaks"));
    }
}
