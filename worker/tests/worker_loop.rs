//! The worker loop without a model or a coordinator: a scripted [`Link`] and a scripted
//! [`Executor`] check delivery retries, failure reports, stale results, heartbeats, drain
//! and abort.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use patchsweep_api::{
    EffectRow, HeldLease, HeldSweep, LeasedTask, PatchTask, Registration, Settled, TaskArgs,
    TaskOutput, WorkerInfo, WorkerStatus,
};
use patchsweep_worker::executor::{ComputeThread, Executor, TaskError, TaskProgress};
use patchsweep_worker::link::{Link, LinkError};
use patchsweep_worker::worker_loop::{
    heartbeat_interval, run_worker, Controls, WorkerError, WorkerOptions, WorkerStats,
};
use tokio::sync::watch;

/// A coordinator played by the test: a queue of tasks and a script of answers.
#[derive(Default)]
struct FakeLink {
    queue: Mutex<VecDeque<LeasedTask>>,
    refuse_registration: bool,
    /// The next this many deliveries fail as if the coordinator were away.
    unavailable_deliveries: AtomicUsize,
    /// Results are answered as stale.
    stale: bool,
    /// Results of tasks with this description are refused as invalid (a poison task).
    refuse_results_of: Option<&'static str>,
    /// Failure reports are refused too (the worker itself is no longer accepted).
    refuse_reports: bool,
    delivery_attempts: AtomicUsize,
    heartbeats: AtomicUsize,
    /// `(task_id, share done)` of every lease heartbeated, in order.
    shares: Mutex<Vec<(i64, f64)>>,
    completed: Mutex<Vec<(i64, i64, TaskOutput)>>,
    failed: Mutex<Vec<(i64, String, bool)>>,
    released: Mutex<Vec<(i64, i64)>>,
    /// The sweeps the worker named as held, at each lease that answered a task.
    held_at_lease: Mutex<Vec<Vec<HeldSweep>>>,
}

impl FakeLink {
    fn with_tasks(tasks: impl IntoIterator<Item = LeasedTask>) -> Self {
        Self {
            queue: Mutex::new(tasks.into_iter().collect()),
            ..Default::default()
        }
    }

    fn completed(&self) -> usize {
        self.completed.lock().unwrap().len()
    }
}

impl Link for FakeLink {
    async fn register(&self, info: WorkerInfo) -> Result<Registration, LinkError> {
        if self.refuse_registration {
            return Err(LinkError::Refused("wrong bearer token".into()));
        }
        Ok(Registration {
            worker_id: format!("{}-1", info.name),
            lease_seconds: 0.2,
            heartbeat_seconds: 0.05,
        })
    }

    async fn lease(
        &self,
        _worker_id: &str,
        _models: &[String],
        held: &[HeldSweep],
        max: usize,
    ) -> Result<Vec<LeasedTask>, LinkError> {
        let mut q = self.queue.lock().unwrap();
        let n = max.min(q.len());
        if n > 0 {
            self.held_at_lease.lock().unwrap().push(held.to_vec());
        }
        Ok(q.drain(..n).collect())
    }

    async fn heartbeat(
        &self,
        _worker_id: &str,
        _status: &WorkerStatus,
        leases: &[HeldLease],
    ) -> Result<Vec<(i64, i64)>, LinkError> {
        assert_eq!(leases.len(), 1, "one lease at a time");
        self.heartbeats.fetch_add(1, Ordering::SeqCst);
        self.shares
            .lock()
            .unwrap()
            .push((leases[0].task_id, leases[0].fraction_done));
        Ok(Vec::new())
    }

    async fn complete(
        &self,
        _worker_id: &str,
        task: &LeasedTask,
        output: &TaskOutput,
        _compute_seconds: f64,
    ) -> Result<Settled, LinkError> {
        self.delivery_attempts.fetch_add(1, Ordering::SeqCst);
        let away = self
            .unavailable_deliveries
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if away {
            return Err(LinkError::Unavailable("connection refused".into()));
        }
        if self.refuse_results_of == Some(task.description.as_str()) {
            return Err(LinkError::Refused(
                "invalid pair p1: clean or corrupted metric is not finite".into(),
            ));
        }
        if self.stale {
            return Ok(Settled::Stale {
                reason: "the lease moved on".into(),
            });
        }
        let rows = match output {
            TaskOutput::Patch(e) => e.len() as u64,
            _ => 0,
        };
        self.completed
            .lock()
            .unwrap()
            .push((task.task_id, task.attempt, output.clone()));
        Ok(Settled::Completed { rows })
    }

