//! What limits are loaded: `GET /api/limits` (JSON, with `/check`'s defaults and the config's
//! load status) and `GET /rlconfig` (envoyproxy/ratelimit's text dump, one rule per line).

use std::sync::Arc;

use serde::Serialize;
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

use super::api::Api;
use super::error::ApiError;
use super::health::LoadView;
use super::{auth, reply};
use crate::algorithm::Algorithm;
use crate::config::{Limit, Rate, Rule};

#[derive(Serialize)]
struct Limits<'c> {
    default_limit: u64,
    default_window_ms: u64,
    config: LoadView,
    domains: Vec<DomainView<'c>>,
}

#[derive(Serialize)]
struct DomainView<'c> {
    domain: &'c str,
    rules: Vec<RuleView<'c>>,
}

#[derive(Serialize)]
struct RuleView<'c> {
    /// The Go service's key for the rule's path: `domain.key_value.key`.
    path: &'c str,
    /// `unit`, `requests_per_unit` and `name` of a rule with one limit (as the Go service has
    /// it); `null` for a list and for an unlimited rule.
    unit: Option<&'static str>,
    requests_per_unit: Option<u32>,
    unlimited: bool,
    shadow_mode: bool,
    quota_mode: bool,
    name: Option<&'c str>,
    #[serde(flatten)]
    extension: Extension,
    /// A list's limits, in config order; left out for other rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    limits: Option<Vec<LimitView<'c>>>,
}

#[derive(Serialize)]
struct LimitView<'c> {
    unit: &'static str,
    requests_per_unit: u32,
    name: Option<&'c str>,
    #[serde(flatten)]
    extension: Extension,
}

/// What a limit has beyond the Go service's, each left out where it is the default.
#[derive(Default, Serialize)]
struct Extension {
    #[serde(skip_serializing_if = "Option::is_none")]
    unit_multiplier: Option<u32>,
    /// The window, when it is several units.
    #[serde(skip_serializing_if = "Option::is_none")]
    window_seconds: Option<u64>,
    /// Other than `fixed_window`.
    #[serde(skip_serializing_if = "Option::is_none")]
    algorithm: Option<&'static str>,
    /// A token bucket's size.
    #[serde(skip_serializing_if = "Option::is_none")]
    burst: Option<u32>,
}

impl Extension {
    fn of(rate: &Rate) -> Extension {
        let several = rate.unit_multiplier != 1;
        Extension {
            unit_multiplier: several.then_some(rate.unit_multiplier),
            window_seconds: several.then(|| rate.window_secs()),
            algorithm: (rate.algorithm != Algorithm::FixedWindow).then(|| rate.algorithm.name()),
            burst: (rate.algorithm == Algorithm::TokenBucket).then_some(rate.burst),
        }
    }
}

pub async fn limits(api: Arc<Api>, headers: HeaderMap) -> Result<Response, ApiError> {
    auth::require_to_read(api.options.admin_token.as_ref(), &headers)?;
    let limits = api.limiter.limits();
    let domains = limits
        .config()
        .domains()
        .iter()
        .map(|domain| DomainView {
            domain: &domain.name,
            rules: domain.rules.iter().map(rule_view).collect(),
        })
        .collect();
    let limits = Limits {
        default_limit: api.options.check_defaults.limit,
        default_window_ms: api.options.check_defaults.window_ms,
        config: LoadView::new(&api.health.config()),
        domains,
    };
    Ok(reply::json(StatusCode::OK, &limits))
}

fn rule_view(rule: &Rule) -> RuleView<'_> {
    let single = match &rule.limit {
        Limit::Single(rate) => Some(rate),
        Limit::List(_) | Limit::Unlimited { .. } => None,
    };
    let limits = match &rule.limit {
        Limit::List(rates) => Some(rates.iter().map(limit_view).collect()),
        Limit::Single(_) | Limit::Unlimited { .. } => None,
    };
    let listed = limits.is_some();
    RuleView {
        path: &rule.path_key,
        unit: single.map(|rate| rate.unit.name()),
        requests_per_unit: single.map(|rate| rate.requests_per_unit),
        unlimited: matches!(rule.limit, Limit::Unlimited { .. }),
        shadow_mode: rule.shadow_mode,
        quota_mode: rule.quota_mode,
        name: rule.names().next().filter(|_| !listed),
        extension: single.map(Extension::of).unwrap_or_default(),
        limits,
    }
}

fn limit_view(rate: &Rate) -> LimitView<'_> {
    LimitView {
        unit: rate.unit.name(),
        requests_per_unit: rate.requests_per_unit,
        name: rate.name.as_deref(),
        extension: Extension::of(rate),
    }
}

/// The Go service's text dump of the loaded rules (see [`crate::config::Config::rlconfig`]).
pub async fn rlconfig(api: Arc<Api>) -> Result<Response, ApiError> {
    let limits = api.limiter.limits();
    Ok(reply::text(StatusCode::OK, limits.config().rlconfig()))
}
