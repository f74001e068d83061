//! Semantic checks of one parsed file and its compilation into a [`DomainTree`].
//!
//! Messages reuse envoyproxy/ratelimit's wording (`descriptor has empty key`, `duplicate
//! descriptor composite key '...'`, ...) so that operators and scripts recognise them; every
//! error found in a file is reported, each with its position.

use std::sync::Arc;

use envoy_types::pb::google::protobuf::{ListValue, Struct, Value, value::Kind};

use super::error::ConfigError;
use super::suggest::{self, did_you_mean};
use super::tree::{Choices, DomainTree, LevelSpec, Limit, Node, Pattern, Rule, Selector};
use super::yaml::{
    At, DescriptorDoc, FileDoc, Item, MetaValue, RateLimitDoc, ReplaceDoc, Scalar, StrayKey,
};
use crate::clock::Unit;

/// Checks a parsed file and builds its domain; every problem found is returned.
pub fn compile(file: &str, doc: FileDoc) -> Result<DomainTree, Vec<ConfigError>> {
    let mut checker = Checker {
        file,
        errors: Vec::new(),
        rules: Vec::new(),
    };
    checker.stray_keys(&doc.stray_keys);
    let domain = doc.domain.as_ref().map(|d| d.value.as_str()).unwrap_or("");
    if domain.is_empty() {
        let at = doc.domain.as_ref().map(position);
        checker.error("config file cannot have empty domain", at);
    }
    let mut root = super::tree::Level::default();
    checker.descriptors(&doc.descriptors, &mut root, &[], domain);
    if checker.errors.is_empty() {
        Ok(DomainTree {
            name: domain.to_string(),
            index: 0,
            root,
            rules: checker.rules,
        })
    } else {
        Err(checker.errors)
    }
}

struct Checker<'f> {
    file: &'f str,
    errors: Vec<ConfigError>,
    rules: Vec<Rule>,
}

type Position = (usize, usize);

fn position<T>(at: &At<T>) -> Position {
    (
        at.referenced.line() as usize,
        at.referenced.column() as usize,
    )
}