    async fn fail(
        &self,
        _worker_id: &str,
        task: &LeasedTask,
        error: &str,
        permanent: bool,
    ) -> Result<Settled, LinkError> {
        if self.refuse_reports {
            return Err(LinkError::Refused("worker unknown".into()));
        }
        self.failed
            .lock()
            .unwrap()
            .push((task.task_id, error.to_string(), permanent));
        Ok(if permanent {
            Settled::Failed
        } else {
            Settled::Requeued { retry_in: 1.0 }
        })
    }

    async fn release(&self, _worker_id: &str, task: &LeasedTask) -> Result<bool, LinkError> {
        self.released
            .lock()
            .unwrap()
            .push((task.task_id, task.attempt));
        Ok(true)
    }
}

/// Computes a task in `compute` time, in four steps that move its progress: one effect per
/// task, or the error its description names (`fail permanent`, `fail transient`); holds
/// the sweep of every task it computed.
struct FakeExecutor {
    compute: Duration,
    held: Vec<HeldSweep>,
}

impl Executor for FakeExecutor {
    fn execute(
        &mut self,
        task: &LeasedTask,
        progress: &TaskProgress,
    ) -> Result<TaskOutput, TaskError> {
        let mut step = progress.counter(4);
        for _ in 0..4 {
            std::thread::sleep(self.compute / 4);
            step(1);
        }
        let sweep = HeldSweep {
            sweep_id: task.sweep_id,
            spec_digest: task.spec_digest.clone(),
        };
        if !self.held.contains(&sweep) {
            self.held.push(sweep);
        }
        match task.description.as_str() {
            "fail permanent" => Err(TaskError::permanent("the spec does not fit the model")),
            "fail transient" => Err(TaskError::transient("out of memory")),
            _ => Ok(TaskOutput::Patch(vec![EffectRow {
                experiment: "exp".into(),
                component: "resid_pre".into(),
                layer: Some(0),
                head: None,
                position: Some(0),
                neuron: None,
                pair_id: format!("p{}", task.task_id),
                value: 1.0,
                effect: 0.5,
                normalized: Some(0.5),
            }])),
        }
    }

    fn models(&self) -> Vec<String> {
        vec!["fake:model".into()]
    }

    fn held_sweeps(&self) -> Vec<HeldSweep> {
        self.held.clone()
    }
}

#[tokio::test]
async fn heartbeats_carry_how_far_the_task_has_got() {
    let link = Arc::new(FakeLink::with_tasks([task(1, "t1"), task(2, "t2")]));
    // Four steps of 100 ms, heartbeats every 50 ms: several readings per task.
    let w = start(link.clone(), Duration::from_millis(400));
    until("both results", || link.completed() == 2).await;
    w.drain.send(true).unwrap();
    w.handle.await.unwrap().unwrap();
    let shares = link.shares.lock().unwrap().clone();
    for id in [1, 2] {
        let of: Vec<f64> = shares
            .iter()
            .filter(|(t, _)| *t == id)
            .map(|&(_, s)| s)
            .collect();
        assert!(
            of.windows(2).all(|w| w[0] <= w[1]),
            "task {id}: the share only grows: {of:?}"
        );
        assert!(
            of.iter().all(|s| (0.0..=1.0).contains(s)),
            "task {id}: {of:?}"
        );
        assert!(
            of.iter().any(|&s| s > 0.0 && s < 1.0),
            "task {id}: some heartbeat falls mid-task: {of:?}"
        );
        assert!(
            of.first().is_some_and(|&s| s < 0.5),
            "task {id} starts from its own beginning, not where the last ended: {of:?}"
        );
    }
}

fn task(task_id: i64, description: &str) -> LeasedTask {
    LeasedTask {
        task_id,
        attempt: 1,
        sweep_id: 1,
        args: TaskArgs::Patch(PatchTask::default()),
        model: "fake:model".into(),
        spec_toml: Some("name = \"fake\"".into()),
        spec_digest: "d1".into(),
        description: description.into(),
    }
}

