//! `kubesup config default|check`.

use crate::cli::{CommonArgs, ConfigCommand};
use crate::cmd::Globals;
use crate::config::{ConfigError, RawConfig};

pub fn run(cmd: ConfigCommand, g: &Globals) -> Result<(), ConfigError> {
    match cmd {
        ConfigCommand::Default => print!("{}", RawConfig::default_yaml()),
        ConfigCommand::Check { file, common } => {
            let common = CommonArgs {
                config: Some(file.clone()),
                ..*common
            };
            g.config(&common)?;
            println!("{}: ok", file.display());
        }
    }
    Ok(())
}
