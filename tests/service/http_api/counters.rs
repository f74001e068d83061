//! `/api/counters`, `/api/blocks` and `DELETE /api/counters/{key}`: live counters with their own
//! limits, pages, and resets behind the admin token.

use std::collections::BTreeSet;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::Backend;
use crate::common::http::Http;

fn rls(entries: &str, limit: &str) -> String {
    format!(r#"{{"domain": "api", "descriptors": [{{"entries": [{entries}]{limit}}}]}}"#)
}

/// Every counter of a listing.
async fn all(http: &Http, path: &str, field: &str) -> Vec<Value> {
    pages(http, path, field).await.concat()
}

/// The pages of a listing, following `next_cursor` to the end.
async fn pages(http: &Http, path: &str, field: &str) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1_000 {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(cursor) => format!("{path}{separator}cursor={cursor}"),
            None => path.to_string(),
        };
        let page = http.get(&url).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let page = page.json();
        pages.push(page[field].as_array().unwrap().clone());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(utf8_percent_encode(next, NON_ALPHANUMERIC).to_string()),
            None => return pages,
        }
    }
    panic!("the listing never ended");
}

fn by_kind<'c>(counters: &'c [Value], kind: &str) -> &'c Value {
    counters
        .iter()
        .find(|counter| counter["decoded"]["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} counter in {counters:?}"))
}

