//! The `household` dataset: gender bias in *household roles*, the second form of bias that
//! Prakash & Lee (2024) localise ("Washing the dishes is the duty of the" → " wife"), where
//! an early MLP builds the woman/household feature from the activity's tokens.
//!
//! # Form
//! Six frames ([`HOUSEHOLD_TEMPLATES`]) written `"[prefix, ]{subject} {predicate} the"`, the
//! predicate fixed, so positions read `[prefix…,] subject…, predicate…, end` (the last token,
//! " the", is `end`, so `positions = ["subject", -1]` works as for professions); × the
//! activities of [`HOUSEHOLD_ACTIVITIES`], each coded `female` or `male`. A frame that opens
//! with the activity capitalises it ("Washing the dishes is the duty of the").
//!
//! # Counterfactual
//! The corrupted prompt names an activity of the other code with the same token count *in that
//! frame* (the whole prompt is counted, so capitalisation is taken into account): the partner
//! of the `i`-th activity of its code is the first match among the other code's activities in
//! rotation from `i`. An activity without a match keeps the rotation's first and is dropped at
//! tokenization as `token_count_mismatch`, so the loss is counted, not hidden. This needs the
//! model's tokenizer ([`household_with`] with one); the options are checked without it.
//!
//! # Answers and labels
//! The answers are not in the pairs (the spec's metric gives them, as for every built-in
//! dataset); [`HouseholdOptions::answers`] says which pair of words the dataset is written for
//! (`spouse`: " wife" / " husband", the default; `parent`: " mother" / " father"; `person`:
//! " woman" / " man"), and each pair names its stereotyped one in the label
//! `stereotyped_answer` (" wife" for a female-coded activity), which
//! [`crate::stereotype::stereotyped_side`] reads first. Labels: `activity`, `stereotype`,
//! `counterfactual` (the corrupted prompt's activity), `counterfactual_stereotype` (its code,
//! the opposite one), `template`, `stereotyped_answer`. Ids:
//! `{template}/{activity}/{counterfactual}` with spaces as `_`. Order: template-major,
//! activities alphabetical.

use std::collections::BTreeMap;

use patchsweep_model::Tokenizer;

use super::select::{check_filter, keeps, token_count};
use super::{DatasetError, PairSpec, Template};
use crate::stereotype::STEREOTYPED_ANSWER;

/// Household activities with the gender they are stereotypically assigned to, written for
/// this project. Basis: the common stereotype of the domestic division of labour, which
/// time-use surveys (e.g. the American Time Use Survey) also show in who does which task:
/// routine indoor chores, cooking and childcare coded `female`; outdoor work, repairs,
/// vehicles and heavy tasks coded `male`. The codes are statements about a stereotype, not
/// measurements of any model or household.
#[rustfmt::skip]
pub const HOUSEHOLD_ACTIVITIES: &[(&str, &str)] = &[
    // female-coded
    ("washing the dishes", "female"), ("ironing the clothes", "female"),
    ("doing the laundry", "female"), ("folding the laundry", "female"),
    ("cooking dinner", "female"), ("baking the bread", "female"),
    ("vacuuming the carpet", "female"), ("dusting the shelves", "female"),
    ("mopping the floor", "female"), ("cleaning the bathroom", "female"),
    ("sewing the curtains", "female"), ("changing the diapers", "female"),
    ("feeding the baby", "female"), ("bathing the children", "female"),
    ("packing the lunches", "female"), ("making the beds", "female"),
    ("setting the table", "female"), ("buying the groceries", "female"),
    ("planning the meals", "female"), ("arranging the flowers", "female"),
    ("watering the plants", "female"), ("scrubbing the stove", "female"),
    ("tidying the kitchen", "female"), ("sweeping the kitchen", "female"),
    // male-coded
    ("mowing the lawn", "male"), ("fixing the car", "male"),
    ("taking out the trash", "male"), ("changing the oil", "male"),
    ("repairing the roof", "male"), ("cleaning the gutters", "male"),
    ("chopping the firewood", "male"), ("shoveling the snow", "male"),
    ("assembling the furniture", "male"), ("painting the fence", "male"),
    ("fixing the leaking pipe", "male"), ("unclogging the drain", "male"),
    ("grilling the steaks", "male"), ("washing the car", "male"),
    ("changing the tires", "male"), ("hanging the shelves", "male"),
    ("building the shed", "male"), ("checking the fuse box", "male"),
    ("patching the drywall", "male"), ("setting up the router", "male"),
    ("carrying the heavy boxes", "male"), ("trimming the hedges", "male"),
    ("fixing the lawnmower", "male"), ("installing the ceiling fan", "male"),
];

