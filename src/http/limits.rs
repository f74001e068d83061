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
use crate::config::{Limit, Rule};

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
    unit: Option<&'static str>,
    requests_per_unit: Option<u32>,
    unlimited: bool,
    shadow_mode: bool,
    quota_mode: bool,
    name: Option<&'c str>,
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
    let rate = rule.limit.rate();
    RuleView {
        path: &rule.path_key,
        unit: rate.map(|(unit, _)| unit),
        requests_per_unit: rate.map(|(_, requests)| requests),
        unlimited: rule.limit == Limit::Unlimited,
        shadow_mode: rule.shadow_mode,
        quota_mode: rule.quota_mode,
        name: rule.name.as_deref(),
    }
}

/// The Go service's text dump of the loaded rules (see [`crate::config::Config::rlconfig`]).
pub async fn rlconfig(api: Arc<Api>) -> Result<Response, ApiError> {
    let limits = api.limiter.limits();
    Ok(reply::text(StatusCode::OK, limits.config().rlconfig()))
}
