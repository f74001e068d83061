//! Request validation and the whole limiter decision on the memory store, driven by a sequence
//! of structured requests and clock moves against a config with every kind of rule (exact, any
//! value, wildcard, shared wildcard, nested, unlimited, whitelist, shadow, quota, replaces,
//! zero), and generated rules of every algorithm, windows of several units and lists of limits.
//! A model beside the service predicts every validation error, which rule or override each
//! descriptor counts under, each Go-style counter's value (windows epoch-aligned, refunds
//! saturating at zero), when the other algorithms must admit and must refuse (see `meters`), and
//! the overall code; the decision never admits a request past a limit, and a list counts all of
//! its limits or none.
#![no_main]

#[path = "limiter_decision/generated.rs"]
mod generated;
#[path = "limiter_decision/meters.rs"]
mod meters;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::google::protobuf::UInt64Value;
use generated::{AskGenerated, GENERATED, GeneratedRule};
use libfuzzer_sys::fuzz_target;
use meters::Meters;
use ratelimiter::algorithm::Algorithm;
use ratelimiter::clock::{Clock, ManualClock, Unit, Window};
use ratelimiter::config::{Config, Limit, MatchBudget, Rate, Rule};
use ratelimiter::key::{self, Scope};
use ratelimiter::limiter::{Decision, Limiter, LimiterOptions, Modes, Outcome};
use ratelimiter::metrics::Metrics;
use ratelimiter::rls::RequestError;
use ratelimiter::rls::request::{self, MAX_HITS, RequestLimits};
use ratelimiter::store::MemoryStore;
use ratelimiter_fuzz::block_on;

const CONFIG_TEXT: &str = include_str!("limiter_config.yaml");

/// Small bounds, so that the fuzzer reaches every one of them.
const LIMITS: RequestLimits = RequestLimits {
    max_descriptors: 6,
    max_entries: 3,
    max_key_bytes: 12,
    max_value_bytes: 24,
};

/// The words the config uses, so that requests match its rules often.
const WORDS: [&str; 24] = [
    "fuzz", "other", "user", "plan", "gold", "client", "path", "/api/x", "/api/", "files",
    "files/a", "files/b", "shadow", "quota", "zero", "white", "listed", "", "alice", "bob", "m0",
    "m1", "m2", "m3",
];

/// 2 s into a minute, as the service's tests start their clocks.
const START_MS: u64 = 2_000_032_202_000;

#[derive(Arbitrary, Debug)]
struct Input {
    global_shadow: bool,
    global_quota: bool,
    steps: Vec<Step>,
    /// Last, so that an input short of bytes gets rules of zeros (see `GeneratedRate::yaml`).
    rules: [GeneratedRule; GENERATED],
}

#[derive(Arbitrary, Debug)]
enum Step {
    Ask(Ask),
    /// Asks the generated rules, often.
    AskGenerated(AskGenerated),
    /// Moves the clock forward by this many milliseconds.
    Wait(u32),
    /// Moves the clock forward by this many tens of milliseconds: steps within a window.
    Tick(u8),
}

#[derive(Arbitrary, Debug)]
struct Ask {
    domain: Word,
    descriptors: Vec<Descriptor>,
    hits_addend: u32,
}

#[derive(Arbitrary, Debug)]
struct Descriptor {
    entries: Vec<(Word, Word)>,
    limit: Option<(i32, u32)>,
    hits_addend: Option<u64>,
    is_negative_hits: bool,
}

#[derive(Arbitrary, Debug)]
enum Word {
    Known(u8),
    Other(String),
}

impl Word {
    fn text(&self) -> String {
        match self {
            Word::Known(index) => WORDS[usize::from(*index) % WORDS.len()].to_string(),
            Word::Other(text) => text.clone(),
        }
    }
}

