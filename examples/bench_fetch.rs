//! Benchmark: kubesup's fetch (download + SHA-256 while streaming + fsync + cache placement +
//! etcd extraction) against `curl` downloading the same files one after another followed by
//! `sha256sum`, from a loopback HTTP mirror of the test bed (~450 MB: the Kubernetes v1.20.2
//! binaries and the etcd v3.4.23 tarball), into an empty cache every time.
//!
//! Run (after `integration/build-mirror.sh`):
//!   cargo run --release --example bench_fetch -- [--mirror http://127.0.0.1:PORT]
//!       [--mirror-dir DIR] [--runs N]
//! Without --mirror it starts `integration/serve-mirror.py` on 127.0.0.1 itself and stops it
//! (by its PID) at the end.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark run by hand on input it makes itself: a panic is a failed run, with \
              its message"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kubesup::fetch::{Artifact, FetchOptions, Fetcher};
use kubesup::paths::Paths;

const VERSION: &str = "v1.20.2";
const ETCD: &str = "v3.4.23";
const KUBE: [&str; 6] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
];
const MAX_RUNS: usize = 20;

type Error = Box<dyn std::error::Error>;

/// The mirror server this benchmark started; stopped by PID when dropped.
struct Served {
    pid: i32,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

fn start_mirror(dir: &Path) -> Result<(String, Served), Error> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/serve-mirror.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg("--daemon")
        .arg(dir)
        .stderr(Stdio::inherit())
        .output()?;
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k).map(str::to_string))
    };
    match (field("url="), field("pid=").and_then(|p| p.parse().ok())) {
        (Some(url), Some(pid)) => Ok((url, Served { pid })),
        _ => Err(format!("serve-mirror.py printed {line:?}").into()),
    }
}

fn rels() -> Vec<(String, Option<String>)> {
    let mut v: Vec<(String, Option<String>)> = KUBE
        .iter()
        .map(|n| {
            let rel = format!("release/{VERSION}/bin/linux/amd64/{n}");
            (rel.clone(), Some(format!("{rel}.sha256")))
        })
        .collect();
    let dir = format!("etcd-io/etcd/releases/download/{ETCD}");
    v.push((
        format!("{dir}/etcd-{ETCD}-linux-amd64.tar.gz"),
        Some(format!("{dir}/SHA256SUMS")),
    ));
    v
}

fn run_kubesup(
    rt: &tokio::runtime::Runtime,
    mirror: &str,
    concurrency: usize,
) -> Result<Duration, Error> {
    let tmp = tempfile::tempdir()?;
    let mut o = FetchOptions::new(Paths::new(tmp.path()));
    o.mirror = Some(mirror.to_string());
    o.arch = "amd64".into();
    o.etcd_version = Some(ETCD.into());
    o.concurrency = concurrency;
    o.progress_bars = false;
    let fetcher = Fetcher::new(o)?;
    let mut artifacts: Vec<Artifact> = KUBE.iter().filter_map(|n| Artifact::from_name(n)).collect();
    artifacts.push(Artifact::Etcd);
    let t = Instant::now();
    let version = kubesup::model::KubeVersion::parse(VERSION).ok_or("bad version")?;
    let set = rt.block_on(fetcher.fetch(&version, &artifacts))?;
    let took = t.elapsed();
    if set.binaries.len() != KUBE.len() + 2 {
        return Err(format!("fetched {} binaries", set.binaries.len()).into());
    }
    Ok(took)
}

