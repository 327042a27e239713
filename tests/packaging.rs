//! The service units: they pass `systemd-analyze verify`, and carry the choices that matter
//! (readiness by sd_notify, a watchdog, KillMode=process so pods survive a restart of kubesup,
//! a stop timeout longer than the components' grace periods).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test crate: a panic is a failed test (clippy.toml's allow-*-in-tests covers the \
              #[test] functions, not the helpers beside them)"
)]

use std::process::Command;

const KUBESUP: &str = env!("CARGO_BIN_EXE_kubesup");

fn unit(role: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/packaging/kubesup-{role}.service",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn both_units_pass_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("KUBESUP_TESTBED_REQUIRED").is_none(),
            "systemd-analyze is missing"
        );
        eprintln!("skipping: systemd-analyze is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for role in ["master", "worker"] {
        // The one change: ExecStart points at the binary under test instead of /usr/bin, which
        // verify requires to exist.
        let text = unit(role).replace("/usr/bin/kubesup", KUBESUP);
        let path = dir.path().join(format!("kubesup-{role}.service"));
        std::fs::write(&path, text).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{role}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{role}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn units_say_what_an_operator_relies_on() {
    for role in ["master", "worker"] {
        let u = unit(role);
        for line in [
            "Type=notify",
            "KillMode=process",
            "Delegate=yes",
            "Restart=always",
            "LimitNOFILE=1048576",
            "ConditionPathExists=/etc/kubesup/config.yaml",
        ] {
            assert!(u.lines().any(|l| l == line), "{role} unit lacks {line}");
        }
        assert!(u.contains(&format!(
            "ExecStart=/usr/bin/kubesup {role} --config /etc/kubesup/config.yaml"
        )));
        let stop: u64 = u
            .lines()
            .find_map(|l| l.strip_prefix("TimeoutStopSec="))
            .and_then(|v| v.trim_end_matches('s').parse().ok())
            .unwrap();
        // etcd, apiserver and containerd get 30 s each, the others 10 s.
        assert!(
            stop > 30 * 3 + 10 * 5,
            "TimeoutStopSec={stop}s is shorter than the grace periods"
        );
        assert!(u.lines().any(|l| l.starts_with("WatchdogSec=")));
    }
}

fn manifest_dir() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn kubesup(args: &[&str]) -> String {
    let out = Command::new(KUBESUP).args(args).output().unwrap();
    assert!(out.status.success(), "kubesup {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The packaged completions and example config are generated from the code; they must not
/// drift from it.
#[test]
fn packaged_completions_and_example_config_match_the_code() {
    for shell in ["bash", "zsh", "fish"] {
        let committed = std::fs::read_to_string(
            manifest_dir().join(format!("contrib/completions/kubesup.{shell}")),
        )
        .unwrap();
        assert_eq!(
            committed,
            kubesup(&["completions", shell]),
            "contrib/completions/kubesup.{shell} is stale: regenerate it with `kubesup completions {shell}`"
        );
    }
    let example =
        std::fs::read_to_string(manifest_dir().join("packaging/config.yaml.example")).unwrap();
    // Every line is commented out; uncommented, the file is exactly `kubesup config default`.
    let body: String = example
        .lines()
        .skip(3)
        .map(|l| {
            let l = l
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("uncommented line {l:?}"));
            format!("{}\n", l.strip_prefix(' ').unwrap_or(l))
        })
        .collect();
    assert_eq!(
        body,
        kubesup(&["config", "default"]),
        "packaging/config.yaml.example is stale"
    );
}

/// Either the tools are here, or (in CI) their absence is a failure.
fn required(what: &str) -> bool {
    let have = Command::new(what).arg("--version").output().is_ok()
        || Command::new("sh")
            .args(["-c", &format!("command -v {what}")])
            .output()
            .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var_os("KUBESUP_TESTBED_REQUIRED").is_none(),
            "{what} is missing (integration/setup-testbed.sh installs it)"
        );
        eprintln!("skipping: {what} is not installed");
    }
    have
}

/// Builds both packages once per test process.
fn packages() -> (std::path::PathBuf, std::path::PathBuf) {
    static BUILT: std::sync::OnceLock<(std::path::PathBuf, std::path::PathBuf)> =
        std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = Command::new(manifest_dir().join("packaging/build.sh"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "packaging/build.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let paths: Vec<std::path::PathBuf> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(Into::into)
                .collect();
            let find = |ext: &str| {
                paths
                    .iter()
                    .find(|p| p.extension().is_some_and(|e| e == ext))
                    .cloned()
                    .unwrap_or_else(|| panic!("no .{ext} in {paths:?}"))
            };
            (find("deb"), find("rpm"))
        })
        .clone()
}

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const PACKAGED: [&str; 9] = [
    "usr/bin/kubesup",
    "systemd/system/kubesup-master.service",
    "systemd/system/kubesup-worker.service",
    "etc/kubesup/config.yaml.example",
    "etc/default/kubesup",
    "bash-completion/completions/kubesup",
    "_kubesup",
    "vendor_completions.d/kubesup.fish",
    "man/man1/kubesup.1",
];

