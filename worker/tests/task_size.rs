//! Size checks before compute: a prompt longer than the model's context is refused at
//! prepare with the numbers, and a task whose memory estimate exceeds the worker's budget
//! (`--max-task-memory`) fails for good with the numbers instead of aborting the process.

use patchsweep_api::{LeasedTask, PrepareTask, TaskArgs, TaskKind, TaskOutput};
use patchsweep_engine::experiment::{Engine, PairInput};
use patchsweep_engine::metric::{Metric, MetricKind, Reduce};
use patchsweep_worker::executor::{Executor, TaskProgress};
use patchsweep_worker::faults::Faults;
use patchsweep_worker::model_executor::ModelExecutor;

fn tiny() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../model/tests/data/tiny-llama2"
    )
    .into()
}

/// A sweep of `model` on one pair: `prefix` repeated `words` times, then the cat/bat swap.
fn spec(model: &str, words: usize) -> String {
    let prefix = "word ".repeat(words);
    format!(
        r#"name = "sizes"
model = "{model}"

[metric]
kind = "logit_diff"
positive = [" to"]
negative = [" the"]

[dataset]
pairs = [
  {{ id = "short", clean = "The cat said that", corrupt = "The bat said that" }},
  {{ id = "long", clean = "{prefix}The cat said that", corrupt = "{prefix}The bat said that" }},
]

[[experiment]]
name = "resid"
method = "activation"
components = ["resid_pre"]
"#
    )
}

fn leased(spec_toml: &str, args: &TaskArgs) -> LeasedTask {
    let kind = args.kind();
    LeasedTask {
        task_id: 1,
        attempt: 1,
        sweep_id: 1,
        model: String::new(),
        spec_toml: Some(spec_toml.into()),
        spec_digest: patchsweep_api::spec_digest(spec_toml),
        args: args.clone(),
        description: format!("{kind} task"),
    }
}

#[test]
fn a_prompt_longer_than_the_context_is_refused_with_the_numbers() {
    // The tiny model has 128 positions; 300 words are more tokens than that.
    let mut exec = ModelExecutor::new(None, Faults::default());
    let err = exec
        .execute(
            &leased(&spec(&tiny(), 300), &TaskArgs::Prepare(PrepareTask {})),
            &TaskProgress::default(),
        )
        .unwrap_err();
    assert!(err.permanent, "{err}");
    let msg = err.message;
    assert!(
        msg.contains("dataset pair \"long\"")
            && msg.contains("at most 128 (max_position_embeddings)"),
        "{msg}"
    );
    let tokens: usize = msg
        .split("have ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no token count in: {msg}"));
    assert!(tokens >= 300, "{msg}");
    // The same pairs within the context are accepted.
    let ok = exec.execute(
        &leased(&spec(&tiny(), 5), &TaskArgs::Prepare(PrepareTask {})),
        &TaskProgress::default(),
    );
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn tasks_over_the_memory_budget_fail_for_good_with_the_numbers() {
    let text = spec(&tiny(), 5);
    let mut small = ModelExecutor::new(None, Faults::default()).with_max_task_memory(Some(4096));
    let err = small
        .execute(
            &leased(&text, &TaskArgs::Prepare(PrepareTask {})),
            &TaskProgress::default(),
        )
        .unwrap_err();
    assert!(err.permanent, "{err}");
    assert!(
        err.message.contains("preparing the sweep")
            && err.message.contains("GiB")
            && err.message.contains("--max-task-memory"),
        "{err}"
    );
    // Prepared where memory suffices, its patch task is refused where it does not.
    let mut roomy = ModelExecutor::new(None, Faults::default()).with_max_task_memory(Some(1 << 30));
    let TaskOutput::Prepare(prepared) = roomy
        .execute(
            &leased(&text, &TaskArgs::Prepare(PrepareTask {})),
            &TaskProgress::default(),
        )
        .expect("prepare within the budget")
    else {
        panic!("a prepare task answers a prepared sweep");
    };
    let patch = prepared
        .tasks
        .iter()
        .find(|t| t.kind() == TaskKind::Patch)
        .expect("a patch task");
    let err = small
        .execute(&leased(&text, &patch.args), &TaskProgress::default())
        .unwrap_err();
    assert!(err.permanent, "{err}");
    assert!(
        err.message.contains("experiment `resid`") && err.message.contains("cached runs"),
        "{err}"
    );
    let done = roomy.execute(&leased(&text, &patch.args), &TaskProgress::default());
    assert!(matches!(done, Ok(TaskOutput::Patch(_))), "{done:?}");
}

#[test]
fn the_estimate_covers_the_allocation_that_aborted_a_worker() {
    // A 20,000-word prompt on SmolLM2 (40,004 tokens) once aborted workers with "memory
    // allocation of 6401280064 bytes failed" (one block's attention scores for one head
    // group); the estimate of the same work must be at least that.
    let model = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/SmolLM2-135M-Instruct.Q4_1.gguf"
    );
    let parsed =
        patchsweep_api::spec::SweepSpec::parse(&spec(&format!("gguf:{model}"), 1), "smollm2")
            .unwrap();
    let mut exec = ModelExecutor::new(None, Faults::default());
    let loaded = exec.model_for(&parsed.spec).expect("the demo model");
    let words = |w: &str| vec![w.to_string()];
    let metric = Metric::from_words(
        MetricKind::LogitDiff,
        Reduce::default(),
        &words(" he"),
        &words(" she"),
        &loaded.tokenizer,
    )
    .unwrap();
    let tokens = 40_004;
    let pair = PairInput {
        id: "long".into(),
        clean_ids: vec![1; tokens],
        corrupt_ids: vec![1; tokens],
        position_labels: vec!["other".into(); tokens],
        metric,
    };
    let need = Engine::new(&loaded.model).baselines_memory(&[pair]);
    assert!(need.bytes >= 6_401_280_064, "{need}");
    // the clean and the corrupted prompt run in one forward
    assert_eq!((need.rows, need.tokens), (2, tokens), "{need}");
}
