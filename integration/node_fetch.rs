//! A worker with no mirror of its own fetches every binary it runs from its master, on the real
//! test bed: the master and the workers are each in a network namespace on a bridge, with no
//! default route, so a worker can reach its master and nothing else (the master's mirror is on
//! the master's own loopback). The master fetches the worker's binaries from its mirror,
//! verified against their published checksums, and serves them by SHA-256 over the join API.
//!
//! Then a file in the master's cache is tampered with, its cache stamp forged too (so the
//! master's own cheap check passes, as it would for an intruder who knows the format): a new
//! worker refuses it, names it, links nothing and runs nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test crate: a panic is a failed test (clippy.toml's allow-*-in-tests covers the \
              #[test] functions, not the helpers beside them)"
)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    CgroupRoots, Kubesup, Lan, Mirror, Scratch, Testbed, kubesup_bin, master_config, node_ready,
    wait_for,
};
use serde_json::Value;

const MASTER_IP: &str = "10.79.0.1";
const WORKER_IPS: [&str; 2] = ["10.79.0.2", "10.79.0.3"];

/// A worker config with no mirror: its binaries can come only from its master.
fn worker_config(dir: &Path, name: &str, cgroup_root: &str) -> (PathBuf, PathBuf) {
    let data = dir.join(name);
    let cfg = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &cfg,
        format!(
            "data-dir: {}\nnode-name: it-{name}\n\
             containerd: {{sandbox-image: kubesup.local/pause:3.2}}\n\
             kubelet: {{cgroup-root: {cgroup_root}}}\n",
            data.display(),
        ),
    )
    .unwrap();
    (data, cfg)
}

fn record(data: &Path) -> Value {
    let path = data.join(format!("bin/{}/fetched.json", common::KUBE_VERSION));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

#[test]
fn a_worker_without_a_mirror_fetches_from_its_master_and_refuses_a_tampered_file() {
    let Some(tb) = Testbed::get() else { return };
    let scratch = Scratch::new("nf");
    let mut lan = Lan::new("nf");
    let m = lan.add_node("nfm", &format!("{MASTER_IP}/24"));
    let w: Vec<usize> = WORKER_IPS
        .iter()
        .enumerate()
        .map(|(i, ip)| lan.add_node(&format!("nfw{}", i + 1), &format!("{ip}/24")))
        .collect();
    // The only mirror is on the master's loopback.
    let mirror = Mirror::serve(&lan.nodes[m], &tb);
    let roots: Vec<String> = (1..=2)
        .map(|i| format!("/kubesup-it-nf{i}-{}", std::process::id()))
        .collect();
    let _cgroups = CgroupRoots(roots.clone());

    let (mdata, mcfg) = master_config(&scratch.dir, "m", MASTER_IP, &mirror.url, "network: none\n");
    let master = Kubesup::start(
        &lan.nodes[m],
        &mdata,
        &["master", "--config", &mcfg.to_string_lossy()],
    );
    master.wait_ready(Duration::from_secs(240));
    let out = lan.nodes[m]
        .command(&kubesup_bin())
        .args(["token", "create", "--ttl", "1h", "--data-dir"])
        .arg(&mdata)
        .output()
        .unwrap();
    assert!(out.status.success(), "token create: {out:?}");
    let token_file = scratch.dir.join("token");
    std::fs::write(&token_file, String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let join_url = format!("https://{MASTER_IP}:9443");

    // The worker can reach nothing but its master: no route anywhere else.
    let routes = lan.nodes[w[0]].exec_ok(&["ip", "route", "show", "default"]);
    assert!(
        routes.trim().is_empty(),
        "the worker has a default route: {routes}"
    );

    let token_s = token_file.to_string_lossy().into_owned();
    // `kubesup worker` with worker `i`'s config (no mirror) and the one token.
    let start_worker = |i: usize| {
        let name = format!("w{}", i + 1);
        let (data, cfg) = worker_config(&scratch.dir, &name, &roots[i]);
        let cfg = cfg.to_string_lossy().into_owned();
        let args = [
            "worker",
            "--config",
            &cfg,
            "--join",
            &join_url,
            "--token-file",
            &token_s,
        ];
        let root = scratch.dir.join(format!("{name}-root"));
        let ks = Kubesup::start_isolated(&lan.nodes[w[i]], &data, &root, &args);
        (ks, data)
    };
    let (w1, data) = start_worker(0);
    w1.wait_ready(Duration::from_secs(300));
    let kc = mdata.join("kubeconfig/admin.conf");
    let ready = wait_for(Duration::from_secs(120), || {
        node_ready(&tb, &lan.nodes[m], &kc, "it-w1").then_some(())
    });
    assert!(
        ready.is_some(),
        "it-w1 never went Ready\n{}",
        w1.log_tail(60)
    );

    // Every binary came from the master, by the hash the master listed, and is what the
    // master's cache holds.
    let rec = record(&data);
    for name in ["kubelet", "kube-proxy"] {
        let src = &rec["sources"][name];
        let sha = src["sha256"].as_str().unwrap();
        assert_eq!(src["rel"], format!("v1/blobs/{sha}"), "{name}: {src}");
        assert_eq!(rec["binaries"][name]["sha256"], sha, "{name}");
        assert!(
            mdata.join("cache/sha256").join(sha).exists(),
            "{name} is not in the master's cache"
        );
    }
    for l in w1.log_tail(usize::MAX).lines() {
        if l.contains("downloaded artifact") {
            eprintln!("from the master: {l}");
        }
    }
    assert!(
        w1.log_tail(usize::MAX)
            .contains("fetching this node's binaries from its master"),
        "{}",
        w1.log_tail(40)
    );

    // Tamper with kube-proxy in the master's cache (same size, one byte changed), and forge
    // its cache stamp so that the master's cheap check still passes.
    let sha = rec["sources"]["kube-proxy"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = mdata.join("cache/sha256").join(&sha);
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    let meta = std::fs::metadata(&blob).unwrap();
    let stamp = serde_json::json!({
        "dev": meta.dev(), "ino": meta.ino(), "size": meta.size(),
        "mtime": [meta.mtime(), meta.mtime_nsec()],
        "ctime": [meta.ctime(), meta.ctime_nsec()],
        "mode": meta.mode(),
    });
    let stamp_path = mdata.join("cache/verified").join(&sha);
    assert!(stamp_path.exists(), "no cache stamp at {stamp_path:?}");
    std::fs::write(&stamp_path, stamp.to_string()).unwrap();

    let (mut w2, data2) = start_worker(1);
    let status = w2.wait_exit(Duration::from_secs(300));
    let log = w2.log_tail(usize::MAX);
    assert!(
        status.is_some_and(|s| !s.success()),
        "the worker did not fail on a tampered file: {status:?}\n{log}"
    );
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "not one error line:\n{log}");
    assert!(
        errors[0].contains("kube-proxy") && errors[0].contains("tampered"),
        "the error does not name the file: {}",
        errors[0]
    );
    eprintln!("the refusal: {}", errors[0]);
    // Nothing was linked, so nothing could run; the bad copy never entered its cache.
    let bin_dir = data2.join(format!("bin/{}", common::KUBE_VERSION));
    for name in ["kubelet", "kube-proxy"] {
        assert!(
            !bin_dir.join(name).exists(),
            "{name} was linked after a refused fetch"
        );
    }
    let bad = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    assert!(!data2.join("cache/sha256").join(&bad).exists());
    assert!(!data2.join("cache/sha256").join(&sha).exists());
    assert!(
        w2.recorded_pids().is_empty(),
        "the worker started components after a refused fetch"
    );
    drop(w1);
    drop(master);
}
