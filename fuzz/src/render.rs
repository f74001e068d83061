//! YAML written from parsed values: a compiled [`Config`] back to one file per domain, and
//! free-form metadata back to text. Every string is double-quoted with every byte outside
//! printable ASCII escaped, so the output reads back as exactly the same strings.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use ratelimiter::algorithm::Algorithm;
use ratelimiter::config::yaml::MetaValue;
use ratelimiter::config::{Config, DomainTree, LevelSpec, Limit, Rate, Rule, Selector};

/// A YAML double-quoted scalar holding exactly `text`.
pub fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if u32::from(c) <= 0xffff => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08X}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

/// A YAML 1.2 float that reads back as the same `f64` (NaN as `.nan`).
pub fn number(value: f64) -> String {
    if value.is_nan() {
        ".nan".into()
    } else if value.is_infinite() {
        if value > 0.0 { ".inf" } else { "-.inf" }.into()
    } else {
        // `{:?}` writes the shortest text that reads back as the same f64, with a `.0` or an
        // exponent so that it stays a float.
        format!("{value:?}")
    }
}

/// One entry of a flow mapping. The key is explicit (`? key : value`): an implicit key may be
/// at most 1,024 characters long, and an escaped key can be longer.
fn entry(key: &str, value: &str) -> String {
    format!("? {} : {value}", quoted(key))
}