/// A worker running on `link` with an executor taking `compute` per task, and the senders
/// of its drain and abort signals.
struct Running {
    handle: tokio::task::JoinHandle<Result<WorkerStats, WorkerError>>,
    drain: watch::Sender<bool>,
    abort: watch::Sender<bool>,
}

fn start(link: Arc<FakeLink>, compute: Duration) -> Running {
    let (drain, drain_rx) = watch::channel(false);
    let (abort, abort_rx) = watch::channel(false);
    let mut opts = WorkerOptions::new("test", "cpu");
    opts.idle_poll = Duration::from_millis(10);
    opts.max_backoff = Duration::from_millis(20);
    let compute = ComputeThread::spawn(Box::new(FakeExecutor {
        compute,
        held: Vec::new(),
    }));
    let handle = tokio::spawn(run_worker(
        link,
        compute,
        opts,
        Controls {
            drain: drain_rx,
            abort: abort_rx,
        },
    ));
    Running {
        handle,
        drain,
        abort,
    }
}

/// Waits (up to 10 s) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_result_is_delivered_again_until_the_coordinator_takes_it() {
    let link = Arc::new(FakeLink::with_tasks([task(1, "t1"), task(2, "t2")]));
    link.unavailable_deliveries.store(3, Ordering::SeqCst);
    let w = start(link.clone(), Duration::ZERO);
    until("both results", || link.completed() == 2).await;
    w.drain.send(true).unwrap();
    let stats = w.handle.await.unwrap().unwrap();
    assert_eq!(stats.completed, 2);
    assert_eq!(link.delivery_attempts.load(Ordering::SeqCst), 5);
    let ids: Vec<_> = link
        .completed
        .lock()
        .unwrap()
        .iter()
        .map(|(id, attempt, _)| (*id, *attempt))
        .collect();
    assert_eq!(
        ids,
        [(1, 1), (2, 1)],
        "each result lands once, under its lease"
    );
}

#[tokio::test]
async fn a_lease_names_the_sweeps_the_executor_holds() {
    let other = LeasedTask {
        sweep_id: 2,
        spec_digest: "d2".into(),
        ..task(3, "t3")
    };
    let link = Arc::new(FakeLink::with_tasks([task(1, "t1"), task(2, "t2"), other]));
    let w = start(link.clone(), Duration::ZERO);
    until("three results", || link.completed() == 3).await;
    w.drain.send(true).unwrap();
    w.handle.await.unwrap().unwrap();
    let held = |id: i64, digest: &str| HeldSweep {
        sweep_id: id,
        spec_digest: digest.into(),
    };
    assert_eq!(
        *link.held_at_lease.lock().unwrap(),
        [vec![], vec![held(1, "d1")], vec![held(1, "d1")]],
        "the first lease names nothing held; later ones the sweep its task prepared"
    );
}

#[tokio::test]
async fn failures_are_reported_with_their_permanence() {
    let link = Arc::new(FakeLink::with_tasks([
        task(1, "fail permanent"),
        task(2, "fail transient"),
    ]));
    let w = start(link.clone(), Duration::ZERO);
    until("both failure reports", || {
        link.failed.lock().unwrap().len() == 2
    })
    .await;
    w.drain.send(true).unwrap();
    let stats = w.handle.await.unwrap().unwrap();
    assert_eq!((stats.failed, stats.completed), (2, 0));
    let failed = link.failed.lock().unwrap().clone();
    assert_eq!(
        failed,
        [
            (1, "the spec does not fit the model".to_string(), true),
            (2, "out of memory".to_string(), false),
        ]
    );
}

