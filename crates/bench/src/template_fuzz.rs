//! A seeded fuzzer for the template engine: generated templates and
//! data — grammar-shaped, with extreme numbers, deep and long structures, every filter with
//! random arguments, and random corruptions — go through the syntax check and the three ways of
//! rendering. Any panic, caught or not, is counted through a panic hook; the slowest render is
//! kept. Used by a test in `make test` (a small budget) and by the `template-fuzz` bench binary.

use plunk_domain::template::{self, RenderContext};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// What a fuzz run found.
#[derive(Debug, Default)]
pub struct FuzzReport {
    /// Templates tried.
    pub cases: u64,
    /// Panics anywhere in the engine (0 is the only acceptable figure).
    pub panics: usize,
    /// The first few panic messages, with the template that caused them.
    pub panic_messages: Vec<String>,
    /// Templates refused by the syntax check.
    pub syntax_errors: u64,
    /// Renders that failed, by the bound crossed (`runtime` for other render errors).
    pub render_failures: BTreeMap<String, u64>,
    /// The slowest single render and its template (cut to 200 characters).
    pub slowest: Duration,
    pub slowest_source: String,
}

static PANICS: AtomicUsize = AtomicUsize::new(0);
static MESSAGES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static HOOK: Once = Once::new();

/// Counts every panic of the process (the engine catches its own, so only a hook sees them).
fn install_hook() {
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut messages) = MESSAGES.lock() {
                if messages.len() < 10 {
                    messages.push(info.to_string());
                }
            }
        }));
    });
}

/// Every filter of the language, and a few names that are not filters.
const FILTERS: &[&str] = &[
    "abs",
    "append",
    "at_least",
    "at_most",
    "capitalize",
    "ceil",
    "compact",
    "concat",
    "date",
    "default",
    "divided_by",
    "downcase",
    "escape",
    "escape_once",
    "first",
    "floor",
    "join",
    "last",
    "lstrip",
    "map",
    "minus",
    "modulo",
    "newline_to_br",
    "plus",
    "prepend",
    "remove",
    "remove_first",
    "replace",
    "replace_first",
    "reverse",
    "round",
    "rstrip",
    "size",
    "slice",
    "sort",
    "sort_natural",
    "split",
    "strip",
    "strip_html",
    "strip_newlines",
    "times",
    "truncate",
    "truncatewords",
    "uniq",
    "upcase",
    "url_decode",
    "url_encode",
    "where",
    "raw",
    "nosuchfilter",
];

const NAMES: &[&str] = &[
    "name",
    "items",
    "n",
    "s",
    "nested",
    "big",
    "neg",
    "f",
    "list",
    "html",
    "x",
    "i",
    "data",
    "email",
    "id",
    "subscribed",
    "locale",
    "unsubscribeUrl",
    "event",
    "forloop",
    "nothere",
];

/// Interesting integers as literal text, including ones past 64 bits.
fn integer(rng: &mut StdRng) -> String {
    match rng.gen_range(0..14) {
        0 => i64::MIN.to_string(),
        1 => i64::MAX.to_string(),
        2 => "-1".into(),
        3 => "0".into(),
        4 => "99999999999999999999".into(),
        5 => "-9223372036854775809".into(),
        6 => "10000".into(),
        7 => "100000000".into(),
        8 => format!("{}", rng.gen::<i64>()),
        9 => format!("{}", rng.gen_range(-3..3)),
        _ => format!("{}", rng.gen_range(0..50)),
    }
}

fn text(rng: &mut StdRng) -> String {
    let pieces = [
        "hello",
        " ",
        "<p>",
        "</p>",
        "é",
        "\u{1F600}",
        "&",
        "<script>x</script>",
        "\n",
        "{",
        "}",
        "%",
        "'",
        "\"",
        "a",
        "-",
        "|",
        "??",
        "..",
        "\0",
    ];
    let n = rng.gen_range(0..6);
    (0..n)
        .map(|_| *pieces.choose(rng).unwrap_or(&"x"))
        .collect()
}