impl Checker<'_> {
    fn error(&mut self, message: impl Into<String>, at: Option<Position>) {
        self.errors.push(ConfigError::new(self.file, message, at));
    }

    fn stray_keys(&mut self, keys: &[At<StrayKey>]) {
        for key in keys {
            let message = match &key.value {
                StrayKey::Unknown(name) => format!(
                    "config error, unknown key '{name}'{}",
                    did_you_mean(name, &suggest::KEYS)
                ),
                StrayKey::NotText(text) => {
                    format!("config error, key is not of type string: {text}")
                }
            };
            self.error(message, Some(position(key)));
        }
    }

    /// Checks and compiles one list of descriptors into `level`. `parent` is the path of levels
    /// above it and `parent_key` the Go-style dotted key of that path (for messages).
    fn descriptors(
        &mut self,
        items: &[At<Item<DescriptorDoc>>],
        level: &mut super::tree::Level,
        parent: &[LevelSpec],
        parent_key: &str,
    ) {
        for item in items {
            match &item.value {
                Item::NotAMap(text) => self.error(
                    format!("config error, yaml file contains list of type other than map: {text}"),
                    Some(position(item)),
                ),
                Item::Map(doc) => self.descriptor(doc, position(item), level, parent, parent_key),
            }
        }
    }

    fn descriptor(
        &mut self,
        doc: &DescriptorDoc,
        at: Position,
        level: &mut super::tree::Level,
        parent: &[LevelSpec],
        parent_key: &str,
    ) {
        self.stray_keys(&doc.stray_keys);
        let key = doc.key.as_ref().map(|k| k.value.as_str()).unwrap_or("");
        if key.is_empty() {
            self.error("descriptor has empty key", Some(at));
            return;
        }
        let value = doc.value.as_ref().map(|v| v.value.as_str()).unwrap_or("");
        let composite = if value.is_empty() {
            key.to_string()
        } else {
            format!("{key}_{value}")
        };
        let full_key = format!("{parent_key}.{composite}");
        let selector = match Pattern::new(value) {
            _ if value.is_empty() => Selector::AnyValue,
            Some(pattern) => Selector::Wildcard {
                pattern,
                shared: doc.share_threshold,
            },
            None => Selector::Exact(value.to_string()),
        };
        if doc.share_threshold && !matches!(selector, Selector::Wildcard { .. }) {
            self.error(
                format!("share_threshold can only be used with wildcard values (containing '*'), but found key '{composite}'"),
                Some(at),
            );
        }
        let spec = LevelSpec {
            key: key.to_string(),
            selector,
            value_to_metric: doc.value_to_metric,
        };
        let path: Vec<LevelSpec> = parent.iter().cloned().chain([spec.clone()]).collect();
        let rule = doc
            .rate_limit
            .as_ref()
            .and_then(|rate_limit| self.rule(rate_limit, doc, &path, &full_key));
        let Some(node) = self.insert(level, &spec, at, &full_key) else {
            return;
        };
        if let Some(rule) = rule {
            node.rule = Some(self.rules.len());
            self.rules.push(rule);
        }
        self.descriptors(&doc.descriptors, &mut node.children, &path, &full_key);
    }

    /// Adds a node for `spec` to `level`; `None` (and an error) when it is already there.
    fn insert<'l>(
        &mut self,
        level: &'l mut super::tree::Level,
        spec: &LevelSpec,
        at: Position,
        full_key: &str,
    ) -> Option<&'l mut Node> {
        let choices: &mut Choices = level.by_key.entry(spec.key.clone()).or_default();
        let taken = match &spec.selector {
            Selector::Exact(value) => choices.exact.contains_key(value),
            Selector::AnyValue => choices.any.is_some(),
            Selector::Wildcard { pattern, .. } => choices
                .wildcards
                .iter()
                .any(|(p, _)| p.text() == pattern.text()),
        };
        if taken {
            self.error(
                format!("duplicate descriptor composite key '{full_key}'"),
                Some(at),
            );
            return None;
        }
        Some(match &spec.selector {
            Selector::Exact(value) => choices.exact.entry(value.clone()).or_default(),
            Selector::AnyValue => choices.any.insert(Node::default()),
            Selector::Wildcard { pattern, .. } => {
                choices.wildcards.push((pattern.clone(), Node::default()));
                &mut choices
                    .wildcards
                    .last_mut()
                    .expect("an element was just pushed")
                    .1
            }
        })
    }

    fn rule(
        &mut self,
        at: &At<RateLimitDoc>,
        doc: &DescriptorDoc,
        path: &[LevelSpec],
        full_key: &str,
    ) -> Option<Rule> {
        let rate_limit = &at.value;
        let errors_before = self.errors.len();
        self.stray_keys(&rate_limit.stray_keys);
        let unit = self.unit(at);
        let requests_per_unit = rate_limit
            .requests_per_unit
            .as_ref()
            .map_or(Some(0), |n| self.requests_per_unit(n));
        let name = rate_limit
            .name
            .as_ref()
            .map(|n| n.value.clone())
            .filter(|n| !n.is_empty());
        let replaces = self.replaces(&rate_limit.replaces, name.as_deref());
        let metadata = doc.metadata.as_ref().and_then(|m| self.metadata(m));
        if self.errors.len() > errors_before {
            return None;
        }
        let limit = match (rate_limit.unlimited, unit, requests_per_unit) {
            (true, _, _) => Limit::Unlimited,
            (false, Some(unit), Some(requests_per_unit)) => Limit::Limited {
                unit,
                requests_per_unit,
            },
            _ => return None,
        };
        Some(Rule {
            index: self.rules.len(),
            path: path.to_vec(),
            limit,
            name,
            replaces,
            shadow_mode: doc.shadow_mode,
            quota_mode: doc.quota_mode,
            detailed_metric: doc.detailed_metric,
            metadata,
            path_key: full_key.to_string(),
        })
    }

    /// The rate limit's unit; an unlimited rule must have none, any other a known one.
    fn unit(&mut self, at: &At<RateLimitDoc>) -> Option<Unit> {
        let rate_limit = &at.value;
        let text = rate_limit
            .unit
            .as_ref()
            .map(|u| u.value.as_str())
            .unwrap_or("");
        let unit_at = rate_limit
            .unit
            .as_ref()
            .map(position)
            .or(Some(position(at)));
        let unit = Unit::parse(text);
        match (rate_limit.unlimited, unit) {
            (true, Some(_)) => {
                self.error("should not specify rate limit unit when unlimited", unit_at)
            }
            (_, None) if !(rate_limit.unlimited && text.is_empty()) => {
                let hint = did_you_mean(text, &suggest::UNITS);
                self.error(format!("invalid rate limit unit '{text}'{hint}"), unit_at)
            }
            _ => {}
        }
        unit
    }

    /// The names of the rules this one `replaces`; never empty, never its own `name`.
    fn replaces(&mut self, items: &[At<Item<ReplaceDoc>>], name: Option<&str>) -> Vec<String> {
        let mut replaces = Vec::new();
        for item in items {
            let replaced = match &item.value {
                Item::NotAMap(text) => {
                    let message = format!(
                        "config error, yaml file contains list of type other than map: {text}"
                    );
                    self.error(message, Some(position(item)));
                    continue;
                }
                Item::Map(replace) => {
                    self.stray_keys(&replace.stray_keys);
                    replace
                        .name
                        .as_ref()
                        .map(|n| n.value.as_str())
                        .unwrap_or("")
                }
            };
            if replaced.is_empty() {
                self.error(
                    "should not have an empty replaces entry",
                    Some(position(item)),
                );
            } else if name == Some(replaced) {
                self.error(
                    "replaces should not contain name of same descriptor",
                    Some(position(item)),
                );
            } else {
                replaces.push(replaced.to_string());
            }
        }
        replaces
    }

    fn requests_per_unit(&mut self, at: &At<Scalar>) -> Option<u32> {
        if let Scalar::Int(n) = at.value
            && let Ok(n) = u32::try_from(n)
        {
            return Some(n);
        }
        let prefix = match at.value {
            Scalar::Float(_) => "error checking config",
            _ => "error loading config file",
        };
        let message = format!(
            "{prefix}: requests_per_unit must be an integer from 0 to {}, found {}",
            u32::MAX,
            at.value
        );
        self.error(message, Some(position(at)));
        None
    }

    fn metadata(&mut self, at: &At<MetaValue>) -> Option<Arc<Struct>> {
        match &at.value {
            MetaValue::Map(entries) => Some(Arc::new(to_struct(entries))),
            MetaValue::Null => None,
            _ => {
                self.error(
                    "error parsing metadata: metadata must be a map",
                    Some(position(at)),
                );
                None
            }
        }
    }
}

fn to_struct(entries: &[(String, MetaValue)]) -> Struct {
    Struct {
        fields: entries
            .iter()
            .map(|(key, value)| (key.clone(), to_value(value)))
            .collect(),
    }
}

fn to_value(value: &MetaValue) -> Value {
    let kind = match value {
        MetaValue::Null => Kind::NullValue(0),
        MetaValue::Bool(b) => Kind::BoolValue(*b),
        MetaValue::Number(n) => Kind::NumberValue(*n),
        MetaValue::Text(s) => Kind::StringValue(s.clone()),
        MetaValue::List(items) => Kind::ListValue(ListValue {
            values: items.iter().map(to_value).collect(),
        }),
        MetaValue::Map(entries) => Kind::StructValue(to_struct(entries)),
    };
    Value { kind: Some(kind) }
}
