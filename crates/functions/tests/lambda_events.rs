//! Feeds the API Gateway v2 event fixtures in `tests/events/` through the real HTTP Lambda
//! binaries, on the embedded store, through a fake Lambda Runtime API (`common`).

mod common;

use common::Function;
use plunk_store::Store;
use serde_json::Value;

/// An API Gateway fixture authenticated with `secret`.
fn fixture(name: &str, secret: &str) -> Value {
    common::fixture(name, &[("__SECRET_KEY__", secret)])
}

fn body(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().unwrap()).unwrap()
}

async fn project_store(dir: &std::path::Path) -> (Store, String) {
    let store = common::store_in(dir);
    let (_, secret) = common::project(&store).await;
    (store, secret)
}

#[tokio::test]
async fn the_contacts_binary_answers_api_gateway_v2_events() {
    let dir = tempfile::tempdir().unwrap();
    let (store, secret) = project_store(dir.path()).await;
    let mut function = Function::start(env!("CARGO_BIN_EXE_contacts"), dir.path()).await;

    let created = function
        .invoke(fixture("contacts-create.json", &secret))
        .await;
    assert_eq!(created["statusCode"], 201, "{created}");
    let headers = &created["headers"];
    assert_eq!(
        headers["x-request-id"], "K4uYbhHqIAMEVcQ=",
        "the gateway's request id is used"
    );
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");
    assert_eq!(headers["ratelimit-limit"], "1000");
    let contact = body(&created)["data"].clone();
    assert_eq!(contact["email"], "ada@example.org");
    assert_eq!(contact["data"]["plan"], "team");

    let listed = function
        .invoke(fixture("contacts-list.json", &secret))
        .await;
    assert_eq!(listed["statusCode"], 200, "{listed}");
    assert_eq!(body(&listed)["data"]["items"][0]["id"], contact["id"]);
    assert_eq!(body(&listed)["data"]["total"], 1);

    let missing = function
        .invoke(fixture("contacts-get-missing.json", &secret))
        .await;
    assert_eq!(missing["statusCode"], 404);
    assert_eq!(body(&missing)["error"]["code"], "CONTACT_NOT_FOUND");

    let anonymous = function
        .invoke(fixture("contacts-no-auth.json", &secret))
        .await;
    assert_eq!(anonymous["statusCode"], 401);
    assert_eq!(body(&anonymous)["error"]["code"], "MISSING_AUTH");

    // What the function wrote is in the shared store.
    let project = store.projects().list().await.unwrap()[0].clone();
    assert_eq!(store.contacts().counts(project.id).await.unwrap(), (1, 1));
}

#[tokio::test]
async fn the_workflows_binary_creates_a_workflow_with_its_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let (_, secret) = project_store(dir.path()).await;
    let mut function = Function::start(env!("CARGO_BIN_EXE_workflows"), dir.path()).await;
    let created = function
        .invoke(fixture("workflows-create.json", &secret))
        .await;
    assert_eq!(created["statusCode"], 201, "{created}");
    let workflow = body(&created)["data"].clone();
    assert_eq!(workflow["triggerConfig"]["eventName"], "signed_up");
    assert_eq!(workflow["steps"][0]["type"], "TRIGGER");
    // The function serves its own group only.
    let mut other = fixture("contacts-list.json", &secret);
    other["requestContext"]["http"]["path"] = "/contacts".into();
    let refused = function.invoke(other).await;
    assert_eq!(refused["statusCode"], 404, "{refused}");
}

#[tokio::test]
async fn the_system_binary_serves_health_and_no_contacts() {
    let dir = tempfile::tempdir().unwrap();
    let (_, secret) = project_store(dir.path()).await;
    let mut function = Function::start(env!("CARGO_BIN_EXE_system"), dir.path()).await;
    let mut event = fixture("contacts-no-auth.json", &secret);
    event["rawPath"] = "/health".into();
    event["requestContext"]["http"]["path"] = "/health".into();
    let health = function.invoke(event.clone()).await;
    assert_eq!(health["statusCode"], 200, "{health}");
    assert_eq!(body(&health)["data"]["status"], "ok");

    event["rawPath"] = "/contacts".into();
    event["requestContext"]["http"]["path"] = "/contacts".into();
    let other = function.invoke(event).await;
    assert_eq!(
        other["statusCode"], 404,
        "each function serves only its own group"
    );
}

#[tokio::test]
async fn the_pages_binary_serves_one_click_and_limits_by_the_gateways_source_ip() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::store_in(dir.path());
    let (project, _) = common::project(&store).await;
    let contact = store
        .contacts()
        .upsert(
            project.id,
            &plunk_domain::EmailAddress::parse("ada@example.org").unwrap(),
            Some(true),
            &plunk_domain::contact::DataChange::default(),
            plunk_domain::event::SubscriptionSource::Api,
        )
        .await
        .unwrap()
        .contact;
    let token = store
        .page_tokens()
        .await
        .unwrap()
        .sign(contact.id, None, contact.email.as_str());
    let mut function = Function::start(env!("CARGO_BIN_EXE_pages"), dir.path()).await;
    let event = common::fixture("pages-one-click.json", &[("__TOKEN__", &token)]);
    // The requests below share one UTC minute (the limit's window).
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if second > 50 {
        tokio::time::sleep(std::time::Duration::from_secs(61 - second)).await;
    }

    let response = function.invoke(event.clone()).await;
    assert_eq!(response["statusCode"], 200, "{response}");
    let headers = &response["headers"];
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-request-id"], "K4uYd2XyoAMEVdA=");
    assert!(response["body"]
        .as_str()
        .unwrap()
        .contains("You have been unsubscribed."));
    let after = store
        .contacts()
        .get(project.id, contact.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!after.subscribed);

    // The limit counts the gateway's sourceIp; X-Forwarded-For, which a client sets, is ignored.
    // Requests with a token that does not verify (guessing) are counted; the valid one-click
    // POST above was not.
    let mut forged_token = token.clone();
    let last = forged_token.pop().unwrap();
    forged_token.push(if last == 'A' { 'B' } else { 'A' });
    let forged = common::fixture("pages-one-click.json", &[("__TOKEN__", &forged_token)]);
    let mut statuses = Vec::new();
    for i in 0..61 {
        let mut e = forged.clone();
        e["headers"]["x-forwarded-for"] = format!("198.51.100.{i}").into();
        statuses.push(function.invoke(e).await["statusCode"].clone());
    }
    // The 61st counted request of the minute from one source is refused, whatever it claims to
    // forward.
    assert!(statuses[..60].iter().all(|s| *s != 429), "{statuses:?}");
    assert_eq!(statuses[60], 429);
    // A one-click POST with a valid token still acts: mailbox providers send many from one source.
    assert_eq!(function.invoke(event.clone()).await["statusCode"], 200);
    let mut other = forged.clone();
    other["requestContext"]["http"]["sourceIp"] = "198.51.100.200".into();
    assert_ne!(function.invoke(other).await["statusCode"], 429);
}