/// The grammar-shaped generator.
struct Gen {
    rng: StdRng,
    depth: usize,
}

impl Gen {
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.choose(&mut self.rng).copied().unwrap_or("x")
    }

    fn value(&mut self) -> String {
        match self.rng.gen_range(0..12) {
            0 | 1 => integer(&mut self.rng),
            2 => format!(
                "{}.{}",
                self.rng.gen_range(-5..100),
                self.rng.gen_range(0..99)
            ),
            3 => format!("'{}'", text(&mut self.rng).replace('\'', "")),
            4 => format!("\"{}\"", text(&mut self.rng).replace('"', "")),
            5 => self
                .pick(&["nil", "empty", "blank", "true", "false"])
                .into(),
            6 => format!("{}[{}]", self.pick(NAMES), integer(&mut self.rng)),
            7 => format!("{}.{}", self.pick(NAMES), self.pick(NAMES)),
            8 => format!("data[\"{}\"]", self.pick(NAMES)),
            _ => self.pick(NAMES).into(),
        }
    }

    fn filter(&mut self) -> String {
        let name = self.pick(FILTERS);
        let args = self.rng.gen_range(0..3);
        if args == 0 {
            return name.into();
        }
        let args: Vec<String> = (0..args).map(|_| self.value()).collect();
        format!("{name}: {}", args.join(", "))
    }

    fn expression(&mut self) -> String {
        let mut out = self.value();
        for _ in 0..self.rng.gen_range(0..4) {
            out.push_str(" | ");
            out.push_str(&self.filter());
        }
        out
    }

    fn condition(&mut self) -> String {
        let mut out = self.value();
        for _ in 0..self.rng.gen_range(0..3) {
            let op = self.pick(&["==", "!=", "<", ">", "<=", ">=", "contains", "and", "or"]);
            out.push_str(&format!(" {op} {}", self.value()));
        }
        out
    }

    fn collection(&mut self) -> String {
        let mut out = if self.rng.gen_bool(0.5) {
            format!("({}..{})", self.value(), self.value())
        } else {
            self.value()
        };
        if self.rng.gen_bool(0.3) {
            out.push_str(&format!(" limit: {}", self.value()));
        }
        if self.rng.gen_bool(0.3) {
            out.push_str(&format!(" offset: {}", self.value()));
        }
        if self.rng.gen_bool(0.2) {
            out.push_str(" reversed");
        }
        out
    }

    fn nodes(&mut self) -> String {
        let n = self.rng.gen_range(0..5);
        (0..n).map(|_| self.node()).collect()
    }

    fn block(&mut self, open: String, close: &str) -> String {
        self.depth += 1;
        let body = self.nodes();
        self.depth -= 1;
        format!("{open}{body}{close}")
    }

    fn node(&mut self) -> String {
        let deep = self.depth >= 4;
        match self.rng.gen_range(0..100) {
            0..=19 => text(&mut self.rng),
            20..=44 => format!("{{{{ {} }}}}", self.expression()),
            45..=49 => format!("{{{{ {} ?? {} }}}}", self.value(), self.value()),
            50..=59 if !deep => {
                let open = format!("{{% if {} %}}", self.condition());
                let mut out = self.block(open, "");
                if self.rng.gen_bool(0.3) {
                    out.push_str(&format!("{{% elsif {} %}}", self.condition()));
                    out.push_str(&self.nodes());
                }
                if self.rng.gen_bool(0.3) {
                    out.push_str("{% else %}");
                    out.push_str(&self.nodes());
                }
                out + "{% endif %}"
            }
            60..=69 if !deep => {
                let open = format!("{{% for {} in {} %}}", self.pick(NAMES), self.collection());
                let mut out = self.block(open, "");
                if self.rng.gen_bool(0.2) {
                    out.push_str("{% else %}");
                    out.push_str(&self.nodes());
                }
                out + "{% endfor %}"
            }
            70..=75 => format!(
                "{{% assign {} = {} %}}",
                self.pick(NAMES),
                self.expression()
            ),
            76..=78 if !deep => {
                let open = format!("{{% capture {} %}}", self.pick(NAMES));
                self.block(open, "{% endcapture %}")
            }
            79..=80 if !deep => {
                let open = format!("{{% unless {} %}}", self.condition());
                self.block(open, "{% endunless %}")
            }
            81..=82 => {
                let value = self.value();
                let when = self.value();
                format!(
                    "{{% case {value} %}}{{% when {when} %}}{}{{% else %}}{}{{% endcase %}}",
                    self.nodes(),
                    self.nodes()
                )
            }
            83 => format!("{{% cycle {}, {} %}}", self.value(), self.value()),
            84 => format!("{{% increment {} %}}", self.pick(NAMES)),
            85 => format!("{{% decrement {} %}}", self.pick(NAMES)),
            86 => format!("{{% raw %}}{}{{% endraw %}}", text(&mut self.rng)),
            87 => format!("{{% comment %}}{}{{% endcomment %}}", self.nodes()),
            88 => self.pick(&["{% break %}", "{% continue %}"]).into(),
            89 => self
                .pick(&[
                    "{% tablerow x in items %}",
                    "{% include 'x' %}",
                    "{% endif %}",
                    "{{",
                    "}}",
                    "{%",
                    "%}",
                ])
                .into(),
            _ => text(&mut self.rng),
        }
    }

    fn json(&mut self, depth: usize) -> Value {
        match self.rng.gen_range(0..12) {
            0 => json!(i64::MIN),
            1 => json!(i64::MAX),
            2 => json!(self.rng.gen_range(-100..100)),
            3 => json!(1e308),
            4 => json!(-0.5),
            5 => json!("<a href='https://phish.example'>click</a>"),
            6 => json!("x".repeat(self.rng.gen_range(0..5000))),
            7 => Value::Null,
            8 if depth < 3 => {
                let n = if self.rng.gen_bool(0.05) {
                    1000
                } else {
                    self.rng.gen_range(0..8)
                };
                Value::Array((0..n).map(|_| self.json(depth + 1)).collect())
            }
            9 if depth < 3 => {
                let mut map = Map::new();
                for _ in 0..self.rng.gen_range(0..5) {
                    let key = self.pick(NAMES).to_owned();
                    let value = self.json(depth + 1);
                    map.insert(key, value);
                }
                Value::Object(map)
            }
            _ => json!(text(&mut self.rng)),
        }
    }

    /// A corruption of `source`: a cut, or a delimiter or quote put somewhere.
    fn corrupt(&mut self, source: &str) -> String {
        let chars: Vec<char> = source.chars().collect();
        if chars.is_empty() {
            return source.to_owned();
        }
        let at = self.rng.gen_range(0..chars.len());
        let mut out: String = chars[..at].iter().collect();
        match self.rng.gen_range(0..3) {
            0 => {}
            1 => out.push_str(self.pick(&["{{", "}}", "{%", "%}", "'", "\"", "[", "]", "(", ".."])),
            _ => out.push_str(&integer(&mut self.rng)),
        }
        let skip = if self.rng.gen_bool(0.5) { 1 } else { 0 };
        out.extend(chars.iter().skip(at + skip));
        out
    }
}

