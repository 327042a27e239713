//! The command line as an operator meets it: help for every subcommand, bad input refused
//! with one line per problem and exit 2 before anything is written, and a man page that
//! matches the code.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test crate: a panic is a failed test (clippy.toml's allow-*-in-tests covers the \
              #[test] functions, not the helpers beside them)"
)]

mod common;

use common::{kubesup, run_kubesup as run};

#[test]
fn every_subcommand_has_help() {
    for sub in [
        vec!["master"],
        vec!["worker"],
        vec!["token", "create"],
        vec!["token", "list"],
        vec!["token", "delete"],
        vec!["etcd", "members"],
        vec!["etcd", "remove"],
        vec!["status"],
        vec!["certs", "generate"],
        vec!["certs", "check"],
        vec!["certs", "rotate"],
        vec!["fetch"],
        vec!["install", "master"],
        vec!["install", "worker"],
        vec!["uninstall"],
        vec!["reset"],
        vec!["config", "default"],
        vec!["config", "check"],
        vec!["completions"],
        vec!["version"],
        vec!["supervise"],
    ] {
        let mut args = sub.clone();
        args.push("--help");
        let out = run(&args);
        assert!(out.status.success(), "{sub:?} --help failed");
        assert!(
            String::from_utf8_lossy(&out.stdout).len() > 100,
            "{sub:?} --help is too thin"
        );
    }
    let master = String::from_utf8_lossy(&run(&["master", "--help"]).stdout).into_owned();
    for flag in [
        "--config",
        "--data-dir",
        "--advertise",
        "--node-name",
        "--kube-version",
        "--mirror",
        "--pod-cidr",
        "--service-cidr",
        "--cluster-dns",
        "--cluster-domain",
        "--api-port",
        "--join-port",
        "--schedulable",
        "--network",
        "--flannel-backend",
        "--log-format",
    ] {
        assert!(master.contains(flag), "master --help lacks {flag}");
    }
}

#[test]
fn a_bad_config_exits_2_with_every_problem_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(&[
        "master",
        "--data-dir",
        data.to_str().unwrap(),
        "--advertise",
        "10.0.0.300",
        "--pod-cidr",
        "10.3.0.0/16",
        "--api-port",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines.iter().all(|l| l.starts_with("invalid config: ")),
        "{err}"
    );
    assert!(!data.exists(), "a bad config created the data dir");

    let file = dir.path().join("c.yaml");
    std::fs::write(&file, "advertize: 10.0.0.1\n").unwrap();
    let out = run(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `advertize`"));
    let out = run(&["master", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("advertise: is required on a master"));
}

/// `flannel.backend` is read like every key: file < `KUBESUP_FLANNEL_BACKEND` < `--flannel-backend`,
/// and a bad value is one line naming the key and the accepted values, exit 2.
#[test]
fn the_flannel_backend_layers_file_env_flag_and_a_bad_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(&file, "flannel: {backend: udp}\n").unwrap();
    let f = file.to_str().unwrap();
    let check = |env: Option<&str>, flag: Option<&str>| {
        let mut cmd = kubesup(&["config", "check", f]);
        if let Some(v) = env {
            cmd.env("KUBESUP_FLANNEL_BACKEND", v);
        }
        if let Some(v) = flag {
            cmd.args(["--flannel-backend", v]);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = check(None, None);
    assert_eq!(code, Some(2));
    assert_eq!(
        err.trim(),
        "invalid config: flannel.backend: \"udp\" is unknown; use vxlan or host-gw"
    );
    assert_eq!(check(Some("host-gw"), None).0, Some(0), "env over file");
    assert_eq!(
        check(Some("bogus"), Some("vxlan")).0,
        Some(0),
        "flag over env"
    );
    let (code, err) = check(Some("vxlan"), Some("bogus"));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("flannel.backend: \"bogus\" is unknown"),
        "{err}"
    );
}

#[test]
fn the_default_config_checks_clean_and_completions_render() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("default.yaml");
    std::fs::write(&file, run(&["config", "default"]).stdout).unwrap();
    assert!(
        run(&["config", "check", file.to_str().unwrap()])
            .status
            .success()
    );
    for shell in ["bash", "zsh", "fish"] {
        assert!(run(&["completions", shell]).status.success());
    }
}

#[test]
fn the_shipped_man_page_matches_the_code() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        run(&["manpage", "--out-dir", dir.path().to_str().unwrap()])
            .status
            .success()
    );
    let fresh = std::fs::read_to_string(dir.path().join("kubesup.1")).unwrap();
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/kubesup.1")).unwrap();
    assert_eq!(
        fresh, shipped,
        "contrib/kubesup.1 is stale: run `kubesup manpage --out-dir contrib`"
    );
}

/// A worker that has not joined needs a master and a token; a token that is not one is refused.
/// Either way: exit 2, one line naming the problem, and no data dir.
#[test]
fn a_worker_without_a_usable_token_stops_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["worker", "--data-dir", data_arg], "pass --join"),
        (
            &[
                "worker",
                "--data-dir",
                data_arg,
                "--join",
                "https://127.0.0.1:1",
                "--token",
                "not-a-token",
            ],
            "token: the join token is malformed",
        ),
        (
            &[
                "worker",
                "--data-dir",
                data_arg,
                "--join",
                "https://127.0.0.1:1",
                "--token-file",
                "/nonexistent/token",
            ],
            "token-file: cannot read /nonexistent/token",
        ),
    ];
    for (args, expect) in cases {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert_eq!(
            stderr.lines().filter(|l| !l.trim().is_empty()).count(),
            1,
            "{args:?}: {stderr}"
        );
        assert!(!data.exists(), "{args:?} wrote {data:?}");
    }
}

/// `kubesup status | head` and the like: output cut short by the reader ends the command
/// quietly, as with `cat`, instead of a panic and a backtrace on stderr.
#[test]
fn a_reader_that_goes_away_ends_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let out = kubesup(&["config", "default"])
        .stdout(std::process::Stdio::from(write))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
