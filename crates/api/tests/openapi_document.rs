//! The OpenAPI document a client generator and Schemathesis read: unique operation ids, links
//! that point at real operations, request bodies described whole, optional members optional and
//! `null` offered only where the API takes it. (`make test` also runs openapi-spec-validator on
//! the served document.)

use serde_json::Value;
use std::collections::HashSet;

fn document() -> Value {
    plunk_api::openapi::document_json()
}

fn operations(doc: &Value) -> Vec<(&str, &str, &Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op.get("operationId").is_some() {
                ops.push((path.as_str(), method.as_str(), op));
            }
        }
    }
    ops
}

#[test]
fn operation_ids_are_unique_and_named_group_dot_action() {
    let doc = document();
    let ops = operations(&doc);
    let ids: Vec<&str> = ops
        .iter()
        .map(|(_, _, op)| op["operationId"].as_str().unwrap())
        .collect();
    let unique: HashSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    for id in &ids {
        let (group, action) = id.split_once('.').unwrap_or_else(|| panic!("{id}"));
        assert!(group.chars().all(|c| c.is_ascii_lowercase()), "{id}");
        assert!(action.chars().all(|c| c.is_ascii_alphanumeric()), "{id}");
    }
    for expected in [
        "contacts.list",
        "public.send",
        "webhooks.rotateSecret",
        "templates.preview",
    ] {
        assert!(ids.contains(&expected), "{expected}");
    }
}

#[test]
fn every_link_names_an_operation_and_its_parameter() {
    let doc = document();
    let ops = operations(&doc);
    let mut links = 0;
    for (_, _, op) in &ops {
        for response in op["responses"].as_object().unwrap().values() {
            let Some(found) = response.get("links").and_then(Value::as_object) else {
                continue;
            };
            for link in found.values() {
                links += 1;
                let target_id = link["operationId"].as_str().unwrap();
                let target = ops
                    .iter()
                    .find(|(_, _, o)| o["operationId"] == target_id)
                    .unwrap_or_else(|| panic!("no operation {target_id}"));
                for name in link["parameters"].as_object().unwrap().keys() {
                    let has = target.2["parameters"]
                        .as_array()
                        .is_some_and(|ps| ps.iter().any(|p| p["name"] == name.as_str()));
                    assert!(has, "{target_id} has no parameter {name}");
                }
            }
        }
    }
    assert!(links >= 20, "{links} links");
}

#[test]
fn request_bodies_are_described_whole_and_offer_null_only_where_taken() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let send = &schemas["SendBody"];
    assert_eq!(
        send["required"],
        serde_json::json!(["to"]),
        "only `to` is required"
    );
    let attachment = &schemas["AttachmentDoc"];
    for member in [
        "filename",
        "content",
        "contentType",
        "disposition",
        "contentId",
    ] {
        assert!(attachment["properties"][member].is_object(), "{member}");
    }
    let nullable = |schema: &Value| {
        schema["type"]
            .as_array()
            .is_some_and(|t| t.contains(&Value::from("null")))
    };
    // The body schema of an operation, inline or referenced.
    let body = |path: &str, method: &str| -> Value {
        let schema =
            &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
        match schema["$ref"].as_str() {
            Some(reference) => schemas[reference.rsplit('/').next().unwrap()].clone(),
            None => schema.clone(),
        }
    };
    // Members that refuse null are not offered null.
    for (path, method, member) in [
        ("/v1/send", "post", "subject"),
        ("/v1/send", "post", "subscribed"),
        ("/v1/track", "post", "subscribed"),
        ("/contacts", "post", "data"),
        ("/templates/{id}", "patch", "subject"),
        ("/webhooks", "post", "enabled"),
    ] {
        assert!(
            !nullable(&body(path, method)["properties"][member]),
            "{method} {path} {member}"
        );
    }
    // Members that take null (PATCH clears them) are.
    for (path, method, member) in [
        ("/templates/{id}", "patch", "description"),
        ("/contacts/{id}", "patch", "data"),
        ("/suppressions", "post", "note"),
    ] {
        assert!(
            nullable(&body(path, method)["properties"][member]),
            "{method} {path} {member}"
        );
    }
}
