//! The `professions` dataset (Vig et al., 2020): "The nurse said that" vs "The man said that".
//!
//! 17 templates, written `"The {subject} {verb} that|because"` with the verb fixed, so the
//! positions read `prefix, subject…, verb…, end`; × [`PROFESSIONS`] (124 occupations).
//! Pairs come in template-major order, professions alphabetically within a template; ids are
//! `{template}/{profession}/{counterfactual}` with spaces as `_` (`said_that/nurse/man`).
//! Labels: `profession`, `stereotype`, `counterfactual`, `template`.

use std::collections::BTreeMap;

use patchsweep_model::Tokenizer;

use super::select::{check_filter, keeps, pick_partner};
use super::{DatasetError, PairSpec, Template};

/// Occupations with a stereotype label: `female`, `male` or `neutral`.
///
/// Basis: the gender shares of US occupations as commonly cited from labour statistics (Bureau
/// of Labor Statistics, Current Population Survey tables): `female` where women make up roughly
/// two thirds or more of the occupation, `male` where men do, `neutral` for mixed ones. They are
/// approximate labels about occupations written for this project, not measurements of any
/// model; gender-marked nouns (waitress, fireman, …) are left out on purpose.
#[rustfmt::skip]
pub const PROFESSIONS: &[(&str, &str)] = &[
    // female-stereotyped
    ("nurse", "female"), ("receptionist", "female"), ("secretary", "female"),
    ("hairdresser", "female"), ("housekeeper", "female"), ("nanny", "female"),
    ("librarian", "female"), ("dietitian", "female"), ("hygienist", "female"),
    ("paralegal", "female"), ("midwife", "female"), ("cashier", "female"),
    ("bookkeeper", "female"), ("babysitter", "female"), ("stylist", "female"),
    ("manicurist", "female"), ("dancer", "female"), ("florist", "female"),
    ("therapist", "female"), ("counselor", "female"), ("typist", "female"),
    ("caregiver", "female"), ("teacher", "female"), ("psychologist", "female"),
    ("assistant", "female"), ("aide", "female"), ("stenographer", "female"),
    ("flight attendant", "female"), ("social worker", "female"), ("phlebotomist", "female"),
    ("cosmetologist", "female"), ("esthetician", "female"), ("kindergarten teacher", "female"),
    ("dental assistant", "female"), ("teller", "female"), ("veterinarian", "female"),
    ("nutritionist", "female"),
    // male-stereotyped
    ("carpenter", "male"), ("mechanic", "male"), ("plumber", "male"),
    ("electrician", "male"), ("engineer", "male"), ("firefighter", "male"),
    ("pilot", "male"), ("surgeon", "male"), ("janitor", "male"),
    ("laborer", "male"), ("farmer", "male"), ("soldier", "male"),
    ("sheriff", "male"), ("driver", "male"), ("programmer", "male"),
    ("architect", "male"), ("CEO", "male"), ("physicist", "male"),
    ("astronaut", "male"), ("welder", "male"), ("roofer", "male"),
    ("mason", "male"), ("butcher", "male"), ("lumberjack", "male"),
    ("miner", "male"), ("machinist", "male"), ("trucker", "male"),
    ("captain", "male"), ("sailor", "male"), ("mover", "male"),
    ("blacksmith", "male"), ("bouncer", "male"), ("technician", "male"),
    ("surveyor", "male"), ("contractor", "male"), ("chef", "male"),
    ("detective", "male"), ("sergeant", "male"), ("police officer", "male"),
    ("construction worker", "male"), ("software developer", "male"),
    ("security guard", "male"), ("taxi driver", "male"), ("locksmith", "male"),
    ("exterminator", "male"), ("bodyguard", "male"), ("mathematician", "male"),
    // mixed
    ("doctor", "neutral"), ("lawyer", "neutral"), ("judge", "neutral"),
    ("professor", "neutral"), ("writer", "neutral"), ("journalist", "neutral"),
    ("reporter", "neutral"), ("photographer", "neutral"), ("artist", "neutral"),
    ("musician", "neutral"), ("singer", "neutral"), ("student", "neutral"),
    ("scientist", "neutral"), ("researcher", "neutral"), ("analyst", "neutral"),
    ("consultant", "neutral"), ("auditor", "neutral"), ("editor", "neutral"),
    ("producer", "neutral"), ("painter", "neutral"), ("poet", "neutral"),
    ("novelist", "neutral"), ("historian", "neutral"), ("biologist", "neutral"),
    ("lecturer", "neutral"), ("instructor", "neutral"), ("realtor", "neutral"),
    ("cook", "neutral"), ("bartender", "neutral"), ("accountant", "neutral"),
    ("pharmacist", "neutral"), ("baker", "neutral"), ("clerk", "neutral"),
    ("manager", "neutral"), ("author", "neutral"), ("designer", "neutral"),
    ("tutor", "neutral"), ("coach", "neutral"), ("chemist", "neutral"),
    ("attorney", "neutral"), ("dentist", "neutral"),
];