impl Ask {
    fn request(&self) -> RateLimitRequest {
        RateLimitRequest {
            domain: self.domain.text(),
            descriptors: self
                .descriptors
                .iter()
                .map(|descriptor| RateLimitDescriptor {
                    entries: descriptor
                        .entries
                        .iter()
                        .map(|(key, value)| Entry {
                            key: key.text(),
                            value: value.text(),
                        })
                        .collect(),
                    limit: descriptor
                        .limit
                        .map(|(unit, requests_per_unit)| RateLimitOverride {
                            requests_per_unit,
                            unit,
                        }),
                    hits_addend: descriptor.hits_addend.map(|value| UInt64Value { value }),
                    is_negative_hits: descriptor.is_negative_hits,
                })
                .collect(),
            hits_addend: self.hits_addend,
        }
    }
}

/// The fuzz config with the input's generated rules.
fn config(rules: &[GeneratedRule]) -> Config {
    let text = format!("{CONFIG_TEXT}{}", generated::yaml(rules));
    Config::from_sources([("limiter_config.yaml", text.as_str())])
        .unwrap_or_else(|errors| panic!("the generated config is valid: {errors:?}\n{text}"))
}

fn metrics() -> Arc<Metrics> {
    static METRICS: OnceLock<Arc<Metrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| Arc::new(Metrics::new(1_000)))
        .clone()
}

/// Each Go-style counter's window start and count, as the store should hold them; and the
/// counters of the other algorithms.
#[derive(Default)]
struct Model {
    counters: HashMap<String, (u64, u64)>,
    meters: Meters,
}

fuzz_target!(|input: Input| {
    let clock = Arc::new(ManualClock::new(START_MS));
    let store = Arc::new(MemoryStore::new(1 << 16, clock.clone()));
    let modes = Modes {
        global_shadow: input.global_shadow,
        global_quota: input.global_quota,
        stop_increment_when_over: false,
    };
    let options = LimiterOptions {
        modes,
        near_limit_ratio: 0.8,
        max_match_bytes: usize::MAX,
        blocked_cache_keys: 0,
    };
    let limiter = Limiter::new(store, metrics(), options);
    let config = config(&input.rules);
    limiter.install(config.clone());
    let mut model = Model::default();
    for step in input.steps.iter().take(64) {
        let request = match step {
            Step::Wait(ms) => {
                clock.set(clock.now_ms() + u64::from(*ms));
                continue;
            }
            Step::Tick(tens) => {
                clock.set(clock.now_ms() + 10 * u64::from(*tens));
                continue;
            }
            Step::Ask(ask) => ask.request(),
            Step::AskGenerated(ask) => ask.request(),
        };
        let checked = request::validate(&request, &LIMITS);
        assert_eq!(
            checked.as_ref().err(),
            refusal(&request).as_ref(),
            "{request:?}"
        );
        let Ok(check) = checked else { continue };
        let decision = block_on(limiter.check(&check)).expect("the memory store answers");
        let now_ms = clock.now_ms();
        expect(&config, &request, &decision, modes, now_ms, &mut model);
    }
});

/// What validation must refuse, checked in the request's order.
fn refusal(request: &RateLimitRequest) -> Option<RequestError> {
    if request.domain.is_empty() {
        return Some(RequestError::EmptyDomain);
    }
    let count = request.descriptors.len();
    if count == 0 {
        return Some(RequestError::NoDescriptors);
    }
    if count > LIMITS.max_descriptors {
        let max = LIMITS.max_descriptors;
        return Some(RequestError::TooManyDescriptors { count, max });
    }
    for (descriptor, d) in request.descriptors.iter().enumerate() {
        let count = d.entries.len();
        if count == 0 {
            return Some(RequestError::NoEntries { descriptor });
        }
        if count > LIMITS.max_entries {
            let max = LIMITS.max_entries;
            return Some(RequestError::TooManyEntries {
                descriptor,
                count,
                max,
            });
        }
        for (entry, e) in d.entries.iter().enumerate() {
            if e.key.is_empty() {
                return Some(RequestError::EmptyKey { descriptor, entry });
            }
            for (part, len, max) in [
                ("key", e.key.len(), LIMITS.max_key_bytes),
                ("value", e.value.len(), LIMITS.max_value_bytes),
            ] {
                if len > max {
                    return Some(RequestError::TooLong {
                        descriptor,
                        entry,
                        part,
                        len,
                        max,
                    });
                }
            }
        }
        if let Some(limit) = &d.limit
            && Unit::from_proto_number(limit.unit).is_none()
        {
            return Some(RequestError::BadOverrideUnit {
                descriptor,
                unit: limit.unit,
            });
        }
        let hits = d
            .hits_addend
            .as_ref()
            .map_or(u64::from(request.hits_addend.max(1)), |h| h.value);
        if hits > MAX_HITS {
            return Some(RequestError::TooManyHits {
                descriptor,
                hits,
                max: MAX_HITS,
            });
        }
    }
    None
}

