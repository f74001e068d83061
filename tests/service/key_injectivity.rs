//! Property tests: counter keys are injective, so no two different (domain, rule, values) ever
//! share a counter, whatever bytes the values hold, and `/check` keys never meet rule keys.

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use proptest::prelude::*;
use ratelimiter::clock::{ManualClock, Unit};
use ratelimiter::config::Config;
use ratelimiter::key::{self, CheckKey, DecodedKey, DecodedLevel, Scope};
use ratelimiter::limiter::{
    Check, DescriptorCheck, LimitOverride, Limiter, LimiterOptions, Modes, Outcome,
};
use ratelimiter::metrics::Metrics;
use ratelimiter::store::MemoryStore;

/// Text that leans on the characters a naive encoding would trip on.
fn tricky_text() -> impl Strategy<Value = String> {
    prop_oneof!["[a_b|=~?%{}:.\n\u{0}é*]{0,6}", any::<String>(),]
}

fn level() -> impl Strategy<Value = DecodedLevel> {
    prop_oneof![
        (tricky_text(), tricky_text()).prop_map(|(key, value)| DecodedLevel::Exact { key, value }),
        (tricky_text(), tricky_text())
            .prop_map(|(key, value)| DecodedLevel::AnyValue { key, value }),
        (tricky_text(), tricky_text(), tricky_text()).prop_map(|(key, pattern, value)| {
            DecodedLevel::Wildcard {
                key,
                pattern,
                value,
            }
        }),
        (tricky_text(), tricky_text())
            .prop_map(|(key, pattern)| DecodedLevel::SharedWildcard { key, pattern }),
    ]
}

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        (1u64..40_000_000).prop_map(|window_secs| Scope::Rule { window_secs }),
        (1u64..40_000_000, any::<u32>()).prop_map(|(window_secs, requests_per_unit)| {
            Scope::Override {
                window_secs,
                requests_per_unit,
            }
        }),
    ]
}

fn decoded_key() -> impl Strategy<Value = DecodedKey> {
    (tricky_text(), scope(), prop::collection::vec(level(), 1..4)).prop_map(
        |(domain, scope, levels)| DecodedKey {
            domain,
            scope,
            levels,
        },
    )
}

/// A `/check` key: any caller key, and the full range of windows and limits the API accepts.
fn check_key() -> impl Strategy<Value = CheckKey> {
    (tricky_text(), 1u64..40_000_000_000, 1u64..2_000_000_000).prop_map(
        |(key, window_ms, limit)| CheckKey {
            key,
            window_ms,
            limit,
        },
    )
}

proptest! {
    #[test]
    fn every_check_key_decodes_back_and_never_reads_as_a_rule_key(check in check_key()) {
        let encoded = check.encode();
        prop_assert!(!encoded.contains(['{', '}', '\n', '\0']), "{:?}", encoded);
        prop_assert_eq!(key::decode(&encoded), None);
        prop_assert_eq!(CheckKey::decode(&encoded), Some(check));
    }

    #[test]
    fn different_checks_never_share_a_key(a in check_key(), b in check_key()) {
        prop_assume!(a != b);
        prop_assert_ne!(a.encode(), b.encode());
    }

    #[test]
    fn check_keys_and_rule_keys_never_meet(check in check_key(), rule in decoded_key()) {
        let rule_key = rule.encode();
        prop_assert_ne!(check.encode(), rule_key.clone());
        prop_assert_eq!(CheckKey::decode(&rule_key), None);
    }

    #[test]
    fn every_key_decodes_back_to_what_was_encoded(decoded in decoded_key()) {
        let encoded = decoded.encode();
        let clean = !encoded.contains(['{', '}', '\n', '\0']);
        prop_assert!(clean, "{:?}", encoded);
        prop_assert_eq!(key::decode(&encoded), Some(decoded));
    }

    #[test]
    fn different_inputs_never_share_a_key(a in decoded_key(), b in decoded_key()) {
        prop_assume!(a != b);
        prop_assert_ne!(a.encode(), b.encode());
    }
}

const CONFIG: &str = r#"
domain: d
descriptors:
  - key: a
    rate_limit: {unit: hour, requests_per_unit: 1000}
    descriptors:
      - key: b
        rate_limit: {unit: hour, requests_per_unit: 1000}
  - key: a_b
    rate_limit: {unit: hour, requests_per_unit: 1000}
  - key: a
    value: "x*"
    rate_limit: {unit: hour, requests_per_unit: 1000}
  - key: a
    value: "x_y"
    rate_limit: {unit: hour, requests_per_unit: 1000}
"#;

/// A descriptor: entries with keys the config knows, values that collide under `_`-joining,
/// and maybe the request's own limit.
fn descriptor() -> impl Strategy<Value = (Vec<(String, String)>, bool)> {
    let key = prop::sample::select(vec!["a", "b", "a_b"]);
    let value = prop::sample::select(vec![
        "", "x", "y", "x_y", "y_x", "_", "x*", "{x}", "x\n", "é",
    ]);
    (prop::collection::vec((key, value), 1..3), any::<bool>()).prop_map(
        |(entries, with_override)| {
            (
                entries
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                with_override,
            )
        },
    )
}

fn check<'r>(entries: &'r [Entry], with_override: bool, hits: i64) -> Check<'r> {
    Check {
        domain: "d",
        descriptors: vec![DescriptorCheck {
            entries,
            limit_override: with_override.then_some(LimitOverride {
                unit: Unit::Hour,
                requests_per_unit: 1000,
            }),
            hits,
        }],
    }
}

fn entries(pairs: &[(String, String)]) -> Vec<Entry> {
    pairs
        .iter()
        .map(|(key, value)| Entry {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Hitting one descriptor never moves another's counter, unless both are the same entries
    /// under the same rule.
    #[test]
    fn descriptors_share_a_counter_only_when_they_are_the_same((first, first_override) in descriptor(), (second, second_override) in descriptor()) {
        let config = Config::from_sources([("d.yaml", CONFIG)]).unwrap();
        let store = Arc::new(MemoryStore::new(10_000, Arc::new(ManualClock::new(1_000_000_000_000))));
        let metrics = Arc::new(Metrics::new(100));
        let options = LimiterOptions { modes: Modes::default(), near_limit_ratio: 0.8, max_match_bytes: 1 << 20, blocked_cache_keys: 0 };
        let limiter = Limiter::new(store, metrics, options);
        limiter.install(config);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (first_entries, second_entries) = (entries(&first), entries(&second));
        let hit = runtime.block_on(limiter.check(&check(&first_entries, first_override, 1))).unwrap();
        let seen = runtime.block_on(limiter.check(&check(&second_entries, second_override, 0))).unwrap();
        if let (Outcome::Counted(_), Outcome::Counted(seen)) = (&hit.outcomes[0], &seen.outcomes[0]) {
            let same = first == second && first_override == second_override;
            prop_assert_eq!(seen.count, u64::from(same), "{:?}/{} then {:?}/{}", first, first_override, second, second_override);
        }
    }
}
