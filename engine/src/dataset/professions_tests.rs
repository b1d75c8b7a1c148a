use std::collections::BTreeSet;

use super::*;

#[test]
fn table_is_large_unique_and_labelled() {
    assert!(PROFESSIONS.len() >= 100);
    let names: BTreeSet<&str> = PROFESSIONS.iter().map(|p| p.0).collect();
    assert_eq!(names.len(), PROFESSIONS.len(), "duplicate profession");
    for (p, s) in PROFESSIONS {
        assert!(STEREOTYPES.contains(s), "{p}: {s}");
        assert_eq!(p.trim(), *p);
    }
    for s in STEREOTYPES {
        assert!(
            PROFESSIONS.iter().filter(|p| p.1 == *s).count() >= 30,
            "{s}"
        );
    }
}

#[test]
fn seventeen_templates_in_vig_form() {
    let ts = profession_templates();
    assert_eq!(ts.len(), 17);
    let texts: Vec<String> = ts
        .iter()
        .map(|t| {
            t.fill(&BTreeMap::from([("subject".into(), "{}".into())]))
                .expect("fill")
                .0
        })
        .collect();
    assert!(texts.contains(&"The {} said that".to_string()));
    assert!(texts.contains(&"The {} went home because".to_string()));
    assert!(texts.contains(&"The {} was promoted because".to_string()));
    assert_eq!(texts.iter().collect::<BTreeSet<_>>().len(), 17);
}

#[test]
fn default_dataset_pairs_and_ids() {
    let pairs = professions(&ProfessionsOptions::default()).expect("professions");
    let neutral = PROFESSIONS.iter().filter(|p| p.1 == "neutral").count();
    assert_eq!(pairs.len(), 17 * (PROFESSIONS.len() + neutral));
    let ids: BTreeSet<&str> = pairs.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids.len(), pairs.len());
    let p = pairs
        .iter()
        .find(|p| p.id == "said_that/nurse/man")
        .expect("nurse pair");
    assert_eq!(
        (p.clean.as_str(), p.corrupt.as_str()),
        ("The nurse said that", "The man said that")
    );
    assert_eq!(p.labels["stereotype"], "female");
    assert_eq!(p.labels["counterfactual"], "man");
    assert_eq!(p.labels["template"], "said_that");
    assert!(pairs
        .iter()
        .any(|p| p.id == "went_home_because/police_officer/woman"));
    assert!(pairs.iter().any(|p| p.id == "said_that/doctor/woman"));
    assert!(pairs.iter().any(|p| p.id == "said_that/doctor/man"));
    assert!(pairs
        .iter()
        .all(|p| p.positive.is_none() && p.negative.is_none()));
    // deterministic
    assert_eq!(
        pairs,
        professions(&ProfessionsOptions::default()).expect("again")
    );
}

#[test]
fn options_filter_limit_and_counterfactuals() {
    let opts = ProfessionsOptions {
        templates: Some(vec!["said_that".into(), "ate_because".into()]),
        professions: Some(vec!["nurse".into(), "carpenter".into(), "doctor".into()]),
        counterfactual: Counterfactual::Both,
        ..Default::default()
    };
    assert_eq!(professions(&opts).expect("p").len(), 2 * 3 * 2);
    let opts = ProfessionsOptions {
        stereotypes: Some(vec!["male".into()]),
        limit: Some(5),
        ..Default::default()
    };
    let pairs = professions(&opts).expect("p");
    assert_eq!(pairs.len(), 5);
    assert!(pairs.iter().all(|p| p.labels["counterfactual"] == "woman"));
    let parsed: ProfessionsOptions = serde_json::from_str(
        r#"{"counterfactual": "opposite_profession", "templates": ["said_that"]}"#,
    )
    .expect("json");
    assert_eq!(parsed.counterfactual, Counterfactual::OppositeProfession);
    let e = professions(&parsed).unwrap_err().to_string();
    assert!(e.contains("professions_with"), "{e}");
    assert!(serde_json::from_str::<ProfessionsOptions>(r#"{"profesions": []}"#).is_err());
    assert!(serde_json::from_str::<ProfessionsOptions>(r#"{"counterfactual": "girl"}"#).is_err());
}

#[test]
fn bad_options_are_named() {
    let cases = [
        ProfessionsOptions {
            templates: Some(vec!["said".into()]),
            ..Default::default()
        },
        ProfessionsOptions {
            professions: Some(vec!["nursee".into()]),
            ..Default::default()
        },
        ProfessionsOptions {
            stereotypes: Some(vec!["feminine".into()]),
            ..Default::default()
        },
    ];
    for (opts, word) in cases.iter().zip(["\"said\"", "\"nursee\"", "\"feminine\""]) {
        let e = professions(opts).unwrap_err().to_string();
        assert!(e.contains(word), "{e}");
    }
    let zero = ProfessionsOptions {
        limit: Some(0),
        ..Default::default()
    };
    assert!(professions(&zero)
        .unwrap_err()
        .to_string()
        .contains("no pairs"));
}
