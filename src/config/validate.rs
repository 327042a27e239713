//! Validation: a raw config in, a typed [`Config`] or every problem out.
//!
//! One function per section of the file, each reading only its own raw values and pushing what
//! is wrong into the one [`Problems`] list, so an operator sees every problem in one run rather
//! than fixing them one at a time. A section hands back its typed value when it can build one;
//! [`RawConfig::validate`] reads those values only once the list is empty, so a value next to a
//! problem is never used.
//!
//! Integers arrive wide (`i64`, as YAML has them) and are narrowed with `TryFrom`, never with
//! `as`: a value that does not fit its type is a problem, not a silently wrapped number.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::RangeBounds;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;

use super::{
    BackupSettings, Config, ConfigError, ContainerdSettings, DEFAULT_DATA_DIR, DnsSettings,
    FetchSettings, FlannelSettings, KubeletSettings, LogFormat, PkiSettings, Ports, Problems,
    RawBackup, RawConfig, RawContainerd, RawDns, RawFetch, RawFlannel, RawJoin, RawKubelet, RawPki,
    RawSupervisor, SupervisorSettings,
};
use crate::model::{
    Component, DEFAULT_KUBE_VERSION, FlannelBackend, KeyType, KubeVersion, Network,
};
use crate::paths::Paths;

impl RawConfig {
    /// Checks everything and returns the typed config, or every problem at once.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let mut p = Problems::default();
        // The order of these calls is the order problems are printed in (mostly top-level keys
        // first, then sections). Keep it stable: an operator fixing a config compares one run's
        // list with the next.
        data_dir(&mut p, &self.data_dir);
        let advertise = advertise(&mut p, self.advertise.as_deref());
        let node_name = node_name(&mut p, self.node_name.as_deref());
        let kube_version = kube_version(&mut p, &self.kube_version);
        mirror(&mut p, self.mirror.as_deref());
        let cidrs = cidrs(&mut p, self);
        cluster_domain(&mut p, &self.cluster_domain);
        let ports = ports(&mut p, self);
        let network = network(&mut p, &self.network);
        let flannel = flannel(&mut p, &self.flannel);
        let log_format = log_format(&mut p, &self.log_format);
        let pki = pki(&mut p, &self.pki);
        let fetch = fetch(&mut p, &self.fetch);
        let supervisor = supervisor(&mut p, &self.supervisor);
        let containerd = containerd(&self.containerd);
        let dns = dns(&mut p, &self.dns);
        let extra_args = extra_args(&mut p, &self.extra_args);
        join(&mut p, &self.join);
        let kubelet = kubelet(&mut p, &self.kubelet);
        let backup = backup(&mut p, &self.backup, &self.data_dir);

        if !p.0.is_empty() {
            return Err(ConfigError::Invalid(p));
        }
        // Every `None` below has pushed a problem above, so these cannot fail; the `ok_or` keeps
        // that reasoning local instead of an unwrap.
        let missing = || ConfigError::Invalid(Problems::default());
        let cidrs = cidrs.ok_or_else(missing)?;
        let listen = ports.ok_or_else(missing)?;
        Ok(Config {
            paths: Paths::new(&self.data_dir),
            data_dir: self.data_dir.clone(),
            advertise,
            node_name,
            kube_version: kube_version.ok_or_else(missing)?,
            mirror: self.mirror.clone(),
            pod_cidr: cidrs.pod,
            service_cidr: cidrs.service,
            api_service_ip: cidrs.api_service_ip,
            cluster_dns: cidrs.cluster_dns,
            cluster_domain: self.cluster_domain.clone(),
            api_port: listen.api,
            join_port: listen.join,
            api_lb_port: listen.api_lb,
            api_lb_redirect: self.api_lb_redirect,
            schedulable: self.schedulable,
            network: network.ok_or_else(missing)?,
            flannel: flannel.ok_or_else(missing)?,
            log_format: log_format.ok_or_else(missing)?,
            ports: listen.components,
            pki: pki.ok_or_else(missing)?,
            fetch: fetch.ok_or_else(missing)?,
            supervisor: supervisor.ok_or_else(missing)?,
            containerd,
            kubelet,
            dns: dns.ok_or_else(missing)?,
            backup: backup.ok_or_else(missing)?,
            extra_args: extra_args.ok_or_else(missing)?,
        })
    }
}

