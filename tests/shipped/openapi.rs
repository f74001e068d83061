//! The OpenAPI document (`docs/openapi.json`, served at `GET /api/openapi.json`) against the
//! service: the document lists exactly the routes the router serves, and schemathesis (from
//! PyPI, installed by `scripts/setup` into `.venv-schemathesis`) finds nothing when it runs its
//! checks, negative data and stateful sequences included, against the built binary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use crate::common::Service;
use crate::common::process::Node;
use ratelimiter::http::ROUTES;
use reqwest::Method;
use serde_json::Value;

const TOKEN: &str = "openapi-test-token";

/// Methods checked on every documented path besides the documented ones.
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
];

/// The document's operations: path pattern to upper-case methods.
fn operations(document: &Value) -> BTreeMap<String, BTreeSet<String>> {
    document["paths"]
        .as_object()
        .expect("the document has paths")
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .expect("a path item is an object")
                .keys()
                .filter(|name| !["parameters", "summary", "description"].contains(&name.as_str()))
                .map(|method| method.to_uppercase())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_served() {
    let service = Service::start(&[("api.yaml", "domain: api\n")], &["--admin-token", TOKEN]).await;
    let http = service.http();
    let served = http.get("/api/openapi.json").await;
    assert_eq!(served.status, 200);
    assert_eq!(served.header("content-type"), Some("application/json"));
    let document = served.json();
    let on_disk: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(document, on_disk, "the served document is the one in docs/");

    let documented = operations(&document);
    let mut routes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (method, pattern) in &ROUTES {
        routes
            .entry(pattern.to_string())
            .or_default()
            .insert(method.to_string());
    }
    assert_eq!(documented, routes, "docs/openapi.json and http::ROUTES");

    // Every route the router builds is labelled with a pattern from ROUTES: the labels are the
    // string literals starting with '/' in src/http/routes.rs (its tests left out), the table's
    // included.
    let router = include_str!("../../src/http/routes.rs");
    let router = router.split("#[cfg(test)]").next().unwrap();
    let labels: BTreeSet<&str> = router
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|literal| literal.starts_with('/'))
        .collect();
    let patterns: BTreeSet<&str> = ROUTES.iter().map(|(_, pattern)| *pattern).collect();
    assert_eq!(
        labels, patterns,
        "a route in src/http/routes.rs is missing from ROUTES"
    );

    for (pattern, methods) in &documented {
        let path = pattern.replace("{key}", "1%7Capi%7C60%7Cuser%3Dnobody");
        for method in METHODS {
            let body = (method == Method::POST).then(|| "{}".to_string());
            let reply = http.send(method.clone(), &path, Some(TOKEN), body).await;
            if methods.contains(method.as_str()) {
                let unmatched =
                    reply.status == 405 || (reply.status == 404 && reply.error_field().is_none());
                assert!(!unmatched, "{method} {path} is not served: {reply:?}");
            } else {
                assert_eq!(reply.status, 405, "{method} {path}: {reply:?}");
                let allow: BTreeSet<String> = reply
                    .header("allow")
                    .unwrap_or_else(|| panic!("{method} {path}: 405 without Allow"))
                    .split(", ")
                    .map(str::to_string)
                    .collect();
                assert_eq!(&allow, methods, "{method} {path}");
            }
        }
    }
    let unknown = http.get("/api/nothing").await;
    assert_eq!((unknown.status, unknown.error_field()), (404, None));
}

/// schemathesis against the built binary on the shipped config and the memory store, with the
/// admin token so that the admin endpoints are exercised (and refused without it).
#[test]
fn schemathesis_finds_nothing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let schemathesis = root.join(".venv-schemathesis/bin/schemathesis");
    assert!(
        schemathesis.exists(),
        "{} is missing: run scripts/setup",
        schemathesis.display()
    );
    let node = Node::start(&["--admin-token", TOKEN]);
    let report = tempfile::tempdir().unwrap();
    let output = Command::new(&schemathesis)
        .current_dir(root)
        .args(["--config-file", "tests/shipped/schemathesis.toml"])
        .args([
            "run",
            &format!("http://{}/api/openapi.json", node.http_addr),
        ])
        .args(["--mode", "all"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--max-examples", "100", "--seed", "18", "--workers", "1"])
        .args(["--request-timeout", "10", "--no-color"])
        .args(["--generation-database", "none"])
        .arg("--report-dir")
        .arg(report.path())
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}\nthe service logged:\n{}",
        node.logged().join("\n")
    );
    println!("{stdout}");
}
