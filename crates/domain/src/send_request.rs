//! The body of `POST /v1/send`, parsed and checked field by field.
//! Every problem is collected; nothing here looks anything up.

use crate::contact::DataChange;
use crate::email::EmailAddress;
use crate::validation::{FieldCode, FieldError};
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde_json::{Map, Value};
use std::collections::HashSet;
use uuid::Uuid;

/// Most recipients of one request.
pub const MAX_RECIPIENTS: usize = 50;
/// Largest HTML body, in bytes.
pub const MAX_BODY_BYTES: usize = 524_288;
/// Most attachments of one request.
pub const MAX_ATTACHMENTS: usize = 10;
/// Largest total decoded attachment size.
pub const MAX_ATTACHMENT_BYTES: usize = 10_485_760;
/// Most custom headers.
pub const MAX_HEADERS: usize = 50;

/// Header names the API sets itself (compared case-insensitively), plus any `X-SES-*`.
const RESERVED_HEADERS: [&str; 17] = [
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "reply-to",
    "sender",
    "return-path",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "content-id",
    "dkim-signature",
    "received",
];

/// Why an attachment's filename is refused: control characters (CR, LF,
/// tab, NUL …) and the characters that reorder how text is displayed (a name shown as
/// `invoice.pdf` could be `fdp.exe`), `"`, `/` or `\\`, or a leading or trailing space or dot
/// (Windows drops those, so `evil.exe.` would open as `evil.exe`).
pub fn filename_problem(name: &str) -> Option<&'static str> {
    let direction = |c: char| {
        matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
    };
    if name.chars().any(|c| c.is_control() || direction(c)) {
        Some("Filenames must not contain control or text-direction characters")
    } else if name.contains(['"', '/', '\\']) {
        Some("Filenames must not contain \", / or \\")
    } else if name.starts_with([' ', '.']) || name.ends_with([' ', '.']) {
        Some("Filenames must not start or end with a space or a dot")
    } else {
        None
    }
}

/// Whether an attachment object has a `contentId` member (a string, checked on its own).
fn has_content_id(attachment: &Map<String, Value>) -> bool {
    matches!(attachment.get("contentId"), Some(Value::String(_)))
}

/// Extensions Amazon SES refuses to send (its published list), refused at acceptance.
const BLOCKED_EXTENSIONS: &[&str] = &[
    "ade", "adp", "app", "asp", "bas", "bat", "cer", "chm", "cmd", "com", "cpl", "crt", "csh",
    "der", "exe", "fxp", "gadget", "hlp", "hta", "inf", "ins", "isp", "its", "js", "jse", "ksh",
    "lib", "lnk", "mad", "maf", "mag", "mam", "maq", "mar", "mas", "mat", "mau", "mav", "maw",
    "mda", "mdb", "mde", "mdt", "mdw", "mdz", "msc", "msh", "msh1", "msh2", "mshxml", "msh1xml",
    "msh2xml", "msi", "msp", "mst", "ops", "pcd", "pif", "plg", "prf", "prg", "reg", "scf", "scr",
    "sct", "shb", "shs", "sys", "ps1", "ps1xml", "ps2", "ps2xml", "psc1", "psc2", "tmp", "url",
    "vb", "vbe", "vbs", "vps", "vsmacros", "vss", "vst", "vsw", "vxd", "ws", "wsc", "wsf", "wsh",
    "xnk",
];

/// An address with an optional display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedAddress {
    pub email: EmailAddress,
    pub name: Option<String>,
}

/// Regular attachment or inline image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentDisposition {
    Attachment,
    Inline,
}

impl AttachmentDisposition {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Attachment => "attachment",
            Self::Inline => "inline",
        }
    }
}

/// One decoded attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentInput {
    pub filename: String,
    pub content: Vec<u8>,
    pub content_type: String,
    pub disposition: AttachmentDisposition,
    pub content_id: Option<String>,
}

