//! Settings of `template.yaml` that `cfn-lint` and `sam validate --lint` accept but AWS refuses
//! or that break the send pipeline's guarantees (ARCHITECTURE §5), checked on the parsed file.
//! CloudFormation's short tags (`!Ref`, `!GetAtt`, `!Sub`) are kept as tagged values.

use plunk_messaging::blob::prefix::{BlobAccess, BlobPrefix};
use serde_yaml::Value;
use std::collections::BTreeSet;

fn template() -> Value {
    let path = format!("{}/../../template.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).expect("template.yaml parses")
}

/// The logical id a `!Ref X` or `!GetAtt X.Attr` names.
fn target(value: &Value) -> Option<&str> {
    match value {
        Value::Tagged(t) if t.tag == "Ref" || t.tag == "GetAtt" => {
            t.value.as_str().map(|s| s.split('.').next().unwrap_or(s))
        }
        _ => None,
    }
}

fn resources(t: &Value) -> Vec<(&str, &Value)> {
    t["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .map(|(k, v)| (k.as_str().unwrap(), v))
        .collect()
}

fn of_type<'a>(t: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    resources(t)
        .into_iter()
        .filter(|(_, r)| r["Type"] == kind)
        .collect()
}

fn functions(t: &Value) -> Vec<(&str, &Value)> {
    of_type(t, "AWS::Serverless::Function")
}

/// A function property, else the `Globals.Function` one.
fn effective<'a>(t: &'a Value, function: &'a Value, property: &str) -> &'a Value {
    match &function["Properties"][property] {
        Value::Null => &t["Globals"]["Function"][property],
        v => v,
    }
}

/// `(function, event name, event properties)` of every SQS event source.
fn sqs_events(t: &Value) -> Vec<(&str, &str, &Value)> {
    let mut out = Vec::new();
    for (name, f) in functions(t) {
        if let Some(events) = f["Properties"]["Events"].as_mapping() {
            for (event, e) in events {
                if e["Type"] == "SQS" {
                    out.push((name, event.as_str().unwrap(), &e["Properties"]));
                }
            }
        }
    }
    out
}

#[test]
fn every_sqs_event_source_reports_partial_failures_and_allows_two_concurrent_batches() {
    let t = template();
    let events = sqs_events(&t);
    assert!(events.len() >= 3, "the three send queues are consumed");
    for (function, event, p) in events {
        let max = p["ScalingConfig"]["MaximumConcurrency"].as_u64();
        assert!(
            max.is_some_and(|m| (2..=1000).contains(&m)),
            "{function}.{event}: MaximumConcurrency must be 2..=1000 (AWS minimum 2), got {max:?}"
        );
        let types = p["FunctionResponseTypes"]
            .as_sequence()
            .cloned()
            .unwrap_or_default();
        assert!(
            types.iter().any(|v| v == "ReportBatchItemFailures"),
            "{function}.{event}: FunctionResponseTypes must include ReportBatchItemFailures"
        );
        let batch = p["BatchSize"].as_u64().unwrap_or(10);
        assert!(
            (1..=10).contains(&batch),
            "{function}.{event}: BatchSize above 10 needs a batching window"
        );
    }
}

#[test]
fn no_function_has_a_reserved_concurrency_of_one() {
    let t = template();
    assert!(
        t["Globals"]["Function"]["ReservedConcurrentExecutions"].is_null(),
        "no reserved concurrency for every function"
    );
    for (name, f) in functions(&t) {
        let reserved = f["Properties"]["ReservedConcurrentExecutions"].as_u64();
        assert_ne!(reserved, Some(1), "{name}: reserved concurrency 1");
        // With an SQS trigger, reserved concurrency below what the event sources may run
        // throttles the pollers and sends messages to the DLQ untried.
        let sqs_max: u64 = sqs_events(&t)
            .iter()
            .filter(|(function, _, _)| *function == name)
            .map(|(_, _, p)| {
                p["ScalingConfig"]["MaximumConcurrency"]
                    .as_u64()
                    .unwrap_or(0)
            })
            .sum();
        if let Some(reserved) = reserved {
            assert!(
                reserved >= sqs_max,
                "{name}: reserved concurrency {reserved} below its SQS sources' {sqs_max}"
            );
        }
    }
}

#[test]
fn every_consumed_queue_hides_a_message_six_times_as_long_as_its_consumer_may_run() {
    let t = template();
    for (function, event, p) in sqs_events(&t) {
        let queue = target(&p["Queue"])
            .unwrap_or_else(|| panic!("{function}.{event}: Queue is !GetAtt <Queue>.Arn"));
        let q = &t["Resources"][queue];
        assert_eq!(q["Type"], "AWS::SQS::Queue", "{function}.{event}: {queue}");
        let f = &t["Resources"][function];
        let timeout = effective(&t, f, "Timeout").as_u64().unwrap_or(3);
        // SQS's default visibility timeout is 30 s.
        let visibility = q["Properties"]["VisibilityTimeout"].as_u64().unwrap_or(30);
        assert!(
            visibility >= 6 * timeout,
            "{queue}: VisibilityTimeout {visibility} s < 6 x {function}'s Timeout {timeout} s"
        );
        assert!(
            timeout <= 900,
            "{function}: Lambda's Timeout is at most 900 s"
        );
    }
}

#[test]
fn every_send_queue_redrives_to_a_dead_letter_queue() {
    let t = template();
    let queues = of_type(&t, "AWS::SQS::Queue");
    let mut dead_letter: BTreeSet<&str> = queues
        .iter()
        .filter_map(|(_, q)| target(&q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]))
        .collect();
    // Stream event sources record failed batches in a queue of their own.
    for (_, f) in functions(&t) {
        if let Some(events) = f["Properties"]["Events"].as_mapping() {
            dead_letter.extend(events.values().filter_map(|e| {
                target(&e["Properties"]["DestinationConfig"]["OnFailure"]["Destination"])
            }));
        }
    }
    assert!(!dead_letter.is_empty(), "a dead-letter queue exists");
    let consumed: BTreeSet<&str> = sqs_events(&t)
        .iter()
        .filter_map(|(_, _, p)| target(&p["Queue"]))
        .collect();
    for (name, q) in &queues {
        let props = &q["Properties"];
        assert_eq!(
            props["SqsManagedSseEnabled"], true,
            "{name}: encrypted at rest"
        );
        if dead_letter.contains(name) {
            assert!(
                !consumed.contains(name),
                "{name}: a dead-letter queue is not consumed"
            );
            continue;
        }
        let redrive = &props["RedrivePolicy"];
        let dlq = target(&redrive["deadLetterTargetArn"])
            .unwrap_or_else(|| panic!("{name}: RedrivePolicy.deadLetterTargetArn"));
        assert_eq!(
            t["Resources"][dlq]["Type"], "AWS::SQS::Queue",
            "{name}: DLQ {dlq}"
        );
        let receives = redrive["maxReceiveCount"].as_u64();
        assert!(
            receives.is_some_and(|n| (2..=1000).contains(&n)),
            "{name}: maxReceiveCount {receives:?}"
        );
    }
    for queue in &consumed {
        assert!(
            t["Resources"][*queue]["Properties"]["RedrivePolicy"].is_mapping(),
            "{queue}: consumed queues redrive"
        );
    }
}

