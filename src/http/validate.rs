//! Field-by-field validation of JSON bodies that reports every bad field at once.
//!
//! Bond's API (and so the KYC routes) answers a bad body with *every* problem listed, e.g.
//! `{"Message": {"ssn": ["Missing data for required field."], "email": ["Not a valid email
//! address."]}}`. serde stops at the first error, so these bodies are read as a JSON object and
//! checked here field by field; unknown fields are refused too, so a typo is never ignored.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, OnceLock};

use regex::Regex;
use serde_json::{Map, Value};

use crate::error::{ApiError, FieldError};

/// A string rule: a full-match pattern (the same text as the OpenAPI `pattern`) and what to
/// say when it does not match.
pub struct Rule {
    /// Regex; must be anchored like the spec's pattern.
    pub pattern: &'static str,
    /// The error message when it does not match.
    pub message: &'static str,
}

impl Rule {
    /// Whether `s` satisfies the rule.
    pub fn matches(&self, s: &str) -> bool {
        static COMPILED: OnceLock<Mutex<HashMap<&'static str, Regex>>> = OnceLock::new();
        let mut cache = COMPILED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !cache.contains_key(self.pattern) {
            // Patterns are constants covered by tests; an invalid one refuses every value
            // rather than panicking.
            match Regex::new(self.pattern) {
                Ok(re) => cache.insert(self.pattern, re),
                Err(_) => return false,
            };
        }
        cache.get(self.pattern).is_some_and(|re| re.is_match(s))
    }
}

/// Reads fields of one JSON object, collecting errors.
pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
    path: String,
    seen: BTreeSet<&'static str>,
    /// Errors so far (nested objects add theirs here too).
    pub errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    /// Starts reading `value`, which must be an object; `path` prefixes field names
    /// (`addresses[0]`), empty at the top level.
    pub fn new(value: &'a Value, path: &str) -> Result<Self, FieldError> {
        match value.as_object() {
            Some(obj) => Ok(Self {
                obj,
                path: path.to_owned(),
                seen: BTreeSet::new(),
                errors: Vec::new(),
            }),
            None => Err(FieldError::invalid(
                if path.is_empty() { "body" } else { path },
                "Not a valid object.",
            )),
        }
    }

    /// The full name of a field.
    pub fn name(&self, field: &str) -> String {
        if self.path.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", self.path)
        }
    }

    /// The raw value of a field (`None` when absent; an explicit `null` is a value, which
    /// every reader refuses: omit a field instead); marks it known.
    pub fn raw(&mut self, field: &'static str) -> Option<&'a Value> {
        self.seen.insert(field);
        self.obj.get(field)
    }

    /// Records an error on a field.
    pub fn fail(&mut self, field: &str, message: impl Into<String>) {
        let name = self.name(field);
        self.errors.push(FieldError::invalid(name, message));
    }

    /// A string field checked against `rule`; `None` (with an error when required) otherwise.
    pub fn string(&mut self, field: &'static str, required: bool, rule: &Rule) -> Option<String> {
        match self.raw(field) {
            None => {
                if required {
                    let name = self.name(field);
                    self.errors.push(FieldError::missing(name));
                }
                None
            }
            Some(Value::String(s)) if rule.matches(s) => Some(s.clone()),
            Some(Value::String(_)) => {
                self.fail(field, rule.message);
                None
            }
            Some(Value::Null) => {
                self.fail(field, "Field may not be null.");
                None
            }
            Some(_) => {
                self.fail(field, "Not a valid string.");
                None
            }
        }
    }

    /// A string field that must be one of `allowed`.
    pub fn one_of(
        &mut self,
        field: &'static str,
        required: bool,
        allowed: &[&str],
    ) -> Option<String> {
        match self.raw(field) {
            None => {
                if required {
                    let name = self.name(field);
                    self.errors.push(FieldError::missing(name));
                }
                None
            }
            Some(Value::String(s)) if allowed.contains(&s.as_str()) => Some(s.clone()),
            Some(_) => {
                self.fail(field, format!("Must be one of: {}.", allowed.join(", ")));
                None
            }
        }
    }

    /// An array field with `min..=max` items.
    pub fn array(
        &mut self,
        field: &'static str,
        required: bool,
        min: usize,
        max: usize,
    ) -> Option<&'a Vec<Value>> {
        match self.raw(field) {
            None => {
                if required {
                    let name = self.name(field);
                    self.errors.push(FieldError::missing(name));
                }
                None
            }
            Some(Value::Array(items)) if (min..=max).contains(&items.len()) => Some(items),
            Some(Value::Array(_)) => {
                self.fail(field, format!("Must have between {min} and {max} items."));
                None
            }
            Some(_) => {
                self.fail(field, "Not a valid list.");
                None
            }
        }
    }

    /// Ends reading: unknown fields become errors; returns all errors of this object.
    pub fn finish(mut self) -> Vec<FieldError> {
        for key in self.obj.keys() {
            if !self.seen.contains(key.as_str()) {
                let name = self.name(key);
                self.errors
                    .push(FieldError::invalid(name, "Unknown field."));
            }
        }
        self.errors
    }
}

/// Turns collected errors into the 400 (`code` names the schema, as Bond's `kyc_post_schema`).
pub fn verdict(code: &'static str, errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation {
            code,
            fields: errors,
        })
    }
}
