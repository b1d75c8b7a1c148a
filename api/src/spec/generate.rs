//! An experiment's generation check, `generate = { tokens = N, pairs = K }`: greedy
//! continuations of the first `K` pairs of the sweep, unpatched and with each of the
//! experiment's pathways patched at the prompt's positions.

use patchsweep_engine::experiment::PairInput;
use patchsweep_model::ModelConfig;
use serde::Deserialize;

use super::{field, SpecError};

/// The most tokens a generation may have.
pub const MAX_TOKENS: usize = 64;
/// The most pairs an experiment may generate for.
pub const MAX_PAIRS: usize = 256;

fn default_pairs() -> usize {
    8
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateSpec {
    /// Tokens generated per continuation (greedy).
    pub tokens: usize,
    /// How many pairs (the sweep's first, in dataset order) get generations.
    #[serde(default = "default_pairs")]
    pub pairs: usize,
}

impl GenerateSpec {
    /// Checks the bounds; `at` names the table, e.g. `experiment[0].generate`.
    pub(super) fn validate(&self, at: &str) -> Result<(), SpecError> {
        if !(1..=MAX_TOKENS).contains(&self.tokens) {
            return Err(field(
                format!("{at}.tokens"),
                format!("{} is not between 1 and {MAX_TOKENS}", self.tokens),
            ));
        }
        if !(1..=MAX_PAIRS).contains(&self.pairs) {
            return Err(field(
                format!("{at}.pairs"),
                format!("{} is not between 1 and {MAX_PAIRS}", self.pairs),
            ));
        }
        Ok(())
    }
}

impl GenerateSpec {
    /// The pairs that get generations: the sweep's first `pairs`, in dataset order.
    pub fn chosen<'p>(&self, pairs: &'p [PairInput]) -> &'p [PairInput] {
        &pairs[..self.pairs.min(pairs.len())]
    }

    /// Each chosen pair's prompt and its generated tokens fit the model's context.
    pub(super) fn check_context(
        &self,
        at: &str,
        pairs: &[PairInput],
        cfg: &ModelConfig,
    ) -> Result<(), SpecError> {
        let Some(most) = cfg.max_positions else {
            return Ok(());
        };
        match self
            .chosen(pairs)
            .iter()
            .find(|p| p.clean_ids.len() + self.tokens > most)
        {
            Some(p) => Err(field(
                format!("{at}.tokens"),
                format!(
                    "pair {:?} has {} tokens; with {} generated tokens it exceeds the model's \
                     {most} positions (max_position_embeddings)",
                    p.id,
                    p.clean_ids.len(),
                    self.tokens
                ),
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use patchsweep_engine::dataset::Dropped;
    use patchsweep_engine::metric::{Metric, MetricKind, Reduce};

    use crate::plan::plan_generate;
    use crate::spec::{Prepared, SweepSpec};
    use crate::task::TaskKind;
    use crate::{GenerateTask, TaskArgs};

    fn spec(generate: &str) -> String {
        format!(
            r#"
name = "gen"
model = "gguf:models/m.gguf"
[metric]
kind = "logit_diff"
positive = [" he"]
negative = [" she"]
[dataset]
pairs = [{{ clean = "The nurse said that", corrupt = "The man said that", id = "nurse" }}]
[[experiment]]
name = "mlp"
method = "activation"
direction = "noise"
components = ["mlp_out"]
{generate}
[[experiment.pathway]]
name = "early"
sites = [{{ component = "mlp_out", layer = 0 }}, {{ component = "mlp_out", layer = 1 }}]
[[experiment]]
name = "plain"
method = "activation"
components = ["resid_pre"]
"#
        )
    }

    fn refused(generate: &str) -> String {
        SweepSpec::parse(&spec(generate), "t")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bounds_are_checked_naming_the_field() {
        assert_eq!(
            refused("generate = { tokens = 0 }"),
            "spec field `experiment[0].generate.tokens`: 0 is not between 1 and 64"
        );
        assert_eq!(
            refused("generate = { tokens = 65, pairs = 2 }"),
            "spec field `experiment[0].generate.tokens`: 65 is not between 1 and 64"
        );
        assert_eq!(
            refused("generate = { tokens = 8, pairs = 0 }"),
            "spec field `experiment[0].generate.pairs`: 0 is not between 1 and 256"
        );
        let err = refused("generate = { tokens = 8, pair = 2 }");
        assert!(err.contains("unknown field `pair`"), "{err}");
        let err = refused("generate = { pairs = 2 }");
        assert!(err.contains("missing field `tokens`"), "{err}");
    }

    fn pairs(n: usize, len: usize) -> Vec<patchsweep_engine::experiment::PairInput> {
        (0..n)
            .map(|i| patchsweep_engine::experiment::PairInput {
                id: format!("p{i}"),
                clean_ids: vec![1; len],
                corrupt_ids: vec![2; len],
                position_labels: vec![],
                metric: Metric {
                    kind: MetricKind::LogitDiff,
                    reduce: Reduce::Mean,
                    positive: vec![1],
                    negative: vec![2],
                },
            })
            .collect()
    }

    #[test]
    fn one_generate_task_covers_the_first_pairs_of_each_experiment_that_asks() {
        let parsed = SweepSpec::parse(&spec("generate = { tokens = 12 }"), "t").unwrap();
        let g = parsed.spec.experiments[0].generate.unwrap();
        assert_eq!((g.tokens, g.pairs), (12, 8));
        let prepared = Prepared {
            pairs: pairs(10, 4),
            specs: vec![],
            toward_stereotype: vec![0; 10],
            dropped: Dropped::default(),
            benchmarks: vec![],
        };
        let tasks = plan_generate(&parsed, &prepared);
        assert_eq!(tasks.len(), 1);
        let t = &tasks[0];
        assert_eq!((t.kind(), t.cost, t.stage), (TaskKind::Generate, 8 * 3, 0));
        let TaskArgs::Generate(args) = &t.args else {
            panic!("a generate task: {t:?}");
        };
        let first: Vec<String> = (0..8).map(|i| format!("p{i}")).collect();
        assert_eq!(
            *args,
            GenerateTask {
                experiment: "mlp".into(),
                pairs: first,
                tokens: 12
            }
        );
    }

    #[test]
    fn a_generation_beyond_the_models_context_is_refused() {
        let parsed = SweepSpec::parse(&spec("generate = { tokens = 64, pairs = 2 }"), "t").unwrap();
        let g = parsed.spec.experiments[0].generate.unwrap();
        let cfg_of = |most| patchsweep_model::ModelConfig {
            max_positions: Some(most),
            ..tiny_config()
        };
        // The second pair is the longest of the chosen two; the third is not chosen.
        let mut chosen = pairs(3, 10);
        chosen[1].clean_ids = vec![1; 20];
        chosen[2].clean_ids = vec![1; 100];
        assert!(g.check_context("x", &chosen, &cfg_of(84)).is_ok());
        assert_eq!(
            g.check_context("x", &chosen, &cfg_of(83))
                .unwrap_err()
                .to_string(),
            "spec field `x.tokens`: pair \"p1\" has 20 tokens; with 64 generated tokens it \
             exceeds the model's 83 positions (max_position_embeddings)"
        );
    }

    fn tiny_config() -> patchsweep_model::ModelConfig {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../model/tests/data/tiny-llama2");
        patchsweep_model::load(
            &patchsweep_model::ModelSpec::Folder(dir),
            &patchsweep_model::LoadOptions::default(),
        )
        .unwrap()
        .model
        .cfg
    }
}
