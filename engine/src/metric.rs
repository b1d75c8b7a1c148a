//! Bias metrics on the next-token logits at the last position: logit difference and
//! log-probability difference between two answer sets, and Vig et al.'s odds ratio; plus the
//! normalized effect. All are differentiable (attribution patching takes their gradient).

use candle_core::{DType, Tensor, D};
use patchsweep_model::Tokenizer;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// `reduce(logit[positive]) - reduce(logit[negative])`.
    LogitDiff,
    /// The same on log-probabilities (log-softmax over the vocabulary).
    LogprobDiff,
    /// Vig et al.: `p(positive) / p(negative)` (probabilities reduced over each set).
    OddsRatio,
}

impl MetricKind {
    /// The value with no preference between the answer sets: 0 for a difference, 1 for
    /// an odds ratio. The answers' order flips when the metric crosses it.
    pub fn neutral(&self) -> f64 {
        match self {
            MetricKind::LogitDiff | MetricKind::LogprobDiff => 0.0,
            MetricKind::OddsRatio => 1.0,
        }
    }

    /// Which answer set a value of this metric says the model prefers: +1 the positive
    /// answers, -1 the negative ones, 0 neither (a tie: exactly [`MetricKind::neutral`],
    /// or NaN).
    pub fn lead(self, value: f64) -> i8 {
        let neutral = self.neutral();
        if value > neutral {
            1
        } else if value < neutral {
            -1
        } else {
            0
        }
    }
}

/// How several answer tokens of one set combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Reduce {
    #[default]
    Mean,
    Sum,
}

/// How an effect is read from the patched value and the base run's value (`[metric] effect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EffectMode {
    /// `value - base`.
    #[default]
    Difference,
    /// `value / base - 1` (Vig et al.'s relative change; the base must be positive, so the
    /// spec allows it with `odds_ratio` only).
    Relative,
}

impl EffectMode {
    /// The effect of a patched `value` over the unpatched `base`; `None` for a relative
    /// effect over a base that is not positive.
    pub fn effect(self, value: f64, base: f64) -> Option<f64> {
        match self {
            EffectMode::Difference => Some(value - base),
            EffectMode::Relative => (base > 0.0).then(|| value / base - 1.0),
        }
    }
}

/// A metric with its answer sets resolved to token ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub kind: MetricKind,
    pub reduce: Reduce,
    pub positive: Vec<u32>,
    pub negative: Vec<u32>,
}

