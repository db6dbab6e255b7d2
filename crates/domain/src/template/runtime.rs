//! The lenient runtime: the system variables and `data` as roots, bare
//! names falling back to keys of `data`, and anything undefined reading as `nil` (rendering
//! empty) instead of failing the render, however deep the path.

use super::bounds;
use super::filters;
use super::render::RenderContext;
use liquid_core::model::{
    try_find, ArrayView, DisplayCow, KString, KStringCow, KStringRef, ObjectView, ScalarCow, State,
    Value, ValueCow, ValueView,
};
use liquid_core::runtime::{PartialStore, Registers, RuntimeCore};
use liquid_core::Runtime;
use serde_json::{Map, Value as Json};
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::fmt;

/// A value whose objects answer `nil` for missing keys, so a path through undefined members
/// never fails, wherever the lookup happens (including loop variables).
#[derive(Debug)]
enum Lenient {
    /// A scalar, a state (`empty`, `blank`) or `nil`.
    Leaf(Value),
    /// What a missing member reads as: `nil`, and an empty object when indexed further.
    Missing,
    Array(Vec<Lenient>),
    Object(LenientObject),
}

/// An object with lenient member access, in insertion order.
#[derive(Debug, Default)]
struct LenientObject(Vec<(KString, Lenient)>);

static MISSING: Lenient = Lenient::Missing;
static EMPTY_OBJECT: LenientObject = LenientObject(Vec::new());

impl Lenient {
    fn from_json(value: &Json) -> Self {
        match value {
            Json::Null => Lenient::Leaf(Value::Nil),
            Json::Bool(b) => Lenient::Leaf(Value::scalar(*b)),
            Json::Number(n) => Lenient::Leaf(match n.as_i64() {
                Some(i) => Value::scalar(i),
                None => Value::scalar(n.as_f64().unwrap_or_default()),
            }),
            Json::String(s) => Lenient::Leaf(Value::scalar(s.clone())),
            Json::Array(items) => Lenient::Array(items.iter().map(Self::from_json).collect()),
            Json::Object(map) => Lenient::Object(LenientObject::from_json(map)),
        }
    }

    fn from_value(value: &Value) -> Self {
        match value {
            Value::Array(items) => Lenient::Array(items.iter().map(Self::from_value).collect()),
            Value::Object(map) => Lenient::Object(LenientObject(
                map.iter()
                    .map(|(k, v)| (k.clone(), Self::from_value(v)))
                    .collect(),
            )),
            leaf => Lenient::Leaf(leaf.clone()),
        }
    }

    fn text(value: &str) -> Self {
        Lenient::Leaf(Value::scalar(value.to_owned()))
    }
}

impl LenientObject {
    fn from_json(map: &Map<String, Json>) -> Self {
        LenientObject(
            map.iter()
                .map(|(k, v)| (KString::from_ref(k), Lenient::from_json(v)))
                .collect(),
        )
    }

    fn find(&self, key: &str) -> Option<&Lenient> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn rendered(&self) -> String {
        self.to_value().render().to_string()
    }
}

impl ValueView for Lenient {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        match self {
            Lenient::Leaf(v) => v.render(),
            Lenient::Missing => DisplayCow::Borrowed(&""),
            Lenient::Array(a) => a.render(),
            Lenient::Object(o) => o.render(),
        }
    }
    fn source(&self) -> DisplayCow<'_> {
        match self {
            Lenient::Leaf(v) => v.source(),
            Lenient::Missing => DisplayCow::Borrowed(&"nil"),
            Lenient::Array(a) => a.source(),
            Lenient::Object(o) => o.source(),
        }
    }
    fn type_name(&self) -> &'static str {
        match self {
            Lenient::Leaf(v) => v.type_name(),
            Lenient::Missing => "nil",
            Lenient::Array(_) => "array",
            Lenient::Object(_) => "object",
        }
    }
    fn query_state(&self, state: State) -> bool {
        match self {
            Lenient::Leaf(v) => v.query_state(state),
            Lenient::Missing => Value::Nil.query_state(state),
            Lenient::Array(a) => a.query_state(state),
            Lenient::Object(o) => o.query_state(state),
        }
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        match self {
            Lenient::Leaf(v) => v.to_kstr(),
            Lenient::Missing => KStringCow::from_static(""),
            Lenient::Array(a) => a.to_kstr(),
            Lenient::Object(o) => o.to_kstr(),
        }
    }
    fn to_value(&self) -> Value {
        match self {
            Lenient::Leaf(v) => v.clone(),
            Lenient::Missing => Value::Nil,
            Lenient::Array(a) => a.to_value(),
            Lenient::Object(o) => o.to_value(),
        }
    }
    fn as_scalar(&self) -> Option<ScalarCow<'_>> {
        match self {
            Lenient::Leaf(v) => v.as_scalar(),
            _ => None,
        }
    }
    fn as_array(&self) -> Option<&dyn ArrayView> {
        match self {
            Lenient::Array(a) => Some(a),
            _ => None,
        }
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        match self {
            Lenient::Object(o) => Some(o),
            Lenient::Missing => Some(&EMPTY_OBJECT),
            _ => None,
        }
    }
    fn as_state(&self) -> Option<State> {
        match self {
            Lenient::Leaf(v) => v.as_state(),
            _ => None,
        }
    }
    fn is_nil(&self) -> bool {
        match self {
            Lenient::Leaf(v) => v.is_nil(),
            Lenient::Missing => true,
            _ => false,
        }
    }
}

