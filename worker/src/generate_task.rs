//! Generate tasks: the generation check of one experiment. For each of its pairs, greedy
//! continuations of the clean and the corrupted prompt, and of the base prompt (clean for
//! `noise`, corrupted for `denoise`) with each of the experiment's pathways patched at the
//! prompt's positions from the other prompt's run.

use patchsweep_api::{plan, GenerateTask, GenerationRow, LeasedTask, TaskOutput};
use patchsweep_engine::generate::pair_generations;

use crate::executor::TaskError;
use crate::model_executor::ModelExecutor;

pub(crate) fn run(
    exec: &mut ModelExecutor,
    task: &LeasedTask,
    args: &GenerateTask,
) -> Result<TaskOutput, TaskError> {
    let (model, state) = exec.sweep(task)?;
    let exp = state
        .parsed
        .experiments
        .iter()
        .find(|e| e.name == args.experiment)
        .ok_or_else(|| {
            TaskError::permanent(format!("the spec has no experiment `{}`", args.experiment))
        })?;
    let pairs = state.pairs_by_id(&args.pairs)?;
    // The pathways only: no layer of the grid's components.
    let pathways = plan::restrict(exp, &Some(Vec::new()), true);
    let engine = ModelExecutor::engine(&model, &state);
    let cells = engine
        .cells(&pathways, &pairs)
        .map_err(TaskError::permanent)?;
    let mut rows = Vec::new();
    for (pair, cells) in pairs.iter().zip(&cells) {
        let generated = pair_generations(&model.model, pair, cells, exp.direction, args.tokens)
            .map_err(TaskError::transient)?;
        for g in generated {
            let text = model
                .tokenizer
                .decode(&g.tokens)
                .map_err(TaskError::permanent)?;
            rows.push(GenerationRow {
                experiment: exp.name.clone(),
                pair_id: pair.id.clone(),
                cell: g.cell,
                run: g.run.name().to_string(),
                tokens: g.tokens,
                text,
            });
        }
    }
    Ok(TaskOutput::Generate(rows))
}
