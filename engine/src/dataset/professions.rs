//! The `professions` dataset (Vig et al., 2020): "The nurse said that" vs "The man said that".
//!
//! 17 templates, written `"The {subject} {verb} that|because"` with the verb fixed, so the
//! positions read `prefix, subject…, verb…, end`; × a list of professions, chosen by
//! [`ProfessionsOptions::source`]:
//! - `project` (the default): [`PROFESSIONS`], 122 occupations written for this project,
//!   labelled `female`, `male` or `neutral` (see its doc for the basis and
//!   `engine/data/professions-project/README.md` for the table);
//! - `bolukbasi`: the published list of Bolukbasi et al. (2016) as Vig et al. (2020) use it,
//!   by default the 139 professions with definitional score 0 (`max_definitional` widens
//!   this), each pair carrying its stereotypicality score as a label (see
//!   [`bolukbasi_professions`] and `engine/data/professions-bolukbasi/README.md`).
//!
//! Pairs come in template-major order, professions alphabetically within a template; ids are
//! `{template}/{profession}/{counterfactual}` with spaces as `_` (`said_that/nurse/man`).
//! Labels: `profession`, `stereotype`, `counterfactual`, `template`; with
//! `opposite_profession` also `corrupt_profession` (the profession the corrupted prompt
//! names) and `counterfactual_stereotype` (its stereotype, the opposite one); with `source = "bolukbasi"` also `stereotypicality` and `definitional` (the
//! published scores as decimal text, e.g. `"-0.3"`, negative = female).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use patchsweep_model::Tokenizer;

use super::select::{check_filter, keeps, pick_partner};
use super::{DatasetError, PairSpec, Template};

/// Occupations with a stereotype label: `female`, `male` or `neutral`.
///
/// Basis: the share of women in the matching US occupation of the Bureau of Labor Statistics'
/// Current Population Survey ("Employed persons by detailed occupation, sex, race, and
/// Hispanic or Latino ethnicity", annual averages, table 11): `female` where women make up
/// roughly two thirds or more, `male` where men do, `neutral` otherwise. The occupation each
/// name is read against, and the shares that could be checked, are in
/// `engine/data/professions-project/README.md`; the labels are approximate statements about
/// occupations, not measurements of any model. Gender-marked nouns (waitress, fireman,
/// midwife, …) are left out on purpose, and so are umbrella words whose occupations differ
/// in their mix (technician, clerk). For the published list with continuous scores use
/// `source = "bolukbasi"`.
#[rustfmt::skip]
pub const PROFESSIONS: &[(&str, &str)] = &[
    // female-stereotyped
    ("nurse", "female"), ("receptionist", "female"), ("secretary", "female"),
    ("hairdresser", "female"), ("housekeeper", "female"), ("nanny", "female"),
    ("librarian", "female"), ("dietitian", "female"), ("hygienist", "female"),
    ("paralegal", "female"), ("cashier", "female"),
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
    ("pilot", "male"), ("surgeon", "male"),
    ("laborer", "male"), ("farmer", "male"), ("soldier", "male"),
    ("sheriff", "male"), ("driver", "male"), ("programmer", "male"),
    ("architect", "male"), ("CEO", "male"), ("physicist", "male"),
    ("astronaut", "male"), ("welder", "male"), ("roofer", "male"),
    ("mason", "male"), ("butcher", "male"), ("lumberjack", "male"),
    ("miner", "male"), ("machinist", "male"), ("trucker", "male"),
    ("captain", "male"), ("sailor", "male"), ("mover", "male"),
    ("blacksmith", "male"), ("bouncer", "male"),
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
    ("pharmacist", "neutral"), ("baker", "neutral"), ("janitor", "neutral"),
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

/// Which list of professions the dataset uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfessionsSource {
    /// [`PROFESSIONS`], this project's list with `female`/`male`/`neutral` labels.
    #[default]
    Project,
    /// Bolukbasi et al. (2016) as Vig et al. (2020) use it: [`bolukbasi_professions`].
    Bolukbasi,
}

