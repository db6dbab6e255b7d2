//! The `WEBHOOK` step (workflows.md §3.2): [`prepare`] renders the step's request for one
//! execution, [`judge`] turns what the endpoint did into the step's result (succeeded, retry
//! later, or failed), and [`run`] makes one attempt with both around a vetted call
//! ([`plunk_webhooks::call`]: SSRF rules before each call, the connection pinned to the vetted
//! address, no redirects).
//!
//! Templates see the same variables as emails, with `event` = the execution context; the hosted
//! page URLs (`unsubscribeUrl` …) are empty, since a webhook is no email and those links carry a
//! token a third party should not get.

use plunk_domain::contact::Contact;
use plunk_domain::template::bounds::{MAX_RENDERED_BODY_BYTES, MAX_RENDER_TIME};
use plunk_domain::template::{render, RenderContext, RenderError};
use plunk_domain::workflow::{has_liquid, WebhookConfig, WebhookMethod};
use plunk_domain::Timestamp;
use plunk_webhooks::ssrf::{validate_url, UrlRejection};
use plunk_webhooks::{call, AttemptOutcome, AttemptPolicy, HttpCall, Method, RequestBody};
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Per-attempt timeout: connect and the whole response.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Response body bytes kept in a step's `output`.
pub const RESPONSE_BODY_LIMIT: usize = 4 * 1024;
/// The header carrying the step's idempotency key, the same on every attempt.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// Waits before the second and the third attempt.
pub const RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(30), Duration::from_secs(120)];
/// Attempts a step makes at most: the first and one per retry delay.
pub const MAX_ATTEMPTS: u32 = RETRY_DELAYS.len() as u32 + 1;
/// Deepest nesting of a body rendered (serde_json's own parsing limit): the body is walked
/// recursively, and a value built by hand could otherwise be nested deep enough to overflow the
/// stack.
pub const MAX_BODY_DEPTH: usize = 128;
/// Longest reason of a failed [`prepare`], in bytes.
const MAX_REASON_BYTES: usize = 300;
/// Longest place named in a reason, in bytes: a body path can be long, and what went wrong
/// must still fit after it.
const MAX_LABEL_BYTES: usize = 120;

/// What one execution of a `WEBHOOK` step needs.
#[derive(Debug, Clone, Copy)]
pub struct WebhookStepInput<'a> {
    /// The step's config.
    pub config: &'a WebhookConfig,
    /// The execution's contact, as stored now.
    pub contact: &'a Contact,
    /// The execution context: `event` in templates, `context` in the default body.
    pub context: &'a Map<String, Value>,
    /// The project's language: `locale` in templates when the contact's data has none.
    pub project_language: &'a str,
    /// The workflow's id.
    pub workflow_id: Uuid,
    /// The workflow's name.
    pub workflow_name: &'a str,
    /// The execution's id.
    pub execution_id: Uuid,
    /// Sent as [`IDEMPOTENCY_HEADER`]: derived from the execution and step, so the same on
    /// every attempt of the step.
    pub idempotency_key: &'a str,
    /// `timestamp` of the default body.
    pub now: Timestamp,
}

/// What became of one attempt of the step.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookStepResult {
    /// A 2xx arrived: the step is done.
    Succeeded {
        /// `{status, durationMs, body}`.
        output: Value,
    },
    /// A transient failure with attempts left: attempt again after `delay`.
    RetryAfter {
        /// How long to wait before the next attempt.
        delay: Duration,
        /// `{status, durationMs, body}` of this attempt.
        output: Value,
    },
    /// The step failed, and the execution with it.
    Failed {
        /// `{status, durationMs, body}` of the last attempt (nulls when none was made).
        output: Value,
        /// Why, without the URL or a header value.
        error: String,
    },
}

/// The call policy of a step: [`TIMEOUT`], and the SSRF rules unless `allow_private` (local
/// development and tests only).
pub fn policy(allow_private: bool) -> AttemptPolicy {
    AttemptPolicy {
        timeout: TIMEOUT,
        allow_private,
    }
}

