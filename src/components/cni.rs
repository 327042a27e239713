//! CNI network configs for containerd's CRI plugin.

use std::path::Path;

use ipnet::IpNet;
use serde_json::json;

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
/// a bridge.
pub fn flannel_conflist(subnet_file: &Path, ipam_dir: &Path) -> String {
    json!({
        "cniVersion": "0.4.0",
        "name": "kubesup",
        "plugins": [
            {
                "type": "flannel",
                "subnetFile": subnet_file.display().to_string(),
                "dataDir": ipam_dir.display().to_string(),
                "delegate": {"hairpinMode": true, "isDefaultGateway": true}
            },
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    })
    .to_string()
}