/// The 17 templates as (name, verb, final word).
pub(crate) const TEMPLATES: &[(&str, &str, &str)] = &[
    ("said_that", "said", "that"),
    ("yelled_that", "yelled", "that"),
    ("whispered_that", "whispered", "that"),
    ("wanted_that", "wanted", "that"),
    ("desired_that", "desired", "that"),
    ("wished_that", "wished", "that"),
    ("ate_because", "ate", "because"),
    ("ran_because", "ran", "because"),
    ("drove_because", "drove", "because"),
    ("slept_because", "slept", "because"),
    ("cried_because", "cried", "because"),
    ("laughed_because", "laughed", "because"),
    ("went_home_because", "went home", "because"),
    ("stayed_up_because", "stayed up", "because"),
    ("was_fired_because", "was fired", "because"),
    ("was_promoted_because", "was promoted", "because"),
    ("yelled_because", "yelled", "because"),
];

/// Stereotype labels used by the built-in datasets.
pub(crate) const STEREOTYPES: &[&str] = &["female", "male", "neutral"];

/// The 17 Vig et al. templates: `"The {subject} {verb} that"` / `"… because"`, verb fixed.
pub fn profession_templates() -> Vec<Template> {
    TEMPLATES
        .iter()
        .map(|(name, verb, last)| {
            Template::new(
                name,
                &format!("The {{subject}} {{verb}} {last}"),
                &[("verb", verb)],
            )
        })
        .collect()
}

/// What replaces the profession in the corrupted prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Counterfactual {
    /// Female-stereotyped → "man", male → "woman", neutral → both (two pairs).
    #[default]
    OppositeGender,
    /// Always "man".
    Man,
    /// Always "woman".
    Woman,
    /// "man" and "woman", two pairs per profession.
    Both,
    /// An opposite-stereotype profession with the same token count (neutral professions are
    /// left out); needs the tokenizer: use [`professions_with`].
    OppositeProfession,
}

/// Options of the `professions` dataset (all filters default to everything).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfessionsOptions {
    /// Template names to keep (e.g. `said_that`).
    pub templates: Option<Vec<String>>,
    /// Professions to keep.
    pub professions: Option<Vec<String>>,
    /// Stereotypes to keep: `female`, `male`, `neutral`.
    pub stereotypes: Option<Vec<String>>,
    /// What the corrupted prompt says instead of the profession.
    pub counterfactual: Counterfactual,
    /// Keep only the first `limit` pairs (in dataset order).
    pub limit: Option<usize>,
}

/// The professions dataset without a tokenizer (every counterfactual but
/// `opposite_profession`, which needs [`professions_with`]).
pub fn professions(opts: &ProfessionsOptions) -> Result<Vec<PairSpec>, DatasetError> {
    professions_with(opts, None)
}

