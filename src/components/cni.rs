//! CNI network configs for containerd's CRI plugin, and the plugins each config makes
//! containerd run ([`plugins_named`]), read from the config itself so that the two cannot drift.

use std::path::Path;

use ipnet::IpNet;
use serde_json::{Value, json};

/// The plugin containerd's CRI runs for every pod's loopback interface, from the same bin dir
/// as the pod network's plugins (go-cni's `WithLoNetwork`): named by no config file, needed all
/// the same.
pub const LOOPBACK: &str = "loopback";

/// A bridge with host-local IPAM on the node's pod subnet. `ipam_dir` is per node: the CNI
/// default (/var/lib/cni/networks) would be shared by every node on one machine.
pub fn bridge_conflist(subnet: IpNet, ipam_dir: &Path, bridge: &str) -> String {
    let gateway = subnet.hosts().next().map(|ip| ip.to_string());
    json!({
        "cniVersion": "0.4.0",
        "name": "kubesup",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": ipam_dir.display().to_string(),
                    "ranges": [[{"subnet": subnet.to_string(), "gateway": gateway}]],
                    "routes": [{"dst": if subnet.max_prefix_len() == 32 { "0.0.0.0/0" } else { "::/0" }}]
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    })
    .to_string()
}

/// flannel's CNI plugin, reading the subnet flanneld leased from `subnet_file`, delegating to
/// a bridge. Its `ipam` is the base of the delegate's (flannel adds the ranges and routes from
/// the subnet file), which is how host-local gets this node's own `dataDir` here too.
pub fn flannel_conflist(subnet_file: &Path, ipam_dir: &Path) -> String {
    json!({
        "cniVersion": "0.4.0",
        "name": "kubesup",
        "plugins": [
            {
                "type": "flannel",
                "subnetFile": subnet_file.display().to_string(),
                "dataDir": ipam_dir.display().to_string(),
                "ipam": {"type": "host-local", "dataDir": ipam_dir.display().to_string()},
                "delegate": {"hairpinMode": true, "isDefaultGateway": true}
            },
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    })
    .to_string()
}

/// Every plugin binary containerd runs for a pod under `conflist` (the text the functions above
/// return), sorted, no duplicates: each
/// plugin's `type` and its IPAM's, what flannel's plugin delegates to (its `delegate.type`,
/// `bridge` when unset, with the `ipam` type it is given, `host-local` when unset: flannel-io's
/// `doCmdAdd` and `getDelegateIPAM`), and [`LOOPBACK`].
pub fn plugins_named(conflist: &str) -> Vec<String> {
    let conflist: Value = serde_json::from_str(conflist).unwrap_or(Value::Null);
    let mut out = vec![LOOPBACK.to_string()];
    let types = conflist["plugins"].as_array().into_iter().flatten();
    for plugin in types {
        let Some(kind) = plugin["type"].as_str() else {
            continue;
        };
        out.push(kind.to_string());
        let ipam = plugin["ipam"]["type"].as_str();
        if kind == "flannel" {
            let delegate = &plugin["delegate"];
            out.push(delegate["type"].as_str().unwrap_or("bridge").to_string());
            out.push(ipam.unwrap_or("host-local").to_string());
        } else if let Some(ipam) = ipam {
            out.push(ipam.to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flannel_runs_its_delegate_and_ipam_and_every_pod_runs_loopback() {
        let ipam = Path::new("/srv/ks/cni/networks");
        let f = flannel_conflist(Path::new("/srv/ks/subnet.env"), ipam);
        assert_eq!(
            plugins_named(&f),
            ["bridge", "flannel", "host-local", "loopback", "portmap"]
        );
        // host-local keeps this node's own state dir under flannel too.
        let v: Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["plugins"][0]["ipam"]["dataDir"], "/srv/ks/cni/networks");
        let b = bridge_conflist("10.2.1.0/24".parse().unwrap(), ipam, "kubesup0");
        assert_eq!(
            plugins_named(&b),
            ["bridge", "host-local", "loopback", "portmap"]
        );
        // A delegate of another type, with its own IPAM, is what runs.
        let other = json!({"plugins": [{"type": "flannel", "delegate": {"type": "ipvlan"},
            "ipam": {"type": "static"}}]})
        .to_string();
        assert_eq!(
            plugins_named(&other),
            ["flannel", "ipvlan", "loopback", "static"]
        );
    }
}
