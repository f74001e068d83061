//! Semantic checks of one parsed file and its compilation into a [`DomainTree`].
//!
//! Messages reuse envoyproxy/ratelimit's wording (`descriptor has empty key`, `duplicate
//! descriptor composite key '...'`, ...) so that operators and scripts recognise them; every
//! error found in a file is reported, each with its position.

use std::sync::Arc;

use envoy_types::pb::google::protobuf::{ListValue, Struct, Value, value::Kind};

use super::error::ConfigError;
use super::problems::{Position, Problems, position};
use super::rates;
use super::tree::{Choices, DomainTree, LevelSpec, Node, Pattern, Rule, Selector};
use super::yaml::{At, DescriptorDoc, FileDoc, Item, MetaValue, RateLimitsDoc};

/// Checks a parsed file and builds its domain; every problem found is returned.
pub fn compile(file: &str, doc: FileDoc) -> Result<DomainTree, Vec<ConfigError>> {
    let mut checker = Checker {
        problems: Problems::new(file),
        rules: Vec::new(),
    };
    checker.problems.stray_keys(&doc.stray_keys);
    let domain = doc.domain.as_ref().map(|d| d.value.as_str()).unwrap_or("");
    if domain.is_empty() {
        let at = doc.domain.as_ref().map(position);
        checker.error("config file cannot have empty domain", at);
    }
    let mut root = super::tree::Level::default();
    checker.descriptors(&doc.descriptors, &mut root, &[], domain);
    if checker.problems.count() == 0 {
        Ok(DomainTree {
            name: domain.to_string(),
            index: 0,
            root,
            rules: checker.rules,
        })
    } else {
        Err(checker.problems.into_errors())
    }
}

struct Checker<'f> {
    problems: Problems<'f>,
    rules: Vec<Rule>,
}

impl Checker<'_> {
    fn error(&mut self, message: impl Into<String>, at: Option<Position>) {
        self.problems.error(message, at);
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
        self.problems.stray_keys(&doc.stray_keys);
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
        at: &At<RateLimitsDoc>,
        doc: &DescriptorDoc,
        path: &[LevelSpec],
        full_key: &str,
    ) -> Option<Rule> {
        let compiled = rates::compile(&mut self.problems, at);
        let metadata = doc.metadata.as_ref().and_then(|m| self.metadata(m));
        let compiled = compiled?;
        Some(Rule {
            index: self.rules.len(),
            path: path.to_vec(),
            limit: compiled.limit,
            replaces: compiled.replaces,
            shadow_mode: doc.shadow_mode,
            quota_mode: doc.quota_mode,
            detailed_metric: doc.detailed_metric,
            metadata,
            path_key: full_key.to_string(),
        })
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