/// The id of an answer word, which must be exactly one token.
pub fn answer_token(tok: &Tokenizer, word: &str) -> Result<u32> {
    tok.single_token(word)
        .map_err(|pieces| EngineError::MultiTokenAnswer {
            word: word.to_string(),
            tokens: if pieces.is_empty() {
                "nothing".to_string()
            } else {
                pieces
                    .iter()
                    .map(|(id, text)| format!("{id} {text:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
}

impl Metric {
    pub fn from_words(
        kind: MetricKind,
        reduce: Reduce,
        positive: &[String],
        negative: &[String],
        tok: &Tokenizer,
    ) -> Result<Self> {
        if positive.is_empty() || negative.is_empty() {
            return Err(EngineError::Metric(
                "positive and negative answer sets must each hold at least one word".into(),
            ));
        }
        let ids = |words: &[String]| {
            words
                .iter()
                .map(|w| answer_token(tok, w))
                .collect::<Result<Vec<_>>>()
        };
        let (positive, negative) = (ids(positive)?, ids(negative)?);
        let as_set = |v: &[u32]| {
            v.iter()
                .copied()
                .collect::<std::collections::BTreeSet<u32>>()
        };
        if as_set(&positive) == as_set(&negative) {
            return Err(EngineError::Metric(
                "positive and negative are the same answer tokens, so the metric is 0 on every \
                 prompt and no effect can be measured; give two different answer sets"
                    .into(),
            ));
        }
        Ok(Self {
            kind,
            reduce,
            positive,
            negative,
        })
    }

    /// Whether the metric reads the whole vocabulary (a log-softmax), rather than only the
    /// answer tokens' logits.
    pub fn needs_full_vocab(&self) -> bool {
        self.kind == MetricKind::LogprobDiff
    }

    /// The same metric reading logits restricted to `ids` (its answer ids must be among them).
    pub fn on_subset(&self, ids: &[u32]) -> Self {
        let at = |t: &u32| ids.iter().position(|x| x == t).unwrap_or(usize::MAX) as u32;
        Self {
            kind: self.kind,
            reduce: self.reduce,
            positive: self.positive.iter().map(at).collect(),
            negative: self.negative.iter().map(at).collect(),
        }
    }

    /// Metric values `[rows]` from last-position logits `[rows, vocab]` (or `[rows, 1, vocab]`).
    pub fn values(&self, logits: &Tensor) -> Result<Tensor> {
        let logits = flat_rows(logits)?;
        let take = |ids: &[u32]| -> Result<Tensor> {
            let idx = Tensor::new(ids, logits.device())?;
            Ok(logits.index_select(&idx, 1)?)
        };
        let reduce = |t: Tensor| -> Result<Tensor> {
            Ok(match self.reduce {
                Reduce::Mean => t.mean(1)?,
                Reduce::Sum => t.sum(1)?,
            })
        };
        Ok(match self.kind {
            MetricKind::LogitDiff => {
                (reduce(take(&self.positive)?)? - reduce(take(&self.negative)?)?)?
            }
            MetricKind::LogprobDiff => {
                let lse = logsumexp(&logits)?.unsqueeze(1)?;
                let pos = take(&self.positive)?.broadcast_sub(&lse)?;
                let neg = take(&self.negative)?.broadcast_sub(&lse)?;
                (reduce(pos)? - reduce(neg)?)?
            }
            MetricKind::OddsRatio => {
                // p(pos)/p(neg): the softmax normalizer cancels.
                let log_ratio =
                    (logsumexp(&take(&self.positive)?)? - logsumexp(&take(&self.negative)?)?)?;
                let scale = match self.reduce {
                    Reduce::Sum => 1.0,
                    Reduce::Mean => self.negative.len() as f64 / self.positive.len() as f64,
                };
                (log_ratio.exp()? * scale)?
            }
        })
    }
}

/// `[rows, vocab]` in f32 from `[rows, vocab]` or `[rows, 1, vocab]`.
fn flat_rows(logits: &Tensor) -> Result<Tensor> {
    let l = match logits.rank() {
        2 => logits.clone(),
        3 => logits.squeeze(1)?,
        r => {
            return Err(EngineError::Metric(format!(
                "logits of rank {r}; expected [rows, vocab]"
            )))
        }
    };
    Ok(l.to_dtype(DType::F32)?)
}

/// `log(sum(exp(x)))` over the last axis, stable and differentiable.
fn logsumexp(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let s = x
        .broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?;
    Ok((s + max)?.squeeze(D::Minus1)?)
}

/// Metric values for rows that may each have their own metric.
pub fn values_per_row(logits: &Tensor, metrics: &[&Metric]) -> Result<Tensor> {
    let logits = flat_rows(logits)?;
    if metrics.len() != logits.dim(0)? {
        return Err(EngineError::Metric(format!(
            "{} metrics for {} rows",
            metrics.len(),
            logits.dim(0)?
        )));
    }
    if metrics.windows(2).all(|w| w[0] == w[1]) {
        return metrics[0].values(&logits);
    }
    let rows = metrics
        .iter()
        .enumerate()
        .map(|(r, m)| m.values(&logits.narrow(0, r, 1)?))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&rows, 0)?)
}

/// The vocabulary ids the metrics of a batch read, when none of them needs the whole
/// vocabulary: a forward then unembeds only these (`Forward::vocab_subset`) and
/// [`values_on_subset`] reads its logits.
pub fn answer_ids(metrics: &[&Metric]) -> Option<Vec<u32>> {
    if metrics.iter().any(|m| m.needs_full_vocab()) {
        return None;
    }
    let mut ids: Vec<u32> = metrics
        .iter()
        .flat_map(|m| m.positive.iter().chain(&m.negative).copied())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    Some(ids)
}

/// [`values_per_row`] of logits over the vocabulary ids `subset` (all of them with `None`).
pub fn values_on_subset(
    logits: &Tensor,
    metrics: &[&Metric],
    subset: Option<&[u32]>,
) -> Result<Tensor> {
    match subset {
        Some(ids) => {
            let local: Vec<Metric> = metrics.iter().map(|m| m.on_subset(ids)).collect();
            values_per_row(logits, &local.iter().collect::<Vec<_>>())
        }
        None => values_per_row(logits, metrics),
    }
}

/// `(value - corrupt) / (clean - corrupt)`: 1 when the patch restores the clean behaviour
/// fully, 0 when it does nothing; `None` when clean and corrupt do not differ.
pub fn normalized(value: f64, clean: f64, corrupt: f64) -> Option<f64> {
    let span = clean - corrupt;
    (span.abs() > 1e-9).then(|| (value - corrupt) / span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn metric(kind: MetricKind, reduce: Reduce) -> Metric {
        Metric {
            kind,
            reduce,
            positive: vec![0, 1],
            negative: vec![2],
        }
    }

    #[test]
    fn values_follow_their_definitions() -> Result<()> {
        let l = Tensor::new(&[[1.0f32, 3.0, 0.5, -1.0]], &Device::Cpu)?;
        let v = |m: Metric| -> f32 { m.values(&l).unwrap().to_vec1::<f32>().unwrap()[0] };
        assert!((v(metric(MetricKind::LogitDiff, Reduce::Mean)) - 1.5).abs() < 1e-6);
        assert!((v(metric(MetricKind::LogitDiff, Reduce::Sum)) - 3.5).abs() < 1e-6);
        let z: f32 = [1.0f32, 3.0, 0.5, -1.0].iter().map(|x| x.exp()).sum();
        let p = |x: f32| x.exp() / z;
        let lp = ((p(1.0).ln() + p(3.0).ln()) / 2.0) - p(0.5).ln();
        assert!((v(metric(MetricKind::LogprobDiff, Reduce::Mean)) - lp).abs() < 1e-5);
        let odds = (p(1.0) + p(3.0)) / p(0.5);
        assert!((v(metric(MetricKind::OddsRatio, Reduce::Sum)) - odds).abs() < 1e-4);
        assert!((v(metric(MetricKind::OddsRatio, Reduce::Mean)) - odds / 2.0).abs() < 1e-4);
        Ok(())
    }

    #[test]
    fn leads_are_read_around_each_metrics_neutral_value() {
        assert_eq!(MetricKind::LogitDiff.lead(0.3), 1);
        assert_eq!(MetricKind::LogprobDiff.lead(-0.3), -1);
        assert_eq!(MetricKind::LogitDiff.lead(0.0), 0);
        assert_eq!(MetricKind::OddsRatio.lead(0.5), -1);
        assert_eq!(MetricKind::OddsRatio.lead(2.0), 1);
        assert_eq!(MetricKind::OddsRatio.lead(1.0), 0);
        assert_eq!(MetricKind::LogitDiff.lead(f64::NAN), 0);
    }

    #[test]
    fn effect_modes() {
        assert_eq!(EffectMode::Difference.effect(3.0, 2.0), Some(1.0));
        assert_eq!(EffectMode::Relative.effect(3.0, 2.0), Some(0.5));
        assert_eq!(EffectMode::Relative.effect(3.0, 0.0), None);
    }

    #[test]
    fn normalized_effect() {
        assert_eq!(normalized(3.0, 3.0, 1.0), Some(1.0));
        assert_eq!(normalized(1.0, 3.0, 1.0), Some(0.0));
        assert_eq!(normalized(2.0, 1.0, 1.0), None);
    }
}
