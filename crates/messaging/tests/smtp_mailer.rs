//! The SMTP mailer against real SMTP server processes: `aiosmtpd` (from the project's `.venv`,
//! `make tools`) writing to a maildir, and tiny in-process fakes that answer with error replies.

use mail_parser::{MessageParser, MimeHeaders};
use plunk_messaging::mailer::smtp::SmtpMailer;
use plunk_messaging::mailer::{Attachment, Disposition, MailError, Mailbox, Mailer, OutgoingEmail};
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use uuid::Uuid;

fn venv_python() -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    python.exists().then_some(python)
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An aiosmtpd process; killed on drop.
struct Aiosmtpd {
    child: Child,
    port: u16,
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_aiosmtpd(python: &Path, maildir: &Path) -> Aiosmtpd {
    let port = free_port();
    let child = Command::new(python)
        .args(["-m", "aiosmtpd", "-n", "-l"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start aiosmtpd");
    let server = Aiosmtpd { child, port };
    let deadline = Instant::now() + Duration::from_secs(15);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "aiosmtpd did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

fn email() -> OutgoingEmail {
    OutgoingEmail {
        email_id: Uuid::now_v7(),
        project_id: Uuid::from_u128(42),
        from: Mailbox {
            name: Some("Acme Billing".into()),
            email: "billing@acme.io".into(),
        },
        to: Mailbox {
            name: Some("Zoë Ångström".into()),
            email: "zoe@example.org".into(),
        },
        reply_to: Some("support@acme.io".into()),
        subject: "Your receipt – nº 42".into(),
        html: r#"<p>Thanks! <img src="cid:logo@acme"></p><p><a href="https://acme.io/r/1">View</a></p>"#
            .into(),
        text: "Thanks!\n\nView (https://acme.io/r/1)".into(),
        headers: vec![
            ("X-Campaign".into(), "spring".into()),
            ("X-Note".into(), "Grüße".into()),
        ],
        attachments: vec![
            Attachment {
                filename: "logo.png".into(),
                content_type: "image/png".into(),
                disposition: Disposition::Inline,
                content_id: Some("logo@acme".into()),
                content: (0u8..=255).collect(),
            },
            Attachment {
                filename: "facture été.pdf".into(),
                content_type: "application/pdf".into(),
                disposition: Disposition::Attachment,
                content_id: None,
                content: b"%PDF-1.4\n\x00\xff binary".to_vec(),
            },
        ],
        configuration_set: None,
    }
}

fn maildir_messages(maildir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(maildir.join("new")) else {
        return vec![];
    };
    entries
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect()
}

#[tokio::test]
async fn a_message_with_attachments_and_an_inline_image_arrives_intact_at_a_real_smtp_server() {
    let Some(python) = venv_python() else {
        println!("skipped: .venv missing (make tools)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("maildir");
    let server = start_aiosmtpd(&python, &maildir).await;
    let mailer = SmtpMailer::from_url(&format!("smtp://127.0.0.1:{}", server.port)).unwrap();
    let e = email();

    let id = mailer.send(&e).await.expect("sent");
    assert_eq!(id, format!("{}@acme.io", e.email_id));

    // aiosmtpd writes the maildir file when it has answered DATA.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut messages = maildir_messages(&maildir);
    while messages.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        messages = maildir_messages(&maildir);
    }
    assert_eq!(messages.len(), 1);
    // Custom headers decoded as text (mail-parser leaves unknown headers raw by default, and
    // ignores `default_header_text` unless some header parser is configured).
    let msg = MessageParser::new()
        .with_mime_headers()
        .with_address_headers()
        .with_message_ids()
        .header_text(mail_parser::HeaderName::Subject)
        .default_header_text()
        .parse(&messages[0])
        .unwrap();

    // Envelope, as recorded by aiosmtpd.
    assert_eq!(
        msg.header_raw("X-MailFrom").map(str::trim),
        Some("billing@acme.io")
    );
    assert_eq!(
        msg.header_raw("X-RcptTo").map(str::trim),
        Some("zoe@example.org")
    );
    // Headers.
    assert_eq!(msg.message_id(), Some(id.as_str()));
    assert_eq!(msg.subject(), Some("Your receipt – nº 42"));
    let to = msg.to().unwrap().first().unwrap();
    assert_eq!(
        (to.name(), to.address()),
        (Some("Zoë Ångström"), Some("zoe@example.org"))
    );
    assert_eq!(
        msg.reply_to().unwrap().first().unwrap().address(),
        Some("support@acme.io")
    );
    let header = |n: &str| {
        msg.headers()
            .iter()
            .find(|h| h.name() == n)
            .and_then(|h| h.value().as_text().map(str::to_string))
    };
    assert_eq!(header("X-Campaign").as_deref(), Some("spring"));
    assert_eq!(header("X-Note").as_deref(), Some("Grüße"));
    // Bodies.
    assert_eq!(msg.body_html(0).unwrap(), e.html);
    assert_eq!(
        msg.body_text(0).unwrap().replace("\r\n", "\n").trim_end(),
        e.text
    );
    // Inline image and attachment, byte for byte.
    let parts: Vec<_> = msg.attachments().collect();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].content_id(), Some("logo@acme"));
    assert_eq!(parts[0].contents(), e.attachments[0].content.as_slice());
    assert_eq!(parts[1].attachment_name(), Some("facture été.pdf"));
    assert_eq!(parts[1].contents(), e.attachments[1].content.as_slice());
    let root = msg.content_type().unwrap();
    assert_eq!((root.ctype(), root.subtype()), ("multipart", Some("mixed")));
}

/// Where the fake server answers with an error.
#[derive(Clone, Copy)]
enum Stage {
    Greeting,
    Rcpt,
}

/// A minimal SMTP server that accepts commands until `stage`, then answers `reply`.
async fn fake_server(stage: Stage, reply: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                if let Stage::Greeting = stage {
                    let _ = write.write_all(format!("{reply}\r\n").as_bytes()).await;
                    return;
                }
                let _ = write.write_all(b"220 fake ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_ascii_uppercase();
                    let answer = match verb.as_str() {
                        "EHLO" | "HELO" => "250 fake".to_string(),
                        "RCPT" => reply.to_string(),
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => "250 OK".to_string(),
                    };
                    if write
                        .write_all(format!("{answer}\r\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}

async fn send_to_fake(stage: Stage, reply: &'static str) -> MailError {
    let port = fake_server(stage, reply).await;
    let mailer = SmtpMailer::from_url(&format!("smtp://127.0.0.1:{port}?tls=none")).unwrap();
    mailer.send(&email()).await.expect_err("must fail")
}

#[tokio::test]
async fn a_550_at_rcpt_is_a_permanent_error() {
    let err = send_to_fake(Stage::Rcpt, "550 5.1.1 no such user").await;
    assert!(matches!(err, MailError::Permanent(_)), "{err:?}");
    assert!(err.to_string().contains("550"), "{err}");
}

#[tokio::test]
async fn a_450_at_rcpt_is_a_transient_error() {
    let err = send_to_fake(Stage::Rcpt, "450 4.2.1 mailbox busy, try later").await;
    assert!(matches!(err, MailError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn a_421_greeting_is_a_transient_error() {
    let err = send_to_fake(Stage::Greeting, "421 4.3.2 service not available").await;
    assert!(matches!(err, MailError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn a_refused_connection_is_a_transient_error() {
    let port = free_port();
    let mailer = SmtpMailer::from_url(&format!("smtp://127.0.0.1:{port}?tls=none")).unwrap();
    let err = mailer.send(&email()).await.expect_err("must fail");
    assert!(matches!(err, MailError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn an_invalid_recipient_address_is_a_permanent_error_before_connecting() {
    let port = free_port();
    let mailer = SmtpMailer::from_url(&format!("smtp://127.0.0.1:{port}?tls=none")).unwrap();
    let mut e = email();
    e.to.email = "not an address".into();
    let err = mailer.send(&e).await.expect_err("must fail");
    assert!(matches!(err, MailError::Permanent(_)), "{err:?}");
}
