//! The logit-lens curve (`lens_layers_v`): per experiment and layer, how many pairs, the
//! mean clean and corrupted values, and the share of pairs whose clean value has the
//! stereotyped answer leading.

use super::cells::decode;
use super::exec::Param;
use crate::store::{Store, StoreError};

/// One layer of a logit-lens experiment, over the sweep's pairs.
#[derive(Clone, Debug, PartialEq)]
pub struct LensLayer {
    pub experiment: String,
    pub layer: i64,
    pub pairs: i64,
    /// Pairs with a stereotyped side (the share's denominator).
    pub stereotyped_pairs: i64,
    pub mean_clean: f64,
    pub mean_corrupt: f64,
    /// Share of the stereotyped pairs whose clean value has the stereotyped answer leading
    /// (ties count as not leading); `None` when no pair has a stereotyped side.
    pub biased_share: Option<f64>,
    /// The same on the corrupted prompts.
    pub corrupt_biased_share: Option<f64>,
}

impl LensLayer {
    /// The first layer of `curve` (one experiment's, in layer order) whose biased share
    /// exceeds one half.
    pub fn first_biased(curve: &[LensLayer]) -> Option<&LensLayer> {
        curve
            .iter()
            .find(|l| l.biased_share.is_some_and(|s| s > 0.5))
    }
}

impl Store {
    /// The logit-lens curve of every logit-lens experiment of a sweep, by experiment and
    /// layer.
    pub async fn lens_layers(&self, sweep_id: i64) -> Result<Vec<LensLayer>, StoreError> {
        let r = self
            .fetch(
                "SELECT experiment, layer, pairs, stereotyped_pairs, mean_clean, mean_corrupt, \
                 biased_share, corrupt_biased_share FROM lens_layers_v WHERE sweep_id = $1 \
                 ORDER BY experiment, layer",
                &[Param::Int(sweep_id)],
            )
            .await?;
        decode(&r, |c| {
            Ok(LensLayer {
                experiment: c.text("experiment")?,
                layer: c.int("layer")?,
                pairs: c.int("pairs")?,
                stereotyped_pairs: c.int("stereotyped_pairs")?,
                mean_clean: c.float("mean_clean")?,
                mean_corrupt: c.float("mean_corrupt")?,
                biased_share: c.opt_float("biased_share")?,
                corrupt_biased_share: c.opt_float("corrupt_biased_share")?,
            })
        })
    }
}
