//! The `vxlan` preflight check: can this kernel make the device flanneld's vxlan backend needs
//! (`flannel.1`)? Tried for real, not guessed: the module may be built in (no
//! `/proc/modules` entry), loadable on demand, blacklisted, or missing from a trimmed kernel,
//! and only creating a device tells these apart.
//!
//! Where: in a throwaway network namespace, so the node's own namespace never sees the test
//! device. A dedicated thread calls `unshare(CLONE_NEWNET)` (unshare(2)): a network namespace
//! belongs to a thread, so only that thread moves, and the rest of kubesup stays where it was.
//! The thread opens its netlink socket there (a socket belongs to the namespace it was created
//! in), creates a vxlan link, deletes it, and exits. With its thread and socket gone nothing
//! refers to the namespace, and the kernel destroys it with any device left in it, so even a
//! failed delete leaves nothing behind.
//!
//! Why netlink and not iproute2's `ip link add ... type vxlan`: `ip` may not be installed (kubesup
//! needs nothing else from iproute2), and a child process here would need its own wait beside
//! the supervisor's reaper. The `rtnetlink` crate speaks the same RTM_NEWLINK/RTM_DELLINK
//! messages `ip` sends, in-process.
//!
//! Must not: touch the node's network namespace, or run longer than [`TIMEOUT`].

use std::time::Duration;

use rtnetlink::{LinkUnspec, LinkVxlan};
use tracing::debug;

/// The test device's name. Any name is free in a namespace made for the test; this one says
/// whose it is if it is ever seen.
const NAME: &str = "kubesup-vxtest";

/// flannel's own VNI (flannel.1 is VNI 1).
const VNI: u32 = 1;

/// Netlink to the local kernel answers at once; this only bounds a wedged kernel.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Why no vxlan device could be made. Each variant names the step; the cause is its source.
#[derive(Debug, thiserror::Error)]
pub enum VxlanError {
    #[error("cannot create a throwaway network namespace to try a vxlan device in")]
    Namespace(#[source] nix::Error),
    #[error("cannot start the check's thread")]
    Thread(#[source] std::io::Error),
    #[error("the vxlan check's thread panicked")]
    Panicked,
    #[error("cannot open a netlink socket")]
    Netlink(#[source] std::io::Error),
    #[error("the kernel cannot make a vxlan device")]
    Create(#[source] std::io::Error),
    #[error("the kernel did not answer within {0:?}")]
    Timeout(Duration),
}

impl VxlanError {
    /// What the operator can do about it.
    pub fn fix(&self) -> &'static str {
        match self {
            Self::Create(_) => {
                "flanneld's vxlan backend needs one: load the module with `modprobe vxlan`, or \
                 set flannel.backend: host-gw"
            }
            Self::Namespace(_) => {
                "kubesup needs CAP_SYS_ADMIN to try one; run it as root, or set \
                 flannel.backend: host-gw"
            }
            Self::Thread(_) | Self::Panicked | Self::Netlink(_) | Self::Timeout(_) => {
                "flanneld's vxlan backend needs one; or set flannel.backend: host-gw"
            }
        }
    }
}

/// Creates a vxlan link in a throwaway network namespace and deletes it.
pub fn check() -> Result<(), VxlanError> {
    try_link(VNI)
}

/// [`check`] with a chosen VNI: the tests give one the kernel refuses (2^24 and up), to see
/// the failure the way an operator would.
fn try_link(vni: u32) -> Result<(), VxlanError> {
    std::thread::Builder::new()
        .name("vxlan-check".into())
        .spawn(move || in_new_netns(vni))
        .map_err(VxlanError::Thread)?
        .join()
        .map_err(|_| VxlanError::Panicked)?
}

/// Runs on a thread of its own, which it moves into a new network namespace: never call it on
/// a thread that does anything afterwards.
fn in_new_netns(vni: u32) -> Result<(), VxlanError> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(VxlanError::Namespace)?;
    // A runtime of this thread's own: the netlink connection must live on this thread, in
    // this namespace, not on kubesup's runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(VxlanError::Netlink)?;
    rt.block_on(async {
        tokio::time::timeout(TIMEOUT, add_and_delete(vni))
            .await
            .map_err(|_| VxlanError::Timeout(TIMEOUT))?
    })
}

async fn add_and_delete(vni: u32) -> Result<(), VxlanError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(VxlanError::Netlink)?;
    let connection = tokio::spawn(connection);
    let added = handle
        .link()
        .add(LinkVxlan::new(NAME, vni).build())
        .execute()
        .await
        .map_err(|e| VxlanError::Create(netlink_io(e)));
    if added.is_ok() {
        // The namespace dies with this thread and takes the device along; deleting it anyway
        // keeps the check what it says (made, then removed at once), and a failure here says
        // nothing about vxlan.
        if let Err(e) = handle
            .link()
            .del_with_message(LinkUnspec::new_with_name(NAME).build())
            .execute()
            .await
        {
            debug!(error = %netlink_io(e), "cannot delete the vxlan test device; its namespace goes with it");
        }
    }
    connection.abort();
    added
}

/// The errno a netlink answer carried, as `ip` would print it ("Operation not supported").
fn netlink_io(e: rtnetlink::Error) -> std::io::Error {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io(),
        other => std::io::Error::other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn in_host_namespace() -> bool {
        Path::new("/sys/class/net").join(NAME).exists()
    }

    /// The real check on this machine: as root (the test bed, CI), the kernel makes a vxlan
    /// device in a namespace of the check's own, and the node's namespace never sees it.
    /// Without root, unshare(2) is refused and the check says so.
    #[test]
    fn a_vxlan_device_is_made_and_removed_in_a_throwaway_namespace() {
        assert!(!in_host_namespace());
        let got = check();
        if nix::unistd::geteuid().is_root() {
            got.unwrap();
        } else {
            assert!(matches!(got, Err(VxlanError::Namespace(_))), "{got:?}");
        }
        assert!(!in_host_namespace(), "the test device leaked into the host");
        // Twice in a row: nothing of the first run is left in the way.
        if nix::unistd::geteuid().is_root() {
            check().unwrap();
        }
    }

    /// A device the kernel refuses (a VNI past 24 bits, which it answers with ERANGE) is the
    /// `Create` failure, with the kernel's errno as its cause and the fix beside it.
    #[test]
    fn a_refused_device_is_a_create_failure_naming_the_fix() {
        let e = try_link(1 << 24).unwrap_err();
        if !nix::unistd::geteuid().is_root() {
            assert!(matches!(e, VxlanError::Namespace(_)), "{e:?}");
            return;
        }
        let VxlanError::Create(cause) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(cause.raw_os_error(), Some(libc::ERANGE), "{cause}");
        assert!(e.fix().contains("modprobe vxlan"));
        assert!(e.fix().contains("flannel.backend: host-gw"));
        assert!(!in_host_namespace());
    }

    #[test]
    fn every_failure_offers_host_gw() {
        for e in [
            VxlanError::Namespace(nix::Error::EPERM),
            VxlanError::Panicked,
            VxlanError::Timeout(TIMEOUT),
            VxlanError::Create(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP)),
        ] {
            assert!(e.fix().contains("flannel.backend: host-gw"), "{e:?}");
        }
    }
}
