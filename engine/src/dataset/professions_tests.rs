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

#[test]
fn project_list_has_no_gendered_or_umbrella_words_and_matches_its_table() {
    for (p, _) in PROFESSIONS {
        let w = p.to_lowercase();
        assert!(
            !w.contains("wife") && !w.ends_with("man") && !w.ends_with("men"),
            "{p} is a gender-marked word"
        );
    }
    for gone in ["midwife", "technician", "clerk"] {
        assert!(PROFESSIONS.iter().all(|p| p.0 != gone), "{gone} is back");
    }
    assert!(PROFESSIONS.contains(&("janitor", "neutral")));
    let table = include_str!("../../data/professions-project/README.md");
    let rows: Vec<(String, String)> = table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| profession"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].to_string(), cells[2].to_string())
        })
        .collect();
    let consts: Vec<(String, String)> = PROFESSIONS
        .iter()
        .map(|(p, s)| (p.to_string(), s.to_string()))
        .collect();
    assert_eq!(rows, consts, "the table and PROFESSIONS differ");
}

#[test]
fn bolukbasi_list_keeps_definitional_zero_and_the_scores() {
    let list = bolukbasi_professions(0.0);
    assert_eq!(list.len(), 139);
    let count = |s: &str| list.iter().filter(|p| p.stereotype == s).count();
    assert_eq!(
        (count("female"), count("male"), count("neutral")),
        (33, 85, 21)
    );
    assert!(list.iter().all(|p| p.definitional == Some(0.0)));
    assert!(list.iter().all(|p| !p.name.contains('_')));
    let gc = list
        .iter()
        .find(|p| p.name == "guidance counselor")
        .expect("spaces");
    assert_eq!(gc.stereotypicality, Some(0.0));
    assert!(list
        .iter()
        .all(|p| p.name != "actress" && p.name != "nurse"));
    // Vig et al.'s analysis filter, |definitional| < 0.75.
    let wide = bolukbasi_professions(0.7);
    assert_eq!(wide.len(), 300);
    assert!(wide
        .iter()
        .any(|p| p.name == "nurse" && p.stereotype == "female"));
    assert!(wide
        .iter()
        .all(|p| p.name != "actress" && p.name != "waitress"));
}

#[test]
fn bolukbasi_pairs_carry_stereotypicality() {
    let opts = ProfessionsOptions {
        source: ProfessionsSource::Bolukbasi,
        templates: Some(vec!["said_that".into()]),
        ..Default::default()
    };
    let pairs = professions(&opts).expect("bolukbasi");
    let neutral = bolukbasi_professions(0.0)
        .iter()
        .filter(|p| p.stereotype == "neutral")
        .count();
    assert_eq!(pairs.len(), 139 + neutral);
    let acc = pairs
        .iter()
        .find(|p| p.id == "said_that/accountant/woman")
        .expect("accountant (0.4, male) is corrupted to woman");
    assert_eq!(acc.labels["stereotypicality"], "0.4");
    assert_eq!(acc.labels["definitional"], "0");
    assert_eq!(acc.labels["stereotype"], "male");
    for p in &pairs {
        let score: f64 = p.labels["stereotypicality"].parse().expect("a number");
        assert_eq!(stereotype_of_score(score), p.labels["stereotype"]);
    }
    // Filters read the list chosen; the project's words are not in it.
    let bad = ProfessionsOptions {
        professions: Some(vec!["engineer".into()]),
        ..opts.clone()
    };
    assert!(professions(&bad)
        .unwrap_err()
        .to_string()
        .contains("engineer"));
    let parsed: ProfessionsOptions =
        serde_json::from_str(r#"{"source": "bolukbasi", "max_definitional": 0.7}"#).expect("json");
    assert_eq!(parsed.source, ProfessionsSource::Bolukbasi);
    let wide = professions(&parsed).expect("wide");
    assert!(wide.iter().any(|p| p.labels["profession"] == "nurse"));
    assert!(wide.iter().all(|p| {
        let d: f64 = p.labels["definitional"].parse().unwrap();
        d.abs() <= 0.7 + 1e-9
    }));
    let misplaced = ProfessionsOptions {
        max_definitional: Some(0.5),
        ..Default::default()
    };
    assert!(professions(&misplaced)
        .unwrap_err()
        .to_string()
        .contains("bolukbasi"));
}
