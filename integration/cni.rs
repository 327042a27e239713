//! The CNI plugins of a node on flannel's network, on the real test bed (v1.20.2, Debian's
//! containerd and its CNI plugins in /usr/lib/cni, which have no `flannel`).
//!
//! - A node whose CNI bin dir is the operator's (`containerd.cni-bin-dir: /usr/lib/cni`)
//!   refuses to start, with one line naming the plugin, the dir and where the plugin comes
//!   from, before it fetches anything (the test bed's mirror has no flanneld, so a fetch first
//!   would fail on that instead) and before kubelet could leave pods in `ContainerCreating`.
//! - With kubesup's own CNI bin dir, the node fetches flannel's CNI plugin (verified by its
//!   sidecar), links Debian's plugins beside it, points containerd there, and goes Ready; its
//!   flanneld is verified by the digest in GitHub's release answer, served by the mirror at
//!   the API's path (no pinned checksum).
//!
//! Test-bed stand-ins, said plainly: flanneld and flannel's CNI plugin are in no reachable
//! registry. integration/build-mirror.sh publishes a stand-in for the CNI plugin (it answers
//! CNI's VERSION and refuses ADD), and this test publishes one for flanneld (it writes the
//! subnet file and idles); so pods are not run on flannel's network here.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test crate: a panic is a failed test (clippy.toml's allow-*-in-tests covers the \
              #[test] functions, not the helpers beside them)"
)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    CgroupRoots, Kubesup, Mirror, Netns, Scratch, Testbed, master_config, node_ready, wait_for,
};
use sha2::Digest;

/// The flannel release kubesup pairs with v1.20, and flannel's CNI plugin for it.
const FLANNEL: &str = "v0.13.0";
const FLANNEL_CNI: &str = "v1.1.2";

fn error_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.starts_with("error"))
        .map(String::from)
        .collect()
}

#[test]
fn a_node_whose_cni_dir_lacks_flannel_refuses_to_start_before_fetching() {
    let Some(tb) = Testbed::get() else { return };
    assert!(
        Path::new("/usr/lib/cni/bridge").exists() && !Path::new("/usr/lib/cni/flannel").exists(),
        "the test bed's /usr/lib/cni is Debian's containernetworking-plugins 1.1.1 (bridge, no flannel)"
    );
    let scratch = Scratch::new("cnix");
    let ns = Netns::new("cnix").with_address("10.79.0.2/24");
    let mirror = Mirror::serve(&ns, &tb);
    let (data, cfg) = master_config(
        &scratch.dir,
        "cnix",
        "10.79.0.2",
        &mirror.url,
        "network: flannel\nschedulable: true\ncontainerd: {cni-bin-dir: /usr/lib/cni}\n",
    );
    let t0 = Instant::now();
    let mut ks = Kubesup::start(&ns, &data, &["master", "--config", &cfg.to_string_lossy()]);
    let status = ks
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("kubesup did not refuse to start\n{}", ks.log_tail(40)));
    eprintln!("refused in {:?}", t0.elapsed());
    assert!(!status.success(), "{status:?}");
    let log = std::fs::read_to_string(&ks.log).unwrap();
    let errors = error_lines(&log);
    assert_eq!(errors.len(), 1, "not one error line: {errors:?}\n{log}");
    let e = &errors[0];
    eprintln!("{e}");
    for part in [
        "the CNI config names plugin \"flannel\"",
        "/usr/lib/cni (containerd.cni-bin-dir)",
        "flannel-io/cni-plugin",
        "remove containerd.cni-bin-dir",
    ] {
        assert!(e.contains(part), "{part:?} is not in {e:?}");
    }
    // Nothing was fetched (the check came first) and nothing was started.
    assert!(!log.contains("fetching"), "{log}");
    assert!(!data.join("bin").exists());
    assert!(!data.join("components/kubelet").exists());
    assert!(ks.recorded_pids().is_empty());
}