/// One profession of a list, with its stereotype label and, for published lists, its scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Profession {
    /// The word(s) filling the template, e.g. `guidance counselor`.
    pub name: String,
    /// `female`, `male` or `neutral`.
    pub stereotype: &'static str,
    /// Bolukbasi et al.'s stereotypical score in [-1, 1] (negative = female).
    pub stereotypicality: Option<f64>,
    /// Bolukbasi et al.'s definitional score (0 for every profession kept).
    pub definitional: Option<f64>,
}

/// The vendored `professions.json` (see `engine/data/professions-bolukbasi/README.md`).
const BOLUKBASI_JSON: &str = include_str!("../../data/professions-bolukbasi/professions.json");

/// The stereotype label of a Bolukbasi et al. stereotypical score: `< 0` → `female`,
/// `> 0` → `male`, `0` → `neutral` (the scores are given to one decimal).
pub fn stereotype_of_score(stereotypicality: f64) -> &'static str {
    if stereotypicality < 0.0 {
        "female"
    } else if stereotypicality > 0.0 {
        "male"
    } else {
        "neutral"
    }
}

/// Every entry of the vendored list: `(name, definitional, stereotypical)`.
fn bolukbasi_raw() -> &'static [(String, f64, f64)] {
    static RAW: OnceLock<Vec<(String, f64, f64)>> = OnceLock::new();
    RAW.get_or_init(|| {
        serde_json::from_str(BOLUKBASI_JSON).expect("the vendored professions.json parses")
    })
}