/// Makes the next attempt of the step, `attempts_made` attempts of it having been made before
/// (0 the first time): [`prepare`], one call, then [`judge`] counting this attempt. A request
/// that cannot be prepared fails the step without a call.
pub async fn run(
    input: &WebhookStepInput<'_>,
    attempts_made: u32,
    allow_private: bool,
) -> WebhookStepResult {
    match prepare(input) {
        Ok(request) => {
            let outcome = call(&request, &policy(allow_private)).await;
            judge(&outcome, attempts_made.saturating_add(1))
        }
        Err(error) => WebhookStepResult::Failed {
            output: output(None, 0, None),
            error,
        },
    }
}

/// The request of the step for this execution: the URL, the header values and every string
/// inside the body rendered with Liquid (keys as written); without a body, a POST, PUT or PATCH
/// sends the default body, and a GET or DELETE never sends one. [`IDEMPOTENCY_HEADER`] carries
/// the input's key unless the config sets that header itself.
///
/// `Err(reason)` — the step fails — when a template does not render, the rendered URL is not an
/// absolute http(s) URL of at most 2048 characters without user information
/// (`ssrf::validate_url`), or a rendered header value holds a line break. A forbidden address
/// (a literal, a name such as `localhost`, or a DNS answer) is refused by the call instead, before
/// it connects, unless private addresses are allowed: [`judge`] then fails the step at once.
/// The reason is short, names the part (`url`, `headers.<name>`, `body.<path>`), and never
/// repeats the URL or a header value: the engine's message is given for body strings only.
///
/// Rendering is bounded beyond each render's own bounds (and each render contains a panic of
/// the engine as its own error): strings without Liquid are not rendered at all, no render
/// starts once [`MAX_RENDER_TIME`] has passed for the step, and the rendered texts may add up to
/// [`MAX_RENDERED_BODY_BYTES`], so a config with thousands of costly strings cannot hold the
/// worker.
pub fn prepare(input: &WebhookStepInput<'_>) -> Result<HttpCall, String> {
    let deadline = Instant::now() + MAX_RENDER_TIME;
    build(input, &mut Renderer::new(input, deadline))
        .map_err(|reason| cut(&reason, MAX_REASON_BYTES).to_owned())
}

fn build(input: &WebhookStepInput<'_>, renderer: &mut Renderer) -> Result<HttpCall, String> {
    let config = input.config;
    let rendered = renderer.text(&config.url, &Place::Url)?;
    let url = match validate_url(&rendered) {
        Ok(url) => url.into(),
        // The address rules are the call's: it applies them to the literal and to every DNS
        // answer before connecting, and knows whether this deployment allows private targets
        // (as the API does at save time). The URL's form was checked before its host.
        Err(UrlRejection::ForbiddenAddress) => rendered.trim().to_owned(),
        Err(e) => return Err(format!("url: the rendered URL is refused: {e}")),
    };

    let mut headers = Vec::with_capacity(config.headers.len() + 1);
    for (name, value) in &config.headers {
        let place = Place::Header(name);
        let value = renderer.text(value, &place)?;
        // Checked here too (the call refuses them as well) to fail with the header's place.
        if value.contains(['\r', '\n', '\0']) {
            return Err(format!(
                "{}: the rendered value contains CR, LF or NUL",
                place.label()
            ));
        }
        headers.push((name.clone(), value));
    }
    // A key the config sets itself is the author's choice (rendered from the same execution, it
    // is as stable across attempts).
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case(IDEMPOTENCY_HEADER))
    {
        headers.push((
            IDEMPOTENCY_HEADER.to_owned(),
            input.idempotency_key.to_owned(),
        ));
    }

    let body = match config.method {
        WebhookMethod::Get | WebhookMethod::Delete => None,
        WebhookMethod::Post | WebhookMethod::Put | WebhookMethod::Patch => {
            let value = match &config.body {
                Some(body) => renderer.body(body, &mut Vec::new())?,
                None => default_body(input),
            };
            Some(RequestBody::json(value.to_string().into_bytes()))
        }
    };
    Ok(HttpCall {
        method: method(config.method),
        url,
        headers,
        body,
        response_body_limit: RESPONSE_BODY_LIMIT,
    })
}

/// The body of a POST, PUT or PATCH without one in its config.
fn default_body(input: &WebhookStepInput<'_>) -> Value {
    let contact = input.contact;
    json!({
        "contact": {
            "id": contact.id,
            "email": contact.email.as_str(),
            "subscribed": contact.subscribed,
            "data": contact.data,
        },
        "context": input.context,
        "workflow": {"id": input.workflow_id, "name": input.workflow_name},
        "execution": {"id": input.execution_id},
        "timestamp": input.now,
    })
}

