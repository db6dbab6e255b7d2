//! The send worker's hosted-page links, unsubscribe headers and footer, checked on the message
//! as the provider gets it and as a mail client parses it.

use async_trait::async_trait;
use mail_parser::MessageParser;
use plunk_domain::contact::DataChange;
use plunk_domain::email_record::{EmailContent, EmailRecord, EmailStatus, SendClass, SourceType};
use plunk_domain::event::SubscriptionSource;
use plunk_domain::project::Tracking;
use plunk_domain::sending_domain::{Domain, DomainStatus, MailFromStatus};
use plunk_domain::template::TemplateType;
use plunk_domain::{EmailAddress, Timestamp};
use plunk_messaging::mailer::{MailError, Mailer, OutgoingEmail};
use plunk_messaging::memory::MemoryBlobs;
use plunk_messaging::send_queues::SendJob;
use plunk_store::backend::sqlite::SqliteTable;
use plunk_store::Store;
use plunk_worker::clock::SystemClock;
use plunk_worker::pacing::{MemoryPace, Pacer};
use plunk_worker::send::{Outcome, SendWorker, SenderConfig};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Keeps what it is given.
#[derive(Default)]
struct Capture(Mutex<Vec<OutgoingEmail>>);

#[async_trait]
impl Mailer for Capture {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        self.0.lock().unwrap().push(email.clone());
        Ok(format!("msg-{}", email.email_id))
    }
}

const BASE: &str = "https://api.example.com";

struct World {
    store: Store,
    project: Uuid,
    contact: Uuid,
    mailer: Arc<Capture>,
    worker: SendWorker,
}

async fn world(public_url: Option<&str>, locale: Option<&str>) -> World {
    let store = Store::new(Arc::new(SqliteTable::in_memory().unwrap()));
    let (project, _, _) = store
        .projects()
        .create("Acme", 1000, Tracking::Enabled, "en")
        .await
        .unwrap();
    let now = Timestamp::now();
    let mut domain = Domain::new(
        Uuid::now_v7(),
        "acme.io".into(),
        "mail.acme.io".into(),
        vec!["a".into(), "b".into(), "c".into()],
        "us-east-1".into(),
        now,
    );
    domain.record_check(DomainStatus::Verified, MailFromStatus::Success, now);
    store.domains().create(project.id, &domain).await.unwrap();
    let mut change = DataChange::default();
    if let Some(l) = locale {
        change.set("locale", Value::String(l.into()));
    }
    let contact = store
        .contacts()
        .upsert(
            project.id,
            &EmailAddress::parse("ada@example.org").unwrap(),
            Some(true),
            &change,
            SubscriptionSource::Api,
        )
        .await
        .unwrap()
        .contact;
    let mailer = Arc::new(Capture::default());
    let worker = SendWorker::new(
        store.clone(),
        mailer.clone(),
        Arc::new(MemoryBlobs::default()),
        Pacer::new(
            Arc::new(MemoryPace::default()),
            Arc::new(SystemClock),
            1000.0,
        ),
        SenderConfig {
            public_url: public_url.map(str::to_owned),
            ..SenderConfig::default()
        },
    );
    World {
        store,
        project: project.id,
        contact: contact.id,
        mailer,
        worker,
    }
}

/// What one email is.
struct Spec {
    marketing: bool,
    template_type: Option<TemplateType>,
    body: &'static str,
    headers: Vec<(&'static str, &'static str)>,
}

