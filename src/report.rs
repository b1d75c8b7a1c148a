//! `patchsweep report`: one self-contained HTML page per database: a table of contents,
//! then for each sweep its summary tables (sweep, experiments, pairs and baselines, dropped
//! pairs, tasks, top components, debias results) and every picture of `patchsweep plot` as
//! inline SVG. Every number goes through one format ([`sig3`]: three significant digits).
//! Inline CSS, no script, no external resource: the page opens offline, from a file or
//! a mail attachment.

use std::fmt::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use patchsweep_coordinator::store::{
    values, Baselines, QueryResult, Rounding, Store, StoreError, SweepRow, SweepSelection,
};
use serde_json::Value;

use crate::plot::data;
use crate::plot::debias_bars;
use crate::plot::number::{interval_sig3, sig3, sig3_trimmed};
use crate::plot::svg::escape;
use crate::plot::{self, Kind, Picture};

#[derive(Args)]
pub struct ReportArgs {
    /// Database URL: sqlite://FILE or postgres://...
    #[arg(long, env = "PATCHSWEEP_DB", default_value = "sqlite://patchsweep.db")]
    db: String,
    /// Sweep id, `latest` (the most recent sweep) or `all`.
    #[arg(long, default_value = "latest", value_parser = data::parse_selection)]
    sweep: SweepSelection,
    /// The HTML file to write.
    #[arg(long)]
    out: PathBuf,
}

/// Rows shown of long tables (pairs); the page says how many there are.
const MAX_ROWS: usize = 100;
/// Components listed per experiment.
const TOP: i64 = 12;