/// A valid `/v1/send` body.
#[derive(Debug, Clone)]
pub struct SendRequest {
    pub to: Vec<NamedAddress>,
    pub subject: Option<String>,
    pub body: Option<String>,
    pub template: Option<Uuid>,
    pub from: Option<NamedAddress>,
    /// The deprecated sender display name.
    pub name: Option<String>,
    pub reply: Option<EmailAddress>,
    pub subscribed: Option<bool>,
    pub headers: Vec<(String, String)>,
    pub data: DataChange,
    pub attachments: Vec<AttachmentInput>,
    pub tracking: Option<bool>,
}

struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn err(&mut self, field: impl Into<String>, code: FieldCode, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, code, message));
    }

    /// A string of `min..=max` characters without CR/LF (and NUL when `no_nul`).
    fn line(&mut self, field: &str, v: &Value, min: usize, max: usize) -> Option<String> {
        let Value::String(s) = v else {
            self.err(field, FieldCode::InvalidType, "Expected a string");
            return None;
        };
        let len = s.chars().count();
        if len < min {
            self.err(
                field,
                FieldCode::TooSmall,
                format!("Must be at least {min} characters"),
            );
        } else if len > max {
            self.err(
                field,
                FieldCode::TooBig,
                format!("Must be at most {max} characters"),
            );
        } else if s.contains(['\r', '\n']) {
            self.err(
                field,
                FieldCode::InvalidString,
                "Must not contain line breaks",
            );
        } else {
            return Some(s.clone());
        }
        None
    }

    fn email(&mut self, field: &str, v: &Value) -> Option<EmailAddress> {
        match v {
            Value::String(s) => match EmailAddress::parse(s) {
                Ok(e) => Some(e),
                Err(_) => {
                    self.err(field, FieldCode::InvalidString, "Invalid email address");
                    None
                }
            },
            _ => {
                self.err(field, FieldCode::InvalidType, "Expected a string");
                None
            }
        }
    }

    /// `string | {name?, email}`.
    fn named(&mut self, field: &str, v: &Value, max_name: usize) -> Option<NamedAddress> {
        match v {
            Value::String(_) => self
                .email(field, v)
                .map(|email| NamedAddress { email, name: None }),
            Value::Object(m) => {
                let email = match m.get("email") {
                    None | Some(Value::Null) => {
                        self.err(format!("{field}.email"), FieldCode::Required, "Required");
                        None
                    }
                    Some(e) => self.email(&format!("{field}.email"), e),
                };
                let name = match m.get("name") {
                    None | Some(Value::Null) => Some(None),
                    Some(n) => self
                        .line(&format!("{field}.name"), n, 1, max_name)
                        .map(Some),
                };
                Some(NamedAddress {
                    email: email?,
                    name: name?,
                })
            }
            _ => {
                self.err(
                    field,
                    FieldCode::InvalidType,
                    "Expected an email address or {name, email}",
                );
                None
            }
        }
    }
}