fn method(method: WebhookMethod) -> Method {
    match method {
        WebhookMethod::Get => Method::GET,
        WebhookMethod::Post => Method::POST,
        WebhookMethod::Put => Method::PUT,
        WebhookMethod::Patch => Method::PATCH,
        WebhookMethod::Delete => Method::DELETE,
    }
}

/// One step of a path inside the body.
enum Segment<'v> {
    Key(&'v str),
    Index(usize),
}

/// Where a rendered text sits in the request, for the reason of a failure.
enum Place<'p> {
    Url,
    Header(&'p str),
    Body(&'p [Segment<'p>]),
}

impl Place<'_> {
    /// `url`, `headers.<name>` or `body.<path>`, cut to [`MAX_LABEL_BYTES`] with `…`.
    fn label(&self) -> String {
        let label = self.full_label();
        if label.len() <= MAX_LABEL_BYTES {
            return label;
        }
        format!("{}…", cut(&label, MAX_LABEL_BYTES - '…'.len_utf8()))
    }

    fn full_label(&self) -> String {
        match self {
            Place::Url => "url".into(),
            Place::Header(name) => format!("headers.{name}"),
            Place::Body(path) => {
                let mut label = String::from("body");
                for segment in *path {
                    match segment {
                        Segment::Key(key) => {
                            label.push('.');
                            label.push_str(key);
                        }
                        Segment::Index(i) => label.push_str(&format!("[{i}]")),
                    }
                }
                label
            }
        }
    }

    /// The reason of a failed render. The engine's message can quote the template, so it is
    /// left out where credentials usually sit (the URL's query, header values); a crossed
    /// bound says nothing of the template and is always given.
    fn failure(&self, error: &RenderError) -> String {
        let label = self.label();
        match (error.bound, self) {
            (Some(bound), _) => format!("{label}: {bound}"),
            (None, Place::Body(_)) => format!("{label}: {}", error.message),
            (None, Place::Url | Place::Header(_)) => {
                format!("{label}: the template failed to render")
            }
        }
    }
}

/// What a workflow step's templates see: the same variables as an email's (the contact, its
/// `data`, `locale` from `data.locale` or else `project_language`), with `event` = the execution
/// context. The hosted page URLs stay empty: a step is no email, and those links carry a token
/// for the contact.
fn variables(
    contact: &Contact,
    context: &Map<String, Value>,
    project_language: &str,
) -> RenderContext {
    RenderContext::for_contact(contact, &Map::new(), project_language).with_event(context.clone())
}

/// Renders one text of a workflow step outside a WEBHOOK request (a SEND_EMAIL step's custom
/// address), with the variables of [`prepare`]; a text without Liquid comes back as written.
/// `locale` here is the contact's `data.locale` only (empty without it): no project language is
/// given. The render's own bounds apply, and a panic of the engine is its error.
pub fn render_text(
    source: &str,
    contact: &Contact,
    context: &Map<String, Value>,
) -> Result<String, RenderError> {
    if !has_liquid(source) {
        return Ok(source.to_owned());
    }
    render(source, &variables(contact, context, ""))
}

/// Renders the texts of one request within the step's bounds.
struct Renderer {
    context: RenderContext,
    deadline: Instant,
    bytes_left: usize,
}

impl Renderer {
    fn new(input: &WebhookStepInput<'_>, deadline: Instant) -> Self {
        Self {
            context: variables(input.contact, input.context, input.project_language),
            deadline,
            bytes_left: MAX_RENDERED_BODY_BYTES,
        }
    }

    /// `source` rendered, or as written when it holds no Liquid (rendering it would give it back
    /// unchanged, at the cost of a render).
    fn text(&mut self, source: &str, place: &Place<'_>) -> Result<String, String> {
        if !has_liquid(source) {
            return Ok(source.to_owned());
        }
        if Instant::now() > self.deadline {
            return Err(format!(
                "{}: rendering the request took more than {} ms",
                place.label(),
                MAX_RENDER_TIME.as_millis()
            ));
        }
        let rendered = render(source, &self.context).map_err(|e| place.failure(&e))?;
        self.bytes_left = self.bytes_left.checked_sub(rendered.len()).ok_or_else(|| {
            format!(
                "{}: the rendered request is larger than {} bytes",
                place.label(),
                MAX_RENDERED_BODY_BYTES
            )
        })?;
        Ok(rendered)
    }

