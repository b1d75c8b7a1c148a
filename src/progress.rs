//! Progress for long operations: a bar with rate and ETA on a terminal, plain lines
//! (every 10 %) otherwise.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    done: u64,
    next_line: u64,
    started: Instant,
}

impl Progress {
    pub fn new(label: &str, total: u64, unit: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(total);
            let style = ProgressStyle::with_template(&format!(
                "{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{per_sec}} ETA {{eta}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            b.set_style(style.progress_chars("=> "));
            b.set_message(label.to_string());
            b
        });
        Self {
            bar,
            label: label.to_string(),
            total,
            done: 0,
            next_line: total / 10,
            started: Instant::now(),
        }
    }

    pub fn advance(&mut self, n: usize) {
        self.done += n as u64;
        match &self.bar {
            Some(b) => b.inc(n as u64),
            None if self.done >= self.next_line.max(1) || self.done == self.total => {
                let secs = self.started.elapsed().as_secs_f64().max(1e-9);
                let rate = self.done as f64 / secs;
                let eta = (self.total.saturating_sub(self.done)) as f64 / rate.max(1e-9);
                eprintln!(
                    "{}: {}/{} ({:.0}/s, ETA {:.0}s)",
                    self.label, self.done, self.total, rate, eta
                );
                self.next_line = self.done + (self.total / 10).max(1);
            }
            None => {}
        }
    }

    /// Moves to `done` of `total` (for progress read from elsewhere, e.g. the database).
    pub fn set(&mut self, done: u64, total: u64) {
        if total != self.total {
            self.total = total;
            self.next_line = self.done + (total / 10).max(1);
            if let Some(b) = &self.bar {
                b.set_length(total);
            }
        }
        if done > self.done {
            self.advance((done - self.done) as usize);
        }
    }

    /// Finishes the bar; returns the elapsed seconds.
    pub fn finish(self) -> f64 {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
        self.started.elapsed().as_secs_f64()
    }
}

/// A spinner with elapsed time for an operation of unknown length (a model download and
/// load) on a terminal; a plain line before and after otherwise.
pub fn spin<T>(label: &str, work: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let spinner = std::io::stderr().is_terminal().then(|| {
        let s = ProgressBar::new_spinner();
        s.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        s.set_message(label.to_string());
        s.enable_steady_tick(std::time::Duration::from_millis(120));
        s
    });
    if spinner.is_none() {
        eprintln!("{label} ...");
    }
    let out = work();
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    eprintln!("{label}: {:.1}s", started.elapsed().as_secs_f64());
    out
}
