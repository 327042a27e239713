use std::net::IpAddr;

use super::*;
use crate::config::RawConfig;
use crate::model::DEFAULT_KUBE_VERSION;

fn cfg(extra: &str, version: &str) -> Config {
    let mut raw = RawConfig::from_yaml(extra).unwrap();
    raw.kube_version = version.into();
    raw.data_dir = "/srv/ks".into();
    raw.node_name = Some("node1".into());
    raw.validate().unwrap()
}

fn plans(cfg: &Config, role: NodeRole) -> Vec<Plan> {
    let bins = Binaries(
        Component::ALL
            .into_iter()
            .map(|c| {
                (
                    c,
                    BinaryRef {
                        path: format!("/bin/{c}").into(),
                        argv_prefix: vec![],
                    },
                )
            })
            .collect(),
    );
    let adv: IpAddr = "10.0.0.1".parse().unwrap();
    let ctx = NodeContext {
        cfg,
        role,
        advertise: adv,
        api_servers: vec!["https://10.0.0.1:6443".into()],
        etcd_servers: vec!["https://10.0.0.1:2379".into()],
        etcd_version: "v3.4.23".into(),
        flannel_version: "v0.13.0".into(),
        etcd_cluster: EtcdCluster::default(),
    };
    plan(&ctx, &bins).unwrap()
}