#[test]
fn the_deb_and_the_rpm_carry_the_binary_units_config_completions_and_man_page() {
    if !required("dpkg-deb") || !required("rpm") {
        return;
    }
    let (deb, rpm) = packages();
    let contents = output(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for f in PACKAGED.iter().chain(&["usr/share/doc/kubesup/copyright"]) {
        assert!(contents.contains(f), ".deb lacks {f}:\n{contents}");
    }
    let field = |name: &str| output(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name));
    assert_eq!(field("Package").trim(), "kubesup");
    assert_eq!(
        field("Version").trim(),
        format!("{}-1", env!("CARGO_PKG_VERSION"))
    );
    assert!(field("Depends").contains("iptables"));
    // The packaged binary loads on glibc 2.34 (RHEL 9 and its rebuilds; Ubuntu 22.04 has
    // 2.35): no symbol version above GLIBC_2.34, and no packed relocations
    // (GLIBC_ABI_DT_RELR, glibc 2.36).
    let unpacked = tempfile::tempdir().unwrap();
    output(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(unpacked.path()),
    );
    let versions = output(
        Command::new("readelf")
            .arg("-V")
            .arg(unpacked.path().join("usr/bin/kubesup")),
    );
    assert!(
        !versions.contains("GLIBC_ABI_DT_RELR"),
        "the packaged binary uses packed relocations, which need glibc 2.36"
    );
    let highest = highest_glibc(&versions);
    assert!(
        highest.is_some_and(|v| v <= (2, 34)),
        "the packaged binary needs glibc {highest:?}; it must load on 2.34"
    );
    // kubesup reads the trust store only for public https hosts: a weak dependency.
    assert!(
        field("Recommends").contains("ca-certificates"),
        "{}",
        field("Recommends")
    );
    assert!(!field("Depends").contains("ca-certificates"));
    assert!(!field("Maintainer").trim().is_empty());
    let conffiles = output(
        Command::new("dpkg-deb")
            .arg("-I")
            .arg(&deb)
            .arg("conffiles"),
    );
    assert!(conffiles.contains("/etc/default/kubesup"));
    assert!(conffiles.contains("/etc/kubesup/config.yaml.example"));
    // No maintainer script enables or starts a unit.
    let postinst = output(Command::new("dpkg-deb").arg("-I").arg(&deb).arg("postinst"));
    let commands: Vec<&str> = postinst
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    assert!(
        commands
            .iter()
            .all(|l| !l.contains(" enable") && !l.contains(" start ")),
        "postinst enables or starts a unit:\n{postinst}"
    );

    let files = output(Command::new("rpm").arg("-qlp").arg(&rpm));
    for f in PACKAGED.iter().chain(&["licenses/kubesup/LICENSE"]) {
        assert!(files.contains(f), ".rpm lacks {f}:\n{files}");
    }
    let recommends = output(Command::new("rpm").args(["-qp", "--recommends"]).arg(&rpm));
    assert!(recommends.contains("ca-certificates"), "{recommends}");
    let requires = output(Command::new("rpm").args(["-qp", "--requires"]).arg(&rpm));
    assert!(!requires.contains("GLIBC_ABI_DT_RELR"), "{requires}");
    // The same binary as the .deb's; what rpm infers from it must not ask for more.
    assert!(
        highest_glibc(&requires).is_none_or(|v| v <= (2, 34)),
        "{requires}"
    );
    let configs = output(Command::new("rpm").args(["-qp", "--configfiles"]).arg(&rpm));
    assert!(configs.contains("/etc/default/kubesup"));
    let scripts = output(Command::new("rpm").args(["-qp", "--scripts"]).arg(&rpm));
    for s in ["postinstall", "preuninstall", "postuninstall"] {
        assert!(
            scripts.contains(s),
            "rpm lacks its {s} scriptlet:\n{scripts}"
        );
    }
}

/// The highest `GLIBC_X.Y` version named in `text` (readelf -V output, or rpm's requirements
/// `libc.so.6(GLIBC_2.34)(64bit)`).
fn highest_glibc(text: &str) -> Option<(u32, u32)> {
    text.split("GLIBC_")
        .skip(1)
        .filter_map(|rest| {
            let v: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let mut parts = v.split('.').map(str::parse::<u32>);
            match (parts.next(), parts.next()) {
                (Some(Ok(major)), Some(Ok(minor))) => Some((major, minor)),
                _ => None,
            }
        })
        .max()
}