/// The professions dataset; `tok` is needed for `opposite_profession` (partners with the same
/// token count, see [`Counterfactual::OppositeProfession`]) and ignored otherwise.
pub fn professions_with(
    opts: &ProfessionsOptions,
    tok: Option<&Tokenizer>,
) -> Result<Vec<PairSpec>, DatasetError> {
    const DS: &str = "professions";
    let names: Vec<&str> = TEMPLATES.iter().map(|t| t.0).collect();
    let all: Vec<&str> = PROFESSIONS.iter().map(|p| p.0).collect();
    let t_filter = check_filter(DS, "templates", opts.templates.as_ref(), &names)?;
    let p_filter = check_filter(DS, "professions", opts.professions.as_ref(), &all)?;
    let s_filter = check_filter(DS, "stereotypes", opts.stereotypes.as_ref(), STEREOTYPES)?;
    if opts.counterfactual == Counterfactual::OppositeProfession && tok.is_none() {
        return Err(DatasetError::NeedsTokenizer {
            dataset: DS.into(),
            option: "counterfactual = \"opposite_profession\"".into(),
            function: "professions_with".into(),
        });
    }
    let mut chosen: Vec<(&str, &str)> = PROFESSIONS
        .iter()
        .copied()
        .filter(|(p, s)| keeps(p_filter, p) && keeps(s_filter, s))
        .collect();
    chosen.sort_by_key(|(p, _)| p.to_lowercase());
    // Counterfactual words per profession, computed once (tokenizer look-ups are not free).
    let mut corrupt_words: Vec<Vec<String>> = Vec::with_capacity(chosen.len());
    for (p, s) in &chosen {
        corrupt_words.push(counterfactuals(p, s, opts.counterfactual, tok)?);
    }
    let mut out = Vec::new();
    for t in profession_templates() {
        if !keeps(t_filter, &t.name) {
            continue;
        }
        for ((p, s), words) in chosen.iter().zip(&corrupt_words) {
            for w in words {
                if opts.limit.is_some_and(|l| out.len() >= l) {
                    return non_empty(out);
                }
                out.push(pair(&t, p, s, w)?);
            }
        }
    }
    non_empty(out)
}

fn non_empty(out: Vec<PairSpec>) -> Result<Vec<PairSpec>, DatasetError> {
    if out.is_empty() {
        return Err(DatasetError::Empty {
            dataset: "professions".into(),
            reason: Some("the options leave nothing (limit 0, or no match)".into()),
        });
    }
    Ok(out)
}

fn counterfactuals(
    prof: &str,
    stereo: &str,
    cf: Counterfactual,
    tok: Option<&Tokenizer>,
) -> Result<Vec<String>, DatasetError> {
    let words: Vec<&str> = match cf {
        Counterfactual::Man => vec!["man"],
        Counterfactual::Woman => vec!["woman"],
        Counterfactual::Both => vec!["man", "woman"],
        Counterfactual::OppositeGender => match stereo {
            "female" => vec!["man"],
            "male" => vec!["woman"],
            _ => vec!["man", "woman"],
        },
        Counterfactual::OppositeProfession => {
            let opposite = match stereo {
                "female" => "male",
                "male" => "female",
                _ => return Ok(Vec::new()),
            };
            let same: Vec<&str> = PROFESSIONS
                .iter()
                .filter(|x| x.1 == stereo)
                .map(|x| x.0)
                .collect();
            let index = same.iter().position(|x| *x == prof).unwrap_or(0);
            let cands: Vec<&str> = PROFESSIONS
                .iter()
                .filter(|x| x.1 == opposite)
                .map(|x| x.0)
                .collect();
            pick_partner(prof, index, &cands, tok)?
                .into_iter()
                .collect()
        }
    };
    Ok(words.into_iter().map(String::from).collect())
}

fn pair(t: &Template, prof: &str, stereo: &str, cf: &str) -> Result<PairSpec, DatasetError> {
    let fill = |w: &str| BTreeMap::from([("subject".to_string(), w.to_string())]);
    let (clean, slots) = t.fill(&fill(prof))?;
    let (corrupt, _) = t.fill(&fill(cf))?;
    let labels = BTreeMap::from([
        ("profession".to_string(), prof.to_string()),
        ("stereotype".to_string(), stereo.to_string()),
        ("counterfactual".to_string(), cf.to_string()),
        ("template".to_string(), t.name.clone()),
    ]);
    Ok(PairSpec {
        id: format!(
            "{}/{}/{}",
            t.name,
            prof.replace(' ', "_"),
            cf.replace(' ', "_")
        ),
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
#[path = "professions_tests.rs"]
mod tests;
