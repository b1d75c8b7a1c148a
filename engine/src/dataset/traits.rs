//! The `traits` dataset: adjective/trait associations, gender bias carried by stereotyped
//! *personal traits*, with no occupation and no gendered word in the prompt. "The gentle
//! person said that" vs "The tough person said that"; the answers are " he" / " she" as for
//! professions. This is the project's own addition, not the paper's second form of bias
//! (household roles: the [`household`](super::household) dataset).
//!
//! # Rationale
//! Descriptor bias is a form of gender bias distinct from occupational bias: social psychology
//! finds communal traits (gentle, caring, sensitive) stereotyped as feminine and agentic traits
//! (tough, ambitious, assertive) as masculine (Bem's Sex Role Inventory, 1974; Williams & Best's
//! cross-cultural adjective studies, 1990; Eagly's social-role theory), and text models inherit
//! these associations (e.g. Garg et al., 2018, on adjectives in word embeddings). The prompt
//! carries gender only through the trait; the subject is the neutral noun "person".
//! For patching this is a useful contrast with professions: the bias word is an adjective one
//! position *before* the noun, so a sweep shows whether the signal is moved onto the subject
//! position or straight to the last position.
//!
//! # Form
//! The 17 Vig et al. templates with the subject fixed to "person": `"The {trait} {subject}
//! {verb} that|because"`, so positions read `prefix, trait, subject, verb…, end`.
//! [`TRAIT_PAIRS`] lists 25 hand-made pairs (female-stereotyped, male-stereotyped) of
//! near-opposite traits, 50 traits in all; each trait is a clean filler. The corrupted prompt
//! uses the pair's other trait (`opposite`, flipping the stereotype so the clean − corrupt
//! metric difference is large) or a trait from [`NEUTRAL_TRAITS`] with the same token count
//! (`neutral`, needs the tokenizer). Ids: `{template}/{trait}/{counterfactual}`; labels:
//! `trait`, `stereotype`, `counterfactual`, `counterfactual_stereotype`, `template`. Order: template-major, traits
//! alphabetical.

use std::collections::BTreeMap;

use patchsweep_model::Tokenizer;

use super::professions::TEMPLATES;
use super::select::{check_filter, keeps, pick_partner};
use super::{DatasetError, PairSpec, Template};

/// (female-stereotyped, male-stereotyped) trait pairs: communal vs agentic adjectives as in
/// the Bem Sex Role Inventory and adjective-checklist studies; labels about common stereotypes,
/// not measurements of any model.
#[rustfmt::skip]
pub const TRAIT_PAIRS: &[(&str, &str)] = &[
    ("gentle", "tough"), ("emotional", "rational"), ("caring", "ambitious"),
    ("sensitive", "aggressive"), ("warm", "dominant"), ("nurturing", "competitive"),
    ("affectionate", "assertive"), ("compassionate", "independent"),
    ("sympathetic", "forceful"), ("shy", "bold"), ("delicate", "strong"),
    ("tender", "rugged"), ("polite", "blunt"), ("modest", "confident"),
    ("cheerful", "stern"), ("sweet", "brave"), ("graceful", "muscular"),
    ("fragile", "powerful"), ("talkative", "decisive"), ("kind", "fearless"),
    ("soft", "athletic"), ("supportive", "analytical"), ("romantic", "logical"),
    ("tidy", "daring"), ("understanding", "adventurous"),
];

/// Traits without a common gender stereotype, the `neutral` counterfactuals.
#[rustfmt::skip]
pub const NEUTRAL_TRAITS: &[&str] = &[
    "young", "old", "local", "busy", "tired", "hungry", "happy", "famous", "sleepy",
    "lucky", "sick", "other", "same",
];

/// What replaces the trait in the corrupted prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraitCounterfactual {
    /// The pair's opposite-stereotype trait (gentle ↔ tough).
    #[default]
    Opposite,
    /// A neutral trait with the same token count; needs the tokenizer ([`traits_with`]).
    Neutral,
}

/// Options of the `traits` dataset (all filters default to everything).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraitsOptions {
    /// Template names to keep (the professions template names, e.g. `said_that`).
    pub templates: Option<Vec<String>>,
    /// Traits to keep (clean fillers).
    pub traits: Option<Vec<String>>,
    /// Stereotypes to keep: `female`, `male`.
    pub stereotypes: Option<Vec<String>>,
    /// What the corrupted prompt says instead of the trait.
    pub counterfactual: TraitCounterfactual,
    /// Keep only the first `limit` pairs (in dataset order).
    pub limit: Option<usize>,
}

/// The 17 templates with the subject fixed to "person" and a `trait` slot before it.
pub fn trait_templates() -> Vec<Template> {
    TEMPLATES
        .iter()
        .map(|(name, verb, last)| {
            let text = format!("The {{trait}} {{subject}} {{verb}} {last}");
            Template::new(name, &text, &[("subject", "person"), ("verb", verb)])
        })
        .collect()
}

/// Every trait with its stereotype and its opposite, alphabetically.
fn all_traits() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut v: Vec<_> = TRAIT_PAIRS
        .iter()
        .flat_map(|&(f, m)| [(f, "female", m), (m, "male", f)])
        .collect();
    v.sort();
    v
}

/// The traits dataset without a tokenizer (`opposite` only).
pub fn traits(opts: &TraitsOptions) -> Result<Vec<PairSpec>, DatasetError> {
    traits_with(opts, None)
}

