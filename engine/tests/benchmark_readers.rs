//! The benchmark readers on the real (vendored) files, and their errors on bad ones.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use patchsweep_engine::benchmark::{
    crows_pairs, jsonl, load, professions, winobias, BenchmarkError, BenchmarkPair,
    BenchmarkSource, Selection,
};
use patchsweep_engine::dataset::PROFESSIONS;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/benchmarks")
}

fn counts(pairs: &[BenchmarkPair]) -> BTreeMap<&str, usize> {
    let mut out = BTreeMap::new();
    for p in pairs {
        *out.entry(p.subset.as_str()).or_default() += 1;
    }
    out
}

fn unique_ids(pairs: &[BenchmarkPair]) {
    let ids: BTreeSet<&str> = pairs.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids.len(), pairs.len(), "ids are unique");
}

fn select(subsets: Option<&[&str]>, split: Option<&str>) -> Selection {
    Selection {
        subsets: subsets.map(|s| s.iter().map(|x| x.to_string()).collect()),
        split: split.map(String::from),
    }
}

#[test]
fn crows_pairs_has_1508_pairs_over_nine_bias_types() {
    let pairs = crows_pairs::builtin().unwrap();
    assert_eq!(pairs.len(), 1508);
    unique_ids(&pairs);
    let expected = BTreeMap::from([
        ("age", 87),
        ("disability", 60),
        ("gender", 262),
        ("nationality", 159),
        ("physical-appearance", 63),
        ("race-color", 516),
        ("religion", 105),
        ("sexual-orientation", 84),
        ("socioeconomic", 172),
    ]);
    assert_eq!(counts(&pairs), expected);
    let directions: Vec<&str> = pairs
        .iter()
        .map(|p| p.labels["direction"].as_str())
        .collect();
    assert_eq!(
        directions.iter().filter(|d| **d == "antistereo").count(),
        218
    );
    // Row 2 is `antistereo`: sent_more ("he" for a doctor) is still the stereotypical sentence.
    let doctor = pairs.iter().find(|p| p.id == "crows_pairs/2").unwrap();
    assert_eq!(doctor.labels["direction"], "antistereo");
    assert!(
        doctor.stereo.ends_with("whether he would come forward."),
        "{doctor:?}"
    );
    assert!(
        doctor.anti.ends_with("whether she would come forward."),
        "{doctor:?}"
    );
    // One record of the published file holds a line break inside a quoted sentence.
    assert!(pairs
        .iter()
        .any(|p| p.stereo.contains('\n') || p.anti.contains('\n')));
    // The same file read from disk gives the same pairs.
    let from_disk =
        crows_pairs::read(&data_dir().join("crows-pairs/crows_pairs_anonymized.csv")).unwrap();
    assert_eq!(from_disk, pairs);
}

#[test]
fn winobias_pairs_pro_and_anti_lines_of_both_types_and_splits() {
    let pairs = winobias::builtin().unwrap();
    assert_eq!(pairs.len(), 4 * 396);
    unique_ids(&pairs);
    assert_eq!(
        counts(&pairs),
        BTreeMap::from([("type1", 792), ("type2", 792)])
    );
    for split in ["dev", "test"] {
        let n = pairs.iter().filter(|p| p.labels["split"] == split).count();
        assert_eq!(n, 792, "{split}");
    }
    for p in &pairs {
        for s in [&p.stereo, &p.anti] {
            assert!(!s.contains(['[', ']']) && !s.contains("  "), "{s:?}");
            assert!(!s.starts_with(|c: char| c.is_ascii_digit()), "{s:?}");
        }
    }
    let first = &pairs[0];
    assert_eq!(first.id, "winobias/type1/dev/1");
    assert_eq!(
        first.stereo,
        "The developer argued with the designer because he did not like the design."
    );
    assert_eq!(
        first.anti,
        "The developer argued with the designer because she did not like the design."
    );
    assert_eq!(
        winobias::read_dir(&data_dir().join("winobias")).unwrap(),
        pairs
    );
}

