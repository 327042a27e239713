//! `kubesup fetch`: everything a node role needs, or an air-gap bundle of it.

use crate::cli::FetchArgs;
use crate::cmd::{Globals, SetupError};
use crate::config::{Config, ConfigError};
use crate::fetch::{FetchError, FetchOptions, Fetcher};
use crate::model::NodeRole;

#[derive(Debug, thiserror::Error)]
pub enum FetchCmdError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

crate::errors::exit_via!(FetchCmdError: Config, Setup);

pub fn run(a: FetchArgs, g: &Globals) -> Result<(), FetchCmdError> {
    let cfg = g.config(&a.common)?;
    g.init_tracing(None)?;
    crate::cmd::runtime()?.block_on(fetch(cfg, a))?;
    Ok(())
}

async fn fetch(cfg: Config, a: FetchArgs) -> Result<(), FetchError> {
    let fetcher = Fetcher::new(FetchOptions::from_config(&cfg))?;
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
    let role = NodeRole::new(a.role, cfg.schedulable);
    let artifacts = crate::plan::node_artifacts(&cfg, role, a.with_runtime);
    if a.dry_run {
        for d in fetcher.plan(&cfg.kube_version, &artifacts)? {
            println!("{:<24} {}", d.name, d.url);
            let checksum = match d.checksum.as_slice() {
                [] => "none published".to_string(),
                sources => sources.join(", then "),
            };
            println!("{:<24} checksum: {checksum}", "");
            println!("{:<24} provides: {}", "", d.provides.join(", "));
        }
        return Ok(());
    }
    let set = fetcher.fetch(&cfg.kube_version, &artifacts).await?;
    for (name, b) in &set.binaries {
        println!("{name:<28} {}  {}", &b.sha256[..12], b.path.display());
    }
    if let Some(out) = &a.bundle {
        let manifest = fetcher.manifest(&cfg.kube_version)?;
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
