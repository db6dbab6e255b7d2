//! `plunk serve` over raw TCP: requests the HTTP parser refuses still get the error envelope,
//! and a large request refused before its body is read is answered, not reset.

mod common;

use common::Server;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends `head` (and then `body`) on a fresh connection and reads the whole answer.
fn exchange(server: &Server, head: &str, body: &[u8]) -> (u16, String, Value) {
    let address = server.base_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer before the body is read; the body must still go out without a reset.
    for chunk in body.chunks(64 * 1024) {
        stream
            .write_all(chunk)
            .expect("the body is accepted, not reset");
    }
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("the answer is read, not reset");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        status,
        head.to_owned(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn assert_envelope(head: &str, body: &Value, code: &str) {
    assert_eq!(body["success"], Value::Bool(false), "{head}\n{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let id = body["error"]["requestId"].as_str().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("x-request-id: {id}")),
        "{head}"
    );
}

#[test]
fn requests_the_parser_refuses_are_answered_in_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(
        &[("PLUNK_DATA_DIR", data.to_str().unwrap())],
        &[],
        dir.path(),
    );

    let long_uri = format!(
        "GET /contacts?search={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(70_000)
    );
    let (status, head, body) = exchange(&server, &long_uri, b"");
    assert_eq!(status, 414);
    assert_envelope(&head, &body, "URI_TOO_LONG");

    let many: String = (0..600).map(|i| format!("X-Filler-{i}: v\r\n")).collect();
    let (status, head, body) = exchange(
        &server,
        &format!("GET /health HTTP/1.1\r\nHost: x\r\n{many}\r\n"),
        b"",
    );
    assert_eq!(status, 431);
    assert_envelope(&head, &body, "HEADERS_TOO_LARGE");

    let (status, head, body) = exchange(
        &server,
        "GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"",
    );
    assert_eq!(status, 400);
    assert_envelope(&head, &body, "MALFORMED_REQUEST");

    // Below the parser's limits, a request with many headers is served as usual.
    let some: String = (0..150).map(|i| format!("X-Filler-{i}: v\r\n")).collect();
    let (status, _, body) = exchange(
        &server,
        &format!("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{some}\r\n"),
        b"",
    );
    assert_eq!(status, 200);
    assert_eq!(body["data"]["status"], "ok");
}

#[test]
fn a_large_body_refused_early_gets_its_answer_not_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(
        &[("PLUNK_DATA_DIR", data.to_str().unwrap())],
        &[],
        dir.path(),
    );
    let body = vec![b'x'; 4 << 20];
    for (auth, expected) in [("", 401), ("Authorization: Bearer sk_nope\r\n", 401)] {
        let head = format!(
            "POST /v1/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n",
            body.len()
        );
        let (status, head, answer) = exchange(&server, &head, &body);
        assert_eq!(status, expected, "{head}");
        assert_eq!(answer["success"], Value::Bool(false));
    }
    // Over the body limit: 413 in the envelope, read whole by the client.
    let oversized = vec![b'x'; 6 << 20];
    let head = format!(
        "POST /contacts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        oversized.len()
    );
    let (status, _, answer) = exchange(&server, &head, &oversized);
    assert_eq!(status, 413);
    assert_eq!(answer["error"]["code"], "PAYLOAD_TOO_LARGE");
}
