//! Why a run failed: one typed [`Error`] for the whole library, which `main` turns into an
//! exit code (the `exit` codes below, as the README documents them).
//!
//! Every variant carries its message ready to print (with its trailing newline); none ever
//! contains a secret value. The wording of spec problems lives in [`crate::problem`]; these
//! are the failures around it: files that cannot be read or written, a node that is not in
//! the spec, a bug.

use crate::problem::IoReason;
use camino::Utf8Path;

/// Exit codes, as documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    pub const INVALID_SPEC: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const INTERNAL: i32 = 3;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The spec cannot be compiled: its errors (or its warnings under `--strict`), or an
    /// output over the user-data limit. Exit 1.
    InvalidSpec(String),
    /// The command line or the files around the spec: an unreadable spec, an unwritable
    /// output directory, an unknown `--node`. Exit 2.
    Usage(String),
    /// A meshboot bug: output that does not parse back, a panic. Exit 3.
    Internal(String),
}

impl Error {
    /// The spec at `path` could not be read.
    pub fn reading_spec(path: &Utf8Path, e: &std::io::Error) -> Self {
        Error::Usage(format!(
            "error: cannot read spec {path}: {}\n",
            IoReason::from_io(e)
        ))
    }

    /// The output directory `dir` could not be written.
    pub fn writing_to(dir: &Utf8Path, e: &std::io::Error) -> Self {
        Error::Usage(format!(
            "error: writing to {dir}: {}\n",
            IoReason::from_io(e)
        ))
    }

    /// `--node NAME` names no node; `names` are the nodes there are.
    pub fn no_such_node(node: &str, spec: &Utf8Path, names: &[&str]) -> Self {
        Error::Usage(format!(
            "error: no node named \"{}\" in {spec}\n  = help: nodes are: {}\n",
            node.escape_debug(),
            names.join(", ")
        ))
    }

    /// `--mint-auth-key` with an auth key that is not an OAuth client secret.
    pub fn mint_needs_oauth() -> Self {
        Error::Usage(
            "error: --mint-auth-key needs an OAuth client secret (tskey-client-...) in tailscale.auth_key\n  = help: a pre-auth key goes to the nodes as it is: leave out --mint-auth-key\n".into(),
        )
    }

    /// Minting a key through the Tailscale API failed (the error names the step and the
    /// HTTP status, never a secret or a response body).
    pub fn minting(e: &dyn std::fmt::Display) -> Self {
        Error::Usage(format!(
            "error: --mint-auth-key: {e}; nothing was written\n  = help: check the OAuth client in the Tailscale admin console: it needs the auth_keys scope and must own the nodes' tags\n"
        ))
    }

    /// Everything to print on stderr for this failure.
    pub fn message(&self) -> &str {
        match self {
            Error::InvalidSpec(m) | Error::Usage(m) | Error::Internal(m) => m,
        }
    }

    /// The documented exit code of this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::InvalidSpec(_) => exit::INVALID_SPEC,
            Error::Usage(_) => exit::USAGE,
            Error::Internal(_) => exit::INTERNAL,
        }
    }
}