#[test]
fn glibc_versions_are_read_from_readelf_and_rpm_output() {
    let readelf = "  0x0010:   Name: GLIBC_2.34  Flags: none  Version: 9\n  0x0020:   Name: GLIBC_2.3.4  Flags: none\n  Name: GLIBC_ABI_DT_RELR\n  Name: GLIBC_2.9";
    assert_eq!(highest_glibc(readelf), Some((2, 34)));
    let rpm = "libc.so.6()(64bit)\nlibc.so.6(GLIBC_2.36)(64bit)\nlibc.so.6(GLIBC_2.4)(64bit)";
    assert_eq!(highest_glibc(rpm), Some((2, 36)));
    assert_eq!(highest_glibc("no versions"), None);
}

/// A Debian root (debootstrap, cached), unpacked into a temp dir and removed on drop. Nothing is
/// mounted in it: dpkg needs no /proc for this package.
struct Chroot {
    dir: tempfile::TempDir,
}

impl Chroot {
    fn new() -> Self {
        let tarball = output(&mut Command::new(
            manifest_dir().join("packaging/chroot-image.sh"),
        ));
        let dir = tempfile::tempdir().unwrap();
        output(
            Command::new("tar")
                .arg("-C")
                .arg(dir.path())
                .arg("-xzf")
                .arg(tarball.trim()),
        );
        Self { dir }
    }

    fn path(&self, p: &str) -> std::path::PathBuf {
        self.dir.path().join(p.trim_start_matches('/'))
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        Command::new("chroot")
            .arg(self.dir.path())
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    /// PIDs of processes whose root is this chroot.
    fn processes(&self) -> Vec<String> {
        let root = self.dir.path().canonicalize().unwrap();
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .filter(|e| std::fs::read_link(e.path().join("root")).is_ok_and(|r| r == root))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }
}

#[test]
fn the_deb_installs_into_a_debian_root_starts_nothing_and_purges_cleanly() {
    if !required("debootstrap") || !required("dpkg-deb") {
        return;
    }
    let (deb, _) = packages();
    let root = Chroot::new();
    std::fs::copy(&deb, root.path("/tmp/kubesup.deb")).unwrap();
    // State an operator already has: a data dir that purge must keep unless asked.
    std::fs::create_dir_all(root.path("/var/lib/kubesup")).unwrap();
    std::fs::write(root.path("/var/lib/kubesup/marker"), "etcd data").unwrap();

    let install = root.run(&["dpkg", "-i", "/tmp/kubesup.deb"], &[]);
    assert!(install.status.success(), "dpkg -i: {install:?}");
    for f in [
        "/usr/bin/kubesup",
        "/lib/systemd/system/kubesup-master.service",
        "/lib/systemd/system/kubesup-worker.service",
        "/etc/kubesup/config.yaml.example",
        "/etc/default/kubesup",
        "/usr/share/man/man1/kubesup.1.gz",
        "/usr/share/bash-completion/completions/kubesup",
    ] {
        assert!(root.path(f).exists(), "{f} did not land");
    }
    let version = root.run(&["/usr/bin/kubesup", "version"], &[]);
    assert!(version.status.success(), "{version:?}");
    // Nothing started, nothing enabled, no config written for the operator.
    assert!(root.processes().is_empty(), "a process runs in the root");
    assert!(
        !root
            .path("/etc/systemd/system/multi-user.target.wants/kubesup-master.service")
            .exists()
    );
    assert!(
        !root
            .path("/etc/systemd/system/multi-user.target.wants/kubesup-worker.service")
            .exists()
    );
    assert!(!root.path("/etc/kubesup/config.yaml").exists());

    // Purge: config gone, the data dir kept (not asked for).
    std::fs::write(
        root.path("/etc/kubesup/config.yaml"),
        "advertise: 10.0.0.1\n",
    )
    .unwrap();
    let purge = root.run(&["dpkg", "--purge", "kubesup"], &[]);
    assert!(purge.status.success(), "dpkg --purge: {purge:?}");
    assert!(!root.path("/usr/bin/kubesup").exists());
    assert!(
        !root.path("/etc/kubesup").exists(),
        "purge left /etc/kubesup"
    );
    assert!(!root.path("/etc/default/kubesup").exists());
    assert!(
        root.path("/var/lib/kubesup/marker").exists(),
        "purge deleted the data dir"
    );

    // Asked for: the data dir goes too.
    assert!(
        root.run(&["dpkg", "-i", "/tmp/kubesup.deb"], &[])
            .status
            .success()
    );
    let purge = root.run(
        &["dpkg", "--purge", "kubesup"],
        &[("KUBESUP_PURGE_DATA", "yes")],
    );
    assert!(purge.status.success(), "{purge:?}");
    assert!(!root.path("/var/lib/kubesup").exists());
    assert!(root.processes().is_empty());
}