pub async fn counters_show_each_counters_own_limit_decoded(backend: &Backend) {
    let service = backend.start(&[]).await;
    let http = service.http();
    let user = r#"{"key": "user", "value": "ann"}"#;
    assert_eq!(http.post("/json", &rls(user, "")).await.status, 200);
    let limit = r#", "limit": {"requestsPerUnit": 7, "unit": "HOUR"}"#;
    assert_eq!(http.post("/json", &rls(user, limit)).await.status, 200);
    let files = r#"{"key": "files", "value": "files/a.txt"}"#;
    assert_eq!(http.post("/json", &rls(files, "")).await.status, 200);
    assert_eq!(
        http.post("/check", r#"{"key": "ann", "limit": 3}"#)
            .await
            .status,
        200
    );

    let counters = all(&http, "/api/counters", "counters").await;
    assert_eq!(counters.len(), 4, "{counters:?}");
    let rule = counters
        .iter()
        .find(|c| c["decoded"]["rule"]["path"] == "api.user")
        .unwrap();
    assert_eq!(
        (&rule["count"], &rule["limit"], &rule["remaining"]),
        (&1.into(), &2.into(), &1.into())
    );
    assert_eq!(
        rule["decoded"],
        json!({"kind": "rule", "domain": "api", "entries": [{"key": "user", "value": "ann"}],
               "window_seconds": 60, "rule": {"path": "api.user", "name": null}})
    );
    let resets_in_ms = rule["resets_in_ms"].as_u64().unwrap();
    assert!((1..=60_000).contains(&resets_in_ms), "{resets_in_ms}");
    let shared = counters
        .iter()
        .find(|c| c["decoded"]["rule"]["path"] == "api.files_files/*")
        .unwrap();
    assert_eq!(
        shared["decoded"]["entries"],
        json!([{"key": "files", "value": "files/*"}])
    );
    assert_eq!(shared["limit"], 5);
    let own = by_kind(&counters, "override");
    assert_eq!((&own["limit"], &own["remaining"]), (&7.into(), &6.into()));
    assert_eq!(own["decoded"]["window_seconds"], 3600);
    let check = by_kind(&counters, "check");
    assert_eq!(check["key"], "c1|ann|60000|3");
    assert_eq!(
        check["decoded"],
        json!({"kind": "check", "key": "ann", "window_ms": 60000, "limit": 3})
    );
    assert_eq!(
        (&check["limit"], &check["remaining"]),
        (&3.into(), &2.into())
    );

    // A prefix matches the start of the raw key.
    let checks = all(&http, "/api/counters?prefix=c1%7C", "counters").await;
    assert_eq!(checks.len(), 1);
    let domain = all(&http, "/api/counters?prefix=1%7Capi%7C", "counters").await;
    assert_eq!(domain.len(), 3);
}

pub async fn blocks_are_the_counters_at_their_limit(backend: &Backend) {
    let service = backend.start(&[]).await;
    let http = service.http();
    for _ in 0..2 {
        http.post("/json", &rls(r#"{"key": "user", "value": "ann"}"#, ""))
            .await;
    }
    http.post("/json", &rls(r#"{"key": "user", "value": "bob"}"#, ""))
        .await;
    http.post("/check", r#"{"key": "one", "limit": 1}"#).await;
    http.post("/check", r#"{"key": "two", "limit": 2}"#).await;

    let blocked = all(&http, "/api/blocks", "blocked").await;
    let keys: BTreeSet<&str> = blocked.iter().map(|b| b["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["1|api|60|user?ann", "c1|one|60000|1"])
    );
    let ann = blocked
        .iter()
        .find(|b| b["key"] == "1|api|60|user?ann")
        .unwrap();
    assert_eq!(
        (&ann["current_count"], &ann["limit"]),
        (&2.into(), &2.into())
    );
}

/// Every counter is on some page. A store that lists in batches (Redis `SCAN`) never splits one,
/// so a page may run a little over its size, and `SCAN` may repeat a key while Redis resizes.
pub async fn pages_show_every_counter(backend: &Backend) {
    let service = backend.start(&[]).await;
    let http = service.http();
    for index in 0..300 {
        let body = format!(r#"{{"key": "page-{index}", "limit": 10}}"#);
        assert_eq!(http.post("/check", &body).await.status, 200);
    }
    http.post("/json", &rls(r#"{"key": "user", "value": "page-0"}"#, ""))
        .await;

    let pages = pages(&http, "/api/counters?prefix=c1%7Cpage-&limit=7", "counters").await;
    let mut seen = BTreeSet::new();
    let mut listed = 0;
    for page in &pages {
        assert!(page.len() <= 2 * 7, "{} on one page of 7", page.len());
        for counter in page {
            seen.insert(counter["decoded"]["key"].as_str().unwrap().to_string());
            listed += 1;
        }
    }
    let expected: BTreeSet<String> = (0..300).map(|index| format!("page-{index}")).collect();
    assert_eq!(seen, expected);
    assert!(listed < 300 + 300 / 10, "{listed} listed for 300 counters");
    assert!(pages.len() >= 300 / 14, "{} pages", pages.len());

    // A page larger than the cap is served at the cap; this listing fits in one.
    let big = http.get("/api/counters?limit=1000000").await.json();
    assert_eq!(big["counters"].as_array().unwrap().len(), 301);
}

pub async fn bad_listing_parameters_are_refused_naming_them(backend: &Backend) {
    let service = backend.start(&[]).await;
    let http = service.http();
    for (query, status, field) in [
        ("limit=0", 422, "limit"),
        ("limit=-1", 422, "limit"),
        ("limit=ten", 400, "limit"),
        ("limit=1.5", 400, "limit"),
        ("cursor=not-a-cursor", 400, "cursor"),
        ("page=2", 400, "page"),
    ] {
        for path in ["/api/counters", "/api/blocks"] {
            let reply = http.get(&format!("{path}?{query}")).await;
            assert_eq!(reply.status, status, "{path}?{query}: {}", reply.body);
            assert_eq!(
                reply.error_field().as_deref(),
                Some(field),
                "{path}?{query}"
            );
        }
    }
}

pub async fn delete_resets_one_counter_with_the_admin_token(backend: &Backend) {
    let service = backend.start(&["--admin-token", "s3cret"]).await;
    let http = service.http();
    let check = r#"{"key": "a/b|c d", "limit": 1}"#;
    assert_eq!(http.post("/check", check).await.status, 200);
    assert_eq!(http.post("/check", check).await.status, 429);
    let raw = "c1|a/b%7Cc d|60000|1";
    let listed = http.get_with_token("/api/counters", "s3cret").await.json();
    assert_eq!(listed["counters"][0]["key"], raw);
    let path = format!(
        "/api/counters/{}",
        utf8_percent_encode(raw, NON_ALPHANUMERIC)
    );

    let missing = http.delete(&path, None).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    assert_eq!(http.delete(&path, Some("wrong")).await.status, 401);
    assert_eq!(
        http.post("/check", check).await.status,
        429,
        "still counted"
    );

    let reset = http.delete(&path, Some("s3cret")).await;
    assert_eq!(
        (reset.status, reset.json()),
        (200, json!({"key": raw, "reset": true}))
    );
    assert_eq!(
        http.post("/check", check).await.status,
        200,
        "counts again from zero"
    );
    let other = http
        .delete("/api/counters/c1%7Cnever%7C60000%7C1", Some("s3cret"))
        .await;
    assert_eq!(
        (other.status, other.error_field().as_deref()),
        (404, Some("key"))
    );
}

pub async fn resets_are_refused_without_an_admin_token(backend: &Backend) {
    let service = backend.start(&[]).await;
    let http = service.http();
    http.post("/check", r#"{"key": "kept", "limit": 1}"#).await;
    let refused = http
        .delete("/api/counters/c1%7Ckept%7C60000%7C1", Some("anything"))
        .await;
    assert_eq!(refused.status, 403);
    assert!(
        refused.json()["error"]
            .as_str()
            .unwrap()
            .contains("--admin-token")
    );
    assert_eq!(
        http.post("/check", r#"{"key": "kept", "limit": 1}"#)
            .await
            .status,
        429
    );
    // Without a token, reading is open.
    assert_eq!(http.get("/api/counters").await.status, 200);
}
