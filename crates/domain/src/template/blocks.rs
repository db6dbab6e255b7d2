//! The tags of the language that repeat work or make values, written here so they keep the
//! render's bounds:
//!
//! - `for`: iterates without first building its collection (a range is counted, never
//!   materialised), takes one loop iteration from the budget per pass, and applies `limit`,
//!   `offset` and `reversed` as Liquid does. `forloop` offers `index`, `index0`, `rindex`,
//!   `rindex0`, `first`, `last`, `length` and `parentloop`; `break`, `continue` and `else` work.
//! - `capture`: renders into a buffer of at most one value's size, charged to the memory bound.
//! - `cycle`: the standard tag, its output escaped in an HTML body like any output.
//! - `comment`: its content skipped without being parsed (the standard block parses the tags in
//!   it and ignores their errors, which can leave the parser past the end of the text).
//!
//! `tablerow` (HTML tables for storefronts) is not offered.

use super::bounds::{self, Bound, BoundedWriter, MAX_VALUE_BYTES};
use crate::list_unsubscribe::escape_html;
use liquid_core::model::{ArrayView, KString, KStringRef, Object, Value, ValueView};
use liquid_core::parser::{BlockElement, TryMatchToken};
use liquid_core::runtime::{Interrupt, InterruptRegister, StackFrame};
use liquid_core::{
    BlockReflection, Expression, Language, ParseBlock, ParseTag, Renderable, Runtime, TagBlock,
    TagReflection, TagTokenIter, Template,
};
use std::collections::HashMap;
use std::io::Write;

fn failure(message: impl Into<String>) -> liquid_core::Error {
    liquid_core::Error::with_msg(message.into())
}

// ------------------------------------------------------------------------------------------------
// for
// ------------------------------------------------------------------------------------------------

/// `{% for item in collection limit: n offset: n reversed %}…{% else %}…{% endfor %}`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ForBlock;

impl BlockReflection for ForBlock {
    fn start_tag(&self) -> &str {
        "for"
    }
    fn end_tag(&self) -> &str {
        "endfor"
    }
    fn description(&self) -> &str {
        "Repeats its content for each item of an array or a range."
    }
}

/// What a loop iterates over.
#[derive(Debug)]
enum Collection {
    Value(Expression),
    Range(Expression, Expression),
}

impl ParseBlock for ForBlock {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        mut tokens: TagBlock<'_, '_>,
        options: &Language,
    ) -> liquid_core::Result<Box<dyn Renderable>> {
        let name = arguments
            .expect_next("Identifier expected.")?
            .expect_identifier()
            .into_result()?;
        arguments
            .expect_next("\"in\" expected.")?
            .expect_str("in")
            .into_result_custom_msg("\"in\" expected.")?;
        let collection = match arguments
            .expect_next("Array or range expected.")?
            .expect_value()
        {
            TryMatchToken::Matches(value) => Collection::Value(value),
            TryMatchToken::Fails(token) => match token.expect_range() {
                TryMatchToken::Matches((start, end)) => Collection::Range(start, end),
                TryMatchToken::Fails(token) => return Err(token.raise_error()),
            },
        };
        let mut limit = None;
        let mut offset = None;
        let mut reversed = false;
        while let Some(token) = arguments.next() {
            match token.as_str() {
                "limit" => limit = Some(attribute(&mut arguments)?),
                "offset" => offset = Some(attribute(&mut arguments)?),
                "reversed" => reversed = true,
                _ => {
                    return Err(
                        token.raise_custom_error("\"limit\", \"offset\" or \"reversed\" expected.")
                    )
                }
            }
        }
        arguments.expect_nothing()?;

        let mut body = Vec::new();
        let mut otherwise = None;
        while let Some(element) = tokens.next()? {
            match element {
                BlockElement::Tag(mut tag) if tag.name() == "else" => {
                    tag.tokens().expect_nothing()?;
                    otherwise = Some(Template::new(tokens.parse_all(options)?));
                    break;
                }
                BlockElement::Tag(tag) => body.push(tag.parse(&mut tokens, options)?),
                element => body.push(element.parse(&mut tokens, options)?),
            }
        }
        tokens.assert_empty();
        Ok(Box::new(For {
            name: KString::from_ref(name),
            collection,
            limit,
            offset,
            reversed,
            body: Template::new(body),
            otherwise,
        }))
    }

    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}

/// `: value` after `limit` or `offset`.
fn attribute(arguments: &mut TagTokenIter<'_>) -> liquid_core::Result<Expression> {
    arguments
        .expect_next("\":\" expected.")?
        .expect_str(":")
        .into_result_custom_msg("\":\" expected.")?;
    arguments
        .expect_next("Value expected.")?
        .expect_value()
        .into_result()
}

