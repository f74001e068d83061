//! The script calls of concurrent requests, coalesced: one task per store takes every call
//! waiting for a destination (the server, or a Cluster master) and sends them as one pipeline
//! (one write; Redis runs them and answers them together), then sends whatever came meanwhile
//! once that batch is answered. So the busier the service, the larger the batches, and the
//! fewer writes, reads and wake-ups per request, for the service and for Redis.
//!
//! Each call keeps its own reply: an error reply fails only its call. No call is ever sent
//! twice: a call whose reply is lost (connection broken, deadline passed) fails, whether it ran
//! or not. A call waits until its deadline at most; the task keeps one timer for all of them,
//! and a call whose deadline passed, or whose caller left, before it was sent is never sent.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use redis::aio::ConnectionLike;
use redis::{Cmd, RedisResult, Value};
use tokio::sync::{mpsc, oneshot};

use super::cluster::to_master;
use super::connect::Connection;
use super::lanes::{Batch, Call, Deadline, Lanes, Reply, Route};
use super::link::RedisLink;
use crate::store::StoreError;

/// The way into the coalescing task; the task ends once this is dropped and its calls are
/// answered.
pub struct Coalescer {
    calls: mpsc::UnboundedSender<Call>,
}

impl Coalescer {
    /// Starts the task that sends calls on `link`'s connection. Call within a Tokio runtime.
    pub fn start(link: Arc<RedisLink>) -> Coalescer {
        let (calls, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(link, queue));
        Coalescer { calls }
    }

    /// Sends `command` to `route` with the next batch; its reply, or why there is none by
    /// `deadline`.
    pub fn call(
        &self,
        command: Cmd,
        route: Route,
        deadline: Deadline,
    ) -> impl Future<Output = Reply> + use<> {
        let (reply, answer) = oneshot::channel();
        let call = Call {
            command,
            route,
            deadline,
            reply,
        };
        // A send fails only once the task has ended; the answer then says so.
        let _ = self.calls.send(call);
        async move {
            answer.await.unwrap_or_else(|_| {
                Err(StoreError::Unavailable(
                    "the Redis store is shutting down".into(),
                ))
            })
        }
    }
}

/// The task: sends batches, answers calls, fails late ones, until the [`Coalescer`] is dropped
/// and nothing is left to answer.
async fn run(link: Arc<RedisLink>, mut queue: mpsc::UnboundedReceiver<Call>) {
    let mut lanes = Lanes::default();
    let mut flights = FuturesUnordered::new();
    let timer = tokio::time::sleep_until(Instant::now().into());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    let mut open = true;
    loop {
        let now = Instant::now();
        if lanes.expire(now, |budget| link.tells_about_store(budget)) > 0 {
            link.timed_out();
        }
        for batch in lanes.ready(link.connection().as_ref(), now) {
            flights.push(fly(batch));
        }
        if !open && lanes.is_idle() {
            return;
        }
        let next = lanes.next_deadline();
        if next != armed {
            if let Some(at) = next {
                timer.as_mut().reset(at.into());
            }
            armed = next;
        }
        tokio::select! {
            Some((id, replies)) = flights.next(), if !flights.is_empty() => {
                lanes.finish(id, replies.map_err(|error| link.classify(&error)));
            }
            call = queue.recv(), if open => match call {
                Some(call) => {
                    lanes.queue(call);
                    while let Ok(call) = queue.try_recv() {
                        lanes.queue(call);
                    }
                }
                None => open = false,
            },
            () = &mut timer, if armed.is_some() => armed = None,
            // Not reached: with nothing in flight, nothing to wait for and no more calls
            // coming, the task has returned above.
            else => return,
        }
    }
}

/// Sends one batch and reads its replies.
async fn fly(batch: Batch) -> (u64, RedisResult<Vec<Value>>) {
    let Batch {
        id,
        route,
        connection,
        pipeline,
        count,
    } = batch;
    let replies = match (&*connection, route) {
        (Connection::Cluster(cluster), Route::Master(master)) => {
            let mut cluster = cluster.clone();
            cluster
                .route_pipeline(pipeline, 0, count, to_master(&master))
                .await
        }
        (connection, _) => {
            let mut connection = connection.clone();
            connection.req_packed_commands(&pipeline, 0, count).await
        }
    };
    (id, replies)
}