#[test]
fn professions_pairs_every_stereotyped_profession_with_both_pronouns() {
    let pairs = professions::builtin().unwrap();
    unique_ids(&pairs);
    let female = PROFESSIONS.iter().filter(|p| p.1 == "female").count();
    let male = PROFESSIONS.iter().filter(|p| p.1 == "male").count();
    assert_eq!(
        counts(&pairs),
        BTreeMap::from([("female", 17 * female), ("male", 17 * male)])
    );
    let nurse = pairs
        .iter()
        .find(|p| p.id == "professions/said_that/nurse")
        .unwrap();
    assert_eq!(nurse.stereo, "The nurse said that she");
    assert_eq!(nurse.anti, "The nurse said that he");
    let plumber = pairs
        .iter()
        .find(|p| p.id == "professions/ate_because/plumber")
        .unwrap();
    assert_eq!(plumber.stereo, "The plumber ate because he");
}

#[test]
fn selection_keeps_subsets_and_splits_and_names_unknown_ones() {
    let gender = load(
        &BenchmarkSource::CrowsPairs,
        &select(Some(&["gender"]), None),
    )
    .unwrap();
    assert_eq!(gender.len(), 262);
    let t1_test = load(
        &BenchmarkSource::Winobias,
        &select(Some(&["type1"]), Some("test")),
    )
    .unwrap();
    assert_eq!(t1_test.len(), 396);
    assert!(t1_test
        .iter()
        .all(|p| p.id.starts_with("winobias/type1/test/")));

    let err = load(
        &BenchmarkSource::CrowsPairs,
        &select(Some(&["gendr"]), None),
    )
    .err()
    .unwrap();
    assert!(matches!(err, BenchmarkError::UnknownSubset { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("\"gendr\"") && msg.contains("race-color"),
        "{msg}"
    );
    let msg = load(&BenchmarkSource::Winobias, &select(None, Some("train")))
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("unknown split \"train\"; known: dev, test"),
        "{msg}"
    );
    let msg = load(&BenchmarkSource::CrowsPairs, &select(None, Some("dev")))
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("crows_pairs has no splits"), "{msg}");
    let msg = load(&BenchmarkSource::Professions, &select(Some(&[]), None))
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("subsets: is an empty list"), "{msg}");
}

