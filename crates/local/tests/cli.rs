//! The `plunk` admin CLI (spec admin-cli.md): output, exit codes and key handling.

mod common;

use common::{cli, plunk};
use serde_json::json;

#[test]
fn project_create_prints_one_json_object_and_stores_only_key_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = cli(
        dir.path(),
        &[
            "project",
            "create",
            "--name",
            "Acme",
            "--tracking",
            "MARKETING_ONLY",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let project = &out["project"];
    assert_eq!(project["name"], "Acme");
    assert_eq!(project["rateLimitPerMinute"], 1000);
    assert_eq!(project["tracking"], "MARKETING_ONLY");
    assert_eq!(project["language"], "en");
    assert_eq!(project["disabled"], false);
    assert_eq!(project["disabledReason"], json!(null));
    let secret = out["secretKey"].as_str().unwrap();
    let public = out["publicKey"].as_str().unwrap();
    assert!(secret.starts_with("sk_") && secret.len() == 46);
    assert!(public.starts_with("pk_") && public.len() == 46);

    // Neither plain key is anywhere in the data directory.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(secret) && !text.contains(public));
    }
    // Show lists hints, never the keys.
    let id = project["id"].as_str().unwrap();
    let (code, shown) = cli(dir.path(), &["project", "show", id]);
    assert_eq!(code, 0);
    assert!(!shown.to_string().contains(secret));
    let hints: Vec<&str> = shown["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["hint"].as_str().unwrap())
        .collect();
    assert!(hints.contains(&format!("sk_…{}", &secret[secret.len() - 4..]).as_str()));
}

#[test]
fn exit_codes_follow_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = cli(dir.path(), &["project", "create", "--name", "A"]);
    let id = out["project"]["id"].as_str().unwrap().to_owned();
    let missing = "0193a1f3-0000-7000-8000-000000000000";

    assert_eq!(cli(dir.path(), &["project", "create", "--name", ""]).0, 1);
    assert_eq!(
        cli(
            dir.path(),
            &["project", "create", "--name", "B", "--rate-limit", "0"]
        )
        .0,
        1
    );
    assert_eq!(
        cli(
            dir.path(),
            &["project", "create", "--name", "B", "--rate-limit", "30001"]
        )
        .0,
        1
    );
    assert_eq!(
        cli(
            dir.path(),
            &[
                "project",
                "create",
                "--name",
                "B",
                "--tracking",
                "SOMETIMES"
            ]
        )
        .0,
        1
    );
    assert_eq!(
        cli(
            dir.path(),
            &["project", "create", "--name", "B", "--language", "EN"]
        )
        .0,
        1
    );
    assert_eq!(
        cli(dir.path(), &["project", "frobnicate"]).0,
        1,
        "usage errors exit 1"
    );
    assert_eq!(cli(dir.path(), &["project", "show", missing]).0, 2);
    assert_eq!(cli(dir.path(), &["project", "show", "not-an-id"]).0, 2);
    assert_eq!(
        cli(
            dir.path(),
            &["keys", "revoke", "--project", &id, "--key", missing]
        )
        .0,
        2
    );

    let (code, disabled) = cli(
        dir.path(),
        &["project", "disable", &id, "--reason", "billing"],
    );
    assert_eq!(code, 0);
    assert_eq!(disabled["project"]["disabled"], true);
    assert_eq!(disabled["project"]["disabledReason"], "billing");
    assert_eq!(
        cli(dir.path(), &["project", "disable", &id]).0,
        3,
        "already disabled"
    );
    assert_eq!(cli(dir.path(), &["project", "enable", &id]).0, 0);
    assert_eq!(
        cli(dir.path(), &["project", "enable", &id]).0,
        3,
        "not disabled"
    );

    let (code, updated) = cli(
        dir.path(),
        &[
            "project",
            "update",
            &id,
            "--name",
            "Renamed",
            "--rate-limit",
            "5",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(updated["project"]["name"], "Renamed");
    assert_eq!(updated["project"]["rateLimitPerMinute"], 5);

    let (code, listed) = cli(dir.path(), &["project", "list"]);
    assert_eq!(code, 0);
    assert_eq!(listed["projects"][0]["id"], json!(id));

    // A store that cannot be reached is exit 4.
    let out = plunk()
        .args([
            "--json",
            "--store",
            "dynamo",
            "--table",
            "plunk-t",
            "--dynamodb-endpoint",
            "http://127.0.0.1:9",
            "project",
            "list",
        ])
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rotation_replaces_keys_now_or_after_a_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = cli(dir.path(), &["project", "create", "--name", "R"]);
    let id = out["project"]["id"].as_str().unwrap().to_owned();

    let (code, rotated) = cli(
        dir.path(),
        &[
            "keys",
            "rotate",
            "--project",
            &id,
            "--type",
            "both",
            "--grace",
            "24h",
        ],
    );
    assert_eq!(code, 0, "{rotated}");
    let created = rotated["created"].as_array().unwrap();
    assert_eq!(created.len(), 2);
    assert!(created
        .iter()
        .all(|k| k["key"].as_str().unwrap().len() == 46));
    let replaced = rotated["replaced"].as_array().unwrap();
    assert_eq!(replaced.len(), 2);
    assert!(replaced
        .iter()
        .all(|k| k["expiresAt"].is_string() && k["revokedAt"].is_null()));
    // Old keys still work during the grace period: four active keys.
    assert_eq!(
        cli(dir.path(), &["keys", "list", "--project", &id]).1["keys"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    let (code, rotated) = cli(dir.path(), &["keys", "rotate", "--project", &id]);
    assert_eq!(code, 0);
    assert_eq!(rotated["created"][0]["type"], "secret");
    assert!(rotated["replaced"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["revokedAt"].is_string()));
    let (_, active) = cli(dir.path(), &["keys", "list", "--project", &id]);
    let types: Vec<&str> = active["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.iter().filter(|t| **t == "secret").count(), 1);
    let (_, all) = cli(dir.path(), &["keys", "list", "--project", &id, "--all"]);
    assert_eq!(all["keys"].as_array().unwrap().len(), 5);

    assert_eq!(
        cli(
            dir.path(),
            &["keys", "rotate", "--project", &id, "--grace", "8d"]
        )
        .0,
        1
    );
}

#[test]
fn revoking_the_last_secret_key_needs_yes() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = cli(dir.path(), &["project", "create", "--name", "L"]);
    let id = out["project"]["id"].as_str().unwrap().to_owned();
    let (_, keys) = cli(dir.path(), &["keys", "list", "--project", &id]);
    let secret_id = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["type"] == "secret")
        .unwrap()["keyId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        cli(
            dir.path(),
            &["keys", "revoke", "--project", &id, "--key", &secret_id]
        )
        .0,
        1
    );
    let (code, revoked) = cli(
        dir.path(),
        &[
            "--yes",
            "keys",
            "revoke",
            "--project",
            &id,
            "--key",
            &secret_id,
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(revoked["keyId"], json!(secret_id));
    assert!(revoked["revokedAt"].is_string());
    assert_eq!(
        cli(
            dir.path(),
            &[
                "--yes",
                "keys",
                "revoke",
                "--project",
                &id,
                "--key",
                &secret_id
            ]
        )
        .0,
        3
    );
}

#[test]
fn secrets_rotate_adds_a_secret_that_signs_later_and_keeps_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = cli(dir.path(), &["secrets", "rotate"]);
    assert_eq!(code, 0, "{out}");
    for kind in ["cursor", "pageTokens"] {
        // The first secret is created on demand, the rotation adds the second.
        assert_eq!(out[kind]["id"], 2, "{out}");
        assert_eq!(out[kind]["kept"], 2);
        let from = chrono::DateTime::parse_from_rfc3339(out[kind]["activeFrom"].as_str().unwrap())
            .unwrap();
        let wait = from.signed_duration_since(chrono::Utc::now()).num_seconds();
        assert!(
            (590..=600).contains(&wait),
            "signs in ten minutes, not {wait}s"
        );
    }
    let (code, out) = cli(dir.path(), &["secrets", "rotate", "--kind", "cursor"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["cursor"]["id"], 3);
    assert_eq!(out["cursor"]["kept"], 3);
    assert!(out.get("pageTokens").is_none());
}

#[tokio::test]
async fn secrets_migrate_moves_page_token_secrets_out_of_the_shared_partition_and_links_keep_working(
) {
    use plunk_domain::page_token::{PageTokenKeys, PageTokenSecret};
    use plunk_store::table::{Condition, Item, Key};
    let dir = tempfile::tempdir().unwrap();
    let config = plunk_store::config::StoreConfig::Sqlite {
        data_dir: dir.path().to_owned(),
    };
    // What an earlier build stored, and a link it signed.
    let legacy = Key::new("SYSTEM", "PAGE_TOKEN_SECRETS");
    {
        let store = config.open().await.unwrap();
        let body = json!({"current": 1, "secrets": [{"id": 1, "hex": "ab".repeat(32)}]});
        store
            .table()
            .put(Item::new(legacy.clone(), body), Condition::None)
            .await
            .unwrap();
    }
    let old_keys = PageTokenKeys::new(
        vec![PageTokenSecret {
            id: 1,
            bytes: [0xab; 32],
        }],
        1,
    )
    .unwrap();
    let contact = uuid::Uuid::now_v7();
    let link = old_keys.sign(contact, None, "ada@example.org");

    let (code, out) = cli(dir.path(), &["secrets", "migrate"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["moved"], 1);
    let (_, again) = cli(dir.path(), &["secrets", "migrate"]);
    assert_eq!(again["moved"], 0, "nothing left to move");

    let store = plunk_store::config::StoreConfig::Sqlite {
        data_dir: dir.path().to_owned(),
    }
    .open()
    .await
    .unwrap();
    assert!(store.table().get(&legacy).await.unwrap().is_none());
    let keys = store.page_tokens().await.unwrap();
    assert_eq!(keys.verify(&link).unwrap().contact_id, contact);
}

#[test]
fn a_bad_table_name_is_one_line_and_a_new_data_dir_is_announced() {
    for (table, problem) in [
        ("t1", "3 to 255 characters"),
        ("my table", "' ' is not allowed"),
    ] {
        let out = plunk()
            .args(["--store", "dynamo", "--table", table, "project", "list"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "a usage error");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(problem), "{stderr}");
    }

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh");
    let out = plunk()
        .args(["project", "list"])
        .env("PLUNK_DATA_DIR", &data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("creating {}", data.display()))
            && stderr.contains("embedded store"),
        "{stderr}"
    );
    let again = plunk()
        .args(["project", "list"])
        .env("PLUNK_DATA_DIR", &data)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        "",
        "said once, when created"
    );
}
