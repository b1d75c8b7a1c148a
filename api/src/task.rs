//! Tasks: their kinds and states (as stored in SQL), a task to be stored, a leased task,
//! a finished task's output and the coordinator's answer to it.
//!
//! Semantics (DESIGN.md §2): a lease is a task plus its `attempt`, the fencing token; a
//! result is stored only if the task is still leased to that worker under that attempt,
//! and it commits in the same transaction as the task's completion.

use std::fmt;
use std::str::FromStr;

use crate::args::TaskArgs;
use crate::rows::{BenchmarkRow, DebiasRow, EffectRow, GenerationRow, LensRow, PairRow};
pub use patchsweep_engine::dataset::DroppedPair;

/// A name that is not one of a closed set (a task kind or state).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{name}`")]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
}

/// Declares a closed set of names, as stored, with `as_str`, `FromStr` and `Display`.
macro_rules! stored_names {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name as stored in SQL and sent on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownName {
                        what: $what,
                        name: other.to_string(),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

stored_names! {
    /// What a task computes; its arguments are the matching type of [`crate::args`].
    TaskKind, "task kind" {
        Prepare = "prepare",
        Patch = "patch",
        Debias = "debias",
        Generate = "generate",
        Benchmark = "benchmark",
    }
}

stored_names! {
    /// Where a task stands: `[waiting ->] queued -> leased -> done | failed | cancelled`
    /// (waiting: until no task of an earlier stage of its sweep is left).
    TaskState, "task state" {
        Waiting = "waiting",
        Queued = "queued",
        Leased = "leased",
        Done = "done",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

/// A task to be stored (planned by the coordinator or by a prepare task).
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// Its arguments, which name its kind.
    pub args: TaskArgs,
    pub description: String,
    /// Patches the task computes (for progress and ETA).
    pub cost: i64,
    /// When it may start: stage 0 at once; a later stage waits (state `waiting`) until no
    /// task of an earlier stage of its sweep is left (selected pathways after the
    /// experiment they read, debias after all patching).
    pub stage: u32,
}

impl NewTask {
    pub fn kind(&self) -> TaskKind {
        self.args.kind()
    }

    /// The state it is stored in.
    pub fn initial_state(&self) -> TaskState {
        if self.stage > 0 {
            TaskState::Waiting
        } else {
            TaskState::Queued
        }
    }
}

/// A leased task, as handed to a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct LeasedTask {
    pub task_id: i64,
    /// The fencing token: results must name it.
    pub attempt: i64,
    pub sweep_id: i64,
    pub model: String,
    /// The sweep's spec text, sent only when the worker did not name the sweep (with this
    /// digest) among those it holds: a worker parses and prepares a sweep once.
    pub spec_toml: Option<String>,
    /// [`spec_digest`] of the sweep's spec text.
    pub spec_digest: String,
    /// Its arguments, which name its kind (those a lease fills in included).
    pub args: TaskArgs,
    pub description: String,
}

impl LeasedTask {
    pub fn kind(&self) -> TaskKind {
        self.args.kind()
    }
}

/// A sweep a worker holds parsed and prepared, named in its lease request so that the
/// sweep's tasks come without their spec text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeldSweep {
    pub sweep_id: i64,
    /// [`spec_digest`] of the spec text the worker prepared it from.
    pub spec_digest: String,
}

/// The digest naming a spec text (SHA-256, hex): a worker's prepared sweep is reused only
/// for tasks whose sweep has this digest, so a sweep id reused by another database (a
/// coordinator started on a fresh one) never runs on a stale spec.
pub fn spec_digest(spec_toml: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(spec_toml.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a prepare task found: the pairs with baselines, the experiments and the plan.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PreparedSweep {
    pub pairs: Vec<PairRow>,
    pub dropped: Vec<(String, i64)>,
    /// Each dropped pair, with its prompts and token counts.
    pub dropped_pairs: Vec<DroppedPair>,
    /// (name, method, direction)
    pub experiments: Vec<(String, String, String)>,
    pub tasks: Vec<NewTask>,
    /// (debias section, pair id, part): the stored seeded splits.
    pub splits: Vec<(String, String, String)>,
}

/// A finished task's output; stored with its completion in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutput {
    Prepare(PreparedSweep),
    Patch(Vec<EffectRow>),
    /// A logit-lens experiment's task (kind `patch`): its lens values.
    Lens(Vec<LensRow>),
    /// Debias result rows, and the benchmarks' scores after each intervention.
    Debias {
        rows: Vec<DebiasRow>,
        benchmarks: Vec<BenchmarkRow>,
    },
    /// The generation check's continuations.
    Generate(Vec<GenerationRow>),
    /// A benchmark task's pair scores (`base`).
    Benchmark(Vec<BenchmarkRow>),
}

/// The answer to a result or a failure report.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    /// Stored; the number of new rows (effects, lens values, pairs, debias rows,
    /// generations or benchmark scores).
    Completed { rows: u64 },
    /// A failure was recorded and the task will run again after `retry_in` seconds.
    Requeued { retry_in: f64 },
    /// A failure on the last attempt: the task ended as failed.
    Failed,
    /// The lease had moved on (expired and taken over, cancelled, or finished): nothing
    /// was stored.
    Stale { reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_as_stored() {
        for k in TaskKind::ALL {
            assert_eq!(k.as_str().parse::<TaskKind>(), Ok(*k));
        }
        for s in TaskState::ALL {
            assert_eq!(s.as_str().parse::<TaskState>(), Ok(*s));
        }
        let names: Vec<_> = TaskState::ALL.iter().map(|s| s.as_str()).collect();
        // The CHECK constraint of `tasks.state` in migrations/*/0002_tasks_and_workers.sql.
        assert_eq!(
            names,
            ["waiting", "queued", "leased", "done", "failed", "cancelled"]
        );
        let err = "train".parse::<TaskKind>().unwrap_err();
        assert_eq!(err.to_string(), "unknown task kind `train`");
    }

    #[test]
    fn spec_digests_name_the_text() {
        assert_eq!(
            spec_digest(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(spec_digest("name = \"a\""), spec_digest("name = \"b\""));
    }
}
