//! Secret resolution: `{ env: NAME }` and `{ file: PATH }` references -> values.
//!
//! A [`Secret`] never shows its value through `Debug`, `Display` or `Serialize`; the only way
//! to the value is [`Secret::expose`], which the renderer calls when it writes the key and
//! token files. With `--redact`, nothing is read and a placeholder takes the value's place.

use crate::diagnostics::Diagnostic;
use crate::spec::{SecretRef, Spec};
use camino::Utf8Path;
use serde::{Serialize, Serializer};

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value itself. Call only where the value is written into a secret file.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<secret>")
    }
}

/// The two secrets a cluster needs.
#[derive(Debug, Clone)]
pub struct Secrets {
    pub auth_key: Secret,
    pub token: Secret,
    /// True when the auth key is a Tailscale OAuth client secret (`tskey-client-`).
    pub auth_key_is_oauth: bool,
}

/// Where secret values come from: the process environment in the binary, a fixed map in
/// tests (so tests never race on `std::env`).
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Environment for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Placeholder written instead of a secret under `--redact`.
pub fn placeholder(field: &str) -> String {
    format!("REDACTED({field})")
}

/// Resolves both secrets; every missing or unreadable one becomes a diagnostic naming its
/// spec field. `spec_dir` anchors relative `file:` paths.
pub fn resolve(
    spec: &Spec,
    spec_dir: &Utf8Path,
    env: &dyn Environment,
    redact: bool,
) -> Result<Secrets, Vec<Diagnostic>> {
    if redact {
        return Ok(Secrets {
            auth_key: Secret::new(placeholder("tailscale.auth_key")),
            token: Secret::new(placeholder("k3s.token")),
            auth_key_is_oauth: false,
        });
    }
    let mut diags = Vec::new();
    let auth_key = read_one(
        &spec.tailscale.auth_key,
        "tailscale.auth_key",
        spec_dir,
        env,
        &mut diags,
    );
    let token = read_one(&spec.k3s.token, "k3s.token", spec_dir, env, &mut diags);
    match (auth_key, token) {
        (Some(auth_key), Some(token)) if diags.is_empty() => {
            let auth_key_is_oauth = auth_key.starts_with("tskey-client-");
            if auth_key_is_oauth && spec.tailscale.tags.is_empty() {
                diags.push(
                    Diagnostic::error(
                        "tailscale.auth_key",
                        "the auth key is an OAuth client secret (tskey-client-…), which needs tags",
                    )
                    .help("add `tags: [tag:k3s]` under `tailscale:` (the OAuth client must own those tags)"),
                );
                return Err(diags);
            }
            Ok(Secrets {
                auth_key: Secret(auth_key),
                token: Secret(token),
                auth_key_is_oauth,
            })
        }
        _ => Err(diags),
    }
}

fn read_one(
    r: &SecretRef,
    field: &str,
    spec_dir: &Utf8Path,
    env: &dyn Environment,
    diags: &mut Vec<Diagnostic>,
) -> Option<String> {
    let raw = match r {
        SecretRef::Env(name) => match env.var(name) {
            Some(v) => v,
            None => {
                diags.push(
                    Diagnostic::error(field, format!("environment variable `{name}` is not set"))
                        .help(format!("export {name}=… before running meshboot, or use --redact to render placeholders")),
                );
                return None;
            }
        },
        SecretRef::File(path) => {
            let full = spec_dir.join(path);
            match std::fs::read_to_string(&full) {
                Ok(v) => v,
                Err(e) => {
                    diags.push(
                        Diagnostic::error(field, format!("cannot read secret file {full}: {}", io_reason(&e)))
                            .help("the path is relative to the spec file; check that it exists and is readable"),
                    );
                    return None;
                }
            }
        }
    };
    let value = raw
        .strip_suffix('\n')
        .map(|v| v.strip_suffix('\r').unwrap_or(v))
        .unwrap_or(&raw);
    if value.is_empty() {
        diags.push(
            Diagnostic::error(field, "the secret is empty")
                .help("put the secret value in the variable or file"),
        );
        return None;
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        diags.push(
            Diagnostic::error(
                field,
                "the secret contains whitespace or control characters (is it more than one line?)",
            )
            .help("a key or token is a single word; check what the variable or file holds"),
        );
        return None;
    }
    Some(value.to_string())
}

/// An I/O error's reason without the OS error number noise.
pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}
