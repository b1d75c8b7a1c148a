//! The one line `patchsweep run` prints for a logit-lens experiment: where the stereotyped
//! answer starts to lead on the clean prompts (the first layer where more than half of the
//! pairs with a stereotyped side have it leading), and the last layer read.

use patchsweep_coordinator::store::LensLayer;

/// The summary line of one experiment's lens curve (its layers in order).
pub fn lens_line(experiment: &str, curve: &[LensLayer]) -> String {
    let Some(last) = curve.last() else {
        return format!("logit lens of {experiment}: no values stored");
    };
    let at_last = format!(
        "layer {}: mean clean {:.4}, mean corrupted {:.4}",
        last.layer, last.mean_clean, last.mean_corrupt
    );
    let Some(share) = last.biased_share else {
        return format!(
            "logit lens of {experiment} over {} pairs (none has a stereotyped side); {at_last}",
            last.pairs
        );
    };
    let lead = match LensLayer::first_biased(curve) {
        Some(l) => format!(
            "the stereotyped answer leads in more than half of them from layer {} ({:.0}%)",
            l.layer,
            100.0 * l.biased_share.unwrap_or(0.0)
        ),
        None => "the stereotyped answer never leads in more than half of them".to_string(),
    };
    format!(
        "logit lens of {experiment} over {} pairs with a stereotyped side (clean prompts): \
         {lead}; {at_last}, stereotyped answer leading {:.0}%",
        last.stereotyped_pairs,
        100.0 * share
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(layer: i64, share: Option<f64>) -> LensLayer {
        LensLayer {
            experiment: "lens".into(),
            layer,
            pairs: 4,
            stereotyped_pairs: if share.is_some() { 4 } else { 0 },
            mean_clean: 0.5,
            mean_corrupt: -0.25,
            biased_share: share,
            corrupt_biased_share: share,
        }
    }

    #[test]
    fn names_the_first_layer_past_one_half() {
        let curve = [
            layer(0, Some(0.5)),
            layer(1, Some(0.75)),
            layer(2, Some(0.25)),
        ];
        let line = lens_line("lens", &curve);
        assert!(line.contains("from layer 1 (75%)"), "{line}");
        assert!(line.contains("layer 2: mean clean 0.5000"), "{line}");
        assert!(line.ends_with("leading 25%"), "{line}");
    }

    #[test]
    fn says_when_it_never_leads_or_cannot_be_oriented() {
        let never = lens_line("lens", &[layer(0, Some(0.5))]);
        assert!(never.contains("never leads"), "{never}");
        let plain = lens_line("lens", &[layer(0, None)]);
        assert!(plain.contains("none has a stereotyped side"), "{plain}");
        assert_eq!(lens_line("x", &[]), "logit lens of x: no values stored");
    }
}
