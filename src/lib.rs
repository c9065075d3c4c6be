//! meshboot compiles one cluster spec into a first-boot config per node.
//!
//! The pipeline, one module per stage: [`source`] reads the YAML keeping positions;
//! [`spec`] reads it into typed structs, collecting structural errors; [`validate`] runs the
//! semantic checks; [`secrets`] resolves `{env}`/`{file}` references; [`plan`] makes every
//! decision per node (with [`firewall`] for the rules); [`render`] turns each plan into file
//! contents and wraps them in cloud-init or Ignition; [`emit`] checks the size budget and
//! writes the files with `SHA256SUMS`. [`diagnostics`] renders every problem with its spec
//! path, file, line, column and a caret. [`compile`] runs the whole pipeline.
//! [`k3s_flags`] is the one table of the K3s flags meshboot sets itself, which validate, plan,
//! `meshboot plan` and the README read.

pub mod cli;
pub mod diagnostics;
pub mod emit;
pub mod firewall;
pub mod k3s_flags;
pub mod plan;
pub mod render;
pub mod secrets;
pub mod source;
pub mod spec;
pub mod validate;

use camino::Utf8Path;
use diagnostics::{Diagnostic, render_all};
use plan::{ClusterPlan, IgnitionVersion};
use render::Artifact;
use secrets::{Environment, Secrets};
use source::SourceMap;
use spec::Spec;

/// Exit codes, as documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    pub const INVALID_SPEC: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const INTERNAL: i32 = 3;
}

/// Why a run failed. `message` is ready to print and never contains a secret value.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: exit::USAGE,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub redact: bool,
    pub strict: bool,
    pub ignition_version: IgnitionVersion,
}

/// A spec that passed every check, with its warnings rendered for stderr.
pub struct Checked {
    pub spec: Spec,
    pub secrets: Secrets,
    pub plan: ClusterPlan,
    /// Rendered warnings (empty when there are none).
    pub warnings: String,
}

/// Reads, validates and plans `text` (the contents of `path`), resolving secrets through
/// `env`. Collects every problem before failing.
pub fn check(
    path: &Utf8Path,
    text: &str,
    env: &dyn Environment,
    opts: &Options,
) -> Result<Checked, Failure> {
    let file = path.as_str();
    let (root, map) = match source::parse(text) {
        Ok(ok) => ok,
        Err(e) => {
            let d = Diagnostic::error("", e.message).help(e.help).at(e.span);
            let report = render_all(&[d], file, &SourceMap::new(source::strip_bom(text)));
            return Err(Failure {
                code: exit::INVALID_SPEC,
                message: report,
            });
        }
    };
    let mut diags = Vec::new();
    let spec = spec::read(&root, &mut diags);
    let fail = |diags: &[Diagnostic]| Failure {
        code: exit::INVALID_SPEC,
        message: render_all(diags, file, &map),
    };
    let Some(spec) = spec else {
        return Err(fail(&diags));
    };
    diags.extend(validate::validate(&spec));
    let spec_dir = path
        .parent()
        .filter(|p| !p.as_str().is_empty())
        .unwrap_or(Utf8Path::new("."));
    let secrets = match secrets::resolve(&spec, spec_dir, env, opts.redact) {
        Ok(s) => Some(s),
        Err(mut ds) => {
            diags.append(&mut ds);
            None
        }
    };
    let has_errors = diags.iter().any(Diagnostic::is_error);
    let has_warnings = diags.iter().any(|d| !d.is_error());
    if has_errors || (opts.strict && has_warnings) {
        let mut msg = fail(&diags).message;
        if !has_errors {
            msg.push_str("warnings are errors under --strict\n");
        }
        return Err(Failure {
            code: exit::INVALID_SPEC,
            message: msg,
        });
    }
    let Some(secrets) = secrets else {
        return Err(fail(&diags));
    };
    let plan = plan::plan(&spec, opts.ignition_version, secrets.auth_key_is_oauth);
    let warnings = if has_warnings {
        render_all(&diags, file, &map)
    } else {
        String::new()
    };
    Ok(Checked {
        spec,
        secrets,
        plan,
        warnings,
    })
}

/// [`check`] for the raw bytes of a spec file: text that is not UTF-8 is an invalid spec
/// (exit 1), reported at the line and column of the first byte that is not.
pub fn check_bytes(
    path: &Utf8Path,
    bytes: &[u8],
    env: &dyn Environment,
    opts: &Options,
) -> Result<Checked, Failure> {
    match source::decode(bytes) {
        Ok(text) => check(path, text, env, opts),
        Err(e) => {
            let d = Diagnostic::error("", e.message).help(e.help).at(e.span);
            let lossy = String::from_utf8_lossy(bytes);
            Err(Failure {
                code: exit::INVALID_SPEC,
                message: render_all(&[d], path.as_str(), &SourceMap::new(&lossy)),
            })
        }
    }
}

/// Renders every node of a checked spec and enforces the user-data size limit.
pub fn render_all_nodes(checked: &Checked) -> Result<Vec<Artifact>, Failure> {
    let mut artifacts = Vec::new();
    let mut too_big = Vec::new();
    for node in &checked.plan.nodes {
        let a =
            render::render_node(&checked.plan, node, &checked.secrets).map_err(|e| Failure {
                code: exit::INTERNAL,
                message: format!("error: {e}\n"),
            })?;
        if a.contents.len() > emit::USER_DATA_LIMIT {
            too_big.push(format!(
                "error: {}: {} bytes, over Hetzner's {}-byte user-data limit; nothing was written\n  = help: drop what the node does not need (extra args, labels, public ports) or deliver the config another way (a Packer image)\n",
                a.file_name,
                a.contents.len(),
                emit::USER_DATA_LIMIT
            ));
        }
        artifacts.push(a);
    }
    if !too_big.is_empty() {
        return Err(Failure {
            code: exit::INVALID_SPEC,
            message: too_big.concat(),
        });
    }
    Ok(artifacts)
}
