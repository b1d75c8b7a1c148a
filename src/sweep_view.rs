//! How a sweep's progress reads on a terminal: one line for `watch`, a block for `status`.

use patchsweep_api::SweepProgress;

use crate::plot::number::interval_sig3;

fn eta(p: &SweepProgress) -> String {
    match p.eta_seconds() {
        Some(s) if s >= 3600.0 => format!("{:.1}h", s / 3600.0),
        Some(s) if s >= 60.0 => format!("{:.1}m", s / 60.0),
        Some(s) => format!("{s:.0}s"),
        None => "-".into(),
    }
}

/// The rate and what it is over: while the sweep runs, the rate so far and the time left;
/// once it has ended, the rate over its whole time, which includes the debias tasks that
/// run after the patches (so it reads lower than the patching rate `run` reports).
fn rate(p: &SweepProgress) -> String {
    if !p.is_final() {
        return format!("{:.0}/s, ETA {}", p.patches_per_second(), eta(p));
    }
    format!(
        "{:.0}/s over the sweep's {:.1}s{}",
        p.patches_per_second(),
        p.elapsed_seconds,
        if p.debias.is_empty() {
            ""
        } else {
            ", debias tasks included"
        }
    )
}

/// One line: state, computed/total patches (and how many of them are in running tasks),
/// rate, ETA, workers, failures.
pub fn line(p: &SweepProgress) -> String {
    let t = &p.tasks;
    let running = p.patches_reached() - p.patches_done;
    format!(
        "sweep {} [{}] {}/{} patches{} ({}), tasks {}/{} done, {} running, \
         {} failed, {} workers, {} retries, {} stale results refused",
        p.sweep_id,
        p.state,
        p.patches_reached(),
        p.patches_total,
        if running > 0 {
            format!(" ({running} of them in running tasks)")
        } else {
            String::new()
        },
        rate(p),
        t.done,
        t.total(),
        t.leased,
        t.failed,
        p.workers,
        p.retries,
        p.stale_results
    )
}

/// A block: the line, then the sweep's error and failed tasks.
pub fn block(p: &SweepProgress) -> String {
    let mut s = format!(
        "sweep {} {:?} on {}\n  created {}{}\n  {}\n",
        p.sweep_id,
        p.name,
        p.model,
        p.created_at,
        p.finished_at
            .as_ref()
            .map(|f| format!(", finished {f}"))
            .unwrap_or_default(),
        line(p)
    );
    if let Some(e) = &p.error {
        s.push_str(&format!("  error: {e}\n"));
    }
    for f in &p.failures {
        s.push_str(&format!(
            "  failed task {} ({}) after {} attempt(s): {}\n",
            f.task_id, f.description, f.attempts, f.error
        ));
    }
    if !p.debias.is_empty() {
        s.push_str(&format!(
            "  debiasing (control: the mean of the same intervention on matched random component sets; 95% intervals):\n  {:<12} {:<14} {:<8} {:<21} {:>10} {:>10} {:>10} {:>10} {:>5}  {:<18} {:<18} {:<18}\n",
            "debias", "intervention", "split", "metric", "before", "after", "delta", "control", "n",
            "before 95%", "after 95%", "control 95%"
        ));
        for d in &p.debias {
            s.push_str(&format!(
                "  {:<12} {:<14} {:<8} {:<21} {:>10.4} {:>10.4} {:>10.4} {:>10} {:>5}  {:<18} {:<18} {:<18}\n",
                d.debias,
                d.intervention,
                d.split,
                d.metric,
                d.before,
                d.after,
                d.after - d.before,
                d.control_after
                    .map(|c| format!("{c:.4}"))
                    .unwrap_or_else(|| "-".into()),
                d.n.map_or("-".into(), |n| n.to_string()),
                d.before_ci.map_or("-".into(), interval_sig3),
                d.after_ci.map_or("-".into(), interval_sig3),
                d.control_ci.map_or("-".into(), interval_sig3),
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchsweep_api::DebiasFigure;

    fn figure(split: &str, n: Option<i64>, ci: Option<(f64, f64)>) -> DebiasFigure {
        DebiasFigure {
            debias: "top".into(),
            intervention: "ablation".into(),
            split: split.into(),
            metric: "mean_logit_diff".into(),
            before: -1.25,
            after: -0.5,
            control_after: ci.map(|_| -1.0),
            n,
            before_ci: ci,
            after_ci: None,
            control_ci: ci.map(|_| (-1.5, -0.75)),
        }
    }

    #[test]
    fn an_ended_sweep_says_what_its_rate_is_over() {
        let mut p = SweepProgress {
            state: "running".into(),
            patches_total: 1000,
            patches_done: 500,
            elapsed_seconds: 2.0,
            ..SweepProgress::default()
        };
        assert!(line(&p).contains("(250/s, ETA 2s)"), "{}", line(&p));
        p.state = "done".into();
        p.patches_done = 1000;
        p.elapsed_seconds = 20.0;
        assert!(
            line(&p).contains("(50/s over the sweep's 20.0s)"),
            "{}",
            line(&p)
        );
        p.debias.push(figure("heldout", None, None));
        assert!(
            line(&p).contains("(50/s over the sweep's 20.0s, debias tasks included)"),
            "{}",
            line(&p)
        );
    }

    #[test]
    fn the_status_block_shows_each_debias_figure_with_n_and_intervals() {
        let p = SweepProgress {
            debias: vec![
                figure("heldout", Some(10), Some((-2.0, -0.5))),
                figure("neutral", None, None),
            ],
            ..SweepProgress::default()
        };
        let text = block(&p);
        let held = text.lines().find(|l| l.contains("heldout")).unwrap();
        assert!(held.contains(" 10  [-2.00, -0.500]"), "{text}");
        assert!(held.trim_end().ends_with("[-1.50, -0.750]"), "{text}");
        let neutral = text.lines().find(|l| l.contains("neutral")).unwrap();
        assert!(
            neutral
                .trim_end()
                .ends_with("-  -                  -                  -"),
            "{text}"
        );
    }
}
