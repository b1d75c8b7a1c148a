//! What the pictures and the report read from the results database, through the store's
//! read-only queries (the same SQL on SQLite and PostgreSQL). Effects are averaged in SQL
//! per (experiment, component, layer, head, neuron, position, label, pair length), so the
//! data moved is the size of the pictures, not of the sweep.

use anyhow::{Context, Result};
use patchsweep_coordinator::store::{QueryResult, Store};
use serde_json::Value;

/// Which sweeps a command covers.
#[derive(Clone, Debug, PartialEq)]
pub enum SweepSelection {
    /// The most recent sweep (highest id).
    Latest,
    All,
    Id(i64),
}

impl std::str::FromStr for SweepSelection {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "latest" => Ok(SweepSelection::Latest),
            "all" => Ok(SweepSelection::All),
            _ => s.parse().map(SweepSelection::Id).map_err(|_| {
                format!("--sweep takes a sweep id (a number), `latest` or `all`, not `{s}`")
            }),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Sweep {
    pub id: i64,
    pub name: String,
    pub model: String,
    pub status: String,
    pub created_at: String,
    pub finished_at: String,
}

impl Sweep {
    /// A file-name-safe stem, e.g. `smollm2-professions-3`.
    pub fn stem(&self) -> String {
        format!("{}-{}", slug(&self.name), self.id)
    }
}

/// Effects of one experiment, component and coordinate averaged over the pairs of one length.
#[derive(Clone, Debug)]
pub struct CellMean {
    pub experiment: String,
    pub method: String,
    pub component: String,
    pub layer: Option<i64>,
    pub head: Option<i64>,
    pub neuron: Option<i64>,
    pub position: Option<i64>,
    pub label: Option<String>,
    pub n_tokens: i64,
    /// Mean normalized effect; `None` when every normalized value was NULL.
    pub mean: Option<f64>,
    /// How many non-NULL normalized values the mean is over.
    pub count: i64,
    /// How many pairs.
    pub pairs: i64,
}

/// Which clean tokens sit at one position (or label) across the pairs.
#[derive(Clone, Debug)]
pub struct PositionToken {
    pub n_tokens: i64,
    pub position: i64,
    pub label: Option<String>,
    pub token: String,
    pub pairs: i64,
}

/// One point of the attribution-vs-activation scatter.
#[derive(Clone, Debug)]
pub struct ScatterPoint {
    pub component: String,
    pub activation: f64,
    pub attribution: f64,
}

/// Activation and attribution experiments of one sweep over the same cells.
#[derive(Clone, Debug)]
pub struct ScatterSet {
    pub activation: String,
    pub attribution: String,
    pub points: Vec<ScatterPoint>,
}

/// A row of `debias_v`.
#[derive(Clone, Debug)]
pub struct DebiasRow {
    pub debias: String,
    pub intervention: String,
    pub components: String,
    pub split: String,
    pub metric: String,
    pub before: f64,
    pub after: f64,
    pub control_after: Option<f64>,
}

pub async fn sweeps(store: &Store, which: &SweepSelection) -> Result<Vec<Sweep>> {
    let filter = match which {
        SweepSelection::Latest => "ORDER BY id DESC LIMIT 1".to_string(),
        SweepSelection::All => "ORDER BY id".to_string(),
        SweepSelection::Id(id) => format!("WHERE id = {id}"),
    };
    let r = store
        .query_readonly(&format!(
            "SELECT id, name, model, status, created_at, finished_at FROM sweeps {filter}"
        ))
        .await
        .context("read the sweeps")?;
    let out: Vec<Sweep> = r
        .rows
        .iter()
        .map(|row| Sweep {
            id: int(&row[0]).unwrap_or(0),
            name: text(&row[1]),
            model: text(&row[2]),
            status: text(&row[3]),
            created_at: text(&row[4]),
            finished_at: text(&row[5]),
        })
        .collect();
    if out.is_empty() {
        match which {
            SweepSelection::Id(id) => anyhow::bail!("no sweep with id {id} in {}", store.url()),
            _ => anyhow::bail!("no sweeps in {}: run one first", store.url()),
        }
    }
    Ok(out)
}

pub async fn cell_means(store: &Store, sweep_id: i64) -> Result<Vec<CellMean>> {
    let sql = format!(
        "SELECT e.experiment, e.method, e.component, e.layer, e.head, e.neuron, e.position, \
         e.position_label, p.n_tokens, AVG(e.normalized), COUNT(e.normalized), \
         COUNT(DISTINCT e.pair_id) \
         FROM effects_v e JOIN pairs_v p ON p.sweep_id = e.sweep_id AND p.pair_id = e.pair_id \
         WHERE e.sweep_id = {sweep_id} \
         GROUP BY e.experiment, e.method, e.component, e.layer, e.head, e.neuron, e.position, \
         e.position_label, p.n_tokens"
    );
    let r = store
        .query_readonly(&sql)
        .await
        .context("average the effects")?;
    Ok(r.rows
        .iter()
        .map(|row| CellMean {
            experiment: text(&row[0]),
            method: text(&row[1]),
            component: text(&row[2]),
            layer: int(&row[3]),
            head: int(&row[4]),
            neuron: int(&row[5]),
            position: int(&row[6]),
            label: opt_text(&row[7]),
            n_tokens: int(&row[8]).unwrap_or(0),
            mean: float(&row[9]),
            count: int(&row[10]).unwrap_or(0),
            pairs: int(&row[11]).unwrap_or(0),
        })
        .collect())
}

pub async fn position_tokens(store: &Store, sweep_id: i64) -> Result<Vec<PositionToken>> {
    let sql = format!(
        "SELECT p.n_tokens, pp.position, pp.label, pp.clean_token, COUNT(*) \
         FROM pair_positions pp JOIN pairs p ON p.sweep_id = pp.sweep_id AND p.pair_id = pp.pair_id \
         WHERE pp.sweep_id = {sweep_id} GROUP BY p.n_tokens, pp.position, pp.label, pp.clean_token"
    );
    let r = store
        .query_readonly(&sql)
        .await
        .context("read the tokens")?;
    Ok(r.rows
        .iter()
        .map(|row| PositionToken {
            n_tokens: int(&row[0]).unwrap_or(0),
            position: int(&row[1]).unwrap_or(0),
            label: opt_text(&row[2]),
            token: text(&row[3]),
            pairs: int(&row[4]).unwrap_or(0),
        })
        .collect())
}

/// Every (activation, attribution) pair of experiments with the same direction, with one
/// point per cell and pair that both measured. The join is on the raw `effects` table, where
/// the -1 sentinels make plain equality work on both backends and each point is one lookup
/// of its primary key.
pub async fn scatter_sets(store: &Store, sweep_id: i64) -> Result<Vec<ScatterSet>> {
    let pairs = store
        .query_readonly(&format!(
            "SELECT a.name, b.name FROM experiments a JOIN experiments b \
             ON b.sweep_id = a.sweep_id AND b.direction = a.direction \
             WHERE a.sweep_id = {sweep_id} AND a.method = 'activation' AND b.method = 'attribution' \
             ORDER BY a.name, b.name"
        ))
        .await
        .context("read the experiments")?;
    let mut sets = Vec::new();
    for row in &pairs.rows {
        let (activation, attribution) = (text(&row[0]), text(&row[1]));
        let sql = format!(
            "SELECT a.component, a.effect, b.effect FROM effects a \
             JOIN effects b ON b.sweep_id = a.sweep_id AND b.experiment = {} \
              AND b.component = a.component AND b.layer = a.layer AND b.head = a.head \
              AND b.position = a.position AND b.neuron = a.neuron AND b.pair_id = a.pair_id \
             WHERE a.sweep_id = {sweep_id} AND a.experiment = {}",
            quote(&attribution),
            quote(&activation)
        );
        let r = store
            .query_readonly(&sql)
            .await
            .context("join activation and attribution effects")?;
        let points: Vec<ScatterPoint> = r
            .rows
            .iter()
            .filter_map(|row| {
                Some(ScatterPoint {
                    component: text(&row[0]),
                    activation: float(&row[1])?,
                    attribution: float(&row[2])?,
                })
            })
            .collect();
        if !points.is_empty() {
            sets.push(ScatterSet {
                activation,
                attribution,
                points,
            });
        }
    }
    Ok(sets)
}

/// A SQL string literal.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The rows of `debias_v` for a sweep; none when the view is absent (a database from
/// before debiasing) or empty.
pub async fn debias_rows(store: &Store, sweep_id: i64) -> Vec<DebiasRow> {
    let sql = format!(
        "SELECT debias, intervention, components, split, metric, before, after, control_after \
         FROM debias_v WHERE sweep_id = {sweep_id} ORDER BY debias, metric, split, intervention"
    );
    let r = match store.query_readonly(&sql).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "no debias_v: no debias results to show");
            return Vec::new();
        }
    };
    r.rows
        .iter()
        .filter_map(|row| {
            Some(DebiasRow {
                debias: text(&row[0]),
                intervention: text(&row[1]),
                components: text(&row[2]),
                split: text(&row[3]),
                metric: text(&row[4]),
                before: float(&row[5])?,
                after: float(&row[6])?,
                control_after: float(&row[7]),
            })
        })
        .collect()
}

/// A query whose failure is shown rather than fatal (for the report's tables): the result,
/// or the error as text.
pub async fn try_query(store: &Store, sql: &str) -> Result<QueryResult, String> {
    store.query_readonly(sql).await.map_err(|e| e.to_string())
}

pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub fn text(v: &Value) -> String {
    opt_text(v).unwrap_or_default()
}

pub fn opt_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Letters, digits, `-` and `_` kept; anything else becomes `-`.
pub fn slug(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if out.is_empty() {
        "x".into()
    } else {
        out
    }
}
