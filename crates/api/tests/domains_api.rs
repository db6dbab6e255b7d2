//! Black-box tests of `/domains`, in-process, over both store backends, with the
//! local identities or scripted fakes of the sending-identity port.

mod common;

use async_trait::async_trait;
use common::{Backend, TestApp};
use http::{Method, StatusCode};
use plunk_domain::sending_domain::Domain;
use plunk_domain::{EmailAddress, Timestamp};
use plunk_http_kit::Settings;
use plunk_messaging::identity::{
    DkimStatus, IdentityError, IdentityState, MailFromStatus, SendingIdentities,
};
use plunk_store::repo::domains::SenderRejection;
use plunk_store::Store;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

const MISSING_ID: &str = "0193a1f3-0000-7000-8000-000000000000";

/// A scripted provider: records every call; `create` hands out fresh tokens per call.
struct FakeIdentities {
    region: String,
    /// DKIM status `state` reports.
    dkim: Mutex<DkimStatus>,
    /// `create` answers `AlreadyExists`.
    already_exists: bool,
    /// `create` answers `OwnedElsewhere` (the identity exists without this deployment's tag).
    owned_elsewhere: bool,
    /// Before `create` answers, another project claims the name (a lost race).
    race: Mutex<Option<(Store, Uuid)>>,
    calls: Mutex<Vec<String>>,
    creates: Mutex<usize>,
}

impl FakeIdentities {
    fn new(region: &str) -> Arc<Self> {
        Arc::new(Self {
            region: region.into(),
            dkim: Mutex::new(DkimStatus::Pending),
            already_exists: false,
            owned_elsewhere: false,
            race: Mutex::new(None),
            calls: Mutex::new(Vec::new()),
            creates: Mutex::new(0),
        })
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn set_dkim(&self, status: DkimStatus) {
        *self.dkim.lock().unwrap() = status;
    }

    fn tokens(&self, domain: &str) -> Vec<String> {
        let generation = *self.creates.lock().unwrap();
        (1..=3)
            .map(|i| format!("g{generation}tok{i}{}", domain.replace('.', "")))
            .collect()
    }

    fn state_now(&self, domain: &str) -> IdentityState {
        let dkim = *self.dkim.lock().unwrap();
        IdentityState {
            dkim_tokens: self.tokens(domain),
            dkim,
            mail_from: if dkim == DkimStatus::Verified {
                MailFromStatus::Success
            } else {
                MailFromStatus::Pending
            },
            region: self.region.clone(),
        }
    }
}

#[async_trait]
impl SendingIdentities for FakeIdentities {
    async fn create(
        &self,
        domain: &str,
        mail_from_domain: &str,
    ) -> Result<IdentityState, IdentityError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("create {domain} {mail_from_domain}"));
        let race = self.race.lock().unwrap().take();
        if let Some((store, other)) = race {
            let winner = Domain::new(
                plunk_domain::id::new_id(),
                domain.into(),
                mail_from_domain.into(),
                vec![],
                self.region.clone(),
                Timestamp::now(),
            );
            store.domains().create(other, &winner).await.unwrap();
        }
        if self.owned_elsewhere {
            return Err(IdentityError::OwnedElsewhere);
        }
        if self.already_exists {
            return Err(IdentityError::AlreadyExists);
        }
        *self.creates.lock().unwrap() += 1;
        *self.dkim.lock().unwrap() = DkimStatus::Pending;
        Ok(self.state_now(domain))
    }

    async fn state(&self, domain: &str) -> Result<IdentityState, IdentityError> {
        self.calls.lock().unwrap().push(format!("state {domain}"));
        Ok(self.state_now(domain))
    }

    async fn delete(&self, domain: &str) -> Result<(), IdentityError> {
        self.calls.lock().unwrap().push(format!("delete {domain}"));
        Ok(())
    }
}

/// A provider that is down.
struct FailingIdentities;

#[async_trait]
impl SendingIdentities for FailingIdentities {
    async fn create(&self, _: &str, _: &str) -> Result<IdentityState, IdentityError> {
        Err(IdentityError::Provider("SES is down".into()))
    }
    async fn state(&self, _: &str) -> Result<IdentityState, IdentityError> {
        Err(IdentityError::Provider("SES is down".into()))
    }
    async fn delete(&self, _: &str) -> Result<(), IdentityError> {
        Err(IdentityError::Provider("SES is down".into()))
    }
}