#[tokio::test]
async fn a_stale_result_is_counted_not_retried() {
    let link = Arc::new(FakeLink {
        stale: true,
        ..FakeLink::with_tasks([task(1, "t1")])
    });
    let w = start(link.clone(), Duration::ZERO);
    until("the delivery", || {
        link.delivery_attempts.load(Ordering::SeqCst) == 1
    })
    .await;
    w.drain.send(true).unwrap();
    let stats = w.handle.await.unwrap().unwrap();
    assert_eq!((stats.stale, stats.completed), (1, 0));
    assert_eq!(link.delivery_attempts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_refused_registration_stops_the_worker() {
    let link = Arc::new(FakeLink {
        refuse_registration: true,
        ..Default::default()
    });
    let w = start(link, Duration::ZERO);
    let err = w.handle.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("wrong bearer token"), "{err}");
}

#[tokio::test]
async fn drain_finishes_and_delivers_the_current_task_then_leases_no_more() {
    let link = Arc::new(FakeLink::with_tasks([task(1, "t1"), task(2, "t2")]));
    let w = start(link.clone(), Duration::from_millis(300));
    until("the first lease", || link.queue.lock().unwrap().len() == 1).await;
    w.drain.send(true).unwrap();
    let stats = w.handle.await.unwrap().unwrap();
    assert_eq!(stats.completed, 1);
    assert_eq!(link.completed(), 1);
    assert!(link.released.lock().unwrap().is_empty());
    assert_eq!(link.queue.lock().unwrap().len(), 1, "task 2 was not leased");
    assert!(
        link.heartbeats.load(Ordering::SeqCst) > 0,
        "the lease was kept alive while computing"
    );
}

#[tokio::test]
async fn abort_hands_the_current_lease_back_at_once() {
    let link = Arc::new(FakeLink::with_tasks([task(7, "long")]));
    let w = start(link.clone(), Duration::from_secs(3));
    until("the lease", || link.queue.lock().unwrap().is_empty()).await;
    let asked = Instant::now();
    w.abort.send(true).unwrap();
    let stats = w.handle.await.unwrap().unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "abort waited for compute"
    );
    assert_eq!((stats.released, stats.completed), (1, 0));
    assert_eq!(link.released.lock().unwrap().clone(), [(7, 1)]);
    assert_eq!(link.delivery_attempts.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn abort_gives_up_a_delivery_the_coordinator_never_takes() {
    let link = Arc::new(FakeLink::with_tasks([task(1, "t1")]));
    link.unavailable_deliveries
        .store(usize::MAX, Ordering::SeqCst);
    let w = start(link.clone(), Duration::ZERO);
    until("retried deliveries", || {
        link.delivery_attempts.load(Ordering::SeqCst) >= 3
    })
    .await;
    w.drain.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!w.handle.is_finished(), "drain still delivers the result");
    w.abort.send(true).unwrap();
    let stats = w.handle.await.unwrap().unwrap();
    assert_eq!(stats, WorkerStats::default());
    assert_eq!(link.completed(), 0);
}

#[test]
fn a_coordinator_cannot_ask_for_an_impossible_heartbeat() {
    // A lease of 1e30 s used to panic the worker in Duration::from_secs_f64.
    assert_eq!(heartbeat_interval(2.5e29), Duration::from_secs(3600));
    assert_eq!(heartbeat_interval(f64::INFINITY), Duration::from_secs(15));
    assert_eq!(heartbeat_interval(f64::NAN), Duration::from_secs(15));
    assert_eq!(heartbeat_interval(-1.0), Duration::from_millis(50));
    assert_eq!(heartbeat_interval(15.0), Duration::from_secs(15));
}

#[tokio::test]
async fn a_refused_result_fails_its_task_and_the_worker_goes_on() {
    let link = Arc::new(FakeLink {
        refuse_results_of: Some("poison"),
        ..FakeLink::with_tasks([task(1, "poison"), task(2, "t2")])
    });
    let w = start(link.clone(), Duration::ZERO);
    until("the next task's result", || link.completed() == 1).await;
    w.drain.send(true).unwrap();
    let stats = w.handle.await.unwrap().unwrap();
    assert_eq!((stats.failed, stats.completed), (1, 1));
    let failed = link.failed.lock().unwrap().clone();
    assert_eq!(failed.len(), 1);
    let (id, message, permanent) = &failed[0];
    assert_eq!((*id, *permanent), (1, true));
    assert!(
        message.contains("refused the result") && message.contains("not finite"),
        "{message}"
    );
}

#[tokio::test]
async fn a_worker_refused_outright_stops_with_the_reason() {
    let link = Arc::new(FakeLink {
        refuse_results_of: Some("poison"),
        refuse_reports: true,
        ..FakeLink::with_tasks([task(1, "poison"), task(2, "t2")])
    });
    let w = start(link.clone(), Duration::ZERO);
    let err = w.handle.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("worker unknown"), "{err}");
    assert_eq!(link.completed(), 0);
}