    /// `value` with every string inside rendered; keys, numbers, booleans and nulls as they are.
    /// `path` leads to `value` (empty at the top).
    fn body<'v>(&mut self, value: &'v Value, path: &mut Vec<Segment<'v>>) -> Result<Value, String> {
        if path.len() >= MAX_BODY_DEPTH {
            return Err(format!(
                "{}: nested deeper than {MAX_BODY_DEPTH} levels",
                Place::Body(path).label()
            ));
        }
        Ok(match value {
            Value::String(source) => Value::String(self.text(source, &Place::Body(path))?),
            Value::Array(items) => {
                let mut rendered = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    path.push(Segment::Index(i));
                    let item = self.body(item, path);
                    path.pop();
                    rendered.push(item?);
                }
                Value::Array(rendered)
            }
            Value::Object(members) => {
                let mut rendered = Map::with_capacity(members.len());
                for (key, item) in members {
                    path.push(Segment::Key(key));
                    let item = self.body(item, path);
                    path.pop();
                    rendered.insert(key.clone(), item?);
                }
                Value::Object(rendered)
            }
            scalar => scalar.clone(),
        })
    }
}

/// The step's result for an attempt, `attempts_made` counting it (1 after the first attempt).
///
/// - a 2xx: [`WebhookStepResult::Succeeded`];
/// - no response (a network error, a timeout), 408, 429 or a 5xx, with attempts left (fewer than
///   [`MAX_ATTEMPTS`] made): [`WebhookStepResult::RetryAfter`] 30 s after the first attempt,
///   120 s after the second;
/// - anything else: [`WebhookStepResult::Failed`], at once for a 3xx (redirects are not
///   followed), another status, or a call refused before sending (a forbidden address, a bad
///   URL or header: the same call would be refused again).
///
/// `output` is `{status, durationMs, body}`, the body cut to [`RESPONSE_BODY_LIMIT`] bytes at a
/// character boundary (`null`s without a response).
pub fn judge(outcome: &AttemptOutcome, attempts_made: u32) -> WebhookStepResult {
    let output = output(outcome.status, outcome.duration_ms, outcome.body.as_deref());
    if outcome.success {
        return WebhookStepResult::Succeeded { output };
    }
    let transient = match outcome.status {
        Some(status) => status == 408 || status == 429 || (500..=599).contains(&status),
        None => !outcome.refused(),
    };
    let reason = match outcome.status {
        Some(status @ 300..=399) => format!("redirects are not followed (status {status})"),
        Some(status) => format!("the endpoint answered {status}"),
        None => outcome
            .error
            .clone()
            .unwrap_or_else(|| "no response".into()),
    };
    if !transient {
        return WebhookStepResult::Failed {
            output,
            error: reason,
        };
    }
    // 0 cannot count an attempt just made; read as the first rather than allow an extra one.
    let made = attempts_made.max(1);
    match RETRY_DELAYS.get(made as usize - 1) {
        Some(&delay) => WebhookStepResult::RetryAfter { delay, output },
        None => WebhookStepResult::Failed {
            output,
            error: format!("{reason} (after {made} attempts)"),
        },
    }
}

/// A step's `output`.
fn output(status: Option<u16>, duration_ms: u64, body: Option<&str>) -> Value {
    json!({
        "status": status,
        "durationMs": duration_ms,
        "body": body.map(|b| cut(b, RESPONSE_BODY_LIMIT)),
    })
}