impl ValueView for LenientObject {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        DisplayCow::Owned(Box::new(self.rendered()))
    }
    fn source(&self) -> DisplayCow<'_> {
        DisplayCow::Owned(Box::new(self.to_value().source().to_string()))
    }
    fn type_name(&self) -> &'static str {
        "object"
    }
    fn query_state(&self, state: State) -> bool {
        match state {
            State::Truthy => true,
            State::DefaultValue | State::Empty | State::Blank => self.0.is_empty(),
        }
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        KStringCow::from_string(self.rendered())
    }
    fn to_value(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v.to_value()))
                .collect(),
        )
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        Some(self)
    }
}

impl ObjectView for LenientObject {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        self.0.len() as i64
    }
    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        Box::new(self.0.iter().map(|(k, _)| KStringCow::from(k.as_ref())))
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        Box::new(self.0.iter().map(|(_, v)| v as &dyn ValueView))
    }
    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        Box::new(
            self.0
                .iter()
                .map(|(k, v)| (KStringCow::from(k.as_ref()), v as &dyn ValueView)),
        )
    }
    fn contains_key(&self, index: &str) -> bool {
        self.find(index).is_some()
    }
    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        match self.find(index) {
            Some(v) => Some(v),
            // `size` of an object is computed by the lookup when the key is absent.
            None if index == "size" => None,
            None => Some(&MISSING),
        }
    }
}

/// The system variables and `data` of one render.
pub(super) struct Globals {
    system: LenientObject,
}

impl Globals {
    pub(super) fn new(context: &RenderContext) -> Self {
        let id = context.contact_id.to_string();
        let system = vec![
            ("id", Lenient::text(&id)),
            ("plunk_id", Lenient::text(&id)),
            ("email", Lenient::text(&context.email)),
            ("plunk_email", Lenient::text(&context.email)),
            (
                "subscribed",
                Lenient::Leaf(Value::scalar(context.subscribed)),
            ),
            ("locale", Lenient::text(&context.locale)),
            ("unsubscribeUrl", Lenient::text(&context.unsubscribe_url)),
            ("subscribeUrl", Lenient::text(&context.subscribe_url)),
            ("manageUrl", Lenient::text(&context.manage_url)),
            (
                "data",
                Lenient::Object(LenientObject::from_json(&context.data)),
            ),
            (
                "event",
                Lenient::Object(LenientObject::from_json(&context.event)),
            ),
        ];
        Globals {
            system: LenientObject(
                system
                    .into_iter()
                    .map(|(k, v)| (KString::from_static(k), v))
                    .collect(),
            ),
        }
    }

    /// A root name: a system variable, else the same key of `data`.
    fn root(&self, name: &str) -> Option<&Lenient> {
        self.system
            .find(name)
            .or_else(|| match self.system.find("data") {
                Some(Lenient::Object(data)) => data.find(name),
                _ => None,
            })
    }
}

/// Values set by `assign` and `capture`. They are kept for the whole render (append-only, in
/// chunks that never move) so lookups can lend them out like the globals; every value assigned
/// is charged to the render's memory bound, which bounds what they take together.
struct Assigned {
    head: Chunk,
    count: Cell<usize>,
    names: RefCell<HashMap<String, usize>>,
}