/// The traits dataset; `tok` is needed for the `neutral` counterfactual.
pub fn traits_with(
    opts: &TraitsOptions,
    tok: Option<&Tokenizer>,
) -> Result<Vec<PairSpec>, DatasetError> {
    const DS: &str = "traits";
    let names: Vec<&str> = TEMPLATES.iter().map(|t| t.0).collect();
    let all = all_traits();
    let known: Vec<&str> = all.iter().map(|t| t.0).collect();
    let t_filter = check_filter(DS, "templates", opts.templates.as_ref(), &names)?;
    let w_filter = check_filter(DS, "traits", opts.traits.as_ref(), &known)?;
    let s_filter = check_filter(
        DS,
        "stereotypes",
        opts.stereotypes.as_ref(),
        &["female", "male"],
    )?;
    if opts.counterfactual == TraitCounterfactual::Neutral && tok.is_none() {
        return Err(DatasetError::NeedsTokenizer {
            dataset: DS.into(),
            option: "counterfactual = \"neutral\"".into(),
            function: "traits_with".into(),
        });
    }
    let mut chosen = Vec::new();
    for (i, &(word, stereo, opposite)) in all.iter().enumerate() {
        if !(keeps(w_filter, word) && keeps(s_filter, stereo)) {
            continue;
        }
        let cf = match opts.counterfactual {
            TraitCounterfactual::Opposite => {
                let other = if stereo == "female" { "male" } else { "female" };
                Some((opposite, other))
            }
            TraitCounterfactual::Neutral => {
                pick_partner(word, i, NEUTRAL_TRAITS, tok)?.map(|cf| (cf, "neutral"))
            }
        };
        if let Some(cf) = cf {
            chosen.push((word, stereo, cf));
        }
    }
    let mut out = Vec::new();
    'templates: for t in trait_templates() {
        if !keeps(t_filter, &t.name) {
            continue;
        }
        for &(word, stereo, cf) in &chosen {
            if opts.limit.is_some_and(|l| out.len() >= l) {
                break 'templates;
            }
            out.push(pair(&t, word, stereo, cf)?);
        }
    }
    if out.is_empty() {
        return Err(DatasetError::Empty {
            dataset: DS.into(),
            reason: Some("the options leave nothing (limit 0, or no match)".into()),
        });
    }
    Ok(out)
}

/// `cf`: the counterfactual trait and its stereotype.
fn pair(
    t: &Template,
    word: &str,
    stereo: &str,
    (cf, cf_stereo): (&str, &str),
) -> Result<PairSpec, DatasetError> {
    let fill = |w: &str| BTreeMap::from([("trait".to_string(), w.to_string())]);
    let (clean, slots) = t.fill(&fill(word))?;
    let (corrupt, _) = t.fill(&fill(cf))?;
    let labels = BTreeMap::from([
        ("trait".to_string(), word.to_string()),
        ("stereotype".to_string(), stereo.to_string()),
        ("counterfactual".to_string(), cf.to_string()),
        (
            "counterfactual_stereotype".to_string(),
            cf_stereo.to_string(),
        ),
        ("template".to_string(), t.name.clone()),
    ]);
    Ok(PairSpec {
        id: format!("{}/{word}/{cf}", t.name),
        template: Some(t.name.clone()),
        clean,
        corrupt,
        positive: None,
        negative: None,
        labels,
        slots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifty_traits_labelled_and_paired() {
        let all = all_traits();
        assert!(all.len() >= 40);
        let pairs = traits(&TraitsOptions::default()).expect("traits");
        assert_eq!(pairs.len(), all.len() * 17);
        let p = pairs
            .iter()
            .find(|p| p.id == "said_that/gentle/tough")
            .expect("pair");
        assert_eq!(p.clean, "The gentle person said that");
        assert_eq!(p.corrupt, "The tough person said that");
        assert_eq!(p.labels["stereotype"], "female");
        let names: Vec<&str> = p.slots.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(names, ["trait", "subject", "verb"]);
        let ids: std::collections::BTreeSet<_> = pairs.iter().map(|p| &p.id).collect();
        assert_eq!(ids.len(), pairs.len());
    }

    #[test]
    fn options_filter_and_errors() {
        let opts = TraitsOptions {
            stereotypes: Some(vec!["male".into()]),
            templates: Some(vec!["ate_because".into()]),
            ..Default::default()
        };
        let pairs = traits(&opts).expect("traits");
        assert_eq!(pairs.len(), TRAIT_PAIRS.len());
        assert!(pairs.iter().all(|p| p.labels["stereotype"] == "male"));
        let bad = TraitsOptions {
            traits: Some(vec!["gentel".into()]),
            ..Default::default()
        };
        assert!(traits(&bad).unwrap_err().to_string().contains("gentel"));
        let neutral = TraitsOptions {
            counterfactual: TraitCounterfactual::Neutral,
            ..Default::default()
        };
        assert!(traits(&neutral)
            .unwrap_err()
            .to_string()
            .contains("traits_with"));
        let toml_like = r#"{"counterfactual": "neutral", "limit": 3}"#;
        let o: TraitsOptions = serde_json::from_str(toml_like).expect("json");
        assert_eq!(o.limit, Some(3));
        assert!(serde_json::from_str::<TraitsOptions>(r#"{"trait": ["x"]}"#).is_err());
    }
}
