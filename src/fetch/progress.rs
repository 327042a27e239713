//! Download progress: indicatif bars when a person watches stderr, tracing lines otherwise (a
//! log file or journal gains nothing from a redrawn bar, and loses a lot to its escape codes).

use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tracing::info;

#[derive(Clone)]
pub(crate) struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    pub(crate) fn new(bars: bool) -> Self {
        Self {
            multi: bars.then(MultiProgress::new),
        }
    }

    pub(crate) fn start(&self, label: &str, url: &str) -> Bar {
        let pb = self.multi.as_ref().map(|m| {
            let pb = m.add(ProgressBar::no_length());
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix:>24} [{bar:30}] {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12} {eta:>4}",
            ) {
                pb.set_style(style.progress_chars("=> "));
            }
            pb.set_prefix(label.to_string());
            pb
        });
        if pb.is_none() {
            info!(artifact = label, url, "downloading");
        }
        Bar {
            pb,
            label: label.to_string(),
            started: Instant::now(),
        }
    }
}

/// Progress of one download. Cheap to update per chunk: indicatif's counters are atomics and it
/// rate-limits redraws itself.
#[derive(Clone)]
pub(crate) struct Bar {
    pb: Option<ProgressBar>,
    label: String,
    started: Instant,
}

impl Bar {
    pub(crate) fn set_length(&self, len: Option<u64>) {
        if let (Some(pb), Some(len)) = (&self.pb, len) {
            pb.set_length(len);
        }
    }

    pub(crate) fn set_position(&self, pos: u64) {
        if let Some(pb) = &self.pb {
            pb.set_position(pos);
        }
    }

    pub(crate) fn inc(&self, n: u64) {
        if let Some(pb) = &self.pb {
            pb.inc(n);
        }
    }

    pub(crate) fn finish(&self, bytes: u64, sha256: &str) {
        let secs = self.started.elapsed().as_secs_f64();
        match &self.pb {
            Some(pb) => pb.finish(),
            None => info!(
                artifact = %self.label,
                bytes,
                sha256,
                secs = format_args!("{secs:.2}"),
                mib_per_sec = format_args!("{:.0}", bytes as f64 / 1048576.0 / secs.max(1e-6)),
                "downloaded"
            ),
        }
    }

    pub(crate) fn abandon(&self) {
        if let Some(pb) = &self.pb {
            pb.abandon();
        }
    }
}