/// Metadata as YAML flow text.
pub fn meta(value: &MetaValue) -> String {
    match value {
        MetaValue::Null => "null".into(),
        MetaValue::Bool(flag) => flag.to_string(),
        MetaValue::Number(value) => number(*value),
        MetaValue::Text(text) => quoted(text),
        MetaValue::List(items) => {
            let items: Vec<String> = items.iter().map(meta).collect();
            format!("[{}]", items.join(", "))
        }
        MetaValue::Map(entries) => {
            let entries: Vec<String> = entries
                .iter()
                .map(|(key, value)| entry(key, &meta(value)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
    }
}

/// A protobuf `Struct` (a rule's compiled metadata) as YAML flow text, keys sorted.
pub fn structure(value: &Struct) -> String {
    let fields: BTreeMap<&String, &Value> = value.fields.iter().collect();
    let entries: Vec<String> = fields
        .into_iter()
        .map(|(key, value)| entry(key, &proto_value(value)))
        .collect();
    format!("{{{}}}", entries.join(", "))
}

fn proto_value(value: &Value) -> String {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => "null".into(),
        Some(Kind::BoolValue(flag)) => flag.to_string(),
        Some(Kind::NumberValue(value)) => number(*value),
        Some(Kind::StringValue(text)) => quoted(text),
        Some(Kind::ListValue(list)) => {
            let items: Vec<String> = list.values.iter().map(proto_value).collect();
            format!("[{}]", items.join(", "))
        }
        Some(Kind::StructValue(value)) => structure(value),
    }
}

/// One file per domain, (name, YAML), that compiles to the same rules as `config`.
pub fn config_files(config: &Config) -> Vec<(String, String)> {
    config
        .domains()
        .into_iter()
        .enumerate()
        .map(|(index, domain)| (format!("{index:04}.yaml"), domain_file(domain)))
        .collect()
}

/// A tree of descriptors as the YAML nests them: the rule paths merged on common prefixes.
#[derive(Default)]
struct Node<'c> {
    rule: Option<&'c Rule>,
    children: Vec<(&'c LevelSpec, Node<'c>)>,
}

fn domain_file(domain: &DomainTree) -> String {
    let mut root = Node::default();
    for rule in &domain.rules {
        let mut node = &mut root;
        for spec in &rule.path {
            let at = match node
                .children
                .iter()
                .position(|(known, _)| same_level(known, spec))
            {
                Some(at) => at,
                None => {
                    node.children.push((spec, Node::default()));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[at].1;
        }
        node.rule = Some(rule);
    }
    let mut out = format!("domain: {}\ndescriptors:\n", quoted(&domain.name));
    write_children(&mut out, &root, 0);
    out
}

fn same_level(a: &LevelSpec, b: &LevelSpec) -> bool {
    a.key == b.key && selector_text(&a.selector) == selector_text(&b.selector)
}

fn selector_text(selector: &Selector) -> (&str, bool) {
    match selector {
        Selector::Exact(value) => (value, false),
        Selector::AnyValue => ("", false),
        Selector::Wildcard { pattern, shared } => (pattern.text(), *shared),
    }
}

fn write_children(out: &mut String, node: &Node<'_>, depth: usize) {
    let indent = "  ".repeat(depth);
    for (spec, child) in &node.children {
        let (value, shared) = selector_text(&spec.selector);
        let _ = writeln!(out, "{indent}- key: {}", quoted(&spec.key));
        let field = |out: &mut String, text: String| {
            let _ = writeln!(out, "{indent}  {text}");
        };
        if !value.is_empty() {
            field(out, format!("value: {}", quoted(value)));
        }
        if shared {
            field(out, "share_threshold: true".into());
        }
        if spec.value_to_metric {
            field(out, "value_to_metric: true".into());
        }
        if let Some(rule) = child.rule {
            write_rule(out, rule, &indent);
        }
        if !child.children.is_empty() {
            field(out, "descriptors:".into());
            write_children(out, child, depth + 1);
        }
    }
}

fn write_rule(out: &mut String, rule: &Rule, indent: &str) {
    let mut replaces = rule
        .replaces
        .iter()
        .map(|name| format!("{{name: {}}}", quoted(name)));
    // The rule's `replaces` (a list's, joined) go on its first limit.
    let mut fields = |mut limit: Vec<String>| {
        let replaces: Vec<String> = replaces.by_ref().collect();
        if !replaces.is_empty() {
            limit.push(format!("replaces: [{}]", replaces.join(", ")));
        }
        format!("{{{}}}", limit.join(", "))
    };
    let rate_limit = match &rule.limit {
        Limit::Single(rate) => fields(rate_fields(rate)),
        Limit::List(rates) => {
            let limits: Vec<String> = rates.iter().map(|rate| fields(rate_fields(rate))).collect();
            format!("[{}]", limits.join(", "))
        }
        Limit::Unlimited { name } => {
            let mut limit = vec!["unlimited: true".to_string()];
            limit.extend(name.iter().map(|name| format!("name: {}", quoted(name))));
            fields(limit)
        }
    };
    let _ = writeln!(out, "{indent}  rate_limit: {rate_limit}");
    for (flag, name) in [
        (rule.shadow_mode, "shadow_mode"),
        (rule.quota_mode, "quota_mode"),
        (rule.detailed_metric, "detailed_metric"),
    ] {
        if flag {
            let _ = writeln!(out, "{indent}  {name}: true");
        }
    }
    if let Some(metadata) = &rule.metadata {
        let _ = writeln!(out, "{indent}  metadata: {}", structure(metadata));
    }
}

/// One limit's fields, the defaults left out.
fn rate_fields(rate: &Rate) -> Vec<String> {
    let mut fields = vec![format!("unit: {}", rate.unit.name())];
    if rate.unit_multiplier != 1 {
        fields.push(format!("unit_multiplier: {}", rate.unit_multiplier));
    }
    fields.push(format!("requests_per_unit: {}", rate.requests_per_unit));
    if rate.algorithm != Algorithm::FixedWindow {
        fields.push(format!("algorithm: {}", rate.algorithm));
    }
    if rate.algorithm == Algorithm::TokenBucket {
        fields.push(format!("burst: {}", rate.burst));
    }
    if let Some(name) = &rate.name {
        fields.push(format!("name: {}", quoted(name)));
    }
    fields
}

/// Everything a rule is, as text, for comparing two loads of the same limits.
pub fn rule_summary(rule: &Rule) -> String {
    let path: Vec<String> = rule
        .path
        .iter()
        .map(|spec| {
            let (value, shared) = selector_text(&spec.selector);
            let kind = match spec.selector {
                Selector::Exact(_) => "exact",
                Selector::AnyValue => "any",
                Selector::Wildcard { .. } => "wildcard",
            };
            format!(
                "{}={}:{kind}:shared={shared}:value_to_metric={}",
                quoted(&spec.key),
                quoted(value),
                spec.value_to_metric
            )
        })
        .collect();
    format!(
        "{} path=[{}] limit={:?} replaces={:?} shadow={} quota={} detailed={} metadata={}",
        rule.path_key,
        path.join(", "),
        rule.limit,
        rule.replaces,
        rule.shadow_mode,
        rule.quota_mode,
        rule.detailed_metric,
        rule.metadata.as_deref().map(structure).unwrap_or_default()
    )
}

/// Every rule of every domain, summarised and sorted.
pub fn summary(config: &Config) -> Vec<String> {
    let mut rules: Vec<String> = config
        .domains()
        .into_iter()
        .flat_map(|domain| domain.rules.iter().map(rule_summary))
        .collect();
    rules.sort();
    rules
}
