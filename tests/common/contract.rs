//! The behaviour every counter store promises, for any store: memory and each kind of Redis run
//! the same checks. `prefix` keeps the keys of one run apart from others'.

use std::sync::Arc;
use std::time::Duration;

use ratelimiter::store::{CounterOp, CounterStore};

pub fn op(key: &str, window_secs: u64, delta: i64) -> CounterOp {
    CounterOp {
        key: key.to_string(),
        window_secs,
        delta,
        limit: u64::MAX,
    }
}

pub async fn values(store: &dyn CounterStore, ops: &[CounterOp]) -> Vec<u64> {
    store
        .apply(ops)
        .await
        .unwrap()
        .into_iter()
        .map(|count| count.value)
        .collect()
}

/// The contract, for any store; `prefix` keeps the keys of one run apart from others'.
pub async fn contract(store: Arc<dyn CounterStore>, prefix: &str) {
    let key = |name: &str| format!("{prefix}{name}");

    // Counts add up per key; a batch applies in order, the same key twice included.
    assert_eq!(values(&*store, &[op(&key("a"), 3600, 1)]).await, [1]);
    assert_eq!(
        values(
            &*store,
            &[
                op(&key("a"), 3600, 2),
                op(&key("b"), 3600, 5),
                op(&key("a"), 3600, 1)
            ]
        )
        .await,
        [3, 5, 4]
    );
    // Zero only reads; negative refunds and never goes below zero.
    assert_eq!(values(&*store, &[op(&key("a"), 3600, 0)]).await, [4]);
    assert_eq!(
        values(&*store, &[op(&key("a"), 3600, -3), op(&key("b"), 3600, -9)]).await,
        [1, 0]
    );
    // Reading or refunding a counter that does not exist gives zero.
    assert_eq!(
        values(
            &*store,
            &[op(&key("never"), 3600, 0), op(&key("never"), 3600, -1)]
        )
        .await,
        [0, 0]
    );
    // The reset time is within the window.
    let count = store.apply(&[op(&key("c"), 60, 1)]).await.unwrap()[0];
    assert!(
        count.resets_in > Duration::ZERO && count.resets_in <= Duration::from_secs(60),
        "{count:?}"
    );
    assert!(store.approximate_len().await.unwrap() >= 3);
    // An empty batch is answered without work.
    assert!(store.apply(&[]).await.unwrap().is_empty());

    // N concurrent callers see N distinct values.
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let store = store.clone();
            let key = key("race");
            tokio::spawn(async move { store.apply(&[op(&key, 3600, 1)]).await.unwrap()[0].value })
        })
        .collect();
    let mut seen = Vec::new();
    for call in calls {
        seen.push(call.await.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=100).collect::<Vec<u64>>());

    sliding_contract(&store, &key).await;
    listing_contract(&store, prefix).await;
}

/// Sliding windows: admitted up to the limit, denied hits are not counted.
async fn sliding_contract(store: &Arc<dyn CounterStore>, key: &dyn Fn(&str) -> String) {
    let window = Duration::from_secs(3600);
    for expected in 1..=3 {
        let slide = store.slide(&key("slide"), window, 3, 1).await.unwrap();
        assert_eq!(
            (slide.allowed, slide.count, slide.retry_after),
            (true, expected, Duration::ZERO)
        );
    }
    let denied = store.slide(&key("slide"), window, 3, 1).await.unwrap();
    assert_eq!((denied.allowed, denied.count), (false, 3));
    assert!(
        denied.retry_after > Duration::ZERO && denied.retry_after <= window + window / 20,
        "{denied:?}"
    );
    // A larger batch that does not fit is refused whole; a smaller one may still fit.
    let batch = store
        .slide(&key("slide-batch"), window, 5, 4)
        .await
        .unwrap();
    assert!(batch.allowed);
    assert!(
        !store
            .slide(&key("slide-batch"), window, 5, 2)
            .await
            .unwrap()
            .allowed
    );
    assert!(
        store
            .slide(&key("slide-batch"), window, 5, 1)
            .await
            .unwrap()
            .allowed
    );
    // A key used as the other kind of counter starts over as that kind.
    assert_eq!(values(&**store, &[op(&key("kinds"), 3600, 2)]).await, [2]);
    let switched = store.slide(&key("kinds"), window, 5, 1).await.unwrap();
    assert_eq!((switched.allowed, switched.count), (true, 1));
    assert_eq!(values(&**store, &[op(&key("kinds"), 3600, 1)]).await, [1]);
    // More hits than the limit are never admitted.
    let never = store
        .slide(&key("slide-never"), window, 2, 3)
        .await
        .unwrap();
    assert_eq!(
        (never.allowed, never.count, never.retry_after),
        (false, 0, window)
    );

    let calls: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            let key = key("slide-race");
            tokio::spawn(async move { store.slide(&key, window, 20, 1).await.unwrap().allowed })
        })
        .collect();
    let mut allowed = 0;
    for call in calls {
        allowed += usize::from(call.await.unwrap());
    }
    assert_eq!(allowed, 20);
}

/// Listing pages through every live counter with a prefix exactly once; reset removes one.
async fn listing_contract(store: &Arc<dyn CounterStore>, prefix: &str) {
    let listed = format!("{prefix}listed|");
    for index in 0..10u64 {
        store
            .apply(&[op(&format!("{listed}{index}"), 3600, index as i64 + 1)])
            .await
            .unwrap();
    }
    store
        .slide(&format!("{listed}sliding"), Duration::from_secs(60), 10, 2)
        .await
        .unwrap();
    store
        .apply(&[op(&format!("{prefix}other"), 3600, 1)])
        .await
        .unwrap();

    let mut seen = std::collections::BTreeMap::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store.list(&listed, cursor.as_deref(), 3).await.unwrap();
        // A batch-listing store (Redis SCAN) may run a page a little over rather than split one.
        assert!(
            page.counters.len() <= 6,
            "{} on a page of 3",
            page.counters.len()
        );
        for counter in page.counters {
            assert!(
                counter.resets_in > Duration::ZERO
                    && counter.resets_in <= Duration::from_secs(3600),
                "{counter:?}"
            );
            // Redis SCAN may repeat a key while its table is resized; never with a new value.
            if let Some(before) = seen.insert(counter.key.clone(), counter.value) {
                assert_eq!(
                    before, counter.value,
                    "{} listed twice, differently",
                    counter.key
                );
            }
        }
        pages += 1;
        assert!(pages < 1_000, "the listing never ends");
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut expected: std::collections::BTreeMap<String, u64> = (0..10u64)
        .map(|i| (format!("{listed}{i}"), i + 1))
        .collect();
    expected.insert(format!("{listed}sliding"), 2);
    assert_eq!(seen, expected);
    assert!(store.list(&listed, Some("not a cursor"), 3).await.is_err());

    assert!(store.reset(&format!("{listed}3")).await.unwrap());
    assert!(!store.reset(&format!("{listed}3")).await.unwrap());
    assert_eq!(
        values(&**store, &[op(&format!("{listed}3"), 3600, 1)]).await,
        [1]
    );
    assert!(store.reset(&format!("{listed}sliding")).await.unwrap());
    assert_eq!(
        store
            .slide(&format!("{listed}sliding"), Duration::from_secs(60), 10, 0)
            .await
            .unwrap()
            .count,
        0
    );
}
