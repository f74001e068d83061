//! The shipped examples stay true: the Kubernetes ConfigMap holds valid limits, and the Grafana
//! dashboard queries only metrics the service exposes, in PromQL that Prometheus accepts.

use crate::common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;

use ratelimiter::config::Config;

/// The parts of a Kubernetes object this test reads.
#[derive(serde::Deserialize)]
struct Object {
    kind: String,
    #[serde(default)]
    data: BTreeMap<String, String>,
}

#[test]
fn the_kubernetes_configmap_holds_valid_limits() {
    let manifests = include_str!("../../examples/kubernetes/ratelimiter.yaml");
    let objects: Vec<Object> = serde_saphyr::from_str_multiple(manifests).unwrap();
    let kinds: Vec<&str> = objects.iter().map(|o| o.kind.as_str()).collect();
    assert_eq!(kinds, ["ConfigMap", "Deployment", "Service"]);
    let files = &objects[0].data;
    assert!(!files.is_empty());
    let config = Config::from_sources(
        files
            .iter()
            .map(|(name, text)| (name.as_str(), text.as_str())),
    );
    let config = config.unwrap_or_else(|errors| panic!("{errors:?}"));
    assert_eq!(config.domains()[0].name, "edge");
}

/// The PromQL expressions of the dashboard's panels.
fn dashboard_queries() -> Vec<String> {
    let dashboard: serde_json::Value = serde_json::from_str(include_str!(
        "../../examples/grafana/ratelimiter-dashboard.json"
    ))
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    panels
        .iter()
        .flat_map(|panel| panel["targets"].as_array().unwrap())
        .map(|target| target["expr"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_dashboard_queries_only_metrics_the_service_exposes() {
    let defined = common::metric_names::defined();
    let queries = dashboard_queries();
    assert!(queries.len() >= 16);
    let mut used = 0;
    for query in &queries {
        for word in query.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !word.starts_with("ratelimit") {
                continue;
            }
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .fold(word, |name, suffix| {
                    name.strip_suffix(suffix).unwrap_or(name)
                });
            assert!(
                defined.iter().any(|name| name == family),
                "{word} in {query:?} is not a metric of the service"
            );
            used += 1;
        }
    }
    assert!(used >= queries.len());
}

#[test]
fn the_dashboard_promql_parses() {
    // Grafana's variables, replaced by what Prometheus would see.
    let rules: Vec<String> = dashboard_queries()
        .iter()
        .enumerate()
        .map(|(index, query)| {
            let query = query
                .replace("$__rate_interval", "1m")
                .replace("$job", ".*");
            format!(
                "      - record: dashboard:query{index}\n        expr: {}\n",
                serde_json::Value::String(query)
            )
        })
        .collect();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(
        file,
        "groups:\n  - name: dashboard\n    rules:\n{}",
        rules.concat()
    )
    .unwrap();
    let output = Command::new("promtool")
        .args(["check", "rules"])
        .arg(file.path())
        .output()
        .unwrap_or_else(|error| panic!("promtool cannot run ({error}); run scripts/setup to install it (Debian package prometheus)"));
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_image_build_context_leaves_out_what_git_ignores() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap();
    let (git, docker) = (read(".gitignore"), read(".dockerignore"));
    let entries = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    let left_out = entries(&docker);
    for ignored in entries(&git).iter().chain(&["/.git".to_string()]) {
        assert!(
            left_out.contains(ignored),
            "{ignored} is sent to docker build"
        );
    }
    assert!(read("examples/kubernetes/Dockerfile").contains("COPY . ."));
}
