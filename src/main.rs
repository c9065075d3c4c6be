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
    // A panic is a meshboot bug: say so, keep the payload out (it could quote input), and
    // exit with the documented internal-error code instead of Rust's 101.
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error{at}: meshboot crashed; this is a bug, please report it");
    }));
    let outcome = std::panic::catch_unwind(|| run(&cli.command, &ProcessEnv));
    let Ok(outcome) = outcome else {
        std::process::exit(meshboot::exit::INTERNAL);
    };
    let code = match outcome {
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