/// `data-dir`: absolute, since a relative one would resolve against whatever directory kubesup
/// happened to be started from.
fn data_dir(p: &mut Problems, dir: &Path) {
    if !dir.is_absolute() {
        p.push(
            "data-dir",
            format!("{dir:?} is relative; use an absolute path such as {DEFAULT_DATA_DIR}"),
        );
    }
}

/// `advertise`: an address other nodes can reach, so neither unspecified nor multicast. Not
/// given is fine here; a master asks for it with [`Config::require_advertise`].
fn advertise(p: &mut Problems, given: Option<&str>) -> Option<IpAddr> {
    let s = given?;
    match s.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() || ip.is_multicast() => {
            p.push(
                "advertise",
                format!("{ip} cannot be advertised; give this node's own unicast address"),
            );
            None
        }
        Ok(ip) => Some(ip),
        Err(_) => {
            p.push(
                "advertise",
                format!("{s:?} is not an IP address; give this node's address, e.g. 10.0.0.1"),
            );
            None
        }
    }
}

/// `node-name`, or the lowercased host name: what Kubernetes accepts as a Node's name.
fn node_name(p: &mut Problems, given: Option<&str>) -> String {
    let node_name = match given {
        Some(n) => n.to_owned(),
        None => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default()
            .to_lowercase(),
    };
    if !is_dns_subdomain(&node_name) {
        p.push(
            "node-name",
            format!("{node_name:?} is not a lowercase DNS name (a-z, 0-9, '-', '.'; at most 253 characters); set --node-name"),
        );
    }
    node_name
}

/// `kube-version`: an exact release, since it picks binaries and checksums.
fn kube_version(p: &mut Problems, given: &str) -> Option<KubeVersion> {
    let v = KubeVersion::parse(given);
    if v.is_none() {
        p.push(
            "kube-version",
            format!("{given:?} is not of the form vMAJOR.MINOR.PATCH, e.g. {DEFAULT_KUBE_VERSION}"),
        );
    }
    v
}

/// `mirror`: the URL schemes and the directory form that fetch knows how to read.
fn mirror(p: &mut Problems, given: Option<&str>) {
    if let Some(m) = given
        && !(m.starts_with("http://")
            || m.starts_with("https://")
            || m.starts_with("file:///")
            || m.starts_with('/'))
    {
        p.push(
            "mirror",
            format!("{m:?} must be an http(s):// or file:// URL, or an absolute directory"),
        );
    }
}

/// The cluster's address plan, checked together because its parts constrain each other.
struct Cidrs {
    pod: IpNet,
    service: IpNet,
    api_service_ip: IpAddr,
    cluster_dns: IpAddr,
}

/// `pod-cidr`, `service-cidr`, `api-service-ip` and `cluster-dns`: the two ranges are disjoint,
/// and the API and DNS service addresses sit inside the service range. A check that needs a
/// value that did not parse is skipped: that value already has its problem.
fn cidrs(p: &mut Problems, raw: &RawConfig) -> Option<Cidrs> {
    let pod_cidr = parse_cidr(p, "pod-cidr", &raw.pod_cidr);
    let service_cidr = parse_cidr(p, "service-cidr", &raw.service_cidr);
    let cluster_dns = parse_ip(p, "cluster-dns", &raw.cluster_dns);

    let mut api_service_ip = None;
    if let Some(svc) = service_cidr {
        api_service_ip = service_ip(p, svc, raw.api_service_ip.as_deref());
        if let Some(dns) = cluster_dns {
            dns_ip(p, svc, dns, api_service_ip);
        }
    }
    if let (Some(pod), Some(svc)) = (pod_cidr, service_cidr)
        && (pod.contains(&svc.network()) || svc.contains(&pod.network()))
    {
        p.push(
            "pod-cidr",
            format!("{pod} overlaps service-cidr {svc}; choose disjoint ranges"),
        );
    }
    Some(Cidrs {
        pod: pod_cidr?,
        service: service_cidr?,
        api_service_ip: api_service_ip?,
        cluster_dns: cluster_dns?,
    })
}

/// The `kubernetes` Service's address: always the first of `svc` (kube-apiserver decides, not
/// us), so a given `api-service-ip` may only repeat it.
fn service_ip(p: &mut Problems, svc: IpNet, given: Option<&str>) -> Option<IpAddr> {
    let Some(first) = first_host(svc) else {
        p.push(
            "service-cidr",
            format!(
                "{svc} is too small; use at most a /28 (IPv4) so it holds the API and DNS addresses"
            ),
        );
        return None;
    };
    if let Some(given) = given {
        match given.parse::<IpAddr>() {
            Ok(ip) if ip == first => {}
            Ok(ip) => p.push(
                "api-service-ip",
                format!("{ip} is not the first address of service-cidr {svc}; kube-apiserver always takes {first}: remove the setting or set it to {first}"),
            ),
            Err(_) => p.push(
                "api-service-ip",
                format!("{given:?} is not an IP address; remove it (it is derived from service-cidr)"),
            ),
        }
    }
    Some(first)
}