fn base64_engine() -> GeneralPurpose {
    GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

fn valid_content_type(ct: &str) -> bool {
    let main = ct.split(';').next().unwrap_or_default().trim();
    main.split_once('/')
        .is_some_and(|(t, s)| is_token(t) && is_token(s))
}

/// Parses and checks a `/v1/send` body.
pub fn parse_send(body: &Map<String, Value>) -> Result<SendRequest, Vec<FieldError>> {
    let mut c = Checker { errors: Vec::new() };
    let absent = |k: &str| matches!(body.get(k), None | Some(Value::Null));

    // to
    let mut to = Vec::new();
    match body.get("to") {
        None | Some(Value::Null) => c.err("to", FieldCode::Required, "Required"),
        Some(Value::Array(items)) => {
            if items.is_empty() {
                c.err(
                    "to",
                    FieldCode::TooSmall,
                    "At least one recipient is required",
                );
            } else if items.len() > MAX_RECIPIENTS {
                c.err(
                    "to",
                    FieldCode::TooBig,
                    format!("At most {MAX_RECIPIENTS} recipients"),
                );
            } else {
                let mut seen = HashSet::new();
                for (i, item) in items.iter().enumerate() {
                    let field = format!("to[{i}]");
                    if let Some(r) = c.named(&field, item, 256) {
                        if !seen.insert(r.email.clone()) {
                            let at = if item.is_object() {
                                format!("{field}.email")
                            } else {
                                field
                            };
                            c.err(
                                at,
                                FieldCode::Duplicate,
                                "This recipient appears more than once",
                            );
                        } else {
                            to.push(r);
                        }
                    }
                }
            }
        }
        Some(v) => {
            if let Some(r) = c.named("to", v, 256) {
                to.push(r);
            }
        }
    }

    let subject = match body.get("subject") {
        None | Some(Value::Null) => None,
        Some(v) => c.line("subject", v, 1, 998),
    };
    let html = match body.get("body") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => {
            c.err("body", FieldCode::TooSmall, "Must not be empty");
            None
        }
        Some(Value::String(s)) if s.len() > MAX_BODY_BYTES => {
            c.err(
                "body",
                FieldCode::TooBig,
                format!("Must be at most {MAX_BODY_BYTES} bytes"),
            );
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            c.err("body", FieldCode::InvalidType, "Expected a string");
            None
        }
    };
    let template = match body.get("template") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match crate::id::parse_id(s.trim()) {
            Some(id) => Some(id),
            None => {
                c.err(
                    "template",
                    FieldCode::InvalidString,
                    "Expected a template id (UUID)",
                );
                None
            }
        },
        Some(_) => {
            c.err("template", FieldCode::InvalidType, "Expected a string");
            None
        }
    };
    if absent("template") && (absent("subject") || absent("body")) {
        c.err(
            "template",
            FieldCode::Custom,
            "Either template or both subject and body are required",
        );
    }
    let from = match body.get("from") {
        None | Some(Value::Null) => None,
        Some(v) => c.named("from", v, 100),
    };
    let name = match body.get("name") {
        None | Some(Value::Null) => None,
        Some(v) => c.line("name", v, 1, 100),
    };
    let reply = match body.get("reply") {
        None | Some(Value::Null) => None,
        Some(v) => c.email("reply", v),
    };
    let subscribed = match body.get("subscribed") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            c.err("subscribed", FieldCode::InvalidType, "Expected a boolean");
            None
        }
    };
    let tracking = match body.get("tracking") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            c.err("tracking", FieldCode::InvalidType, "Expected a boolean");
            None
        }
    };

    // headers
    let mut headers = Vec::new();
    match body.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            if m.len() > MAX_HEADERS {
                c.err(
                    "headers",
                    FieldCode::TooBig,
                    format!("At most {MAX_HEADERS} headers"),
                );
            }
            let mut seen = HashSet::new();
            for (name, value) in m {
                let field = format!("headers.{name}");
                let lower = name.to_ascii_lowercase();
                let valid_name = (1..=76).contains(&name.len())
                    && name
                        .bytes()
                        .all(|b| (0x21..=0x7e).contains(&b) && b != b':');
                if !valid_name {
                    c.err(
                        &field,
                        FieldCode::InvalidString,
                        "Header names are 1-76 printable ASCII characters without ':'",
                    );
                    continue;
                }
                if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("x-ses-") {
                    c.err(
                        &field,
                        FieldCode::ReservedHeader,
                        format!("{name} is set by the service"),
                    );
                    continue;
                }
                if !seen.insert(lower) {
                    c.err(
                        &field,
                        FieldCode::Duplicate,
                        "Header names must differ case-insensitively",
                    );
                    continue;
                }
                match value {
                    Value::String(v) if v.chars().count() > 998 => c.err(
                        &field,
                        FieldCode::TooBig,
                        "Header values are at most 998 characters",
                    ),
                    Value::String(v) if v.contains(['\r', '\n', '\0']) => c.err(
                        &field,
                        FieldCode::InvalidString,
                        "Header values must not contain CR, LF or NUL",
                    ),
                    Value::String(v) => headers.push((name.clone(), v.clone())),
                    _ => c.err(&field, FieldCode::InvalidType, "Expected a string"),
                }
            }
        }
        Some(_) => c.err(
            "headers",
            FieldCode::InvalidType,
            "Expected an object of strings",
        ),
    }

    // data
    let data = match body.get("data") {
        None | Some(Value::Null) => DataChange::default(),
        Some(Value::Object(m)) => match DataChange::parse(m) {
            Ok(d) => d,
            Err(errors) => {
                c.errors.extend(errors);
                DataChange::default()
            }
        },
        Some(_) => {
            c.err("data", FieldCode::InvalidType, "Expected an object");
            DataChange::default()
        }
    };

    // attachments
    let mut attachments = Vec::new();
    match body.get("attachments") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            if items.len() > MAX_ATTACHMENTS {
                c.err(
                    "attachments",
                    FieldCode::TooBig,
                    format!("At most {MAX_ATTACHMENTS} attachments"),
                );
            }
            let engine = base64_engine();
            let mut total = 0usize;
            for (i, item) in items.iter().enumerate() {
                let at = |f: &str| format!("attachments[{i}].{f}");
                let Value::Object(m) = item else {
                    c.err(
                        format!("attachments[{i}]"),
                        FieldCode::InvalidType,
                        "Expected an object",
                    );
                    continue;
                };
                let filename = match m.get("filename") {
                    None | Some(Value::Null) => {
                        c.err(at("filename"), FieldCode::Required, "Required");
                        None
                    }
                    Some(v) => c.line(&at("filename"), v, 1, 255).and_then(|f| {
                        if let Some(problem) = filename_problem(&f) {
                            c.err(at("filename"), FieldCode::InvalidString, problem);
                            return None;
                        }
                        let ext = f.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
                        if ext
                            .as_deref()
                            .is_some_and(|e| BLOCKED_EXTENSIONS.contains(&e))
                        {
                            c.err(
                                at("filename"),
                                FieldCode::Custom,
                                "The email provider does not accept this attachment type",
                            );
                            return None;
                        }
                        Some(f)
                    }),
                };
                let content = match m.get("content") {
                    None | Some(Value::Null) => {
                        c.err(at("content"), FieldCode::Required, "Required");
                        None
                    }
                    Some(Value::String(s)) => {
                        let compact: String =
                            s.chars().filter(|ch| !ch.is_ascii_whitespace()).collect();
                        match engine.decode(compact.as_bytes()) {
                            Ok(bytes) if bytes.is_empty() => {
                                c.err(
                                    at("content"),
                                    FieldCode::TooSmall,
                                    "Attachments must not be empty",
                                );
                                None
                            }
                            Ok(bytes) => Some(bytes),
                            Err(_) => {
                                c.err(
                                    at("content"),
                                    FieldCode::InvalidBase64,
                                    "Expected standard base64",
                                );
                                None
                            }
                        }
                    }
                    Some(_) => {
                        c.err(at("content"), FieldCode::InvalidType, "Expected a string");
                        None
                    }
                };
                let content_type = match m.get("contentType") {
                    None | Some(Value::Null) => {
                        c.err(at("contentType"), FieldCode::Required, "Required");
                        None
                    }
                    Some(v) => c.line(&at("contentType"), v, 1, 255).and_then(|ct| {
                        if valid_content_type(&ct) {
                            Some(ct)
                        } else {
                            c.err(
                                at("contentType"),
                                FieldCode::InvalidString,
                                "Expected type/subtype",
                            );
                            None
                        }
                    }),
                };
                let disposition = match m.get("disposition") {
                    // A `contentId` is only useful inline.
                    None | Some(Value::Null) if has_content_id(m) => {
                        Some(AttachmentDisposition::Inline)
                    }
                    None | Some(Value::Null) => Some(AttachmentDisposition::Attachment),
                    Some(Value::String(s)) if s == "attachment" => {
                        Some(AttachmentDisposition::Attachment)
                    }
                    Some(Value::String(s)) if s == "inline" => Some(AttachmentDisposition::Inline),
                    Some(_) => {
                        c.err(
                            at("disposition"),
                            FieldCode::InvalidEnumValue,
                            "Expected attachment or inline",
                        );
                        None
                    }
                };
                let content_id = match m.get("contentId") {
                    None | Some(Value::Null) => {
                        if disposition == Some(AttachmentDisposition::Inline) {
                            c.err(
                                at("contentId"),
                                FieldCode::Required,
                                "Required for inline attachments",
                            );
                        }
                        None
                    }
                    Some(v) => c.line(&at("contentId"), v, 1, 255).and_then(|id| {
                        if id.contains(['<', '>']) {
                            c.err(
                                at("contentId"),
                                FieldCode::InvalidString,
                                "Must not contain < or >",
                            );
                            None
                        } else {
                            Some(id)
                        }
                    }),
                };
                if let Some(bytes) = &content {
                    total += bytes.len();
                }
                if let (Some(filename), Some(content), Some(content_type), Some(disposition)) =
                    (filename, content, content_type, disposition)
                {
                    attachments.push(AttachmentInput {
                        filename,
                        content,
                        content_type,
                        disposition,
                        content_id,
                    });
                }
            }
            if total > MAX_ATTACHMENT_BYTES {
                c.err(
                    "attachments",
                    FieldCode::TooBig,
                    format!("Attachments may total at most {MAX_ATTACHMENT_BYTES} bytes"),
                );
            }
        }
        Some(_) => c.err("attachments", FieldCode::InvalidType, "Expected an array"),
    }

    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    Ok(SendRequest {
        to,
        subject,
        body: html,
        template,
        from,
        name,
        reply,
        subscribed,
        headers,
        data,
        attachments,
        tracking,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(v: Value) -> Vec<(String, FieldCode)> {
        parse_send(v.as_object().unwrap())
            .unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect()
    }

    #[test]
    fn all_three_recipient_forms_parse() {
        let r = parse_send(
            json!({"to": "a@b.co", "subject": "s", "body": "b"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(r.to[0].email.as_str(), "a@b.co");
        let r = parse_send(
            json!({"to": {"name": "Ada", "email": " Ada@B.co "}, "subject": "s", "body": "b"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (r.to[0].email.as_str(), r.to[0].name.as_deref()),
            ("ada@b.co", Some("Ada"))
        );
        let r = parse_send(json!({"to": ["a@b.co", {"email": "c@d.co"}], "template": "0193A1F2-5B7C-7D10-8A21-4F6E9C0D1A23"}).as_object().unwrap()).unwrap();
        assert_eq!(r.to.len(), 2);
        assert!(r.template.is_some());
    }

    #[test]
    fn duplicates_and_limits_of_recipients_are_reported() {
        assert_eq!(
            errors(json!({"to": ["a@b.co", {"email": "A@b.co"}], "subject": "s", "body": "b"})),
            vec![("to[1].email".into(), FieldCode::Duplicate)]
        );
        let many: Vec<String> = (0..51).map(|i| format!("a{i}@b.co")).collect();
        assert_eq!(
            errors(json!({"to": many, "subject": "s", "body": "b"})),
            vec![("to".into(), FieldCode::TooBig)]
        );
        assert_eq!(
            errors(json!({"to": [], "subject": "s", "body": "b"})),
            vec![("to".into(), FieldCode::TooSmall)]
        );
    }

    #[test]
    fn template_or_subject_and_body_is_required() {
        assert_eq!(
            errors(json!({"to": "a@b.co", "subject": "s"})),
            vec![("template".into(), FieldCode::Custom)]
        );
        assert_eq!(
            errors(json!({"to": "a@b.co", "template": "nope"})),
            vec![("template".into(), FieldCode::InvalidString)]
        );
    }

    #[test]
    fn headers_are_checked_by_name_and_value() {
        let e = errors(
            json!({"to": "a@b.co", "subject": "s", "body": "b", "headers": {
                "X-Ok": "1", "Reply-To": "x", "X-SES-Tag": "y", "x-ok": "2", "Bad:Name": "z", "X-Line": "a\r\nb"
            }}),
        );
        assert_eq!(
            e,
            vec![
                ("headers.Reply-To".into(), FieldCode::ReservedHeader),
                ("headers.X-SES-Tag".into(), FieldCode::ReservedHeader),
                ("headers.x-ok".into(), FieldCode::Duplicate),
                ("headers.Bad:Name".into(), FieldCode::InvalidString),
                ("headers.X-Line".into(), FieldCode::InvalidString),
            ]
        );
    }

    #[test]
    fn filenames_that_could_disguise_a_file_are_refused() {
        for name in [
            "evil.exe.",
            "evil.exe ",
            "evil.exe\t",
            " lead.txt",
            ".hidden",
            "nul\0.txt",
            "invoice\u{202e}fdp.exe",
            "a/b.txt",
            "quote\".txt",
        ] {
            let e = errors(
                json!({"to": "a@b.co", "subject": "s", "body": "b", "attachments": [
                    {"filename": name, "content": "aGk=", "contentType": "text/plain"}
                ]}),
            );
            assert_eq!(
                e,
                vec![("attachments[0].filename".into(), FieldCode::InvalidString)],
                "{name:?}"
            );
        }
        assert_eq!(filename_problem("report 2026.final.pdf"), None);
        assert_eq!(filename_problem("Grüße.txt"), None);
    }

    #[test]
    fn a_content_id_without_a_disposition_makes_the_attachment_inline() {
        let r = parse_send(json!({"to": "a@b.co", "subject": "s", "body": "<img src=\"cid:logo\">", "attachments": [
            {"filename": "logo.png", "content": "iVBORw==", "contentType": "image/png", "contentId": "logo"},
            {"filename": "a.txt", "content": "aGk=", "contentType": "text/plain"}
        ]}).as_object().unwrap()).unwrap();
        assert_eq!(r.attachments[0].disposition, AttachmentDisposition::Inline);
        assert_eq!(r.attachments[0].content_id.as_deref(), Some("logo"));
        assert_eq!(
            r.attachments[1].disposition,
            AttachmentDisposition::Attachment
        );
        // An explicit disposition still wins.
        let r = parse_send(json!({"to": "a@b.co", "subject": "s", "body": "b", "attachments": [
            {"filename": "logo.png", "content": "iVBORw==", "contentType": "image/png", "contentId": "logo", "disposition": "attachment"}
        ]}).as_object().unwrap()).unwrap();
        assert_eq!(
            r.attachments[0].disposition,
            AttachmentDisposition::Attachment
        );
    }

    #[test]
    fn attachments_are_decoded_and_checked() {
        let r = parse_send(json!({"to": "a@b.co", "subject": "s", "body": "b", "attachments": [
            {"filename": "a.txt", "content": "aGVs\nbG8", "contentType": "text/plain; charset=utf-8"},
            {"filename": "logo.png", "content": "iVBORw==", "contentType": "image/png", "disposition": "inline", "contentId": "logo"}
        ]}).as_object().unwrap()).unwrap();
        assert_eq!(r.attachments[0].content, b"hello");
        assert_eq!(r.attachments[1].disposition, AttachmentDisposition::Inline);
        let e = errors(
            json!({"to": "a@b.co", "subject": "s", "body": "b", "attachments": [
                {"filename": "run.EXE", "content": "aGk=", "contentType": "application/octet-stream"},
                {"filename": "a.txt", "content": "aGk_", "contentType": "text/plain"},
                {"filename": "b.txt", "content": "", "contentType": "nonsense"},
                {"filename": "c.png", "content": "aGk=", "contentType": "image/png", "disposition": "inline"}
            ]}),
        );
        assert_eq!(
            e,
            vec![
                ("attachments[0].filename".into(), FieldCode::Custom),
                ("attachments[1].content".into(), FieldCode::InvalidBase64),
                ("attachments[2].content".into(), FieldCode::TooSmall),
                (
                    "attachments[2].contentType".into(),
                    FieldCode::InvalidString
                ),
                ("attachments[3].contentId".into(), FieldCode::Required),
            ]
        );
    }
}
