//! What most store tests start from, shared by the coordinator's backend tests through
//! `#[path]`: the queue policy they run under, and a sweep taken through its prepare task by
//! worker `w`.
#![allow(dead_code)]

use patchsweep_api::{PrepareTask, TaskArgs};
use patchsweep_coordinator::store::{
    LeasedTask, NewTask, PreparedSweep, QueuePolicy, Store, TaskOutput, WorkerInfo,
};

/// Leases of `lease` seconds, a quick backoff, two attempts.
pub fn policy_with_lease(lease: f64) -> QueuePolicy {
    QueuePolicy {
        lease_seconds: lease,
        backoff_base_seconds: 0.05,
        backoff_max_seconds: 0.1,
        max_attempts: 2,
    }
}

/// [`policy_with_lease`] of a minute: no lease expires during a test.
pub fn policy() -> QueuePolicy {
    policy_with_lease(60.0)
}

/// The prepare task a sweep is submitted with.
pub fn prepare_task() -> NewTask {
    NewTask {
        args: TaskArgs::Prepare(PrepareTask {}),
        description: "prepare".into(),
        cost: 1,
        stage: 0,
    }
}

/// Submits sweep `name` (minimum span `min_span`) with its prepare task; registers worker
/// `w` (CPU), which leases the prepare task and completes it with `prepared`. Answers the
/// sweep's id.
pub async fn submit_and_prepare(
    store: &Store,
    name: &str,
    min_span: f64,
    prepared: PreparedSweep,
) -> i64 {
    let p = policy();
    let id = store
        .submit_sweep(name, "spec", "m", min_span, 0.0, &[prepare_task()], &p)
        .await
        .unwrap();
    store
        .register_worker(&WorkerInfo {
            id: "w".into(),
            ..WorkerInfo::new("w", "cpu")
        })
        .await
        .unwrap();
    let prep = store.lease_tasks("w", "", 1, &p).await.unwrap().remove(0);
    assert_eq!(prep.kind().as_str(), "prepare");
    complete_prepare(store, &prep, prepared).await;
    id
}

/// Worker `w` completes its leased prepare task `prep` with `prepared`.
pub async fn complete_prepare(store: &Store, prep: &LeasedTask, prepared: PreparedSweep) {
    store
        .complete_task(
            "w",
            prep.task_id,
            prep.attempt,
            &TaskOutput::Prepare(prepared),
            &policy(),
        )
        .await
        .unwrap();
}
