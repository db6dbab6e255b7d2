//! Every filter of the language runs behind a guard.
//!
//! The guard makes the standard filters total on the inputs a template can give them:
//! - integer arithmetic that would overflow (`divided_by: -1` on the smallest integer, `times`
//!   past the range, `abs` of the smallest integer) is a render error instead of a panic or a
//!   wrapped result;
//! - a filter that could make a value far larger than its input in one call (`replace` of a short
//!   pattern by a long text, `join` with a long glue, `split` into a million parts) is refused
//!   before it allocates; `uniq` (quadratic) takes at most [`MAX_UNIQ_ITEMS`] items;
//! - every result is measured: a value over [`bounds::MAX_VALUE_BYTES`] or
//!   [`bounds::MAX_ARRAY_ITEMS`] fails the render, and all results together are charged to the
//!   render's memory bound;
//! - every call checks the time bound;
//! - array and number filters read a `nil` input as `[]` or `0`, as Liquid's reference
//!   implementation does, so an undefined variable never fails a render.
//!
//! It also adds the `raw` filter: the identity, which as the last filter of an output in an HTML
//! body leaves the value unescaped (see `prepare::escape_outputs`).

use super::bounds::{self, MAX_ARRAY_ITEMS, MAX_VALUE_BYTES};
use liquid_core::model::{Value, ValueView};
use liquid_core::parser::{FilterArguments, ParameterReflection};
use liquid_core::{Expression, Filter, FilterReflection, ParseFilter, Runtime};
use std::fmt;

/// Most items `uniq` compares (it compares every pair).
pub const MAX_UNIQ_ITEMS: usize = 2_000;
/// Largest offset or length `slice` takes.
const MAX_SLICE_ARGUMENT: i64 = i32::MAX as i64;

/// What a filter that fails on `nil` reads an undefined (`nil`) input as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NilAs {
    EmptyArray,
    Zero,
}

impl NilAs {
    fn for_filter(name: &str) -> Option<Self> {
        const ARRAY: [&str; 11] = [
            "join",
            "first",
            "last",
            "map",
            "compact",
            "uniq",
            "reverse",
            "concat",
            "sort",
            "sort_natural",
            "where",
        ];
        const NUMBER: [&str; 11] = [
            "plus",
            "minus",
            "times",
            "divided_by",
            "modulo",
            "round",
            "ceil",
            "floor",
            "abs",
            "at_least",
            "at_most",
        ];
        if ARRAY.contains(&name) {
            Some(NilAs::EmptyArray)
        } else if NUMBER.contains(&name) {
            Some(NilAs::Zero)
        } else {
            None
        }
    }

    fn value(self) -> Value {
        match self {
            NilAs::EmptyArray => Value::Array(Vec::new()),
            NilAs::Zero => Value::scalar(0i64),
        }
    }
}

/// The integer operations the guard checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arithmetic {
    Plus,
    Minus,
    Times,
    DividedBy,
    Modulo,
}

impl Arithmetic {
    /// `None` when the result does not fit 64 bits. Division by zero is left to the filter,
    /// which reports it.
    fn checked(self, a: i64, b: i64) -> Option<i64> {
        match self {
            Arithmetic::Plus => a.checked_add(b),
            Arithmetic::Minus => a.checked_sub(b),
            Arithmetic::Times => a.checked_mul(b),
            Arithmetic::DividedBy if b == 0 => Some(0),
            Arithmetic::DividedBy => a.checked_div(b),
            Arithmetic::Modulo if b == 0 => Some(0),
            Arithmetic::Modulo => a.checked_rem(b),
        }
    }
}

/// What the guard checks before a filter runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precheck {
    None,
    Arithmetic(Arithmetic),
    Abs,
    Slice,
    Replace,
    Join,
    Split,
    Uniq,
    /// The result is at most this many times the input's length.
    Grows(usize),
}

impl Precheck {
    fn for_filter(name: &str) -> Self {
        match name {
            "plus" => Precheck::Arithmetic(Arithmetic::Plus),
            "minus" => Precheck::Arithmetic(Arithmetic::Minus),
            "times" => Precheck::Arithmetic(Arithmetic::Times),
            "divided_by" => Precheck::Arithmetic(Arithmetic::DividedBy),
            "modulo" => Precheck::Arithmetic(Arithmetic::Modulo),
            "abs" => Precheck::Abs,
            "slice" => Precheck::Slice,
            "replace" => Precheck::Replace,
            "join" => Precheck::Join,
            "split" => Precheck::Split,
            "uniq" => Precheck::Uniq,
            // `<` → `&lt;`, `"` → `&quot;`, `\n` → `<br />\n`, `%` → `%25`.
            "escape" | "escape_once" => Precheck::Grows(6),
            "newline_to_br" => Precheck::Grows(7),
            "url_encode" => Precheck::Grows(3),
            _ => Precheck::None,
        }
    }
}