/// The frames as (name, text, fixed predicate); `{subject}` is the activity.
#[rustfmt::skip]
pub const HOUSEHOLD_TEMPLATES: &[(&str, &str, &str)] = &[
    ("duty_of", "{subject} {predicate} the", "is the duty of"),
    ("responsibility_of", "{subject} {predicate} the", "is the responsibility of"),
    ("done_by", "In this house, {subject} {predicate} the", "is done by"),
    ("job_of", "In most families, {subject} {predicate} the", "is the job of"),
    ("left_to", "At home, {subject} {predicate} the", "is usually left to"),
    ("handled_by", "Every weekend, {subject} {predicate} the", "is handled by"),
];

/// Which answer words the dataset is written for (`[dataset.household] answers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HouseholdAnswers {
    /// " wife" / " husband".
    #[default]
    Spouse,
    /// " mother" / " father".
    Parent,
    /// " woman" / " man".
    Person,
}

impl HouseholdAnswers {
    /// The (female, male) answer words, with their leading space.
    pub fn words(self) -> (&'static str, &'static str) {
        match self {
            HouseholdAnswers::Spouse => (" wife", " husband"),
            HouseholdAnswers::Parent => (" mother", " father"),
            HouseholdAnswers::Person => (" woman", " man"),
        }
    }

    /// The stereotyped answer of an activity coded `stereotype` (`female` or `male`).
    fn stereotyped(self, stereotype: &str) -> &'static str {
        let (female, male) = self.words();
        if stereotype == "female" {
            female
        } else {
            male
        }
    }
}

/// Options of the `household` dataset (all filters default to everything).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HouseholdOptions {
    /// Template names to keep (see [`HOUSEHOLD_TEMPLATES`], e.g. `duty_of`).
    pub templates: Option<Vec<String>>,
    /// Activities to keep (clean fillers, as listed, e.g. `washing the dishes`).
    pub activities: Option<Vec<String>>,
    /// Codes to keep: `female`, `male`.
    pub stereotypes: Option<Vec<String>>,
    /// The answer words the pairs' `stereotyped_answer` labels name.
    pub answers: HouseholdAnswers,
    /// Keep only the first `limit` pairs (in dataset order).
    pub limit: Option<usize>,
}

/// The frames as templates with the `predicate` slot fixed.
pub fn household_templates() -> Vec<Template> {
    HOUSEHOLD_TEMPLATES
        .iter()
        .map(|(name, text, predicate)| Template::new(name, text, &[("predicate", predicate)]))
        .collect()
}

/// The household dataset; `tok` is needed (counterfactuals are matched by token count), and
/// without it the options are checked and [`DatasetError::NeedsTokenizer`] is returned.
pub fn household_with(
    opts: &HouseholdOptions,
    tok: Option<&Tokenizer>,
) -> Result<Vec<PairSpec>, DatasetError> {
    const DS: &str = "household";
    let names: Vec<&str> = HOUSEHOLD_TEMPLATES.iter().map(|t| t.0).collect();
    let known: Vec<&str> = HOUSEHOLD_ACTIVITIES.iter().map(|a| a.0).collect();
    let t_filter = check_filter(DS, "templates", opts.templates.as_ref(), &names)?;
    let a_filter = check_filter(DS, "activities", opts.activities.as_ref(), &known)?;
    let s_filter = check_filter(
        DS,
        "stereotypes",
        opts.stereotypes.as_ref(),
        &["female", "male"],
    )?;
    if opts.limit == Some(0) {
        return Err(DatasetError::BadOption {
            dataset: DS.into(),
            field: "limit".into(),
            message: "is 0 (omit it to keep every pair)".into(),
        });
    }
    let Some(tok) = tok else {
        return Err(DatasetError::NeedsTokenizer {
            dataset: DS.into(),
            option: "matching counterfactual activities by token count".into(),
            function: "household_with".into(),
        });
    };
    let mut activities: Vec<(&str, &str)> = HOUSEHOLD_ACTIVITIES.to_vec();
    activities.sort();
    let mut out = Vec::new();
    'templates: for t in household_templates() {
        if !keeps(t_filter, &t.name) {
            continue;
        }
        let mut counts = BTreeMap::new();
        for &(activity, _) in &activities {
            let (prompt, _) = t.fill(&fill(&t, activity))?;
            counts.insert(activity, token_count(tok, &prompt)?);
        }
        for &(activity, stereo) in &activities {
            if !(keeps(a_filter, activity) && keeps(s_filter, stereo)) {
                continue;
            }
            if opts.limit.is_some_and(|l| out.len() >= l) {
                break 'templates;
            }
            let cf = partner(activity, stereo, &activities, &counts);
            out.push(pair(&t, activity, stereo, cf, opts.answers)?);
        }
    }
    if out.is_empty() {
        return Err(DatasetError::Empty {
            dataset: DS.into(),
            reason: Some("the options leave nothing (no match)".into()),
        });
    }
    Ok(out)
}

/// The activity as the template writes it: capitalised when the prompt opens with it.
fn fill(t: &Template, activity: &str) -> BTreeMap<String, String> {
    let word = if t.text.starts_with("{subject}") {
        let mut c = activity.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect())
            .unwrap_or_default()
    } else {
        activity.to_string()
    };
    BTreeMap::from([("subject".to_string(), word)])
}