/// `cluster-dns`: a host address of `svc` that the API service does not already hold.
fn dns_ip(p: &mut Problems, svc: IpNet, dns: IpAddr, api_service_ip: Option<IpAddr>) {
    if !svc.contains(&dns) {
        p.push(
            "cluster-dns",
            format!(
                "{dns} is outside service-cidr {svc}; pick an address inside it, e.g. the 10th"
            ),
        );
    } else if Some(dns) == api_service_ip {
        p.push(
            "cluster-dns",
            format!(
                "{dns} is the API service address (first of {svc}); pick another, e.g. the 10th"
            ),
        );
    } else if dns == svc.network() || dns == svc.broadcast() {
        p.push(
            "cluster-dns",
            format!("{dns} is the network or broadcast address of {svc}; pick a host address"),
        );
    }
}

/// `cluster-domain`: a DNS domain, since CoreDNS serves it and kubelet writes it into pods'
/// resolv.conf.
fn cluster_domain(p: &mut Problems, domain: &str) {
    if !is_dns_subdomain(domain) {
        p.push(
            "cluster-domain",
            format!("{domain:?} is not a DNS domain; use e.g. cluster.local"),
        );
    }
}

/// Every port a node listens on: the three top-level ones and the `ports` section.
struct ListenPorts {
    api: u16,
    join: u16,
    api_lb: u16,
    components: Ports,
}

/// `api-port`, `join-port`, `api-lb-port` and `ports.*`: each a port (1-65535) and no two the same, since two
/// components on one port fail at runtime with an error far from its cause. Checked as one list
/// so that every port is compared with every other.
fn ports(p: &mut Problems, raw: &RawConfig) -> Option<ListenPorts> {
    let r = &raw.ports;
    // The order of this list is the order of the destructuring below; the array's length makes
    // the compiler hold the two to the same count.
    let named: [(&str, i64); 14] = [
        ("api-port", raw.api_port),
        ("join-port", raw.join_port),
        ("api-lb-port", raw.api_lb_port),
        ("ports.etcd-client", r.etcd_client),
        ("ports.etcd-peer", r.etcd_peer),
        ("ports.etcd-metrics", r.etcd_metrics),
        ("ports.kubelet", r.kubelet),
        ("ports.kubelet-healthz", r.kubelet_healthz),
        ("ports.kube-proxy-healthz", r.kube_proxy_healthz),
        ("ports.kube-proxy-metrics", r.kube_proxy_metrics),
        ("ports.controller-manager", r.controller_manager),
        ("ports.scheduler", r.scheduler),
        (
            "ports.controller-manager-insecure",
            r.controller_manager_insecure,
        ),
        ("ports.scheduler-insecure", r.scheduler_insecure),
    ];
    let before = p.0.len();
    let mut typed = [0u16; 14];
    let mut seen: BTreeMap<u16, &str> = BTreeMap::new();
    for ((name, value), slot) in named.into_iter().zip(&mut typed) {
        match u16::try_from(value) {
            Ok(port) if port != 0 => {
                // `insert` keeps the latest name, so a port used three times names the second
                // use at the third, as a reader going down the file would.
                if let Some(other) = seen.insert(port, name) {
                    p.push(
                        name,
                        format!("{port} is already used by {other}; every port must be distinct"),
                    );
                }
                *slot = port;
            }
            _ => p.push(name, format!("{value} is not a port; use 1-65535")),
        }
    }
    if p.0.len() != before {
        return None;
    }
    let [
        api,
        join,
        api_lb,
        etcd_client,
        etcd_peer,
        etcd_metrics,
        kubelet,
        kubelet_healthz,
        kube_proxy_healthz,
        kube_proxy_metrics,
        controller_manager,
        scheduler,
        controller_manager_insecure,
        scheduler_insecure,
    ] = typed;
    Some(ListenPorts {
        api,
        join,
        api_lb,
        components: Ports {
            etcd_client,
            etcd_peer,
            etcd_metrics,
            kubelet,
            kubelet_healthz,
            kube_proxy_healthz,
            kube_proxy_metrics,
            controller_manager,
            scheduler,
            controller_manager_insecure,
            scheduler_insecure,
        },
    })
}