impl World {
    /// Sends one email and returns the message as the provider got it, and its id.
    async fn send(&self, spec: Spec) -> (OutgoingEmail, Uuid) {
        let now = Timestamp::now();
        let id = Uuid::now_v7();
        let record = EmailRecord {
            id,
            contact_id: Some(self.contact),
            to: "ada@example.org".into(),
            to_name: None,
            from: "news@acme.io".into(),
            from_name: "Acme".into(),
            reply_to: None,
            subject: "News".into(),
            source_type: SourceType::Transactional,
            template_id: None,
            campaign_id: None,
            workflow_id: None,
            workflow_execution_id: None,
            marketing: spec.marketing,
            tracking: false,
            test: false,
            status: EmailStatus::Pending,
            error: None,
            attempts: 0,
            message_id: None,
            opens: 0,
            clicks: 0,
            bounce_type: None,
            bounce_sub_type: None,
            queued_at: Some(now),
            sending_at: None,
            sent_at: None,
            delivered_at: None,
            opened_at: None,
            clicked_at: None,
            bounced_at: None,
            complained_at: None,
            delayed_at: None,
            failed_at: None,
            suppressed_at: None,
            created_at: now,
            updated_at: now,
        };
        let content = EmailContent {
            subject: "News".into(),
            body: spec.body.into(),
            body_blob: None,
            headers: spec
                .headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            attachments: vec![],
            one_shot: serde_json::Map::new(),
            template_type: spec.template_type,
            event: Default::default(),
            campaign_content: None,
        };
        self.store
            .emails()
            .accept(self.project, &record, Some(&content))
            .await
            .unwrap();
        let outcome = self
            .worker
            .process(SendJob {
                project_id: self.project,
                email_id: id,
                class: SendClass::Transactional,
            })
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::Done);
        let sent = self
            .mailer
            .0
            .lock()
            .unwrap()
            .pop()
            .expect("a message was sent");
        let stored = self
            .store
            .emails()
            .get(self.project, id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.status, EmailStatus::Sent, "{:?}", stored.error);
        (sent, id)
    }

    async fn url_of(&self, email: Uuid) -> String {
        let token = self.store.page_tokens().await.unwrap().sign(
            self.contact,
            Some(email),
            "ada@example.org",
        );
        format!("{BASE}/unsubscribe/{token}")
    }
}

fn header<'a>(email: &'a OutgoingEmail, name: &str) -> Vec<&'a str> {
    email
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Header values as a mail client reads them from the built message.
fn parsed_headers(email: &OutgoingEmail) -> Vec<(String, String)> {
    let built = plunk_messaging::mailer::mime::build(email);
    let msg = MessageParser::new().parse(&built.bytes).unwrap();
    [
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "Precedence",
        "X-Auto-Response-Suppress",
    ]
    .iter()
    .filter_map(|name| {
        msg.header_raw(*name)
            .map(|v| ((*name).to_owned(), v.replace("\r\n", "").trim().to_owned()))
    })
    .collect()
}

#[tokio::test]
async fn marketing_mail_carries_the_one_click_headers_and_a_localised_footer() {
    let w = world(Some(BASE), Some("de-CH")).await;
    let (sent, id) = w
        .send(Spec {
            marketing: true,
            template_type: Some(TemplateType::Marketing),
            body: "<html><body><p>Neuigkeiten</p></body></html>",
            headers: vec![("X-Campaign", "spring")],
        })
        .await;
    let url = w.url_of(id).await;
    assert_eq!(
        parsed_headers(&sent),
        [
            ("List-Unsubscribe".to_owned(), format!("<{url}>")),
            (
                "List-Unsubscribe-Post".to_owned(),
                "List-Unsubscribe=One-Click".to_owned()
            ),
            ("Precedence".to_owned(), "bulk".to_owned()),
            (
                "X-Auto-Response-Suppress".to_owned(),
                "OOF, AutoReply".to_owned()
            ),
        ]
    );
    assert_eq!(header(&sent, "X-Campaign"), ["spring"]);
    // The token in the URL names this contact and this email.
    let token = url.rsplit('/').next().unwrap();
    let claims = w.store.page_tokens().await.unwrap().verify(token).unwrap();
    assert_eq!((claims.contact_id, claims.email_id), (w.contact, Some(id)));
    // The footer: German, before </body>, linking both pages; also in the text part.
    let manage = url.replace("/unsubscribe/", "/manage/");
    let footer_at = sent.html.find("Abmelden").expect("German footer");
    assert!(footer_at < sent.html.find("</body>").unwrap());
    assert!(sent.html.contains(&format!("href=\"{url}\"")));
    assert!(sent.html.contains(&format!("href=\"{manage}\"")));
    assert!(sent.text.starts_with("Neuigkeiten"), "{}", sent.text);
    assert!(
        sent.text.contains(&format!("Abmelden: {url}")),
        "{}",
        sent.text
    );
    assert!(sent.text.contains(&manage));
    let built = plunk_messaging::mailer::mime::build(&sent);
    let msg = MessageParser::new().parse(&built.bytes).unwrap();
    assert!(msg.body_text(0).unwrap().contains(&url));
    assert!(msg.body_html(0).unwrap().contains("Abmelden"));
}

