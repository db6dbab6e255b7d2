//! The config of each step type (workflows.md §3): [`parse_config`] checks the stored JSON
//! against its type's rules, reporting every problem with its path below the config, and gives
//! the typed [`StepConfig`] the graph rules and the executor read.
//!
//! Members a type does not know are ignored (the editor may keep its own state there), and an
//! optional member sent as `null` counts as absent: a config is a document the editor rewrites
//! whole, where "no timeout" is naturally `null`.

pub mod condition;
pub mod webhook;

pub use condition::{ConditionBranch, ConditionConfig};
pub use webhook::{WebhookConfig, WebhookMethod};

use super::{StepType, MAX_CONFIG_BYTES, MAX_DELAY_DAYS, MAX_WAIT_TIMEOUT_SECONDS};
use crate::contact::DataChange;
use crate::email::EmailAddress;
use crate::template::check_syntax;
use crate::validation::{FieldCode, FieldError};
use serde_json::{Map, Value};

/// Longest `EXIT` reason, in characters.
pub const MAX_EXIT_REASON_CHARS: usize = 200;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// A step's config, parsed and checked for its type.
#[derive(Debug, Clone, PartialEq)]
pub enum StepConfig {
    /// `TRIGGER`: passes through.
    Trigger,
    /// `SEND_EMAIL`: the step's template to `recipient`.
    SendEmail { recipient: EmailRecipient },
    /// `DELAY`: waits `amount` `unit`s (at most [`MAX_DELAY_DAYS`] in all).
    Delay { amount: u32, unit: DelayUnit },
    /// `WAIT_FOR_EVENT`: waits for `event_name`, at most `timeout_seconds` when set.
    WaitForEvent {
        event_name: String,
        timeout_seconds: Option<u32>,
    },
    /// `CONDITION`: routes by a filter.
    Condition(ConditionConfig),
    /// `WEBHOOK`: calls a URL.
    Webhook(WebhookConfig),
    /// `UPDATE_CONTACT`: merges `updates` into the contact's data and applies `subscription`.
    UpdateContact {
        updates: Map<String, Value>,
        subscription: SubscriptionAction,
    },
    /// `EXIT`: ends the execution, with an optional reason.
    Exit { reason: Option<String> },
}

/// Who a `SEND_EMAIL` step writes to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EmailRecipient {
    /// The execution's contact.
    #[default]
    Contact,
    /// Another address: a literal address (normalised), or Liquid that renders to one.
    Custom(String),
}

/// The unit of a `DELAY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DelayUnit {
    Minutes,
    Hours,
    Days,
}

impl DelayUnit {
    /// Every unit.
    pub const ALL: [DelayUnit; 3] = [DelayUnit::Minutes, DelayUnit::Hours, DelayUnit::Days];

    /// The wire form, e.g. `hours`.
    pub fn as_str(self) -> &'static str {
        match self {
            DelayUnit::Minutes => "minutes",
            DelayUnit::Hours => "hours",
            DelayUnit::Days => "days",
        }
    }

    /// One unit, in milliseconds.
    pub fn millis(self) -> i64 {
        match self {
            DelayUnit::Minutes => MINUTE_MS,
            DelayUnit::Hours => HOUR_MS,
            DelayUnit::Days => DAY_MS,
        }
    }
}

/// What an `UPDATE_CONTACT` step does to the subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SubscriptionAction {
    /// Leaves it as it is.
    #[default]
    None,
    Subscribe,
    Unsubscribe,
}

impl SubscriptionAction {
    /// Every action.
    pub const ALL: [SubscriptionAction; 3] = [
        SubscriptionAction::None,
        SubscriptionAction::Subscribe,
        SubscriptionAction::Unsubscribe,
    ];

    /// The wire form, e.g. `unsubscribe`.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionAction::None => "none",
            SubscriptionAction::Subscribe => "subscribe",
            SubscriptionAction::Unsubscribe => "unsubscribe",
        }
    }
}

