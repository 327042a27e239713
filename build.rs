//! Link-time settings for the kubesup binaries.
//!
//! kubesup stays resident on every node, and every page of its executable that it touches
//! counts against that. A position-independent executable carries one 24-byte relocation per
//! pointer in its read-only data (~15,000 of them, 360 kB, all read at every start); packed
//! relative relocations (DT_RELR) encode the same in a few kB. They need glibc 2.36 at run
//! time, so they are used only when the build host has it (a binary built on an older glibc
//! could not have run on one older still), and `KUBESUP_RELR=0` turns them off for builds
//! meant for older systems.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=KUBESUP_RELR");
    let target = std::env::var("TARGET").unwrap_or_default();
    let wanted = match std::env::var("KUBESUP_RELR").as_deref() {
        Ok("0") => false,
        Ok("1") => true,
        _ => target.ends_with("-linux-gnu") && host_glibc_at_least(2, 36),
    };
    if wanted {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// The build host's glibc version, from `getconf GNU_LIBC_VERSION` ("glibc 2.36").
fn host_glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    found >= (major, minor)
}