/// Test-bed stand-in for flanneld, which is in no reachable registry: it writes the subnet
/// file flanneld would, then idles like a daemon.
const FLANNELD_STAND_IN: &str = r#"#!/bin/sh
for a in "$@"; do
  case "$a" in
    --subnet-file=*) subnet=${a#*=} ;;
  esac
done
mkdir -p "$(dirname "$subnet")"
printf 'FLANNEL_NETWORK=10.2.0.0/16\nFLANNEL_SUBNET=10.2.9.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n' > "$subnet"
exec sleep 100000
"#;

#[test]
fn a_flannel_node_fetches_flannels_cni_plugin_beside_the_os_plugins_and_goes_ready() {
    let Some(tb) = Testbed::get() else { return };
    let scratch = Scratch::new("cnif");
    // The test bed's releases, flannel's CNI plugin stand-in from build-mirror.sh, and a
    // flanneld stand-in with the release answer GitHub's API would give for it, at the API's
    // path without the host: its digest is the only checksum flanneld gets.
    let mirror_dir = scratch.dir.join("mirror");
    let flannel_dir = mirror_dir.join(format!("flannel-io/flannel/releases/download/{FLANNEL}"));
    std::fs::create_dir_all(&flannel_dir).unwrap();
    for top in ["release", "etcd-io", "flannel-io/cni-plugin"] {
        std::os::unix::fs::symlink(tb.mirror.join(top), mirror_dir.join(top)).unwrap();
    }
    let stand_in = flannel_dir.join("flanneld-amd64");
    std::fs::write(&stand_in, FLANNELD_STAND_IN).unwrap();
    std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
    let digest = hex::encode(sha2::Sha256::digest(FLANNELD_STAND_IN.as_bytes()));
    let answer_dir = mirror_dir.join("repos/flannel-io/flannel/releases/tags");
    std::fs::create_dir_all(&answer_dir).unwrap();
    let answer = serde_json::json!({
        "tag_name": FLANNEL,
        "assets": [
            {"name": "flanneld-arm64", "digest": null},
            {"name": "flanneld-amd64", "digest": format!("sha256:{digest}")},
        ],
    });
    std::fs::write(answer_dir.join(FLANNEL), answer.to_string()).unwrap();
    let tb_local = Testbed {
        root: tb.root.clone(),
        k8s_bin: tb.k8s_bin.clone(),
        mirror: mirror_dir.clone(),
    };

    let ns = Netns::new("cnif").with_address("10.79.1.2/24");
    let mirror = Mirror::serve(&ns, &tb_local);
    let cgroup_root = format!("/kubesup-it-cnif-{}", std::process::id());
    let _cgroups = CgroupRoots(vec![cgroup_root.clone()]);
    let (data, cfg) = master_config(
        &scratch.dir,
        "cnif",
        "10.79.1.2",
        &mirror.url,
        &format!("network: flannel\nschedulable: true\nkubelet: {{cgroup-root: {cgroup_root}}}\n"),
    );
    let t0 = Instant::now();
    let ks = Kubesup::start(&ns, &data, &["master", "--config", &cfg.to_string_lossy()]);
    ks.wait_ready(Duration::from_secs(240));

    // One dir: flannel's plugin fetched and verified, Debian's linked beside it.
    let cni = data.join("bin/v1.20.2/cni");
    let flannel = cni.join("flannel");
    let target = std::fs::read_link(&flannel).unwrap();
    assert!(
        target.starts_with(data.join("cache/sha256")),
        "cni/flannel -> {target:?}"
    );
    let meta = std::fs::metadata(&flannel).unwrap();
    assert!(meta.permissions().mode() & 0o111 != 0);
    for p in ["bridge", "host-local", "loopback", "portmap"] {
        assert_eq!(
            std::fs::read_link(cni.join(p)).unwrap(),
            Path::new("/usr/lib/cni").join(p),
            "{p}"
        );
    }
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("bin/v1.20.2/fetched.json")).unwrap())
            .unwrap();
    let fc = &record["sources"]["flannel-cni"];
    assert_eq!(fc["verified"], true, "{record}");
    assert!(
        fc["rel"].as_str().unwrap().ends_with(&format!(
            "{FLANNEL_CNI}/cni-plugin-flannel-linux-amd64-{FLANNEL_CNI}.tgz"
        )),
        "{fc}"
    );
    assert_eq!(record["sources"]["flanneld"]["verified"], true, "{record}");
    assert_eq!(record["sources"]["flanneld"]["sha256"], digest.as_str());
    // containerd runs its plugins from there.
    let toml = std::fs::read_to_string(data.join("containerd/config.toml")).unwrap();
    assert!(
        toml.contains(&format!("bin_dir = \"{}\"", cni.display())),
        "{toml}"
    );

    // The node goes Ready on flannel's CNI config.
    let kc = data.join("kubeconfig/admin.conf");
    let ready = wait_for(Duration::from_secs(180), || {
        node_ready(&tb, &ns, &kc, "it-cnif").then(|| t0.elapsed())
    });
    assert!(
        ready.is_some(),
        "node never went Ready\n{}",
        ks.log_tail(60)
    );
    eprintln!("node Ready {:?} after kubesup started", ready.unwrap());
    let conf = std::fs::read_to_string(data.join("cni/net.d/10-kubesup.conflist")).unwrap();
    assert!(conf.contains("\"type\":\"flannel\""), "{conf}");
    drop(ks);
}
