//! The cluster objects kubesup ensures once the API server is ready: the RBAC that lets the
//! API server reach kubelets (logs, exec, metrics), and the DNS add-on (CoreDNS: ServiceAccount,
//! RBAC, ConfigMap, Deployment, and the `kube-dns` Service whose ClusterIP is `--cluster-dns`,
//! the address every kubelet hands to pods).
//!
//! Objects are built as data here and applied with server-side apply, so re-running kubesup
//! converges them instead of failing on "already exists".

use serde_json::{Value, json};

use crate::config::Config;

/// The user the API server's kubelet-client certificate authenticates as.
pub const APISERVER_KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";

/// Everything to apply, in order (namespaces and RBAC before what uses them).
pub fn objects(cfg: &Config) -> Vec<Value> {
    let mut out = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:kube-apiserver-to-kubelet", "labels": labels()},
            "rules": [{
                "apiGroups": [""],
                "resources": ["nodes/proxy", "nodes/stats", "nodes/log", "nodes/spec", "nodes/metrics"],
                "verbs": ["*"]
            }]
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:kube-apiserver", "labels": labels()},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:kube-apiserver-to-kubelet"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": APISERVER_KUBELET_CLIENT_USER}]
        }),
    ];
    if cfg.dns.enabled {
        out.extend(coredns(cfg));
    }
    out
}

fn labels() -> Value {
    json!({"app.kubernetes.io/managed-by": "kubesup"})
}

fn coredns(cfg: &Config) -> Vec<Value> {
    let ns = "kube-system";
    let dns_labels = json!({"k8s-app": "kube-dns", "app.kubernetes.io/managed-by": "kubesup"});
    let corefile = format!(
        ".:53 {{\n    errors\n    health {{\n        lameduck 5s\n    }}\n    ready\n    \
         kubernetes {domain} in-addr.arpa ip6.arpa {{\n        pods insecure\n        \
         fallthrough in-addr.arpa ip6.arpa\n        ttl 30\n    }}\n    prometheus :9153\n    \
         forward . /etc/resolv.conf\n    cache 30\n    loop\n    reload\n    loadbalance\n}}\n",
        domain = cfg.cluster_domain
    );
    vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": ns, "labels": dns_labels}}),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns", "labels": dns_labels},
            "rules": [
                {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}
            ]
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns", "labels": dns_labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": ns}]
        }),
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "coredns", "namespace": ns, "labels": dns_labels},
            "data": {"Corefile": corefile}
        }),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": ns, "labels": dns_labels},
            "spec": {
                "replicas": cfg.dns.replicas,
                "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                "template": {
                    "metadata": {"labels": {"k8s-app": "kube-dns"}},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "priorityClassName": "system-cluster-critical",
                        "dnsPolicy": "Default",
                        "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                                        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
                        "containers": [{
                            "name": "coredns",
                            "image": cfg.dns.image,
                            "args": ["-conf", "/etc/coredns/Corefile"],
                            "ports": [
                                {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                {"name": "metrics", "containerPort": 9153, "protocol": "TCP"}
                            ],
                            "resources": {"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m", "memory": "70Mi"}},
                            "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": true}],
                            "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "initialDelaySeconds": 60},
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}},
                            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                                "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["all"]}}
                        }],
                        "volumes": [{"name": "config-volume", "configMap": {"name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]}}]
                    }
                }
            }
        }),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": ns, "labels": dns_labels,
                         "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
            "spec": {
                "selector": {"k8s-app": "kube-dns"},
                "clusterIP": cfg.cluster_dns.to_string(),
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                    {"name": "metrics", "port": 9153, "protocol": "TCP"}
                ]
            }
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;

    #[test]
    fn dns_service_takes_the_cluster_dns_address_and_image_is_configurable() {
        let mut raw =
            RawConfig::from_yaml("cluster-dns: 10.3.0.53\ndns: {image: my/coredns:1}").unwrap();
        raw.advertise = Some("10.0.0.1".into());
        let cfg = raw.validate().unwrap();
        let objs = objects(&cfg);
        let svc = objs.iter().find(|o| o["kind"] == "Service").unwrap();
        assert_eq!(svc["spec"]["clusterIP"], "10.3.0.53");
        let dep = objs.iter().find(|o| o["kind"] == "Deployment").unwrap();
        assert_eq!(
            dep["spec"]["template"]["spec"]["containers"][0]["image"],
            "my/coredns:1"
        );
        for o in &objs {
            crate::kube::object_path(o).unwrap();
        }
    }
}
