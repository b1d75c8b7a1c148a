//! The rows the store writes, and the checks and conversions shared by both backends.

pub use patchsweep_api::{BenchmarkRow, DebiasRow, EffectRow, GenerationRow, LensRow, PairRow};

use super::StoreError;

/// A coordinate as stored: -1 where it does not apply.
pub(crate) fn sentinel(coord: Option<u32>) -> Result<i32, String> {
    match coord {
        None => Ok(-1),
        Some(c) => i32::try_from(c).map_err(|_| format!("coordinate {c} is too large")),
    }
}

/// A token id as stored.
pub(crate) fn token_id(id: u32) -> Result<i32, String> {
    i32::try_from(id).map_err(|_| format!("token id {id} is too large"))
}

/// `normalized` as stored: NULL when it is undefined.
pub(crate) fn normalized(n: Option<f64>) -> Option<f64> {
    n.filter(|v| v.is_finite())
}

/// An effect as stored, checked.
pub(crate) struct StoredEffect<'a> {
    pub experiment: &'a str,
    pub component: &'a str,
    pub layer: i32,
    pub head: i32,
    pub position: i32,
    pub neuron: i32,
    pub pair_id: &'a str,
    pub value: f64,
    pub effect: f64,
    pub normalized: Option<f64>,
}

impl<'a> StoredEffect<'a> {
    pub(crate) fn from_row(row: &'a EffectRow) -> Result<Self, StoreError> {
        let bad = |message: String| StoreError::InvalidInput {
            step: "insert effects",
            message: format!(
                "effect of experiment `{}`, component `{}`, pair `{}`: {message}",
                row.experiment, row.component, row.pair_id
            ),
        };
        if row.value.is_nan() || row.effect.is_nan() {
            return Err(bad("value or effect is NaN".to_string()));
        }
        Ok(StoredEffect {
            experiment: &row.experiment,
            component: &row.component,
            layer: sentinel(row.layer).map_err(bad)?,
            head: sentinel(row.head).map_err(bad)?,
            position: sentinel(row.position).map_err(bad)?,
            neuron: sentinel(row.neuron).map_err(bad)?,
            pair_id: &row.pair_id,
            value: row.value,
            effect: row.effect,
            normalized: normalized(row.normalized),
        })
    }
}

/// A logit-lens value as stored, checked.
pub(crate) struct StoredLens<'a> {
    pub experiment: &'a str,
    pub pair_id: &'a str,
    pub layer: i32,
    pub clean_value: f64,
    pub corrupt_value: f64,
    pub clean_lead: i32,
    pub corrupt_lead: i32,
}

impl<'a> StoredLens<'a> {
    pub(crate) fn from_row(row: &'a LensRow) -> Result<Self, StoreError> {
        let bad = |message: String| StoreError::InvalidInput {
            step: "insert lens values",
            message: format!(
                "lens value of experiment `{}`, pair `{}`, layer {}: {message}",
                row.experiment, row.pair_id, row.layer
            ),
        };
        if !(row.clean_value.is_finite() && row.corrupt_value.is_finite()) {
            return Err(bad("clean or corrupted value is not finite".to_string()));
        }
        for lead in [row.clean_lead, row.corrupt_lead] {
            if !(-1..=1).contains(&lead) {
                return Err(bad(format!("lead {lead} is not -1, 0 or 1")));
            }
        }
        Ok(StoredLens {
            experiment: &row.experiment,
            pair_id: &row.pair_id,
            layer: i32::try_from(row.layer)
                .map_err(|_| bad(format!("layer {} is too large", row.layer)))?,
            clean_value: row.clean_value,
            corrupt_value: row.corrupt_value,
            clean_lead: i32::from(row.clean_lead),
            corrupt_lead: i32::from(row.corrupt_lead),
        })
    }
}

/// A pair as stored, checked, with its positions.
pub(crate) struct StoredPair<'a> {
    pub row: &'a PairRow,
    pub clean_ids: String,
    pub corrupt_ids: String,
    pub labels: String,
    pub n_tokens: i32,
    pub positions: Vec<StoredPosition<'a>>,
}

/// One position of a pair as stored.
pub(crate) struct StoredPosition<'a> {
    pub position: i32,
    pub label: Option<&'a str>,
    pub token_id: i32,
    pub clean_token: Option<&'a str>,
    pub corrupt_token: Option<&'a str>,
    pub corrupt_token_id: i32,
}

impl<'a> StoredPair<'a> {
    pub(crate) fn from_row(row: &'a PairRow) -> Result<Self, StoreError> {
        let bad = |message: String| StoreError::InvalidInput {
            step: "insert pairs",
            message: format!("pair `{}`: {message}", row.pair_id),
        };
        let n = row.clean_ids.len();
        if row.corrupt_ids.len() != n {
            return Err(bad(format!(
                "clean prompt has {n} tokens but corrupted prompt has {}; pairs of unequal \
                 length belong in the dropped-pair counts",
                row.corrupt_ids.len()
            )));
        }
        for (what, len) in [
            ("position_labels", row.position_labels.len()),
            ("clean_tokens", row.clean_tokens.len()),
            ("corrupt_tokens", row.corrupt_tokens.len()),
        ] {
            if len != 0 && len != n {
                return Err(bad(format!("{what} has {len} entries for {n} tokens")));
            }
        }
        if !row.clean_metric.is_finite() || !row.corrupt_metric.is_finite() {
            return Err(bad("clean or corrupted metric is not finite".to_string()));
        }
        let n_tokens = i32::try_from(n).map_err(|_| bad(format!("{n} tokens is too many")))?;
        let mut positions = Vec::with_capacity(n);
        for i in 0..n {
            positions.push(StoredPosition {
                position: i as i32,
                label: row.position_labels.get(i).map(String::as_str),
                token_id: token_id(row.clean_ids[i]).map_err(bad)?,
                clean_token: row.clean_tokens.get(i).map(String::as_str),
                corrupt_token: row.corrupt_tokens.get(i).map(String::as_str),
                corrupt_token_id: token_id(row.corrupt_ids[i]).map_err(bad)?,
            });
        }
        let json = |v: serde_json::Result<String>| v.map_err(|e| bad(e.to_string()));
        Ok(StoredPair {
            row,
            clean_ids: json(serde_json::to_string(&row.clean_ids))?,
            corrupt_ids: json(serde_json::to_string(&row.corrupt_ids))?,
            labels: json(serde_json::to_string(&row.labels))?,
            n_tokens,
            positions,
        })
    }
}