const CHUNK_SLOTS: usize = 32;

struct Chunk {
    slots: Vec<OnceCell<Lenient>>,
    next: OnceCell<Box<Chunk>>,
}

impl Chunk {
    fn new() -> Self {
        Chunk {
            slots: (0..CHUNK_SLOTS).map(|_| OnceCell::new()).collect(),
            next: OnceCell::new(),
        }
    }
}

impl Assigned {
    fn new() -> Self {
        Assigned {
            head: Chunk::new(),
            count: Cell::new(0),
            names: RefCell::new(HashMap::new()),
        }
    }

    fn slot(&self, index: usize) -> &OnceCell<Lenient> {
        let mut chunk = &self.head;
        for _ in 0..index / CHUNK_SLOTS {
            chunk = chunk.next.get_or_init(|| Box::new(Chunk::new()));
        }
        &chunk.slots[index % CHUNK_SLOTS]
    }

    fn set(&self, name: &str, value: Lenient) {
        let index = self.count.get();
        self.count.set(index + 1);
        // A fresh slot is always empty, so this never fails.
        let _ = self.slot(index).set(value);
        self.names.borrow_mut().insert(name.to_owned(), index);
    }

    fn get(&self, name: &str) -> Option<&Lenient> {
        let index = *self.names.borrow().get(name)?;
        self.slot(index).get()
    }
}

/// The root of the runtime stack: assigned values first, then the globals; anything undefined
/// is `nil` instead of an error. Loop scopes stack on top of it.
pub(super) struct LenientRuntime<'g> {
    core: RuntimeCore<'static>,
    globals: &'g Globals,
    assigned: Assigned,
    indexes: RefCell<liquid_core::Object>,
}

impl<'g> LenientRuntime<'g> {
    pub(super) fn new(globals: &'g Globals) -> Self {
        LenientRuntime {
            core: RuntimeCore::new(),
            globals,
            assigned: Assigned::new(),
            indexes: RefCell::new(liquid_core::Object::new()),
        }
    }

    fn root(&self, name: &str) -> Option<&Lenient> {
        self.assigned.get(name).or_else(|| self.globals.root(name))
    }
}

impl Runtime for LenientRuntime<'_> {
    fn partials(&self) -> &dyn PartialStore {
        self.core.partials()
    }

    fn name(&self) -> Option<KStringRef<'_>> {
        None
    }

    fn roots(&self) -> BTreeSet<KStringCow<'_>> {
        let mut roots: BTreeSet<KStringCow<'_>> =
            self.globals.system.keys().collect::<BTreeSet<_>>();
        if let Some(Lenient::Object(data)) = self.globals.system.find("data") {
            roots.extend(data.keys());
        }
        roots.extend(
            self.assigned
                .names
                .borrow()
                .keys()
                .map(|k| KStringCow::from_string(k.clone())),
        );
        roots
    }

    fn try_get(&self, path: &[ScalarCow<'_>]) -> Option<ValueCow<'_>> {
        let name = path.first()?.to_kstr();
        let root = self.root(name.as_str())?;
        try_find(root, &path[1..])
    }

    fn get(&self, path: &[ScalarCow<'_>]) -> liquid_core::Result<ValueCow<'_>> {
        Ok(self.try_get(path).unwrap_or(ValueCow::Owned(Value::Nil)))
    }

    fn set_global(&self, name: KString, val: Value) -> Option<Value> {
        // Assigned values outlive their statement, so they count against the memory bound; one
        // over it is dropped, and the crossed bound fails the render at its next step.
        let affordable = filters::measure(&val).and_then(bounds::charge).is_ok();
        if affordable {
            self.assigned.set(name.as_str(), Lenient::from_value(&val));
        }
        None
    }

    fn set_index(&self, name: KString, val: Value) -> Option<Value> {
        self.indexes.borrow_mut().insert(name, val)
    }

    fn get_index<'a>(&'a self, name: &str) -> Option<ValueCow<'a>> {
        self.indexes
            .borrow()
            .get(name)
            .map(|v| ValueCow::Owned(v.clone()))
    }

    fn registers(&self) -> &Registers {
        self.core.registers()
    }
}