/// A standard filter behind the guard.
#[derive(Clone)]
pub(super) struct Guarded {
    inner: Box<dyn ParseFilter>,
    nil_as: Option<NilAs>,
    precheck: Precheck,
}

impl Guarded {
    /// Guards `inner`, by its name.
    pub(super) fn new(inner: Box<dyn ParseFilter>) -> Self {
        let name = inner.reflection().name().to_owned();
        Self {
            nil_as: NilAs::for_filter(&name),
            precheck: Precheck::for_filter(&name),
            inner,
        }
    }
}

impl ParseFilter for Guarded {
    fn parse(&self, arguments: FilterArguments) -> liquid_core::Result<Box<dyn Filter>> {
        // The guard evaluates the positional arguments itself, so it keeps a copy.
        let positional: Vec<Expression> = arguments.positional.collect();
        let inner = self.inner.parse(FilterArguments {
            positional: Box::new(positional.clone().into_iter()),
            keyword: arguments.keyword,
        })?;
        Ok(Box::new(GuardedFilter {
            name: self.inner.reflection().name().to_owned(),
            inner,
            nil_as: self.nil_as,
            precheck: self.precheck,
            arguments: positional,
        }))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self.inner.reflection()
    }
}

#[derive(Debug)]
struct GuardedFilter {
    name: String,
    inner: Box<dyn Filter>,
    nil_as: Option<NilAs>,
    precheck: Precheck,
    arguments: Vec<Expression>,
}

impl fmt::Display for GuardedFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl Filter for GuardedFilter {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> liquid_core::Result<Value> {
        bounds::tick()?;
        let neutral;
        let input: &dyn ValueView = match self.nil_as {
            Some(nil_as) if input.is_nil() => {
                neutral = nil_as.value();
                &neutral
            }
            _ => input,
        };
        self.check(input, runtime)?;
        let out = self.inner.evaluate(input, runtime)?;
        bounds::charge(measure(&out)?)?;
        Ok(out)
    }
}

fn failure(message: String) -> liquid_core::Error {
    liquid_core::Error::with_msg(message)
}

/// The integer a value reads as, the way the standard filters read numbers.
fn integer(value: &dyn ValueView) -> Option<i64> {
    value.as_scalar().and_then(|s| s.to_integer())
}

impl GuardedFilter {
    /// The value of positional argument `index`, when given.
    fn argument(&self, index: usize, runtime: &dyn Runtime) -> liquid_core::Result<Option<Value>> {
        self.arguments
            .get(index)
            .map(|e| e.evaluate(runtime).map(|v| v.into_owned()))
            .transpose()
    }