fn with_identities(mut app: TestApp, identities: Arc<dyn SendingIdentities>) -> TestApp {
    app.state = app.state.clone().with_identities(identities);
    app
}

async fn create(app: &TestApp, name: &str) -> Value {
    let res = app
        .call(Method::POST, "/domains", Some(json!({ "domain": name })))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    res.data().clone()
}

async fn verify(app: &TestApp, id: &str) -> Value {
    let res = app
        .call(Method::POST, &format!("/domains/{id}/verify"), None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    res.data().clone()
}

fn assert_error(res: &common::TestResponse, status: u16, code: &str) {
    assert_eq!(res.status.as_u16(), status, "{}", res.body);
    assert_eq!(res.body["success"], json!(false));
    assert_eq!(res.code(), code, "{}", res.body);
    assert!(res.body["error"]["suggestion"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
}

fn is_timestamp(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|t| t.len() == 24 && t.ends_with('Z') && Timestamp::parse_rfc3339(t).is_some())
}

fn email(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

on_both_backends! {
    async fn a_domain_templates_send_from_cannot_be_deleted(app: TestApp) {
        let acme = create(&app, "acme.io").await["id"].as_str().unwrap().to_owned();
        verify(&app, &acme).await;
        let beta = create(&app, "beta.io").await["id"].as_str().unwrap().to_owned();
        verify(&app, &beta).await;
        let template = app
            .call(
                Method::POST,
                "/templates",
                Some(json!({"name": "Welcome", "subject": "Hi", "body": "<p>x</p>", "from": "hello@acme.io"})),
            )
            .await;
        assert_eq!(template.status, StatusCode::CREATED, "{}", template.body);
        let template_id = template.data()["id"].as_str().unwrap().to_owned();

        let refused = app.call(Method::DELETE, &format!("/domains/{acme}"), None).await;
        assert_error(&refused, 409, "DOMAIN_IN_USE");
        assert_eq!(
            refused.body["error"]["details"]["usedBy"],
            json!([{"type": "template", "id": template_id, "name": "Welcome"}])
        );
        // Still there and still verified.
        let still = app.call(Method::GET, &format!("/domains/{acme}"), None).await;
        assert_eq!(still.data()["verified"], json!(true));

        // The template moves to the other domain (and is renamed): the first is free, the
        // second is in use under the new name.
        let moved = app
            .call(
                Method::PATCH,
                &format!("/templates/{template_id}"),
                Some(json!({"from": "news@beta.io", "name": "Welcome v2"})),
            )
            .await;
        assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
        let refused = app.call(Method::DELETE, &format!("/domains/{beta}"), None).await;
        assert_eq!(refused.body["error"]["details"]["usedBy"][0]["name"], json!("Welcome v2"));
        let deleted = app.call(Method::DELETE, &format!("/domains/{acme}"), None).await;
        assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);

        // Once the template is deleted, so may the domain be.
        app.call(Method::DELETE, &format!("/templates/{template_id}"), None).await;
        let deleted = app.call(Method::DELETE, &format!("/domains/{beta}"), None).await;
        assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    }

    async fn the_spec_example_creates_a_pending_domain_with_its_records(app: TestApp) {
        let fake = FakeIdentities::new("eu-west-1");
        let app = with_identities(app, fake.clone());
        let res = app
            .call(Method::POST, "/domains", Some(json!({"domain": "Acme.io", "projectId": "ignored"})))
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        assert_eq!(res.body["success"], json!(true));
        let d = res.data();
        assert!(plunk_domain::id::parse_id(d["id"].as_str().unwrap()).is_some());
        assert_eq!(d["domain"], json!("acme.io"));
        assert_eq!(d["status"], json!("PENDING"));
        assert_eq!(d["verified"], json!(false));
        assert_eq!(d["mailFromDomain"], json!("mail.acme.io"));
        assert_eq!(d["mailFromStatus"], json!("PENDING"));
        assert_eq!(d["lastCheckedAt"], Value::Null);
        assert_eq!(d["verifiedAt"], Value::Null);
        assert!(is_timestamp(&d["createdAt"]) && d["createdAt"] == d["updatedAt"]);
        assert!(d.get("dkimTokens").is_none() && d.get("region").is_none());
        let mut expected: Vec<Value> = (1..=3)
            .map(|i| {
                let t = format!("g1tok{i}acmeio");
                json!({"type": "CNAME", "name": format!("{t}._domainkey.acme.io"),
                       "value": format!("{t}.dkim.amazonses.com"), "priority": null,
                       "purpose": "DKIM", "required": true})
            })
            .collect();
        expected.extend([
            json!({"type":"MX","name":"mail.acme.io","value":"feedback-smtp.eu-west-1.amazonses.com","priority":10,"purpose":"MAIL_FROM_MX","required":true}),
            json!({"type":"TXT","name":"mail.acme.io","value":"\"v=spf1 include:amazonses.com ~all\"","priority":null,"purpose":"MAIL_FROM_SPF","required":true}),
            json!({"type":"TXT","name":"_dmarc.acme.io","value":"\"v=DMARC1; p=none;\"","priority":null,"purpose":"DMARC","required":false}),
        ]);
        assert_eq!(d["records"], Value::Array(expected));
        assert_eq!(fake.calls(), ["create acme.io mail.acme.io"]);

        // GET /domains/:id returns the same domain with the same records.
        let id = d["id"].as_str().unwrap();
        let read = app.call(Method::GET, &format!("/domains/{id}"), None).await;
        assert_eq!(read.status, StatusCode::OK);
        assert_eq!(read.data(), d);
    }

    async fn verify_with_local_identities_marks_the_domain_verified(app: TestApp) {
        let d = create(&app, "acme.io").await;
        let id = d["id"].as_str().unwrap();
        let v = verify(&app, id).await;
        assert_eq!(v["status"], json!("VERIFIED"));
        assert_eq!(v["verified"], json!(true));
        assert_eq!(v["mailFromStatus"], json!("SUCCESS"));
        assert!(is_timestamp(&v["verifiedAt"]));
        assert!(is_timestamp(&v["lastCheckedAt"]));
        assert_eq!(v["createdAt"], d["createdAt"]);
        assert!(v["updatedAt"].as_str() >= d["updatedAt"].as_str());
        assert_eq!(v["records"].as_array().unwrap().len(), 6);

        // A later check keeps the first verifiedAt.
        let again = verify(&app, id).await;
        assert_eq!(again["verifiedAt"], v["verifiedAt"]);
        assert!(again["lastCheckedAt"].as_str() >= v["lastCheckedAt"].as_str());
        let read = app.call(Method::GET, &format!("/domains/{id}"), None).await;
        assert_eq!(read.data(), &again);
    }

    async fn a_domain_belongs_to_one_project_only(app: TestApp) {
        let fake = FakeIdentities::new("eu-west-1");
        let app = with_identities(app, fake.clone());
        create(&app, "acme.io").await;
        for name in ["acme.io", " ACME.IO. "] {
            let res = app.call(Method::POST, "/domains", Some(json!({ "domain": name }))).await;
            assert_error(&res, 409, "DOMAIN_ALREADY_EXISTS");
        }
        let (_, other_key) = app.other_project().await;
        let res = app
            .raw(Method::POST, "/domains", Some(&other_key),
                 Some(json!({"domain": "acme.io"}).to_string()),
                 &[("content-type", "application/json")])
            .await;
        assert_error(&res, 409, "DOMAIN_ALREADY_EXISTS");
        // The claim is checked before the provider is called.
        assert_eq!(fake.calls(), ["create acme.io mail.acme.io"]);
        let list = app
            .raw(Method::GET, "/domains", Some(&other_key), None, &[])
            .await;
        assert_eq!(list.data()["items"], json!([]));
    }

    async fn invalid_names_are_422_invalid_string_on_domain(app: TestApp) {
        let long = format!("{}.io", vec!["a".repeat(63); 4].join("."));
        let label64 = format!("{}.io", "a".repeat(64));
        for bad in [
            "", " ", "io", "acme", "a.", "localhost", "localhost.", "app.localhost",
            "192.168.1.1", "::1", "[::1]", "acme.123", "-acme.io", "acme-.io", "acme..io",
            "ac_me.io", "bücher.de", "*.acme.io", "user@acme.io", "https://acme.io", "acme.io..",
            long.as_str(), label64.as_str(),
        ] {
            let res = app.call(Method::POST, "/domains", Some(json!({ "domain": bad }))).await;
            assert_error(&res, 422, "VALIDATION_ERROR");
            assert_eq!(res.body["error"]["errors"].as_array().unwrap().len(), 1, "{bad:?}");
            let e = &res.body["error"]["errors"][0];
            assert_eq!((e["field"].as_str(), e["code"].as_str()), (Some("domain"), Some("invalid_string")), "{bad:?}");
        }
        for (body, code) in [
            (json!({}), "required"),
            (json!({"domain": null}), "required"),
            (json!({"domain": 5}), "invalid_type"),
            (json!({"domain": ["acme.io"]}), "invalid_type"),
        ] {
            let res = app.call(Method::POST, "/domains", Some(body)).await;
            assert_error(&res, 422, "VALIDATION_ERROR");
            assert_eq!(res.body["error"]["errors"][0]["field"], json!("domain"));
            assert_eq!(res.body["error"]["errors"][0]["code"], json!(code));
        }
        let list = app.call(Method::GET, "/domains", None).await;
        assert_eq!(list.data()["items"], json!([]));
    }

    async fn lists_page_newest_first_and_filter_by_verified(app: TestApp) {
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(create(&app, &format!("d{i}.example.com")).await["id"].as_str().unwrap().to_owned());
        }
        verify(&app, &ids[1]).await;
        verify(&app, &ids[3]).await;
        let newest_first: Vec<String> = ids.iter().rev().cloned().collect();

        let mut seen = Vec::new();
        let mut path = "/domains?limit=2".to_owned();
        loop {
            let res = app.call(Method::GET, &path, None).await;
            assert_eq!(res.status, StatusCode::OK, "{}", res.body);
            let data = res.data();
            let items = data["items"].as_array().unwrap();
            assert!(items.len() <= 2);
            for item in items {
                assert!(item.get("records").is_none(), "list items carry no records");
                assert!(item["mailFromDomain"].as_str().unwrap().starts_with("mail."));
                seen.push(item["id"].as_str().unwrap().to_owned());
            }
            assert!(data.get("total").is_none());
            match data["nextCursor"].as_str() {
                Some(c) => {
                    assert_eq!(data["hasMore"], json!(true));
                    path = format!("/domains?limit=2&cursor={c}");
                }
                None => {
                    assert_eq!(data["hasMore"], json!(false));
                    break;
                }
            }
        }
        assert_eq!(seen, newest_first);

        let ids_of = |res: &common::TestResponse| -> Vec<String> {
            res.data()["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
        };
        let verified = app.call(Method::GET, "/domains?verified=true", None).await;
        assert_eq!(ids_of(&verified), [ids[3].clone(), ids[1].clone()]);
        assert!(verified.data()["items"].as_array().unwrap().iter().all(|i| i["verified"] == json!(true)));
        let unverified = app.call(Method::GET, "/domains?verified=false", None).await;
        assert_eq!(ids_of(&unverified), [ids[4].clone(), ids[2].clone(), ids[0].clone()]);

        // Filtered paging, and cursors bound to the filter.
        let first = app.call(Method::GET, "/domains?verified=false&limit=2", None).await;
        assert_eq!(ids_of(&first), [ids[4].clone(), ids[2].clone()]);
        let cursor = first.data()["nextCursor"].as_str().unwrap().to_owned();
        let second = app.call(Method::GET, &format!("/domains?verified=false&limit=2&cursor={cursor}"), None).await;
        assert_eq!(ids_of(&second), [ids[0].clone()]);
        assert_eq!(second.data()["hasMore"], json!(false));
        let res = app.call(Method::GET, &format!("/domains?verified=true&cursor={cursor}"), None).await;
        assert_error(&res, 400, "INVALID_CURSOR");
        let res = app.call(Method::GET, &format!("/domains?cursor={cursor}"), None).await;
        assert_error(&res, 400, "INVALID_CURSOR");

        for bad in ["verified=yes", "verified=TRUE", "limit=0", "limit=x"] {
            let res = app.call(Method::GET, &format!("/domains?{bad}"), None).await;
            assert_error(&res, 422, "VALIDATION_ERROR");
        }
    }

    async fn delete_removes_the_domain_and_releases_its_name(app: TestApp) {
        let fake = FakeIdentities::new("eu-west-1");
        let app = with_identities(app, fake.clone());
        let d = create(&app, "acme.io").await;
        let id = d["id"].as_str().unwrap();
        let res = app.call(Method::DELETE, &format!("/domains/{id}"), None).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(res.data(), &json!({"id": id, "deleted": true}));
        assert_eq!(fake.calls(), ["create acme.io mail.acme.io", "delete acme.io"]);
        for (method, path) in [
            (Method::GET, format!("/domains/{id}")),
            (Method::DELETE, format!("/domains/{id}")),
            (Method::POST, format!("/domains/{id}/verify")),
        ] {
            let res = app.call(method, &path, None).await;
            assert_error(&res, 404, "DOMAIN_NOT_FOUND");
        }
        let list = app.call(Method::GET, "/domains", None).await;
        assert_eq!(list.data()["items"], json!([]));
        assert!(app.store.domains().claim("acme.io").await.unwrap().is_none());

        // The name is free again, for any project.
        let (_, other_key) = app.other_project().await;
        let res = app
            .raw(Method::POST, "/domains", Some(&other_key),
                 Some(json!({"domain": "acme.io"}).to_string()),
                 &[("content-type", "application/json")])
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    }

    async fn malformed_unknown_and_foreign_ids_are_404(app: TestApp) {
        let d = create(&app, "acme.io").await;
        let id = d["id"].as_str().unwrap();
        let (_, other_key) = app.other_project().await;
        for path in ["/domains/nope".to_owned(), format!("/domains/{MISSING_ID}"), format!("/domains/{}", id.replace('-', ""))] {
            for method in [Method::GET, Method::DELETE] {
                let res = app.call(method, &path, None).await;
                assert_error(&res, 404, "DOMAIN_NOT_FOUND");
            }
            let res = app.call(Method::POST, &format!("{path}/verify"), None).await;
            assert_error(&res, 404, "DOMAIN_NOT_FOUND");
        }
        for (method, path) in [
            (Method::GET, format!("/domains/{id}")),
            (Method::POST, format!("/domains/{id}/verify")),
            (Method::DELETE, format!("/domains/{id}")),
        ] {
            let res = app.raw(method, &path, Some(&other_key), None, &[]).await;
            assert_error(&res, 404, "DOMAIN_NOT_FOUND");
        }
        // Uppercase ids are accepted.
        let res = app.call(Method::GET, &format!("/domains/{}", id.to_uppercase()), None).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.data()["status"], json!("PENDING"), "other projects changed nothing");
    }

    async fn a_failing_provider_is_502_and_changes_nothing(app: TestApp) {
        let down: Arc<dyn SendingIdentities> = Arc::new(FailingIdentities);
        let healthy = app.state.identities.clone();
        let mut app = with_identities(app, down.clone());
        let res = app.call(Method::POST, "/domains", Some(json!({"domain": "acme.io"}))).await;
        assert_error(&res, 502, "EXTERNAL_SERVICE_ERROR");
        assert!(!res.body.to_string().contains("SES is down"), "the cause is not returned");
        let list = app.call(Method::GET, "/domains", None).await;
        assert_eq!(list.data()["items"], json!([]));
        assert!(app.store.domains().claim("acme.io").await.unwrap().is_none());

        app = with_identities(app, healthy);
        let d = create(&app, "acme.io").await;
        let id = d["id"].as_str().unwrap();
        app = with_identities(app, down);
        let res = app.call(Method::POST, &format!("/domains/{id}/verify"), None).await;
        assert_error(&res, 502, "EXTERNAL_SERVICE_ERROR");
        let res = app.call(Method::DELETE, &format!("/domains/{id}"), None).await;
        assert_error(&res, 502, "EXTERNAL_SERVICE_ERROR");
        let read = app.call(Method::GET, &format!("/domains/{id}"), None).await;
        assert_eq!(read.data(), &d, "nothing changed");
    }

    async fn the_sender_check_follows_verification_and_deletion(app: TestApp) {
        let project = app.project.id;
        let domains = app.store.domains();
        let sender = email("hello@Acme.io");
        assert_eq!(
            domains.check_sender(project, &sender).await.unwrap(),
            Err(("acme.io".to_owned(), SenderRejection::NotRegistered))
        );
        let d = create(&app, "acme.io").await;
        let id = d["id"].as_str().unwrap();
        assert_eq!(
            domains.check_sender(project, &sender).await.unwrap(),
            Err(("acme.io".to_owned(), SenderRejection::NotVerified))
        );
        verify(&app, id).await;
        assert_eq!(domains.check_sender(project, &sender).await.unwrap(), Ok(()));
        let claim = domains.claim("acme.io").await.unwrap().unwrap();
        assert_eq!((claim.project_id, claim.domain_id.to_string(), claim.verified), (project, id.to_owned(), true));
        // Exact match only, and only for the owning project.
        assert_eq!(
            domains.check_sender(project, &email("a@news.acme.io")).await.unwrap(),
            Err(("news.acme.io".to_owned(), SenderRejection::NotRegistered))
        );
        let (other, _) = app.other_project().await;
        assert_eq!(
            domains.check_sender(other.id, &sender).await.unwrap(),
            Err(("acme.io".to_owned(), SenderRejection::NotRegistered))
        );
        let res = app.call(Method::DELETE, &format!("/domains/{id}"), None).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(
            domains.check_sender(project, &sender).await.unwrap(),
            Err(("acme.io".to_owned(), SenderRejection::NotRegistered))
        );
    }

    async fn a_failed_identity_is_reinitiated_once(app: TestApp) {
        let fake = FakeIdentities::new("us-east-1");
        let app = with_identities(app, fake.clone());
        let d = create(&app, "acme.io").await;
        let id = d["id"].as_str().unwrap();
        assert_eq!(d["records"][0]["name"], json!("g1tok1acmeio._domainkey.acme.io"));

        fake.set_dkim(DkimStatus::Failed);
        let v = verify(&app, id).await;
        assert_eq!(
            fake.calls(),
            ["create acme.io mail.acme.io", "state acme.io", "delete acme.io", "create acme.io mail.acme.io"]
        );
        assert_eq!(v["status"], json!("PENDING"), "the new identity starts over");
        assert_eq!(v["records"][0]["name"], json!("g2tok1acmeio._domainkey.acme.io"), "new DKIM tokens");
        assert!(is_timestamp(&v["lastCheckedAt"]));

        // Failing again: reported, not re-initiated a second time.
        fake.set_dkim(DkimStatus::Failed);
        let v = verify(&app, id).await;
        assert_eq!((v["status"].clone(), v["verified"].clone()), (json!("FAILED"), json!(false)));
        assert_eq!(fake.calls().len(), 5);
        assert_eq!(v["records"][0]["name"], json!("g2tok1acmeio._domainkey.acme.io"));

        // Once verified, a later failure episode may be re-initiated again.
        fake.set_dkim(DkimStatus::Verified);
        assert_eq!(verify(&app, id).await["status"], json!("VERIFIED"));
        fake.set_dkim(DkimStatus::TemporaryFailure);
        let v = verify(&app, id).await;
        assert_eq!((v["status"].clone(), v["verified"].clone()), (json!("TEMPORARY_FAILURE"), json!(false)));
        assert!(is_timestamp(&v["verifiedAt"]), "verifiedAt is kept");
        fake.set_dkim(DkimStatus::Failed);
        verify(&app, id).await;
        assert_eq!(fake.calls().iter().filter(|c| c.starts_with("delete")).count(), 2);
    }

    async fn an_identity_that_already_exists_at_the_provider_is_adopted(app: TestApp) {
        let fake = Arc::new(FakeIdentities {
            already_exists: true,
            ..Arc::into_inner(FakeIdentities::new("eu-west-1")).unwrap()
        });
        let app = with_identities(app, fake.clone());
        let d = create(&app, "acme.io").await;
        assert_eq!(d["status"], json!("PENDING"));
        assert_eq!(d["records"].as_array().unwrap().len(), 6);
        assert_eq!(fake.calls(), ["create acme.io mail.acme.io", "state acme.io"]);
    }

    async fn an_identity_made_outside_this_deployment_is_409_and_never_touched(app: TestApp) {
        let fake = Arc::new(FakeIdentities {
            owned_elsewhere: true,
            ..Arc::into_inner(FakeIdentities::new("eu-west-1")).unwrap()
        });
        let app = with_identities(app, fake.clone());
        let res = app
            .call(Method::POST, "/domains", Some(json!({"domain": "operator.example"})))
            .await;
        assert_error(&res, 409, "DOMAIN_ALREADY_EXISTS");
        // Neither read for the tenant nor deleted: only the create that found it.
        assert_eq!(fake.calls(), ["create operator.example mail.operator.example"]);
        assert!(app.store.domains().claim("operator.example").await.unwrap().is_none());
        let list = app.call(Method::GET, "/domains", None).await;
        assert_eq!(list.data()["items"], json!([]));
    }

    async fn a_lost_race_ends_in_409_and_keeps_the_winners_identity(app: TestApp) {
        let fake = FakeIdentities::new("eu-west-1");
        let (other, _) = app.other_project().await;
        *fake.race.lock().unwrap() = Some((app.store.clone(), other.id));
        let app = with_identities(app, fake.clone());
        let res = app.call(Method::POST, "/domains", Some(json!({"domain": "acme.io"}))).await;
        assert_error(&res, 409, "DOMAIN_ALREADY_EXISTS");
        // The winner (same name, same provider identity) keeps it.
        assert_eq!(fake.calls(), ["create acme.io mail.acme.io"]);
        assert_eq!(app.store.domains().claim("acme.io").await.unwrap().unwrap().project_id, other.id);
        let list = app.call(Method::GET, "/domains", None).await;
        assert_eq!(list.data()["items"], json!([]));
    }
}

#[tokio::test]
async fn the_mail_from_label_comes_from_the_settings() {
    let settings = Settings {
        mail_from_label: "bounce".into(),
        ..common::test_settings()
    };
    let app = TestApp::with_settings(Backend::Sqlite, settings)
        .await
        .unwrap();
    let d = create(&app, "acme.io").await;
    assert_eq!(d["mailFromDomain"], json!("bounce.acme.io"));
    let mx = &d["records"][3];
    assert_eq!(
        (&mx["type"], &mx["name"], &mx["value"]),
        (
            &json!("MX"),
            &json!("bounce.acme.io"),
            &json!("feedback-smtp.local.amazonses.com")
        )
    );
    // A name that fits 253 characters but not with its MAIL FROM label is refused up front.
    let name = format!(
        "{}.{}.{}.{}.io",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(58)
    );
    assert_eq!(name.len(), 253);
    let res = app
        .call(Method::POST, "/domains", Some(json!({ "domain": name })))
        .await;
    assert_error(&res, 422, "VALIDATION_ERROR");
    assert_eq!(res.body["error"]["errors"][0]["field"], json!("domain"));
}

#[tokio::test]
async fn domains_need_a_secret_key() {
    let app = TestApp::new().await;
    let res = app
        .raw(Method::GET, "/domains", Some(&app.public), None, &[])
        .await;
    assert_error(&res, 403, "INVALID_KEY_TYPE");
    let res = app.raw(Method::GET, "/domains", None, None, &[]).await;
    assert_error(&res, 401, "MISSING_AUTH");
    let res = app.raw(Method::PUT, "/domains", None, None, &[]).await;
    assert_error(&res, 405, "METHOD_NOT_ALLOWED");
    let res = app
        .raw(
            Method::GET,
            "/domains/x/verify",
            Some(&app.secret),
            None,
            &[],
        )
        .await;
    assert_error(&res, 405, "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn the_openapi_document_lists_every_domains_operation() {
    let app = TestApp::new().await;
    let res = app.raw(Method::GET, "/openapi.json", None, None, &[]).await;
    assert_eq!(res.status, StatusCode::OK);
    let paths = &res.body["paths"];
    for (path, method) in [
        ("/domains", "get"),
        ("/domains", "post"),
        ("/domains/{id}", "get"),
        ("/domains/{id}", "delete"),
        ("/domains/{id}/verify", "post"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path}");
        assert!(paths[path][method]["responses"]["401"].is_object());
    }
    assert!(paths["/domains"]["post"]["responses"]["409"].is_object());
    assert!(paths["/domains"]["post"]["responses"]["502"].is_object());
    assert!(paths["/domains/{id}/verify"]["post"]["responses"]["502"].is_object());
    assert!(paths["/domains/{id}"]["delete"]["responses"]["409"].is_object());
    let schemas = &res.body["components"]["schemas"];
    for name in [
        "Domain",
        "DomainWithRecords",
        "DnsRecord",
        "DomainStatus",
        "MailFromStatus",
    ] {
        assert!(schemas[name].is_object(), "{name}");
    }
    assert_eq!(
        schemas["DomainStatus"]["enum"],
        json!(["PENDING", "VERIFIED", "FAILED", "TEMPORARY_FAILURE"])
    );
    assert!(schemas["DnsRecord"]["properties"]["type"].is_object());
}
