//! `kubesup completions SHELL`: shell completions generated from the clap definition, so they
//! never drift from the flags.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};

pub fn run(a: CompletionsArgs) {
    clap_complete::generate(
        a.shell,
        &mut Cli::command(),
        "kubesup",
        &mut std::io::stdout(),
    );
}
