//! The hosted pages in-process on both backends (spec feedback-and-unsubscribe.md §4): what each
//! route shows and changes, the events and campaign counts a change leaves, the headers every
//! page carries, invalid links, languages, disabled projects and the per-source limit.

mod common;

use axum::body::Body;
use axum::extract::ConnectInfo;
use common::TestApp;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use plunk_domain::email_record::{EmailRecord, EmailStatus, SourceType};
use plunk_domain::Timestamp;
use plunk_store::repo::campaign_counters::UNSUBSCRIBED_COUNT;
use serde_json::{json, Value};
use std::net::SocketAddr;
use tower::ServiceExt;
use uuid::Uuid;

/// A page response.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Page {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

/// One request to a page, from `source` when given.
async fn request(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<(&str, &str)>,
    source: Option<SocketAddr>,
) -> Page {
    let mut req = Request::builder().method(method).uri(path);
    if let Some((content_type, _)) = body {
        req = req.header("content-type", content_type);
    }
    let mut req = req
        .body(body.map_or_else(Body::empty, |(_, b)| Body::from(b.to_owned())))
        .unwrap();
    if let Some(addr) = source {
        req.extensions_mut().insert(ConnectInfo(addr));
    }
    let res = plunk_api::app(app.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Page {
        status,
        headers,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn get(app: &TestApp, path: &str) -> Page {
    request(app, Method::GET, path, None, None).await
}

async fn post(app: &TestApp, path: &str, body: Option<(&str, &str)>) -> Page {
    request(app, Method::POST, path, body, None).await
}

async fn contact(app: &TestApp, email: &str, data: Value) -> Uuid {
    let res = app
        .call(
            Method::POST,
            "/contacts",
            Some(json!({"email": email, "data": data})),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    res.data()["id"].as_str().unwrap().parse().unwrap()
}

/// A token for the contact at its current address.
async fn token(app: &TestApp, contact: Uuid, email: Option<Uuid>) -> String {
    let address = app
        .store
        .contacts()
        .get(app.project.id, contact)
        .await
        .unwrap()
        .map(|c| c.email.to_string())
        .unwrap_or_default();
    app.store
        .page_tokens()
        .await
        .unwrap()
        .sign(contact, email, &address)
}

async fn is_subscribed(app: &TestApp, contact: Uuid) -> bool {
    let res = app
        .call(Method::GET, &format!("/contacts/{contact}"), None)
        .await;
    res.data()["subscribed"].as_bool().unwrap()
}

/// The contact's subscription events, oldest first.
async fn subscription_events(app: &TestApp, contact: Uuid) -> Vec<Value> {
    let res = app
        .call(
            Method::GET,
            &format!("/contacts/{contact}/events?limit=100"),
            None,
        )
        .await;
    let mut items: Vec<Value> = res.data()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"].as_str().unwrap().starts_with("contact."))
        .cloned()
        .collect();
    items.reverse();
    items
}

/// A sent email to `contact`, of `campaign` when given.
async fn sent_email(app: &TestApp, contact: Uuid, campaign: Option<Uuid>, test: bool) -> Uuid {
    let now = Timestamp::now();
    let record = EmailRecord {
        id: Uuid::now_v7(),
        contact_id: Some(contact),
        to: "ada@example.org".into(),
        to_name: None,
        from: "news@acme.io".into(),
        from_name: "Acme".into(),
        reply_to: None,
        subject: "News".into(),
        source_type: if campaign.is_some() {
            SourceType::Campaign
        } else {
            SourceType::Transactional
        },
        template_id: None,
        campaign_id: campaign,
        workflow_id: None,
        workflow_execution_id: None,
        marketing: true,
        tracking: false,
        test,
        status: EmailStatus::Sent,
        error: None,
        attempts: 1,
        message_id: Some("m-1".into()),
        opens: 0,
        clicks: 0,
        bounce_type: None,
        bounce_sub_type: None,
        queued_at: Some(now),
        sending_at: Some(now),
        sent_at: Some(now),
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
    assert!(app
        .store
        .emails()
        .accept(app.project.id, &record, None)
        .await
        .unwrap());
    record.id
}

async fn unsubscribed_count(app: &TestApp, campaign: Uuid) -> i64 {
    app.store
        .campaign_counters()
        .get(app.project.id, campaign, UNSUBSCRIBED_COUNT)
        .await
        .unwrap()
}

/// What every page response carries.
fn assert_page_headers(page: &Page) {
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert!(page.header("x-request-id").is_some_and(|v| !v.is_empty()));
    assert!(page.header("set-cookie").is_none(), "no cookies");
    assert!(
        page.header("ratelimit-limit").is_none(),
        "not counted against the project's API limit"
    );
    assert!(page.header("access-control-allow-origin").is_none());
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    // Nothing loaded from anywhere: no scripts, no external URLs.
    assert!(!page.text.contains("<script"));
    assert!(!page.text.contains("src="));
    assert!(!page.text.contains("http://") && !page.text.contains("https://"));
}

on_both_backends! {
    async fn get_unsubscribe_shows_the_masked_address_and_a_button_and_changes_nothing(app: TestApp) {
        let id = contact(&app, "ada@example.org", json!({})).await;
        let t = token(&app, id, None).await;
        for _ in 0..2 {
            let page = get(&app, &format!("/unsubscribe/{t}")).await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.text);
            assert_page_headers(&page);
            assert!(page.text.contains("a***@example.org"), "{}", page.text);
            assert!(!page.text.contains("ada@example.org"));
            assert!(page.text.contains("<form method=\"post\"><button type=\"submit\">Unsubscribe</button>"));
            assert!(page.text.contains("Test"), "the project name is shown");
        }
        assert!(is_subscribed(&app, id).await);
        assert!(subscription_events(&app, id).await.is_empty());
        // The subscribe and manage pages do not change anything either.
        app.call(Method::PATCH, &format!("/contacts/{id}"), Some(json!({"subscribed": false}))).await;
        let page = get(&app, &format!("/subscribe/{t}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_page_headers(&page);
        assert!(page.text.contains(">Subscribe</button>"));
        let page = get(&app, &format!("/manage/{t}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text.contains("is unsubscribed from marketing emails"), "{}", page.text);
        assert!(!is_subscribed(&app, id).await);
        assert_eq!(subscription_events(&app, id).await.len(), 1, "only the API's change");
    }

    async fn one_click_unsubscribes_with_its_source_email_and_campaign_and_counts_once(app: TestApp) {
        let id = contact(&app, "ada@example.org", json!({})).await;
        let campaign = Uuid::now_v7();
        let email = sent_email(&app, id, Some(campaign), false).await;
        let t = token(&app, id, Some(email)).await;
        let path = format!("/unsubscribe/{t}");

        let page = post(&app, &path, Some((FORM, "List-Unsubscribe=One-Click"))).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert_page_headers(&page);
        assert!(page.text.contains("You have been unsubscribed."), "{}", page.text);
        assert!(!is_subscribed(&app, id).await);
        let events = subscription_events(&app, id).await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["name"], "contact.unsubscribed");
        assert_eq!(events[0]["emailId"], json!(email));
        assert_eq!(
            events[0]["data"],
            json!({"source": "one_click", "emailId": email, "campaignId": campaign})
        );
        assert_eq!(unsubscribed_count(&app, campaign).await, 1);

        // Again: the same page, no event, no count.
        let page = post(&app, &path, Some((FORM, "List-Unsubscribe=One-Click"))).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text.contains("You have been unsubscribed."));
        assert_eq!(subscription_events(&app, id).await.len(), 1);

        // Resubscribed and unsubscribed again through the same email: counted once per email.
        let page = post(&app, &format!("/subscribe/{t}"), None).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text.contains("You are subscribed."));
        assert!(is_subscribed(&app, id).await);
        let page = post(&app, &path, None).await;
        assert_eq!(page.status, StatusCode::OK);
        let events = subscription_events(&app, id).await;
        let sources: Vec<&str> = events.iter().map(|e| e["data"]["source"].as_str().unwrap()).collect();
        assert_eq!(sources, ["one_click", "subscribe_page", "unsubscribe_page"]);
        assert_eq!(events[1]["name"], "contact.subscribed");
        assert_eq!(events[1]["data"]["campaignId"], json!(campaign));
        assert_eq!(unsubscribed_count(&app, campaign).await, 1);
    }

    async fn any_other_or_empty_body_unsubscribes_as_the_page(app: TestApp) {
        for (i, body) in [
            None,
            Some(("application/json", "{\"x\":1}")),
            Some((FORM, "")),
            Some((FORM, "List-Unsubscribe=Other")),
            Some(("text/plain", "\u{0}\u{1}garbage")),
        ]
        .into_iter()
        .enumerate()
        {
            let id = contact(&app, &format!("u{i}@example.org"), json!({})).await;
            let t = token(&app, id, None).await;
            let page = post(&app, &format!("/unsubscribe/{t}"), body).await;
            assert_eq!(page.status, StatusCode::OK, "{body:?}: {}", page.text);
            assert!(!is_subscribed(&app, id).await, "{body:?}");
            let events = subscription_events(&app, id).await;
            assert_eq!(events.len(), 1);
            assert_eq!(
                events[0]["data"],
                json!({"source": "unsubscribe_page", "emailId": null, "campaignId": null}),
                "no email in the token: both named, null"
            );
            assert_eq!(events[0]["emailId"], Value::Null);
        }
    }

    async fn test_sends_and_other_contacts_emails_count_for_no_campaign(app: TestApp) {
        let id = contact(&app, "ada@example.org", json!({})).await;
        let campaign = Uuid::now_v7();
        let test_email = sent_email(&app, id, Some(campaign), true).await;
        let t = token(&app, id, Some(test_email)).await;
        assert_eq!(post(&app, &format!("/unsubscribe/{t}"), None).await.status, StatusCode::OK);
        assert_eq!(unsubscribed_count(&app, campaign).await, 0, "test emails are excluded");
        let events = subscription_events(&app, id).await;
        assert_eq!(events[0]["data"]["campaignId"], json!(campaign));

        // A token naming another contact's email attributes nothing to that email's campaign.
        let other = contact(&app, "kim@example.org", json!({})).await;
        let theirs = sent_email(&app, id, Some(campaign), false).await;
        let t = token(&app, other, Some(theirs)).await;
        assert_eq!(post(&app, &format!("/unsubscribe/{t}"), None).await.status, StatusCode::OK);
        assert!(!is_subscribed(&app, other).await);
        assert_eq!(unsubscribed_count(&app, campaign).await, 0);
        let events = subscription_events(&app, other).await;
        assert_eq!(
            events[0]["data"],
            json!({"source": "unsubscribe_page", "emailId": theirs, "campaignId": null})
        );
    }

    async fn manage_applies_its_action_and_refuses_anything_else_with_400(app: TestApp) {
        let id = contact(&app, "ada@example.org", json!({})).await;
        let t = token(&app, id, None).await;
        let path = format!("/manage/{t}");
        let page = get(&app, &path).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_page_headers(&page);
        assert!(page.text.contains("is subscribed to marketing emails"), "{}", page.text);
        assert!(page.text.contains("name=\"action\" value=\"unsubscribe\""));
        assert!(page.text.contains("name=\"action\" value=\"subscribe\""));

        for body in [None, Some((FORM, "")), Some((FORM, "action=")), Some((FORM, "action=delete")), Some((FORM, "action=Subscribe"))] {
            let page = post(&app, &path, body).await;
            assert_eq!(page.status, StatusCode::BAD_REQUEST, "{body:?}");
            assert_page_headers(&page);
            assert!(page.text.contains("Please choose an option"));
        }
        assert!(is_subscribed(&app, id).await);
        assert!(subscription_events(&app, id).await.is_empty());

        let page = post(&app, &path, Some((FORM, "action=unsubscribe"))).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text.contains("Your preferences have been saved."));
        assert!(page.text.contains("is unsubscribed from marketing emails"));
        assert!(!is_subscribed(&app, id).await);
        let page = post(&app, &path, Some((FORM, "action=unsubscribe"))).await;
        assert_eq!(page.status, StatusCode::OK, "already unsubscribed: same page");
        let page = post(&app, &path, Some((FORM, "x=1&action=subscribe"))).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text.contains("is subscribed to marketing emails"));
        let events = subscription_events(&app, id).await;
        let names: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e["name"].as_str().unwrap(), e["data"]["source"].as_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            [("contact.unsubscribed", "manage_page"), ("contact.subscribed", "manage_page")]
        );
    }

    async fn invalid_links_get_the_404_page_on_every_route(app: TestApp) {
        let id = contact(&app, "ada@example.org", json!({})).await;
        let good = token(&app, id, None).await;
        let mut tampered = good.clone().into_bytes();
        tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        let other_deployment = {
            let keys = plunk_domain::page_token::PageTokenKeys::new(
                vec![plunk_domain::page_token::PageTokenSecret { id: 1, bytes: [7; 32] }],
                1,
            )
            .unwrap();
            keys.sign(id, None, "ada@example.org")
        };
        let tokens = [
            "garbage".to_owned(),
            id.to_string(),
            tampered,
            other_deployment,
            format!("{good}x"),
            "%00".to_owned(),
        ];
        for t in &tokens {
            for route in ["unsubscribe", "subscribe", "manage"] {
                for method in [Method::GET, Method::POST] {
                    let page = request(&app, method.clone(), &format!("/{route}/{t}"), Some((FORM, "action=unsubscribe")), None).await;
                    assert_eq!(page.status, StatusCode::NOT_FOUND, "{method} /{route}/{t}");
                    assert_page_headers(&page);
                    assert!(page.text.contains("This link is no longer valid"));
                }
            }
        }
        assert!(is_subscribed(&app, id).await);

        // A deleted contact's links stop working.
        let res = app.call(Method::DELETE, &format!("/contacts/{id}"), None).await;
        assert_eq!(res.status, StatusCode::OK);
        for route in ["unsubscribe", "subscribe", "manage"] {
            let page = get(&app, &format!("/{route}/{good}")).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "{route}");
            assert!(page.text.contains("This link is no longer valid"));
            let page = post(&app, &format!("/{route}/{good}"), None).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "{route}");
        }
    }

    async fn pages_keep_working_on_a_disabled_project(app: TestApp) {
        let id = contact(&app, "ada@example.org", json!({})).await;
        let t = token(&app, id, None).await;
        app.store
            .projects()
            .update(app.project.id, |p| {
                p.disabled = true;
                Ok(())
            })
            .await
            .unwrap();
        let res = app.call(Method::PATCH, &format!("/contacts/{id}"), Some(json!({"subscribed": false}))).await;
        assert_eq!(res.code(), "PROJECT_DISABLED", "the API refuses writes");
        assert_eq!(get(&app, &format!("/unsubscribe/{t}")).await.status, StatusCode::OK);
        let page = post(&app, &format!("/unsubscribe/{t}"), Some((FORM, "List-Unsubscribe=One-Click"))).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!is_subscribed(&app, id).await);
    }

    async fn the_language_follows_the_contact_then_the_project_then_english(app: TestApp) {
        let de = contact(&app, "de@example.org", json!({"locale": "de-AT"})).await;
        let page = get(&app, &format!("/unsubscribe/{}", token(&app, de, None).await)).await;
        assert!(page.text.contains("<html lang=\"de\">"));
        assert!(page.text.contains(">Abmelden</button>"), "{}", page.text);
        let page = post(&app, &format!("/unsubscribe/{}", token(&app, de, None).await), None).await;
        assert!(page.text.contains("Sie wurden abgemeldet."));

        let ja = contact(&app, "ja@example.org", json!({"locale": "ja"})).await;
        let t = token(&app, ja, None).await;
        assert!(get(&app, &format!("/manage/{t}")).await.text.contains("<html lang=\"en\">"));

        app.store
            .projects()
            .update(app.project.id, |p| {
                p.language = "fr".into();
                Ok(())
            })
            .await
            .unwrap();
        let page = get(&app, &format!("/manage/{t}")).await;
        assert!(page.text.contains("<html lang=\"fr\">"), "unsupported locale: the project's");
        assert!(page.text.contains("Préférences e-mail"));
        let it = contact(&app, "it@example.org", json!({"locale": "it"})).await;
        let page = get(&app, &format!("/subscribe/{}", token(&app, it, None).await)).await;
        assert!(page.text.contains(">Iscriviti</button>"));
    }

    async fn a_link_sent_to_an_old_address_no_longer_acts_on_the_contact(app: TestApp) {
        let id = contact(&app, "ada@example.org", json!({})).await;
        let old = format!("/unsubscribe/{}", token(&app, id, None).await);
        let moved = app
            .call(Method::PATCH, &format!("/contacts/{id}"), Some(json!({"email": "ada@new.example"})))
            .await;
        assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
        let page = request(&app, Method::POST, &old, None, None).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        assert!(is_subscribed(&app, id).await, "the old address's link changed nothing");
        // A link made for the new address works.
        let new = format!("/unsubscribe/{}", token(&app, id, None).await);
        assert_eq!(request(&app, Method::POST, &new, None, None).await.status, StatusCode::OK);
        assert!(!is_subscribed(&app, id).await);
    }

    async fn sixty_requests_a_minute_per_source_then_a_429_page(app: TestApp) {
        let id = contact(&app, "ada@example.org", json!({})).await;
        let path = format!("/unsubscribe/{}", token(&app, id, None).await);
        let busy: SocketAddr = "203.0.113.7:40000".parse().unwrap();
        let calm: SocketAddr = "198.51.100.9:40000".parse().unwrap();
        // Stay inside one UTC minute: the window is aligned to it.
        let second = Timestamp::now().unix_seconds().rem_euclid(60);
        if second > 45 {
            tokio::time::sleep(std::time::Duration::from_secs((61 - second) as u64)).await;
        }
        let mut statuses = Vec::new();
        for i in 0..61 {
            // Invalid links count too: guessing is what the limit is for.
            let p = if i % 2 == 0 { path.clone() } else { "/manage/garbage".to_owned() };
            statuses.push(request(&app, Method::GET, &p, None, Some(busy)).await.status);
        }
        assert!(statuses[..60].iter().all(|s| *s != StatusCode::TOO_MANY_REQUESTS));
        let page = request(&app, Method::GET, &path, None, Some(busy)).await;
        assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
        assert_page_headers(&page);
        assert!(page.text.contains("Too many requests"));
        let retry: u32 = page.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry));
        assert_eq!(statuses[60], StatusCode::TOO_MANY_REQUESTS);
        // A POST with a forged token is refused; with a valid one it is always served (one-click
        // unsubscribes arrive from a few mailbox providers' addresses).
        let forged = request(&app, Method::POST, "/unsubscribe/garbage", None, Some(busy)).await;
        assert_eq!(forged.status, StatusCode::TOO_MANY_REQUESTS);
        let page = request(&app, Method::POST, &path, None, Some(busy)).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!is_subscribed(&app, id).await, "the valid one-click POST unsubscribed");
        assert_eq!(request(&app, Method::GET, &path, None, Some(calm)).await.status, StatusCode::OK);
        // The API keeps working for the project: the pages do not use its limit.
        assert_eq!(app.call(Method::GET, "/contacts", None).await.status, StatusCode::OK);
    }
}