/// The professions of Bolukbasi et al. (2016) whose definitional score is at most
/// `max_abs_definitional` in absolute value: with `0` (the dataset's default) the 139
/// professions that are not gendered by definition; with `0.7` the 300 that Vig et al.'s
/// analysis code keeps (`|definitional| < 0.75`). `_` in names is read as a space; each is
/// labelled by [`stereotype_of_score`] and keeps both scores. Alphabetical.
pub fn bolukbasi_professions(max_abs_definitional: f64) -> Vec<Profession> {
    let mut list: Vec<Profession> = bolukbasi_raw()
        .iter()
        .filter(|(_, definitional, _)| definitional.abs() <= max_abs_definitional + 1e-9)
        .map(|(name, definitional, stereotypical)| Profession {
            name: name.replace('_', " "),
            stereotype: stereotype_of_score(*stereotypical),
            stereotypicality: Some(*stereotypical),
            definitional: Some(*definitional),
        })
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

impl ProfessionsSource {
    /// The professions of this list (`max_abs_definitional` applies to `bolukbasi` only; see
    /// [`bolukbasi_professions`]).
    pub fn professions(self, max_abs_definitional: f64) -> Vec<Profession> {
        match self {
            ProfessionsSource::Project => PROFESSIONS
                .iter()
                .map(|&(name, stereotype)| Profession {
                    name: name.to_string(),
                    stereotype,
                    stereotypicality: None,
                    definitional: None,
                })
                .collect(),
            ProfessionsSource::Bolukbasi => bolukbasi_professions(max_abs_definitional),
        }
    }
}

/// Options of the `professions` dataset (all filters default to everything).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfessionsOptions {
    /// Which list of professions: `project` (default) or `bolukbasi`.
    pub source: ProfessionsSource,
    /// `bolukbasi` only: keep professions whose |definitional score| is at most this
    /// (default 0: only professions not gendered by definition; 0.7 reproduces the
    /// `|definitional| < 0.75` filter of Vig et al.'s analysis code).
    pub max_definitional: Option<f64>,
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
    if let Some(max) = opts.max_definitional {
        if opts.source != ProfessionsSource::Bolukbasi {
            return Err(DatasetError::BadOption {
                dataset: DS.into(),
                field: "max_definitional".into(),
                message: "applies to source = \"bolukbasi\" only".into(),
            });
        }
        if !(0.0..=1.0).contains(&max) {
            return Err(DatasetError::BadOption {
                dataset: DS.into(),
                field: "max_definitional".into(),
                message: format!("{max} is not in [0, 1]"),
            });
        }
    }
    let list = opts
        .source
        .professions(opts.max_definitional.unwrap_or(0.0));
    let names: Vec<&str> = TEMPLATES.iter().map(|t| t.0).collect();
    let all: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
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
    let mut chosen: Vec<&Profession> = list
        .iter()
        .filter(|p| keeps(p_filter, &p.name) && keeps(s_filter, p.stereotype))
        .collect();
    chosen.sort_by_key(|p| p.name.to_lowercase());
    // Counterfactual words per profession, computed once (tokenizer look-ups are not free).
    let mut corrupt_words: Vec<Vec<String>> = Vec::with_capacity(chosen.len());
    for p in &chosen {
        corrupt_words.push(counterfactuals(p, &list, opts.counterfactual, tok)?);
    }
    let mut out = Vec::new();
    for t in profession_templates() {
        if !keeps(t_filter, &t.name) {
            continue;
        }
        for (p, words) in chosen.iter().zip(&corrupt_words) {
            for w in words {
                if opts.limit.is_some_and(|l| out.len() >= l) {
                    return non_empty(out);
                }
                let corrupt_profession = opts.counterfactual == Counterfactual::OppositeProfession;
                out.push(pair(&t, p, w, corrupt_profession)?);
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
    prof: &Profession,
    list: &[Profession],
    cf: Counterfactual,
    tok: Option<&Tokenizer>,
) -> Result<Vec<String>, DatasetError> {
    let words: Vec<&str> = match cf {
        Counterfactual::Man => vec!["man"],
        Counterfactual::Woman => vec!["woman"],
        Counterfactual::Both => vec!["man", "woman"],
        Counterfactual::OppositeGender => match prof.stereotype {
            "female" => vec!["man"],
            "male" => vec!["woman"],
            _ => vec!["man", "woman"],
        },
        Counterfactual::OppositeProfession => {
            let opposite = match prof.stereotype {
                "female" => "male",
                "male" => "female",
                _ => return Ok(Vec::new()),
            };
            let index = list
                .iter()
                .filter(|x| x.stereotype == prof.stereotype)
                .position(|x| x.name == prof.name)
                .unwrap_or(0);
            let cands: Vec<&str> = list
                .iter()
                .filter(|x| x.stereotype == opposite)
                .map(|x| x.name.as_str())
                .collect();
            pick_partner(&prof.name, index, &cands, tok)?
                .into_iter()
                .collect()
        }
    };
    Ok(words.into_iter().map(String::from).collect())
}

fn pair(
    t: &Template,
    prof: &Profession,
    cf: &str,
    corrupt_profession: bool,
) -> Result<PairSpec, DatasetError> {
    let fill = |w: &str| BTreeMap::from([("subject".to_string(), w.to_string())]);
    let (clean, slots) = t.fill(&fill(&prof.name))?;
    let (corrupt, _) = t.fill(&fill(cf))?;
    let mut labels = BTreeMap::from([
        ("profession".to_string(), prof.name.clone()),
        ("stereotype".to_string(), prof.stereotype.to_string()),
        ("counterfactual".to_string(), cf.to_string()),
        ("template".to_string(), t.name.clone()),
    ]);
    if corrupt_profession {
        labels.insert("corrupt_profession".into(), cf.to_string());
        // opposite_profession pairs each profession with one of the opposite stereotype
        let opposite = if prof.stereotype == "female" {
            "male"
        } else {
            "female"
        };
        labels.insert("counterfactual_stereotype".into(), opposite.to_string());
    }
    for (key, score) in [
        ("stereotypicality", prof.stereotypicality),
        ("definitional", prof.definitional),
    ] {
        if let Some(v) = score {
            labels.insert(key.into(), format!("{v}"));
        }
    }
    Ok(PairSpec {
        id: format!(
            "{}/{}/{}",
            t.name,
            prof.name.replace(' ', "_"),
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