impl StepConfig {
    /// The step type this config belongs to.
    pub fn step_type(&self) -> StepType {
        match self {
            StepConfig::Trigger => StepType::Trigger,
            StepConfig::SendEmail { .. } => StepType::SendEmail,
            StepConfig::Delay { .. } => StepType::Delay,
            StepConfig::WaitForEvent { .. } => StepType::WaitForEvent,
            StepConfig::Condition(_) => StepType::Condition,
            StepConfig::Webhook(_) => StepType::Webhook,
            StepConfig::UpdateContact { .. } => StepType::UpdateContact,
            StepConfig::Exit { .. } => StepType::Exit,
        }
    }

    /// A `DELAY`'s length in milliseconds; `None` for other types.
    pub fn delay_ms(&self) -> Option<i64> {
        match self {
            StepConfig::Delay { amount, unit } => Some(i64::from(*amount) * unit.millis()),
            _ => None,
        }
    }

    /// A `WAIT_FOR_EVENT`'s timeout in milliseconds; `None` without one or for other types.
    pub fn timeout_ms(&self) -> Option<i64> {
        match self {
            StepConfig::WaitForEvent {
                timeout_seconds: Some(seconds),
                ..
            } => Some(i64::from(*seconds) * 1000),
            _ => None,
        }
    }

    /// The branches a `CONDITION` offers its outgoing transitions: `yes` and `no`, or the
    /// branch ids in order and then `else`. `None` for other types.
    pub fn branches(&self) -> Option<Vec<String>> {
        match self {
            StepConfig::Condition(condition) => Some(condition.branches()),
            _ => None,
        }
    }

    /// Whether this is a `WAIT_FOR_EVENT` with a timeout (so it may leave by `TIMEOUT`).
    pub fn has_timeout(&self) -> bool {
        self.timeout_ms().is_some()
    }
}

/// Parses the `config` of a `step_type` step, found at `path` of the body (for example
/// `config`); every error names the member below `path` it is about (`config.amount`,
/// `config.branches[1].id`). `null` is an empty config. `url_check` vets a `WEBHOOK` URL without
/// Liquid (the SSRF rules); the error it returns is reported on the URL's path with its code
/// and message.
pub fn parse_config(
    step_type: StepType,
    config: &Value,
    path: &str,
    url_check: &dyn Fn(&str) -> Result<(), FieldError>,
) -> Result<StepConfig, Vec<FieldError>> {
    let empty = Map::new();
    let object = match config {
        Value::Null => &empty,
        Value::Object(object) => object,
        _ => {
            return Err(vec![FieldError::new(
                path,
                FieldCode::InvalidType,
                "Expected an object",
            )])
        }
    };
    let size = serde_json::to_vec(config).map_or(usize::MAX, |b| b.len());
    if size > MAX_CONFIG_BYTES {
        return Err(vec![FieldError::new(
            path,
            FieldCode::TooBig,
            format!("A step config may be at most {MAX_CONFIG_BYTES} bytes"),
        )]);
    }
    let mut errors = Vec::new();
    let parsed = {
        let mut members = Members::new(object, path.to_owned(), &mut errors);
        match step_type {
            StepType::Trigger => Some(StepConfig::Trigger),
            StepType::SendEmail => send_email(&mut members),
            StepType::Delay => delay(&mut members),
            StepType::WaitForEvent => wait_for_event(&mut members),
            StepType::Condition => condition::parse(&mut members).map(StepConfig::Condition),
            StepType::Webhook => webhook::parse(&mut members, url_check).map(StepConfig::Webhook),
            StepType::UpdateContact => update_contact(&mut members),
            StepType::Exit => exit(&mut members),
        }
    };
    match parsed {
        Some(config) if errors.is_empty() => Ok(config),
        _ => Err(errors),
    }
}

fn send_email(m: &mut Members<'_, '_>) -> Option<StepConfig> {
    let Some(raw) = m.get("recipient") else {
        return Some(StepConfig::SendEmail {
            recipient: EmailRecipient::Contact,
        });
    };
    let Value::Object(object) = raw else {
        m.error("recipient", FieldCode::InvalidType, "Expected an object");
        return None;
    };
    let mut r = m.nested(object, "recipient");
    let custom = r.choice("type", &[("CONTACT", false), ("CUSTOM", true)], true)?;
    if !custom {
        return Some(StepConfig::SendEmail {
            recipient: EmailRecipient::Contact,
        });
    }
    // Any length passes here: the whole config is bounded, and a literal is bounded by the
    // address rules.
    let text = r.string("customEmail", 1, usize::MAX, true)?.trim();
    let address = if has_liquid(text) {
        if let Some(error) = liquid_error(text, &r.at("customEmail")) {
            r.push(error);
            return None;
        }
        text.to_owned()
    } else {
        match EmailAddress::parse(text) {
            Ok(address) => address.as_str().to_owned(),
            Err(e) => {
                r.error("customEmail", FieldCode::InvalidString, e.to_string());
                return None;
            }
        }
    };
    Some(StepConfig::SendEmail {
        recipient: EmailRecipient::Custom(address),
    })
}