#[derive(Debug)]
struct For {
    name: KString,
    collection: Collection,
    limit: Option<Expression>,
    offset: Option<Expression>,
    reversed: bool,
    body: Template,
    otherwise: Option<Template>,
}

/// The items of an evaluated collection, read one at a time, borrowed where they can be (so
/// the lenient runtime's objects stay lenient inside the loop).
enum Items<'v> {
    /// `start`, `start + 1`, … (never built as an array).
    Counted {
        start: i64,
    },
    Array(&'v dyn ArrayView),
    /// An object's members as `[key, value]` pairs.
    Pairs(Vec<Value>),
}

/// A whole number argument (`limit`, `offset`, a range end).
fn whole_number(
    expression: &Expression,
    runtime: &dyn Runtime,
    what: &str,
) -> liquid_core::Result<i64> {
    let value = expression.evaluate(runtime)?;
    value
        .as_scalar()
        .and_then(|s| s.to_integer())
        .ok_or_else(|| {
            failure(format!(
                "Expected a whole number for {what}, found {}",
                value.type_name()
            ))
        })
}

impl Renderable for For {
    fn render_to(&self, writer: &mut dyn Write, runtime: &dyn Runtime) -> liquid_core::Result<()> {
        let evaluated;
        let (items, count) = match &self.collection {
            Collection::Range(start, end) => {
                let start = whole_number(start, runtime, "the range start")?;
                let end = whole_number(end, runtime, "the range end")?;
                let count = (i128::from(end) - i128::from(start) + 1).max(0);
                // Past the loop bound the render fails on the 10,001st pass anyway.
                let count = count.min(i128::from(bounds::MAX_LOOP_ITERATIONS) + 1) as usize;
                (Items::Counted { start }, count)
            }
            Collection::Value(expression) => {
                evaluated = expression.evaluate(runtime)?;
                if let Some(array) = evaluated.as_array() {
                    (Items::Array(array), array.size().max(0) as usize)
                } else if let Some(object) = evaluated.as_object() {
                    let pairs: Vec<Value> = object
                        .iter()
                        .map(|(k, v)| {
                            Value::Array(vec![Value::scalar(k.into_owned()), v.to_value()])
                        })
                        .collect();
                    let count = pairs.len();
                    (Items::Pairs(pairs), count)
                } else if evaluated.is_nil() || evaluated.is_state() {
                    (Items::Pairs(Vec::new()), 0)
                } else {
                    return Err(failure(format!(
                        "Expected an array, found {}",
                        evaluated.type_name()
                    )));
                }
            }
        };
        let offset = match &self.offset {
            Some(e) => whole_number(e, runtime, "offset")?.clamp(0, count as i64) as usize,
            None => 0,
        };
        let available = count - offset;
        let length = match &self.limit {
            Some(e) => whole_number(e, runtime, "limit")?.clamp(0, available as i64) as usize,
            None => available,
        };
        if length == 0 {
            if let Some(otherwise) = &self.otherwise {
                otherwise.render_to(writer, runtime)?;
            }
            return Ok(());
        }
        let parent = runtime
            .try_get(&[liquid_core::model::Scalar::new("forloop")])
            .map(|v| v.to_value());
        let nil = Value::Nil;
        for pass in 0..length {
            bounds::iteration()?;
            let index = if self.reversed {
                offset + length - 1 - pass
            } else {
                offset + pass
            };
            let counted;
            let item: &dyn ValueView = match &items {
                Items::Counted { start } => {
                    counted = Value::scalar(start + index as i64);
                    &counted
                }
                Items::Array(array) => array.get(index as i64).unwrap_or(&nil),
                Items::Pairs(pairs) => &pairs[index],
            };
            let forloop = forloop(pass, length, parent.as_ref());
            let mut scope: HashMap<KStringRef<'_>, &dyn ValueView> = HashMap::new();
            scope.insert("forloop".into(), &forloop);
            scope.insert(self.name.as_ref(), item);
            let frame = StackFrame::new(runtime, &scope);
            self.body.render_to(writer, &frame)?;
            let interrupt = frame.registers().get_mut::<InterruptRegister>().reset();
            if interrupt == Some(Interrupt::Break) {
                break;
            }
        }
        Ok(())
    }
}

/// The `forloop` object of pass `index` (0-based) of `length`.
fn forloop(index: usize, length: usize, parent: Option<&Value>) -> Value {
    let (i, n) = (index as i64, length as i64);
    let mut object = Object::new();
    object.insert("length".into(), Value::scalar(n));
    object.insert("index".into(), Value::scalar(i + 1));
    object.insert("index0".into(), Value::scalar(i));
    object.insert("rindex".into(), Value::scalar(n - i));
    object.insert("rindex0".into(), Value::scalar(n - i - 1));
    object.insert("first".into(), Value::scalar(i == 0));
    object.insert("last".into(), Value::scalar(i == n - 1));
    object.insert("parentloop".into(), parent.cloned().unwrap_or(Value::Nil));
    Value::Object(object)
}

