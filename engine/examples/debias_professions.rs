//! Locate and remove gender bias on SmolLM2, end to end with the engine alone:
//! professions pairs → seeded held-out split → attribution patching on (part of) the
//! selection split → top components → ablation, steering and CDA fine-tuning → before/after
//! on the held-out pairs and the neutral text, with matched random control sets.
//!
//! cargo run -p patchsweep-engine --example debias_professions -- [OUT_DIR] [N_SELECT]
//!
//! `N_SELECT` (default 240) selection pairs are patched to rank components (attribution,
//! denoising, at the `subject` and last positions; pairs whose clean and corrupted metrics
//! differ by less than 1 logit are left out of the ranking, their normalized effects being
//! mostly noise). The score of a component is its mean |normalized effect|. Results go to
//! stdout (a table) and `OUT_DIR/results.json`; fine-tuning deltas to `OUT_DIR`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use patchsweep_engine::dataset::{professions, tokenize_pairs, ProfessionsOptions};
use patchsweep_engine::debias::{
    debias_pairs, load_corpora, matched_controls, neutral_chunks, run_debias, select_components,
    split_pairs, AggregatedEffect, DebiasConfig, DebiasInputs, SplitPart, NEUTRAL_TEXT,
};
use patchsweep_engine::experiment::{Direction, Engine, Experiment, Method, PairInput};
use patchsweep_engine::grid::{Component, Grid, PositionRef, Positions};
use patchsweep_engine::metric::{Metric, MetricKind, Reduce};
use patchsweep_model::{load, LoadOptions, ModelSpec};

const CONFIGS: &str = r#"
[[debias]]
name = "heads"
experiment = "attribution"
control_seed = 11
select = { component = "head_out", top_k = 6 }
split = { heldout_professions = 0.3, heldout_templates = 0.3, seed = 7 }
intervention = [
  { kind = "ablation", mode = "zero" },
  { kind = "ablation", mode = "mean" },
  { kind = "steering", positions = "all" },
  { kind = "finetune", steps = 40, lr = 5e-4, batch_size = 16, seed = 0 },
]

[[debias]]
name = "mlps"
experiment = "attribution"
control_seed = 12
select = { component = "mlp_out", top_k = 3, position = "subject" }
split = { heldout_professions = 0.3, heldout_templates = 0.3, seed = 7 }
intervention = [
  { kind = "ablation", mode = "zero" },
  { kind = "ablation", mode = "mean" },
  { kind = "steering", positions = "all" },
  { kind = "finetune", steps = 40, lr = 5e-4, batch_size = 16, seed = 0 },
]
"#;

#[derive(serde::Deserialize)]
struct Configs {
    debias: Vec<DebiasConfig>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    patchsweep_model::cpu_pool::defaults_unless_set(); // as the patchsweep binary does
    let mut args = std::env::args().skip(1);
    let out_dir = PathBuf::from(args.next().unwrap_or_else(|| "debias-out".into()));
    let n_select: usize = args.next().unwrap_or_else(|| "240".into()).parse()?;
    let configs: Configs = toml::from_str(CONFIGS)?;
    let t0 = Instant::now();
    let m = load(
        &"gguf:models/SmolLM2-135M-Instruct.Q4_1.gguf".parse::<ModelSpec>()?,
        &LoadOptions::default(),
    )?;
    let specs = professions(&ProfessionsOptions::default())?;
    let (tokenized, dropped) = tokenize_pairs(&specs, &m.tokenizer, None)?;
    let (pos, neg) = (vec![" he".to_string()], vec![" she".to_string()]);
    let metric = Metric::from_words(
        MetricKind::LogitDiff,
        Reduce::Mean,
        &pos,
        &neg,
        &m.tokenizer,
    )?;
    let specs: Vec<_> = tokenized.iter().map(|t| t.spec.clone()).collect();
    let inputs: Vec<PairInput> = tokenized
        .into_iter()
        .map(|t| PairInput {
            id: t.spec.id,
            clean_ids: t.clean_ids,
            corrupt_ids: t.corrupt_ids,
            position_labels: t.position_labels,
            metric: metric.clone(),
        })
        .collect();
    let pairs = debias_pairs(inputs, &specs, &pos, &neg)?;
    println!("{} pairs (dropped: {dropped})", pairs.len());

    let neutral = neutral_chunks(&m.tokenizer, NEUTRAL_TEXT, 128, None, None)?;
    println!(
        "neutral text: {} chunks, {} tokens",
        neutral.len(),
        neutral.iter().map(Vec::len).sum::<usize>()
    );

