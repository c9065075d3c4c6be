//! Stage 2c, secrets: `{ env: NAME }` and `{ file: PATH }` references -> [`Secrets`] for
//! the renderer.
//!
//! A [`Secret`] never shows its value through `Debug`, `Display` or `Serialize`; the only way
//! to the value is [`Secret::expose`], which the renderer calls when it writes the key and
//! token files. With `--redact`, nothing is read and a placeholder takes the value's place.
//! What a secret *looks like*, and how it is kept out of messages, is
//! [`crate::redact`]'s job.

use crate::diagnostics::Diagnostic;
use crate::problem::{IoReason, Problem, SecretSource};
use crate::spec::{Role, SecretRef, Spec};
use camino::Utf8Path;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::io::Read as _;

/// The largest secret file meshboot reads (a key or token is well under 1 KiB).
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

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

/// The secrets a cluster needs.
#[derive(Debug, Clone)]
pub struct Secrets {
    pub auth_key: Secret,
    /// The pool nodes' key, when the spec has `tailscale.pool_auth_key`.
    pub pool_auth_key: Option<Secret>,
    pub token: Secret,
    /// The agents' token, when the spec has `k3s.agent_token`.
    pub agent_token: Option<Secret>,
    /// True when the auth key is a Tailscale OAuth client secret (`tskey-client-`).
    pub auth_key_is_oauth: bool,
    /// True when the pools' own key is one.
    pub pool_auth_key_is_oauth: bool,
    /// Keys minted from the OAuth client secret (`--mint-auth-key`), by the nodes they are
    /// for: a node gets the one for its tags and kind instead of the secret.
    pub minted: BTreeMap<KeyFor, Secret>,
}

/// Which nodes a minted key is for: those with exactly these tags, ephemeral (pool nodes)
/// or not (fixed nodes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyFor {
    pub tags: Vec<String>,
    pub ephemeral: bool,
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

/// The placeholder of an optional secret the spec names.
fn optional(r: &Option<SecretRef>, field: &str) -> Option<Secret> {
    r.as_ref().map(|_| Secret::new(placeholder(field)))
}

/// Resolves every secret; each missing or unreadable one becomes a diagnostic naming its
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
            pool_auth_key: optional(&spec.tailscale.pool_auth_key, "tailscale.pool_auth_key"),
            token: Secret::new(placeholder("k3s.token")),
            agent_token: optional(&spec.k3s.agent_token, "k3s.agent_token"),
            auth_key_is_oauth: false,
            pool_auth_key_is_oauth: false,
            minted: BTreeMap::new(),
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
    let pool_auth_key = spec
        .tailscale
        .pool_auth_key
        .as_ref()
        .map(|r| read_one(r, "tailscale.pool_auth_key", spec_dir, env, &mut diags));
    let token = read_one(&spec.k3s.token, "k3s.token", spec_dir, env, &mut diags);
    let agent_token = spec
        .k3s
        .agent_token
        .as_ref()
        .map(|r| read_one(r, "k3s.agent_token", spec_dir, env, &mut diags));
    if let (Some(t), Some(Some(a))) = (&token, &agent_token)
        && t == a
    {
        diags.push(Diagnostic::new(
            "k3s.agent_token",
            Problem::AgentTokenIsServerToken,
        ));
    }
    match (auth_key, token) {
        (Some(auth_key), Some(token)) if diags.is_empty() => {
            let is_oauth = |key: &str| key.starts_with("tskey-client-");
            let auth_key_is_oauth = is_oauth(&auth_key);
            let pool_auth_key = pool_auth_key.flatten();
            let pool_auth_key_is_oauth = pool_auth_key.as_deref().is_some_and(is_oauth);
            // Every node must advertise a tag: OAuth keys are always tagged. Fixed nodes of
            // both roles join with `auth_key`; pools (agents) with `pool_auth_key` if set.
            let untagged = |role: Role, role_tags: &[String]| {
                spec.tailscale.tags.is_empty()
                    && role_tags.is_empty()
                    && spec.nodes.iter().any(|n| n.role == role)
            };
            let agents_untagged = untagged(Role::Agent, &spec.tailscale.agent_tags);
            for (field, oauth, untagged) in [
                (
                    "tailscale.auth_key",
                    auth_key_is_oauth,
                    untagged(Role::Server, &spec.tailscale.server_tags) || agents_untagged,
                ),
                (
                    "tailscale.pool_auth_key",
                    pool_auth_key_is_oauth,
                    agents_untagged,
                ),
            ] {
                if oauth && spec.tailscale.login_server.is_some() {
                    diags.push(Diagnostic::new(
                        "tailscale.login_server",
                        Problem::OAuthWithLoginServer,
                    ));
                }
                if oauth && untagged {
                    diags.push(Diagnostic::new(field, Problem::OAuthWithoutTags));
                }
            }
            if !diags.is_empty() {
                diags.dedup();
                return Err(diags);
            }
            Ok(Secrets {
                auth_key: Secret(auth_key),
                pool_auth_key: pool_auth_key.map(Secret),
                token: Secret(token),
                agent_token: agent_token.flatten().map(Secret),
                auth_key_is_oauth,
                pool_auth_key_is_oauth,
                minted: BTreeMap::new(),
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
    let (raw, source) = match r {
        SecretRef::Env(name) => match env.var(name) {
            Some(v) => (v, SecretSource::Env(name.clone())),
            None => {
                diags.push(
                    Diagnostic::new(field, Problem::EnvNotSet(name.clone())).narrow(name.as_str()),
                );
                return None;
            }
        },
        SecretRef::File(path) => {
            let full = spec_dir.join(path);
            match read_secret_file(&full) {
                Ok(v) => (v, SecretSource::File(full.to_string())),
                Err(reason) => {
                    diags.push(
                        Diagnostic::new(
                            field,
                            Problem::SecretFileIoReason {
                                path: full.to_string(),
                                reason,
                            },
                        )
                        .narrow(path.as_str()),
                    );
                    return None;
                }
            }
        }
    };
    let reference = match r {
        SecretRef::Env(name) => name.as_str(),
        SecretRef::File(path) => path.as_str(),
    };
    // Files written by `echo` or an editor end in a newline; that is not part of the secret.
    let value = raw.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        diags.push(Diagnostic::new(field, Problem::EmptySecret(source)).narrow(reference));
        return None;
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        diags.push(Diagnostic::new(field, Problem::SecretHasWhitespace(source)).narrow(reference));
        return None;
    }
    Some(value.to_string())
}

/// Reads at most [`MAX_SECRET_BYTES`] of a secret file (so `/dev/zero` cannot hang or
/// exhaust memory).
fn read_secret_file(path: &Utf8Path) -> Result<String, IoReason> {
    if path.is_dir() {
        return Err(IoReason::Directory);
    }
    let f = std::fs::File::open(path).map_err(|e| IoReason::from_io(&e))?;
    let mut bytes = Vec::new();
    f.take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| IoReason::from_io(&e))?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        return Err(IoReason::TooLarge {
            limit: MAX_SECRET_BYTES,
        });
    }
    String::from_utf8(bytes).map_err(|_| IoReason::NotUtf8)
}