fn delay(m: &mut Members<'_, '_>) -> Option<StepConfig> {
    let amount = m.whole("amount", 1, u64::MAX, true);
    let units: Vec<(&str, DelayUnit)> = DelayUnit::ALL.iter().map(|u| (u.as_str(), *u)).collect();
    let unit = m.choice("unit", &units, true);
    let (amount, unit) = (amount?, unit?);
    let limit = MAX_DELAY_DAYS as i64 * DAY_MS / unit.millis();
    match u32::try_from(amount) {
        Ok(amount) if i64::from(amount) <= limit => Some(StepConfig::Delay { amount, unit }),
        _ => {
            m.error(
                "amount",
                FieldCode::TooBig,
                format!(
                    "A delay may be at most {MAX_DELAY_DAYS} days ({} hours, {} minutes)",
                    MAX_DELAY_DAYS * 24,
                    MAX_DELAY_DAYS * 24 * 60
                ),
            );
            None
        }
    }
}

fn wait_for_event(m: &mut Members<'_, '_>) -> Option<StepConfig> {
    let event_name = match super::event_name(m.get("eventName"), &m.at("eventName")) {
        Ok(name) => Some(name),
        Err(error) => {
            m.push(error);
            None
        }
    };
    let timeout = if m.get("timeout").is_some() {
        Some(m.whole("timeout", 1, u64::from(MAX_WAIT_TIMEOUT_SECONDS), false)?)
    } else {
        None
    };
    Some(StepConfig::WaitForEvent {
        event_name: event_name?,
        // In range by the check above.
        timeout_seconds: timeout.map(|t| t as u32),
    })
}

fn update_contact(m: &mut Members<'_, '_>) -> Option<StepConfig> {
    // `data` is the older name of `updates`; when both are sent, `updates` wins.
    let member = if m.get("updates").is_some() {
        "updates"
    } else {
        "data"
    };
    let updates = match m.get(member) {
        None => Some(Map::new()),
        Some(Value::Object(updates)) => {
            // The contact data rules (key names, depth, size), reported below this member.
            let prefix = m.at(member);
            match DataChange::parse(updates) {
                Ok(_) => Some(updates.clone()),
                Err(errors) => {
                    for e in errors {
                        let rest = e.field.strip_prefix("data").unwrap_or_default();
                        m.push(FieldError::new(
                            format!("{prefix}{rest}"),
                            e.code,
                            e.message,
                        ));
                    }
                    None
                }
            }
        }
        Some(_) => {
            m.error(member, FieldCode::InvalidType, "Expected an object");
            None
        }
    };
    let actions: Vec<(&str, SubscriptionAction)> = SubscriptionAction::ALL
        .iter()
        .map(|a| (a.as_str(), *a))
        .collect();
    let subscription = if m.get("subscriptionAction").is_some() {
        m.choice("subscriptionAction", &actions, false)
    } else {
        Some(SubscriptionAction::None)
    };
    let (updates, subscription) = (updates?, subscription?);
    if updates.is_empty() && subscription == SubscriptionAction::None {
        m.error_here(
            FieldCode::Custom,
            "An UPDATE_CONTACT step needs non-empty updates or a subscriptionAction other than none",
        );
        return None;
    }
    Some(StepConfig::UpdateContact {
        updates,
        subscription,
    })
}

fn exit(m: &mut Members<'_, '_>) -> Option<StepConfig> {
    let reason = if m.get("reason").is_some() {
        Some(
            m.string("reason", 0, MAX_EXIT_REASON_CHARS, false)?
                .to_owned(),
        )
    } else {
        None
    };
    Some(StepConfig::Exit { reason })
}

