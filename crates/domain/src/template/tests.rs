//! Tests of the record, the syntax check and rendering.

use super::prepare::prepare;
use super::*;
use crate::contact::Contact;
use serde_json::{json, Map};

fn syntax(source: &str) -> String {
    check_syntax(source).unwrap_err().to_string()
}

fn context(data: Json) -> RenderContext {
    RenderContext {
        contact_id: Uuid::nil(),
        email: "ada@example.org".into(),
        subscribed: true,
        locale: "en".into(),
        unsubscribe_url: "https://u.example/unsub".into(),
        subscribe_url: "https://u.example/sub".into(),
        manage_url: "https://u.example/manage".into(),
        data: data.as_object().cloned().unwrap_or_default(),
        event: Map::new(),
    }
}

fn r(source: &str, data: Json) -> String {
    render(source, &context(data)).unwrap_or_else(|e| panic!("{source}: {e}"))
}

#[test]
fn the_spec_example_of_an_unclosed_block() {
    assert_eq!(
        syntax("{% if plan %}unclosed"),
        "line 1, column 1: 'if' tag is not closed"
    );
}

#[test]
fn unclosed_blocks_point_at_the_innermost_open_tag() {
    assert_eq!(
        syntax("a\n  {% for x in xs %}\n{% if x %}{% endif %}"),
        "line 2, column 3: 'for' tag is not closed"
    );
    assert_eq!(
        syntax("{% if a %}\n{% unless b %}x"),
        "line 2, column 1: 'unless' tag is not closed"
    );
    assert_eq!(
        syntax("{% raw %}{% if %}"),
        "line 1, column 1: 'raw' tag is not closed"
    );
}

#[test]
fn errors_carry_positions_on_later_lines() {
    assert_eq!(
        syntax("line1\n  {{ a | upcase: }}"),
        "line 2, column 18: expected Identifier or Value"
    );
    assert_eq!(
        syntax("x\n{% if a == %}y{% endif %}"),
        "line 2, column 11: Value expected"
    );
    assert_eq!(
        syntax("a\nb {% iff x %}"),
        "line 2, column 6: Unknown tag 'iff'"
    );
    assert_eq!(
        syntax("{% endif %}"),
        "line 1, column 4: Unexpected 'endif' tag"
    );
}

#[test]
fn columns_count_characters_and_survive_non_ascii_text() {
    assert_eq!(
        syntax("Grüße,\n  é{{ a | upcase: }}"),
        "line 2, column 19: expected Identifier or Value"
    );
    assert_eq!(syntax("é {{ ü }}"), "line 1, column 6: expected Value");
    assert_eq!(
        syntax("a\r\nb {% iff %}"),
        "line 2, column 6: Unknown tag 'iff'"
    );
}

#[test]
fn unknown_filters_are_errors_located_at_the_filter() {
    assert_eq!(
        syntax("Hi {{ name | nosuchfilter }}"),
        "line 1, column 14: Unknown filter 'nosuchfilter'"
    );
    assert_eq!(
        syntax("ok {{ a | upcase }}\n{{ a | default: 1 }} {{ b | default }}"),
        "line 2, column 29: Invalid number of arguments: expected at least 1 positional argument (filter 'default')"
    );
    assert_eq!(
        syntax("{% assign x = a | nope %}"),
        "line 1, column 19: Unknown filter 'nope'"
    );
}

#[test]
fn include_render_and_layout_are_rejected() {
    for tag in ["include", "render", "layout"] {
        assert_eq!(
            syntax(&format!("hi\n {{% {tag} 'footer' %}}")),
            format!("line 2, column 2: The '{tag}' tag is not supported")
        );
    }
    assert!(check_syntax("{% raw %}{% include 'x' %}{% endraw %}").is_ok());
}

