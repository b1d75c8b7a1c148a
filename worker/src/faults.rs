//! Fault injection for the reliability tests, set by hidden worker flags: a delay before
//! each patch task (to widen the window for killing a worker mid-task) and an experiment
//! whose tasks always fail. Off unless asked for.

use std::time::Duration;

use patchsweep_api::PatchTask;

use crate::executor::TaskError;

#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Sleep this long before computing each patch task.
    pub task_delay: Duration,
    /// Patch tasks of this experiment fail (transiently, so they are retried).
    pub fail_experiment: Option<String>,
}

impl Faults {
    pub fn before_patch(&self, task: &PatchTask) -> Result<(), TaskError> {
        if !self.task_delay.is_zero() {
            std::thread::sleep(self.task_delay);
        }
        if self.fail_experiment.as_deref() == Some(task.experiment.as_str()) {
            return Err(TaskError::transient(format!(
                "injected fault: tasks of experiment `{}` fail",
                task.experiment
            )));
        }
        Ok(())
    }
}
