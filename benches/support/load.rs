//! The load generator's engine: one thread, one current-thread tokio runtime, a fixed number of
//! workers each making one call (or one batch of calls) at a time until the time is up. After a
//! warm-up, a measured window; at its edges the CPU time of this thread and of the watched
//! processes (the server, Redis) is read from `/proc`, so each row reports what a call cost the
//! server, Redis and the generator itself.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::future::{join_all, join3};
use hdrhistogram::Histogram;

use super::procfs;

/// How hard and how long to push.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub connections: usize,
    pub in_flight: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Distinct users, taken in turn.
    pub users: u32,
    /// When not zero, the generator thread sleeps this long between looks at its sockets, so
    /// that each wake-up reads the replies of several calls and sends as many new ones: waking
    /// up for every reply would cost it about as much CPU per call as the kernel charges the
    /// server. A call's measured latency includes up to this much.
    pub pace: Duration,
}

impl Load {
    /// The load of a measuring run (`cargo bench`), or of a brief smoke test (`cargo test`).
    pub fn for_run(measuring: bool) -> Load {
        if measuring {
            Load {
                connections: 4,
                in_flight: 64,
                warmup: Duration::from_secs(1),
                duration: Duration::from_secs(5),
                users: 10_000,
                pace: Duration::ZERO,
            }
        } else {
            Load {
                connections: 2,
                in_flight: 8,
                warmup: Duration::from_millis(50),
                duration: Duration::from_millis(200),
                users: 100,
                pace: Duration::ZERO,
            }
        }
    }
}

/// What one turn of a worker did: the calls answered, and how many of them failed.
pub struct Turn {
    pub calls: u64,
    pub failed: u64,
    /// Each answered call's own latency, µs, when the worker keeps calls of different ages in
    /// flight; empty when every call took the whole turn.
    pub latencies: Vec<u64>,
}

impl Turn {
    pub fn one(ok: bool) -> Turn {
        Turn::batch(1, u64::from(!ok))
    }

    /// `calls` calls sent together and answered by the end of the turn.
    pub fn batch(calls: u64, failed: u64) -> Turn {
        Turn {
            calls,
            failed,
            latencies: Vec::new(),
        }
    }
}

/// The processes whose CPU a row reports: the server under test, and the Redis servers behind it.
#[derive(Clone, Debug, Default)]
pub struct Watch {
    pub server: Option<u32>,
    pub redis: Vec<u32>,
}

/// What one row measured, over the measured window.
pub struct Measured {
    pub calls: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Per call, µs; a batch's calls each count its whole round trip.
    pub latency: Histogram<u64>,
    pub generator_cpu: Duration,
    pub server_cpu: Option<Duration>,
    /// Summed over the Redis servers.
    pub redis_cpu: Option<Duration>,
    /// Read and write system calls of the Redis servers.
    pub redis_io: Option<(u64, u64)>,
    /// The machine's 1-minute load average at the end of the window.
    pub load_average: f64,
}

impl Measured {
    pub fn per_second(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }

    /// A latency quantile, µs.
    pub fn micros(&self, quantile: f64) -> u64 {
        self.latency.value_at_quantile(quantile)
    }

    /// `cpu` spread over the calls, µs per call.
    pub fn per_call(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 1e6 / self.calls.max(1) as f64
    }
}

/// Runs the workers that `setup` makes on a thread of their own until `load` is done, watching
/// `watch`. The workers need not be `Send`: they are made and run on that thread.
pub fn generate<Setup, Ready, Worker>(load: Load, watch: Watch, setup: Setup) -> Measured
where
    Setup: FnOnce() -> Ready + Send + 'static,
    Ready: Future<Output = Vec<Worker>>,
    Worker: AsyncFnMut(u32) -> Turn,
{
    std::thread::Builder::new()
        .name("load-generator".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let workers = setup().await;
                drive(load, &watch, workers).await
            })
        })
        .expect("the load generator thread starts")
        .join()
        .expect("the load generator finishes")
}

/// Counts kept while the window is open.
struct Tally {
    measuring: bool,
    calls: u64,
    errors: u64,
    latency: Histogram<u64>,
    next_user: u32,
}

/// CPU and system calls at one edge of the window.
struct Edge {
    at: Instant,
    generator: Duration,
    server: Option<Duration>,
    redis: Vec<(Duration, (u64, u64))>,
}

impl Edge {
    fn now(watch: &Watch) -> Edge {
        Edge {
            at: Instant::now(),
            generator: procfs::thread_cpu(),
            server: watch.server.map(procfs::process_cpu),
            redis: watch
                .redis
                .iter()
                .map(|&pid| (procfs::process_cpu(pid), procfs::process_io_calls(pid)))
                .collect(),
        }
    }
}

async fn drive<Worker>(load: Load, watch: &Watch, workers: Vec<Worker>) -> Measured
where
    Worker: AsyncFnMut(u32) -> Turn,
{
    let tally = RefCell::new(Tally {
        measuring: false,
        calls: 0,
        errors: 0,
        latency: Histogram::new(3).expect("a histogram"),
        next_user: 0,
    });
    let running = Cell::new(true);
    let users = load.users.max(1);
    let workers = workers.into_iter().map(|mut worker| {
        let (tally, running) = (&tally, &running);
        async move {
            while running.get() {
                let user = tally.borrow().next_user;
                let begun = Instant::now();
                let turn = worker(user).await;
                let took = begun.elapsed().as_micros() as u64;
                let mut tally = tally.borrow_mut();
                // A batch takes the users after its first.
                tally.next_user = (user + turn.calls.max(1) as u32) % users;
                if tally.measuring {
                    tally.calls += turn.calls;
                    tally.errors += turn.failed;
                    if turn.latencies.is_empty() {
                        let _ = tally.latency.record_n(took, turn.calls);
                    }
                    for &micros in &turn.latencies {
                        let _ = tally.latency.record(micros);
                    }
                }
            }
        }
    });
    let window = async {
        tokio::time::sleep(load.warmup).await;
        let first = Edge::now(watch);
        tally.borrow_mut().measuring = true;
        tokio::time::sleep(load.duration).await;
        let last = Edge::now(watch);
        tally.borrow_mut().measuring = false;
        running.set(false);
        (first, last)
    };
    // Sleeping outside the runtime, then letting it look at every socket at once.
    let pacer = async {
        while !load.pace.is_zero() && running.get() {
            std::thread::sleep(load.pace);
            tokio::task::yield_now().await;
        }
    };
    let ((first, last), _, _) = join3(window, join_all(workers), pacer).await;
    let tally = tally.into_inner();
    let redis = |edge: &Edge| {
        edge.redis.iter().fold(
            (Duration::ZERO, 0, 0),
            |(cpu, reads, writes), &(c, (r, w))| (cpu + c, reads + r, writes + w),
        )
    };
    let ((cpu0, reads0, writes0), (cpu1, reads1, writes1)) = (redis(&first), redis(&last));
    let watching_redis = !watch.redis.is_empty();
    Measured {
        calls: tally.calls,
        errors: tally.errors,
        elapsed: last.at - first.at,
        latency: tally.latency,
        generator_cpu: last.generator.saturating_sub(first.generator),
        server_cpu: last
            .server
            .zip(first.server)
            .map(|(last, first)| last.saturating_sub(first)),
        redis_cpu: watching_redis.then(|| cpu1.saturating_sub(cpu0)),
        redis_io: watching_redis.then_some((reads1 - reads0, writes1 - writes0)),
        load_average: procfs::load_average(),
    }
}
