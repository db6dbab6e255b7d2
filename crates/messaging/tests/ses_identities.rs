//! SES v2 sending identities against moto (when `PLUNK_TEST_AWS_ENDPOINT` is set) and against a
//! fake SES endpoint with canned answers (always), for what moto cannot show.
//!
//! moto 5.2.5 gaps: no DKIM tokens; DKIM is `SUCCESS` at once (verified without DNS);
//! `LastKeyGenerationTimestamp` is an ISO string the SDK refuses (the adapter reads such answers
//! leniently); creating an existing identity succeeds instead of `AlreadyExistsException` (the
//! adapter reads the identity before creating it, so this does not matter);
//! `PutEmailIdentityMailFromAttributes` is missing (HTML 404, tolerated); no MAIL FROM status;
//! deleting an absent identity succeeds.

mod ses_support;

use plunk_messaging::identity::ses::SesIdentities;
use plunk_messaging::identity::{DkimStatus, IdentityError, MailFromStatus, SendingIdentities};
use ses_support::{client, fake_ses, moto_endpoint, region, unique_domain, Reply};

/// The deployment id the tests' adapters tag with.
const DEPLOYMENT: &str = "test-stack";

#[tokio::test]
async fn an_identity_is_created_read_and_deleted_at_moto() {
    let Some(endpoint) = moto_endpoint() else {
        println!("skipped: PLUNK_TEST_AWS_ENDPOINT not set");
        return;
    };
    let identities = SesIdentities::new(client(&endpoint), DEPLOYMENT);
    let domain = unique_domain();

    let created = identities
        .create(&domain, &format!("mail.{domain}"))
        .await
        .expect("created despite moto lacking the MAIL FROM call");
    assert_eq!(created.region, region());
    assert_eq!(created.mail_from, MailFromStatus::Pending);
    // moto gives no tokens; SES gives three.
    assert!(created.dkim_tokens.is_empty() || created.dkim_tokens.len() == 3);

    let state = identities.state(&domain).await.expect("state");
    // moto: SUCCESS → Verified at once; no MAIL FROM attributes → Pending.
    assert_eq!(state.dkim, DkimStatus::Verified);
    assert_eq!(state.mail_from, MailFromStatus::Pending);
    assert_eq!(state.region, region());

    identities.delete(&domain).await.expect("deleted");
    assert!(matches!(
        identities.state(&domain).await,
        Err(IdentityError::Provider(_))
    ));
    identities
        .delete(&domain)
        .await
        .expect("deleting an absent identity is not an error");
}

#[tokio::test]
async fn at_moto_an_identity_of_this_deployment_is_adoptable_and_anyone_elses_is_not_touched() {
    let Some(endpoint) = moto_endpoint() else {
        println!("skipped: PLUNK_TEST_AWS_ENDPOINT not set");
        return;
    };
    let identities = SesIdentities::new(client(&endpoint), DEPLOYMENT);
    let ours = unique_domain();
    identities.create(&ours, "mail.x").await.unwrap();
    assert!(matches!(
        identities.create(&ours, "mail.x").await,
        Err(IdentityError::AlreadyExists)
    ));
    identities.delete(&ours).await.unwrap();

    // The operator's own identity, made outside the service (no tag), and another stack's.
    let sdk = client(&endpoint);
    let operators = unique_domain();
    sdk.create_email_identity()
        .email_identity(&operators)
        .send()
        .await
        .ok(); // moto's answer may not parse; the identity is made either way
    let other_stack = unique_domain();
    SesIdentities::new(client(&endpoint), "another-stack")
        .create(&other_stack, "mail.x")
        .await
        .unwrap();
    for domain in [&operators, &other_stack] {
        assert!(
            matches!(
                identities.create(domain, "mail.x").await,
                Err(IdentityError::OwnedElsewhere)
            ),
            "{domain}"
        );
        // Still there, untouched.
        assert!(identities.state(domain).await.is_ok(), "{domain}");
    }
    // Another deployment sees this deployment's identity as someone else's.
    let ours = unique_domain();
    identities.create(&ours, "mail.x").await.unwrap();
    assert!(matches!(
        SesIdentities::new(client(&endpoint), "another-stack")
            .create(&ours, "mail.x")
            .await,
        Err(IdentityError::OwnedElsewhere)
    ));
    for domain in [&operators, &other_stack, &ours] {
        sdk.delete_email_identity()
            .email_identity(domain.as_str())
            .send()
            .await
            .unwrap();
    }
}