/// curl each file (and its checksum file) one after another, then sha256sum them all and
/// compare with the published sums.
fn run_curl(mirror: &str) -> Result<Duration, Error> {
    let tmp = tempfile::tempdir()?;
    let base = mirror.trim_end_matches('/');
    let t = Instant::now();
    let mut files: Vec<(PathBuf, PathBuf, String)> = Vec::new();
    for (i, (rel, sums)) in rels().into_iter().enumerate() {
        let file = tmp.path().join(format!("{i}-bin"));
        let sumfile = tmp.path().join(format!("{i}-sum"));
        for (r, p) in [(sums.unwrap_or_default(), &sumfile), (rel.clone(), &file)] {
            let st = Command::new("curl")
                .args(["-sS", "-f", "-o"])
                .arg(p)
                .arg(format!("{base}/{r}"))
                .status()?;
            if !st.success() {
                return Err(format!("curl {r} failed").into());
            }
        }
        let name = rel.rsplit('/').next().unwrap_or_default().to_string();
        files.push((file, sumfile, name));
    }
    let out = Command::new("sha256sum")
        .args(files.iter().map(|(f, _, _)| f))
        .output()?;
    let took = t.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for ((_, sumfile, name), line) in files.iter().zip(text.lines()) {
        let got = line.split_whitespace().next().unwrap_or_default();
        let published = std::fs::read_to_string(sumfile)?;
        if !published.contains(got) {
            return Err(format!("curl+sha256sum: {name} does not match").into());
        }
    }
    Ok(took)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Error> {
    let mut mirror = None;
    let mut dir = PathBuf::from(
        std::env::var("KUBESUP_TESTBED_CACHE")
            .unwrap_or_else(|_| "/var/cache/kubesup-testbed".into()),
    )
    .join("mirror");
    let mut runs = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mirror" => mirror = args.next(),
            "--mirror-dir" => dir = args.next().map(PathBuf::from).unwrap_or(dir),
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).unwrap_or(runs),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let runs = runs.clamp(1, MAX_RUNS);
    let (mirror, _served) = match mirror {
        Some(m) => (m, None),
        None => {
            let (url, s) = start_mirror(&dir)?;
            (url, Some(s))
        }
    };
    let mut bytes = 0u64;
    for (rel, _) in rels() {
        bytes += std::fs::metadata(dir.join(&rel))
            .map(|m| m.len())
            .unwrap_or(0);
    }
    let rt = tokio::runtime::Runtime::new()?;
    println!(
        "mirror {mirror}: {} files, {:.0} MB; {runs} runs, empty cache each run",
        rels().len(),
        bytes as f64 / 1e6
    );

    // Warm-up: the mirror's files into the page cache, so run 1 is not special.
    run_curl(&mirror)?;
    let (mut k4, mut k1, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        // Alternate the order so neither side always runs on a just-warmed machine.
        if i % 2 == 0 {
            k4.push(run_kubesup(&rt, &mirror, 4)?);
            k1.push(run_kubesup(&rt, &mirror, 1)?);
            c.push(run_curl(&mirror)?);
        } else {
            c.push(run_curl(&mirror)?);
            k1.push(run_kubesup(&rt, &mirror, 1)?);
            k4.push(run_kubesup(&rt, &mirror, 4)?);
        }
        println!(
            "run {}: kubesup(4) {:.2}s  kubesup(1) {:.2}s  curl+sha256sum {:.2}s",
            i + 1,
            k4[i].as_secs_f64(),
            k1[i].as_secs_f64(),
            c[i].as_secs_f64()
        );
    }
    let (mk4, mk1, mc) = (median(&mut k4), median(&mut k1), median(&mut c));
    let mbs = |d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    println!(
        "median kubesup, 4 parallel : {:.2}s ({:.0} MB/s)",
        mk4.as_secs_f64(),
        mbs(mk4)
    );
    println!(
        "median kubesup, 1 at a time: {:.2}s ({:.0} MB/s)",
        mk1.as_secs_f64(),
        mbs(mk1)
    );
    println!(
        "median curl + sha256sum    : {:.2}s ({:.0} MB/s)",
        mc.as_secs_f64(),
        mbs(mc)
    );
    println!(
        "ratio curl/kubesup: {:.2}x (4 parallel), {:.2}x (1 at a time)",
        mc.as_secs_f64() / mk4.as_secs_f64(),
        mc.as_secs_f64() / mk1.as_secs_f64()
    );
    Ok(())
}