/// The hostile reproductions the engine must survive, always tried first.
pub const HOSTILE: &[&str] = &[
    "{{ -9223372036854775808 | divided_by: -1 }}",
    "{{ -9223372036854775808 | modulo: -1 }}",
    "{{ 9223372036854775807 | times: 2 }}",
    "{{ -9223372036854775808 | abs }}",
    "{{ 99999999999999999999 }}",
    "{% for i in (1..99999999999999999999) %}x{% endfor %}",
    "{{ 'x' | append: 99999999999999999999 }}",
    "{{ items[99999999999999999999] }}",
    "{% for i in (1..100000000) %}x{% endfor %}",
    "{% for i in (1..n) %}{% for j in (1..n) %}x{% endfor %}{% endfor %}",
    "{% assign s = 'xx' %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}{{ s | size }}",
    "{{ s | replace: 'x', big }}",
    "{{ 'abc' | slice: 9223372036854775807, 9223372036854775807 }}",
    "{{ 'abc' | slice: -9223372036854775808, 2 }}",
];

/// One of the engine's ways of rendering.
type Render = fn(&str, &RenderContext) -> Result<String, template::RenderError>;

/// Runs `cases` generated templates from `seed` (after [`HOSTILE`]).
pub fn run(seed: u64, cases: u64) -> FuzzReport {
    install_hook();
    let panics_before = PANICS.load(Ordering::SeqCst);
    let mut gen = Gen {
        rng: StdRng::seed_from_u64(seed),
        depth: 0,
    };
    let mut report = FuzzReport::default();
    let mut base = Map::new();
    base.insert("n".into(), json!(100_000));
    base.insert("big".into(), json!("y".repeat(100_000)));
    base.insert("s".into(), json!("x".repeat(10_000)));
    base.insert(
        "items".into(),
        json!([{"name": "a"}, {"name": "b"}, 3, "x"]),
    );
    for i in 0..cases + HOSTILE.len() as u64 {
        let source = match HOSTILE.get(i as usize) {
            Some(s) => (*s).to_owned(),
            None => {
                gen.depth = 0;
                let s = gen.nodes();
                if gen.rng.gen_bool(0.1) {
                    gen.corrupt(&s)
                } else {
                    s
                }
            }
        };
        let mut data = base.clone();
        if let Value::Object(extra) = gen.json(2) {
            data.extend(extra);
        }
        for _ in 0..gen.rng.gen_range(0..4) {
            let key = gen.pick(NAMES).to_owned();
            let value = gen.json(0);
            data.insert(key, value);
        }
        try_one(&source, data, &mut report);
    }
    report.panics = PANICS.load(Ordering::SeqCst) - panics_before;
    report.panic_messages = MESSAGES.lock().map(|m| m.clone()).unwrap_or_default();
    report
}