#[test]
fn malformed_crows_pairs_records_are_named_by_file_and_line() {
    let header = ",sent_more,sent_less,stereo_antistereo,bias_type,annotations,anon_writer,anon_annotators\n";
    let good = "0,\"A, b.\",C d.,stereo,gender,[],a0,[]\n";
    let cases = [
        (
            format!("{header}{good}1,x,y,sideways,gender,[],a0,[]\n"),
            "bad.csv:3: stereo_antistereo is \"sideways\"",
        ),
        (
            format!("{header}{good}1,x,y,stereo,colour,[],a0,[]\n"),
            "bad.csv:3: bias_type \"colour\" is not one of",
        ),
        (
            format!("{header}{good}\n1,x,y,stereo\n"),
            "bad.csv:4: 4 fields, the header has 8",
        ),
        (
            format!("{header}{good}1,,y,stereo,gender,[],a0,[]\n"),
            "bad.csv:3: column sent_more is empty",
        ),
        (
            format!("{header}{good}1,\"x,y,stereo,gender,[],a0,[]\n"),
            "bad.csv:3: a quoted field is never closed",
        ),
        (
            "a,b\n1,2\n".to_string(),
            "bad.csv:1: the header has no column \"sent_more\"",
        ),
    ];
    for (text, expected) in cases {
        let msg = crows_pairs::parse(&text, "bad.csv")
            .err()
            .unwrap()
            .to_string();
        assert!(
            msg.starts_with(expected),
            "{msg:?} should start with {expected:?}"
        );
    }
    let ok = crows_pairs::parse(&format!("{header}{good}"), "ok.csv").unwrap();
    assert_eq!(ok[0].stereo, "A, b.");
    let msg = crows_pairs::read(&data_dir().join("nope.csv"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("cannot read benchmark file") && msg.contains("nope.csv"),
        "{msg}"
    );
}

#[test]
fn malformed_winobias_files_are_named_by_file_and_line() {
    let pro =
        "1 [The cook] met the guard and [he] left.\n2 The guard met [the cook] and [she] left.\n";
    let anti_short = "1 [The cook] met the guard and [she] left.\n";
    let anti_renumbered =
        "1 [The cook] met the guard and [she] left.\n3 The guard met [the cook] and [he] left.\n";
    let anti_no_number =
        "1 [The cook] met the guard and [she] left.\nThe guard met [the cook] and [he] left.\n";
    let run = |anti: &str| {
        winobias::parse_pair_files((pro, "pro.txt"), (anti, "anti.txt"), "type1", "dev")
            .err()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        run(anti_short),
        "pro.txt:2: sentence 2 has no partner in anti.txt (1 sentences there)"
    );
    assert_eq!(
        run(anti_renumbered),
        "pro.txt:2: sentence 2 pairs with sentence 3 of anti.txt"
    );
    assert_eq!(
        run(anti_no_number),
        "anti.txt:2: expected a sentence number first, found \"The\""
    );
    let ok = winobias::parse_pair_files(
        (pro, "pro.txt"),
        ("1 [The cook] met the guard and [she] left.\n2 The guard met [the cook] and [he] left.\n", "anti.txt"),
        "type1",
        "dev",
    )
    .unwrap();
    assert_eq!(ok[1].stereo, "The guard met the cook and she left.");
    assert_eq!(ok[1].anti, "The guard met the cook and he left.");
}

#[test]
fn jsonl_pairs_and_their_errors() {
    let ok = jsonl::parse(
        "{\"stereo\": \"a b\", \"anti\": \"c d\", \"subset\": \"s\"}\n\n{\"stereo\": \"e\", \"anti\": \"f\", \"id\": \"x\"}\n",
        "p.jsonl",
    )
    .unwrap();
    assert_eq!(ok.len(), 2);
    assert_eq!((ok[0].id.as_str(), ok[0].subset.as_str()), ("line1", "s"));
    assert_eq!((ok[1].id.as_str(), ok[1].subset.as_str()), ("x", "default"));
    let cases = [
        ("{\"stereo\": \"a\"}", "p.jsonl:1: missing field `anti`"),
        (
            "{\"stereo\": \"a\", \"anti\": \"b\", \"clean\": \"c\"}",
            "p.jsonl:1: unknown field `clean`",
        ),
        ("{\"stereo\": \"a\", \"anti\": \" \"}", "p.jsonl:1: field `anti` is empty"),
        (
            "{\"stereo\": \"a\", \"anti\": \"b\", \"subset\": \"all\"}",
            "p.jsonl:1: subset \"all\" is reserved",
        ),
        (
            "{\"stereo\": \"a\", \"anti\": \"b\", \"id\": \"k\"}\n{\"stereo\": \"a\", \"anti\": \"b\", \"id\": \"k\"}",
            "p.jsonl:2: duplicate id \"k\" (first on line 1)",
        ),
        ("{\"stereo\": \"a\", \"anti\": \"b\"}\nnot json", "p.jsonl:2: expected"),
        ("\n\n", "benchmark p.jsonl has no pairs"),
    ];
    for (text, expected) in cases {
        let msg = jsonl::parse(text, "p.jsonl").err().unwrap().to_string();
        assert!(
            msg.starts_with(expected),
            "{msg:?} should start with {expected:?}"
        );
    }
}

#[test]
fn benchmark_sources_read_as_spec_values() {
    #[derive(serde::Deserialize)]
    struct S {
        source: BenchmarkSource,
    }
    let parse = |t: &str| toml::from_str::<S>(t).map(|s| s.source);
    assert_eq!(
        parse("source = \"crows_pairs\"").unwrap(),
        BenchmarkSource::CrowsPairs
    );
    assert_eq!(
        parse("source = \"winobias\"").unwrap(),
        BenchmarkSource::Winobias
    );
    assert_eq!(
        parse("source = { jsonl = \"p.jsonl\" }").unwrap(),
        BenchmarkSource::Jsonl("p.jsonl".into())
    );
    assert!(parse("source = \"stereoset\"").is_err());
    assert_eq!(
        BenchmarkSource::from_cli("professions").unwrap(),
        BenchmarkSource::Professions
    );
    assert!(BenchmarkSource::from_cli("stereoset").is_err());
}
