//! Download progress off a terminal: a log line when a file starts, at every tenth of it,
//! and when it ends, with bytes, rate and time left (a 7B model is ~15 GB; a worker's log
//! should say where its download stands). On a terminal hf-hub draws its own bar.

use std::time::Instant;

/// hf-hub's progress callbacks, written as log lines.
pub(crate) struct DownloadLines {
    file: String,
    total: u64,
    done: u64,
    next_line: u64,
    started: Instant,
}

impl DownloadLines {
    pub(crate) fn new() -> Self {
        Self {
            file: String::new(),
            total: 0,
            done: 0,
            next_line: 0,
            started: Instant::now(),
        }
    }

    fn step(&self) -> u64 {
        (self.total / 10).max(1)
    }
}

impl hf_hub::api::Progress for DownloadLines {
    fn init(&mut self, size: usize, filename: &str) {
        self.file = filename.to_string();
        self.total = size as u64;
        self.done = 0;
        self.next_line = self.step();
        self.started = Instant::now();
        tracing::info!("downloading {filename} ({})", bytes(self.total));
    }

    fn update(&mut self, size: usize) {
        self.done += size as u64;
        if self.done >= self.next_line && self.done < self.total {
            let line = download_line(
                &self.file,
                self.done,
                self.total,
                self.started.elapsed().as_secs_f64(),
            );
            tracing::info!("{line}");
            self.next_line = self.done + self.step();
        }
    }

    fn finish(&mut self) {
        let secs = self.started.elapsed().as_secs_f64();
        tracing::info!(
            "downloaded {} ({}) in {secs:.1} s",
            self.file,
            bytes(self.done)
        );
    }
}

/// `FILE: DONE / TOTAL (P %), RATE, T left` after `secs` seconds.
pub(crate) fn download_line(file: &str, done: u64, total: u64, secs: f64) -> String {
    let share = if total > 0 {
        100.0 * done as f64 / total as f64
    } else {
        0.0
    };
    let rate = (secs > 0.0).then(|| done as f64 / secs);
    let left = match rate {
        Some(r) if r > 0.0 => format!("{:.0} s left", total.saturating_sub(done) as f64 / r),
        _ => "time left unknown".to_string(),
    };
    let rate = rate
        .map(|r| format!("{}/s", bytes(r as u64)))
        .unwrap_or_else(|| "-/s".to_string());
    format!(
        "{file}: {} / {} ({share:.0} %), {rate}, {left}",
        bytes(done),
        bytes(total)
    )
}

/// Bytes in decimal units, as download sizes are given (1 GB = 10^9 bytes).
fn bytes(n: u64) -> String {
    const UNITS: [(&str, f64); 3] = [("GB", 1e9), ("MB", 1e6), ("kB", 1e3)];
    UNITS
        .iter()
        .find(|(_, size)| n as f64 >= *size)
        .map(|(unit, size)| format!("{:.1} {unit}", n as f64 / size))
        .unwrap_or_else(|| format!("{n} B"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_gives_bytes_share_rate_and_time_left() {
        let line = download_line(
            "model-00001-of-00002.safetensors",
            2_500_000_000,
            10_000_000_000,
            50.0,
        );
        assert_eq!(
            line,
            "model-00001-of-00002.safetensors: 2.5 GB / 10.0 GB (25 %), 50.0 MB/s, 150 s left"
        );
    }

    #[test]
    fn before_any_time_has_passed_the_rate_is_unknown() {
        assert_eq!(
            download_line("config.json", 512, 2048, 0.0),
            "config.json: 512 B / 2.0 kB (25 %), -/s, time left unknown"
        );
    }
}