#[test]
fn every_function_runs_on_provided_al2023_on_arm64() {
    let t = template();
    for (name, f) in functions(&t) {
        assert_eq!(
            effective(&t, f, "Runtime"),
            "provided.al2023",
            "{name}: Runtime"
        );
        assert_eq!(effective(&t, f, "Handler"), "bootstrap", "{name}: Handler");
        let arch: Vec<&str> = effective(&t, f, "Architectures")
            .as_sequence()
            .map(|s| s.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(arch, ["arm64"], "{name}: Architectures");
        assert_eq!(
            f["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{name}: built by cargo-lambda"
        );
    }
}

/// The `[[bin]]` names of crates/functions/Cargo.toml.
fn binaries() -> BTreeSet<String> {
    let path = format!("{}/Cargo.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = BTreeSet::new();
    let mut in_bin = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin {
            if let Some(name) = line.strip_prefix("name = ") {
                out.insert(name.trim_matches('"').to_owned());
            }
        }
    }
    out
}

#[test]
fn every_binary_has_a_function_and_every_function_a_binary() {
    let t = template();
    let deployed: BTreeSet<String> = functions(&t)
        .iter()
        .map(|(name, f)| {
            f["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: Metadata.BuildProperties.Binary"))
                .to_owned()
        })
        .collect();
    let built = binaries();
    assert!(built.contains("public-api") && built.contains("send-consumer"));
    assert_eq!(deployed, built, "template functions vs Cargo.toml binaries");
}

#[test]
fn functions_given_send_queues_get_all_three() {
    let t = template();
    let vars = [
        "PLUNK_SEND_QUEUE_TRANSACTIONAL_URL",
        "PLUNK_SEND_QUEUE_WORKFLOW_URL",
        "PLUNK_SEND_QUEUE_CAMPAIGN_URL",
    ];
    for (name, f) in functions(&t) {
        let env = &f["Properties"]["Environment"]["Variables"];
        let set: Vec<_> = vars.iter().filter(|v| !env[**v].is_null()).collect();
        assert!(
            set.is_empty() || set.len() == 3,
            "{name}: the send queue URLs are set together (the functions refuse fewer)"
        );
        for var in set {
            let queue =
                target(&env[*var]).unwrap_or_else(|| panic!("{name}: {var} is !Ref <Queue>"));
            assert_eq!(
                t["Resources"][queue]["Type"], "AWS::SQS::Queue",
                "{name}: {var}"
            );
        }
    }
}

#[test]
fn the_scheduler_ticks_every_minute() {
    let t = template();
    let schedules: Vec<&str> = functions(&t)
        .iter()
        .filter(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"] == "scheduler")
        .flat_map(|(_, f)| {
            f["Properties"]["Events"]
                .as_mapping()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|(_, e)| {
            matches!(e["Type"].as_str(), Some("Schedule" | "ScheduleV2"))
                .then(|| e["Properties"]["Schedule"].as_str().map(str::to_owned))
                .flatten()
        })
        .map(|s| {
            if s == "rate(1 minute)" {
                "every minute"
            } else {
                "other"
            }
        })
        .collect();
    assert_eq!(schedules, ["every minute"]);
}

#[test]
fn the_blob_bucket_is_private_and_expires_attachments() {
    let t = template();
    let buckets = of_type(&t, "AWS::S3::Bucket");
    assert_eq!(buckets.len(), 1);
    let p = &buckets[0].1["Properties"];
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(
            p["PublicAccessBlockConfiguration"][setting], true,
            "{setting}"
        );
    }
    assert!(p["BucketEncryption"].is_mapping(), "encrypted");
    let rules = p["LifecycleConfiguration"]["Rules"].as_sequence().unwrap();
    // Every blob prefix (attachments, bodies over the inline limit) expires after the send's 72 h
    // window.
    for prefix in BlobPrefix::ALL.map(BlobPrefix::as_str) {
        assert!(
            rules.iter().any(|r| {
                r["Status"] == "Enabled"
                    && (r["Prefix"] == prefix || r["Filter"]["Prefix"] == prefix)
                    && r["ExpirationInDays"].as_u64() == Some(7)
            }),
            "{prefix} expires"
        );
    }
}

#[test]
fn new_events_reach_the_dispatcher_through_the_table_stream() {
    let t = template();
    assert_eq!(
        t["Resources"]["Table"]["Properties"]["StreamSpecification"]["StreamViewType"], "NEW_IMAGE",
        "the dispatcher decodes the new image"
    );
    let (name, f) = functions(&t)
        .into_iter()
        .find(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"] == "event-dispatch")
        .expect("an event-dispatch function");
    let sources: Vec<&Value> = f["Properties"]["Events"]
        .as_mapping()
        .map(|m| m.values().filter(|e| e["Type"] == "DynamoDB").collect())
        .unwrap_or_default();
    assert_eq!(sources.len(), 1, "{name}: one DynamoDB stream source");
    let p = &sources[0]["Properties"];
    assert_eq!(
        target(&p["Stream"]),
        Some("Table"),
        "{name}: the table's stream"
    );
    let types = p["FunctionResponseTypes"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    assert!(
        types.iter().any(|v| v == "ReportBatchItemFailures"),
        "{name}: partial batch responses"
    );
    assert_eq!(
        p["BisectBatchOnFunctionError"], true,
        "{name}: a poison record is isolated"
    );
    assert!(
        target(&p["DestinationConfig"]["OnFailure"]["Destination"]).is_some(),
        "{name}: failed batches are recorded"
    );
    // The filter lets through exactly the writes `keys::is_fed_write` feeds: checked on sample
    // partition keys of every kind, new and rewritten.
    let filters: Vec<(Vec<String>, Vec<String>)> = p["FilterCriteria"]["Filters"]
        .as_sequence()
        .expect("filters")
        .iter()
        .map(|f| {
            let pattern: serde_json::Value =
                serde_json::from_str(f["Pattern"].as_str().expect("a filter pattern"))
                    .expect("the pattern is JSON");
            let names = pattern["eventName"]
                .as_array()
                .expect("event names")
                .iter()
                .map(|n| n.as_str().unwrap().to_owned())
                .collect();
            let suffixes = pattern["dynamodb"]["Keys"]["pk"]["S"]
                .as_array()
                .expect("pk suffixes")
                .iter()
                .map(|s| s["suffix"].as_str().unwrap().to_owned())
                .collect();
            (names, suffixes)
        })
        .collect();
    let project = uuid::Uuid::from_u128(7);
    let segment = uuid::Uuid::from_u128(9);
    let contact = uuid::Uuid::from_u128(11);
    let samples = [
        format!("PROJECT#{project}#EVENTS"),
        plunk_store::keys::contact(project, contact).pk,
        plunk_store::keys::segment_members_partition(project, segment),
        plunk_store::keys::segment_departure(project, segment, contact).pk,
        plunk_store::keys::contact_activity(project, contact).pk,
        plunk_store::keys::segment_member(project, segment, contact).pk,
        plunk_store::keys::counter(project, "contacts").pk,
        plunk_store::keys::dynamic_segment_counts(project).pk,
        plunk_store::keys::segment(project, segment).pk,
    ];
    for pk in &samples {
        for (event_name, is_new) in [("INSERT", true), ("MODIFY", false)] {
            let passes = filters.iter().any(|(names, suffixes)| {
                names.iter().any(|n| n == event_name) && suffixes.iter().any(|s| pk.ends_with(s))
            });
            assert_eq!(
                passes,
                plunk_store::keys::is_fed_write(pk, is_new),
                "{name}: the stream filter and keys::fed disagree on {event_name} of {pk}"
            );
        }
    }
}

/// `(event name, properties)` of a function's HTTP API events.
fn http_events(f: &Value) -> Vec<(&str, &Value)> {
    f["Properties"]["Events"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .filter(|(_, e)| e["Type"] == "HttpApi")
                .map(|(k, e)| (k.as_str().unwrap(), &e["Properties"]))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_hosted_pages_have_their_function_and_routes() {
    let t = template();
    let (name, pages) = functions(&t)
        .into_iter()
        .find(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"] == "pages")
        .expect("a function for the pages binary");
    let routes: BTreeSet<(String, String)> = http_events(pages)
        .iter()
        .map(|(_, p)| {
            (
                p["Method"].as_str().unwrap_or_default().to_owned(),
                p["Path"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for path in [
        "/unsubscribe/{token}",
        "/subscribe/{token}",
        "/manage/{token}",
    ] {
        assert!(
            routes.contains(&("ANY".to_owned(), path.to_owned())),
            "{name}: ANY {path} (another method gets the spec's 405 from the function)"
        );
    }
}

#[test]
fn sent_mail_links_the_hosted_pages_and_no_api_function_names_the_api() {
    let t = template();
    for (name, f) in functions(&t) {
        let public_url = &f["Properties"]["Environment"]["Variables"]["PLUNK_PUBLIC_URL"];
        if f["Metadata"]["BuildProperties"]["Binary"] == "send-consumer" {
            assert!(
                !public_url.is_null(),
                "{name}: PLUNK_PUBLIC_URL (the consumer refuses to start without it)"
            );
        }
        // The HTTP API's definition refers to the functions it routes to: one of them naming
        // the API back would be a circular dependency.
        if !http_events(f).is_empty() {
            assert!(
                public_url.is_null(),
                "{name}: routed by the API, cannot name it"
            );
        }
    }
    assert!(
        t["Globals"]["Function"]["Environment"]["Variables"]["PLUNK_PUBLIC_URL"].is_null(),
        "not global: the API's functions would name the API"
    );
}

/// The logical id of the function built from `binary`.
fn function_of<'a>(t: &'a Value, binary: &str) -> (&'a str, &'a Value) {
    functions(t)
        .into_iter()
        .find(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"] == binary)
        .unwrap_or_else(|| panic!("a function for {binary}"))
}

/// Event type names without case or underscores (`DELIVERY_DELAY` = `deliveryDelay`).
fn event_types(destination: &Value) -> BTreeSet<String> {
    destination["Properties"]["EventDestination"]["MatchingEventTypes"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| s.replace('_', "").to_lowercase())
        .collect()
}

#[test]
fn the_feedback_function_consumes_the_queue_the_ses_event_rule_feeds() {
    let t = template();
    let (name, f) = function_of(&t, "feedback-consumer");
    let events: Vec<_> = sqs_events(&t)
        .into_iter()
        .filter(|(function, _, _)| *function == name)
        .collect();
    assert_eq!(events.len(), 1, "{name}: one SQS event source");
    let queue = target(&events[0].2["Queue"]).expect("Queue is !GetAtt <Queue>.Arn");
    let types = events[0].2["FunctionResponseTypes"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    assert!(types.iter().any(|v| v == "ReportBatchItemFailures"));

    // The rule takes SES events to that queue, and the queue lets only that rule send.
    let rules = of_type(&t, "AWS::Events::Rule");
    let (rule, r) = rules
        .iter()
        .find(|(_, r)| {
            r["Properties"]["Targets"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|target_| target(&target_["Arn"]) == Some(queue))
        })
        .expect("a rule targeting the feedback queue");
    assert_eq!(r["Properties"]["EventPattern"]["source"][0], "aws.ses");
    let policy = of_type(&t, "AWS::SQS::QueuePolicy")
        .into_iter()
        .find(|(_, p)| {
            p["Properties"]["Queues"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|q| target(q) == Some(queue))
        })
        .expect("a policy on the feedback queue")
        .1;
    let statement = &policy["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(statement["Principal"]["Service"], "events.amazonaws.com");
    assert_eq!(statement["Action"], "sqs:SendMessage");
    assert_eq!(
        target(&statement["Condition"]["ArnEquals"]["aws:SourceArn"]),
        Some(*rule)
    );

    // Least privilege: its own role, SQS actions on its queue only, no table-wide deletes of
    // other resources.
    let role = target(&f["Properties"]["Role"]).expect("an explicit role");
    let statements = t["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]
        ["Statement"]
        .as_sequence()
        .expect("statements");
    for s in statements {
        let actions: Vec<&str> = s["Action"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if actions.iter().any(|a| a.starts_with("sqs:")) {
            assert_eq!(target(&s["Resource"]), Some(queue), "SQS on its queue only");
        }
        assert!(!actions.iter().any(|a| a.ends_with('*')), "no wildcards");
    }
}

#[test]
fn both_configuration_sets_publish_to_the_default_bus_and_only_the_tracked_one_opens_and_clicks() {
    let t = template();
    let (_, sender) = function_of(&t, "send-consumer");
    let vars = &sender["Properties"]["Environment"]["Variables"];
    let tracked = target(&vars["PLUNK_SES_CONFIGURATION_SET_TRACKED"]).expect("tracked set");
    let untracked = target(&vars["PLUNK_SES_CONFIGURATION_SET_UNTRACKED"]).expect("untracked set");
    let destinations = of_type(&t, "AWS::SES::ConfigurationSetEventDestination");
    let of_set = |set: &str| {
        destinations
            .iter()
            .find(|(_, d)| target(&d["Properties"]["ConfigurationSetName"]) == Some(set))
            .unwrap_or_else(|| panic!("an event destination for {set}"))
            .1
    };
    let common = [
        "send",
        "delivery",
        "bounce",
        "complaint",
        "reject",
        "deliverydelay",
        "renderingfailure",
    ];
    let expected_untracked: BTreeSet<String> = common.iter().map(|s| s.to_string()).collect();
    let mut expected_tracked = expected_untracked.clone();
    expected_tracked.extend(["open".to_owned(), "click".to_owned()]);
    assert_eq!(event_types(of_set(tracked)), expected_tracked);
    assert_eq!(event_types(of_set(untracked)), expected_untracked);
    for set in [tracked, untracked] {
        let d = &of_set(set)["Properties"]["EventDestination"];
        assert_eq!(d["Enabled"], true, "{set}");
        let bus = match &d["EventBridgeDestination"]["EventBusArn"] {
            Value::Tagged(t) => t.value.as_str().unwrap_or_default().to_owned(),
            other => other.as_str().unwrap_or_default().to_owned(),
        };
        assert!(bus.ends_with(":event-bus/default"), "{set}: {bus}");
    }
    // The rule matches exactly these two sets.
    let rule = &of_type(&t, "AWS::Events::Rule")
        .into_iter()
        .find(|(_, r)| r["Properties"]["EventPattern"]["source"][0] == "aws.ses")
        .expect("the SES rule")
        .1;
    let sets: BTreeSet<&str> = rule["Properties"]["EventPattern"]["detail"]["mail"]["tags"]
        ["ses:configuration-set"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(target)
        .collect();
    assert_eq!(sets, BTreeSet::from([tracked, untracked]));
}

/// `(function or role, statement)` of every inline policy statement: SAM function policies and
/// explicit roles' policy documents.
fn statements(t: &Value) -> Vec<(&str, &Value)> {
    let mut out = Vec::new();
    for (name, f) in functions(t) {
        for policy in f["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            for statement in policy["Statement"].as_sequence().into_iter().flatten() {
                out.push((name, statement));
            }
        }
    }
    for (name, role) in of_type(t, "AWS::IAM::Role") {
        for policy in role["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let document = &policy["PolicyDocument"]["Statement"];
            for statement in document.as_sequence().into_iter().flatten() {
                out.push((name, statement));
            }
        }
    }
    out
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        Value::Tagged(t) => strings(&t.value),
        _ => vec![],
    }
}

/// Whether `statement` requires `key` to equal the stack name.
fn requires_stack_tag(statement: &Value, key: &str) -> bool {
    match &statement["Condition"]["StringEquals"][key] {
        Value::Tagged(t) => t.tag == "Ref" && t.value == "AWS::StackName",
        _ => false,
    }
}

#[test]
fn ses_identities_are_created_changed_and_sent_from_only_with_this_stacks_tag() {
    let t = template();
    assert_eq!(
        t["Globals"]["Function"]["Environment"]["Variables"]["PLUNK_DEPLOYMENT"],
        serde_yaml::from_str::<Value>("!Ref AWS::StackName").unwrap()
    );
    let mut seen = BTreeSet::new();
    for (function, statement) in statements(&t) {
        let actions = strings(&statement["Action"]);
        let on_identities = strings(&statement["Resource"])
            .iter()
            .any(|r| r.contains(":identity/"));
        for action in actions.iter().filter(|a| a.starts_with("ses:")) {
            seen.insert(action.clone());
            let needed = match action.as_str() {
                "ses:CreateEmailIdentity" | "ses:TagResource" => {
                    Some("aws:RequestTag/plunk:deployment")
                }
                "ses:DeleteEmailIdentity"
                | "ses:PutEmailIdentityMailFromAttributes"
                | "ses:SendEmail"
                | "ses:SendRawEmail"
                    if on_identities =>
                {
                    Some("aws:ResourceTag/plunk:deployment")
                }
                _ => None,
            };
            if let Some(key) = needed {
                assert!(
                    requires_stack_tag(statement, key),
                    "{function}: {action} on identities must require {key} = the stack name"
                );
            }
            if action == "ses:CreateEmailIdentity" {
                assert_eq!(
                    strings(&statement["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"]),
                    ["plunk:deployment"],
                    "{function}: no other tag may be set on create"
                );
            }
        }
    }
    for action in [
        "ses:CreateEmailIdentity",
        "ses:DeleteEmailIdentity",
        "ses:SendRawEmail",
    ] {
        assert!(seen.contains(action), "{action} is granted somewhere");
    }
}

/// The function a policy statement belongs to: the SAM function, or the function whose `Role`
/// names the explicit role.
fn binary_of<'a>(t: &'a Value, owner: &'a str) -> &'a str {
    for (name, f) in functions(t) {
        if name == owner || target(&f["Properties"]["Role"]) == Some(owner) {
            return f["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or(name);
        }
    }
    owner
}

#[test]
fn every_table_grant_is_limited_to_the_partitions_the_functions_code_touches() {
    use plunk_store::access::AccessProfile;
    let t = template();
    let mut checked = BTreeSet::new();
    for (owner, statement) in statements(&t) {
        let actions = strings(&statement["Action"]);
        let resources = &statement["Resource"];
        let on_table = target(resources) == Some("Table")
            && !strings(resources).iter().any(|r| r.contains("Stream"))
            || strings(resources)
                .iter()
                .any(|r| r.contains("${Table.Arn}"));
        let item_actions: Vec<&String> = actions
            .iter()
            .filter(|a| {
                a.starts_with("dynamodb:")
                    && !a.contains("Stream")
                    && *a != "dynamodb:GetRecords"
                    && *a != "dynamodb:GetShardIterator"
            })
            .collect();
        if !on_table || item_actions.is_empty() {
            continue;
        }
        let function = binary_of(&t, owner);
        assert!(
            !actions.iter().any(|a| a == "dynamodb:Scan"),
            "{function}: a Scan cannot be limited by partition"
        );
        let profile = AccessProfile::of(function)
            .unwrap_or_else(|| panic!("{function} has table grants but no access profile"));
        let granted =
            strings(&statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]);
        assert_eq!(
            granted,
            profile.patterns(),
            "{function}: the LeadingKeys of {:?} must be exactly its profile (crates/store/src/access.rs)",
            statement["Sid"]
        );
        checked.insert(function.to_owned());
    }
    // Every profile with partitions is granted somewhere, and nothing else is.
    let expected: BTreeSet<String> = AccessProfile::all()
        .into_iter()
        .filter(|p| !p.patterns().is_empty())
        .map(|p| p.name.to_owned())
        .collect();
    assert_eq!(checked, expected);
}

/// The S3 object grants of every function equal the blob prefixes it writes and reads
/// (crates/messaging/src/blob/prefix.rs): a key the code builds under a prefix the role lacks
/// would fail with AccessDenied on AWS, which no emulator here enforces.
#[test]
fn s3_grants_are_exactly_the_blob_prefixes_each_function_uses() {
    let t = template();
    let bucket_arn = "${BlobBucket.Arn}/";
    for (name, f) in functions(&t) {
        let binary = f["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        let access = BlobAccess::of(binary);
        // A function's own policies, or those of the explicit role it runs as.
        let role = target(&f["Properties"]["Role"]);
        let mut granted: BTreeSet<(String, String)> = BTreeSet::new();
        for (holder, statement) in statements(&t) {
            if (holder != name && Some(holder) != role) || statement["Effect"] != "Allow" {
                continue;
            }
            for action in strings(&statement["Action"]) {
                if !action.starts_with("s3:") {
                    continue;
                }
                for resource in strings(&statement["Resource"]) {
                    let prefix = resource
                        .strip_prefix(bucket_arn)
                        .and_then(|r| r.strip_suffix('*'))
                        .unwrap_or_else(|| {
                            panic!("{name}: {action} on {resource}: grant objects by prefix")
                        });
                    granted.insert((action.clone(), prefix.to_owned()));
                }
            }
        }
        let expected: BTreeSet<(String, String)> = access
            .writes
            .iter()
            .map(|p| ("s3:PutObject".to_owned(), p.as_str().to_owned()))
            .chain(
                access
                    .reads
                    .iter()
                    .map(|p| ("s3:GetObject".to_owned(), p.as_str().to_owned())),
            )
            .collect();
        assert_eq!(
            granted, expected,
            "{name} ({binary}): S3 grants vs its BlobAccess"
        );
    }
    // Every listed function is deployed.
    for access in BlobAccess::all() {
        function_of(&t, access.function);
    }
}
