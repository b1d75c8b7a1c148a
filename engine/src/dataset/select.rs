//! Helpers shared by the built-in datasets: option filters that reject unknown names, token
//! counting for counterfactual matching.

use patchsweep_model::Tokenizer;

use super::DatasetError;

/// Checks every wanted name is known; returns the filter (`None` keeps everything).
pub(crate) fn check_filter<'a>(
    dataset: &str,
    field: &str,
    wanted: Option<&'a Vec<String>>,
    known: &[&str],
) -> Result<Option<&'a Vec<String>>, DatasetError> {
    let Some(wanted) = wanted else {
        return Ok(None);
    };
    if wanted.is_empty() {
        return Err(DatasetError::BadOption {
            dataset: dataset.into(),
            field: field.into(),
            message: "is an empty list (omit it to keep everything)".into(),
        });
    }
    for w in wanted {
        if !known.contains(&w.as_str()) {
            return Err(DatasetError::UnknownOption {
                dataset: dataset.into(),
                field: singular(field),
                value: w.clone(),
                known: summarize(known),
            });
        }
    }
    Ok(Some(wanted))
}

/// Whether `name` passes an optional filter.
pub(crate) fn keeps(filter: Option<&Vec<String>>, name: &str) -> bool {
    filter.is_none_or(|f| f.iter().any(|x| x == name))
}

/// `templates` → `template`, `activities` → `activity`: the option's name for one value.
fn singular(field: &str) -> String {
    match field.strip_suffix("ies") {
        Some(stem) => format!("{stem}y"),
        None => field.trim_end_matches('s').to_string(),
    }
}

fn summarize(known: &[&str]) -> String {
    const SHOW: usize = 20;
    let mut s = known
        .iter()
        .take(SHOW)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if known.len() > SHOW {
        s.push_str(&format!(", … ({} in all)", known.len()));
    }
    s
}

/// Number of tokens of `text` without BOS (word counts compared in the context " word").
pub(crate) fn token_count(tok: &Tokenizer, text: &str) -> Result<usize, DatasetError> {
    tok.encode(text, Some(false))
        .map(|ids| ids.len())
        .map_err(|source| DatasetError::Tokenizer {
            id: "(counterfactual matching)".into(),
            text: text.into(),
            source: Box::new(source),
        })
}

/// Picks a partner for the `index`-th item among `candidates`: the first, starting at
/// `index % len` and wrapping, with the same token count as `word` (both counted as
/// `"The {word}"`); if none matches, the rotation's first (the pair is then dropped at
/// tokenization as `token_count_mismatch`, so the loss is reported).
pub(crate) fn pick_partner<'a>(
    word: &str,
    index: usize,
    candidates: &[&'a str],
    tok: Option<&Tokenizer>,
) -> Result<Option<&'a str>, DatasetError> {
    if candidates.is_empty() {
        return Ok(None);
    }
    let n = candidates.len();
    let rotated = (0..n).map(|k| candidates[(index + k) % n]);
    let Some(tok) = tok else {
        return Ok(rotated.clone().next());
    };
    let want = token_count(tok, &format!("The {word}"))?;
    for c in rotated.clone() {
        if token_count(tok, &format!("The {c}"))? == want {
            return Ok(Some(c));
        }
    }
    Ok(rotated.clone().next())
}