fn try_one(source: &str, data: Map<String, Value>, report: &mut FuzzReport) {
    report.cases += 1;
    let panics_before = PANICS.load(Ordering::SeqCst);
    if template::check_syntax(source).is_err() {
        report.syntax_errors += 1;
    }
    let context = RenderContext {
        contact_id: uuid::Uuid::nil(),
        email: "fuzz@example.org".into(),
        subscribed: true,
        locale: "en".into(),
        unsubscribe_url: "https://example.org/unsubscribe/t?a=1&b=2".into(),
        subscribe_url: String::new(),
        manage_url: String::new(),
        data,
        event: Map::new(),
    };
    let renders: [Render; 3] = [
        template::render_html,
        template::render_subject,
        template::render,
    ];
    for render in renders {
        let started = Instant::now();
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| render(source, &context)));
        let took = started.elapsed();
        if took > report.slowest {
            report.slowest = took;
            report.slowest_source = source.chars().take(200).collect();
        }
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let key = e.bound.map_or("runtime".to_owned(), |b| format!("{b:?}"));
                *report.render_failures.entry(key).or_default() += 1;
            }
            Err(_) => {}
        }
    }
    if PANICS.load(Ordering::SeqCst) > panics_before {
        if let Ok(mut messages) = MESSAGES.lock() {
            if messages.len() < 20 {
                messages.push(format!(
                    "template: {}",
                    source.chars().take(300).collect::<String>()
                ));
            }
        }
    }
}
