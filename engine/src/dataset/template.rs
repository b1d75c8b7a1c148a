//! Templates with named slots, and the templates × filler-pairs dataset.
//!
//! A template's text names its slots in braces: `"The {subject} {verb} that"`; `{{` and `}}`
//! stand for literal braces. Some slots may be *fixed* (`verb = "said"`): they are the same in
//! every prompt but still recorded as spans, so their tokens are labelled with the slot name.
//!
//! In a spec (TOML) a [`TemplatesDataset`] reads:
//! ```toml
//! templates = [
//!   { name = "said_that", text = "The {subject} {verb} that", fixed = { verb = "said" } },
//!   { name = "ate_because", text = "The {subject} {verb} because", fixed = { verb = "ate" } },
//! ]
//! fillers = [
//!   { clean = { subject = "nurse" }, corrupt = { subject = "man" }, labels = { stereotype = "female" } },
//!   { clean = { subject = "carpenter" }, corrupt = { subject = "woman" } },
//! ]
//! ```
//! Every filler pair is used with every template: one [`PairSpec`] per template × filler.
//! `clean` fills every non-fixed slot; `corrupt` lists only the slots that change (the others
//! keep their clean filler). Pair ids are `{template}/{id}` where `id` is the filler's own id or,
//! by default, `{clean values of the changed slots}/{corrupt values}` joined with `+`, spaces
//! as `_` (e.g. `said_that/nurse/man`). Labels: the filler's labels, plus `template` and each
//! changed slot's clean filler under the slot's name, unless the filler's labels set them.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use super::{DatasetError, PairSpec};

/// Named byte ranges of a prompt, in text order (a slot used twice appears twice).
pub type Slots = Vec<(String, Range<usize>)>;

/// A prompt template with named slots, some of them fixed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// Name, used in pair ids and labels (e.g. `said_that`).
    pub name: String,
    /// Text with `{slot}` placeholders, e.g. `"The {subject} {verb} that"`.
    pub text: String,
    /// Slot → fixed filler, e.g. `verb -> "said"`.
    #[serde(default)]
    pub fixed: BTreeMap<String, String>,
}

enum Piece<'a> {
    Text(String),
    Slot(&'a str),
}

impl Template {
    /// A template from its parts.
    pub fn new(name: &str, text: &str, fixed: &[(&str, &str)]) -> Self {
        Self {
            name: name.to_string(),
            text: text.to_string(),
            fixed: fixed
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn syntax(&self, message: String) -> DatasetError {
        DatasetError::TemplateSyntax {
            template: self.name.clone(),
            message,
        }
    }

    fn pieces(&self) -> Result<Vec<Piece<'_>>, DatasetError> {
        let text = self.text.as_str();
        let mut out = Vec::new();
        let mut lit = String::new();
        let mut i = 0;
        while i < text.len() {
            let rest = &text[i..];
            if rest.starts_with("{{") || rest.starts_with("}}") {
                lit.push_str(&rest[..1]);
                i += 2;
            } else if rest.starts_with('{') {
                let close = rest
                    .find('}')
                    .ok_or_else(|| self.syntax(format!("unclosed '{{' at byte {i} of {text:?}")))?;
                let name = &rest[1..close];
                if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    return Err(self.syntax(format!(
                        "bad slot name {name:?} at byte {i} (letters, digits and _ only)"
                    )));
                }
                out.push(Piece::Text(std::mem::take(&mut lit)));
                out.push(Piece::Slot(name));
                i += close + 1;
            } else if rest.starts_with('}') {
                return Err(self.syntax(format!(
                    "unmatched '}}' at byte {i} of {text:?} (write '}}}}' for a literal brace)"
                )));
            } else {
                let c = rest.chars().next().unwrap_or_default();
                lit.push(c);
                i += c.len_utf8().max(1);
            }
        }
        out.push(Piece::Text(lit));
        Ok(out)
    }

    /// The slot names in order of first appearance.
    pub fn slots(&self) -> Result<Vec<String>, DatasetError> {
        let mut seen = Vec::<String>::new();
        for p in self.pieces()? {
            if let Piece::Slot(s) = p {
                if !seen.iter().any(|x| x == s) {
                    seen.push(s.to_string());
                }
            }
        }
        Ok(seen)
    }