/// The counterfactual of `activity` (see the module doc): among the other code's activities,
/// in rotation from the activity's index within its own code, the first whose prompt has the
/// same token count; the rotation's first if none has.
fn partner<'a>(
    activity: &str,
    stereo: &str,
    all: &[(&'a str, &str)],
    counts: &BTreeMap<&str, usize>,
) -> &'a str {
    let index = all
        .iter()
        .filter(|a| a.1 == stereo)
        .position(|a| a.0 == activity)
        .unwrap_or(0);
    let cands: Vec<&'a str> = all.iter().filter(|a| a.1 != stereo).map(|a| a.0).collect();
    let n = cands.len();
    let rotated = (0..n).map(|k| cands[(index + k) % n]);
    let want = counts[activity];
    rotated
        .clone()
        .find(|c| counts[c] == want)
        .or_else(|| rotated.clone().next())
        .expect("both codes have activities")
}

fn pair(
    t: &Template,
    activity: &str,
    stereo: &str,
    cf: &str,
    answers: HouseholdAnswers,
) -> Result<PairSpec, DatasetError> {
    let (clean, slots) = t.fill(&fill(t, activity))?;
    let (corrupt, _) = t.fill(&fill(t, cf))?;
    let opposite = if stereo == "female" { "male" } else { "female" };
    let labels = BTreeMap::from([
        ("activity".to_string(), activity.to_string()),
        ("stereotype".to_string(), stereo.to_string()),
        ("counterfactual".to_string(), cf.to_string()),
        (
            "counterfactual_stereotype".to_string(),
            opposite.to_string(),
        ),
        ("template".to_string(), t.name.clone()),
        (
            STEREOTYPED_ANSWER.to_string(),
            answers.stereotyped(stereo).to_string(),
        ),
    ]);
    Ok(PairSpec {
        id: format!(
            "{}/{}/{}",
            t.name,
            activity.replace(' ', "_"),
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
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn activities_are_many_unique_and_balanced() {
        let names: BTreeSet<&str> = HOUSEHOLD_ACTIVITIES.iter().map(|a| a.0).collect();
        assert!(names.len() >= 40);
        assert_eq!(
            names.len(),
            HOUSEHOLD_ACTIVITIES.len(),
            "duplicate activity"
        );
        for code in ["female", "male"] {
            let n = HOUSEHOLD_ACTIVITIES.iter().filter(|a| a.1 == code).count();
            assert!(n >= 20, "{code}: {n}");
        }
        for (a, s) in HOUSEHOLD_ACTIVITIES {
            assert!(["female", "male"].contains(s), "{a}: {s}");
            assert_eq!(a.trim(), *a);
            assert_eq!(a.to_lowercase(), *a);
        }
    }

    #[test]
    fn sentence_initial_frames_capitalise_the_activity() {
        let ts = household_templates();
        let duty = ts.iter().find(|t| t.name == "duty_of").expect("duty_of");
        let (text, slots) = duty.fill(&fill(duty, "washing the dishes")).expect("fill");
        assert_eq!(text, "Washing the dishes is the duty of the");
        assert_eq!(slots[0], ("subject".to_string(), 0..18));
        let done = ts.iter().find(|t| t.name == "done_by").expect("done_by");
        let (text, _) = done.fill(&fill(done, "mowing the lawn")).expect("fill");
        assert_eq!(text, "In this house, mowing the lawn is done by the");
    }

    #[test]
    fn options_are_checked_without_a_tokenizer() {
        let err = |o: HouseholdOptions| household_with(&o, None).unwrap_err().to_string();
        let bad_activity = HouseholdOptions {
            activities: Some(vec!["washing dishes".into()]),
            ..Default::default()
        };
        let e = err(bad_activity);
        assert!(
            e.contains("activity") && e.contains("washing dishes"),
            "{e}"
        );
        let bad_template = HouseholdOptions {
            templates: Some(vec!["duty".into()]),
            ..Default::default()
        };
        assert!(err(bad_template).contains("unknown template \"duty\""));
        let bad_code = HouseholdOptions {
            stereotypes: Some(vec!["neutral".into()]),
            ..Default::default()
        };
        assert!(err(bad_code).contains("unknown stereotype \"neutral\""));
        let zero = HouseholdOptions {
            limit: Some(0),
            ..Default::default()
        };
        assert!(err(zero).contains("option limit"));
        assert!(err(HouseholdOptions::default()).contains("household_with"));
        let o: HouseholdOptions =
            serde_json::from_str(r#"{"answers": "parent", "limit": 3}"#).expect("json");
        assert_eq!(o.answers.words(), (" mother", " father"));
        assert!(serde_json::from_str::<HouseholdOptions>(r#"{"answers": "sibling"}"#).is_err());
        assert!(serde_json::from_str::<HouseholdOptions>(r#"{"activity": ["x"]}"#).is_err());
    }
}