#[test]
fn the_standard_library_parses() {
    let ok = [
        "{% if a %}1{% elsif b %}2{% else %}3{% endif %}",
        "{% unless a %}x{% endunless %}",
        "{% case a %}{% when 1 %}one{% when 2, 3 %}more{% else %}none{% endcase %}",
        "{% for i in items limit: 2 offset: 1 reversed %}{{ forloop.index }}{% endfor %}",
        "{% assign x = 'a' | upcase %}{% capture y %}b{% endcapture %}",
        "{% raw %}{{ not parsed }}{% endraw %}{% comment %}{{ x ?? }}{% endcomment %}",
        "{% increment n %}{% decrement n %}{% cycle 'a', 'b' %}",
        "{{ 'x' | append: 'y' | truncate: 3 | url_encode }}",
        "",
        "plain text",
    ];
    for source in ok {
        assert!(
            check_syntax(source).is_ok(),
            "{source}: {:?}",
            check_syntax(source)
        );
    }
}

#[test]
fn fallback_shorthand_is_rewritten_to_default() {
    let cases = [
        (
            r#"{{ name ?? "friend" }}"#,
            r#"{{ name | default: "friend" }}"#,
        ),
        ("{{ name ?? 'there' }}", "{{ name | default: 'there' }}"),
        ("{{ count ?? 0 }}", "{{ count | default: 0 }}"),
        ("{{ price ?? -1.5 }}", "{{ price | default: -1.5 }}"),
        ("{{ name ?? friend }}", r#"{{ name | default: "friend" }}"#),
        ("{{ name ?? it\"s }}", "{{ name | default: 'it\"s' }}"),
        (
            r#"{{ name ?? "x" | upcase }}"#,
            r#"{{ name | default: "x" | upcase }}"#,
        ),
        ("{{name??x|upcase}}", r#"{{name| default: "x"|upcase}}"#),
        ("{{- a ?? b -}}", r#"{{- a | default: "b" -}}"#),
        (r#"{{ "a??b" }}"#, r#"{{ "a??b" }}"#),
        (
            "{% raw %}{{ a ?? b }}{% endraw %}",
            "{% raw %}{{ a ?? b }}{% endraw %}",
        ),
        ("a ?? b", "a ?? b"),
    ];
    for (source, expected) in cases {
        assert_eq!(prepare(source).text, expected, "{source}");
        assert!(check_syntax(source).is_ok(), "{source}");
    }
}

#[test]
fn fallback_shorthand_errors_have_positions() {
    assert_eq!(
        syntax("{{ a ?? b ?? c }}"),
        "line 1, column 11: Only one '??' is allowed per output tag"
    );
    assert_eq!(
        syntax("x\n{% if a ?? b %}{% endif %}"),
        "line 2, column 9: '??' is only allowed in output tags ({{ }}), not in {% %} tags"
    );
    assert_eq!(
        syntax("{{ a ?? }}"),
        "line 1, column 6: '??' needs a fallback value"
    );
    assert_eq!(
        syntax("{{ a ?? | upcase }}"),
        "line 1, column 6: '??' needs a fallback value"
    );
    // An earlier element at fault wins over a later shorthand problem.
    assert_eq!(
        syntax("{{ a | nope }} {{ b ?? }}"),
        "line 1, column 8: Unknown filter 'nope'"
    );
    // Positions after a rewritten shorthand refer to the source as written.
    assert_eq!(
        syntax(r#"{{ a ?? "long fallback" }} {{ b | upcase: }}"#),
        "line 1, column 43: expected Identifier or Value"
    );
}

#[test]
fn fallbacks_apply_to_missing_nil_false_and_empty_values() {
    let data = json!({"nil": null, "no": false, "blank": "", "list": [], "obj": {},
        "zero": 0, "name": "Ada", "space": " "});
    for key in ["missing", "nil", "no", "blank", "list", "obj"] {
        assert_eq!(
            r(&format!("{{{{ {key} ?? 'x' }}}}"), data.clone()),
            "x",
            "{key}"
        );
    }
    assert_eq!(r("{{ zero ?? 'x' }}", data.clone()), "0");
    assert_eq!(r("{{ space ?? 'x' }}", data.clone()), " ");
    assert_eq!(r("{{ name ?? 'x' | upcase }}", data.clone()), "ADA");
    assert_eq!(r("{{ missing ?? there | upcase }}", data.clone()), "THERE");
    assert_eq!(r("{{ data.firstName ?? \"friend\" }}", data), "friend");
}

#[test]
fn the_spec_example_renders() {
    let body = "<h1>Hi {{ firstName ?? 'there' }}</h1>{% if plan == \"pro\" %}<p>Thanks for going Pro.</p>{% endif %}";
    assert_eq!(r(body, json!({})), "<h1>Hi there</h1>");
    assert_eq!(
        r(body, json!({"firstName": "Ada", "plan": "pro"})),
        "<h1>Hi Ada</h1><p>Thanks for going Pro.</p>"
    );
    assert_eq!(
        r(
            "Welcome, {{ data.firstName ?? \"friend\" }}",
            json!({"firstName": "Kim"})
        ),
        "Welcome, Kim"
    );
}

#[test]
fn system_variables_and_bare_names_resolve_in_order() {
    let mut ctx = context(json!({"plan": "pro", "email": "shadow@x.io", "first name": "Ada"}));
    ctx.event = json!({"order": {"total": 42}})
        .as_object()
        .cloned()
        .unwrap();
    let out = render(
        "{{ id }}|{{ plunk_id }}|{{ email }}|{{ plunk_email }}|{{ subscribed }}|{{ locale }}|\
         {{ unsubscribeUrl }}|{{ subscribeUrl }}|{{ manageUrl }}|{{ plan }}|{{ data.plan }}|\
         {{ data[\"first name\"] }}|{{ event.order.total }}",
        &ctx,
    )
    .unwrap();
    assert_eq!(
        out,
        "00000000-0000-0000-0000-000000000000|00000000-0000-0000-0000-000000000000|\
         ada@example.org|ada@example.org|true|en|https://u.example/unsub|\
         https://u.example/sub|https://u.example/manage|pro|pro|Ada|42"
    );
}

#[test]
fn undefined_variables_render_empty_and_are_nil_in_conditions() {
    let data = json!({"a": {"x": 1}, "items": [{"name": "n1"}, {"name": "n2", "tag": "t"}]});
    assert_eq!(r("[{{ nothere }}]", data.clone()), "[]");
    assert_eq!(r("[{{ a.b.c }}][{{ nothere.b.c }}]", data.clone()), "[][]");
    assert_eq!(
        r("{% if nothere %}y{% else %}n{% endif %}", data.clone()),
        "n"
    );
    assert_eq!(
        r("{% if nothere == nil %}nil{% endif %}", data.clone()),
        "nil"
    );
    assert_eq!(
        r(
            "{% if plan == \"pro\" %}y{% else %}n{% endif %}",
            data.clone()
        ),
        "n"
    );
    assert_eq!(
        r("{% if a.b.c > 3 %}y{% else %}n{% endif %}", data.clone()),
        "n"
    );
    assert_eq!(
        r(
            "{% assign k = 'nope' %}[{{ data[k] }}{{ event.x.y }}]",
            data.clone()
        ),
        "[]"
    );
    assert_eq!(
        r(
            "{% for i in items %}{{ i.name }}:{{ i.tag }}{{ i.nope.deep }};{% endfor %}",
            data.clone()
        ),
        "n1:;n2:t;"
    );
    assert_eq!(
        r(
            "{% assign p = a %}{{ p.x }}{{ p.missing.deeper }}",
            data.clone()
        ),
        "1"
    );
    assert_eq!(
        r(
            "{% assign sorted = items | sort: 'name' %}{% for i in sorted %}{{ i.nope.x }}{{ i.name }}{% endfor %}",
            data.clone()
        ),
        "n1n2"
    );
    assert_eq!(r("{% for x in nothere %}x{% endfor %}", data), "");
}

#[test]
fn filters_read_undefined_input_as_empty_or_zero_instead_of_failing() {
    let calls = [
        ("join: ','", ""),
        ("first", ""),
        ("last", ""),
        ("map: 'a' | join", ""),
        ("compact | size", "0"),
        ("uniq | size", "0"),
        ("reverse | size", "0"),
        ("sort | size", "0"),
        ("sort_natural | size", "0"),
        ("where: 'a' | size", "0"),
        ("plus: 1", "1"),
        ("minus: 1", "-1"),
        ("times: 2", "0"),
        ("divided_by: 2", "0"),
        ("modulo: 2", "0"),
        ("round", "0"),
        ("ceil", "0"),
        ("floor", "0"),
        ("abs", "0"),
        ("at_least: 5", "5"),
        ("at_most: 5", "0"),
        ("size", "0"),
        ("upcase", ""),
        ("append: 'x'", "x"),
    ];
    let data = json!({"nothing": null});
    for (call, expected) in calls {
        for input in ["nothere", "data.nothere", "nothing"] {
            assert_eq!(
                r(&format!("{{{{ {input} | {call} }}}}"), data.clone()),
                expected,
                "{input} | {call}"
            );
        }
    }
    // Defined values keep the standard behaviour.
    assert_eq!(
        r("{{ items | join: '-' }}", json!({"items": [1, 2]})),
        "1-2"
    );
    assert!(render("{{ 'x' | plus: 1 }}", &context(json!({}))).is_err());
}

#[test]
fn truthiness_is_standard_liquid() {
    let data = json!({"text": "", "zero": 0, "no": false, "nothing": null, "list": []});
    for (key, expected) in [
        ("text", "t"),
        ("zero", "t"),
        ("list", "t"),
        ("no", "f"),
        ("nothing", "f"),
        ("missing", "f"),
    ] {
        let out = r(
            &format!("{{% if {key} %}}t{{% else %}}f{{% endif %}}"),
            data.clone(),
        );
        assert_eq!(out, expected, "{key}");
    }
    assert_eq!(
        r(
            "{% if text != blank %}full{% else %}blank{% endif %}",
            data.clone()
        ),
        "blank"
    );
    assert_eq!(r("{% if list == empty %}e{% endif %}", data), "e");
}

#[test]
fn the_standard_library_renders() {
    let data = json!({"items": ["a", "b", "c"], "n": 7});
    assert_eq!(
        r(
            "{% for i in items limit: 2 reversed %}{{ forloop.index }}{{ i }}{% endfor %}",
            data.clone()
        ),
        "1b2a"
    );
    assert_eq!(
        r(
            "{% assign x = 'hi' | upcase %}{% capture y %}{{ x }}!{% endcapture %}{{ y }}",
            data.clone()
        ),
        "HI!"
    );
    assert_eq!(
        r(
            "{% case n %}{% when 7 %}seven{% else %}other{% endcase %}",
            data.clone()
        ),
        "seven"
    );
    assert_eq!(r("{{ n | plus: 1 | times: 2 }}", data.clone()), "16");
    assert_eq!(r("{% raw %}{{ n }}{% endraw %}", data), "{{ n }}");
}

#[test]
fn runtime_failures_are_render_errors() {
    let e = render("{{ 1 | divided_by: 0 }}", &context(json!({}))).unwrap_err();
    assert!(!e.message.is_empty());
    let e = render("{% if %}", &context(json!({}))).unwrap_err();
    assert!(
        e.message.starts_with("template syntax error at line 1"),
        "{e}"
    );
}

#[test]
fn locale_comes_from_data_or_the_project_language() {
    let contact = Contact {
        id: Uuid::nil(),
        email: EmailAddress::parse("kim@example.org").unwrap(),
        subscribed: false,
        data: json!({"locale": "de", "name": "Kim"})
            .as_object()
            .cloned()
            .unwrap(),
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
    };
    let one_shot = json!({"code": "123"}).as_object().cloned().unwrap();
    let ctx = RenderContext::for_contact(&contact, &one_shot, "en");
    assert_eq!(ctx.locale, "de");
    assert_eq!(
        render("{{ code }} {{ name }} {{ locale }}", &ctx).unwrap(),
        "123 Kim de"
    );
    let mut plain = contact.clone();
    plain.data.clear();
    assert_eq!(
        RenderContext::for_contact(&plain, &Map::new(), "fr").locale,
        "fr"
    );
}

fn changes(body: Json, create: bool) -> Result<TemplateChanges, Vec<FieldError>> {
    let map = body.as_object().unwrap();
    let mut fields = Fields::new(map);
    let changes = if create {
        TemplateChanges::read_create(&mut fields)
    } else {
        TemplateChanges::read_patch(&mut fields)
    };
    fields.finish().map(|()| changes)
}

#[test]
fn field_rules_report_every_bad_member() {
    let errors = changes(
        json!({"name": "", "description": "d".repeat(501), "subject": "a\nb", "body": "",
            "from": "nope", "fromName": "x\r", "replyTo": 5, "type": "OTHER"}),
        true,
    )
    .unwrap_err();
    let got: Vec<_> = errors.iter().map(|e| (e.field.as_str(), e.code)).collect();
    assert_eq!(
        got,
        vec![
            ("name", FieldCode::TooSmall),
            ("description", FieldCode::TooBig),
            ("subject", FieldCode::InvalidString),
            ("body", FieldCode::TooSmall),
            ("from", FieldCode::InvalidString),
            ("fromName", FieldCode::InvalidString),
            ("replyTo", FieldCode::InvalidType),
            ("type", FieldCode::InvalidEnumValue),
        ]
    );
    let errors = changes(json!({}), true).unwrap_err();
    let got: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(got, vec!["name", "subject", "body", "from"]);
}

#[test]
fn limits_are_counted_as_the_spec_says() {
    let ok = changes(
        json!({"name": "é".repeat(100), "subject": "s".repeat(998),
            "body": "b".repeat(MAX_BODY_BYTES), "from": "a@b.co"}),
        true,
    );
    assert!(ok.is_ok());
    let errors = changes(
        json!({"subject": "s".repeat(999), "body": "é".repeat(MAX_BODY_BYTES / 2 + 1)}),
        false,
    )
    .unwrap_err();
    assert_eq!(errors[0].code, FieldCode::TooBig);
    assert_eq!(errors[1].field, "body");
    assert_eq!(errors[1].code, FieldCode::TooBig);
}

#[test]
fn patch_accepts_null_only_where_nullable() {
    let c = changes(
        json!({"description": null, "fromName": null, "replyTo": null}),
        false,
    )
    .unwrap();
    assert_eq!(c.description, Patch::Null);
    assert_eq!(c.from_name, Patch::Null);
    assert_eq!(c.reply_to, Patch::Null);
    let errors = changes(
        json!({"name": null, "subject": null, "body": null, "from": null, "type": null}),
        false,
    )
    .unwrap_err();
    assert!(errors.iter().all(|e| e.code == FieldCode::InvalidType));
    assert_eq!(errors.len(), 5);
    assert!(changes(json!({}), false).unwrap().is_empty());
}

#[test]
fn create_defaults_to_marketing_and_apply_reports_changes() {
    let c = changes(
        json!({"name": "Welcome", "subject": "Hi", "body": "<p>x</p>", "from": "Hello@Acme.io",
            "fromName": "Acme"}),
        true,
    )
    .unwrap();
    let now = Timestamp::now();
    let mut t = c.into_template(Uuid::nil(), now).unwrap();
    assert_eq!(t.template_type, TemplateType::Marketing);
    assert_eq!(t.from.as_str(), "hello@acme.io");
    assert_eq!(t.description, None);
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["type"], json!("MARKETING"));
    assert_eq!(json["replyTo"], Json::Null);
    assert_eq!(json["fromName"], json!("Acme"));
    let same = changes(json!({"name": "Welcome"}), false).unwrap();
    assert!(!t.apply(&same));
    let other = changes(json!({"fromName": null, "type": "HEADLESS"}), false).unwrap();
    assert!(t.apply(&other));
    assert_eq!(t.from_name, None);
    assert_eq!(t.template_type, TemplateType::Headless);
}

#[test]
fn syntax_errors_name_the_failing_fields() {
    let c = changes(
        json!({"subject": "Hi {{ name | nosuchfilter }}", "body": "{% if plan %}unclosed"}),
        false,
    )
    .unwrap();
    let errors = c.syntax_errors();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].field, "subject");
    assert_eq!(errors[0].code, FieldCode::TemplateSyntax);
    assert_eq!(
        errors[1],
        FieldError::new(
            "body",
            FieldCode::TemplateSyntax,
            "line 1, column 1: 'if' tag is not closed"
        )
    );
}

#[test]
fn copies_are_named_and_cut_to_the_limit() {
    assert_eq!(copy_name("Welcome"), "Welcome (copy)");
    let long = "n".repeat(95);
    assert_eq!(copy_name(&long).chars().count(), MAX_NAME_CHARS);
    assert_eq!(copy_name(&long), format!("{long} (cop"));
}

// ------------------------------------------------------------------------------------------------
// Hostile templates
// ------------------------------------------------------------------------------------------------

fn html(source: &str, data: Json) -> Result<String, RenderError> {
    render_html(source, &context(data))
}

#[test]
fn overflowing_arithmetic_is_a_render_error_not_a_crash() {
    for source in [
        "{{ -9223372036854775808 | divided_by: -1 }}",
        "{{ -9223372036854775808 | modulo: -1 }}",
        "{{ 9223372036854775807 | times: 2 }}",
        "{{ 9223372036854775807 | plus: 1 }}",
        "{{ -9223372036854775808 | minus: 1 }}",
        "{{ -9223372036854775808 | abs }}",
    ] {
        let error = render(source, &context(json!({}))).unwrap_err();
        assert!(
            error.message.contains("integer overflow"),
            "{source}: {error}"
        );
        assert_eq!(error.bound, None);
    }
    assert_eq!(
        r("{{ 9223372036854775806 | plus: 1 }}", json!({})),
        "9223372036854775807"
    );
    assert_eq!(r("{{ 'abcdef' | slice: 1, 3 }}", json!({})), "bcd");
    assert_eq!(r("{{ 'abcdef' | slice: -2, 2147483647 }}", json!({})), "ef");
    for source in [
        "{{ 'abc' | slice: 9223372036854775807, 9223372036854775807 }}",
        "{{ 'abc' | slice: -9223372036854775808, 2 }}",
    ] {
        assert!(render(source, &context(json!({}))).is_err(), "{source}");
    }
}

#[test]
fn integer_literals_beyond_64_bits_are_syntax_errors_with_a_position() {
    assert_eq!(
        syntax("Hi {{ 99999999999999999999 }}"),
        "line 1, column 7: The integer 99999999999999999999 is outside the 64-bit range"
    );
    for source in [
        "{% for i in (1..99999999999999999999) %}{% endfor %}",
        "{{ 'x' | append: 99999999999999999999 }}",
        "{{ items[99999999999999999999] }}",
        "{{ a ?? 99999999999999999999 }}",
    ] {
        assert!(
            syntax(source).contains("outside the 64-bit range"),
            "{source}"
        );
        assert!(render(source, &context(json!({}))).is_err());
    }
}

#[test]
fn literal_loops_over_the_bound_are_syntax_errors() {
    assert_eq!(
        syntax("{% for i in (1..100000000) %}x{% endfor %}"),
        "line 1, column 13: This range has 100000000 items; a template runs at most 10000 loop iterations"
    );
}

#[test]
fn loops_stop_at_ten_thousand_iterations_in_total() {
    let nested = "{% for i in (1..n) %}{% for j in (1..n) %}{% endfor %}{% endfor %}";
    // 99 outer passes and 99 × 99 inner ones: 9,900.
    assert_eq!(html(nested, json!({"n": 99})).unwrap(), "");
    let error = html(nested, json!({"n": 101})).unwrap_err();
    assert_eq!(error.bound, Some(Bound::LoopIterations));
    let started = std::time::Instant::now();
    let error = html(
        "{% for i in (1..n) %}{% endfor %}",
        json!({"n": 1_000_000_000}),
    )
    .unwrap_err();
    assert_eq!(error.bound, Some(Bound::LoopIterations));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "the range is never built"
    );
    assert_eq!(
        error.message,
        "loop iterations: more than 10,000 in one email"
    );
}

#[test]
fn the_rendered_body_is_at_most_one_mebibyte_and_the_subject_998_characters() {
    let data = json!({"kb": "k".repeat(1024)});
    let body = "{% for i in (1..1100) %}{{ kb }}{% endfor %}";
    assert_eq!(
        html(body, data.clone()).unwrap_err().bound,
        Some(Bound::BodySize)
    );
    assert_eq!(
        html("{% for i in (1..1000) %}{{ kb }}{% endfor %}", data.clone())
            .unwrap()
            .len(),
        1_024_000
    );
    let subject = render_subject(
        "{% for i in (1..999) %}é{% endfor %}",
        &context(data.clone()),
    );
    assert_eq!(subject.unwrap_err().bound, Some(Bound::SubjectLength));
    let subject = render_subject("{% for i in (1..998) %}é{% endfor %}", &context(data)).unwrap();
    assert_eq!(subject.chars().count(), 998);
}

#[test]
fn growing_values_cross_the_memory_bound() {
    let doubling = "{% assign s = 'xx' %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}{{ s | size }}";
    assert_eq!(
        html(doubling, json!({})).unwrap_err().bound,
        Some(Bound::Memory)
    );
    let replaced = "{{ s | replace: 'x', big }}";
    let data = json!({"s": "x".repeat(10_000), "big": "y".repeat(10_000)});
    assert_eq!(html(replaced, data).unwrap_err().bound, Some(Bound::Memory));
    let many = json!({"s": ",".repeat(200_000)});
    assert_eq!(
        html("{{ s | split: ',' | size }}", many).unwrap_err().bound,
        Some(Bound::Memory)
    );
    // Assigning one large value to many names adds up.
    let copies: String = (0..80)
        .map(|i| format!("{{% assign c{i} = big %}}"))
        .collect();
    let data = json!({"big": "b".repeat(1 << 20)});
    assert_eq!(
        html(
            &format!("{{% assign big = big | append: '' %}}{copies}"),
            data
        )
        .unwrap_err()
        .bound,
        Some(Bound::Memory)
    );
}

#[test]
fn slow_templates_stop_at_the_time_bound() {
    let data = json!({"s": "ab".repeat(400_000)});
    let slow = "{% for i in (1..10000) %}{% if s contains 'abc' %}x{% endif %}{% endfor %}";
    let started = std::time::Instant::now();
    let error = html(slow, data).unwrap_err();
    assert_eq!(error.bound, Some(Bound::Time));
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn deep_nesting_is_refused_before_parsing() {
    let deep = "{% if a %}".repeat(200) + &"{% endif %}".repeat(200);
    assert!(syntax(&deep).contains("nested more than 64 deep"));
    let long = format!("{{% if a{} %}}{{% endif %}}", " or a".repeat(50_000));
    assert!(syntax(&long).contains("joins more than 100"));
    let brackets = format!("{{{{ {}0{} }}}}", "a[".repeat(100_000), "]".repeat(100_000));
    assert!(syntax(&brackets).contains("Brackets are nested"));
}

#[test]
fn outputs_of_an_html_body_are_escaped_unless_raw() {
    let data = json!({"name": "<a href='https://phish.example'>click</a> & \"co\"", "banner": "<b>sale</b>"});
    assert_eq!(
        html("<p>{{ name }}</p>", data.clone()).unwrap(),
        "<p>&lt;a href=&#39;https://phish.example&#39;&gt;click&lt;/a&gt; &amp; &quot;co&quot;</p>"
    );
    assert_eq!(
        html("{{ banner | raw }}", data.clone()).unwrap(),
        "<b>sale</b>"
    );
    assert_eq!(
        html("{{ banner | upcase | raw }}", data.clone()).unwrap(),
        "<B>SALE</B>"
    );
    // Escaped by the author: not escaped twice.
    assert_eq!(
        html("{{ banner | escape }}", data.clone()).unwrap(),
        "&lt;b&gt;sale&lt;/b&gt;"
    );
    // `raw` not last: escaped.
    assert_eq!(
        html("{{ banner | raw | upcase }}", data.clone()).unwrap(),
        "&lt;B&gt;SALE&lt;/B&gt;"
    );
    assert_eq!(
        html("{{ missing ?? '<none>' }}", data.clone()).unwrap(),
        "&lt;none&gt;"
    );
    assert_eq!(
        html("{% cycle banner, 'x' %}", data.clone()).unwrap(),
        "&lt;b&gt;sale&lt;/b&gt;"
    );
    // Text and markup written in the template stay as written; so do raw blocks.
    assert_eq!(
        html("<b>{% raw %}{{ banner }}{% endraw %}</b>", data.clone()).unwrap(),
        "<b>{{ banner }}</b>"
    );
    // A comment cannot hide an output from escaping.
    assert_eq!(
        html(
            "{% comment %}{{ \"{% comment %}\" }}{% endcomment %}{{ banner }}",
            data.clone()
        )
        .unwrap(),
        "&lt;b&gt;sale&lt;/b&gt;"
    );
    // System variables stay valid in attributes.
    let mut ctx = context(data.clone());
    ctx.unsubscribe_url = "https://x.example/u?a=1&b=2".into();
    assert_eq!(
        render_html("<a href=\"{{ unsubscribeUrl }}\">", &ctx).unwrap(),
        "<a href=\"https://x.example/u?a=1&amp;b=2\">"
    );
    // Subjects and text are not HTML.
    assert_eq!(
        render_subject("{{ banner }}", &context(data.clone())).unwrap(),
        "<b>sale</b>"
    );
    assert_eq!(
        render("{{ banner }}", &context(data)).unwrap(),
        "<b>sale</b>"
    );
}

#[test]
fn loops_keep_liquid_semantics() {
    let data = json!({"items": ["a", "b", "c"], "pairs": {"k": 1}});
    assert_eq!(
        r(
            "{% for i in items limit: 5 offset: 2 %}[{{ i }}]{% endfor %}",
            data.clone()
        ),
        "[c]"
    );
    assert_eq!(
        r(
            "{% for i in items offset: 9 %}x{% else %}none{% endfor %}",
            data.clone()
        ),
        "none"
    );
    assert_eq!(
        r(
            "{% for i in (1..5) reversed %}{{ i }}{% endfor %}",
            data.clone()
        ),
        "54321"
    );
    assert_eq!(
        r(
            "{% for i in (1..3) %}{% if i == 2 %}{% continue %}{% endif %}{{ i }}{% endfor %}",
            data.clone()
        ),
        "13"
    );
    assert_eq!(
        r(
            "{% for i in (1..9) %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}",
            data.clone()
        ),
        "12"
    );
    assert_eq!(
        r("{% for i in items %}{{ forloop.index0 }}{{ forloop.rindex }}{{ forloop.first }}{{ forloop.last }}{{ forloop.length }};{% endfor %}", data.clone()),
        "03truefalse3;12falsefalse3;21falsetrue3;"
    );
    assert_eq!(
        r("{% for a in (1..2) %}{% for b in (1..2) %}{{ forloop.parentloop.index }}{{ b }} {% endfor %}{% endfor %}", data.clone()),
        "11 12 21 22 "
    );
    assert_eq!(
        r(
            "{% for p in pairs %}{{ p[0] }}={{ p[1] }}{% endfor %}",
            data.clone()
        ),
        "k=1"
    );
    assert_eq!(
        r("{% for i in (3..1) %}x{% else %}empty{% endfor %}", data),
        "empty"
    );
    assert!(check_syntax("{% tablerow x in items %}{% endtablerow %}").is_err());
}
