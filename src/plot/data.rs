//! Which sweeps `plot` and `report` cover, and their file names. What they read comes
//! from the store's read model (`patchsweep_coordinator::store`, named typed queries: the
//! effects averaged in SQL, tokens, scatter points, debias results).

use anyhow::{Context, Result};
use patchsweep_api::spec::MetricSpec;
use patchsweep_coordinator::store::{Store, SweepRow, SweepSelection};
use patchsweep_engine::metric::MetricKind;
use patchsweep_engine::stereotype::Orient;

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
        // The spec's own `[metric]` type, so names and defaults are the parser's.
        let metric: Option<MetricSpec> = spec
            .and_then(|s| toml::from_str::<toml::Table>(s).ok())
            .and_then(|t| t.get("metric").cloned())
            .and_then(|m| m.try_into().ok());
        let words = |list: &[String]| match list {
            [one] => format!("{one:?}"),
            many => format!(
                "{{{}}}",
                many.iter()
                    .map(|w| format!("{w:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let (effect, metric) = match metric {
            None => ("metric", "the sweep's metric".to_string()),
            Some(m) => {
                let (pos, neg) = match m.orient {
                    Orient::Stereotype => (
                        "anti-stereotypical".to_string(),
                        "stereotypical".to_string(),
                    ),
                    Orient::Answers => (words(&m.positive), words(&m.negative)),
                };
                match m.kind {
                    MetricKind::LogitDiff => {
                        ("logit-difference", format!("logit({pos}) − logit({neg})"))
                    }
                    MetricKind::LogprobDiff => (
                        "log-prob-difference",
                        format!("log p({pos}) − log p({neg})"),
                    ),
                    MetricKind::OddsRatio => ("odds-ratio", format!("p({pos}) / p({neg})")),
                }
            }
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