#[tokio::test]
async fn caller_headers_replace_the_generated_ones_and_none_appears_twice() {
    let w = world(Some(BASE), None).await;
    let (sent, _) = w
        .send(Spec {
            marketing: true,
            template_type: Some(TemplateType::Marketing),
            body: "<p>News</p>",
            headers: vec![
                ("List-Unsubscribe", "<mailto:leave@acme.io>"),
                ("precedence", "list"),
            ],
        })
        .await;
    assert_eq!(
        header(&sent, "List-Unsubscribe"),
        ["<mailto:leave@acme.io>"]
    );
    assert!(header(&sent, "List-Unsubscribe-Post").is_empty());
    assert_eq!(header(&sent, "Precedence"), ["list"]);
    assert_eq!(
        header(&sent, "X-Auto-Response-Suppress"),
        ["OOF, AutoReply"]
    );
    let raw = String::from_utf8(plunk_messaging::mailer::mime::build(&sent).bytes).unwrap();
    let head = raw.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    for name in [
        "list-unsubscribe:",
        "precedence:",
        "x-auto-response-suppress:",
    ] {
        assert_eq!(head.matches(&format!("\n{name}")).count(), 1, "{name}");
    }
    // No body-end tag: the footer goes at the end, in English.
    assert!(sent.html.starts_with("<p>News</p><div"));
    assert!(sent.html.contains("Unsubscribe</a>"));
}

#[tokio::test]
async fn headless_mail_gets_the_headers_but_no_footer() {
    let w = world(Some(BASE), None).await;
    let (sent, id) = w
        .send(Spec {
            marketing: true,
            template_type: Some(TemplateType::Headless),
            body: "<p>News</p>",
            headers: vec![],
        })
        .await;
    assert_eq!(
        header(&sent, "List-Unsubscribe"),
        [format!("<{}>", w.url_of(id).await)]
    );
    assert_eq!(header(&sent, "Precedence"), ["bulk"]);
    assert_eq!(sent.html, "<p>News</p>");
    assert!(!sent.text.contains("Unsubscribe"));
}

#[tokio::test]
async fn a_body_that_links_its_own_pages_gets_no_second_footer() {
    let w = world(Some(BASE), None).await;
    let (sent, id) = w
        .send(Spec {
            marketing: true,
            template_type: Some(TemplateType::Marketing),
            body: "<p>News</p><a href=\"{{ manageUrl }}\">Preferences</a>",
            headers: vec![],
        })
        .await;
    let manage = w.url_of(id).await.replace("/unsubscribe/", "/manage/");
    assert_eq!(
        sent.html,
        format!("<p>News</p><a href=\"{manage}\">Preferences</a>")
    );
    assert_eq!(
        header(&sent, "List-Unsubscribe-Post"),
        ["List-Unsubscribe=One-Click"]
    );
}

#[tokio::test]
async fn transactional_mail_gets_list_headers_only_when_it_links_its_unsubscribe_url() {
    let w = world(Some(BASE), None).await;
    let (sent, _) = w
        .send(Spec {
            marketing: false,
            template_type: None,
            body: "<p>Your receipt</p>",
            headers: vec![],
        })
        .await;
    assert!(sent.headers.is_empty(), "{:?}", sent.headers);
    assert_eq!(sent.html, "<p>Your receipt</p>");

    let (sent, id) = w
        .send(Spec {
            marketing: false,
            template_type: Some(TemplateType::Transactional),
            body: "<p>Digest</p><a href=\"{{ unsubscribeUrl }}\">Stop</a>",
            headers: vec![],
        })
        .await;
    let url = w.url_of(id).await;
    assert_eq!(
        parsed_headers(&sent),
        [
            ("List-Unsubscribe".to_owned(), format!("<{url}>")),
            (
                "List-Unsubscribe-Post".to_owned(),
                "List-Unsubscribe=One-Click".to_owned()
            ),
        ]
    );
    assert!(!sent.html.contains("Manage preferences"), "no footer");
}

#[tokio::test]
async fn the_page_urls_render_for_templates_and_stay_empty_without_a_public_url() {
    let w = world(Some(BASE), None).await;
    let (sent, id) = w
        .send(Spec {
            marketing: false,
            template_type: None,
            body: "{{ unsubscribeUrl }}|{{ subscribeUrl }}|{{ manageUrl }}",
            headers: vec![],
        })
        .await;
    let url = w.url_of(id).await;
    assert_eq!(
        sent.html,
        format!(
            "{url}|{}|{}",
            url.replace("/unsubscribe/", "/subscribe/"),
            url.replace("/unsubscribe/", "/manage/")
        )
    );

    let w = world(None, None).await;
    let (sent, _) = w
        .send(Spec {
            marketing: true,
            template_type: Some(TemplateType::Marketing),
            body: "[{{ unsubscribeUrl }}]",
            headers: vec![],
        })
        .await;
    assert_eq!(sent.html, "[]");
    assert!(header(&sent, "List-Unsubscribe").is_empty());
    assert_eq!(header(&sent, "Precedence"), ["bulk"]);
}
