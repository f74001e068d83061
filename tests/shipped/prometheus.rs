//! A real Prometheus server (Debian package `prometheus`, installed by `scripts/setup`) scrapes a
//! running node's `/metrics`, and a query through its HTTP API returns our request counters with
//! the values the traffic produced.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::ports::{self, PortTaken};
use crate::common::process::Node;
use crate::common::{Code, ask, code, request};

/// Prometheus scrapes every second here; a few scrapes must fit in this on a loaded machine.
const SETTLE: Duration = Duration::from_secs(30);

struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Prometheus scraping `target`, on a candidate port.
    async fn scraping(target: std::net::SocketAddr) -> Prometheus {
        ports::retry_async("Prometheus", || {
            Prometheus::launch(target, ports::candidate())
        })
        .await
    }

    /// Starts Prometheus on `port` and waits until the one answering there is this one.
    async fn launch(target: std::net::SocketAddr, port: u16) -> Result<Prometheus, PortTaken> {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let scrape = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: ratelimiter\n    static_configs:\n      - targets: [\"{target}\"]\n"
        );
        std::fs::write(&config, scrape).unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("prometheus cannot run ({error}); run scripts/setup to install it (Debian package prometheus)"));
        let mut prometheus = Prometheus { child, port, dir };
        let log = prometheus.dir.path().join("prometheus.log");
        let config = config.to_str().unwrap();
        ports::started(
            "Prometheus",
            &mut prometheus.child,
            &log,
            SETTLE,
            || async move { flag(port, "config.file").await.as_deref() == Some(config) },
        )
        .await?;
        Ok(prometheus)
    }

    /// The value of an instant query with one result, `None` until there is one.
    async fn query(&self, query: &str) -> Option<f64> {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let response = reqwest::Client::new()
            .get(url)
            .query(&[("query", query)])
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = response.json().await.ok()?;
        let results = body["data"]["result"].as_array()?;
        match results.as_slice() {
            [only] => only["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }
}

/// A command-line flag of the Prometheus answering on `port`.
async fn flag(port: u16, name: &str) -> Option<String> {
    let url = format!("http://127.0.0.1:{port}/api/v1/status/flags");
    let body: serde_json::Value = reqwest::get(url).await.ok()?.json().await.ok()?;
    body["data"][name].as_str().map(str::to_string)
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_request_counters_with_the_values_sent() {
    let limits = "domain: scraped\ndescriptors:\n  - key: user\n    rate_limit: {unit: hour, requests_per_unit: 3}\n";
    let config = common::config_dir(&[("scraped.yaml", limits)]);
    let node = Node::start(&["--config", config.path().to_str().unwrap()]);
    let mut client = common::connect(node.grpc_addr).await;
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(code(
            &ask(&mut client, request("scraped", &[&[("user", "ann")]])).await,
        ));
    }
    assert_eq!(
        codes,
        [
            Code::Ok,
            Code::Ok,
            Code::Ok,
            Code::OverLimit,
            Code::OverLimit
        ]
    );

    let prometheus = Prometheus::scraping(node.http_addr).await;
    let expected = [
        (
            r#"ratelimiter_requests_checked_total{job="ratelimiter",result="allowed"}"#,
            3.0,
        ),
        (
            r#"ratelimiter_requests_checked_total{job="ratelimiter",result="blocked"}"#,
            2.0,
        ),
        (
            r#"ratelimit_service_rate_limit_over_limit{job="ratelimiter",domain="scraped",key1="user"}"#,
            2.0,
        ),
        (r#"ratelimiter_node_up{job="ratelimiter"}"#, 1.0),
    ];
    let deadline = Instant::now() + SETTLE;
    for (query, value) in expected {
        loop {
            let got = prometheus.query(query).await;
            if got == Some(value) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{query}: Prometheus says {got:?}, expected {value}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
