//! Outbox mailer: the local deployment's default channel. It talks to no server: each message is
//! written as `<dir>/<timestamp>-<emailId>.eml` (the exact bytes an SMTP server or SES would
//! receive), and the folder is read back for the local server's outbox page.
//!
//! Files appear atomically (written under a hidden temporary name, then renamed), so a reader
//! never sees half a message. `<timestamp>` is UTC `YYYYMMDDTHHMMSSmmmZ`, so names sort by time.

use super::{mime, MailError, Mailer, OutgoingEmail};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use mail_parser::{HeaderName, HeaderValue, Message, MessageParser, MimeHeaders, PartType};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use uuid::Uuid;

const EXTENSION: &str = "eml";
const TIMESTAMP: &str = "%Y%m%dT%H%M%S%3fZ";
/// How much of a file `list` reads to find its headers.
const HEADER_PREFIX: u64 = 64 * 1024;

/// Writes every message to a folder instead of sending it.
#[derive(Debug, Clone)]
pub struct OutboxMailer {
    dir: PathBuf,
}

impl OutboxMailer {
    /// An outbox in `dir` (created on the first send).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder the messages go to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    /// Writes the message; returns `local-<uuid>`.
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        let now = Utc::now();
        let built = mime::build_at(email, now);
        let name = format!(
            "{}-{}.{EXTENSION}",
            now.format(TIMESTAMP),
            email.email_id.hyphenated()
        );
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || write_atomically(&dir, &name, &built.bytes))
            .await
            .map_err(|e| MailError::Transient(format!("outbox writer stopped: {e}")))?
            .map_err(|e| MailError::Transient(format!("cannot write to the outbox: {e}")))?;
        tracing::debug!(email_id = %email.email_id, "message written to the outbox");
        Ok(format!("local-{}", Uuid::now_v7()))
    }
}

fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, dir.join(name))
}

/// One message in the outbox, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub file: PathBuf,
    pub email_id: Uuid,
    /// The recipient as shown: `Name <address>` or the address.
    pub to: String,
    /// The decoded subject.
    pub subject: String,
    /// When the message was written.
    pub date: DateTime<Utc>,
}

/// A message read back in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedOutboxMessage {
    pub file: PathBuf,
    pub email_id: Uuid,
    /// Top-level headers in file order, values decoded (RFC 2047) and unfolded.
    pub headers: Vec<(String, String)>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub attachments: Vec<OutboxAttachment>,
}

/// An attachment or inline part of an outbox message (its content via [`attachment`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxAttachment {
    pub filename: Option<String>,
    /// `type/subtype`.
    pub content_type: String,
    /// Decoded size in bytes.
    pub size: usize,
    pub inline: bool,
    /// Without angle brackets.
    pub content_id: Option<String>,
}

/// The messages in `dir`, newest first. A missing folder is an empty outbox; files that are not
/// `<timestamp>-<uuid>.eml` are ignored.
pub fn list(dir: &Path) -> Vec<OutboxEntry> {
    let mut files = outbox_files(dir);
    files.sort_by(|a, b| b.0.cmp(&a.0));
    files
        .into_iter()
        .filter_map(|(name, email_id, date)| {
            let file = dir.join(&name);
            let mut head = Vec::new();
            fs::File::open(&file)
                .ok()?
                .take(HEADER_PREFIX)
                .read_to_end(&mut head)
                .ok()?;
            let msg = MessageParser::new().parse_headers(&head[..])?;
            Some(OutboxEntry {
                to: msg
                    .to()
                    .and_then(|a| a.first())
                    .map(|a| mailbox(a.name(), a.address()))
                    .unwrap_or_default(),
                subject: msg.subject().unwrap_or_default().to_string(),
                file,
                email_id,
                date,
            })
        })
        .collect()
}

/// The newest message written for `email_id`, parsed; `None` when there is none.
pub fn read(dir: &Path, email_id: Uuid) -> Option<ParsedOutboxMessage> {
    let (file, bytes) = newest_file(dir, email_id)?;
    let msg = display_parser().parse(&bytes)?;
    let headers = msg
        .headers()
        .iter()
        .map(|h| (h.name().to_string(), header_text(h.value())))
        .collect();
    let html = msg
        .html_part(0)
        .filter(|p| matches!(p.body, PartType::Html(_)))
        .and_then(|p| p.text_contents())
        .map(str::to_string);
    let text = msg
        .text_part(0)
        .filter(|p| matches!(p.body, PartType::Text(_)))
        .and_then(|p| p.text_contents())
        .map(str::to_string);
    let attachments = attachment_parts(&msg)
        .map(|p| OutboxAttachment {
            filename: p.attachment_name().map(str::to_string),
            content_type: p
                .content_type()
                .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("octet-stream")))
                .unwrap_or_else(|| "application/octet-stream".into())
                .to_ascii_lowercase(),
            size: p.contents().len(),
            inline: p
                .content_disposition()
                .is_some_and(|d| d.ctype().eq_ignore_ascii_case("inline")),
            content_id: p.content_id().map(str::to_string),
        })
        .collect();
    Some(ParsedOutboxMessage {
        file,
        email_id,
        headers,
        html,
        text,
        attachments,
    })
}

