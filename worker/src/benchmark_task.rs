//! Benchmark tasks: consecutive pairs of one `[[benchmark]]` section scored on the sweep's
//! model as it is (`base`): each sentence's total log-likelihood, batched
//! ([`patchsweep_engine::benchmark::score_tokenized`]).

use patchsweep_api::{BenchmarkRow, BenchmarkTask, LeasedTask, TaskOutput, BASE_STATE};
use patchsweep_engine::benchmark::{score_tokenized, LoglikOptions};
use patchsweep_model::NoHook;

use crate::executor::{TaskError, TaskProgress};
use crate::model_executor::ModelExecutor;

pub(crate) fn run(
    exec: &mut ModelExecutor,
    task: &LeasedTask,
    args: &BenchmarkTask,
    progress: &TaskProgress,
) -> Result<TaskOutput, TaskError> {
    let (model, state) = exec.sweep(task)?;
    let Some(i) = state
        .parsed
        .benchmarks
        .iter()
        .position(|b| b.name == args.benchmark)
    else {
        return Err(TaskError::permanent(format!(
            "the spec has no benchmark `{}`",
            args.benchmark
        )));
    };
    let (bench, tokenized) = (&state.parsed.benchmarks[i], &state.prepared.benchmarks[i]);
    let end = args.first + args.pairs.len();
    let (Some(pairs), Some(rows)) = (
        bench.pairs.get(args.first..end),
        tokenized.rows.get(args.first..end),
    ) else {
        return Err(TaskError::permanent(format!(
            "benchmark `{}` has {} pairs here; the task asks for pairs {}..{end}",
            bench.name,
            bench.pairs.len(),
            args.first
        )));
    };
    if let Some((p, id)) = pairs.iter().zip(&args.pairs).find(|(p, id)| p.id != **id) {
        return Err(TaskError::permanent(format!(
            "benchmark `{}`: the task names pair `{id}` where this worker reads `{}` (another \
             release's benchmark files?)",
            bench.name, p.id
        )));
    }
    let scores = score_tokenized(
        &model.model,
        pairs,
        rows,
        &LoglikOptions::default(),
        |_, _| Ok(NoHook),
        &mut progress.counter(2 * pairs.len() as u64),
    )
    .map_err(TaskError::transient)?;
    Ok(TaskOutput::Benchmark(
        scores
            .into_iter()
            .enumerate()
            .map(|(k, s)| BenchmarkRow {
                benchmark: bench.name.clone(),
                model_state: BASE_STATE.to_string(),
                debias: None,
                control_set: None,
                pair_index: (args.first + k) as u32,
                pair_id: s.id,
                subset: s.subset,
                stereo_loglik: s.stereo,
                anti_loglik: s.anti,
            })
            .collect(),
    ))
}
