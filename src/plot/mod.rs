//! `patchsweep plot`: heatmaps, attribution-vs-activation scatters and debias bars from the
//! results database, as SVG and PNG files.
//!
//! # Layout
//! - `data.rs`: which sweeps, and their file names; the data comes from the store's read
//!   model (effects averaged in SQL, tokens, scatter points, debias results);
//! - `grid.rs`: averaged cells → heatmap grids, and how pairs of different lengths share
//!   an x axis;
//! - `charts.rs`: heatmaps and scatters as SVG; `debias_bars.rs` debias results with n,
//!   intervals and which way is better; `stereotypicality.rs` bias per profession against
//!   its published stereotypicality (Vig et al.'s figure); `svg.rs` the SVG writer and
//!   colour scales; `number.rs` the one number format of pictures and report;
//! - `raster.rs`: SVG → PNG with resvg and the embedded font (`fonts/`).

pub mod charts;
pub mod data;
pub mod debias_bars;
pub mod grid;
pub mod number;
pub mod raster;
pub mod stereotypicality;
pub mod svg;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use patchsweep_coordinator::store::{DebiasRow, Store, SweepRow, SweepSelection};

#[derive(Args)]
pub struct PlotArgs {
    /// Database URL: sqlite://FILE or postgres://...
    #[arg(long, env = "PATCHSWEEP_DB", default_value = "sqlite://patchsweep.db")]
    db: String,
    /// Sweep id, `latest` (the most recent sweep) or `all`.
    #[arg(long, default_value = "latest", value_parser = data::parse_selection)]
    sweep: SweepSelection,
    /// Folder for the pictures (created if missing).
    #[arg(long, default_value = "plots")]
    out: PathBuf,
}

/// What a picture shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Heatmap,
    Scatter,
    Debias,
    Stereotypicality,
}

/// One picture of one sweep, as SVG.
pub struct Picture {
    pub kind: Kind,
    /// Experiment (or debias section) the picture belongs to.
    pub group: String,
    pub title: String,
    /// File name without extension, unique within the sweep.
    pub stem: String,
    pub svg: String,
    /// Heatmaps: the colour scale's limit (±), the same for every heatmap of the sweep.
    pub colour_limit: Option<f64>,
}

/// Every picture of a sweep: heatmaps per experiment and component, a scatter per pair of
/// activation/attribution experiments over the same cells, debias bars per metric.
pub async fn pictures(store: &Store, sweep: &SweepRow) -> Result<Vec<Picture>> {
    let model = data::model_name(&sweep.model);
    let spec = store
        .sweep_spec(sweep.id)
        .await
        .context("read the sweep's spec")?;
    let metric = data::MetricNames::from_spec(spec.as_deref());
    let naming = grid::Naming {
        model: model.clone(),
        effect: metric.effect.clone(),
    };
    let cells = store
        .cell_means(sweep.id)
        .await
        .context("average the effects")?;
    let tokens = store
        .position_tokens(sweep.id)
        .await
        .context("read the tokens")?;
    let mut out: Vec<Picture> = grid::heatmaps(&cells, &tokens, &naming)
        .into_iter()
        .map(|h| Picture {
            kind: Kind::Heatmap,
            group: h.experiment.clone(),
            title: format!("{} (experiment {})", h.title, h.experiment),
            stem: format!("heatmap_{}", h.stem),
            svg: charts::heatmap(&h),
            colour_limit: Some(h.limit),
        })
        .collect();
    let sets = store
        .scatter_sets(sweep.id)
        .await
        .context("join activation and attribution effects")?;
    for set in sets {
        out.push(Picture {
            kind: Kind::Scatter,
            group: set.activation.clone(),
            title: format!(
                "{model} · {} vs {} · change of {}",
                set.attribution, set.activation, metric.metric
            ),
            stem: format!(
                "scatter_{}_vs_{}",
                data::slug(&set.attribution),
                data::slug(&set.activation)
            ),
            svg: charts::scatter(&set, &model),
            colour_limit: None,
        });
    }
    let professions = stereotypicality::points(
        &store
            .pair_baselines(sweep.id)
            .await
            .context("read the pairs")?,
    );
    if professions.len() >= 2 {
        out.push(Picture {
            kind: Kind::Stereotypicality,
            group: "pairs".into(),
            title: format!(
                "{model} · clean-prompt {} per profession vs Bolukbasi stereotypicality",
                metric.metric
            ),
            stem: "stereotypicality".into(),
            svg: stereotypicality::chart(
                &professions,
                &format!("clean-prompt {}", metric.metric),
                &model,
            ),
            colour_limit: None,
        });
    }
    // None when the view is absent (a database from before debiasing) or empty.
    let debias = store.debias_rows(sweep.id).await.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "no debias_v: no debias results to show");
        Vec::new()
    });
    let sizes = if debias.is_empty() {
        Vec::new()
    } else {
        store
            .debias_split_sizes(sweep.id)
            .await
            .context("count the debias splits' pairs")?
    };
    let mut groups: Vec<(String, String)> = debias
        .iter()
        .map(|r| (r.debias.clone(), r.metric.clone()))
        .collect();
    groups.dedup();
    for (name, metric) in groups {
        let rows: Vec<&DebiasRow> = debias
            .iter()
            .filter(|r| r.debias == name && r.metric == metric)
            .collect();
        out.push(Picture {
            kind: Kind::Debias,
            group: name.clone(),
            title: match debias_bars::better(&metric) {
                Some(cue) => format!("{model} · debias {name} · {metric} ({cue})"),
                None => format!("{model} · debias {name} · {metric}"),
            },
            stem: format!("debias_{}_{}", data::slug(&name), data::slug(&metric)),
            svg: debias_bars::chart(&model, &name, &metric, &rows, &sizes),
            colour_limit: None,
        });
    }
    Ok(out)
}

pub fn run(args: PlotArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = crate::query::open_results(&args.db).await?;
        let sweeps = data::sweeps(&store, args.sweep).await?;
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("create {}", args.out.display()))?;
        for sweep in &sweeps {
            let pictures = pictures(&store, sweep).await?;
            if pictures.is_empty() {
                println!(
                    "sweep {} ({}): no effects to plot yet",
                    sweep.id, sweep.name
                );
                continue;
            }
            for p in &pictures {
                let base = args.out.join(format!("{}_{}", data::stem(sweep), p.stem));
                let svg_path = base.with_extension("svg");
                let png_path = base.with_extension("png");
                std::fs::write(&svg_path, &p.svg)
                    .with_context(|| format!("write {}", svg_path.display()))?;
                let png = raster::png(&p.svg).with_context(|| format!("render {}", p.title))?;
                std::fs::write(&png_path, png)
                    .with_context(|| format!("write {}", png_path.display()))?;
                println!("{}  {}", png_path.display(), p.title);
            }
            println!(
                "sweep {} ({}): {} pictures (SVG and PNG) in {}",
                sweep.id,
                sweep.name,
                pictures.len(),
                args.out.display()
            );
        }
        Ok(())
    })
}