    let mut all_rows = Vec::new();
    let mut effects_cache: Option<(Vec<AggregatedEffect>, String)> = None;
    for cfg in &configs.debias {
        cfg.validate()?;
        let split = split_pairs(&pairs, &cfg.split)?;
        println!(
            "\n== {}: split seed {} holds out professions {:?} and templates {:?}: {} selection, {} held-out, {} unused pairs",
            cfg.name,
            split.seed,
            split.heldout_professions,
            split.heldout_templates,
            split.selection.len(),
            split.heldout.len(),
            split.unused.len()
        );
        // Effects: attribution patching on the first N_SELECT selection pairs (once; the
        // two configs share the split).
        let key = format!("{:?}", split.selection);
        if effects_cache.as_ref().is_none_or(|(_, k)| *k != key) {
            let t = Instant::now();
            let sel: Vec<PairInput> = split
                .pairs(SplitPart::Selection, &pairs)
                .into_iter()
                .map(|p| p.input.clone())
                .collect();
            let engine = Engine::new(&m.model);
            let base = engine.baselines(&sel)?;
            let strong: Vec<usize> = (0..sel.len())
                .filter(|&i| (base[i].clean - base[i].corrupt).abs() >= 1.0)
                .take(n_select)
                .collect();
            let sel: Vec<PairInput> = strong.iter().map(|&i| sel[i].clone()).collect();
            let base: Vec<_> = strong.iter().map(|&i| base[i]).collect();
            let exp = Experiment {
                name: "attribution".into(),
                method: Method::Attribution,
                direction: Direction::Denoise,
                grid: Grid {
                    components: vec![Component::HeadOut, Component::MlpOut],
                    layers: None,
                    positions: Positions::List(vec![
                        PositionRef::Label("subject".into()),
                        PositionRef::Index(-1),
                    ]),
                    heads: None,
                    neurons: None,
                    pathways: vec![],
                    selections: vec![],
                },
            };
            let effects = engine.run(&exp, &sel, &base, &mut |_| {})?;
            // (component, layer, head, position label) -> (sum of |normalized|, count).
            type Key = (String, usize, Option<usize>, String);
            let mut agg: BTreeMap<Key, (f64, usize)> = BTreeMap::new();
            for e in &effects {
                let (Some(n), Some(layer), Some(p)) = (e.normalized, e.key.layer, e.key.position)
                else {
                    continue;
                };
                let label = sel[e.pair].position_labels[p].clone();
                let a = agg
                    .entry((e.key.component.clone(), layer, e.key.head, label))
                    .or_default();
                a.0 += n.abs();
                a.1 += 1;
            }
            let rows: Vec<AggregatedEffect> = agg
                .into_iter()
                .map(
                    |((component, layer, head, label), (s, n))| AggregatedEffect {
                        component,
                        layer,
                        head,
                        position_label: Some(label),
                        score: s / n as f64,
                    },
                )
                .collect();
            println!(
                "attribution on {} selection pairs ({} effects) in {:.1}s",
                sel.len(),
                effects.len(),
                t.elapsed().as_secs_f64()
            );
            effects_cache = Some((rows, key));
        }
        let rows = &effects_cache.as_ref().expect("computed above").0;
        let targets = select_components(rows, &cfg.select, &m.model.cfg)?;
        let controls =
            matched_controls(&targets, cfg.control_seed, cfg.control_sets, &m.model.cfg)?;
        for t in &targets {
            let score = rows
                .iter()
                .find(|r| {
                    r.layer == t.layer
                        && r.head == t.head
                        && r.position_label == t.position
                        && patchsweep_engine::debias::TargetKind::parse(&r.component)
                            == Some(t.kind)
                })
                .map(|r| r.score)
                .unwrap_or(f64::NAN);
            println!("  selected {t}: mean |normalized attribution| {score:.3}");
        }
        let corpora = load_corpora(cfg, &m.tokenizer, None)?;
        let t = Instant::now();
        let outcome = run_debias(
            cfg,
            &DebiasInputs {
                model: &m.model,
                pairs: &pairs,
                split: &split,
                targets: &targets,
                controls: &controls,
                neutral: &neutral,
                corpora: &corpora,
                deltas_dir: Some(&out_dir),
                max_batch: 64,
                benchmarks: &[],
            },
            &mut |_, _| {},
        )?;
        println!(
            "debias {} in {:.1}s: {} held-out pairs ({} with a stereotype); control {}",
            cfg.name,
            t.elapsed().as_secs_f64(),
            outcome.heldout_pairs,
            outcome.heldout_stereotyped,
            controls
                .first()
                .map(|c| patchsweep_engine::debias::describe(c))
                .unwrap_or_default()
        );
        for c in &outcome.calibrations {
            println!(
                "  {} (control set: {:?}): steering centres moved {:.4} gaps, selection mean logit diff {:.4} -> {:.4}",
                c.intervention, c.control, c.calibration.offset, c.calibration.before, c.calibration.after
            );
        }
        for a in &outcome.artifacts {
            println!(
                "  deltas {} (control set: {:?}): loss {:.4} -> {:.4}",
                a.path.display(),
                a.control,
                a.first_loss,
                a.final_loss
            );
        }
        println!(
            "  {:<14} {:<8} {:<21} {:>10} {:>10} {:>10} {:>10}",
            "intervention", "split", "metric", "before", "after", "delta", "control"
        );
        for r in &outcome.rows {
            println!(
                "  {:<14} {:<8} {:<21} {:>10.4} {:>10.4} {:>10.4} {:>10.4}",
                r.intervention,
                r.split,
                r.metric,
                r.before,
                r.after,
                r.delta,
                r.control.as_ref().map_or(f64::NAN, |c| c.mean)
            );
        }
        all_rows.push(serde_json::json!({
            "name": cfg.name,
            "split": split,
            "targets": patchsweep_engine::debias::describe(&targets),
            "control": controls.first().map(|c| patchsweep_engine::debias::describe(c)),
            "rows": outcome.rows,
            "artifacts": outcome.artifacts,
        }));
    }
    std::fs::create_dir_all(&out_dir)?;
    std::fs::write(
        out_dir.join("results.json"),
        serde_json::to_string_pretty(&all_rows)?,
    )?;
    println!("\ntotal {:.1}s", t0.elapsed().as_secs_f64());
    Ok(())
}