// ------------------------------------------------------------------------------------------------
// capture
// ------------------------------------------------------------------------------------------------

/// `{% capture name %}…{% endcapture %}`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CaptureBlock;

impl BlockReflection for CaptureBlock {
    fn start_tag(&self) -> &str {
        "capture"
    }
    fn end_tag(&self) -> &str {
        "endcapture"
    }
    fn description(&self) -> &str {
        "Renders its content into a variable."
    }
}

impl ParseBlock for CaptureBlock {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        mut tokens: TagBlock<'_, '_>,
        options: &Language,
    ) -> liquid_core::Result<Box<dyn Renderable>> {
        let name = arguments
            .expect_next("Identifier expected")?
            .expect_identifier()
            .into_result()?;
        arguments.expect_nothing()?;
        let body = Template::new(tokens.parse_all(options)?);
        tokens.assert_empty();
        Ok(Box::new(Capture {
            name: KString::from_ref(name),
            body,
        }))
    }

    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}

#[derive(Debug)]
struct Capture {
    name: KString,
    body: Template,
}

impl Renderable for Capture {
    fn render_to(&self, _: &mut dyn Write, runtime: &dyn Runtime) -> liquid_core::Result<()> {
        let mut captured = Vec::new();
        self.body.render_to(
            &mut BoundedWriter::new(&mut captured, MAX_VALUE_BYTES, Bound::Memory),
            runtime,
        )?;
        // Charged to the memory bound when assigned (see the runtime's `set_global`).
        let text = String::from_utf8(captured)
            .map_err(|_| failure("The captured text is not valid UTF-8"))?;
        runtime.set_global(self.name.clone(), Value::scalar(text));
        Ok(())
    }
}

// ------------------------------------------------------------------------------------------------
// cycle
// ------------------------------------------------------------------------------------------------

/// The standard `cycle` tag, its output escaped while rendering an HTML body.
#[derive(Clone)]
pub(super) struct EscapedTag {
    inner: Box<dyn ParseTag>,
}

impl EscapedTag {
    /// Wraps a tag that writes values.
    pub(super) fn new(inner: Box<dyn ParseTag>) -> Self {
        Self { inner }
    }
}

impl ParseTag for EscapedTag {
    fn parse(
        &self,
        arguments: TagTokenIter<'_>,
        options: &Language,
    ) -> liquid_core::Result<Box<dyn Renderable>> {
        Ok(Box::new(Escaped(self.inner.parse(arguments, options)?)))
    }

    fn reflection(&self) -> &dyn TagReflection {
        self.inner.reflection()
    }
}

#[derive(Debug)]
struct Escaped(Box<dyn Renderable>);

impl Renderable for Escaped {
    fn render_to(&self, writer: &mut dyn Write, runtime: &dyn Runtime) -> liquid_core::Result<()> {
        if !bounds::Budget::escaping() {
            return self.0.render_to(writer, runtime);
        }
        let mut out = Vec::new();
        self.0.render_to(
            &mut BoundedWriter::new(&mut out, MAX_VALUE_BYTES, Bound::Memory),
            runtime,
        )?;
        let text = String::from_utf8_lossy(&out);
        writer
            .write_all(escape_html(&text).as_bytes())
            .map_err(|e| failure(e.to_string()))
    }
}

// ------------------------------------------------------------------------------------------------
// comment
// ------------------------------------------------------------------------------------------------

/// `{% comment %}…{% endcomment %}`: the content is skipped, never parsed (comments nest).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CommentBlock;

impl BlockReflection for CommentBlock {
    fn start_tag(&self) -> &str {
        "comment"
    }
    fn end_tag(&self) -> &str {
        "endcomment"
    }
    fn description(&self) -> &str {
        "Content that is not rendered."
    }
}

impl ParseBlock for CommentBlock {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        mut tokens: TagBlock<'_, '_>,
        _options: &Language,
    ) -> liquid_core::Result<Box<dyn Renderable>> {
        arguments.expect_nothing()?;
        tokens.escape_liquid(true)?;
        tokens.assert_empty();
        Ok(Box::new(Comment))
    }

    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}

#[derive(Debug)]
struct Comment;

impl Renderable for Comment {
    fn render_to(&self, _: &mut dyn Write, _: &dyn Runtime) -> liquid_core::Result<()> {
        Ok(())
    }
}