/// Where the model says a descriptor is counted.
enum Planned<'c> {
    NoLimit,
    Unlimited,
    /// As the Go service counts: one fixed window, every hit, over the limit too.
    Counted {
        rule: Option<&'c Rule>,
        unit: Unit,
        unit_multiplier: u32,
        requests_per_unit: u32,
        key: String,
    },
    /// Another algorithm, or a list: the hits are counted only when every limit admits them.
    Metered {
        rule: &'c Rule,
        rates: &'c [Rate],
        keys: Vec<String>,
    },
}

impl<'c> Planned<'c> {
    fn rule(&self) -> Option<&'c Rule> {
        match self {
            Planned::Counted { rule, .. } => *rule,
            Planned::Metered { rule, .. } => Some(rule),
            Planned::NoLimit | Planned::Unlimited => None,
        }
    }
}

fn plan<'c>(config: &'c Config, domain: &str, descriptor: &RateLimitDescriptor) -> Planned<'c> {
    let Some(tree) = config.domain(domain) else {
        return Planned::NoLimit;
    };
    if let Some(limit) = &descriptor.limit {
        let unit = Unit::from_proto_number(limit.unit).expect("validated");
        let scope = Scope::Override {
            window_secs: unit.seconds(),
            requests_per_unit: limit.requests_per_unit,
        };
        let levels = descriptor.entries.iter().map(|e| key::Level::Exact {
            key: &e.key,
            value: &e.value,
        });
        return Planned::Counted {
            rule: None,
            unit,
            unit_multiplier: 1,
            requests_per_unit: limit.requests_per_unit,
            key: key::encode(domain, scope, levels),
        };
    }
    let pairs = descriptor
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()));
    let found = tree.find(pairs, &mut MatchBudget::new(usize::MAX));
    let Some(rule) = found.expect("an unbounded budget is never spent") else {
        return Planned::NoLimit;
    };
    let values = || descriptor.entries.iter().map(|e| e.value.as_str());
    match &rule.limit {
        Limit::Unlimited { .. } => Planned::Unlimited,
        Limit::Single(rate) if rate.algorithm == Algorithm::FixedWindow => {
            let scope = Scope::Rule {
                window_secs: rate.window_secs(),
            };
            Planned::Counted {
                rule: Some(rule),
                unit: rate.unit,
                unit_multiplier: rate.unit_multiplier,
                requests_per_unit: rate.requests_per_unit,
                key: key::encode(domain, scope, rule.key_levels(values())),
            }
        }
        limit => {
            let rates = limit.rates();
            let keys = rates
                .iter()
                .map(|rate| {
                    let scope = Scope::Limit {
                        algorithm: rate.algorithm,
                        window_secs: rate.window_secs(),
                        listed: matches!(limit, Limit::List(_)),
                    };
                    key::encode(domain, scope, rule.key_levels(values()))
                })
                .collect();
            Planned::Metered { rule, rates, keys }
        }
    }
}

/// A descriptor's hits: its own `hits_addend`, else the request's (0 meaning 1); negative to
/// refund.
fn hits_of(request: &RateLimitRequest, descriptor: &RateLimitDescriptor) -> (u64, i64) {
    let hits = descriptor
        .hits_addend
        .as_ref()
        .map_or(u64::from(request.hits_addend.max(1)), |h| h.value);
    let signed = i64::try_from(hits).expect("validated");
    (
        hits,
        if descriptor.is_negative_hits {
            -signed
        } else {
            signed
        },
    )
}

