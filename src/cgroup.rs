//! The kubelet cgroup root kubesup creates when `kubelet.cgroup-root` is set: one directory per
//! cgroup hierarchy (the v2 tree, or each mounted v1 controller). `kubesup reset` removes it,
//! and the tests that run kubelets clean up with the same code.

use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BASE: &str = "/sys/fs/cgroup";

/// Where `root` lives in every hierarchy, whether or not it exists yet.
pub fn dirs(root: &str) -> Vec<PathBuf> {
    let base = Path::new(BASE);
    let rel = root.trim_start_matches('/');
    if base.join("cgroup.controllers").exists() {
        // cgroup v2: one tree.
        return vec![base.join(rel)];
    }
    std::fs::read_dir(base)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        // Controllers are directories; the comma-joined names are symlinks to them.
        .filter(|p| p.is_dir() && !p.is_symlink())
        .map(|p| p.join(rel))
        .collect()
}

/// Creates `root` in every hierarchy: kubelet refuses to start when it is missing.
pub fn ensure(root: &str) -> Result<(), (PathBuf, std::io::Error)> {
    for d in dirs(root) {
        std::fs::create_dir_all(&d).map_err(|e| (d.clone(), e))?;
    }
    Ok(())
}

/// One pass at removing `root`: SIGKILL every process in its trees, then remove its cgroups,
/// deepest first. A cgroup whose processes are still exiting is removed by a later pass;
/// returns true once nothing is left. Never for `/`.
pub fn remove_once(root: &str) -> bool {
    if root.trim_start_matches('/').is_empty() {
        return true;
    }
    let mut found = Vec::new();
    let mut stack: Vec<PathBuf> = dirs(root).into_iter().filter(|d| d.exists()).collect();
    while let Some(d) = stack.pop() {
        if let Ok(entries) = std::fs::read_dir(&d) {
            stack.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
            found.push(d);
        }
    }
    if found.is_empty() {
        return true;
    }
    for d in &found {
        let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
        for pid in procs
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    found.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in &found {
        let _ = std::fs::remove_dir(d);
    }
    false
}