/// The longest start of `text` of at most `max` bytes that ends at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use plunk_domain::EmailAddress;

    /// The owned values an input borrows.
    struct Fixture {
        config: WebhookConfig,
        contact: Contact,
        context: Map<String, Value>,
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    impl Fixture {
        fn new(url: &str, method: WebhookMethod) -> Self {
            let now = Timestamp::from_millis(1_772_357_400_000).unwrap();
            Fixture {
                config: WebhookConfig {
                    url: url.into(),
                    method,
                    headers: vec![],
                    body: None,
                },
                contact: Contact {
                    id: Uuid::from_u128(0xc0),
                    email: EmailAddress::parse("ada@example.com").unwrap(),
                    subscribed: true,
                    data: object(json!({"first": "Ada", "team": "core", "token": "t0k3n"})),
                    created_at: now,
                    updated_at: now,
                },
                context: object(json!({"order": "A-17", "amount": 42})),
            }
        }

        fn input(&self) -> WebhookStepInput<'_> {
            WebhookStepInput {
                config: &self.config,
                contact: &self.contact,
                context: &self.context,
                project_language: "en",
                workflow_id: Uuid::from_u128(0xf1),
                workflow_name: "Onboarding",
                execution_id: Uuid::from_u128(0xe1),
                idempotency_key: "exec-e1-step-s1",
                now: Timestamp::from_millis(1_772_357_400_123).unwrap(),
            }
        }

        fn prepare(&self) -> Result<HttpCall, String> {
            prepare(&self.input())
        }
    }

    fn body_json(request: &HttpCall) -> Value {
        serde_json::from_slice(&request.body.as_ref().unwrap().bytes).unwrap()
    }

    fn header<'c>(request: &'c HttpCall, name: &str) -> Option<&'c str> {
        request
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn liquid_is_rendered_in_the_url_header_values_and_body_strings_only() {
        let mut f = Fixture::new(
            "https://hooks.example.com/{{ data.team }}/x?c={{ id }}&l={{ locale }}",
            WebhookMethod::Post,
        );
        f.config.headers = vec![
            ("Authorization".into(), "Bearer {{ data.token }}".into()),
            ("X-Plain".into(), "as {written}".into()),
        ];
        f.config.body = Some(json!({
            "name": "{{ first | upcase }}",
            "order": "{{ event.order }}-{{ event.amount | plus: 1 }}",
            "{{ key }}": [{"to": "{{ email }}"}, 3, true, null, "plain"],
            "n": 1.5,
        }));
        let request = f.prepare().unwrap();
        assert_eq!(request.method, Method::POST);
        assert_eq!(
            request.url,
            format!(
                "https://hooks.example.com/core/x?c={}&l=en",
                Uuid::from_u128(0xc0)
            )
        );
        assert_eq!(header(&request, "authorization"), Some("Bearer t0k3n"));
        assert_eq!(header(&request, "x-plain"), Some("as {written}"));
        assert_eq!(
            body_json(&request),
            json!({
                "name": "ADA",
                "order": "A-17-43",
                "{{ key }}": [{"to": "ada@example.com"}, 3, true, null, "plain"],
                "n": 1.5,
            })
        );
        assert_eq!(
            request.body.as_ref().unwrap().content_type,
            "application/json"
        );
        assert_eq!(request.response_body_limit, RESPONSE_BODY_LIMIT);
    }

    #[test]
    fn without_a_body_post_put_and_patch_send_the_default_body() {
        for method in [
            WebhookMethod::Post,
            WebhookMethod::Put,
            WebhookMethod::Patch,
        ] {
            let request = Fixture::new("https://hooks.example.com/", method)
                .prepare()
                .unwrap();
            assert_eq!(request.method.as_str(), method.as_str());
            let sent = String::from_utf8(request.body.unwrap().bytes).unwrap();
            // The exact bytes: members in this order, the timestamp as every timestamp is shown.
            assert_eq!(
                sent,
                concat!(
                    r#"{"contact":{"id":"00000000-0000-0000-0000-0000000000c0","#,
                    r#""email":"ada@example.com","subscribed":true,"#,
                    r#""data":{"first":"Ada","team":"core","token":"t0k3n"}},"#,
                    r#""context":{"order":"A-17","amount":42},"#,
                    r#""workflow":{"id":"00000000-0000-0000-0000-0000000000f1","name":"Onboarding"},"#,
                    r#""execution":{"id":"00000000-0000-0000-0000-0000000000e1"},"#,
                    r#""timestamp":"2026-03-01T09:30:00.123Z"}"#,
                ),
                "{method:?}"
            );
        }
    }

    #[test]
    fn get_and_delete_send_no_body_even_with_one_configured() {
        for method in [WebhookMethod::Get, WebhookMethod::Delete] {
            let mut f = Fixture::new("https://hooks.example.com/", method);
            let request = f.prepare().unwrap();
            assert_eq!(request.method.as_str(), method.as_str());
            assert_eq!(request.body, None);
            f.config.body = Some(json!({"a": "{{ 1 | divided_by: 0 }}"}));
            assert_eq!(f.prepare().unwrap().body, None, "not even rendered");
        }
    }

    #[test]
    fn the_idempotency_key_is_sent_unless_the_config_sets_its_own() {
        let mut f = Fixture::new("https://hooks.example.com/", WebhookMethod::Post);
        f.config.headers = vec![("X-A".into(), "1".into())];
        let request = f.prepare().unwrap();
        assert_eq!(
            request.headers,
            [
                ("X-A".to_owned(), "1".to_owned()),
                ("Idempotency-Key".to_owned(), "exec-e1-step-s1".to_owned()),
            ]
        );
        assert_eq!(f.prepare().unwrap(), request, "the same request every time");
        f.config.headers = vec![("idempotency-key".into(), "{{ event.order }}".into())];
        let request = f.prepare().unwrap();
        assert_eq!(
            request.headers,
            [("idempotency-key".to_owned(), "A-17".to_owned())]
        );
    }

    #[test]
    fn a_rendered_url_that_may_not_be_called_is_an_error() {
        let cases = [
            (
                "https://{{ data.host }}/",
                json!({"host": ""}),
                "url: the rendered URL is refused: Invalid URL",
            ),
            (
                "{{ data.target }}",
                json!({"target": "ftp://example.com/"}),
                "url: the rendered URL is refused: URL must use http or https",
            ),
            (
                "https://{{ data.cred }}@example.com/",
                json!({"cred": "u:s3cret"}),
                "url: the rendered URL is refused: URL must not contain user information",
            ),
        ];
        for (url, data, expected) in cases {
            let mut f = Fixture::new(url, WebhookMethod::Post);
            f.contact.data = object(data);
            assert_eq!(f.prepare().unwrap_err(), expected, "{url}");
        }
        let mut f = Fixture::new("https://example.com/{{ data.long }}", WebhookMethod::Post);
        f.contact.data = object(json!({"long": "a".repeat(2100)}));
        assert!(f.prepare().unwrap_err().contains("at most 2048 characters"));
        // A forbidden address is left to the call, which knows whether private targets are
        // allowed here (see `a_forbidden_address_fails_at_once_without_a_connection`).
        for host in ["127.0.0.1", "metadata.google.internal"] {
            let mut f = Fixture::new(" http://{{ data.host }}/x ", WebhookMethod::Post);
            f.contact.data = object(json!({ "host": host }));
            assert_eq!(f.prepare().unwrap().url, format!("http://{host}/x"));
        }
    }

    #[test]
    fn template_errors_are_errors_naming_the_part_without_secrets() {
        let mut f = Fixture::new(
            "https://hooks.example.com/?k=s3cret{% if %}",
            WebhookMethod::Post,
        );
        assert_eq!(
            f.prepare().unwrap_err(),
            "url: the template failed to render"
        );

        f.config.url = "https://hooks.example.com/".into();
        f.config.headers = vec![(
            "Authorization".into(),
            "Bearer s3cret{{ 1 | divided_by: 0 }}".into(),
        )];
        assert_eq!(
            f.prepare().unwrap_err(),
            "headers.Authorization: the template failed to render"
        );

        f.config.headers = vec![("X-Line".into(), "{{ data.multi }}".into())];
        f.contact.data = object(json!({"multi": "a\r\nX-Injected: 1"}));
        assert_eq!(
            f.prepare().unwrap_err(),
            "headers.X-Line: the rendered value contains CR, LF or NUL"
        );

        f.config.headers = vec![];
        f.config.body = Some(json!({"items": [1, {"total": "{{ 1 | divided_by: 0 }}"}]}));
        let error = f.prepare().unwrap_err();
        assert!(error.starts_with("body.items[1].total: "), "{error}");
        assert!(
            error.len() > "body.items[1].total: ".len(),
            "the engine's message"
        );
    }

    #[test]
    fn what_is_rendered_is_bounded() {
        // Together the rendered texts may not pass 1 MiB, however small each is.
        let mut f = Fixture::new("https://hooks.example.com/", WebhookMethod::Post);
        f.contact.data = object(json!({"big": "x".repeat(600_000)}));
        f.config.body = Some(json!(["{{ big }}", "{{ big }}"]));
        assert_eq!(
            f.prepare().unwrap_err(),
            "body[1]: the rendered request is larger than 1048576 bytes"
        );

        // No render starts past the step's time; text without Liquid still goes out as written.
        f.config.body = Some(json!(["plain", "{{ big | size }}"]));
        let past = Instant::now() - Duration::from_secs(1);
        let mut late = Renderer::new(&f.input(), past);
        let body = f.config.body.as_ref().unwrap();
        assert_eq!(
            late.body(body, &mut Vec::new()).unwrap_err(),
            "body[1]: rendering the request took more than 250 ms"
        );
        let mut on_time = Renderer::new(&f.input(), Instant::now() + MAX_RENDER_TIME);
        assert_eq!(
            on_time.body(body, &mut Vec::new()).unwrap(),
            json!(["plain", "600000"])
        );

        // A crossed bound of the engine itself is named.
        f.config.body = Some(json!({"a": "{% for i in (1..n) %}{% endfor %}"}));
        f.contact.data = object(json!({"n": 1_000_000}));
        assert_eq!(
            f.prepare().unwrap_err(),
            "body.a: loop iterations: more than 10,000 in one email"
        );

        let mut deep = json!("{{ first }}");
        for _ in 0..MAX_BODY_DEPTH + 5 {
            deep = json!([deep]);
        }
        f.config.body = Some(deep);
        let error = f.prepare().unwrap_err();
        assert!(error.starts_with("body[0][0]"), "{error}");
        assert!(
            error.ends_with("…: nested deeper than 128 levels"),
            "{error}"
        );
        assert!(error.len() <= MAX_REASON_BYTES);

        // A long place is cut, and what went wrong still follows it.
        let key = "k".repeat(5_000);
        f.config.body = Some(json!({ key: "{{ 1 | divided_by: 0 }}" }));
        let error = f.prepare().unwrap_err();
        let (place, message) = error.split_once("…: ").unwrap();
        assert_eq!(place.len() + '…'.len_utf8(), MAX_LABEL_BYTES);
        assert!(
            place.starts_with("body.kkk") && !message.is_empty(),
            "{error}"
        );
    }

    #[test]
    fn a_single_text_renders_with_the_step_variables() {
        let f = Fixture::new("https://hooks.example.com/", WebhookMethod::Post);
        let text = |source: &str| render_text(source, &f.contact, &f.context);
        assert_eq!(
            text("{{ first | downcase }}+{{ event.order }}@example.com").unwrap(),
            "ada+A-17@example.com"
        );
        assert_eq!(text("as {written}").unwrap(), "as {written}");
        assert!(text("{{ 1 | divided_by: 0 }}").is_err());
    }

    fn outcome(status: Option<u16>, body: Option<&str>, error: Option<&str>) -> AttemptOutcome {
        AttemptOutcome {
            success: status.is_some_and(|s| (200..300).contains(&s)),
            status,
            body: body.map(str::to_owned),
            duration_ms: 12,
            error: error.map(str::to_owned),
            gone: status == Some(410),
        }
    }

    #[test]
    fn a_2xx_succeeds_on_any_attempt() {
        for status in [200, 201, 204, 299] {
            for attempts in [1, 2, 3] {
                assert_eq!(
                    judge(&outcome(Some(status), Some("ok"), None), attempts),
                    WebhookStepResult::Succeeded {
                        output: json!({"status": status, "durationMs": 12, "body": "ok"})
                    }
                );
            }
        }
    }

    #[test]
    fn transient_failures_are_retried_after_30_then_120_seconds_then_fail() {
        let transient = [
            outcome(Some(408), Some("slow"), None),
            outcome(Some(429), Some("later"), None),
            outcome(Some(500), Some("boom"), None),
            outcome(Some(503), None, None),
            outcome(Some(599), Some(""), None),
            outcome(None, None, Some("timeout")),
            outcome(None, None, Some("connection_error: refused")),
            outcome(None, None, Some("dns_error: no address")),
        ];
        for out in &transient {
            let expected_output = output(out.status, 12, out.body.as_deref());
            for (attempts, delay) in [(0, 30), (1, 30), (2, 120)] {
                assert_eq!(
                    judge(out, attempts),
                    WebhookStepResult::RetryAfter {
                        delay: Duration::from_secs(delay),
                        output: expected_output.clone(),
                    },
                    "{out:?} after {attempts}"
                );
            }
            for attempts in [3, 4] {
                let WebhookStepResult::Failed { output, error } = judge(out, attempts) else {
                    panic!("{out:?} after {attempts}");
                };
                assert_eq!(output, expected_output);
                assert!(
                    error.ends_with(&format!("(after {attempts} attempts)")),
                    "{error}"
                );
            }
        }
        let WebhookStepResult::Failed { error, output } = judge(&transient[3], 3) else {
            panic!()
        };
        assert_eq!(error, "the endpoint answered 503 (after 3 attempts)");
        assert_eq!(
            output,
            json!({"status": 503, "durationMs": 12, "body": null})
        );
        let WebhookStepResult::Failed { error, output } = judge(&transient[5], 3) else {
            panic!()
        };
        assert_eq!(error, "timeout (after 3 attempts)");
        assert_eq!(
            output,
            json!({"status": null, "durationMs": 12, "body": null})
        );
    }

    #[test]
    fn redirects_other_statuses_and_refused_calls_fail_at_once() {
        let cases = [
            (
                outcome(Some(301), Some(""), None),
                "redirects are not followed (status 301)",
            ),
            (
                outcome(Some(302), Some(""), None),
                "redirects are not followed (status 302)",
            ),
            (
                outcome(Some(307), None, None),
                "redirects are not followed (status 307)",
            ),
            (
                outcome(Some(400), Some("bad"), None),
                "the endpoint answered 400",
            ),
            (outcome(Some(401), None, None), "the endpoint answered 401"),
            (outcome(Some(404), None, None), "the endpoint answered 404"),
            (outcome(Some(410), None, None), "the endpoint answered 410"),
            (outcome(Some(422), None, None), "the endpoint answered 422"),
            (
                outcome(None, None, Some("forbidden_address")),
                "forbidden_address",
            ),
            (
                outcome(
                    None,
                    None,
                    Some("invalid_header: the value of x-a contains CR or LF"),
                ),
                "invalid_header: the value of x-a contains CR or LF",
            ),
        ];
        for (out, reason) in cases {
            for attempts in [1, 2, 3] {
                assert_eq!(
                    judge(&out, attempts),
                    WebhookStepResult::Failed {
                        output: output(out.status, 12, out.body.as_deref()),
                        error: reason.into(),
                    },
                    "{out:?}"
                );
            }
        }
    }

    #[test]
    fn the_output_body_is_cut_to_4_kb_at_a_character_boundary() {
        let even = "é".repeat(3_000);
        let odd = format!("a{even}");
        for (body, kept) in [(even.as_str(), 4_096), (odd.as_str(), 4_095), ("short", 5)] {
            let WebhookStepResult::Succeeded { output } =
                judge(&outcome(Some(200), Some(body), None), 1)
            else {
                panic!()
            };
            let sent = output["body"].as_str().unwrap();
            assert_eq!(sent.len(), kept);
            assert!(body.starts_with(sent));
        }
    }

    #[test]
    fn the_policy_is_ten_seconds_with_or_without_private_addresses() {
        assert_eq!(
            policy(false),
            AttemptPolicy {
                timeout: Duration::from_secs(10),
                allow_private: false
            }
        );
        assert!(policy(true).allow_private);
        assert_eq!(MAX_ATTEMPTS, 3);
    }

    #[tokio::test]
    async fn a_request_that_cannot_be_prepared_fails_without_a_call() {
        let f = Fixture::new("{{ data.missing }}/hook", WebhookMethod::Post);
        assert_eq!(
            run(&f.input(), 0, true).await,
            WebhookStepResult::Failed {
                output: json!({"status": null, "durationMs": 0, "body": null}),
                error: "url: the rendered URL is refused: Invalid URL".into(),
            }
        );
    }

    #[tokio::test]
    async fn a_forbidden_address_fails_at_once_without_a_connection() {
        // Nothing listens on 10.0.0.1 here: had the call tried, it would time out, not refuse.
        let mut f = Fixture::new("http://{{ data.host }}:9/", WebhookMethod::Post);
        f.contact.data = object(json!({"host": "10.0.0.1"}));
        let result = run(&f.input(), 0, false).await;
        let WebhookStepResult::Failed { output, error } = &result else {
            panic!("{result:?}");
        };
        assert_eq!(error, "forbidden_address");
        assert_eq!(output["status"], Value::Null);
    }
}