const STYLE: &str = "
body { font-family: 'DejaVu Sans', Verdana, Arial, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1em 2em 4em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.3em; border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
h3 { font-size: 1.1em; margin-top: 1.6em; }
h4 { font-size: 1em; margin: 1em 0 0.4em; }
p.meta, p.note { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.4em 0 1em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.null { color: #aaa; }
tr:nth-child(even) td { background: #fafafa; }
figure { display: inline-block; margin: 0.6em 1.2em 1em 0; vertical-align: top; }
figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.8em; color: #666; max-width: 640px; }
nav ul { font-size: 0.9em; }
nav ul ul { columns: 2; font-size: 1em; margin: 0.2em 0 0.6em; }
";

pub fn run(args: ReportArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (html, n) = rt.block_on(async {
        let store = crate::query::open_results(&args.db).await?;
        let sweeps = data::sweeps(&store, args.sweep).await?;
        let mut sections = Vec::new();
        for sweep in &sweeps {
            sections.push(sweep_section(&store, sweep).await?);
        }
        let html = page(store.url(), &sweeps, &sections);
        store.close().await;
        anyhow::Ok((html, sweeps.len()))
    })?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::write(&args.out, &html).with_context(|| format!("write {}", args.out.display()))?;
    println!(
        "{}: report of {} sweep{} ({} KiB)",
        args.out.display(),
        n,
        if n == 1 { "" } else { "s" },
        html.len() / 1024
    );
    Ok(())
}

/// One sweep's part of the page, and its headings for the table of contents.
struct Section {
    html: String,
    /// `(id, text)` of the sweep heading, then of each part of it.
    outline: Vec<(String, String)>,
}

impl Section {
    fn new(sweep: &SweepRow) -> Section {
        let id = format!("sweep-{}", sweep.id);
        let text = format!("Sweep {}: {}", sweep.id, sweep.name);
        Section {
            html: format!("<section id=\"{id}\">\n<h2>{}</h2>\n", escape(&text)),
            outline: vec![(id, text)],
        }
    }

    /// The id of a part of this sweep (`sweep-N-part`), listed in the table of contents.
    fn part_id(&mut self, part: &str, text: &str) -> String {
        let id = format!("{}-{part}", self.outline[0].0);
        self.outline.push((id.clone(), text.to_string()));
        id
    }

    /// An `<h3>` with an id the table of contents links to.
    fn heading(&mut self, part: &str, text: &str) {
        let id = self.part_id(part, text);
        let _ = writeln!(self.html, "<h3 id=\"{id}\">{}</h3>", escape(text));
    }

    fn push_str(&mut self, s: &str) {
        self.html.push_str(s);
    }
}

/// The table of contents: each sweep, and under it each of its parts.
fn contents(sections: &[Section]) -> String {
    let mut out = String::from("<nav>\n<h2>Contents</h2>\n<ul>\n");
    for s in sections {
        let ((id, text), parts) = (&s.outline[0], &s.outline[1..]);
        let _ = writeln!(out, "<li><a href=\"#{id}\">{}</a>\n<ul>", escape(text));
        for (id, text) in parts {
            let _ = writeln!(out, "<li><a href=\"#{id}\">{}</a></li>", escape(text));
        }
        out.push_str("</ul></li>\n");
    }
    out.push_str("</ul>\n</nav>\n");
    out
}

fn page(url: &str, sweeps: &[SweepRow], sections: &[Section]) -> String {
    let mut out = String::new();
    let title = match sweeps {
        [one] => format!("patchsweep report: {} (sweep {})", one.name, one.id),
        _ => format!("patchsweep report: {} sweeps", sweeps.len()),
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n\
         <p class=\"meta\">Database {} · patchsweep {} · heatmaps show the normalized \
         effect Σ sign(span)·(patched − corrupt) / Σ |span| (span = clean − corrupt) over the \
         pairs with |span| ≥ min_span, blue below 0, red above.</p>\n",
        escape(&title),
        escape(&title),
        escape(url),
        env!("CARGO_PKG_VERSION"),
    );
    out.push_str(&contents(sections));
    for s in sections {
        out.push_str(&s.html);
    }
    out.push_str("</body>\n</html>\n");
    out
}

async fn sweep_section(store: &Store, sweep: &SweepRow) -> Result<Section> {
    let id = sweep.id;
    let mut out = Section::new(sweep);
    let summary = QueryResult {
        columns: ["id", "name", "model", "status", "created_at", "finished_at"]
            .map(String::from)
            .to_vec(),
        rows: vec![vec![
            Value::from(sweep.id),
            Value::from(sweep.name.clone()),
            Value::from(sweep.model.clone()),
            Value::from(sweep.status.clone()),
            Value::from(sweep.created_at.clone()),
            Value::from(sweep.finished_at.clone().unwrap_or_default()),
        ]],
    };
    out.push_str(&table(&summary, None));

    out.heading("experiments", "Experiments");
    let experiments = store.experiment_summaries(id).await;
    out.push_str(&shown(
        &experiments,
        &["experiment", "method", "direction", "effects", "components"],
        |x| {
            vec![
                text(&x.experiment),
                text(&x.method),
                text(&x.direction),
                Value::from(x.effects),
                Value::from(x.components),
            ]
        },
    ));

    out.heading("pairs", "Pairs and baselines");
    out.push_str("<p class=\"note\">clean_metric and corrupt_metric are the metric on the unpatched clean and corrupted prompts; their difference is the bias signal a component can restore.</p>\n");
    out.push_str(&shown(
        &store.pair_baselines(id).await,
        &[
            "pair_id",
            "template",
            "clean_prompt",
            "corrupt_prompt",
            "clean_metric",
            "corrupt_metric",
            "difference",
            "n_tokens",
        ],
        |p| {
            vec![
                text(&p.pair_id),
                opt_text(&p.template),
                text(&p.clean_prompt),
                text(&p.corrupt_prompt),
                values::float(p.clean_metric),
                values::float(p.corrupt_metric),
                values::float(p.difference),
                Value::from(p.n_tokens),
            ]
        },
    ));
    out.push_str(&shown(
        &store.baselines(id, Rounding::Exact).await.map(|b| vec![b]),
        &["pairs", "mean_clean", "mean_corrupt", "mean_difference"],
        Baselines::cells,
    ));
    if let Ok(groups) = store.baselines_by_counterfactual(id, Rounding::Exact).await {
        if groups.len() > 1 {
            out.push_str("<h4>Baselines by counterfactual</h4>\n<p class=\"note\">Pairs corrupted toward different words move the metric in opposite directions; the mean above mixes them.</p>\n");
            out.push_str(&table(&crate::baseline_groups::table(&groups), None));
        }
        // The report has no spec at hand: the threshold is the stored one.
        let min_span = store.weak_pairs(id).await.map_or(0.0, |w| w.min_span);
        for line in crate::baseline_groups::weak_contrast_lines(&groups, min_span) {
            out.push_str(&format!("<p class=\"note\">{}</p>\n", escape(&line)));
        }
    }
    let weak = store.weak_pairs(id).await;
    out.push_str(&format!(
        "<h4>Weak pairs</h4>\n<p class=\"note\">|clean − corrupt| below min_span {}: left out of every normalized effect (heatmaps, top components, debias selection).</p>\n",
        weak.as_ref().map_or_else(|_| "?".to_string(), |w| sig3(w.min_span))
    ));
    out.push_str(&shown(
        &weak.map(|w| w.weak),
        &["pair_id", "span"],
        |(pair, span)| vec![text(pair), values::float(*span)],
    ));
    out.push_str("<h4>Dropped pairs</h4>\n");
    out.push_str(&shown(
        &store.dropped_counts(id).await,
        &["reason", "count"],
        |d| vec![text(&d.reason), Value::from(d.count)],
    ));
    out.push_str(&shown(
        &store.dropped_pairs(id).await,
        &[
            "pair_id",
            "reason",
            "clean_prompt",
            "clean_tokens",
            "corrupt_prompt",
            "corrupt_tokens",
        ],
        |d| {
            vec![
                text(&d.id),
                text(&d.reason),
                text(&d.clean),
                Value::from(d.clean_tokens),
                text(&d.corrupt),
                Value::from(d.corrupt_tokens),
            ]
        },
    ));

    let pictures = plot::pictures(store, sweep).await?;
    for p in pictures.iter().filter(|p| p.kind == Kind::Stereotypicality) {
        out.push_str("<h4>Bias vs stereotypicality</h4>\n<p class=\"note\">One point per profession: the metric on its clean prompts (averaged over templates) against Bolukbasi et al.'s stereotypicality score, after Vig et al. 2020's figure of effects against stereotypicality (theirs is a ratio of odds ratios; this is the metric itself).</p>\n");
        figure(&mut out, p);
    }

    out.heading("tasks", "Tasks");
    out.push_str("<p class=\"note\">example_error: one of the error messages of the tasks in that row, if any failed (all of them: the <code>error</code> column of <code>tasks_v</code>).</p>\n");
    out.push_str(&shown(
        &store.task_summaries(id).await,
        &[
            "kind",
            "state",
            "tasks",
            "patches",
            "rows_stored",
            "attempts",
            "lease_expirations",
            "seconds",
            "example_error",
        ],
        |t| {
            vec![
                text(&t.kind),
                text(&t.state),
                Value::from(t.tasks),
                Value::from(t.patches),
                Value::from(t.rows_stored),
                Value::from(t.attempts),
                Value::from(t.lease_expirations),
                values::opt_float(t.seconds),
                opt_text(&t.an_error),
            ]
        },
    ));

    let map = crate::feature_map::FeatureMap {
        reversals: store.reversals(id, true).await,
        sites: store.selected_sites(id).await,
        lens: store.lens_layers(id).await,
        generations: store.generation_sample(id, 3).await,
    };
    // The feature map writes its own heading: the contents link to a wrapper.
    let feature_map_id = out.part_id("feature-map", "Feature map");
    out.push_str(&format!("<div id=\"{feature_map_id}\">\n"));
    out.push_str(&crate::feature_map::section(&map, |r| {
        table(r, Some(MAX_ROWS))
    }));
    out.push_str("</div>\n");

    out.heading("top-components", "Top components per experiment");
    out.push_str("<p class=\"note\">From <code>cells_v</code>: normalized effect over the strong pairs (ratio of sums), mean effect oriented toward the stereotyped answer, positions grouped by label, ordered by |normalized|.</p>\n");
    for exp in experiments.iter().flatten() {
        let exp = &exp.experiment;
        out.push_str(&format!("<h4>{}</h4>\n", escape(exp)));
        out.push_str(&shown(
            &store.top_components(id, exp, TOP, Rounding::Exact).await,
            &[
                "component",
                "layer",
                "head",
                "neuron",
                "position_label",
                "normalized",
                "mean_effect",
                "pairs",
                "pairs_used",
            ],
            |c| {
                vec![
                    text(&c.component),
                    Value::from(c.layer),
                    Value::from(c.head),
                    Value::from(c.neuron),
                    opt_text(&c.position),
                    values::float(c.normalized),
                    values::float(c.mean_effect),
                    Value::from(c.pairs),
                    Value::from(c.pairs_used),
                ]
            },
        ));
    }

    out.heading("heatmaps", "Heatmaps");
    let heatmaps: Vec<&Picture> = pictures
        .iter()
        .filter(|p| p.kind == Kind::Heatmap)
        .collect();
    if heatmaps.is_empty() {
        out.push_str("<p class=\"note\">No effects with a layer yet.</p>\n");
    }
    if let Some(limit) = heatmaps.first().and_then(|p| p.colour_limit) {
        out.push_str(&shared_scale_note(limit));
    }
    let mut last_group = None;
    for p in heatmaps {
        if last_group != Some(&p.group) {
            out.push_str(&format!("<h4>{}</h4>\n", escape(&p.group)));
            last_group = Some(&p.group);
        }
        figure(&mut out, p);
    }
    let scatters: Vec<&Picture> = pictures
        .iter()
        .filter(|p| p.kind == Kind::Scatter)
        .collect();
    out.heading("scatter", "Attribution vs activation");
    if scatters.is_empty() {
        out.push_str("<p class=\"note\">No activation and attribution experiments over the same cells in this sweep.</p>\n");
    }
    for p in scatters {
        figure(&mut out, p);
    }

    out.heading("benchmarks", "Bias benchmarks");
    out.push_str("<p class=\"note\">From <code>benchmark_v</code>: the share of pairs whose stereotypical sentence is more likely (0.5 = no preference), with its Wilson 95% interval, on the model (<code>base</code>), after each intervention, and on its control sets (<code>NAME/control</code>, the sets pooled).</p>\n");
    match store.benchmark_scores(id).await {
        Ok(rows) if !rows.is_empty() => {
            let paper = crate::benchmark_table::before_after(&rows);
            if !paper.rows.is_empty() {
                out.push_str(&table(&paper, None));
            }
            out.push_str(&table(&crate::benchmark_table::table(&rows), None));
        }
        Ok(_) => out.push_str("<p class=\"note\">No benchmark scores for this sweep.</p>\n"),
        Err(_) => out.push_str(
            "<p class=\"note\">This database has no benchmark scores (no benchmark_v view).</p>\n",
        ),
    }

    out.heading("debias", "Debiasing");
    match store.debias_rows(id).await {
        Ok(rows) if !rows.is_empty() => {
            let sizes = store
                .debias_split_sizes(id)
                .await
                .context("count the debias splits' pairs")?;
            out.push_str(DEBIAS_NOTE);
            let columns = [
                "debias",
                "intervention",
                "components",
                "split",
                "metric",
                "better",
                "n",
                "before",
                "before_ci95",
                "after",
                "after_ci95",
                "delta",
                "control_after",
                "control_ci95",
                "control_p05",
                "control_p95",
                "control_percentile",
                "control_sets",
                "control_components",
            ];
            out.push_str(&table(
                &QueryResult::from_rows(&columns, &rows, |d| {
                    let size = debias_bars::row_size(d, &sizes, &d.metric);
                    let [before_ci, after_ci] =
                        debias_bars::row_intervals(d, &d.metric, size.as_ref())
                            .map(|ci| ci.map_or(Value::Null, |ci| Value::from(interval_sig3(ci))));
                    vec![
                        text(&d.debias),
                        text(&d.intervention),
                        text(&d.components),
                        text(&d.split),
                        text(&d.metric),
                        Value::from(debias_bars::better(&d.metric)),
                        size.as_ref()
                            .map_or(Value::Null, |s| Value::from(s.label())),
                        values::float(d.before),
                        before_ci,
                        values::float(d.after),
                        after_ci,
                        values::float(d.after - d.before),
                        values::opt_float(d.control_after),
                        d.control_ci
                            .map_or(Value::Null, |ci| Value::from(interval_sig3(ci))),
                        values::opt_float(d.control_p05),
                        values::opt_float(d.control_p95),
                        values::opt_float(d.control_percentile),
                        d.control_sets.map(Value::from).unwrap_or(Value::Null),
                        opt_text(&d.control_components),
                    ]
                }),
                None,
            ));
            for p in pictures.iter().filter(|p| p.kind == Kind::Debias) {
                figure(&mut out, p);
            }
        }
        Ok(_) => out.push_str("<p class=\"note\">No debias results for this sweep.</p>\n"),
        Err(_) => out.push_str(
            "<p class=\"note\">This database has no debias results (no debias_v view).</p>\n",
        ),
    }
    out.push_str("</section>\n");
    Ok(out)
}

fn figure(out: &mut Section, p: &Picture) {
    out.push_str(&format!(
        "<figure>\n{}<figcaption>{}</figcaption>\n</figure>\n",
        p.svg,
        escape(&p.title)
    ));
}

/// What the heatmaps' note says of their one colour scale.
fn shared_scale_note(limit: f64) -> String {
    format!(
        "<p class=\"note\">One colour scale for every heatmap of this sweep, activation and \
         attribution alike: from −{l} (blue) through 0 (white) to +{l} (red), the largest \
         |normalized effect| among them rounded up to two digits, so maps compare by eye.</p>\n",
        l = sig3_trimmed(limit)
    )
}

const DEBIAS_NOTE: &str = "<p class=\"note\">better: which way the metric should move. n: \
     what the metric averages over, the same before and after: distinct clean prompts for the \
     means, pairs with a stereotyped side for <code>stereotype_win_share</code>, \
     anti-stereotypical swaps for <code>total_effect</code>, the text's chunks for the \
     neutral text. 95% intervals: Student's t over the per-prompt or per-pair values for the \
     means, Wilson for the share, t over the chunks for the neutral text (its perplexity on the \
     log scale: the chunks' mean log-likelihoods, exponentiated) (sweeps stored before these \
     were kept: the split's n, an upper bound for \
     <code>total_effect</code>, and intervals on the share only). control: the same \
     intervention on matched random component sets: their mean, its 95% interval over prompts \
     (each prompt's value averaged over the sets, then Student's t; the share's too), and the \
     sets' 5th and 95th percentiles.</p>\n";

/// Rows of the read model as a table, or a note saying why they are not there.
fn shown<T>(
    rows: &Result<Vec<T>, StoreError>,
    columns: &[&str],
    cells: impl Fn(&T) -> Vec<Value>,
) -> String {
    match rows {
        Ok(r) if r.is_empty() => "<p class=\"note\">none</p>\n".into(),
        Ok(r) => table(&QueryResult::from_rows(columns, r, cells), Some(MAX_ROWS)),
        Err(e) => format!(
            "<p class=\"note\">not available: {}</p>\n",
            escape(&e.to_string())
        ),
    }
}

fn text(s: &str) -> Value {
    Value::from(s)
}

fn opt_text(s: &Option<String>) -> Value {
    Value::from(s.clone())
}

/// An HTML table: numbers right-aligned (reals through [`sig3`]), NULL greyed.
fn table(r: &QueryResult, max: Option<usize>) -> String {
    let mut out = String::from("<table>\n<tr>");
    for c in &r.columns {
        let _ = write!(out, "<th>{}</th>", escape(c));
    }
    out.push_str("</tr>\n");
    let shown = max.unwrap_or(usize::MAX).min(r.rows.len());
    for row in &r.rows[..shown] {
        out.push_str("<tr>");
        for v in row {
            match v {
                Value::Null => out.push_str("<td class=\"null\">NULL</td>"),
                Value::Number(n) => {
                    let text = match (n.as_i64(), n.as_f64()) {
                        (Some(i), _) => i.to_string(),
                        (None, Some(f)) => sig3(f),
                        _ => n.to_string(),
                    };
                    let _ = write!(out, "<td class=\"num\">{text}</td>");
                }
                Value::String(s) => {
                    let _ = write!(out, "<td>{}</td>", escape(s));
                }
                other => {
                    let _ = write!(out, "<td>{}</td>", escape(&other.to_string()));
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    if shown < r.rows.len() {
        let _ = writeln!(
            out,
            "<p class=\"note\">{shown} of {} rows shown; all with <code>patchsweep query</code> or <code>patchsweep export</code>.</p>",
            r.rows.len()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_escape_and_format() {
        let r = QueryResult {
            columns: vec!["a<b".into(), "x".into()],
            rows: vec![vec![Value::from("<script>"), Value::from(0.123456)]],
        };
        let t = table(&r, None);
        assert!(t.contains("<th>a&lt;b</th>"));
        assert!(t.contains("&lt;script&gt;"));
        assert!(t.contains(">0.123<"));
    }
}