/// `network`: the pod networks kubesup can install.
fn network(p: &mut Problems, given: &str) -> Option<Network> {
    match given {
        "flannel" => Some(Network::Flannel),
        "none" => Some(Network::None),
        other => {
            p.push(
                "network",
                format!("{other:?} is unknown; use flannel or none"),
            );
            None
        }
    }
}

/// The `flannel` section. Checked whatever `network` says, so that a typo is found before the
/// day someone switches to flannel.
fn flannel(p: &mut Problems, raw: &RawFlannel) -> Option<FlannelSettings> {
    let backend = FlannelBackend::from_name(&raw.backend);
    if backend.is_none() {
        let names: Vec<_> = FlannelBackend::ALL.iter().map(|b| b.name()).collect();
        p.push(
            "flannel.backend",
            format!("{:?} is unknown; use {}", raw.backend, names.join(" or ")),
        );
    }
    Some(FlannelSettings { backend: backend? })
}

/// `log-format`: how kubesup writes its own log lines.
fn log_format(p: &mut Problems, given: &str) -> Option<LogFormat> {
    match given {
        "text" => Some(LogFormat::Text),
        "json" => Some(LogFormat::Json),
        other => {
            p.push(
                "log-format",
                format!("{other:?} is unknown; use text or json"),
            );
            None
        }
    }
}

/// The `pki` section: a key type rcgen makes, validities long enough for renewal to work and a
/// leaf that does not outlive its CA, and SANs a certificate can carry.
fn pki(p: &mut Problems, raw: &RawPki) -> Option<PkiSettings> {
    let key_type = match raw.key_type.as_str() {
        "ecdsa-p256" => Some(KeyType::EcdsaP256),
        "rsa-2048" => Some(KeyType::Rsa2048),
        other => {
            p.push(
                "pki.key-type",
                format!("{other:?} is unknown; use ecdsa-p256 or rsa-2048"),
            );
            None
        }
    };
    let ca_validity = parse_duration(p, "pki.ca-validity", &raw.ca_validity);
    let leaf_validity = parse_duration(p, "pki.leaf-validity", &raw.leaf_validity);
    if ca_validity.is_some_and(|v| v < crate::pki::MIN_CA_VALIDITY) {
        p.push(
            "pki.ca-validity",
            "must be at least a day (10years is the default)",
        );
    }
    if leaf_validity.is_some_and(|v| v < crate::pki::MIN_LEAF_VALIDITY) {
        p.push(
            "pki.leaf-validity",
            "must be at least 2m, so components have time to restart onto renewed certificates (1year is the default)",
        );
    }
    if let (Some(ca), Some(leaf)) = (ca_validity, leaf_validity)
        && leaf > ca
    {
        p.push(
            "pki.leaf-validity",
            "is longer than pki.ca-validity; a leaf cannot outlive its CA",
        );
    }
    for san in &raw.extra_sans {
        if san.parse::<IpAddr>().is_err() && !is_dns_subdomain(&san.to_lowercase()) {
            p.push(
                "pki.extra-sans",
                format!("{san:?} is neither an IP address nor a DNS name"),
            );
        }
    }
    Some(PkiSettings {
        key_type: key_type?,
        ca_validity: ca_validity?,
        leaf_validity: leaf_validity?,
        extra_sans: raw.extra_sans.clone(),
    })
}

/// The `fetch` section: pinned checksums that are SHA-256, exact versions, and a bounded number
/// of parallel downloads.
fn fetch(p: &mut Problems, raw: &RawFetch) -> Option<FetchSettings> {
    for (name, sum) in &raw.checksums {
        if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
            p.push(
                format!("fetch.checksums.{name}"),
                "is not a SHA-256 (64 hex digits)",
            );
        }
    }
    for (field, v) in [
        ("fetch.etcd-version", &raw.etcd_version),
        ("fetch.flannel-version", &raw.flannel_version),
    ] {
        if let Some(v) = v
            && KubeVersion::parse(v).is_none()
        {
            p.push(
                field,
                format!("{v:?} is not of the form vMAJOR.MINOR.PATCH"),
            );
        }
    }
    let concurrency = bounded(
        p,
        "fetch.concurrency",
        raw.concurrency,
        1..=64,
        "must be 1-64",
    );
    Some(FetchSettings {
        insecure_skip_verify: raw.insecure_skip_verify,
        checksums: raw.checksums.clone(),
        etcd_version: raw.etcd_version.clone(),
        flannel_version: raw.flannel_version.clone(),
        concurrency: concurrency?,
    })
}

