//! The edge between the command line and the modules: loads the config, starts tracing and the
//! runtime, and runs one subcommand. `anyhow` lives here and in `main` only.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;

use crate::cli::{
    CertsCommand, Cli, Command, CommonArgs, ConfigCommand, NodeArgs, StatusArgs, SuperviseArgs,
};
use crate::config::{self, Config, ConfigError, DEFAULT_CONFIG_FILE, LogFormat, RawConfig};
use crate::node::Node;
use crate::paths::Paths;
use crate::supervise::control;

/// Bad input, found before anything was written or started.
pub const EXIT_INVALID: u8 = 2;
/// A check found a problem.
pub const EXIT_CHECK: u8 = 3;

pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<ConfigError>().is_some() || e.downcast_ref::<clap::Error>().is_some() {
        EXIT_INVALID
    } else {
        1
    }
}

/// `error: what failed: why`, on one line; a config error keeps its one line per problem.
pub fn render_error(e: &anyhow::Error) -> String {
    if let Some(ConfigError::Invalid(p)) = e.downcast_ref::<ConfigError>() {
        return p.to_string();
    }
    format!("error: {e:#}")
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    if !matches!(
        cli.command,
        Command::Master(_) | Command::Worker(_) | Command::Supervise(_)
    ) {
        crate::supervise::default_sigpipe();
    }
    match cli.command {
        Command::Version => {
            println!(
                "kubesup {} (default Kubernetes {})",
                env!("CARGO_PKG_VERSION"),
                config::DEFAULT_KUBE_VERSION
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions(a) => {
            clap_complete::generate(
                a.shell,
                &mut Cli::command(),
                "kubesup",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpage { out_dir } => {
            write_manpages(&out_dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Default) => {
            print!("{}", RawConfig::default_yaml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Check { file, common }) => {
            let common = CommonArgs {
                config: Some(file.clone()),
                ..*common
            };
            load_config(&common, cli.log_format)?;
            println!("{}: ok", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Status(a) => {
            init_tracing(&cli.log, cli.log_format.as_deref())?;
            runtime()?.block_on(status(a))
        }
        Command::Supervise(a) => {
            init_tracing(&cli.log, cli.log_format.as_deref())?;
            runtime()?.block_on(supervise(a))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Certs(c) => certs(c, cli.log_format),
        Command::Fetch(a) => {
            let cfg = load_config(&a.common, cli.log_format.clone())?;
            init_tracing(&cli.log, cli.log_format.as_deref())?;
            runtime()?.block_on(fetch(cfg, a))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Master(a) => {
            let cfg = load_config(&a.common, cli.log_format.clone())?;
            cfg.require_advertise()?;
            init_tracing(
                &cli.log,
                cli.log_format.as_deref().or(Some(log_format_name(&cfg))),
            )?;
            let (common, lf) = (a.common.clone(), cli.log_format.clone());
            let reload =
                Box::new(move || load_config(&common, lf.clone()).map_err(|e| format!("{e:#}")));
            runtime()?.block_on(crate::master::run(cfg, a.ignore_preflight, a.force, reload))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Reset(a) => {
            let paths = node_paths(&a.node)?;
            init_tracing(&cli.log, cli.log_format.as_deref())?;
            let plan = crate::reset::plan(&paths);
            if !a.yes {
                println!("kubesup reset will:");
                for step in &plan {
                    println!("  - {step}");
                }
                if !std::io::stdin().is_terminal() {
                    bail!("not confirmed: rerun with --yes to reset without a prompt");
                }
                print!("Proceed? [y/N] ");
                use std::io::Write;
                std::io::stdout().flush()?;
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    println!("nothing changed");
                    return Ok(ExitCode::SUCCESS);
                }
            }
            runtime()?.block_on(crate::reset::run(&paths))?;
            println!("reset {}", paths.data_dir().display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Token(t) => {
            init_tracing(&cli.log, cli.log_format.as_deref())?;
            runtime()?.block_on(token(t))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Worker(a) => {
            let raw = load_raw_config(&a.common, cli.log_format.clone())?;
            let log_format = raw.log_format.clone();
            init_tracing(&cli.log, cli.log_format.as_deref().or(Some(&log_format)))?;
            let token = match (a.token, a.token_file.or(raw.join.token_file.clone())) {
                (Some(t), _) => Some(crate::worker::TokenSource::Value(t)),
                (None, Some(f)) => Some(crate::worker::TokenSource::File(f)),
                (None, None) => None,
            };
            let join = a.join.or(raw.join.url.clone());
            // Bad input surfaces as a ConfigError, so it keeps exit code 2 and its one line.
            runtime()?
                .block_on(crate::worker::run(raw, join, token, a.ignore_preflight))
                .map_err(|e| match e {
                    crate::worker::WorkerError::Config(c) => anyhow::Error::from(c),
                    other => other.into(),
                })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Install(cmd) => {
            init_tracing(&cli.log, cli.log_format.as_deref())?;
            crate::install::install(install_request(cmd, cli.log_format)?).map_err(
                |e| match e {
                    crate::install::InstallError::Config(c) => anyhow::Error::from(c),
                    other => other.into(),
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Uninstall(a) => {
            init_tracing(&cli.log, cli.log_format.as_deref())?;
            crate::install::uninstall(&a.root)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The role's flags as an install request: config keys go to the config file, the rest to the
/// unit's command line.
fn install_request(
    cmd: crate::cli::InstallCommand,
    log_format: Option<String>,
) -> Result<crate::install::Request> {
    use crate::cli::InstallCommand;
    use crate::install::{Request, Role};
    let (role, common, ignore, force, join, token, token_file, opts) = match cmd {
        InstallCommand::Master { args, opts } => (
            Role::Master,
            args.common,
            args.ignore_preflight,
            args.force,
            None,
            None,
            None,
            opts,
        ),
        InstallCommand::Worker { args, opts } => (
            Role::Worker,
            args.common,
            args.ignore_preflight,
            false,
            args.join,
            args.token,
            args.token_file,
            opts,
        ),
    };
    let mut raw = load_raw_config(&common, log_format)?;
    if join.is_some() {
        raw.join.url = join;
    }
    let token = match (token, token_file) {
        (Some(t), _) => Some(t),
        (None, Some(f)) => Some(std::fs::read_to_string(&f).map_err(|e| {
            let mut p = config::Problems::default();
            p.push("token-file", format!("cannot read {}: {e}", f.display()));
            ConfigError::Invalid(p)
        })?),
        (None, None) => None,
    };
    let mut extra_args: Vec<String> = ignore
        .into_iter()
        .map(|n| format!("--ignore-preflight={n}"))
        .collect();
    if force {
        extra_args.push("--force".into());
    }
    Ok(Request {
        role,
        raw,
        extra_args,
        token,
        root: opts.root,
        overwrite: opts.overwrite,
    })
}

/// File, then `KUBESUP_*` environment, then flags; validated as a whole.
pub fn load_config(common: &CommonArgs, log_format: Option<String>) -> Result<Config> {
    Ok(load_raw_config(common, log_format)?.validate()?)
}

/// The same layers, not yet validated: a worker validates again once the master's cluster
/// settings are laid over them.
pub fn load_raw_config(common: &CommonArgs, log_format: Option<String>) -> Result<RawConfig> {
    let path = common.config.clone().or_else(|| {
        let default = PathBuf::from(DEFAULT_CONFIG_FILE);
        default.exists().then_some(default)
    });
    let mut raw = match &path {
        Some(p) => RawConfig::from_file(p)?,
        None => RawConfig::default(),
    };
    raw.apply(common.overrides(log_format));
    Ok(raw)
}

fn certs(cmd: CertsCommand, log_format: Option<String>) -> Result<ExitCode> {
    match cmd {
        CertsCommand::Generate { common } => {
            let cfg = load_config(&common, log_format)?;
            let report = crate::certs::generate(&cfg)?;
            print!("{}", crate::certs::describe(&report));
            remind_running(&cfg.paths, &report);
            Ok(ExitCode::SUCCESS)
        }
        CertsCommand::Check { node, json } => {
            let cfg = load_config(&node.common(), log_format)?;
            let rows = crate::certs::check(&cfg);
            if json {
                println!("{}", crate::pki::render_json(&rows)?);
            } else {
                print!("{}", crate::pki::render_table(&rows));
            }
            Ok(if crate::pki::needs_attention(&rows) {
                ExitCode::from(EXIT_CHECK)
            } else {
                ExitCode::SUCCESS
            })
        }
        CertsCommand::Rotate { common, name, all } => {
            let cfg = load_config(&common, log_format)?;
            let names: Vec<String> = name.into_iter().collect();
            let leaves = crate::pki::Pki::parse_rotate_args(&names, all)?;
            let advertise = cfg
                .advertise
                .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
            let report = crate::pki::Pki::new(&cfg.paths)
                .rotate(&crate::certs::pki_spec(&cfg, advertise), &leaves)?;
            print!("{}", crate::certs::describe(&report));
            remind_running(&cfg.paths, &report);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A running kubesup restarts the components whose certificates changed on SIGHUP (certificate
/// files are part of each component's fingerprint).
fn remind_running(paths: &Paths, report: &crate::pki::Report) {
    if report.is_empty() || !paths.control_socket().exists() {
        return;
    }
    let pid = std::fs::read_to_string(paths.lock_file()).unwrap_or_default();
    let restart: Vec<_> = report
        .components_to_restart()
        .iter()
        .map(|c| c.name())
        .collect();
    if !restart.is_empty() {
        println!(
            "kubesup is running on this data dir: run `kill -HUP {}` to restart {}",
            pid.trim(),
            restart.join(", ")
        );
    }
}

/// `kubesup fetch`: everything a node role needs, or an air-gap bundle of it.
async fn fetch(cfg: Config, a: crate::cli::FetchArgs) -> Result<()> {
    use crate::fetch::{Artifact, FetchOptions, Fetcher, Network, Role, needed_artifacts};
    let fetcher = Fetcher::new(FetchOptions::from_config(&cfg))?;
    let version = cfg.kube_version.to_string();
    if let Some(bundle) = &a.from_bundle {
        let set = fetcher.load_bundle(bundle).await?;
        println!(
            "loaded {} binaries for {} from {}",
            set.binaries.len(),
            set.kube_version,
            bundle.display()
        );
        return Ok(());
    }
    let role = match a.role {
        crate::cli::Role::Master => Role::Master {
            schedulable: cfg.schedulable,
        },
        crate::cli::Role::Worker => Role::Worker,
    };
    let network = match cfg.network {
        config::Network::Flannel => Network::Flannel,
        config::Network::None => Network::None,
    };
    let mut artifacts = needed_artifacts(role, network);
    if a.with_runtime {
        artifacts.extend(Artifact::RUNTIME);
    }
    let set = fetcher.fetch(&version, &artifacts).await?;
    for (name, b) in &set.binaries {
        println!("{name:<28} {}  {}", &b.sha256[..12], b.path.display());
    }
    if let Some(out) = &a.bundle {
        let manifest = fetcher.manifest(&version)?;
        let summary = fetcher.write_bundle(&set, &manifest, out).await?;
        println!(
            "wrote {} ({} binaries, {} bytes)",
            out.display(),
            summary.binaries,
            summary.bytes
        );
    }
    Ok(())
}

/// `kubesup token ...`, against the etcd of the master on this data dir.
async fn token(cmd: crate::cli::TokenCommand) -> Result<()> {
    use crate::cli::TokenCommand;
    use crate::join::{store, token::Token};
    let node = match &cmd {
        TokenCommand::Create { node, .. }
        | TokenCommand::List { node }
        | TokenCommand::Delete { node, .. } => node,
    };
    let cfg = load_config(&node.common(), None)?;
    let pki = cfg.paths.pki();
    let client_cert = pki.apiserver_etcd_client();
    let tls = crate::etcd::EtcdTls {
        ca: pki.etcd_ca().cert,
        cert: client_cert.cert,
        key: client_cert.key,
    };
    let endpoint = crate::etcd::local_endpoint(cfg.ports.etcd_client);
    let mut etcd = crate::etcd::connect(&endpoint, &tls)
        .await
        .with_context(|| {
            format!(
                "is `kubesup master` running on {}?",
                cfg.paths.data_dir().display()
            )
        })?;
    match cmd {
        TokenCommand::Create {
            ttl, description, ..
        } => {
            let ttl = match ttl.trim() {
                "0" => std::time::Duration::ZERO,
                t => humantime::parse_duration(t).with_context(|| {
                    format!("--ttl {t:?} is not a duration; use e.g. 24h, 30m, or 0 for never")
                })?,
            };
            let ca_pem = std::fs::read_to_string(pki.ca().cert)
                .with_context(|| format!("reading {}", pki.ca().cert.display()))?;
            let pin = crate::join::token::ca_pin(&ca_pem)?;
            let token = Token::generate(&pin);
            let rec = store::create(&mut etcd, &token, ttl, description).await?;
            if ttl.is_zero() {
                eprintln!(
                    "warning: this token never expires; delete it with `kubesup token delete {}` when done",
                    rec.id
                );
            }
            // The only time the secret is ever shown.
            println!("{}", token.expose());
        }
        TokenCommand::List { .. } => {
            let mut rows = store::list(&mut etcd).await?;
            rows.sort_by(|a, b| a.created.cmp(&b.created));
            println!(
                "{:<8} {:<22} {:<22} DESCRIPTION",
                "ID", "CREATED", "EXPIRES"
            );
            for r in rows {
                println!(
                    "{:<8} {:<22} {:<22} {}",
                    r.id,
                    r.created,
                    r.expires.as_deref().unwrap_or("never"),
                    r.description.as_deref().unwrap_or("")
                );
            }
        }
        TokenCommand::Delete { id, .. } => {
            store::delete(&mut etcd, &id).await?;
            println!("deleted token {id}");
        }
    }
    Ok(())
}

fn node_paths(node: &NodeArgs) -> Result<Paths> {
    Ok(load_config(&node.common(), None)?.paths)
}

fn log_format_name(cfg: &Config) -> &'static str {
    match cfg.log_format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    }
}

pub fn init_tracing(filter: &str, format: Option<&str>) -> Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // `Targets` ("info", "kubesup=debug,warn"): per-target levels without EnvFilter's regex
    // engine, which kubesup would carry resident for span-field matching nobody uses.
    let filter: tracing_subscriber::filter::Targets = filter
        .parse()
        .with_context(|| format!("--log {filter:?} is not a valid log filter"))?;
    let format = match format {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => bail!("--log-format {other:?} is unknown; use text or json"),
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests calling run twice) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Text => registry.with(layer).try_init(),
        LogFormat::Json => registry.with(layer.json().flatten_event(true)).try_init(),
    };
    Ok(())
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    // One thread runs every task: a supervisor is idle almost always, its work is waiting on
    // events, and each extra worker thread costs resident memory (its stack and malloc arena).
    // Blocking work (file hashing, helper commands) goes to the small blocking pool.
    tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(4)
        .thread_stack_size(512 * 1024)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn status(a: StatusArgs) -> Result<ExitCode> {
    let paths = node_paths(&a.node)?;
    let report = control::fetch_status(&paths.control_socket()).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(if report.all_ready() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CHECK)
    })
}

async fn supervise(a: SuperviseArgs) -> Result<()> {
    if !a.data_dir.is_absolute() {
        return Err(ConfigError::Invalid(config::Problems(vec![config::Problem {
            field: "data-dir".into(),
            message: format!("{:?} is relative; use an absolute path", a.data_dir),
        }]))
        .into());
    }
    let paths = Paths::new(&a.data_dir);
    // Read the file before taking the lock, so a bad file changes nothing.
    let specs = crate::supervise::file::load(&a.file, &paths)?;
    let node = Node::acquire(paths.clone())?;
    let file = a.file.clone();
    let reload: crate::node::Reload =
        Box::new(move || crate::supervise::file::load(&file, &paths).map_err(|e| e.to_string()));
    node.supervise("supervise", specs, Some(reload), Vec::new())
        .await?;
    Ok(())
}

fn write_manpages(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cmd = Cli::command();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut buf)
        .context("rendering the man page")?;
    let path = dir.join("kubesup.1");
    std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