fn expect(
    config: &Config,
    request: &RateLimitRequest,
    decision: &Decision,
    modes: Modes,
    now_ms: u64,
    model: &mut Model,
) {
    let mut plans: Vec<Planned> = request
        .descriptors
        .iter()
        .map(|descriptor| plan(config, &request.domain, descriptor))
        .collect();
    let replaced: Vec<&str> = plans
        .iter()
        .filter_map(|plan| {
            plan.rule()
                .map(|rule| rule.replaces.iter().map(String::as_str))
        })
        .flatten()
        .collect();
    for plan in &mut plans {
        if plan
            .rule()
            .is_some_and(|rule| rule.names().any(|name| replaced.contains(&name)))
        {
            *plan = Planned::NoLimit;
        }
    }
    assert_eq!(decision.outcomes.len(), plans.len());
    let mut regular_over = false;
    let mut quotas = Vec::new();
    for ((plan, outcome), descriptor) in plans
        .iter()
        .zip(&decision.outcomes)
        .zip(&request.descriptors)
    {
        let (hits, delta) = hits_of(request, descriptor);
        let (over, quota) = match (plan, outcome) {
            (Planned::NoLimit, Outcome::NoLimit { quota }) => {
                assert_eq!(*quota, modes.global_quota);
                (false, *quota)
            }
            (Planned::Unlimited, Outcome::Unlimited) => continue,
            (
                Planned::Counted {
                    rule,
                    unit,
                    unit_multiplier,
                    requests_per_unit,
                    key,
                },
                Outcome::Counted(counted),
            ) => {
                let window_ms = unit.seconds() * u64::from(*unit_multiplier) * 1_000;
                let window = Window::containing(now_ms, window_ms);
                let slot = model
                    .counters
                    .entry(key.clone())
                    .or_insert((window.start_ms, 0));
                if slot.0 != window.start_ms {
                    *slot = (window.start_ms, 0);
                }
                slot.1 = if descriptor.is_negative_hits {
                    slot.1.saturating_sub(hits)
                } else {
                    slot.1.saturating_add(hits)
                };
                let count = slot.1;
                let shadow = rule.is_some_and(|rule| rule.shadow_mode);
                let quota = modes.global_quota || rule.is_some_and(|rule| rule.quota_mode);
                let over = count > u64::from(*requests_per_unit) && !shadow;
                assert_eq!(counted.count, count, "{key}");
                assert_eq!(
                    (
                        counted.unit,
                        counted.unit_multiplier,
                        counted.requests_per_unit
                    ),
                    (*unit, *unit_multiplier, *requests_per_unit)
                );
                assert_eq!(
                    counted.over_limit, over,
                    "{key}: {count} of {requests_per_unit}"
                );
                assert_eq!(
                    u64::from(counted.remaining),
                    u64::from(*requests_per_unit).saturating_sub(count)
                );
                assert_eq!(counted.resets_in, window.remaining(now_ms));
                assert_eq!(counted.quota, quota);
                let name = rule.and_then(|rule| rule.names().next().map(str::to_string));
                assert_eq!(counted.name, name);
                (over, quota)
            }
            (Planned::Metered { rule, rates, keys }, Outcome::Counted(counted)) => {
                let over =
                    meters::check(rule, rates, keys, delta, counted, now_ms, &mut model.meters);
                let quota = modes.global_quota || rule.quota_mode;
                assert_eq!(counted.quota, quota);
                (over, quota)
            }
            _ => panic!("descriptor {descriptor:?} planned otherwise than {outcome:?}"),
        };
        if quota {
            quotas.push(over);
        } else {
            regular_over |= over;
        }
    }
    let all_quotas_over = !quotas.is_empty() && quotas.iter().all(|over| *over);
    let over = (regular_over || all_quotas_over) && !modes.global_shadow;
    assert_eq!(decision.over_limit, over, "{request:?}: {decision:?}");
    // The promise itself: an admitted request leaves no enforced counter past its limit.
    if !decision.over_limit && !modes.global_shadow {
        for outcome in &decision.outcomes {
            if let Outcome::Counted(counted) = outcome
                && counted.over_limit
            {
                assert!(counted.quota, "admitted past a limit: {decision:?}");
            }
        }
    }
}
