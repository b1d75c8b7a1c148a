//! What a `method = "logit_lens"` experiment may say: it patches nothing, so it takes no
//! components, pathways, heads or neurons; it reads the residual stream after each block at
//! the last position (where the metric is read), so `positions` is absent, "all" or "last";
//! `layers` chooses the blocks whose output it reads.

use super::{field, ExperimentSpec, PositionsSpec, SpecError};

/// Checks a logit-lens experiment's fields; `at` names a field of experiment `i`.
pub(super) fn check(e: &ExperimentSpec, at: &dyn Fn(&str) -> String) -> Result<(), SpecError> {
    let patches_nothing = "a logit_lens experiment patches nothing: it reads the residual \
                           stream after each block (choose them with `layers`); remove it";
    if !e.components.is_empty() {
        return Err(field(at("components"), patches_nothing));
    }
    if !e.pathways.is_empty() {
        return Err(field(at("pathway"), patches_nothing));
    }
    if e.heads.is_some() {
        return Err(field(at("heads"), patches_nothing));
    }
    if e.neurons.is_some() {
        return Err(field(at("neurons"), patches_nothing));
    }
    match &e.positions {
        PositionsSpec::Text(t) if t == "all" || t == "last" => Ok(()),
        _ => Err(field(
            at("positions"),
            "a logit_lens experiment reads the last position only (where the metric is \
             read): leave `positions` out or write \"last\"",
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::{SpecError, SweepSpec};

    fn spec(experiment: &str) -> String {
        format!(
            "name = \"s\"\nmodel = \"gguf:m.gguf\"\n\
             [metric]\nkind = \"logit_diff\"\npositive = [\" he\"]\nnegative = [\" she\"]\n\
             [dataset]\npairs = [{{ clean = \"a\", corrupt = \"b\" }}]\n\
             [[experiment]]\nname = \"lens\"\nmethod = \"logit_lens\"\n{experiment}\n"
        )
    }

    fn field_error(experiment: &str) -> (String, String) {
        match SweepSpec::parse(&spec(experiment), "test") {
            Err(SpecError::Field { field, reason }) => (field, reason),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn a_lens_needs_no_components_and_takes_layers() {
        let parsed = SweepSpec::parse(&spec("layers = \"2..4\""), "test").unwrap();
        let e = &parsed.experiments[0];
        assert_eq!(e.grid.layers, Some(vec![2, 3]));
        assert!(e.grid.components.is_empty());
        SweepSpec::parse(&spec("positions = \"last\""), "test").unwrap();
    }

    #[test]
    fn patching_fields_are_refused_by_name() {
        for (text, name) in [
            ("components = [\"attn_out\"]", "experiment[0].components"),
            ("heads = [0]", "experiment[0].heads"),
            ("neurons = [1]", "experiment[0].neurons"),
            (
                "[[experiment.pathway]]\nname = \"p\"\nsites = [{ component = \"mlp_out\", layer = 0 }]",
                "experiment[0].pathway",
            ),
        ] {
            let (field, reason) = field_error(text);
            assert_eq!(field, name, "{text}");
            assert!(reason.contains("patches nothing"), "{reason}");
        }
        let (field, reason) = field_error("positions = [0]");
        assert_eq!(field, "experiment[0].positions");
        assert!(reason.contains("last position"), "{reason}");
    }

    #[test]
    fn debias_cannot_select_from_a_lens() {
        let text = format!(
            "{}[[debias]]\nname = \"d\"\nexperiment = \"lens\"\n\
             [debias.select]\ncomponent = \"head_out\"\ntop_k = 1\n\
             [[debias.intervention]]\nkind = \"ablation\"\nmode = \"zero\"\n",
            spec("")
        );
        match SweepSpec::parse(&text, "test") {
            Err(SpecError::Field { field, reason }) => {
                assert_eq!(field, "debias[0].experiment");
                assert!(reason.contains("logit_lens"), "{reason}");
            }
            other => panic!("expected a field error, got {other:?}"),
        }
    }
}