    fn check(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> liquid_core::Result<()> {
        if let Some(array) = input.as_array() {
            if array.size() as usize > MAX_ARRAY_ITEMS {
                return Err(bounds::too_large());
            }
        }
        match self.precheck {
            Precheck::None => Ok(()),
            Precheck::Arithmetic(op) => {
                let operand = self.argument(0, runtime)?;
                match (integer(input), operand.as_ref().and_then(|o| integer(o))) {
                    (Some(a), Some(b)) if op.checked(a, b).is_none() => Err(failure(format!(
                        "integer overflow in '{}' ({a} and {b})",
                        self.name
                    ))),
                    _ => Ok(()),
                }
            }
            Precheck::Abs if integer(input) == Some(i64::MIN) => {
                Err(failure(format!("integer overflow in 'abs' ({})", i64::MIN)))
            }
            Precheck::Abs => Ok(()),
            Precheck::Slice => {
                for index in 0..2 {
                    let out_of_range = self
                        .argument(index, runtime)?
                        .as_ref()
                        .and_then(|v| integer(v))
                        .is_some_and(|n| n.unsigned_abs() > MAX_SLICE_ARGUMENT as u64);
                    if out_of_range {
                        return Err(failure(format!(
                            "'slice' takes offsets and lengths up to {MAX_SLICE_ARGUMENT}"
                        )));
                    }
                }
                Ok(())
            }
            Precheck::Replace => {
                let text = input.to_kstr();
                let search = self.argument(0, runtime)?.map(|v| v.to_kstr().into_owned());
                let replacement = self.argument(1, runtime)?.map(|v| v.to_kstr().into_owned());
                let (Some(search), Some(replacement)) = (search, replacement) else {
                    return Ok(());
                };
                if replacement.len() <= search.len() {
                    return Ok(());
                }
                let count = if search.is_empty() {
                    text.chars().count() + 1
                } else {
                    text.matches(search.as_str()).count()
                };
                let grown = count.saturating_mul(replacement.len() - search.len());
                afford(text.len().saturating_add(grown))
            }
            Precheck::Join => {
                let Some(array) = input.as_array() else {
                    return Ok(());
                };
                let glue = self.argument(0, runtime)?.map_or(1, |v| v.to_kstr().len());
                let mut total = glue.saturating_mul(array.size() as usize);
                for item in array.values() {
                    total = total.saturating_add(item.to_kstr().len());
                    if total > MAX_VALUE_BYTES {
                        break;
                    }
                }
                afford(total)
            }
            Precheck::Split => {
                let text = input.to_kstr();
                let separator = self.argument(0, runtime)?.map(|v| v.to_kstr().into_owned());
                let parts = match separator.as_deref() {
                    Some("") => text.chars().count(),
                    Some(sep) => text.matches(sep).count() + 1,
                    None => 1,
                };
                if parts > MAX_ARRAY_ITEMS {
                    return Err(bounds::too_large());
                }
                Ok(())
            }
            Precheck::Uniq => match input.as_array() {
                Some(array) if array.size() as usize > MAX_UNIQ_ITEMS => Err(failure(format!(
                    "'uniq' takes at most {MAX_UNIQ_ITEMS} items"
                ))),
                _ => Ok(()),
            },
            Precheck::Grows(factor) => {
                let len = if input.is_nil() {
                    0
                } else {
                    input.to_kstr().len()
                };
                if len.saturating_mul(factor) <= MAX_VALUE_BYTES {
                    return Ok(());
                }
                // Measure exactly only when the cheap estimate is over.
                let text = input.to_kstr();
                let specials = text
                    .bytes()
                    .filter(|b| !b.is_ascii_alphanumeric() && *b != b' ')
                    .count();
                afford(text.len().saturating_add(specials.saturating_mul(factor)))
            }
        }
    }
}

/// Refuses to make a value of `bytes`.
fn afford(bytes: usize) -> liquid_core::Result<()> {
    if bounds::affordable(bytes) {
        Ok(())
    } else {
        Err(bounds::too_large())
    }
}

/// The bytes a value made by a filter takes, for the memory bound; an error when it is over
/// the bound of one value.
pub(super) fn measure(value: &dyn ValueView) -> liquid_core::Result<usize> {
    fn walk(value: &dyn ValueView, total: &mut usize, items: &mut usize) -> bool {
        if let Some(array) = value.as_array() {
            *items += array.size() as usize;
            *total += 8 * array.size() as usize;
            if *items > MAX_ARRAY_ITEMS {
                return false;
            }
            for item in array.values() {
                if !walk(item, total, items) {
                    return false;
                }
            }
        } else if let Some(object) = value.as_object() {
            *items += object.size() as usize;
            if *items > MAX_ARRAY_ITEMS {
                return false;
            }
            for (key, item) in object.iter() {
                *total += key.len() + 8;
                if !walk(item, total, items) {
                    return false;
                }
            }
        } else if let Some(scalar) = value.as_scalar() {
            *total += scalar.to_kstr().len().max(8);
        } else {
            *total += 8;
        }
        *total <= MAX_VALUE_BYTES
    }
    let (mut total, mut items) = (0, 0);
    if walk(value, &mut total, &mut items) {
        Ok(total)
    } else {
        Err(bounds::too_large())
    }
}

/// `raw`: the value unchanged. Last in an output of an HTML body, it keeps the value unescaped.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Raw;

impl FilterReflection for Raw {
    fn name(&self) -> &str {
        "raw"
    }
    fn description(&self) -> &str {
        "Outputs the value without HTML escaping."
    }
    fn positional_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }
    fn keyword_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }
}

impl ParseFilter for Raw {
    fn parse(&self, mut arguments: FilterArguments) -> liquid_core::Result<Box<dyn Filter>> {
        if arguments.positional.next().is_some() || arguments.keyword.next().is_some() {
            return Err(failure(
                "Invalid number of arguments: 'raw' takes none".into(),
            ));
        }
        Ok(Box::new(Raw))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self
    }
}

impl fmt::Display for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("raw")
    }
}

impl Filter for Raw {
    fn evaluate(&self, input: &dyn ValueView, _: &dyn Runtime) -> liquid_core::Result<Value> {
        Ok(input.to_value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflowing_integer_operations_are_found() {
        assert_eq!(Arithmetic::DividedBy.checked(i64::MIN, -1), None);
        assert_eq!(Arithmetic::Modulo.checked(i64::MIN, -1), None);
        assert_eq!(Arithmetic::Times.checked(i64::MAX, 2), None);
        assert_eq!(Arithmetic::Plus.checked(i64::MAX, 1), None);
        assert_eq!(Arithmetic::Minus.checked(i64::MIN, 1), None);
        assert_eq!(Arithmetic::DividedBy.checked(7, 2), Some(3));
        // Division by zero is the filter's own error.
        assert_eq!(Arithmetic::DividedBy.checked(7, 0), Some(0));
    }

    #[test]
    fn values_are_measured_and_refused_past_the_bound() {
        assert_eq!(measure(&Value::scalar("abcdefghij")).unwrap(), 10);
        let big = Value::Array(vec![Value::scalar(1i64); MAX_ARRAY_ITEMS + 1]);
        assert!(measure(&big).is_err());
        let long = Value::scalar("x".repeat(MAX_VALUE_BYTES + 1));
        assert!(measure(&long).is_err());
    }
}
