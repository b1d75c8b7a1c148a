//! Which sweeps `plot` and `report` cover, and their file names. What they read comes
//! from the store's read model (`patchsweep_coordinator::store`, named typed queries: the
//! effects averaged in SQL, tokens, scatter points, debias results).

use anyhow::{Context, Result};
use patchsweep_coordinator::store::{Store, SweepRow, SweepSelection};

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
