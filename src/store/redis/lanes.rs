//! The coalescer's bookkeeping. A lane per destination (the one server, or each Cluster master):
//! the calls waiting, and at most one batch in flight on the current connection. A call leaves
//! its lane in a batch, or answered without being sent: its caller left, its deadline passed,
//! or there is no connection. A batch's replies go back to its callers one by one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{Cmd, Pipeline, Value};
use tokio::sync::oneshot;

use super::connect::Connection;
use crate::store::StoreError;

/// A call's answer: its own reply (an error reply fails only its call), or why there is none.
pub type Reply = Result<Value, StoreError>;

/// Where a call goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// The one server (single or Sentinel-managed).
    Server,
    /// A Cluster master, by `host:port`.
    Master(Arc<str>),
    /// A Cluster key whose master the slot map does not know yet: routed by redis-rs, alone.
    ByKey,
}

/// When a call's caller stops waiting, and how long it was given.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    pub at: Instant,
    pub budget: Duration,
}

/// One script call, on its way.
pub struct Call {
    pub command: Cmd,
    pub route: Route,
    pub deadline: Deadline,
    pub reply: oneshot::Sender<Reply>,
}

/// Calls sent together: one write, their replies read back together.
pub struct Batch {
    pub id: u64,
    pub route: Route,
    pub connection: Arc<Connection>,
    pub pipeline: Pipeline,
    pub count: usize,
}

#[derive(Default)]
pub struct Lanes {
    lanes: Vec<Lane>,
    flights: Vec<Flight>,
    next_id: u64,
}

struct Lane {
    route: Route,
    waiting: Vec<Call>,
    /// The batch in flight, and the connection it went on: once that connection is replaced,
    /// the lane sends on the new one without waiting for it.
    flight: Option<(u64, Arc<Connection>)>,
}

/// A batch in flight: whom to answer.
struct Flight {
    id: u64,
    lane: usize,
    callers: Vec<(Deadline, Option<oneshot::Sender<Reply>>)>,
}

impl Lanes {
    pub fn queue(&mut self, call: Call) {
        let lane = match self.lanes.iter().position(|lane| lane.route == call.route) {
            Some(lane) => lane,
            None => {
                self.lanes.push(Lane {
                    route: call.route.clone(),
                    waiting: Vec::new(),
                    flight: None,
                });
                self.lanes.len() - 1
            }
        };
        self.lanes[lane].waiting.push(call);
    }

    /// The batches to send now on `connection`: the waiting calls of every lane with no batch
    /// in flight on it (each call alone on [`Route::ByKey`]). Calls whose caller left are
    /// dropped unsent, calls whose deadline has passed at `now` fail unsent, and without a
    /// connection every waiting call fails.
    pub fn ready(&mut self, connection: Option<&Arc<Connection>>, now: Instant) -> Vec<Batch> {
        let mut batches = Vec::new();
        for index in 0..self.lanes.len() {
            let lane = &mut self.lanes[index];
            lane.waiting.retain(|call| !call.reply.is_closed());
            for call in lane.waiting.extract_if(.., |call| call.deadline.at <= now) {
                let _ = call
                    .reply
                    .send(Err(StoreError::Timeout(call.deadline.budget)));
            }
            if lane.waiting.is_empty() {
                continue;
            }
            let Some(connection) = connection else {
                let gone = StoreError::Unavailable("not connected to Redis".into());
                for call in lane.waiting.drain(..) {
                    let _ = call.reply.send(Err(gone.clone()));
                }
                continue;
            };
            let busy = lane
                .flight
                .as_ref()
                .is_some_and(|(_, on)| Arc::ptr_eq(on, connection));
            if busy {
                continue;
            }
            let calls = std::mem::take(&mut lane.waiting);
            if lane.route == Route::ByKey {
                for call in calls {
                    batches.push(self.launch(index, vec![call], connection));
                }
            } else {
                let batch = self.launch(index, calls, connection);
                self.lanes[index].flight = Some((batch.id, connection.clone()));
                batches.push(batch);
            }
        }
        batches
    }

    fn launch(&mut self, lane: usize, calls: Vec<Call>, connection: &Arc<Connection>) -> Batch {
        let id = self.next_id;
        self.next_id += 1;
        let mut pipeline = Pipeline::with_capacity(calls.len());
        let mut callers = Vec::with_capacity(calls.len());
        for call in calls {
            pipeline.add_command(call.command);
            callers.push((call.deadline, Some(call.reply)));
        }
        self.flights.push(Flight { id, lane, callers });
        Batch {
            id,
            route: self.lanes[lane].route.clone(),
            connection: connection.clone(),
            count: pipeline.len(),
            pipeline,
        }
    }

    /// Answers the callers of batch `id` still waiting, each with its own reply, or all with
    /// the batch's failure.
    pub fn finish(&mut self, id: u64, replies: Result<Vec<Value>, StoreError>) {
        let Some(at) = self.flights.iter().position(|flight| flight.id == id) else {
            return;
        };
        let flight = self.flights.swap_remove(at);
        let lane = &mut self.lanes[flight.lane];
        if lane
            .flight
            .as_ref()
            .is_some_and(|(flying, _)| *flying == id)
        {
            lane.flight = None;
        }
        let replies = replies.and_then(|replies| {
            if replies.len() == flight.callers.len() {
                Ok(replies)
            } else {
                Err(StoreError::Protocol(format!(
                    "a pipeline of {} calls answered {} replies",
                    flight.callers.len(),
                    replies.len()
                )))
            }
        });
        match replies {
            Ok(replies) => {
                for ((_, caller), reply) in flight.callers.into_iter().zip(replies) {
                    if let Some(caller) = caller {
                        let _ = caller.send(Ok(reply));
                    }
                }
            }
            Err(error) => {
                for caller in flight.callers.into_iter().filter_map(|(_, caller)| caller) {
                    let _ = caller.send(Err(error.clone()));
                }
            }
        }
    }

    /// Fails every call in flight whose deadline has passed at `now`; returns how many of them
    /// say Redis is slow to answer (`telling`, given a call's budget). Waiting calls expire in
    /// [`Lanes::ready`].
    pub fn expire(&mut self, now: Instant, telling: impl Fn(Duration) -> bool) -> usize {
        let mut slow = 0;
        for flight in &mut self.flights {
            for (deadline, caller) in &mut flight.callers {
                if deadline.at <= now
                    && let Some(caller) = caller.take()
                {
                    slow += usize::from(telling(deadline.budget));
                    let _ = caller.send(Err(StoreError::Timeout(deadline.budget)));
                }
            }
        }
        slow
    }

    /// The earliest deadline of a call not answered yet.
    pub fn next_deadline(&self) -> Option<Instant> {
        let waiting = self.lanes.iter().flat_map(|lane| &lane.waiting);
        let flying = self.flights.iter().flat_map(|flight| &flight.callers);
        waiting
            .map(|call| call.deadline.at)
            .chain(
                flying
                    .filter(|(_, caller)| caller.is_some())
                    .map(|(deadline, _)| deadline.at),
            )
            .min()
    }

    /// Nothing waiting and nothing in flight.
    pub fn is_idle(&self) -> bool {
        self.flights.is_empty() && self.lanes.iter().all(|lane| lane.waiting.is_empty())
    }
}
