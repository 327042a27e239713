//! `kubesup version`.

use crate::model::DEFAULT_KUBE_VERSION;

pub fn run() {
    println!(
        "kubesup {} (default Kubernetes {DEFAULT_KUBE_VERSION})",
        env!("CARGO_PKG_VERSION")
    );
}