/// The `supervisor` section: restart timing, liveness, and log rotation.
fn supervisor(p: &mut Problems, raw: &RawSupervisor) -> Option<SupervisorSettings> {
    let backoff_max = parse_duration(p, "supervisor.backoff-max", &raw.backoff_max);
    let stable_after = parse_duration(p, "supervisor.stable-after", &raw.stable_after);
    let grace_period = parse_duration(p, "supervisor.grace-period", &raw.grace_period);
    let liveness_failures = bounded(
        p,
        "supervisor.liveness-failures",
        raw.liveness_failures,
        1..=100,
        "must be 1-100",
    );
    let log_max_bytes = bounded(
        p,
        "supervisor.log-max-bytes",
        raw.log_max_bytes,
        4096..,
        "must be at least 4096",
    );
    let log_keep = bounded(
        p,
        "supervisor.log-keep",
        raw.log_keep,
        0..=100,
        "must be 0-100",
    );
    Some(SupervisorSettings {
        backoff_max: backoff_max?,
        stable_after: stable_after?,
        grace_period: grace_period?,
        liveness_failures: liveness_failures?,
        log_max_bytes: log_max_bytes?,
        log_keep: log_keep?,
    })
}

/// The `containerd` section: taken as given; none of its values has a form to check here.
fn containerd(raw: &RawContainerd) -> ContainerdSettings {
    ContainerdSettings {
        binary: raw.binary.clone(),
        cni_bin_dir: raw.cni_bin_dir.clone(),
        restrict_oom_score_adj: raw.restrict_oom_score_adj,
        sandbox_image: raw.sandbox_image.clone(),
    }
}

/// The `dns` section: a bounded replica count for the CoreDNS Deployment.
fn dns(p: &mut Problems, raw: &RawDns) -> Option<DnsSettings> {
    let replicas = bounded(p, "dns.replicas", raw.replicas, 0..=100, "must be 0-100");
    Some(DnsSettings {
        enabled: raw.enabled,
        image: raw.image.clone(),
        replicas: replicas?,
    })
}

/// `extra-args`: keyed by a component kubesup runs, since flags for a misspelt one would be
/// dropped without a word.
fn extra_args(
    p: &mut Problems,
    raw: &BTreeMap<String, Vec<String>>,
) -> Option<BTreeMap<Component, Vec<String>>> {
    let mut typed = BTreeMap::new();
    let mut known = true;
    for (name, args) in raw {
        match Component::from_name(name) {
            Some(c) => {
                typed.insert(c, args.clone());
            }
            None => {
                known = false;
                let names: Vec<_> = Component::ALL.iter().map(|c| c.name()).collect();
                p.push(
                    format!("extra-args.{name}"),
                    format!("unknown component; use one of {}", names.join(", ")),
                );
            }
        }
    }
    known.then_some(typed)
}

/// The `join` section: a master's join API is only ever spoken to over https, since the token
/// travels in the request. The typed config has no join section: only a worker that has not
/// joined reads it, from the raw config.
fn join(p: &mut Problems, raw: &RawJoin) {
    if let Some(url) = &raw.url {
        let ok = url
            .strip_prefix("https://")
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
        if !ok {
            p.push(
                "join.url",
                format!("{url:?} is not an https:// URL; use e.g. https://10.0.0.1:9443"),
            );
        }
    }
}

/// The `kubelet` section: a cgroup root kubesup can create, one plain name per level and no
/// `.`/`..` that would climb out of the controller's root.
fn kubelet(p: &mut Problems, raw: &RawKubelet) -> KubeletSettings {
    if let Some(root) = &raw.cgroup_root {
        let clean = root.starts_with('/')
            && root.len() > 1
            && root[1..].split('/').all(|s| {
                !s.is_empty()
                    && s != "."
                    && s != ".."
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            });
        if !clean {
            p.push(
                "kubelet.cgroup-root",
                format!("{root:?} is not a cgroup path; use an absolute path like /kubesup"),
            );
        }
    }
    KubeletSettings {
        cgroup_root: raw.cgroup_root.clone(),
    }
}

