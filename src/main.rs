//! meshboot's binary: parse the command line, run it, and map the outcome to an exit code:
//! the library's one typed [`Error`] knows its code; clap's own errors, a failed write to
//! stdout and a panic are mapped here.

use clap::Parser as _;
use meshboot::cli::{Cli, run};
use meshboot::secrets::ProcessEnv;
use meshboot::{Error, exit};
use std::io::Write as _;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` come this way too, on stdout, and are not errors.
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
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
        std::process::exit(exit::INTERNAL);
    };
    let result = outcome.and_then(|out| {
        eprint!("{}", out.stderr);
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(out.stdout.as_bytes())
            .and_then(|_| stdout.flush())
            // Nothing more to say: stdout is gone (a closed pipe); the code says it.
            .map_err(|_| (Error::Usage(String::new()), String::new()))
    });
    std::process::exit(match result {
        Ok(()) => exit::OK,
        Err((error, stderr)) => {
            eprint!("{stderr}{}", error.message());
            error.exit_code()
        }
    });
}