const CREATED: &str = r#"{"IdentityType":"DOMAIN","VerifiedForSendingStatus":false,
 "DkimAttributes":{"SigningEnabled":true,"Status":"PENDING","Tokens":["tok1","tok2","tok3"],
 "SigningAttributesOrigin":"AWS_SES","NextSigningKeyLength":"RSA_2048_BIT"}}"#;

#[tokio::test]
async fn create_asks_for_2048_bit_dkim_then_sets_mail_from_and_returns_the_tokens() {
    let (endpoint, seen) = fake_ses(|method, _| match method {
        "GET" => Reply::error(404, "NotFoundException"),
        "POST" => Reply::ok(CREATED),
        _ => Reply::ok("{}"),
    })
    .await;
    let identities = SesIdentities::new(client(&endpoint), DEPLOYMENT);

    let state = identities.create("acme.io", "mail.acme.io").await.unwrap();
    assert_eq!(state.dkim_tokens, ["tok1", "tok2", "tok3"]);
    assert_eq!(state.dkim, DkimStatus::Pending);
    assert_eq!(state.mail_from, MailFromStatus::Pending);
    assert_eq!(state.region, region());

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("GET", "/v2/email/identities/acme.io"),
        "read first: an existing identity is never re-created"
    );
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path.as_str()),
        ("POST", "/v2/email/identities")
    );
    let create: serde_json::Value = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!(create["EmailIdentity"], "acme.io");
    assert_eq!(
        create["DkimSigningAttributes"]["NextSigningKeyLength"],
        "RSA_2048_BIT"
    );
    assert_eq!(
        create["Tags"],
        serde_json::json!([{ "Key": "plunk:deployment", "Value": DEPLOYMENT }])
    );
    assert_eq!(
        (seen[2].method.as_str(), seen[2].path.as_str()),
        ("PUT", "/v2/email/identities/acme.io/mail-from")
    );
    let mail_from: serde_json::Value = serde_json::from_str(&seen[2].body).unwrap();
    assert_eq!(mail_from["MailFromDomain"], "mail.acme.io");
    assert_eq!(mail_from["BehaviorOnMxFailure"], "USE_DEFAULT_VALUE");
}

/// A GetEmailIdentity answer with these tags.
fn identity_with_tags(tags: &str) -> String {
    format!(
        r#"{{"IdentityType":"DOMAIN","DkimAttributes":{{"Status":"SUCCESS","Tokens":["a","b","c"]}},"Tags":{tags}}}"#
    )
}