/// The `backup` section: a period of at least 10 s (or `off`), a count of at least one to
/// keep (keeping none would delete each backup as it is made), and an absolute dir
/// (`<data-dir>/backups` unset).
fn backup(p: &mut Problems, raw: &RawBackup, data_dir: &Path) -> Option<BackupSettings> {
    let schedule = match raw.schedule.trim() {
        "off" | "none" | "0" => Some(None),
        s => match humantime::parse_duration(s) {
            Ok(d) if d < Duration::from_secs(10) => {
                p.push(
                    "backup.schedule",
                    format!("{s} is shorter than 10s; use e.g. 6h, or off"),
                );
                None
            }
            Ok(d) => Some(Some(d)),
            Err(e) => {
                p.push(
                    "backup.schedule",
                    format!("{s:?} is not a duration ({e}); write e.g. 6h, 30m, or off"),
                );
                None
            }
        },
    };
    let keep = bounded(p, "backup.keep", raw.keep, 1..=10_000, "must be 1-10000");
    let dir = match &raw.dir {
        Some(d) if !d.is_absolute() => {
            p.push(
                "backup.dir",
                format!(
                    "{:?} is relative; use an absolute path",
                    d.display().to_string()
                ),
            );
            None
        }
        Some(d) => Some(d.clone()),
        None => Some(Paths::new(data_dir).backup_dir()),
    };
    Some(BackupSettings {
        schedule: schedule?,
        keep: keep?,
        dir: dir?,
    })
}

/// A count from the file in its type and range: `TryFrom` refuses what the type cannot hold
/// (a negative count, say), `range` what the setting does not allow; both read as `message`.
fn bounded<T>(
    p: &mut Problems,
    field: &str,
    value: i64,
    range: impl RangeBounds<T>,
    message: &str,
) -> Option<T>
where
    T: TryFrom<i64> + PartialOrd,
{
    match T::try_from(value) {
        Ok(v) if range.contains(&v) => Some(v),
        _ => {
            p.push(field, message);
            None
        }
    }
}

fn parse_cidr(p: &mut Problems, field: &str, s: &str) -> Option<IpNet> {
    match s.parse::<IpNet>() {
        Ok(net) if net.trunc() != net => {
            p.push(
                field,
                format!(
                    "{s} has host bits set; use the network address {}",
                    net.trunc()
                ),
            );
            None
        }
        Ok(net) => Some(net),
        Err(_) => {
            p.push(
                field,
                format!("{s:?} is not a CIDR; write it as e.g. 10.2.0.0/16"),
            );
            None
        }
    }
}

fn parse_ip(p: &mut Problems, field: &str, s: &str) -> Option<IpAddr> {
    match s.parse() {
        Ok(ip) => Some(ip),
        Err(_) => {
            p.push(field, format!("{s:?} is not an IP address"));
            None
        }
    }
}

fn parse_duration(p: &mut Problems, field: &str, s: &str) -> Option<Duration> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => {
            p.push(field, "must be longer than zero");
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            p.push(
                field,
                format!("{s:?} is not a duration ({e}); write e.g. 30s, 10m, 1year"),
            );
            None
        }
    }
}

/// First usable address of a network: what kube-apiserver gives the `kubernetes` Service.
fn first_host(net: IpNet) -> Option<IpAddr> {
    // The range must hold at least the API address, the DNS address and more; refuse
    // ranges under 16 addresses (IPv4 /28, IPv6 /124).
    if net.max_prefix_len() - net.prefix_len() < 4 {
        return None;
    }
    net.hosts().next()
}