/// Whether `text` holds Liquid markup (an output or a tag), and so is a template to render
/// rather than a literal.
pub fn has_liquid(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// The `template_syntax` error of `text` at `path`, if its Liquid does not parse.
fn liquid_error(text: &str, path: &str) -> Option<FieldError> {
    check_syntax(text)
        .err()
        .map(|e| FieldError::new(path, FieldCode::TemplateSyntax, e.to_string()))
}

/// Reads the members of one config object at `path`, recording every problem. `null` counts as
/// absent (see the module's notes).
struct Members<'a, 'e> {
    object: &'a Map<String, Value>,
    path: String,
    errors: &'e mut Vec<FieldError>,
}

impl<'a, 'e> Members<'a, 'e> {
    fn new(object: &'a Map<String, Value>, path: String, errors: &'e mut Vec<FieldError>) -> Self {
        Self {
            object,
            path,
            errors,
        }
    }

    /// Reads the object of member `name`, recording into the same errors.
    fn nested<'n>(&'n mut self, object: &'a Map<String, Value>, name: &str) -> Members<'a, 'n> {
        Members::new(object, self.at(name), self.errors)
    }

    /// The path of member `name`.
    fn at(&self, name: &str) -> String {
        format!("{}.{name}", self.path)
    }

    /// Member `name`; `None` when absent or `null`.
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.object.get(name).filter(|v| !v.is_null())
    }

    fn error(&mut self, name: &str, code: FieldCode, message: impl Into<String>) {
        let field = self.at(name);
        self.errors.push(FieldError::new(field, code, message));
    }

    /// An error about the object as a whole.
    fn error_here(&mut self, code: FieldCode, message: impl Into<String>) {
        self.errors
            .push(FieldError::new(self.path.clone(), code, message));
    }

    fn push(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    /// `Some(value)` when the member is there; records `required` when it must be and is not.
    fn present(&mut self, name: &str, required: bool) -> Option<&'a Value> {
        let value = self.get(name);
        if value.is_none() && required {
            self.error(name, FieldCode::Required, "Required");
        }
        value
    }

    /// A string of `min`–`max` characters.
    fn string(&mut self, name: &str, min: usize, max: usize, required: bool) -> Option<&'a str> {
        let Value::String(text) = self.present(name, required)? else {
            self.error(name, FieldCode::InvalidType, "Expected a string");
            return None;
        };
        let chars = text.chars().count();
        if chars < min {
            let message = format!("Must be at least {min} characters");
            self.error(name, FieldCode::TooSmall, message);
            None
        } else if chars > max {
            let message = format!("Must be at most {max} characters");
            self.error(name, FieldCode::TooBig, message);
            None
        } else {
            Some(text)
        }
    }

    /// A whole number in `min..=max` (a number with a fraction, even `.0`, is not whole).
    fn whole(&mut self, name: &str, min: u64, max: u64, required: bool) -> Option<u64> {
        let Value::Number(n) = self.present(name, required)? else {
            self.error(name, FieldCode::InvalidType, "Expected a whole number");
            return None;
        };
        if let Some(v) = n.as_u64() {
            if v < min {
                self.error(name, FieldCode::TooSmall, format!("Must be at least {min}"));
                return None;
            }
            if v > max {
                self.error(name, FieldCode::TooBig, format!("Must be at most {max}"));
                return None;
            }
            return Some(v);
        }
        if n.as_i64().is_some() {
            self.error(name, FieldCode::TooSmall, format!("Must be at least {min}"));
        } else {
            self.error(name, FieldCode::InvalidType, "Expected a whole number");
        }
        None
    }

    /// One of `options`, by its wire form (case-sensitive).
    fn choice<T: Copy>(&mut self, name: &str, options: &[(&str, T)], required: bool) -> Option<T> {
        let Value::String(raw) = self.present(name, required)? else {
            self.error(name, FieldCode::InvalidType, "Expected a string");
            return None;
        };
        let found = options
            .iter()
            .find(|(wire, _)| wire == raw)
            .map(|(_, v)| *v);
        if found.is_none() {
            let names: Vec<String> = options.iter().map(|(w, _)| format!("\"{w}\"")).collect();
            self.error(
                name,
                FieldCode::InvalidEnumValue,
                format!("Expected one of {}", names.join(", ")),
            );
        }
        found
    }
}