#[tokio::test]
async fn an_existing_identity_is_adoptable_only_with_this_deployments_tag() {
    let cases = [
        (
            format!(r#"[{{"Key":"plunk:deployment","Value":"{DEPLOYMENT}"}}]"#),
            true,
        ),
        ("[]".to_owned(), false),
        (
            r#"[{"Key":"plunk:deployment","Value":"another-stack"}]"#.to_owned(),
            false,
        ),
        (
            r#"[{"Key":"owner","Value":"test-stack"}]"#.to_owned(),
            false,
        ),
    ];
    for (tags, adoptable) in cases {
        let body = identity_with_tags(&tags);
        let (endpoint, seen) = fake_ses(move |method, _| match method {
            "GET" => Reply::ok(&body),
            _ => Reply::error(500, "ShouldNotBeCalled"),
        })
        .await;
        let got = SesIdentities::new(client(&endpoint), DEPLOYMENT)
            .create("acme.io", "mail.acme.io")
            .await;
        match got {
            Err(IdentityError::AlreadyExists) => assert!(adoptable, "{tags}"),
            Err(IdentityError::OwnedElsewhere) => assert!(!adoptable, "{tags}"),
            other => panic!("{tags}: {other:?}"),
        }
        let seen = seen.lock().unwrap();
        assert!(
            seen.iter().all(|r| r.method == "GET"),
            "an existing identity is only read: {seen:?}"
        );
    }
}

#[tokio::test]
async fn an_identity_made_by_someone_else_between_the_read_and_the_create_is_not_adopted() {
    let reads = std::sync::atomic::AtomicUsize::new(0);
    let (endpoint, _) = fake_ses(move |method, _| match method {
        "GET" if reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 => {
            Reply::error(404, "NotFoundException")
        }
        "GET" => Reply::ok(&identity_with_tags("[]")),
        "POST" => Reply::error(400, "AlreadyExistsException"),
        _ => Reply::error(500, "ShouldNotBeCalled"),
    })
    .await;
    assert!(matches!(
        SesIdentities::new(client(&endpoint), DEPLOYMENT)
            .create("acme.io", "mail.acme.io")
            .await,
        Err(IdentityError::OwnedElsewhere)
    ));
}

#[tokio::test]
async fn a_failed_mail_from_call_removes_the_new_identity_and_reports_the_provider_error() {
    let (endpoint, seen) = fake_ses(|method, _| match method {
        "GET" => Reply::error(404, "NotFoundException"),
        "POST" => Reply::ok(CREATED),
        "PUT" => Reply::error(400, "BadRequestException"),
        _ => Reply::ok("{}"),
    })
    .await;
    let identities = SesIdentities::new(client(&endpoint), DEPLOYMENT);
    let err = identities
        .create("acme.io", "bad..mail")
        .await
        .expect_err("MAIL FROM refused");
    assert!(matches!(err, IdentityError::Provider(ref m) if m.contains("BadRequestException")));
    let seen = seen.lock().unwrap();
    let last = seen.last().unwrap();
    assert_eq!(
        (last.method.as_str(), last.path.as_str()),
        ("DELETE", "/v2/email/identities/acme.io")
    );
}

#[tokio::test]
async fn state_maps_dkim_and_mail_from_statuses() {
    let cases = [
        (
            "SUCCESS",
            "SUCCESS",
            DkimStatus::Verified,
            MailFromStatus::Success,
        ),
        (
            "PENDING",
            "PENDING",
            DkimStatus::Pending,
            MailFromStatus::Pending,
        ),
        (
            "NOT_STARTED",
            "PENDING",
            DkimStatus::Pending,
            MailFromStatus::Pending,
        ),
        (
            "FAILED",
            "FAILED",
            DkimStatus::Failed,
            MailFromStatus::Failed,
        ),
        (
            "TEMPORARY_FAILURE",
            "TEMPORARY_FAILURE",
            DkimStatus::TemporaryFailure,
            MailFromStatus::TemporaryFailure,
        ),
    ];
    for (dkim, mail_from, want_dkim, want_mail_from) in cases {
        let body = format!(
            r#"{{"IdentityType":"DOMAIN","DkimAttributes":{{"Status":"{dkim}","Tokens":["a","b","c"]}},
               "MailFromAttributes":{{"MailFromDomain":"mail.acme.io","MailFromDomainStatus":"{mail_from}",
               "BehaviorOnMxFailure":"USE_DEFAULT_VALUE"}}}}"#
        );
        let (endpoint, seen) = fake_ses(move |_, _| Reply::ok(&body)).await;
        let state = SesIdentities::new(client(&endpoint), DEPLOYMENT)
            .state("acme.io")
            .await
            .unwrap();
        assert_eq!(
            (state.dkim, state.mail_from),
            (want_dkim, want_mail_from),
            "{dkim}/{mail_from}"
        );
        assert_eq!(state.dkim_tokens, ["a", "b", "c"]);
        let seen = seen.lock().unwrap();
        assert_eq!(
            (seen[0].method.as_str(), seen[0].path.as_str()),
            ("GET", "/v2/email/identities/acme.io")
        );
    }
}

#[tokio::test]
async fn deleting_an_absent_identity_is_ok_but_other_failures_are_provider_errors() {
    let (endpoint, _) = fake_ses(|_, _| Reply::error(404, "NotFoundException")).await;
    SesIdentities::new(client(&endpoint), DEPLOYMENT)
        .delete("acme.io")
        .await
        .unwrap();
    let (endpoint, _) = fake_ses(|_, _| Reply::error(500, "InternalFailure")).await;
    assert!(matches!(
        SesIdentities::new(client(&endpoint), DEPLOYMENT)
            .delete("acme.io")
            .await,
        Err(IdentityError::Provider(_))
    ));
}
