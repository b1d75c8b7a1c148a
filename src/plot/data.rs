//! Which sweeps `plot` and `report` cover, and their file names. What they read comes
//! from the store's read model (`patchsweep_coordinator::store`, named typed queries: the
//! effects averaged in SQL, tokens, scatter points, debias results).

use anyhow::{Context, Result};
use patchsweep_coordinator::store::{Store, SweepRow, SweepSelection};

/// `--sweep`: a sweep id, `latest` (the most recent sweep) or `all`.
pub fn parse_selection(s: &str) -> Result<SweepSelection, String> {
    match s {
        "latest" => Ok(SweepSelection::Latest),
        "all" => Ok(SweepSelection::All),
        _ => s.parse().map(SweepSelection::Id).map_err(|_| {
            format!("--sweep takes a sweep id (a number), `latest` or `all`, not `{s}`")
        }),
    }
}

/// The sweeps selected; an error when there are none.
pub async fn sweeps(store: &Store, which: SweepSelection) -> Result<Vec<SweepRow>> {
    let out = store.sweeps(which).await.context("read the sweeps")?;
    if out.is_empty() {
        match which {
            SweepSelection::Id(id) => anyhow::bail!("no sweep with id {id} in {}", store.url()),
            _ => anyhow::bail!("no sweeps in {}: run one first", store.url()),
        }
    }
    Ok(out)
}

/// A file-name-safe stem of a sweep, e.g. `smollm2-professions-3`.
pub fn stem(sweep: &SweepRow) -> String {
    format!("{}-{}", slug(&sweep.name), sweep.id)
}

/// Letters, digits, `-` and `_` kept; anything else becomes `-`.
pub fn slug(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if out.is_empty() {
        "x".into()
    } else {
        out
    }
}

/// A model spec as titles show it: its last path segment without `.gguf`
/// (`gguf:models/SmolLM2-135M-Instruct.Q4_1.gguf` → `SmolLM2-135M-Instruct.Q4_1`,
/// `hf:meta-llama/Llama-2-7b-hf` → `Llama-2-7b-hf`).
pub fn model_name(model: &str) -> String {
    let last = model
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(model);
    let last = last.split('@').next().unwrap_or(last);
    let name = last.strip_suffix(".gguf").unwrap_or(last);
    if name.is_empty() {
        model.to_string()
    } else {
        name.to_string()
    }
}

/// How the pictures name a sweep's metric, read from its stored spec (`[metric]`).
#[derive(Clone, Debug, PartialEq)]
pub struct MetricNames {
    /// The heatmaps' quantity, e.g. `normalized logit-difference effect`.
    pub effect: String,
    /// The metric itself, e.g. `logit(" he") − logit(" she")`.
    pub metric: String,
}

impl MetricNames {
    /// From the spec's TOML text; generic names when it cannot be read (a spec from an
    /// older version, or none).
    pub fn from_spec(spec: Option<&str>) -> MetricNames {
        let table = spec
            .and_then(|s| toml::from_str::<toml::Table>(s).ok())
            .and_then(|t| t.get("metric").and_then(|m| m.as_table()).cloned())
            .unwrap_or_default();
        let text = |k: &str| table.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        let words = |k: &str| -> String {
            let list: Vec<String> = table
                .get(k)
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|w| w.as_str())
                        .map(|w| format!("{w:?}"))
                        .collect()
                })
                .unwrap_or_default();
            match list.len() {
                0 => k.to_string(),
                1 => list[0].clone(),
                _ => format!("{{{}}}", list.join(", ")),
            }
        };
        let (pos, neg) = if text("orient") == "stereotype" {
            (
                "anti-stereotypical".to_string(),
                "stereotypical".to_string(),
            )
        } else {
            (words("positive"), words("negative"))
        };
        let (effect, metric) = match text("kind") {
            "logit_diff" => ("logit-difference", format!("logit({pos}) − logit({neg})")),
            "logprob_diff" => (
                "log-prob-difference",
                format!("log p({pos}) − log p({neg})"),
            ),
            "odds_ratio" => ("odds-ratio", format!("p({pos}) / p({neg})")),
            _ => ("metric", "the sweep's metric".to_string()),
        };
        MetricNames {
            effect: format!("normalized {effect} effect"),
            metric,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_drop_folders_and_the_gguf_extension() {
        assert_eq!(
            model_name("gguf:models/SmolLM2-135M-Instruct.Q4_1.gguf"),
            "SmolLM2-135M-Instruct.Q4_1"
        );
        assert_eq!(model_name("hf:meta-llama/Llama-2-7b-hf"), "Llama-2-7b-hf");
        assert_eq!(model_name("hf:org/m@main"), "m");
        assert_eq!(model_name("model/tests/data/tiny-llama2"), "tiny-llama2");
    }

    #[test]
    fn metric_names_come_from_the_spec() {
        let spec = "name = \"x\"\n[metric]\nkind = \"logit_diff\"\npositive = [\" he\"]\nnegative = [\" she\"]\n";
        let m = MetricNames::from_spec(Some(spec));
        assert_eq!(m.effect, "normalized logit-difference effect");
        assert_eq!(m.metric, "logit(\" he\") − logit(\" she\")");
        let odds = "[metric]\nkind = \"odds_ratio\"\norient = \"stereotype\"\npositive = [\"a\"]\nnegative = [\"b\"]\n";
        let m = MetricNames::from_spec(Some(odds));
        assert_eq!(m.effect, "normalized odds-ratio effect");
        assert_eq!(m.metric, "p(anti-stereotypical) / p(stereotypical)");
        assert_eq!(
            MetricNames::from_spec(None).effect,
            "normalized metric effect"
        );
    }
}
