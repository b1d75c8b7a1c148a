use super::*;

fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn said() -> Template {
    Template::new(
        "said_that",
        "The {subject} {verb} that",
        &[("verb", "said")],
    )
}

#[test]
fn fill_gives_text_and_spans_of_every_slot() {
    let (text, spans) = said().fill(&map(&[("subject", "nurse")])).expect("fill");
    assert_eq!(text, "The nurse said that");
    assert_eq!(
        spans,
        vec![("subject".to_string(), 4..9), ("verb".to_string(), 10..14)]
    );
    assert_eq!(&text[spans[1].1.clone()], "said");
}

#[test]
fn braces_escape_and_repeated_slots() {
    let t = Template::new("t", "{{x}} {a} and {a}}}", &[]);
    let (text, spans) = t.fill(&map(&[("a", "é")])).expect("fill");
    assert_eq!(text, "{x} é and é}");
    assert_eq!(spans.len(), 2);
    assert_eq!(&text[spans[1].1.clone()], "é");
    assert_eq!(t.slots().expect("slots"), vec!["a".to_string()]);
}

#[test]
fn slot_errors_name_slot_and_template() {
    let cases = [
        (
            said().fill(&map(&[("subjekt", "nurse")])),
            ["subjekt", "said_that"],
        ),
        (said().fill(&map(&[])), ["subject", "said_that"]),
        (
            said().fill(&map(&[("subject", "a"), ("verb", "b")])),
            ["verb", "said_that"],
        ),
        (
            Template::new("t2", "The {subject}", &[("verb", "said")])
                .fill(&map(&[("subject", "a")])),
            ["verb", "t2"],
        ),
    ];
    for (res, words) in cases {
        let e = res.unwrap_err().to_string();
        for w in words {
            assert!(e.contains(w), "{e:?} should name {w:?}");
        }
    }
    for bad in ["The {subject", "The {} x", "The {a b}", "a } b"] {
        let e = Template::new("bad", bad, &[])
            .fill(&map(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"bad\""), "{e}");
    }
}

#[test]
fn templates_dataset_from_json_and_pairs() {
    let spec: TemplatesDataset = serde_json::from_str(
        r#"{"templates": [{"name": "said_that", "text": "The {subject} {verb} that", "fixed": {"verb": "said"}},
                          {"name": "plain", "text": "My {subject} is"}],
            "fillers": [{"clean": {"subject": "nurse"}, "corrupt": {"subject": "man"}, "labels": {"stereotype": "female"}},
                        {"clean": {"subject": "police officer"}, "corrupt": {"subject": "woman"}, "positive": [" he"]}]}"#,
    )
    .expect("json");
    let pairs = from_templates(&spec).expect("pairs");
    let ids: Vec<&str> = pairs.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "said_that/nurse/man",
            "said_that/police_officer/woman",
            "plain/nurse/man",
            "plain/police_officer/woman"
        ]
    );
    assert_eq!(pairs[0].corrupt, "The man said that");
    assert_eq!(pairs[0].labels["stereotype"], "female");
    assert_eq!(pairs[0].labels["template"], "said_that");
    assert_eq!(pairs[0].labels["subject"], "nurse");
    assert_eq!(pairs[1].positive.as_deref(), Some(&[" he".to_string()][..]));
    assert_eq!(pairs[2].slots, vec![("subject".to_string(), 3..8)]);
}

#[test]
fn templates_dataset_errors() {
    let bad_field = r#"{"templates": [], "fillers": [], "extra": 1}"#;
    assert!(serde_json::from_str::<TemplatesDataset>(bad_field).is_err());
    let bad_filler =
        r#"{"templates": [], "fillers": [{"clean": {}, "corrupt": {}, "lables": {}}]}"#;
    assert!(serde_json::from_str::<TemplatesDataset>(bad_filler).is_err());
    let ds = |fillers: Vec<FillerPair>| TemplatesDataset {
        templates: vec![said()],
        fillers,
    };
    let fp = |clean: &[(&str, &str)], corrupt: &[(&str, &str)], id: Option<&str>| FillerPair {
        clean: map(clean),
        corrupt: map(corrupt),
        labels: BTreeMap::new(),
        id: id.map(String::from),
        positive: None,
        negative: None,
    };
    let e =
        from_templates(&ds(vec![fp(&[("subject", "a")], &[("object", "b")], None)])).unwrap_err();
    assert!(e.to_string().contains("object"), "{e}");
    let e = from_templates(&ds(vec![fp(&[("subject", "a")], &[], None)])).unwrap_err();
    assert!(e.to_string().contains("fillers[0].corrupt"), "{e}");
    let twice = vec![
        fp(&[("subject", "a")], &[("subject", "b")], Some("x")),
        fp(&[("subject", "c")], &[("subject", "d")], Some("x")),
    ];
    let e = from_templates(&ds(twice)).unwrap_err();
    assert!(e.to_string().contains("said_that/x"), "{e}");
    assert!(from_templates(&ds(vec![])).is_err());
}