/// RFC 1123 subdomain, as Kubernetes checks node names.
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        let raw = match RawConfig::from_yaml(yaml) {
            Ok(r) => r,
            Err(e) => return vec![format!("parse: {e}")],
        };
        match raw.validate() {
            Ok(_) => vec![],
            Err(ConfigError::Invalid(p)) => p.to_string().lines().map(String::from).collect(),
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn defaults_are_valid() {
        let c = RawConfig::default().validate().unwrap();
        assert_eq!(c.api_service_ip, "10.3.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(c.cluster_dns, "10.3.0.10".parse::<IpAddr>().unwrap());
        assert_eq!(c.api_port, 6443);
        assert_eq!(c.join_port, 9443);
        assert_eq!(c.api_lb_port, crate::apilb::DEFAULT_PORT);
        assert_eq!(c.network, Network::Flannel);
        assert_eq!(c.flannel.backend, FlannelBackend::Vxlan);
        let c = RawConfig::from_yaml("flannel: {backend: host-gw}")
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(c.flannel.backend, FlannelBackend::HostGw);
    }

    #[test]
    fn backups_default_to_six_hours_fourteen_kept_in_the_data_dir() {
        let c = RawConfig::default().validate().unwrap();
        assert_eq!(c.backup.schedule, Some(Duration::from_secs(6 * 3600)));
        assert_eq!(c.backup.keep, 14);
        assert_eq!(c.backup.dir, Path::new(DEFAULT_DATA_DIR).join("backups"));
        let c = RawConfig::from_yaml("backup: {schedule: \"off\", dir: /srv/b}")
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(c.backup.schedule, None);
        assert_eq!(c.backup.dir, Path::new("/srv/b"));
    }

    /// The table of bad configs: each must be refused with a message naming the field and the
    /// fix. This is the documentation of what `validate` checks.
    #[test]
    fn bad_configs_are_refused_with_a_named_field() {
        let table: &[(&str, &str)] = &[
            (
                "backup: {schedule: 2s}",
                "backup.schedule: 2s is shorter than 10s",
            ),
            (
                "backup: {schedule: often}",
                "backup.schedule: \"often\" is not a duration",
            ),
            ("backup: {keep: 0}", "backup.keep: must be 1-10000"),
            (
                "backup: {dir: backups}",
                "backup.dir: \"backups\" is relative",
            ),
            (
                "join: {url: http://10.0.0.1:9443}",
                "join.url: \"http://10.0.0.1:9443\" is not an https:// URL",
            ),
            (
                "kubelet: {cgroup-root: kubesup}",
                "kubelet.cgroup-root: \"kubesup\" is not a cgroup path",
            ),
            (
                "kubelet: {cgroup-root: /a/../b}",
                "kubelet.cgroup-root: \"/a/../b\" is not a cgroup path",
            ),
            (
                "service-cidr: 10.3.0.0/30",
                "service-cidr: 10.3.0.0/30 is too small",
            ),
            (
                "service-cidr: 10.3.0.5/24",
                "has host bits set; use the network address 10.3.0.0/24",
            ),
            (
                "service-cidr: banana",
                "service-cidr: \"banana\" is not a CIDR",
            ),
            (
                "pod-cidr: 10.0.0.0/8",
                "pod-cidr: 10.0.0.0/8 overlaps service-cidr 10.3.0.0/24",
            ),
            (
                "cluster-dns: 10.9.0.10",
                "cluster-dns: 10.9.0.10 is outside service-cidr",
            ),
            (
                "cluster-dns: 10.3.0.1",
                "cluster-dns: 10.3.0.1 is the API service address",
            ),
            (
                "cluster-dns: ten",
                "cluster-dns: \"ten\" is not an IP address",
            ),
            (
                "api-service-ip: 10.3.0.2",
                "api-service-ip: 10.3.0.2 is not the first address",
            ),
            (
                "advertise: 10.0.0.300",
                "advertise: \"10.0.0.300\" is not an IP address",
            ),
            (
                "advertise: 0.0.0.0",
                "advertise: 0.0.0.0 cannot be advertised",
            ),
            ("api-port: 0", "api-port: 0 is not a port; use 1-65535"),
            ("join-port: 70000", "join-port: 70000 is not a port"),
            ("api-lb-port: 65536", "api-lb-port: 65536 is not a port"),
            (
                "api-lb-port: 6443",
                "api-lb-port: 6443 is already used by api-port",
            ),
            (
                "join-port: 6443",
                "join-port: 6443 is already used by api-port",
            ),
            (
                "ports: {kubelet: 2379}",
                "ports.kubelet: 2379 is already used by ports.etcd-client",
            ),
            (
                "kube-version: 1.20.2",
                "kube-version: \"1.20.2\" is not of the form vMAJOR.MINOR.PATCH",
            ),
            (
                "kube-version: v1.20",
                "kube-version: \"v1.20\" is not of the form",
            ),
            (
                "data-dir: var/lib/kubesup",
                "data-dir: \"var/lib/kubesup\" is relative",
            ),
            (
                "network: calico",
                "network: \"calico\" is unknown; use flannel or none",
            ),
            (
                "flannel: {backend: udp}",
                "flannel.backend: \"udp\" is unknown; use vxlan or host-gw",
            ),
            ("log-format: xml", "log-format: \"xml\" is unknown"),
            ("pki: {key-type: dsa}", "pki.key-type: \"dsa\" is unknown"),
            (
                "pki: {leaf-validity: 20years}",
                "pki.leaf-validity: is longer than pki.ca-validity",
            ),
            (
                "pki: {ca-validity: forever}",
                "pki.ca-validity: \"forever\" is not a duration",
            ),
            (
                "pki: {leaf-validity: 30s}",
                "pki.leaf-validity: must be at least 2m",
            ),
            (
                "node-name: Node_1",
                "node-name: \"Node_1\" is not a lowercase DNS name",
            ),
            (
                "cluster-domain: \"-bad\"",
                "cluster-domain: \"-bad\" is not a DNS domain",
            ),
            (
                "mirror: ftp://x",
                "mirror: \"ftp://x\" must be an http(s)://",
            ),
            (
                "fetch: {checksums: {kubelet: abc}}",
                "fetch.checksums.kubelet: is not a SHA-256",
            ),
            (
                "extra-args: {kubelett: [--v=2]}",
                "extra-args.kubelett: unknown component",
            ),
            (
                "supervisor: {grace-period: 0s}",
                "supervisor.grace-period: must be longer than zero",
            ),
            ("bogus-key: 1", "unknown field `bogus-key`"),
            ("ports: {etcd-clinet: 1}", "unknown field `etcd-clinet`"),
        ];
        for (yaml, expected) in table {
            let got = problems(yaml);
            assert!(
                got.iter().any(|l| l.contains(expected)),
                "config {yaml:?}: expected a line containing {expected:?}, got {got:#?}"
            );
        }
        assert!(table.len() >= 15);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let got = problems("api-port: 0\nservice-cidr: nope\nkube-version: x\ndata-dir: rel\n");
        assert_eq!(got.len(), 4, "{got:#?}");
        assert!(got.iter().all(|l| l.starts_with("invalid config: ")));
    }

    /// Problems print in the order `validate` calls its sections in, whatever order the file
    /// wrote the keys in.
    #[test]
    fn problems_come_in_a_fixed_order() {
        let got = problems("api-port: 0\nservice-cidr: nope\nkube-version: x\ndata-dir: rel\n");
        let fields: Vec<&str> = got
            .iter()
            .map(|l| l.trim_start_matches("invalid config: "))
            .map(|l| l.split(':').next().unwrap())
            .collect();
        assert_eq!(
            fields,
            ["data-dir", "kube-version", "service-cidr", "api-port"]
        );
    }

    /// Wide integers that do not fit their type are refused, not wrapped: a negative count is
    /// not a huge one, and a port past 65535 is not a small one.
    #[test]
    fn integers_that_do_not_fit_are_refused() {
        let table: &[(&str, &str)] = &[
            ("api-port: -1", "api-port: -1 is not a port; use 1-65535"),
            (
                "ports: {kubelet: 65536}",
                "ports.kubelet: 65536 is not a port",
            ),
            (
                "fetch: {concurrency: -1}",
                "fetch.concurrency: must be 1-64",
            ),
            (
                "supervisor: {log-max-bytes: -4096}",
                "supervisor.log-max-bytes: must be at least 4096",
            ),
            (
                "supervisor: {liveness-failures: 4294967297}",
                "supervisor.liveness-failures: must be 1-100",
            ),
            (
                "supervisor: {log-keep: -1}",
                "supervisor.log-keep: must be 0-100",
            ),
            ("dns: {replicas: -1}", "dns.replicas: must be 0-100"),
        ];
        for (yaml, expected) in table {
            let got = problems(yaml);
            assert!(
                got.iter().any(|l| l.contains(expected)),
                "config {yaml:?}: expected a line containing {expected:?}, got {got:#?}"
            );
        }
        let c = RawConfig::from_yaml("ports: {kubelet: 65535}\ndns: {replicas: 0}")
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!((c.ports.kubelet, c.dns.replicas), (65535, 0));
    }

    /// A port used three times is reported twice, each naming the use before it.
    #[test]
    fn a_shared_port_names_the_previous_use() {
        let got = problems("ports: {etcd-peer: 2379, etcd-metrics: 2379}");
        assert_eq!(
            got,
            [
                "invalid config: ports.etcd-peer: 2379 is already used by ports.etcd-client; every port must be distinct",
                "invalid config: ports.etcd-metrics: 2379 is already used by ports.etcd-peer; every port must be distinct",
            ]
        );
    }

    /// `KubeVersion` is the model's, but `kube-version` and the fetch versions are read through
    /// it here, so what it accepts is what this room accepts.
    #[test]
    fn versions_compare() {
        let v = KubeVersion::parse("v1.20.2").unwrap();
        assert!(v.at_least(1, 20) && !v.at_least(1, 24));
        assert_eq!(v.to_string(), "v1.20.2");
        assert!(KubeVersion::parse("v1.20.2-rc.1").is_none());
    }
}
