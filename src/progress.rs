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
    /// Where rates count from: the start (0 done), or the first reading of a count kept
    /// elsewhere (`set`), so a watch started mid-sweep does not credit the work done before
    /// it to its first instant.
    base: (u64, Instant),
    /// Readings given to `set` so far.
    readings: u64,
    /// Plain lines printed so far (off a terminal).
    lines: u64,
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
        let started = Instant::now();
        Self {
            bar,
            label: label.to_string(),
            total,
            done: 0,
            next_line: total / 10,
            started,
            base: (0, started),
            readings: 0,
            lines: 0,
        }
    }

    /// Items per second since the base; `None` until some time has passed.
    fn rate(&self, now: Instant) -> Option<f64> {
        let secs = now.saturating_duration_since(self.base.1).as_secs_f64();
        (secs > 0.0).then(|| self.done.saturating_sub(self.base.0) as f64 / secs)
    }

    fn print_line(&mut self) {
        let (rate, eta) = match self.rate(Instant::now()) {
            Some(r) if r > 0.0 => (
                format!("{r:.0}/s"),
                format!("{:.0}s", self.total.saturating_sub(self.done) as f64 / r),
            ),
            Some(r) => (format!("{r:.0}/s"), "-".into()),
            None => ("-/s".into(), "-".into()),
        };
        eprintln!(
            "{}: {}/{} ({rate}, ETA {eta})",
            self.label, self.done, self.total
        );
        self.lines += 1;
        self.next_line = self.done + (self.total / 10).max(1);
    }

    pub fn advance(&mut self, n: usize) {
        self.done += n as u64;
        match &self.bar {
            Some(b) => b.inc(n as u64),
            None if self.done >= self.next_line.max(1) || self.done == self.total => {
                self.print_line()
            }
            None => {}
        }
    }

    /// Moves to `done` of `total` (for progress read from elsewhere, e.g. the database).
    /// The first reading is the base rates count from; the first that moves prints the first
    /// rate.
    /// Readings of a total of 0 (not known yet: a sweep still preparing) are skipped.
    pub fn set(&mut self, done: u64, total: u64) {
        if total == 0 {
            return;
        }
        self.readings += 1;
        if total != self.total {
            self.total = total;
            self.next_line = self.done + (total / 10).max(1);
            if let Some(b) = &self.bar {
                b.set_length(total);
            }
        }
        if self.readings == 1 {
            self.done = done;
            self.base = (done, Instant::now());
            match &self.bar {
                Some(b) => {
                    b.set_position(done);
                    b.tick();
                    b.reset_eta();
                }
                None => {
                    eprintln!("{}: {}/{}", self.label, done, total);
                    self.lines += 1;
                }
            }
            self.next_line = done + (total / 10).max(1);
            return;
        }
        if done > self.done {
            self.advance((done - self.done) as usize);
        }
        // The first rate as soon as there is one (a line of "0/s" would say nothing).
        if self.lines == 1 && self.bar.is_none() && self.done > self.base.0 {
            self.print_line();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_read_mid_way_is_the_base_of_the_rate() {
        // A watch started after 10^9 patches were done: the first reading is not a rate.
        let mut p = Progress::new("sweep", 0, "patches");
        p.set(1_000_000_000, 2_000_000_000);
        std::thread::sleep(std::time::Duration::from_millis(50));
        p.set(1_000_000_010, 2_000_000_000);
        // 10 patches in at least 50 ms: at most 200/s (it read 5 * 10^10/s before).
        let rate = p.rate(Instant::now()).expect("a rate after two readings");
        assert!(rate > 0.0 && rate <= 200.0, "{rate}/s");
    }

    #[test]
    fn off_a_terminal_the_first_rate_waits_for_the_count_to_move() {
        let mut p = Progress::new("sweep", 0, "patches");
        p.bar = None;
        p.set(0, 240);
        p.set(0, 240);
        assert_eq!(p.lines, 1, "no '0/240 (0/s)' line");
        p.set(3, 240);
        assert_eq!(p.lines, 2, "the first rate once something moved");
        p.set(6, 240);
        assert_eq!(p.lines, 2, "then every tenth");
        p.set(30, 240);
        assert_eq!(p.lines, 3);
    }

    #[test]
    fn readings_before_the_total_is_known_are_skipped() {
        // A sweep still preparing reads 0 of 0: no "sweep: 0/0" line, and not the base.
        let mut p = Progress::new("sweep", 0, "patches");
        p.set(0, 0);
        p.set(0, 0);
        assert_eq!(p.readings, 0);
        p.set(5, 100);
        assert_eq!((p.readings, p.done, p.total, p.base.0), (1, 5, 100, 5));
    }

    #[test]
    fn local_progress_counts_from_zero() {
        let mut p = Progress::new("work", 100, "items");
        std::thread::sleep(std::time::Duration::from_millis(20));
        p.advance(10);
        let rate = p.rate(Instant::now()).unwrap();
        assert!(rate > 0.0 && rate < 10.0 / 0.02 + 1.0, "{rate}/s");
    }
}