fn args(p: &Plan) -> Vec<String> {
    p.spec
        .exec
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

fn flag_names(p: &Plan) -> Vec<String> {
    args(p)
        .iter()
        .filter_map(|a| a.strip_prefix("--"))
        .map(|a| a.split('=').next().unwrap_or(a).to_string())
        .collect()
}

fn get(plans: &[Plan], c: Component) -> &Plan {
    plans.iter().find(|p| p.component == c).unwrap()
}

const EVERYTHING: NodeRole = NodeRole::Master { schedulable: true };

#[test]
fn no_removed_flag_is_emitted_for_v1_20_or_the_default_version() {
    for version in ["v1.20.2", DEFAULT_KUBE_VERSION] {
        let c = cfg("", version);
        let v = KubeVersion::parse(version).unwrap();
        for p in plans(&c, EVERYTHING) {
            for f in flag_names(&p) {
                assert!(
                    flags::has(p.component, &f, &v),
                    "{version}: {} is given --{f}, which {version} removed",
                    p.component
                );
            }
        }
    }
}

#[test]
fn v1_20_gets_what_it_requires() {
    let c = cfg("", "v1.20.2");
    let ps = plans(&c, EVERYTHING);
    let api = args(get(&ps, Component::KubeApiserver));
    for needed in [
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--service-account-signing-key-file=/srv/ks/pki/sa.key",
        "--service-account-key-file=/srv/ks/pki/sa.pub",
        "--insecure-port=0",
        "--authorization-mode=Node,RBAC",
    ] {
        assert!(
            api.contains(&needed.to_string()),
            "apiserver lacks {needed}"
        );
    }
    let cm = args(get(&ps, Component::KubeControllerManager));
    assert!(
        cm.contains(&"--port=10252".to_string()) && cm.contains(&"--address=127.0.0.1".to_string())
    );
    let sched = &get(&ps, Component::KubeScheduler).files[0].contents;
    assert!(
        sched.contains("kubescheduler.config.k8s.io/v1beta1"),
        "{sched}"
    );
    assert!(
        sched.contains("healthzBindAddress: 127.0.0.1:10251"),
        "{sched}"
    );
    let kubelet = args(get(&ps, Component::Kubelet));
    assert!(kubelet.contains(&"--container-runtime=remote".to_string()));
    assert!(kubelet.contains(
        &"--container-runtime-endpoint=unix:///srv/ks/containerd/containerd.sock".to_string()
    ));
}

#[test]
fn the_default_version_uses_config_files_not_removed_flags() {
    let c = cfg("", DEFAULT_KUBE_VERSION);
    let ps = plans(&c, EVERYTHING);
    let kubelet = get(&ps, Component::Kubelet);
    assert!(
        kubelet.files[0]
            .contents
            .contains("containerRuntimeEndpoint: unix:///srv/ks/containerd/containerd.sock")
    );
    assert!(
        !args(kubelet)
            .iter()
            .any(|a| a.starts_with("--container-runtime"))
    );
    let sched = &get(&ps, Component::KubeScheduler).files[0].contents;
    assert!(
        sched.contains("kubescheduler.config.k8s.io/v1\n"),
        "{sched}"
    );
    assert!(!sched.contains("healthzBindAddress"));
}

#[test]
fn only_what_other_nodes_reach_listens_beyond_loopback() {
    let c = cfg("", "v1.20.2");
    for p in plans(&c, EVERYTHING) {
        for a in args(&p) {
            let listens = ["--bind-address=", "--address=", "--listen-metrics-urls="];
            if listens.iter().any(|l| a.starts_with(l)) {
                let ok = a.contains("127.0.0.1")
                    || (p.component == Component::KubeApiserver && a == "--bind-address=0.0.0.0");
                assert!(ok, "{} listens beyond loopback: {a}", p.component);
            }
        }
        for f in &p.files {
            for line in f.contents.lines().filter(|l| l.contains("BindAddress")) {
                assert!(line.contains("127.0.0.1"), "{}: {line}", p.component);
            }
        }
    }
}

#[test]
fn dependency_graph() {
    let c = cfg("", "v1.20.2");
    let ps = plans(&c, EVERYTHING);
    let deps = |comp| get(&ps, comp).spec.depends_on.clone();
    assert!(deps(Component::Etcd).is_empty());
    assert_eq!(deps(Component::KubeApiserver), ["etcd"]);
    assert_eq!(deps(Component::KubeControllerManager), ["kube-apiserver"]);
    assert_eq!(deps(Component::KubeScheduler), ["kube-apiserver"]);
    // The CNI config points at flanneld's subnet file: kubelet waits for it.
    assert_eq!(
        deps(Component::Kubelet),
        ["containerd", "flanneld", "kube-apiserver"]
    );
    let w = plans(&c, NodeRole::Worker);
    assert_eq!(
        get(&w, Component::Kubelet).spec.depends_on,
        ["containerd", "flanneld"]
    );
    let plain = cfg("network: none", "v1.20.2");
    let w_plain = plans(&plain, NodeRole::Worker);
    assert_eq!(
        get(&w_plain, Component::Kubelet).spec.depends_on,
        ["containerd"]
    );
    assert!(get(&w, Component::KubeProxy).spec.depends_on.is_empty());
    assert!(w.iter().all(|p| p.component != Component::Etcd));
    let names: Vec<_> = plans(&c, NodeRole::Master { schedulable: false })
        .iter()
        .map(|p| p.component)
        .collect();
    assert_eq!(
        names,
        [
            Component::Etcd,
            Component::KubeApiserver,
            Component::KubeControllerManager,
            Component::KubeScheduler
        ]
    );
}

#[test]
fn extra_args_come_last_and_custom_ports_move_everything() {
    let c = cfg(
        "api-port: 7443\nports: {etcd-client: 12379, scheduler-insecure: 20251, kubelet-healthz: 20248}\nextra-args: {kube-apiserver: [--v=4]}",
        "v1.20.2",
    );
    let ps = plans(&c, EVERYTHING);
    let api = args(get(&ps, Component::KubeApiserver));
    assert_eq!(api.last().map(String::as_str), Some("--v=4"));
    assert!(api.contains(&"--secure-port=7443".to_string()));
    assert!(api.contains(&"--etcd-servers=https://127.0.0.1:12379".to_string()));
    assert!(
        get(&ps, Component::KubeScheduler).files[0]
            .contents
            .contains("127.0.0.1:20251")
    );
    let probe = format!("{:?}", get(&ps, Component::Kubelet).spec.probe);
    assert!(probe.contains("127.0.0.1:20248"), "{probe}");
}

#[test]
fn etcd_serves_v2_only_for_an_old_flannel() {
    assert!(flannel_uses_etcd_v2("v0.13.0"));
    assert!(!flannel_uses_etcd_v2("v0.27.0"));
    let c = cfg("", "v1.20.2");
    assert!(
        args(get(&plans(&c, EVERYTHING), Component::Etcd))
            .contains(&"--enable-v2=true".to_string())
    );
}

#[test]
fn cni_bridge_config_uses_the_node_subnet_and_its_own_ipam_dir() {
    let conf = cni::bridge_conflist(
        "10.2.1.0/24".parse().unwrap(),
        Path::new("/srv/ks/cni/networks"),
        "kubesup0",
    );
    let v: serde_json::Value = serde_json::from_str(&conf).unwrap();
    let ipam = &v["plugins"][0]["ipam"];
    assert_eq!(ipam["ranges"][0][0]["subnet"], "10.2.1.0/24");
    assert_eq!(ipam["ranges"][0][0]["gateway"], "10.2.1.1");
    assert_eq!(ipam["dataDir"], "/srv/ks/cni/networks");
}

#[test]
fn kubelet_cgroup_root_is_set_only_when_configured() {
    let kubelet_config = |c: &Config| {
        let ps = plans(c, NodeRole::Worker);
        get(&ps, Component::Kubelet)
            .files
            .iter()
            .find(|f| f.path.ends_with("config.yaml"))
            .unwrap()
            .contents
            .clone()
    };
    assert!(!kubelet_config(&cfg("", "v1.20.2")).contains("cgroupRoot"));
    let c = cfg("kubelet: {cgroup-root: /kubesup/w1}", "v1.20.2");
    assert!(kubelet_config(&c).contains("cgroupRoot: /kubesup/w1"));
}
