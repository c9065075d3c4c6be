//! meshboot's binary: parse the command line, run it, map the outcome to an exit code.

use clap::Parser as _;
use meshboot::cli::{Cli, run};
use meshboot::secrets::ProcessEnv;
use std::io::Write as _;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                meshboot::exit::USAGE
            } else {
                meshboot::exit::OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = match run(&cli.command, &ProcessEnv) {
        Ok(out) => {
            eprint!("{}", out.stderr);
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(out.stdout.as_bytes())
                .and_then(|_| stdout.flush())
                .is_err()
            {
                meshboot::exit::USAGE
            } else {
                meshboot::exit::OK
            }
        }
        Err((failure, stderr)) => {
            eprint!("{stderr}{}", failure.message);
            failure.code
        }
    };
    std::process::exit(code);
}
