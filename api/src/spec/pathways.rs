//! `[[experiment.pathway]]`: a named set of sites patched together — listed sites, whose
//! layers and heads may be ranges and lists, or the top k of another experiment's ranking.

use std::collections::{BTreeMap, BTreeSet};

use patchsweep_engine::grid::{Pathway, PathwaySite, PositionRef, SiteHeads};
use patchsweep_engine::selection::{PathwaySelection, RankBy};
use serde::Deserialize;

use super::forms::{HeadsSpec, LayersSpec};
use super::{component, field, parse_layers, ExperimentSpec, SpecError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathwaySpec {
    pub name: String,
    /// The sites, listed; or `select` instead.
    #[serde(default)]
    pub sites: Vec<SiteSpec>,
    /// The top k sites of another experiment's ranking, one cell per k.
    pub select: Option<SelectSpec>,
}

/// One site entry; `layers` and `heads` expand to every site they name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSpec {
    pub component: String,
    pub layer: Option<usize>,
    /// A range (`"0..=3"`), a list or `"all"`, instead of `layer`.
    pub layers: Option<LayersSpec>,
    pub head: Option<usize>,
    /// `"all"` or a list, instead of `head`.
    pub heads: Option<HeadsSpec>,
    /// Index or label; absent: every position.
    pub position: Option<PositionRef>,
    pub neuron: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectSpec {
    /// The experiment whose stored effects are ranked (it runs first).
    pub experiment: String,
    pub component: String,
    /// One cell per k; a k beyond the sites ranked is clamped to them.
    pub top_k: Vec<usize>,
    /// Only sites at this position: a label (`"end"`) or an index (`-1`).
    pub position: Option<PositionRef>,
    #[serde(default)]
    pub rank_by: RankBy,
}

/// The experiment's listed pathways and its selections, checked on their own.
pub(super) fn pathways(
    e: &ExperimentSpec,
    at: &dyn Fn(&str) -> String,
) -> Result<(Vec<Pathway>, Vec<PathwaySelection>), SpecError> {
    let mut names = BTreeSet::new();
    let (mut listed, mut selected) = (Vec::new(), Vec::new());
    for (k, p) in e.pathways.iter().enumerate() {
        let here = |f: &str| at(&format!("pathway[{k}].{f}"));
        if p.name.trim().is_empty() || p.name.contains('/') {
            return Err(field(here("name"), "must not be empty nor contain '/'"));
        }
        if !names.insert(p.name.clone()) {
            return Err(field(here("name"), format!("{:?} is used twice", p.name)));
        }
        match (&p.select, p.sites.is_empty()) {
            (Some(_), false) => {
                return Err(field(
                    here("select"),
                    "give either `sites` or `select`, not both",
                ))
            }
            (None, true) => {
                return Err(field(
                    here("sites"),
                    "a pathway needs at least one site (or `select`)",
                ))
            }
            (Some(s), true) => selected.push(selection(&p.name, s, &e.name, &here)?),
            (None, false) => {
                let sites = p
                    .sites
                    .iter()
                    .enumerate()
                    .map(|(s, site)| site_of(site, &|f| here(&format!("sites[{s}].{f}"))))
                    .collect::<Result<Vec<_>, _>>()?;
                listed.push(Pathway {
                    name: p.name.clone(),
                    sites,
                });
            }
        }
    }
    Ok((listed, selected))
}

fn site_of(s: &SiteSpec, at: &dyn Fn(&str) -> String) -> Result<PathwaySite, SpecError> {
    let layers = match (s.layer, &s.layers) {
        (Some(l), None) => Some(vec![l]),
        (None, Some(spec)) => parse_layers(spec, &at("layers"))?,
        _ => {
            return Err(field(
                at("layer"),
                "give exactly one of `layer` and `layers`",
            ))
        }
    };
    let heads = match (s.head, &s.heads) {
        (None, None) => SiteHeads::None,
        (Some(h), None) => SiteHeads::List(vec![h]),
        (None, Some(HeadsSpec::All)) => SiteHeads::All,
        (None, Some(HeadsSpec::List(v))) if v.is_empty() => {
            return Err(field(at("heads"), "an empty list of heads"))
        }
        (None, Some(HeadsSpec::List(v))) => SiteHeads::List(v.clone()),
        (Some(_), Some(_)) => {
            return Err(field(at("head"), "give at most one of `head` and `heads`"))
        }
    };
    Ok(PathwaySite {
        component: component(&s.component, &at("component"))?,
        layers,
        heads,
        position: s.position.clone(),
        neuron: s.neuron,
    })
}

fn selection(
    name: &str,
    s: &SelectSpec,
    own: &str,
    here: &dyn Fn(&str) -> String,
) -> Result<PathwaySelection, SpecError> {
    if s.experiment == own {
        return Err(field(
            here("select.experiment"),
            "a pathway cannot choose its sites by its own experiment's ranking",
        ));
    }
    if s.top_k.is_empty() || s.top_k.contains(&0) {
        return Err(field(
            here("select.top_k"),
            "give one or more k, each at least 1 (e.g. [5, 10, 30, 90])",
        ));
    }
    let mut top_k = s.top_k.clone();
    top_k.sort_unstable();
    top_k.dedup();
    Ok(PathwaySelection {
        name: name.to_string(),
        experiment: s.experiment.clone(),
        component: component(&s.component, &here("select.component"))?,
        top_k,
        position: s.position.clone(),
        rank_by: s.rank_by,
    })
}

/// Checks that every selection reads an experiment of the sweep and that no chain of
/// selections comes back to where it started; answers each experiment's stage: 0 when it
/// selects nothing, else one more than the latest stage it reads (its selected pathways
/// run once the experiments they read have ended).
pub fn selection_stages(specs: &[ExperimentSpec]) -> Result<BTreeMap<String, u32>, SpecError> {
    let reads: BTreeMap<&str, Vec<(usize, &str)>> = specs
        .iter()
        .map(|e| {
            let sources = e
                .pathways
                .iter()
                .enumerate()
                .filter_map(|(k, p)| p.select.as_ref().map(|s| (k, s.experiment.as_str())))
                .collect();
            (e.name.as_str(), sources)
        })
        .collect();
    for (i, e) in specs.iter().enumerate() {
        for &(k, source) in &reads[e.name.as_str()] {
            let Some(read) = specs.iter().find(|x| x.name == source) else {
                return Err(field(
                    format!("experiment[{i}].pathway[{k}].select.experiment"),
                    format!("no experiment is named {source:?}"),
                ));
            };
            let wanted = e.pathways[k].select.as_ref().map(|s| &s.component);
            if let Some(c) = wanted.filter(|c| !read.components.contains(c)) {
                return Err(field(
                    format!("experiment[{i}].pathway[{k}].select.component"),
                    format!(
                        "experiment {source:?} does not measure {c:?} (it measures: {})",
                        read.components.join(", ")
                    ),
                ));
            }
        }
    }
    let mut stages = BTreeMap::new();
    for e in specs {
        stage_of(&e.name, &reads, &mut stages, &mut Vec::new())?;
    }
    Ok(stages
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect())
}

fn stage_of<'a>(
    name: &'a str,
    reads: &BTreeMap<&'a str, Vec<(usize, &'a str)>>,
    stages: &mut BTreeMap<&'a str, u32>,
    path: &mut Vec<&'a str>,
) -> Result<u32, SpecError> {
    if let Some(&s) = stages.get(name) {
        return Ok(s);
    }
    if let Some(start) = path.iter().position(|&p| p == name) {
        let mut cycle: Vec<&str> = path[start..].to_vec();
        cycle.push(name);
        return Err(field(
            "experiment.pathway.select",
            format!("selections form a cycle: {}", cycle.join(" → ")),
        ));
    }
    path.push(name);
    let mut stage = 0;
    for &(_, source) in &reads[name] {
        stage = stage.max(stage_of(source, reads, stages, path)? + 1);
    }
    path.pop();
    stages.insert(name, stage);
    Ok(stage)
}