    /// Fills the template; returns the text and the byte span of every slot occurrence (fixed
    /// slots included). Errors name the slot and the template: a filler or fixed value for a
    /// slot the text lacks, a slot without filler, or a filler for a fixed slot.
    pub fn fill(
        &self,
        fillers: &BTreeMap<String, String>,
    ) -> Result<(String, Slots), DatasetError> {
        let pieces = self.pieces()?;
        let names = self.slots()?;
        let unknown = |slot: &String| DatasetError::UnknownSlot {
            template: self.name.clone(),
            slot: slot.clone(),
            known: if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            },
        };
        for slot in self.fixed.keys() {
            if !names.contains(slot) {
                return Err(unknown(slot));
            }
        }
        for slot in fillers.keys() {
            if !names.contains(slot) {
                return Err(unknown(slot));
            }
            if let Some(fixed) = self.fixed.get(slot) {
                return Err(DatasetError::FixedSlot {
                    template: self.name.clone(),
                    slot: slot.clone(),
                    fixed: fixed.clone(),
                });
            }
        }
        let mut text = String::new();
        let mut spans = Vec::new();
        for p in pieces {
            match p {
                Piece::Text(t) => text.push_str(&t),
                Piece::Slot(s) => {
                    let value = self
                        .fixed
                        .get(s)
                        .or_else(|| fillers.get(s))
                        .ok_or_else(|| DatasetError::MissingSlot {
                            template: self.name.clone(),
                            slot: s.to_string(),
                        })?;
                    let start = text.len();
                    text.push_str(value);
                    spans.push((s.to_string(), start..text.len()));
                }
            }
        }
        Ok((text, spans))
    }
}

/// One filler pair of a [`TemplatesDataset`]: clean fillers and the slots the corrupted prompt
/// changes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FillerPair {
    /// Slot → filler for the clean prompt (every non-fixed slot).
    pub clean: BTreeMap<String, String>,
    /// Slot → filler for the corrupted prompt, only for the slots that change.
    pub corrupt: BTreeMap<String, String>,
    /// Labels copied to every pair made from this filler.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Id of this filler (pair ids become `{template}/{id}`).
    #[serde(default)]
    pub id: Option<String>,
    /// Per-pair answer words overriding the spec's metric.
    #[serde(default)]
    pub positive: Option<Vec<String>>,
    /// Per-pair answer words on the other side of the metric.
    #[serde(default)]
    pub negative: Option<Vec<String>>,
}

/// User templates × filler pairs (see the module doc for the TOML form).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatesDataset {
    /// Templates; names must be unique.
    pub templates: Vec<Template>,
    /// Filler pairs, each used with every template.
    pub fillers: Vec<FillerPair>,
}

fn id_part(values: impl Iterator<Item = String>) -> String {
    values.collect::<Vec<_>>().join("+").replace(' ', "_")
}

/// One pair per template × filler pair, in template-major order.
pub fn from_templates(spec: &TemplatesDataset) -> Result<Vec<PairSpec>, DatasetError> {
    let bad = |field: String, message: &str| DatasetError::BadOption {
        dataset: "templates".into(),
        field,
        message: message.into(),
    };
    if spec.templates.is_empty() {
        return Err(bad("templates".into(), "no templates given"));
    }
    if spec.fillers.is_empty() {
        return Err(bad("fillers".into(), "no filler pairs given"));
    }
    let mut names = BTreeSet::new();
    for t in &spec.templates {
        if !names.insert(t.name.as_str()) {
            return Err(bad(
                "templates".into(),
                &format!("template name {:?} appears twice", t.name),
            ));
        }
    }
    for (i, f) in spec.fillers.iter().enumerate() {
        if f.corrupt.is_empty() {
            return Err(bad(format!("fillers[{i}].corrupt"), "changes no slot"));
        }
        if f.corrupt.iter().all(|(k, v)| f.clean.get(k) == Some(v)) {
            return Err(bad(
                format!("fillers[{i}].corrupt"),
                "equals the clean fillers",
            ));
        }
        for (field, words) in [("positive", &f.positive), ("negative", &f.negative)] {
            if words.as_ref().is_some_and(|w| w.is_empty()) {
                return Err(bad(format!("fillers[{i}].{field}"), "is an empty list"));
            }
        }
    }
    let mut ids = BTreeSet::new();
    let mut out = Vec::new();
    for t in &spec.templates {
        for f in &spec.fillers {
            let (clean, slots) = t.fill(&f.clean)?;
            let mut corrupt_fill = f.clean.clone();
            corrupt_fill.extend(f.corrupt.clone());
            let (corrupt, _) = t.fill(&corrupt_fill)?;
            let fid = f.id.clone().unwrap_or_else(|| {
                let from = id_part(f.corrupt.keys().filter_map(|k| f.clean.get(k).cloned()));
                format!("{from}/{}", id_part(f.corrupt.values().cloned()))
            });
            let id = format!("{}/{fid}", t.name);
            if !ids.insert(id.clone()) {
                return Err(DatasetError::DuplicateId {
                    id,
                    hint: Some("give the filler pairs distinct `id`s".into()),
                });
            }
            let mut labels = BTreeMap::from([("template".to_string(), t.name.clone())]);
            for k in f.corrupt.keys() {
                if let Some(v) = f.clean.get(k) {
                    labels.insert(k.clone(), v.clone());
                }
            }
            labels.extend(f.labels.clone());
            out.push(PairSpec {
                id,
                template: Some(t.name.clone()),
                clean,
                corrupt,
                positive: f.positive.clone(),
                negative: f.negative.clone(),
                labels,
                slots,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
