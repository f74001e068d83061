//! Inputs meant to hurt, on the service in this process: a flood of new keys meant to evict the
//! counter that blocks its sender, wildcard rules tried on long values, keys holding control
//! characters, bodies announced too large, and config files that expand, nest, wait or loop.
//! Each is answered by a bound, not by more work.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use crate::common::{self, Code, Service, code, request};
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;

/// A rule of 3 per hour for the victim, and the same for every value of `flood`.
const VICTIM_LIMITS: &str = "
domain: evict
descriptors:
  - {key: victim, rate_limit: {unit: hour, requests_per_unit: 3}}
  - {key: flood, rate_limit: {unit: hour, requests_per_unit: 3}}
";

#[tokio::test]
async fn a_flood_of_new_keys_cannot_evict_the_counter_that_blocks_its_sender() {
    let service = Service::start(
        &[("evict.yaml", VICTIM_LIMITS)],
        &["--memory-max-counters", "640"],
    )
    .await;
    let mut client = service.client().await;
    let victim = || request("evict", &[&[("victim", "me")]]);
    let mut admitted = 0;
    // Each round writes twice as many new counters as the store holds, then the victim asks
    // three times: once at its limit, its counter must stay.
    for round in 0..30 {
        for batch in 0..20 {
            let flood = RateLimitRequest {
                descriptors: (0..64)
                    .map(|index| {
                        common::descriptor(&[("flood", &format!("{round}-{batch}-{index}"))])
                    })
                    .collect(),
                ..request("evict", &[])
            };
            common::ask(&mut client, flood).await;
        }
        for _ in 0..3 {
            if code(&common::ask(&mut client, victim()).await) == Code::Ok {
                admitted += 1;
            }
        }
    }
    let metrics = service.http().get("/metrics").await.body;
    let evictions: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("ratelimiter_memory_live_evictions_total "))
        .and_then(|value| value.trim().parse().ok())
        .expect("the live evictions metric");
    assert!(
        evictions > 10_000.0,
        "the flood filled the store: {evictions}"
    );
    assert_eq!(
        admitted, 3,
        "the victim admitted at most its limit of 3 in 90 asks"
    );
}

/// 200 rules whose values are `*<60 a's><n>*`: each tried on a value costs a scan of it.
fn wildcard_limits() -> String {
    let rules: String = (0..200)
        .map(|index| {
            format!(
                "  - {{key: path, value: \"*{}{index}*\", rate_limit: {{unit: hour, requests_per_unit: 1000}}}}\n",
                "a".repeat(60)
            )
        })
        .collect();
    format!(
        "domain: wild\ndescriptors:\n{rules}  - {{key: user, rate_limit: {{unit: hour, requests_per_unit: 1000}}}}\n"
    )
}

#[tokio::test]
async fn wildcard_rules_tried_on_many_long_values_are_refused_not_stalled_on() {
    let limits = wildcard_limits();
    let service = Service::start(&[("wild.yaml", &limits)], &[]).await;
    let mut client = service.client().await;
    let long = "a".repeat(4_096);
    let heavy = RateLimitRequest {
        descriptors: (0..64)
            .map(|_| common::descriptor(&[("path", &long)]))
            .collect(),
        ..request("wild", &[])
    };
    let refused = client.should_rate_limit(heavy).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("--max-match-bytes"),
        "{refused:?}"
    );

    let matched = format!("/{}7/x", "a".repeat(60));
    let normal = request("wild", &[&[("path", &matched)], &[("user", "u")]]);
    let answer = common::ask(&mut client, normal).await;
    assert_eq!(code(&answer), Code::Ok);
    assert!(
        answer
            .statuses
            .iter()
            .all(|status| status.current_limit.is_some())
    );
}

#[tokio::test]
async fn keys_with_control_characters_cannot_forge_lines() {
    let limits = "domain: ctl\ndescriptors:\n  - key: \"a\\nforged: unit=SECOND requests_per_unit=1\"\n    rate_limit: {unit: hour, requests_per_unit: 5}\n  - key: who\n    detailed_metric: true\n    rate_limit: {unit: hour, requests_per_unit: 5}\n";
    let service = Service::start(&[("ctl.yaml", limits)], &[]).await;
    let mut client = service.client().await;
    common::ask(&mut client, request("ctl", &[&[("who", "x\r\ny")]])).await;

    let rlconfig = service.http().get("/rlconfig").await;
    assert_eq!(rlconfig.body.lines().count(), 2, "{}", rlconfig.body);
    assert!(
        rlconfig.body.lines().all(|line| line.starts_with("ctl.")),
        "{}",
        rlconfig.body
    );
    let metrics = service.http().get("/metrics").await;
    assert!(!metrics.body.contains('\r'), "a raw CR in /metrics");
    assert!(
        metrics
            .body
            .lines()
            .filter(|line| line.contains("ratelimit_service_rate_limit_total_hits"))
            .all(|line| line.starts_with('#') || line.contains("domain=\"ctl\"")),
        "a label value broke its line:\n{}",
        metrics.body
    );
}

