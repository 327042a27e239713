//! `kubesup install` / `uninstall` into a staging root (`--root`), so no systemd is touched:
//! what lands, with which modes; an existing different config is kept unless `--overwrite`;
//! bad input writes nothing; uninstall removes exactly what install wrote and is harmless twice.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test crate: a panic is a failed test (clippy.toml's allow-*-in-tests covers the \
              #[test] functions, not the helpers beside them)"
)]

mod common;

use common::{mode, run_kubesup as run};

const TOKEN: &str =
    "K100123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef::abcdef.0123456789abcdef";

#[test]
fn install_writes_config_and_unit_refuses_to_clobber_and_uninstall_reverses_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let out = run(&[
        "install",
        "master",
        "--root",
        root,
        "--advertise",
        "10.0.0.1",
        "--ignore-preflight",
        "swap",
    ]);
    assert!(out.status.success(), "{out:?}");
    let config = dir.path().join("etc/kubesup/config.yaml");
    let unit = dir.path().join("etc/systemd/system/kubesup-master.service");
    assert_eq!(mode(&config), 0o600);
    assert_eq!(mode(&unit), 0o644);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("advertise: 10.0.0.1"), "{text}");
    // The config it wrote is one kubesup accepts.
    let check = run(&["config", "check", config.to_str().unwrap()]);
    assert!(check.status.success(), "{check:?}");
    // Flags that are not config keys go on the unit's command line.
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    assert!(unit_text.contains("master --config /etc/kubesup/config.yaml --ignore-preflight=swap"));
    assert!(unit_text.contains("KillMode=process"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing was started"));

    // Same flags again: nothing to change, fine. Different: refused, file untouched.
    assert!(
        run(&[
            "install",
            "master",
            "--root",
            root,
            "--advertise",
            "10.0.0.1",
            "--ignore-preflight",
            "swap"
        ])
        .status
        .success()
    );
    let other = run(&[
        "install",
        "master",
        "--root",
        root,
        "--advertise",
        "10.0.0.2",
    ]);
    assert_eq!(other.status.code(), Some(1), "{other:?}");
    assert!(String::from_utf8_lossy(&other.stderr).contains("pass --overwrite"));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), text);
    let forced = run(&[
        "install",
        "master",
        "--root",
        root,
        "--advertise",
        "10.0.0.2",
        "--overwrite",
    ]);
    assert!(forced.status.success(), "{forced:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("etc/kubesup/config.yaml.bak")).unwrap(),
        text,
        "the replaced config was not kept"
    );

    // Uninstall removes what install wrote, keeps what it did not, and is harmless twice.
    let out = run(&["uninstall", "--root", root]);
    assert!(out.status.success(), "{out:?}");
    assert!(!config.exists() && !unit.exists());
    assert!(!dir.path().join("etc/kubesup/installed.json").exists());
    assert!(dir.path().join("etc/kubesup/config.yaml.bak").exists());
    let again = run(&["uninstall", "--root", root]);
    assert!(again.status.success(), "{again:?}");
}

#[test]
fn a_worker_install_keeps_its_token_private_and_bad_input_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    for (args, expect) in [
        (
            vec!["install", "worker", "--root", root, "--token", TOKEN],
            "pass --join",
        ),
        (
            vec![
                "install",
                "worker",
                "--root",
                root,
                "--join",
                "https://10.0.0.1:9443",
            ],
            "needs a join token",
        ),
        (
            vec![
                "install",
                "worker",
                "--root",
                root,
                "--join",
                "https://10.0.0.1:9443",
                "--token",
                "nope",
            ],
            "token: the join token is malformed",
        ),
        (
            vec!["install", "master", "--root", root],
            "advertise: is required",
        ),
        (
            vec![
                "install",
                "master",
                "--root",
                root,
                "--advertise",
                "10.0.0.1",
                "--pod-cidr",
                "banana",
            ],
            "pod-cidr",
        ),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(expect),
            "{args:?}: {out:?}"
        );
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "{args:?} wrote files"
        );
    }

    let out = run(&[
        "install",
        "worker",
        "--root",
        root,
        "--join",
        "https://10.0.0.1:9443",
        "--token",
        TOKEN,
    ]);
    assert!(out.status.success(), "{out:?}");
    let token = dir.path().join("etc/kubesup/token");
    assert_eq!(mode(&token), 0o600);
    assert_eq!(std::fs::read_to_string(&token).unwrap().trim(), TOKEN);
    let config = std::fs::read_to_string(dir.path().join("etc/kubesup/config.yaml")).unwrap();
    assert!(config.contains("url: https://10.0.0.1:9443"), "{config}");
    assert!(
        config.contains("token-file: /etc/kubesup/token"),
        "{config}"
    );
    assert!(
        !config.contains(&TOKEN[TOKEN.len() - 16..]),
        "the secret is in the config"
    );
    assert!(run(&["uninstall", "--root", root]).status.success());
    assert!(!token.exists());
    // The directory install made for them goes too, once nothing else is in it.
    assert!(!dir.path().join("etc/kubesup").exists());
}
