//! A logit-lens experiment's task: the lens values of its pairs at every layer it reads,
//! as store rows.

use patchsweep_api::{LensRow, TaskOutput};
use patchsweep_engine::experiment::{Engine, Experiment, PairInput};

use crate::executor::TaskError;
use crate::memory_budget;

pub(crate) fn run(
    engine: &Engine,
    exp: &Experiment,
    pairs: &[PairInput],
    max_task_memory: Option<u64>,
) -> Result<TaskOutput, TaskError> {
    memory_budget::check(
        &format!("this task of experiment `{}`", exp.name),
        &engine.run_memory(exp, pairs),
        max_task_memory,
    )?;
    let values = engine.lens(exp, pairs).map_err(TaskError::transient)?;
    if let Some(v) = values
        .iter()
        .find(|v| !(v.clean.is_finite() && v.corrupt.is_finite()))
    {
        // The same model on the same prompt gives the same values: retrying cannot help.
        return Err(TaskError::permanent(format!(
            "the logit lens of pair {:?} at layer {} is not finite (clean {}, corrupted {}): \
             the residual stream overflows there; check the model's dtype",
            pairs[v.pair].id, v.layer, v.clean, v.corrupt
        )));
    }
    Ok(TaskOutput::Lens(
        values
            .iter()
            .map(|v| LensRow {
                experiment: exp.name.clone(),
                pair_id: pairs[v.pair].id.clone(),
                layer: v.layer as u32,
                clean_value: v.clean,
                corrupt_value: v.corrupt,
                clean_lead: v.clean_lead,
                corrupt_lead: v.corrupt_lead,
            })
            .collect(),
    ))
}