#[tokio::test]
async fn head_metrics_answers_like_get_without_a_body() {
    let service = Service::start(&[("x.yaml", "domain: x\n")], &[]).await;
    let addr = service.http_addr;
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
            .write_all(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(body.is_empty(), "{body}");
}

#[tokio::test]
async fn a_body_announced_over_the_bound_is_refused_before_it_is_sent() {
    let service = Service::start(&[("x.yaml", "domain: x\n")], &[]).await;
    let addr = service.http_addr;
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream
            .write_all(b"POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\nExpect: 100-continue\r\n\r\n")
            .unwrap();
        let mut answer = vec![0; 4096];
        let read = stream.read(&mut answer).unwrap_or(0);
        String::from_utf8_lossy(&answer[..read]).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
}

/// Loads `path` on a thread, failing the test if it does not return within a few seconds.
fn load_within(path: &std::path::Path) -> Result<(), String> {
    let (done, loaded) = mpsc::channel();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let outcome = ratelimiter::config::load(&path, ratelimiter::config::Layout::default())
            .map(|_| ())
            .map_err(|errors| {
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        let _ = done.send(outcome);
    });
    loaded
        .recv_timeout(Duration::from_secs(20))
        .expect("the config loads or fails within 20 s")
}

#[test]
fn config_files_that_expand_or_nest_get_clear_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut bomb = String::from("domain: bomb\na: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (name, previous) in ["b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["a", "b", "c", "d", "e", "f", "g"])
    {
        bomb.push_str(&format!(
            "{name}: &{name} [{}]\n",
            vec![format!("*{previous}"); 10].join(", ")
        ));
    }
    let file = dir.path().join("bomb.yaml");
    std::fs::write(&file, &bomb).unwrap();
    let error = load_within(&file).unwrap_err();
    assert!(error.contains("aliases"), "{error}");
    assert!(!error.contains("budget breached"), "{error}");

    // 23,000 descriptors in one file (one domain cannot be split over files).
    let big: String = (0..23_000)
        .map(|index| {
            format!("  - {{key: k{index}, rate_limit: {{unit: hour, requests_per_unit: 5}}}}\n")
        })
        .collect();
    std::fs::write(&file, format!("domain: big\ndescriptors:\n{big}")).unwrap();
    load_within(&file).expect("a large domain loads");

    // A rule as deep as the deepest request (--max-entries, 32 by default).
    let mut deep = String::from("domain: deep\ndescriptors:\n");
    for level in 0..32 {
        let indent = "  ".repeat(2 * level);
        deep.push_str(&format!("{indent}  - key: k{level}\n"));
        if level == 31 {
            deep.push_str(&format!(
                "{indent}    rate_limit: {{unit: hour, requests_per_unit: 1}}\n"
            ));
        } else {
            deep.push_str(&format!("{indent}    descriptors:\n"));
        }
    }
    std::fs::write(&file, deep).unwrap();
    load_within(&file).expect("a rule 32 levels deep loads");

    std::fs::write(&file, "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 18446744073709551616}\n").unwrap();
    let error = load_within(&file).unwrap_err();
    assert!(!error.contains("18446744073709552000"), "{error}");
    assert!(error.contains("1.8446744073709552e19"), "{error}");
}

#[test]
fn a_fifo_or_a_symlink_loop_in_the_config_is_reported_not_waited_on_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let error = load_within(&fifo).unwrap_err();
    assert!(error.contains("not a regular file"), "{error}");

    let looped = tempfile::tempdir().unwrap();
    std::fs::write(looped.path().join("good.yaml"), "domain: good\n").unwrap();
    std::os::unix::fs::symlink("b.yaml", looped.path().join("a.yaml")).unwrap();
    std::os::unix::fs::symlink("a.yaml", looped.path().join("b.yaml")).unwrap();
    let error = load_within(looped.path()).unwrap_err();
    assert!(error.contains("a.yaml"), "{error}");
    assert!(error.to_lowercase().contains("symbolic links"), "{error}");
}
