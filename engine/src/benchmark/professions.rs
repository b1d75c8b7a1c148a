//! The Professions benchmark: the 17 built-in templates (`"The {subject} {verb} that"`, Vig et
//! al. 2020) filled with every stereotyped profession of the project's list
//! ([`crate::dataset::PROFESSIONS`]), completed by the pronoun: `"The nurse said that she"`
//! (stereotypical for a `female`-labelled profession) vs `"The nurse said that he"`, and the
//! reverse for `male`-labelled ones. Professions labelled `neutral` have no stereotypical side
//! and are left out. Subsets `female`, `male` (the profession's label); ids
//! `professions/{template}/{profession}` with spaces as `_`. Template-major order.

use std::collections::BTreeMap;

use crate::dataset::{profession_templates, ProfessionsSource};

use super::{BenchmarkError, BenchmarkPair};

/// The subsets: the stereotype label of the profession.
pub const SUBSETS: &[&str] = &["female", "male"];

/// Every pair, template-major, professions alphabetically within a template.
pub fn builtin() -> Result<Vec<BenchmarkPair>, BenchmarkError> {
    let mut professions: Vec<_> = ProfessionsSource::Project
        .professions(0.0)
        .into_iter()
        .filter(|p| SUBSETS.contains(&p.stereotype))
        .collect();
    professions.sort_by_key(|p| p.name.to_lowercase());
    let mut out = Vec::new();
    for template in profession_templates() {
        for p in &professions {
            let fillers = BTreeMap::from([("subject".to_string(), p.name.clone())]);
            let (prompt, _) = template
                .fill(&fillers)
                .map_err(|e| BenchmarkError::BadOption {
                    benchmark: "professions".into(),
                    field: "templates".into(),
                    message: e.to_string(),
                })?;
            let (stereo, anti) = if p.stereotype == "female" {
                (" she", " he")
            } else {
                (" he", " she")
            };
            out.push(BenchmarkPair {
                id: format!("professions/{}/{}", template.name, p.name.replace(' ', "_")),
                subset: p.stereotype.to_string(),
                stereo: format!("{prompt}{stereo}"),
                anti: format!("{prompt}{anti}"),
                labels: BTreeMap::from([
                    ("template".to_string(), template.name.clone()),
                    ("profession".to_string(), p.name.clone()),
                ]),
            });
        }
    }
    Ok(out)
}
