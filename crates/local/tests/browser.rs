//! Browser tests: `plunk serve` sends a real marketing email, and every `*.test.mjs` file under
//! `tests/browser/` drives Debian's Chromium (through playwright-core, `tests/browser/harness.mjs`)
//! against that server. The scripts get, in the environment: `PLUNK_BASE_URL`,
//! `PLUNK_SECRET_KEY`, `PLUNK_PUBLIC_KEY`, and the sent email's `PLUNK_CONTACT_ID`,
//! `PLUNK_EMAIL_ID` and `PLUNK_UNSUBSCRIBE_URL` (from its `List-Unsubscribe` header). A new file
//! there runs with the others, against the same server.
//!
//! Needs `/usr/bin/chromium` (or `PLUNK_CHROMIUM`) and `node_modules` (`make tools`). Without
//! them the test is skipped, unless `PLUNK_TEST_BROWSER=1` (set by `infra/scripts/test.sh`, so
//! `make test` never skips it silently).

mod common;

use common::Server;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn body(res: ureq::Response) -> Value {
    res.into_json().unwrap_or(Value::Null)
}

/// Whether the browser and the driver are installed; panics when they must be.
fn browser_available() -> bool {
    let chromium = std::env::var("PLUNK_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let driver = repo_root().join("node_modules/playwright-core/package.json");
    let node = Command::new("node").arg("--version").output().is_ok();
    let missing: Vec<String> = [
        (!Path::new(&chromium).exists()).then(|| chromium.clone()),
        (!driver.exists()).then(|| "node_modules/playwright-core".to_owned()),
        (!node).then(|| "node".to_owned()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return true;
    }
    let required = std::env::var("PLUNK_TEST_BROWSER").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "PLUNK_TEST_BROWSER=1 but missing: {missing:?} (run make tools)"
    );
    eprintln!("skipped: missing {missing:?} (run make tools)");
    false
}

/// The URL inside `List-Unsubscribe: <…>` of a message.
fn list_unsubscribe_url(message: &str) -> Option<String> {
    let head = message.split("\r\n\r\n").next()?;
    // Unfold continuation lines before looking.
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    let line = unfolded
        .split("\r\n")
        .find(|l| l.to_ascii_lowercase().starts_with("list-unsubscribe:"))?;
    let start = line.find('<')? + 1;
    let end = line[start..].find('>')? + start;
    Some(line[start..end].to_owned())
}

/// A marketing email to ada@example.org sent through the local server; returns the contact id,
/// the email id and the raw message from the outbox.
fn send_marketing_email(server: &Server, key: &str, outbox: &Path) -> (String, String, String) {
    let (status, res) = server.request(
        "POST",
        "/domains",
        Some(key),
        Some(json!({"domain": "acme.io"})),
    );
    assert_eq!(status, 201);
    let domain = body(res)["data"]["id"].as_str().unwrap().to_owned();
    let (status, _) = server.request(
        "POST",
        &format!("/domains/{domain}/verify"),
        Some(key),
        None,
    );
    assert_eq!(status, 200);
    let (status, res) = server.request(
        "POST",
        "/templates",
        Some(key),
        Some(
            json!({"name": "News", "subject": "News", "type": "MARKETING",
            "body": "<html><body><h1>News</h1></body></html>", "from": "news@acme.io"}),
        ),
    );
    assert_eq!(status, 201);
    let template = body(res)["data"]["id"].as_str().unwrap().to_owned();
    let (status, res) = server.request(
        "POST",
        "/contacts",
        Some(key),
        Some(json!({"email": "ada@example.org"})),
    );
    assert_eq!(status, 201);
    let contact = body(res)["data"]["id"].as_str().unwrap().to_owned();
    let (status, res) = server.request(
        "POST",
        "/v1/send",
        Some(key),
        Some(json!({"to": "ada@example.org", "template": template})),
    );
    assert_eq!(status, 200);
    let email = body(res)["data"]["emails"][0]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = std::fs::read_dir(outbox)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(&format!("{email}.eml")));
        if let Some(path) = found {
            return (contact, email, std::fs::read_to_string(path).unwrap());
        }
        assert!(
            Instant::now() < deadline,
            "email {email} never reached the outbox"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_unsubscribe_link_of_a_sent_email_works_in_chromium() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let envs = [
        ("PLUNK_DATA_DIR", data.to_str().unwrap()),
        ("PLUNK_SEND_RATE", "100"),
        ("PLUNK_KEY_CACHE_SECONDS", "0"),
    ];
    let server = Server::start(&envs, &[], dir.path());
    let key = server.printed_secret().unwrap();
    let public_key = server
        .stdout
        .iter()
        .find_map(|l| l.trim().strip_prefix("public key: ").map(str::to_owned))
        .unwrap();
    let (contact, email, message) = send_marketing_email(&server, &key, &data.join("outbox"));
    let url = list_unsubscribe_url(&message).expect("a List-Unsubscribe header");
    assert!(
        url.starts_with(&format!("{}/unsubscribe/", server.base_url)),
        "{url} under {}",
        server.base_url
    );
    assert!(message.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));

    // Every `*.test.mjs` file, named explicitly (node 20 takes no globs).
    let mut files: Vec<String> = std::fs::read_dir(repo_root().join("tests/browser"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".test.mjs"))
        .map(|n| format!("tests/browser/{n}"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let out = Command::new("node")
        .current_dir(repo_root())
        .args(["--test", "--test-reporter=spec"])
        .args(&files)
        .env("PLUNK_BASE_URL", &server.base_url)
        .env("PLUNK_SECRET_KEY", &key)
        .env("PLUNK_PUBLIC_KEY", &public_key)
        .env("PLUNK_CONTACT_ID", &contact)
        .env("PLUNK_EMAIL_ID", &email)
        .env("PLUNK_UNSUBSCRIBE_URL", &url)
        .output()
        .expect("node runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{report}");
    assert!(
        out.status.success(),
        "browser tests failed:\n{report}\n--- server log ---\n{}",
        server.log()
    );
    let token = url.rsplit('/').next().unwrap();
    let log = server.log();
    assert!(
        log.contains("/unsubscribe/…"),
        "the page requests were logged"
    );
    assert!(!log.contains(token), "page tokens never reach the log");
}