/// The decoded content of attachment number `index` (as ordered in
/// [`ParsedOutboxMessage::attachments`]), e.g. to serve inline images of the rendered HTML.
pub fn attachment(dir: &Path, email_id: Uuid, index: usize) -> Option<(OutboxAttachment, Vec<u8>)> {
    let parsed = read(dir, email_id)?;
    let meta = parsed.attachments.get(index)?.clone();
    let (_, bytes) = newest_file(dir, email_id)?;
    let msg = MessageParser::new().parse(&bytes)?;
    let content = attachment_parts(&msg).nth(index)?.contents().to_vec();
    Some((meta, content))
}

/// A parser that decodes every header for display: addresses, dates and ids parsed; custom
/// headers and `List-Unsubscribe` as RFC 2047-decoded text (mail-parser's defaults leave custom
/// headers raw).
pub(crate) fn display_parser() -> MessageParser {
    MessageParser::new()
        .with_mime_headers()
        .with_date_headers()
        .with_address_headers()
        .with_message_ids()
        .header_text(HeaderName::Subject)
        .header_text(HeaderName::Comments)
        .header_text(HeaderName::ListUnsubscribe)
        .header_text(HeaderName::ListUnsubscribePost)
        .default_header_text()
}

fn attachment_parts<'a>(
    msg: &'a Message<'a>,
) -> impl Iterator<Item = &'a mail_parser::MessagePart<'a>> {
    msg.attachments()
        .filter(|p| !matches!(p.body, PartType::Multipart(_)))
}

fn newest_file(dir: &Path, email_id: Uuid) -> Option<(PathBuf, Vec<u8>)> {
    let (name, _, _) = outbox_files(dir)
        .into_iter()
        .filter(|(_, id, _)| *id == email_id)
        .max_by(|a, b| a.0.cmp(&b.0))?;
    let file = dir.join(name);
    let bytes = fs::read(&file).ok()?;
    Some((file, bytes))
}

/// `(file name, email id, timestamp)` of every well-named `.eml` file in `dir`.
fn outbox_files(dir: &Path) -> Vec<(String, Uuid, DateTime<Utc>)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let (email_id, date) = parse_name(&name)?;
            Some((name, email_id, date))
        })
        .collect()
}

fn parse_name(name: &str) -> Option<(Uuid, DateTime<Utc>)> {
    let stem = name.strip_suffix(&format!(".{EXTENSION}"))?;
    let (ts, id) = stem.split_once('-')?;
    let date = NaiveDateTime::parse_from_str(ts, TIMESTAMP).ok()?.and_utc();
    Some((Uuid::parse_str(id).ok()?, date))
}

fn mailbox(name: Option<&str>, address: Option<&str>) -> String {
    match (name.filter(|n| !n.is_empty()), address) {
        (Some(n), Some(a)) => format!("{n} <{a}>"),
        (None, Some(a)) => a.to_string(),
        (Some(n), None) => n.to_string(),
        (None, None) => String::new(),
    }
}

