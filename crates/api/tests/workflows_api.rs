//! `/workflows` (workflows.md §5) in process on both backends: workflows CRUD with the trigger
//! rules, the structural edits with the graph rules of §2, the template and event usage reports
//! fed by workflow steps, and tenant isolation.

mod common;

use common::{TestApp, TestResponse};
use http::{Method, StatusCode};
use plunk_store::keys;
use plunk_store::table::{Index, Query};
use serde_json::{json, Value};

fn error_fields(res: &TestResponse) -> Vec<(String, String)> {
    res.body["error"]["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap_or_default().to_owned(),
                        e["code"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn has_error(res: &TestResponse, field: &str, code: &str) -> bool {
    error_fields(res)
        .iter()
        .any(|(f, c)| f == field && c == code)
}

async fn workflow(app: &TestApp, name: &str, event: &str) -> (String, String) {
    let res = app
        .call(
            Method::POST,
            "/workflows",
            Some(json!({"name": name, "eventName": event})),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    let id = res.data()["id"].as_str().unwrap().to_owned();
    let trigger = res.data()["steps"][0]["id"].as_str().unwrap().to_owned();
    (id, trigger)
}

async fn step(app: &TestApp, workflow: &str, body: Value) -> TestResponse {
    app.call(
        Method::POST,
        &format!("/workflows/{workflow}/steps"),
        Some(body),
    )
    .await
}

async fn added_step(app: &TestApp, workflow: &str, body: Value) -> (String, Value) {
    let res = step(app, workflow, body).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    (
        res.data()["step"]["id"].as_str().unwrap().to_owned(),
        res.data()["transition"].clone(),
    )
}

async fn transition(app: &TestApp, workflow: &str, body: Value) -> TestResponse {
    app.call(
        Method::POST,
        &format!("/workflows/{workflow}/transitions"),
        Some(body),
    )
    .await
}

async fn template(app: &TestApp) -> String {
    let created = app
        .call(Method::POST, "/domains", Some(json!({"domain": "acme.io"})))
        .await;
    let domain = created.data()["id"].as_str().unwrap_or_default().to_owned();
    app.call(Method::POST, &format!("/domains/{domain}/verify"), None)
        .await;
    let res = app
        .call(
            Method::POST,
            "/templates",
            Some(
                json!({"name": "Welcome", "subject": "Hi", "body": "<p>Hi</p>",
                "from": "hello@acme.io", "type": "TRANSACTIONAL"}),
            ),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    res.data()["id"].as_str().unwrap().to_owned()
}

async fn track(app: &TestApp, event: &str, email: &str, data: Value) {
    let res = app
        .call(
            Method::POST,
            "/v1/track",
            Some(json!({"event": event, "email": email, "data": data})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
}

async fn executions(app: &TestApp, workflow: &str) -> Vec<Value> {
    let res = app
        .call(
            Method::GET,
            &format!("/workflows/{workflow}/executions"),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    res.data()["items"].as_array().unwrap().clone()
}

async fn execution(app: &TestApp, workflow: &str, id: &str) -> Value {
    let res = app
        .call(
            Method::GET,
            &format!("/workflows/{workflow}/executions/{id}"),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    res.data().clone()
}

async fn contact_data(app: &TestApp, email: &str) -> Value {
    let res = app
        .call(Method::GET, &format!("/contacts?search={email}"), None)
        .await;
    res.data()["items"][0]["data"].clone()
}

async fn link(app: &TestApp, workflow: &str, from: &str, to: &str, extra: Value) {
    let mut body = json!({"fromStepId": from, "toStepId": to});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let res = transition(app, workflow, body).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
}

/// WEBHOOK steps call a local receiver: an app whose settings allow private addresses.
#[tokio::test]
async fn a_webhook_step_calls_its_url_with_the_rendered_body_and_fails_the_execution_on_a_4xx() {
    let settings = plunk_http_kit::Settings {
        allow_private_webhooks: true,
        ..common::test_settings()
    };
    let app = TestApp::with_settings(common::Backend::Sqlite, settings)
        .await
        .unwrap();
    let receiver = common::webhook_receiver::receiver().await;
    let (id, _) = workflow(&app, "CRM", "ordered").await;
    added_step(&app, &id, json!({"type": "WEBHOOK", "name": "Tell the CRM", "position": at(0.0, 1.0),
        "config": {"url": receiver.url, "headers": {"X-Source": "plunk {{ event.id }}"},
            "body": {"order": "{{ event.id }}", "who": "{{ email }}", "n": 1}}, "autoConnect": true})).await;
    app.call(
        Method::PATCH,
        &format!("/workflows/{id}"),
        Some(json!({"enabled": true})),
    )
    .await;

    track(&app, "ordered", "ada@x.io", json!({"id": "o1"})).await;
    app.run_workflows().await;
    let seen = receiver.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body, json!({"order": "o1", "who": "ada@x.io", "n": 1}));
    assert_eq!(seen[0].headers["x-source"], "plunk o1");
    assert!(seen[0].headers.contains_key("idempotency-key"));
    let run = executions(&app, &id).await[0].clone();
    assert_eq!(run["status"], "COMPLETED", "{run}");
    let steps = execution(&app, &id, run["id"].as_str().unwrap()).await["steps"].clone();
    assert_eq!(steps[1]["output"]["status"], 200, "{steps}");

    // A 404 is final: the step and the execution fail, with the answer kept.
    *receiver.status.lock().unwrap() = 404;
    track(&app, "ordered", "bob@x.io", json!({"id": "o2"})).await;
    app.run_workflows().await;
    let failed = executions(&app, &id)
        .await
        .into_iter()
        .find(|e| e["context"]["id"] == "o2")
        .unwrap();
    assert_eq!(failed["status"], "FAILED", "{failed}");
    let steps = execution(&app, &id, failed["id"].as_str().unwrap()).await["steps"].clone();
    assert_eq!(
        (steps[1]["status"].as_str(), &steps[1]["output"]["status"]),
        (Some("FAILED"), &json!(404)),
        "{steps}"
    );
}

fn at(x: f64, y: f64) -> Value {
    json!({"x": x, "y": y})
}

on_both_backends! {
    async fn workflows_are_created_with_their_trigger_listed_changed_and_deleted(app: TestApp) {
        let res = app.call(Method::POST, "/workflows", Some(json!({"name": "Onboarding", "eventName": "  signed_up "}))).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        let w = res.data().clone();
        assert_eq!((w["enabled"].as_bool(), w["triggerType"].as_str(), w["allowReentry"].as_bool()), (Some(false), Some("EVENT"), Some(false)));
        assert_eq!(w["triggerConfig"], json!({"eventName": "signed_up"}));
        assert_eq!((w["stepCount"].as_u64(), w["activeExecutions"].as_u64()), (Some(1), Some(0)));
        assert_eq!(w["steps"].as_array().unwrap().len(), 1);
        assert_eq!(w["steps"][0]["type"], "TRIGGER");
        assert_eq!(w["transitions"], json!([]));
        let id = w["id"].as_str().unwrap().to_owned();

        // Bad bodies: every problem listed, nothing written.
        let res = app.call(Method::POST, "/workflows", Some(json!({"name": "", "eventName": " ", "enabled": "yes"}))).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
        assert!(has_error(&res, "name", "too_small"), "{}", res.body);
        assert!(has_error(&res, "eventName", "too_small"), "{}", res.body);
        assert!(has_error(&res, "enabled", "invalid_type"), "{}", res.body);
        let res = app.call(Method::PATCH, &format!("/workflows/{id}"), Some(json!({"triggerType": "SCHEDULE"}))).await;
        assert!(has_error(&res, "triggerType", "invalid_enum_value"), "{}", res.body);

        // Changes; a second workflow enabled from the start.
        let res = app.call(Method::PATCH, &format!("/workflows/{id}"), Some(json!({"name": "Welcome", "description": "New users", "allowReentry": true, "triggerConfig": {"eventName": "registered"}}))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!((res.data()["name"].as_str(), res.data()["description"].as_str()), (Some("Welcome"), Some("New users")));
        assert_eq!(res.data()["triggerConfig"], json!({"eventName": "registered"}));
        let res = app.call(Method::PATCH, &format!("/workflows/{id}"), Some(json!({"triggerType": "MANUAL", "triggerConfig": null, "description": null}))).await;
        assert_eq!((res.data()["triggerType"].as_str(), &res.data()["triggerConfig"], &res.data()["description"]), (Some("MANUAL"), &Value::Null, &Value::Null), "{}", res.body);
        let res = app.call(Method::PATCH, &format!("/workflows/{id}"), Some(json!({"triggerType": "EVENT"}))).await;
        assert!(has_error(&res, "triggerConfig", "required"), "{}", res.body);
        let res = app.call(Method::POST, "/workflows", Some(json!({"name": "Reminder", "eventName": "cart", "enabled": true}))).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        let enabled = res.data()["id"].as_str().unwrap().to_owned();

        let list = app.call(Method::GET, "/workflows", None).await;
        let ids: Vec<&str> = list.data()["items"].as_array().unwrap().iter().map(|w| w["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec![enabled.as_str(), id.as_str()], "newest first");
        assert!(list.data()["items"][0].get("steps").is_none(), "lists carry no graph");
        let first = app.call(Method::GET, "/workflows?limit=1", None).await;
        assert_eq!((first.data()["items"][0]["id"].as_str(), first.data()["hasMore"].as_bool()), (Some(enabled.as_str()), Some(true)));
        let cursor = first.data()["nextCursor"].as_str().unwrap().to_owned();
        let second = app.call(Method::GET, &format!("/workflows?limit=1&cursor={cursor}"), None).await;
        assert_eq!((second.data()["items"][0]["id"].as_str(), second.data()["hasMore"].as_bool()), (Some(id.as_str()), Some(false)));
        let res = app.call(Method::GET, &format!("/workflows?limit=1&enabled=true&cursor={cursor}"), None).await;
        assert_eq!(res.code(), "INVALID_CURSOR", "a cursor is bound to its filters");
        let res = app.raw(Method::GET, "/workflows", Some("sk_not_a_key"), None, &[]).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        let list = app.call(Method::GET, "/workflows?enabled=true", None).await;
        assert_eq!(list.data()["items"].as_array().unwrap().len(), 1);
        assert_eq!(list.data()["items"][0]["id"], enabled.as_str());
        let list = app.call(Method::GET, "/workflows?enabled=false&limit=1", None).await;
        assert_eq!((list.data()["items"][0]["id"].as_str(), list.data()["hasMore"].as_bool()), (Some(id.as_str()), Some(false)));
        let res = app.call(Method::PATCH, &format!("/workflows/{enabled}"), Some(json!({"enabled": false}))).await;
        assert_eq!(res.data()["enabled"], false);
        let list = app.call(Method::GET, "/workflows?enabled=true", None).await;
        assert_eq!(list.data()["items"], json!([]), "the enabled index follows the change");

        // Another project sees none of it.
        let (_, key) = app.other_project().await;
        for (method, path) in [(Method::GET, format!("/workflows/{id}")), (Method::DELETE, format!("/workflows/{id}"))] {
            let res = app.raw(method, &path, Some(&key), None, &[]).await;
            assert_eq!((res.status, res.code()), (StatusCode::NOT_FOUND, "WORKFLOW_NOT_FOUND"));
        }
        let res = app.raw(Method::POST, &format!("/workflows/{id}/steps"), Some(&key),
            Some(json!({"type": "EXIT", "name": "End", "position": at(0.0, 1.0)}).to_string()), &[("content-type", "application/json")]).await;
        assert_eq!(res.code(), "WORKFLOW_NOT_FOUND");
        let list = app.raw(Method::GET, "/workflows", Some(&key), None, &[]).await;
        assert_eq!(list.data()["items"], json!([]));

        let res = app.call(Method::DELETE, &format!("/workflows/{id}"), None).await;
        assert_eq!(res.data(), &json!({"id": id, "deleted": true}));
        let res = app.call(Method::GET, &format!("/workflows/{id}"), None).await;
        assert_eq!(res.code(), "WORKFLOW_NOT_FOUND");
        let res = app.call(Method::GET, "/workflows/not-an-id", None).await;
        assert_eq!(res.code(), "WORKFLOW_NOT_FOUND");
    }

    async fn steps_and_transitions_keep_the_graph_rules(app: TestApp) {
        let template = template(&app).await;
        let (id, trigger) = workflow(&app, "Onboarding", "signed_up").await;
        let (send, auto) = added_step(&app, &id, json!({"type": "SEND_EMAIL", "name": "Welcome", "position": at(0.0, 100.0), "config": {}, "autoConnect": true})).await;
        assert_eq!((auto["fromStepId"].as_str(), auto["toStepId"].as_str()), (Some(trigger.as_str()), Some(send.as_str())));
        assert_eq!((&auto["condition"], &auto["waitOutcome"]), (&Value::Null, &Value::Null));
        let (delay, _) = added_step(&app, &id, json!({"type": "DELAY", "name": "Wait", "position": at(0.0, 200.0), "config": {"amount": 2, "unit": "days"}, "autoConnect": true})).await;
        let (check, _) = added_step(&app, &id, json!({"type": "CONDITION", "name": "Pro?", "position": at(0.0, 300.0),
            "config": {"field": "data.plan", "operator": "equals", "value": "pro"}, "autoConnect": true})).await;
        let (exit, none) = added_step(&app, &id, json!({"type": "EXIT", "name": "Done", "position": at(0.0, 400.0), "config": {"reason": "pro"}, "autoConnect": true})).await;
        assert_eq!(none, Value::Null, "a CONDITION takes no plain transition");
        let (update, _) = added_step(&app, &id, json!({"type": "UPDATE_CONTACT", "name": "Tag", "position": at(200.0, 400.0), "config": {"updates": {"stage": "free"}}})).await;

        // Configs are checked by type.
        let res = step(&app, &id, json!({"type": "DELAY", "name": "Long", "position": at(0.0, 0.0), "config": {"amount": 400, "unit": "days"}})).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
        let res = step(&app, &id, json!({"type": "WEBHOOK", "name": "CRM", "position": at(0.0, 0.0), "config": {"url": "http://169.254.169.254/latest"}})).await;
        assert!(has_error(&res, "config.url", "forbidden_address"), "{}", res.body);
        let res = step(&app, &id, json!({"type": "TRIGGER", "name": "Another", "position": at(0.0, 0.0), "config": {}})).await;
        assert!(has_error(&res, "type", "custom"), "{}", res.body);
        let res = step(&app, &id, json!({"type": "CONDITION", "name": "Bad", "position": at(0.0, 0.0), "config": {"field": "data.plan", "operator": "resembles", "value": 1}})).await;
        assert!(error_fields(&res).iter().any(|(_, c)| c == "invalid_operator"), "{}", res.body);
        let res = step(&app, &id, json!({"type": "SEND_EMAIL", "name": "X", "position": at(0.0, 0.0), "templateId": uuid::Uuid::now_v7()})).await;
        assert_eq!((res.status, res.code()), (StatusCode::NOT_FOUND, "TEMPLATE_NOT_FOUND"));

        // Transitions by the from-step's type.
        let res = transition(&app, &id, json!({"fromStepId": check, "toStepId": exit, "condition": {"branch": "yes"}})).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        let yes = res.data()["id"].as_str().unwrap().to_owned();
        let res = transition(&app, &id, json!({"fromStepId": check, "toStepId": update, "condition": {"branch": "yes"}})).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "the yes branch is taken: {}", res.body);
        let res = transition(&app, &id, json!({"fromStepId": check, "toStepId": update, "condition": {"branch": "maybe"}})).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
        let res = transition(&app, &id, json!({"fromStepId": check, "toStepId": update, "condition": {"branch": "no"}})).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        let res = transition(&app, &id, json!({"fromStepId": update, "toStepId": send})).await;
        assert!(error_fields(&res).iter().any(|(_, c)| c == "graph_cycle"), "{}", res.body);
        let res = transition(&app, &id, json!({"fromStepId": update, "toStepId": update})).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "a self-loop: {}", res.body);
        let res = transition(&app, &id, json!({"fromStepId": update, "toStepId": trigger})).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "the trigger is never a target: {}", res.body);
        let res = transition(&app, &id, json!({"fromStepId": exit, "toStepId": update})).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "EXIT has no way on: {}", res.body);
        let res = transition(&app, &id, json!({"fromStepId": delay, "toStepId": update})).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "one plain transition per step: {}", res.body);
        let res = transition(&app, &id, json!({"fromStepId": uuid::Uuid::now_v7(), "toStepId": update})).await;
        assert_eq!((res.status, res.code()), (StatusCode::NOT_FOUND, "WORKFLOW_STEP_NOT_FOUND"));

        // A config change that would orphan a transition is refused.
        let res = app.call(Method::PATCH, &format!("/workflows/{id}/steps/{check}"), Some(json!({"config":
            {"mode": "multi", "field": "data.plan", "branches": [{"id": "pro", "name": "Pro", "operator": "equals", "value": "pro"}]}}))).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);

        // Enabling runs the full check: the SEND_EMAIL step has no template yet.
        let res = app.call(Method::PATCH, &format!("/workflows/{id}"), Some(json!({"enabled": true}))).await;
        assert!(has_error(&res, "steps[1].templateId", "required"), "{}", res.body);
        let res = app.call(Method::PATCH, &format!("/workflows/{id}/steps/{send}"), Some(json!({"templateId": template, "name": "Welcome mail"}))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!((res.data()["templateId"].as_str(), res.data()["name"].as_str()), (Some(template.as_str()), Some("Welcome mail")));
        let res = app.call(Method::PATCH, &format!("/workflows/{id}"), Some(json!({"enabled": true}))).await;
        assert_eq!((res.status, res.data()["enabled"].as_bool()), (StatusCode::OK, Some(true)), "{}", res.body);

        // insert-step keeps the condition on the first half.
        let res = app.call(Method::POST, &format!("/workflows/{id}/transitions/{yes}/insert-step"),
            Some(json!({"type": "DELAY", "name": "Pause", "config": {"amount": 1, "unit": "hours"}}))).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        let pause = res.data()["step"]["id"].as_str().unwrap().to_owned();
        let halves = res.data()["transitions"].as_array().unwrap().clone();
        assert_eq!((halves[0]["fromStepId"].as_str(), halves[0]["toStepId"].as_str(), &halves[0]["condition"]), (Some(check.as_str()), Some(pause.as_str()), &json!({"branch": "yes"})));
        assert_eq!((halves[1]["fromStepId"].as_str(), halves[1]["toStepId"].as_str()), (Some(pause.as_str()), Some(exit.as_str())));

        // Splicing it out again reconnects its neighbours with the condition.
        let res = app.call(Method::DELETE, &format!("/workflows/{id}/steps/{pause}?splice=true"), None).await;
        assert_eq!(res.data(), &json!({"id": pause, "deleted": true}), "{}", res.body);
        let graph = app.call(Method::GET, &format!("/workflows/{id}"), None).await;
        let to_exit: Vec<&Value> = graph.data()["transitions"].as_array().unwrap().iter().filter(|t| t["toStepId"] == exit.as_str()).collect();
        assert_eq!(to_exit.len(), 1);
        assert_eq!((to_exit[0]["fromStepId"].as_str(), &to_exit[0]["condition"]), (Some(check.as_str()), &json!({"branch": "yes"})));
        assert_eq!(graph.data()["stepCount"], 6);
        let res = app.call(Method::DELETE, &format!("/workflows/{id}/steps/{check}?splice=true"), None).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "a CONDITION cannot be spliced: {}", res.body);
        let res = app.call(Method::DELETE, &format!("/workflows/{id}/steps/{trigger}"), None).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
        let res = app.call(Method::DELETE, &format!("/workflows/{id}/steps/{}", uuid::Uuid::now_v7()), None).await;
        assert_eq!(res.code(), "WORKFLOW_STEP_NOT_FOUND");
        let res = app.call(Method::DELETE, &format!("/workflows/{id}/transitions/{}", uuid::Uuid::now_v7()), None).await;
        assert_eq!(res.code(), "WORKFLOW_TRANSITION_NOT_FOUND");

        // Deleting a step takes its transitions with it.
        let res = app.call(Method::DELETE, &format!("/workflows/{id}/steps/{delay}"), None).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        let graph = app.call(Method::GET, &format!("/workflows/{id}"), None).await;
        assert!(graph.data()["transitions"].as_array().unwrap().iter().all(|t| t["fromStepId"] != delay.as_str() && t["toStepId"] != delay.as_str()));
        let res = app.call(Method::DELETE, &format!("/workflows/{id}/transitions/{yes}"), None).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "replaced by the splice: {}", res.body);
    }

    async fn steps_that_send_a_template_hold_it_and_workflows_show_in_event_usage(app: TestApp) {
        let template = template(&app).await;
        let (id, _) = workflow(&app, "Onboarding", "signed_up").await;
        let (send, _) = added_step(&app, &id, json!({"type": "SEND_EMAIL", "name": "Welcome", "position": at(0.0, 1.0), "templateId": template, "autoConnect": true})).await;
        let (wait, _) = added_step(&app, &id, json!({"type": "WAIT_FOR_EVENT", "name": "Buy", "position": at(0.0, 2.0), "config": {"eventName": "purchase", "timeout": 3600}, "autoConnect": true})).await;

        let usage = app.call(Method::GET, &format!("/templates/{template}/usage"), None).await;
        assert_eq!(usage.data(), &json!({"workflows": [{"id": id, "name": "Onboarding", "stepIds": [send]}], "canDelete": false}));
        let res = app.call(Method::DELETE, &format!("/templates/{template}"), None).await;
        assert_eq!((res.status, res.code()), (StatusCode::CONFLICT, "TEMPLATE_IN_USE"));
        assert_eq!(res.body["error"]["details"]["usedBy"], json!([{"workflowId": id, "workflowName": "Onboarding", "stepIds": [send]}]));

        // A renamed workflow shows its new name.
        app.call(Method::PATCH, &format!("/workflows/{id}"), Some(json!({"name": "Welcome series"}))).await;
        let usage = app.call(Method::GET, &format!("/templates/{template}/usage"), None).await;
        assert_eq!(usage.data()["workflows"][0]["name"], "Welcome series");

        for (event, used) in [("signed_up", true), ("purchase", true), ("other", false)] {
            let usage = app.call(Method::GET, &format!("/events/{event}/usage"), None).await;
            let expected = if used { json!([{"id": id, "name": "Welcome series"}]) } else { json!([]) };
            assert_eq!(usage.data()["usedInWorkflows"], expected, "{event}");
        }
        let res = app.call(Method::DELETE, &format!("/workflows/{id}/steps/{wait}"), None).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        let usage = app.call(Method::GET, "/events/purchase/usage", None).await;
        assert_eq!(usage.data()["usedInWorkflows"], json!([]));

        // The step leaves the template: it can go.
        let res = app.call(Method::PATCH, &format!("/workflows/{id}/steps/{send}"), Some(json!({"templateId": null}))).await;
        assert_eq!(res.data()["templateId"], Value::Null, "{}", res.body);
        let usage = app.call(Method::GET, &format!("/templates/{template}/usage"), None).await;
        assert_eq!(usage.data(), &json!({"workflows": [], "canDelete": true}));
        let res = app.call(Method::DELETE, &format!("/templates/{template}"), None).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    }

    async fn an_event_runs_its_workflow_step_by_step_once_per_contact(app: TestApp) {
        let template = template(&app).await;
        let (id, _) = workflow(&app, "Welcome", "signed_up").await;
        let (send, _) = added_step(&app, &id, json!({"type": "SEND_EMAIL", "name": "Hello", "position": at(0.0, 1.0), "templateId": template, "autoConnect": true})).await;
        let (delay, _) = added_step(&app, &id, json!({"type": "DELAY", "name": "A minute", "position": at(0.0, 2.0), "config": {"amount": 1, "unit": "minutes"}, "autoConnect": true})).await;
        let (check, _) = added_step(&app, &id, json!({"type": "CONDITION", "name": "Pro?", "position": at(0.0, 3.0),
            "config": {"field": "event.plan", "operator": "equals", "value": "pro"}, "autoConnect": true})).await;
        let (exit, _) = added_step(&app, &id, json!({"type": "EXIT", "name": "Pro", "position": at(0.0, 4.0), "config": {"reason": "pro plan"}})).await;
        let (tag, _) = added_step(&app, &id, json!({"type": "UPDATE_CONTACT", "name": "Tag", "position": at(1.0, 4.0), "config": {"updates": {"stage": "free"}, "subscriptionAction": "unsubscribe"}})).await;
        link(&app, &id, &check, &exit, json!({"condition": {"branch": "yes"}})).await;
        link(&app, &id, &check, &tag, json!({"condition": {"branch": "no"}})).await;

        // Disabled: events start nothing.
        track(&app, "signed_up", "early@x.io", json!({"plan": "free"})).await;
        app.run_workflows().await;
        assert!(executions(&app, &id).await.is_empty());
        let res = app.call(Method::PATCH, &format!("/workflows/{id}"), Some(json!({"enabled": true}))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);

        track(&app, "signed_up", "ada@x.io", json!({"plan": "free"})).await;
        app.run_workflows().await;
        let list = executions(&app, &id).await;
        assert_eq!(list.len(), 1, "{list:?}");
        let run = list[0]["id"].as_str().unwrap().to_owned();
        let e = execution(&app, &id, &run).await;
        assert_eq!((e["status"].as_str(), e["currentStepId"].as_str()), (Some("WAITING"), Some(delay.as_str())), "{e}");
        assert_eq!(e["context"], json!({"plan": "free"}));
        let steps = e["steps"].as_array().unwrap();
        let kinds: Vec<(&str, &str)> = steps.iter().map(|s| (s["type"].as_str().unwrap(), s["status"].as_str().unwrap())).collect();
        assert_eq!(kinds, vec![("TRIGGER", "COMPLETED"), ("SEND_EMAIL", "COMPLETED"), ("DELAY", "SCHEDULED")]);
        let email = steps[1]["output"]["emailId"].as_str().unwrap().to_owned();
        let record = app.call(Method::GET, &format!("/emails/{email}"), None).await;
        assert_eq!(record.status, StatusCode::OK, "{}", record.body);
        assert_eq!((record.data()["sourceType"].as_str(), record.data()["workflowId"].as_str(), record.data()["workflowExecutionId"].as_str()),
            (Some("WORKFLOW"), Some(id.as_str()), Some(run.as_str())), "{}", record.body);
        assert_eq!(steps[1]["stepId"], send.as_str());

        // While it waits the graph is locked, and its trigger is in use.
        let res = step(&app, &id, json!({"type": "EXIT", "name": "More", "position": at(0.0, 9.0)})).await;
        assert_eq!((res.status, res.code()), (StatusCode::CONFLICT, "WORKFLOW_LOCKED"));
        assert_eq!(res.body["error"]["details"]["reason"], "ACTIVE_EXECUTIONS");
        let w = app.call(Method::GET, &format!("/workflows/{id}"), None).await;
        assert_eq!(w.data()["activeExecutions"], 1);
        let res = app.call(Method::PATCH, &format!("/workflows/{id}"), Some(json!({"triggerConfig": {"eventName": "registered"}}))).await;
        assert_eq!((res.status, res.code()), (StatusCode::CONFLICT, "WORKFLOW_LOCKED"));

        // Nothing moves before the minute is up, however often it is told to.
        app.run_workflows().await;
        assert_eq!(execution(&app, &id, &run).await["status"], "WAITING");
        // The minute passes (counted to the next whole minute): the timer fires, the condition
        // routes "no", the contact is tagged.
        app.run_workflows_at(125_000).await;
        let e = execution(&app, &id, &run).await;
        assert_eq!(e["status"], "COMPLETED", "{e}");
        let kinds: Vec<&str> = e["steps"].as_array().unwrap().iter().map(|s| s["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, vec!["TRIGGER", "SEND_EMAIL", "DELAY", "CONDITION", "UPDATE_CONTACT"]);
        assert_eq!(e["steps"][3]["output"], json!({"branch": "no"}));
        assert_eq!(contact_data(&app, "ada@x.io").await["stage"], "free");
        let contact = app.call(Method::GET, "/contacts?search=ada@x.io", None).await.data()["items"][0].clone();
        assert_eq!(contact["subscribed"], false, "{contact}");
        let events = app.call(Method::GET, &format!("/contacts/{}/events", contact["id"].as_str().unwrap()), None).await;
        let unsubscribed = events.data()["items"].as_array().unwrap().iter().find(|e| e["name"] == "contact.unsubscribed").cloned();
        assert_eq!(unsubscribed.map(|e| e["data"]["source"].clone()), Some(json!("workflow")), "{}", events.body);
        let w = app.call(Method::GET, &format!("/workflows/{id}"), None).await;
        assert_eq!(w.data()["activeExecutions"], 0);

        // No re-entry: a second signed_up starts nothing; the same event twice starts one.
        track(&app, "signed_up", "ada@x.io", json!({"plan": "pro"})).await;
        app.run_workflows().await;
        assert_eq!(executions(&app, &id).await.len(), 1);

        // The other branch ends at EXIT with its reason.
        // (Later clocks for Bob: the timers of minutes already worked are not read again.)
        track(&app, "signed_up", "bob@x.io", json!({"plan": "pro"})).await;
        app.run_workflows_at(200_000).await;
        app.run_workflows_at(400_000).await;
        let bob = executions(&app, &id).await.into_iter().find(|e| e["id"] != run.as_str()).unwrap();
        assert_eq!((bob["status"].as_str(), bob["exitReason"].as_str()), (Some("EXITED"), Some("pro plan")), "{bob}");
        let list = app.call(Method::GET, &format!("/workflows/{id}/executions?status=EXITED"), None).await;
        assert_eq!(list.data()["items"].as_array().unwrap().len(), 1);
        let ada = app.call(Method::GET, "/contacts?search=ada@x.io", None).await.data()["items"][0]["id"].as_str().unwrap().to_owned();
        let list = app.call(Method::GET, &format!("/workflows/{id}/executions?contactId={ada}"), None).await;
        assert_eq!(list.data()["items"][0]["id"], run.as_str());

        // One email per run, whatever was redelivered.
        let emails = app.call(Method::GET, "/emails", None).await;
        let workflow_mail = emails.data()["items"].as_array().unwrap().iter().filter(|e| e["sourceType"] == "WORKFLOW").count();
        assert_eq!(workflow_mail, 2);
    }

    async fn a_wait_moves_on_with_its_event_or_takes_the_timeout_route(app: TestApp) {
        let (id, _) = workflow(&app, "Checkout", "started").await;
        let (wait, _) = added_step(&app, &id, json!({"type": "WAIT_FOR_EVENT", "name": "Paid?", "position": at(0.0, 1.0),
            "config": {"eventName": "paid", "timeout": 3600}, "autoConnect": true})).await;
        let (tag, _) = added_step(&app, &id, json!({"type": "UPDATE_CONTACT", "name": "Paid", "position": at(0.0, 2.0), "config": {"updates": {"paid": true}}})).await;
        let (exit, _) = added_step(&app, &id, json!({"type": "EXIT", "name": "Gave up", "position": at(1.0, 2.0), "config": {"reason": "timeout"}})).await;
        link(&app, &id, &wait, &tag, json!({"waitOutcome": "EVENT"})).await;
        link(&app, &id, &wait, &exit, json!({"waitOutcome": "TIMEOUT"})).await;
        app.call(Method::PATCH, &format!("/workflows/{id}"), Some(json!({"enabled": true}))).await;

        // An event from before the wait does not count; one after it does.
        track(&app, "paid", "ada@x.io", json!({"amount": 1})).await;
        track(&app, "started", "ada@x.io", json!({"cart": "c1"})).await;
        track(&app, "started", "bob@x.io", json!({"cart": "c2"})).await;
        app.run_workflows().await;
        let list = executions(&app, &id).await;
        assert_eq!(list.len(), 2);
        assert!(list.iter().all(|e| e["status"] == "WAITING"), "{list:?}");
        track(&app, "paid", "ada@x.io", json!({"amount": 5})).await;
        app.run_workflows().await;
        let list = executions(&app, &id).await;
        let ada = list.iter().find(|e| e["context"]["cart"] == "c1").unwrap();
        assert_eq!(ada["status"], "COMPLETED", "{ada}");
        assert_eq!(ada["context"], json!({"cart": "c1", "amount": 5}));
        assert_eq!(contact_data(&app, "ada@x.io").await["paid"], true);
        let steps = execution(&app, &id, ada["id"].as_str().unwrap()).await["steps"].clone();
        assert_eq!(steps[1]["output"], json!({"outcome": "EVENT"}));

        // Bob's hour runs out.
        let bob = list.iter().find(|e| e["context"]["cart"] == "c2").unwrap()["id"].as_str().unwrap().to_owned();
        app.run_workflows_at(30 * 60_000).await;
        assert_eq!(execution(&app, &id, &bob).await["status"], "WAITING");
        app.run_workflows_at(62 * 60_000).await;
        let e = execution(&app, &id, &bob).await;
        assert_eq!((e["status"].as_str(), e["exitReason"].as_str()), (Some("EXITED"), Some("timeout")), "{e}");

        // Cancel: a waiting execution ends and its wait is gone; a second cancel is refused.
        track(&app, "started", "carol@x.io", json!({})).await;
        app.run_workflows().await;
        let carol = executions(&app, &id).await.into_iter().find(|e| e["status"] == "WAITING").unwrap()["id"].as_str().unwrap().to_owned();
        let res = app.call(Method::POST, &format!("/workflows/{id}/executions/{carol}/cancel"), None).await;
        assert_eq!((res.status, res.data()["status"].as_str()), (StatusCode::OK, Some("CANCELLED")), "{}", res.body);
        let res = app.call(Method::POST, &format!("/workflows/{id}/executions/{carol}/cancel"), None).await;
        assert_eq!((res.status, res.code()), (StatusCode::CONFLICT, "EXECUTION_NOT_ACTIVE"));
        track(&app, "paid", "carol@x.io", json!({})).await;
        app.run_workflows().await;
        assert_eq!(execution(&app, &id, &carol).await["status"], "CANCELLED");

        // A deleted contact's wait ends with its erasure (no event of it can come).
        track(&app, "started", "gus@x.io", json!({"cart": "c5"})).await;
        app.run_workflows().await;
        let gus = executions(&app, &id).await.into_iter().find(|e| e["context"]["cart"] == "c5").unwrap();
        assert_eq!(gus["status"], "WAITING");
        let res = app.call(Method::DELETE, &format!("/contacts/{}", gus["contactId"].as_str().unwrap()), None).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        let now_ms = plunk_domain::Timestamp::now().unix_millis();
        app.as_function("scheduler").contact_erasure().work(now_ms, 10_000).await.unwrap();
        let e = execution(&app, &id, gus["id"].as_str().unwrap()).await;
        assert_eq!((e["status"].as_str(), e["exitReason"].as_str()), (Some("CANCELLED"), Some("CONTACT_DELETED")), "{e}");

        // Manual starts: the re-entry rule, unknown contacts, cancel-all.
        let dave = app.call(Method::POST, "/contacts", Some(json!({"email": "dave@x.io"}))).await.data()["id"].as_str().unwrap().to_owned();
        let res = app.call(Method::POST, &format!("/workflows/{id}/executions"), Some(json!({"contactId": dave, "context": {"cart": "c4"}}))).await;
        assert_eq!((res.status, res.data()["status"].as_str()), (StatusCode::CREATED, Some("RUNNING")), "{}", res.body);
        let res = app.call(Method::POST, &format!("/workflows/{id}/executions"), Some(json!({"contactId": dave}))).await;
        assert_eq!(res.code(), "WORKFLOW_REENTRY_NOT_ALLOWED");
        let res = app.call(Method::POST, &format!("/workflows/{id}/executions"), Some(json!({"contactId": uuid::Uuid::now_v7()}))).await;
        assert_eq!(res.code(), "CONTACT_NOT_FOUND");
        app.run_workflows().await;
        let res = app.call(Method::POST, &format!("/workflows/{id}/executions/cancel-all"), None).await;
        assert_eq!(res.data(), &json!({"cancelled": 1}), "{}", res.body);
        let res = app.call(Method::PATCH, &format!("/workflows/{id}"), Some(json!({"enabled": false}))).await;
        assert_eq!(res.status, StatusCode::OK);
        let res = app.call(Method::POST, &format!("/workflows/{id}/executions"), Some(json!({"contactId": dave}))).await;
        assert_eq!(res.code(), "WORKFLOW_DISABLED");
        let res = app.call(Method::GET, &format!("/workflows/{id}/executions/{}", uuid::Uuid::now_v7()), None).await;
        assert_eq!(res.code(), "EXECUTION_NOT_FOUND");
    }

    async fn an_event_that_starts_many_workflows_is_handed_to_the_workflow_worker(app: TestApp) {
        let many = plunk_worker::workflows::start::INLINE_STARTS + 1;
        let mut ids = Vec::new();
        for i in 0..many {
            let (id, _) = workflow(&app, &format!("Fan {i}"), "fan").await;
            added_step(&app, &id, json!({"type": "EXIT", "name": "Done", "position": at(0.0, 1.0), "config": {"reason": "done"}, "autoConnect": true})).await;
            app.call(Method::PATCH, &format!("/workflows/{id}"), Some(json!({"enabled": true}))).await;
            ids.push(id);
        }
        track(&app, "fan", "fan@x.io", json!({"n": 1})).await;
        // The dispatcher starts none itself: it queues one message for the event.
        app.dispatch_events().await;
        for id in &ids {
            assert!(executions(&app, id).await.is_empty());
        }
        let bodies = app.workflow_messages.bodies();
        assert_eq!(bodies.len(), 1, "{bodies:?}");
        assert!(bodies[0].contains("startEvent"), "{}", bodies[0]);
        app.run_workflows().await;
        for id in &ids {
            let list = executions(&app, id).await;
            assert_eq!(list.len(), 1, "{id}");
            assert_eq!((list[0]["status"].as_str(), &list[0]["context"]), (Some("EXITED"), &json!({"n": 1})));
        }
        // Worked twice (a redelivery), the message starts nothing more.
        let again = plunk_worker::workflows::start::StartJob {
            project: app.project.id,
            start_event: serde_json::from_str::<plunk_worker::workflows::start::StartJob>(&bodies[0]).unwrap().start_event,
        };
        app.engine().work(&again.body()).await.unwrap();
        app.run_workflows().await;
        for id in &ids {
            assert_eq!(executions(&app, id).await.len(), 1);
        }
    }

    async fn deleting_a_workflow_purges_its_ended_executions_in_the_background(app: TestApp) {
        let (id, _) = workflow(&app, "Tagger", "joined").await;
        added_step(&app, &id, json!({"type": "UPDATE_CONTACT", "name": "Tag", "position": at(0.0, 1.0), "config": {"updates": {"joined": true}}, "autoConnect": true})).await;
        app.call(Method::PATCH, &format!("/workflows/{id}"), Some(json!({"enabled": true}))).await;
        for who in ["a", "b", "c"] {
            track(&app, "joined", &format!("{who}@x.io"), json!({})).await;
        }
        app.run_workflows().await;
        let ended = executions(&app, &id).await;
        assert_eq!(ended.len(), 3);
        assert!(ended.iter().all(|e| e["status"] == "COMPLETED"), "{ended:?}");
        let workflow: uuid::Uuid = id.parse().unwrap();
        let project = app.project.id;
        let stored = |partition: String| {
            let table = app.store.table().clone();
            async move { table.query(Query::new(Index::Primary, partition)).await.unwrap().items.len() }
        };
        let executions_partition = keys::workflow_executions_partition(project, workflow);
        let steps_of: Vec<String> = ended.iter().map(|e| keys::execution_steps_partition(project, e["id"].as_str().unwrap().parse().unwrap())).collect();
        assert_eq!(stored(executions_partition.clone()).await, 3);
        assert_eq!(stored(steps_of[0].clone()).await, 2, "TRIGGER and UPDATE_CONTACT");

        // A purge that finds the workflow still there (its delete did not happen) does nothing.
        let purge = plunk_worker::workflows::engine::PurgeJob { project, purge_workflow: workflow }.body();
        app.engine().work(&purge).await.unwrap();
        assert_eq!(stored(executions_partition.clone()).await, 3);

        let res = app.call(Method::DELETE, &format!("/workflows/{id}"), None).await;
        assert_eq!(res.data(), &json!({"id": id, "deleted": true}), "{}", res.body);
        // The delete queued the purge, delayed until the delete is done.
        assert!(app.workflow_messages.bodies().contains(&purge), "{:?}", app.workflow_messages.bodies());
        // A call cut short leaves the rest for the next; the engine's message finishes the job.
        assert!(app.as_function("workflow-worker").executions().purge(project, workflow, 3).await.unwrap());
        assert_eq!(stored(executions_partition.clone()).await, 2, "the first one went, its steps first");
        app.engine().work(&purge).await.unwrap();
        assert_eq!(stored(executions_partition).await, 0);
        for steps in steps_of {
            assert_eq!(stored(steps).await, 0);
        }
        assert_eq!(stored(keys::workflow_entries_partition(project, workflow)).await, 0);
        let counter = app.store.table().get(&keys::workflow_active_counter(project, workflow)).await.unwrap();
        assert!(counter.is_none(), "{counter:?}");
        let res = app.call(Method::GET, &format!("/workflows/{id}/executions"), None).await;
        assert_eq!(res.code(), "WORKFLOW_NOT_FOUND");
    }

    async fn an_execution_whose_message_is_lost_is_picked_up_by_its_watchdog(app: TestApp) {
        let (id, _) = workflow(&app, "Slow", "never_sent").await;
        added_step(&app, &id, json!({"type": "DELAY", "name": "Wait", "position": at(0.0, 1.0), "config": {"amount": 1, "unit": "minutes"}, "autoConnect": true})).await;
        app.call(Method::PATCH, &format!("/workflows/{id}"), Some(json!({"enabled": true}))).await;
        let erin = app.call(Method::POST, "/contacts", Some(json!({"email": "erin@x.io"}))).await.data()["id"].as_str().unwrap().to_owned();
        let res = app.call(Method::POST, &format!("/workflows/{id}/executions"), Some(json!({"contactId": erin}))).await;
        let lost = res.data()["id"].as_str().unwrap().to_owned();
        // The message is lost (a crash between the start and the queue).
        for m in app.workflow_queue.receive(10, std::time::Duration::from_secs(60), std::time::Duration::ZERO).await.unwrap() {
            app.workflow_queue.delete(&m.receipt).await.unwrap();
        }
        app.run_workflows().await;
        assert_eq!(execution(&app, &id, &lost).await["status"], "RUNNING");
        app.run_workflows_at(6 * 60_000).await;
        assert_eq!(execution(&app, &id, &lost).await["status"], "WAITING", "moved on to its wait");
    }
}