fn header_text(value: &HeaderValue<'_>) -> String {
    match value {
        HeaderValue::Text(t) => t.to_string(),
        HeaderValue::TextList(list) => list.join(", "),
        HeaderValue::Address(a) => a
            .iter()
            .map(|a| mailbox(a.name(), a.address()))
            .collect::<Vec<_>>()
            .join(", "),
        HeaderValue::DateTime(d) => d.to_rfc822(),
        HeaderValue::ContentType(ct) => {
            let mut s = ct.ctype().to_string();
            if let Some(sub) = ct.subtype() {
                s = format!("{s}/{sub}");
            }
            for attr in ct.attributes().unwrap_or_default() {
                s.push_str(&format!("; {}={}", attr.name, attr.value));
            }
            s
        }
        HeaderValue::Received(_) | HeaderValue::Empty => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailer::{Attachment, Disposition, Mailbox};

    fn email(subject: &str) -> OutgoingEmail {
        OutgoingEmail {
            email_id: Uuid::now_v7(),
            project_id: Uuid::from_u128(42),
            from: Mailbox {
                name: Some("Acme".into()),
                email: "hello@acme.io".into(),
            },
            to: Mailbox {
                name: Some("Zoë".into()),
                email: "zoe@example.org".into(),
            },
            reply_to: Some("support@acme.io".into()),
            subject: subject.into(),
            html: r#"<p>Hello <img src="cid:logo"></p>"#.into(),
            text: "Hello".into(),
            headers: vec![
                ("X-Campaign".into(), "Frühling".into()),
                ("List-Unsubscribe".into(), "<https://acme.io/u/1>".into()),
            ],
            attachments: vec![
                Attachment {
                    filename: "logo.png".into(),
                    content_type: "image/png".into(),
                    disposition: Disposition::Inline,
                    content_id: Some("logo".into()),
                    content: vec![0x89, b'P', b'N', b'G', 0, 1, 2],
                },
                Attachment {
                    filename: "réçu.pdf".into(),
                    content_type: "application/pdf".into(),
                    disposition: Disposition::Attachment,
                    content_id: None,
                    content: b"%PDF-1.4 data".to_vec(),
                },
            ],
            configuration_set: None,
        }
    }

    #[tokio::test]
    async fn a_sent_message_becomes_one_eml_file_named_after_time_and_email_id() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = OutboxMailer::new(dir.path().join("outbox"));
        let e = email("Welcome");
        let id = outbox.send(&e).await.unwrap();
        assert!(id.starts_with("local-"));
        assert!(Uuid::parse_str(&id["local-".len()..]).is_ok());

        let names: Vec<String> = fs::read_dir(outbox.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let name = &names[0];
        assert!(name.ends_with(&format!("-{}.eml", e.email_id)), "{name}");
        assert_eq!(name.len(), "20260301T093000123Z-".len() + 36 + 4);
        let bytes = fs::read(outbox.dir().join(name)).unwrap();
        let msg = MessageParser::new().parse(&bytes).unwrap();
        assert_eq!(msg.subject(), Some("Welcome"));
    }

    #[tokio::test]
    async fn list_shows_messages_newest_first_and_ignores_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = OutboxMailer::new(dir.path());
        let first = email("First");
        let second = email("Second – ünïcode");
        outbox.send(&first).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        outbox.send(&second).await.unwrap();
        fs::write(dir.path().join("notes.txt"), "x").unwrap();
        fs::write(dir.path().join(".tmp-partial.eml.tmp"), "x").unwrap();

        let entries = list(dir.path());
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].email_id, second.email_id);
        assert_eq!(entries[0].subject, "Second – ünïcode");
        assert_eq!(entries[0].to, "Zoë <zoe@example.org>");
        assert_eq!(entries[1].email_id, first.email_id);
        assert!(entries[0].date >= entries[1].date);
        assert!((Utc::now() - entries[0].date).num_seconds() < 60);
    }

    #[test]
    fn a_missing_folder_is_an_empty_outbox() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list(&dir.path().join("none")).is_empty());
        assert!(read(&dir.path().join("none"), Uuid::now_v7()).is_none());
    }

    #[tokio::test]
    async fn read_returns_headers_bodies_and_attachments() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = OutboxMailer::new(dir.path());
        let e = email("Your receipt");
        outbox.send(&e).await.unwrap();

        let m = read(dir.path(), e.email_id).expect("message");
        assert_eq!(m.email_id, e.email_id);
        let header = |n: &str| {
            m.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("Subject"), Some("Your receipt"));
        assert_eq!(header("From"), Some("Acme <hello@acme.io>"));
        assert_eq!(header("Reply-To"), Some("support@acme.io"));
        assert_eq!(header("X-Campaign"), Some("Frühling"));
        assert_eq!(header("List-Unsubscribe"), Some("<https://acme.io/u/1>"));
        assert!(header("Date").is_some());
        assert_eq!(m.html.as_deref(), Some(e.html.as_str()));
        assert_eq!(m.text.as_deref().map(str::trim_end), Some("Hello"));
        assert_eq!(
            m.attachments,
            vec![
                OutboxAttachment {
                    filename: Some("logo.png".into()),
                    content_type: "image/png".into(),
                    size: 7,
                    inline: true,
                    content_id: Some("logo".into()),
                },
                OutboxAttachment {
                    filename: Some("réçu.pdf".into()),
                    content_type: "application/pdf".into(),
                    size: 13,
                    inline: false,
                    content_id: None,
                },
            ]
        );
        let (meta, content) = attachment(dir.path(), e.email_id, 1).unwrap();
        assert_eq!(meta.filename.as_deref(), Some("réçu.pdf"));
        assert_eq!(content, b"%PDF-1.4 data");
        assert!(attachment(dir.path(), e.email_id, 2).is_none());
        assert!(read(dir.path(), Uuid::now_v7()).is_none());
    }
}
