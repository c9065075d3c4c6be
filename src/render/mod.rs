//! Stage 4, rendering: a [`NodePlan`] -> the node's file contents -> its envelope.
//!
//! Templates (embedded from `templates/`, strict undefined behaviour) make the contents of
//! files: the bootstrap script, the nftables ruleset and the systemd units. Every value that
//! reaches a shell passes through the one [`shell_quote`] filter (`| sh`). Structured formats
//! are never templated: K3s's config.yaml and `#cloud-config` go through serde_yaml
//! ([`cloud_init`]), Ignition through typed structs and serde_json ([`ignition`]).
//! After rendering, [`check_rendered`] parses what was produced; a failure there is a
//! meshboot bug, reported as such.

pub mod cloud_init;
pub mod ignition;

use crate::firewall::{MESH_INTERFACE, ufw_batch};
use crate::plan::{self, ClusterPlan, Envelope, FileKind, IgnitionVersion, NodePlan};
use crate::secrets::Secrets;
use crate::spec::PortRange;
use minijinja::{Environment, UndefinedBehavior, Value, context};
use std::sync::OnceLock;

/// Template ids: each is a file under `templates/`.
pub const BOOTSTRAP: &str = "bootstrap.sh.j2";
pub const NFTABLES: &str = "nftables.nft.j2";
pub const FIREWALL_UNIT: &str = "meshboot-firewall.service.j2";
pub const TAILSCALED_UNIT: &str = "tailscaled.service.j2";
pub const TAILSCALE_NETWORK: &str = "tailscale.network.j2";
pub const TAILSCALED_DROP_IN: &str = "tailscaled-meshboot.conf.j2";
pub const K3S_DROP_IN: &str = "k3s-meshboot.conf.j2";
pub const MESH_WAIT: &str = "wait-for-mesh.sh.j2";
pub const UFW_GUARD_UNIT: &str = "meshboot-firewall-ufw.service.j2";
pub const NFTABLES_DROP_IN: &str = "nftables-meshboot.conf.j2";
pub const BOOTSTRAP_UNIT: &str = "meshboot-bootstrap.service.j2";
pub const HCLOUD_SCRIPT: &str = "hcloud.sh.j2";
pub const PACKER_TEMPLATE: &str = "meshboot.pkr.hcl.j2";
pub const BAKE_SCRIPT: &str = "bake.sh.j2";

const TEMPLATES: &[(&str, &str)] = &[
    (BOOTSTRAP, include_str!("../../templates/bootstrap.sh.j2")),
    (NFTABLES, include_str!("../../templates/nftables.nft.j2")),
    (
        FIREWALL_UNIT,
        include_str!("../../templates/meshboot-firewall.service.j2"),
    ),
    (
        TAILSCALED_UNIT,
        include_str!("../../templates/tailscaled.service.j2"),
    ),
    (
        TAILSCALE_NETWORK,
        include_str!("../../templates/tailscale.network.j2"),
    ),
    (
        TAILSCALED_DROP_IN,
        include_str!("../../templates/tailscaled-meshboot.conf.j2"),
    ),
    (
        K3S_DROP_IN,
        include_str!("../../templates/k3s-meshboot.conf.j2"),
    ),
    (
        MESH_WAIT,
        include_str!("../../templates/wait-for-mesh.sh.j2"),
    ),
    (
        UFW_GUARD_UNIT,
        include_str!("../../templates/meshboot-firewall-ufw.service.j2"),
    ),
    (
        NFTABLES_DROP_IN,
        include_str!("../../templates/nftables-meshboot.conf.j2"),
    ),
    (
        BOOTSTRAP_UNIT,
        include_str!("../../templates/meshboot-bootstrap.service.j2"),
    ),
    (HCLOUD_SCRIPT, include_str!("../../templates/hcloud.sh.j2")),
    (
        PACKER_TEMPLATE,
        include_str!("../../templates/meshboot.pkr.hcl.j2"),
    ),
    (BAKE_SCRIPT, include_str!("../../templates/bake.sh.j2")),
];

/// The mode both envelopes give a file that names none, so neither names it: cloud-init's
/// `DEFAULT_PERMS` (cc_write_files.py) and Ignition's `DefaultFilePermissions`
/// (internal/exec/util/file.go).
pub const DEFAULT_MODE: u32 = 0o644;

/// A failure while rendering: always a meshboot bug, never the user's input.
#[derive(Debug)]
pub struct RenderError(pub String);

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "internal error while rendering (a meshboot bug, please report it): {}",
            self.0
        )
    }
}

impl std::error::Error for RenderError {}

impl From<RenderError> for crate::error::Error {
    fn from(e: RenderError) -> Self {
        crate::error::Error::Internal(format!("error: {e}\n"))
    }
}

impl From<minijinja::Error> for RenderError {
    fn from(e: minijinja::Error) -> Self {
        RenderError(format!("{e:#}"))
    }
}

/// `bytes` gzipped, deterministically: no file name, modification time 0 and the OS byte
/// "unknown" in the header (RFC 1952 2.3.1: MTIME 0 means no time stamp; OS 255 unknown),
/// so the same input always compresses to the same bytes.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// Quotes `s` as one word for a POSIX shell. Words made only of safe characters stay bare
/// so the script stays readable; anything else is single-quoted, with `'` written as `'\''`.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,+@%".contains(&b));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Quotes `s` as an HCL string literal: `"` and `\` escaped, line breaks and other control
/// characters as escapes, and `${` / `%{` doubled so that HCL reads them literally
/// (HCL native syntax spec, "Template Literals": `$${` and `%%{` are the escapes of the
/// interpolation and directive markers).
pub fn hcl_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn hcl_filter(v: Value) -> Result<String, minijinja::Error> {
    match v.as_str() {
        Some(s) => Ok(hcl_quote(s)),
        None => Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            "`hcl` applied to a value that is not a string",
        )),
    }
}

/// A value inside a `#` comment: on one line.
fn hcl_comment_filter(v: Value) -> String {
    v.to_string()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn sh_filter(v: Value) -> Result<String, minijinja::Error> {
    match v.as_str() {
        Some(s) => Ok(shell_quote(s)),
        None if v.is_undefined() || v.is_none() => Err(minijinja::Error::new(
            minijinja::ErrorKind::UndefinedError,
            "`sh` applied to a missing value",
        )),
        None => Ok(shell_quote(&v.to_string())),
    }
}

/// nft port syntax: `443` or `30000-32767`.
fn port_filter(v: Value) -> Result<String, minijinja::Error> {
    let get = |k: &str| -> Result<u32, minijinja::Error> {
        let n = v.get_attr(k)?;
        u32::try_from(n).map_err(|_| {
            minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                "port is not a number",
            )
        })
    };
    Ok(PortRange {
        start: get("start")?,
        end: get("end")?,
    }
    .to_string())
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .unwrap_or_default();
        env.set_syntax(syntax);
        env.add_filter("sh", sh_filter);
        env.add_filter("hcl", hcl_filter);
        env.add_filter("hcl_comment", hcl_comment_filter);
        env.add_filter("port", port_filter);
        for (name, source) in TEMPLATES {
            // The templates are part of the binary; a broken one fails the template test.
            if let Err(e) = env.add_template(name, source) {
                panic!("template {name} does not parse: {e}");
            }
        }
        env
    })
}

fn paths() -> Value {
    context! {
        log => plan::LOG_PATH,
        state_dir => plan::STATE_DIR,
        auth_key => plan::AUTH_KEY_PATH,
        token => plan::TOKEN_PATH,
        k3s_config => plan::K3S_CONFIG_PATH,
        k3s_installer => plan::K3S_INSTALLER_PATH,
        nftables => plan::NFTABLES_PATH,
        bootstrap => plan::BOOTSTRAP_PATH,
    }
}

/// The context of the templates that tie the services together.
fn services(node: &NodePlan) -> Value {
    context! { services => Value::from(minijinja::value::Serde(&node.services)) }
}

fn render_template(name: &str, ctx: Value) -> Result<String, RenderError> {
    Ok(environment().get_template(name)?.render(ctx)?)
}

/// K3s's config.yaml for `node`: everything known at build time. The bootstrap adds what is
/// known only at boot in a config.yaml.d drop-in.
///
/// Every string is double-quoted (as a JSON string, which is a YAML double-quoted scalar):
/// K3s reads its config files with gopkg.in/yaml.v2, a YAML 1.1 parser, and turns each
/// value into a flag with `convert.ToString` (k3s-io/k3s pkg/configfilearg/parser.go
/// `readConfigFile`), so a plain `on`, `yes`, `y`, `off`, `null` or `1e3` (all valid node
/// names) would reach K3s as `true`, `false`, an empty value or `1000`. A YAML 1.2 emitter
/// such as serde_yaml leaves those plain.
pub fn k3s_config(node: &NodePlan) -> Result<String, RenderError> {
    use plan::ConfigValue;
    use std::fmt::Write as _;
    let quoted = |s: &str| serde_json::to_string(s).map_err(|e| RenderError(e.to_string()));
    let mut out = format!(
        "# Written by meshboot for {}; the boot adds {}.\n",
        node.name, node.k3s.boot_config.path
    );
    for (key, value) in &node.k3s.config {
        match value {
            ConfigValue::Bool(b) => {
                let _ = writeln!(out, "{key}: {b}");
            }
            ConfigValue::Str(s) => {
                let _ = writeln!(out, "{key}: {}", quoted(s)?);
            }
            // An empty list stays a list: a bare `key:` is null, which K3s would pass as a
            // flag without a value.
            ConfigValue::List(l) if l.is_empty() => {
                let _ = writeln!(out, "{key}: []");
            }
            ConfigValue::List(l) => {
                let _ = writeln!(out, "{key}:");
                for s in l {
                    let _ = writeln!(out, "- {}", quoted(s)?);
                }
            }
        }
    }
    Ok(out)
}

/// The bootstrap script of `node`.
pub fn bootstrap_script(cluster: &str, node: &NodePlan) -> Result<String, RenderError> {
    // A pool node's reboot windows, each file serialized here; the bootstrap only picks.
    let reboot_windows = node
        .reboot_window_choice
        .iter()
        .flat_map(|c| &c.windows)
        .map(window_file)
        .collect::<Result<Vec<_>, _>>()?;
    render_template(
        BOOTSTRAP,
        context! {
            cluster => cluster,
            node => Value::from(minijinja::value::Serde(node)),
            paths => paths(),
            units => context! { firewall => plan::FIREWALL_UNIT },
            ufw_batch => ufw_batch(&node.firewall),
            reboot_windows => reboot_windows,
            reboot_choice => Value::from(minijinja::value::Serde(&node.reboot_window_choice)),
        },
    )
}

/// The OS-update reboot settings of `node`: Flatcar's update.conf, or Zincati's TOML.
fn os_updates(node: &NodePlan) -> Result<String, RenderError> {
    let w = node
        .reboot_window
        .as_ref()
        .ok_or_else(|| RenderError("an OS-update file without a reboot window".into()))?;
    window_file(w)
}

/// The file that sets reboot window `w`.
fn window_file(w: &plan::updates::RebootWindow) -> Result<String, RenderError> {
    match w.path {
        plan::updates::FLATCAR_UPDATE_CONF => Ok(plan::updates::flatcar_update_conf(w)),
        _ => plan::updates::zincati_config(w).map_err(RenderError),
    }
}

/// The script `meshboot hcloud` prints.
pub fn hcloud_script(plan: &crate::delivery::hcloud::HcloudPlan) -> Result<String, RenderError> {
    render_template(
        HCLOUD_SCRIPT,
        context! { plan => Value::from(minijinja::value::Serde(plan)) },
    )
}

/// The two files `meshboot packer` writes: the Packer template and bake.sh.
pub fn packer_files(
    plan: &crate::delivery::packer::PackerPlan,
) -> Result<(String, String), RenderError> {
    let ctx = || context! { plan => Value::from(minijinja::value::Serde(plan)) };
    Ok((
        render_template(PACKER_TEMPLATE, ctx())?,
        render_template(BAKE_SCRIPT, ctx())?,
    ))
}

/// One file of a node, ready to deliver.
#[derive(Debug, Clone)]
pub struct RenderedFile {
    pub path: String,
    pub mode: u32,
    pub contents: String,
    /// A systemd unit (delivered under `systemd.units` by Ignition).
    pub unit: Option<String>,
    pub enable: bool,
}

/// The contents of every file the plan lists for `node`.
pub fn node_files(
    cluster: &ClusterPlan,
    node: &NodePlan,
    secrets: &Secrets,
) -> Result<Vec<RenderedFile>, RenderError> {
    node.files
        .iter()
        .map(|f| {
            let contents = match f.kind {
                FileKind::Bootstrap => bootstrap_script(&cluster.cluster, node)?,
                FileKind::K3sConfig => k3s_config(node)?,
                FileKind::AuthKey => {
                    let minted_for = crate::secrets::KeyFor {
                        tags: node.tailscale.tags.clone(),
                        ephemeral: node.tailscale.ephemeral,
                    };
                    if let Some(minted) = secrets.minted.get(&minted_for)
                        && node.tailscale.key == plan::KeySource::AuthKey
                    {
                        return Ok(RenderedFile {
                            path: f.path.clone(),
                            mode: f.mode,
                            contents: format!("{}\n", minted.expose()),
                            unit: None,
                            enable: false,
                        });
                    }
                    let key = match node.tailscale.key {
                        plan::KeySource::AuthKey => &secrets.auth_key,
                        plan::KeySource::PoolAuthKey => secrets.pool_auth_key.as_ref().ok_or_else(|| {
                            RenderError("a pool key file without tailscale.pool_auth_key".into())
                        })?,
                    };
                    let mut key = key.expose().to_string();
                    if let Some(params) = node.tailscale.key_params
                        && !key.contains('?')
                    {
                        key.push_str(params);
                    }
                    key + "\n"
                }
                // Agents join with the agent token when there is one; servers always
                // with the server token (and hand the agent token to agents).
                FileKind::Token => match (&secrets.agent_token, node.role.is_server()) {
                    (Some(agent), false) => format!("{}\n", agent.expose()),
                    _ => format!("{}\n", secrets.token.expose()),
                },
                FileKind::AgentToken => match &secrets.agent_token {
                    Some(agent) => format!("{}\n", agent.expose()),
                    None => return Err(RenderError("an agent-token file without k3s.agent_token".into())),
                },
                FileKind::Nftables => render_template(
                    NFTABLES,
                    context! { node => Value::from(minijinja::value::Serde(node)), mesh_interface => MESH_INTERFACE, metadata => crate::firewall::METADATA_V4 },
                )?,
                FileKind::FirewallUnit => render_template(FIREWALL_UNIT, context! { paths => paths() })?,
                FileKind::TailscaledUnit => match &node.tailscale.install {
                    plan::TailscaleInstall::Static { dir, .. } => render_template(TAILSCALED_UNIT, context! { ts_dir => *dir })?,
                    plan::TailscaleInstall::Apt { .. } => return Err(RenderError("a tailscaled unit for an apt install".into())),
                },
                FileKind::TailscaleNetwork => render_template(TAILSCALE_NETWORK, context! {})?,
                FileKind::TailscaledDropIn => render_template(TAILSCALED_DROP_IN, services(node))?,
                FileKind::K3sDropIn => render_template(K3S_DROP_IN, services(node))?,
                FileKind::MeshWait => render_template(MESH_WAIT, services(node))?,
                FileKind::UfwGuardUnit => render_template(UFW_GUARD_UNIT, context! { paths => paths() })?,
                FileKind::NftablesDropIn => render_template(NFTABLES_DROP_IN, context! { firewall_unit => plan::FIREWALL_UNIT })?,
                FileKind::BootstrapUnit => render_template(BOOTSTRAP_UNIT, context! { paths => paths() })?,
                FileKind::OsUpdates => os_updates(node)?,
            };
            Ok(RenderedFile {
                path: f.path.clone(),
                mode: f.mode,
                contents,
                unit: f.is_unit().then(|| f.unit_name().to_string()),
                enable: f.enable,
            })
        })
        .collect()
}

/// A node's finished artifact.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub node: String,
    pub file_name: String,
    pub envelope: Envelope,
    pub contents: String,
    /// Its large files are gzipped (`--compress`).
    pub compressed: bool,
}

/// Renders `node` in its own envelope.
pub fn render_node(
    cluster: &ClusterPlan,
    node: &NodePlan,
    secrets: &Secrets,
) -> Result<Artifact, RenderError> {
    render_node_as(
        cluster,
        node,
        secrets,
        node.envelope,
        cluster.ignition_version,
        cluster.compress,
    )
}

/// Renders `node` in a chosen envelope, compressed or not (tests compare both envelopes,
/// and both forms, of one node; the size budget asks what compression would save).
pub fn render_node_as(
    cluster: &ClusterPlan,
    node: &NodePlan,
    secrets: &Secrets,
    envelope: Envelope,
    ignition_version: IgnitionVersion,
    compress: bool,
) -> Result<Artifact, RenderError> {
    let form = Form {
        envelope,
        ignition_version,
        compress,
    };
    Ok(render_checked(cluster, node, secrets, form)?.1)
}

/// How a node's files are wrapped: the envelope, its Ignition version, compressed or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Form {
    envelope: Envelope,
    ignition_version: IgnitionVersion,
    compress: bool,
}

/// The envelope of `files` for `node` in `form`. The envelopes differ only in how they
/// deliver the files and enable the bootstrap unit: cloud-init enables and starts it from
/// `runcmd`, Ignition through its preset.
fn envelope_of(
    node: &NodePlan,
    files: &[RenderedFile],
    form: Form,
) -> Result<Artifact, RenderError> {
    let contents = match form.envelope {
        Envelope::CloudInit => cloud_init::document(files, form.compress)?,
        Envelope::Ignition => ignition::document(files, form.ignition_version, form.compress)?,
    };
    Ok(Artifact {
        node: node.name.clone(),
        file_name: format!("{}.{}", node.name, form.envelope.extension()),
        envelope: form.envelope,
        contents,
        compressed: form.compress,
    })
}

/// A node rendered in full, its files and its artifact, parsed back ([`check_rendered`]).
fn render_checked(
    cluster: &ClusterPlan,
    node: &NodePlan,
    secrets: &Secrets,
    form: Form,
) -> Result<(Vec<RenderedFile>, Artifact), RenderError> {
    let files = node_files(cluster, node, secrets)?;
    let artifact = envelope_of(node, &files, form)?;
    check_rendered(&artifact, &files)?;
    Ok((files, artifact))
}

/// Two placeholder names, of different lengths, that no spec uses: a shape is rendered
/// under both, and kept only when the two renderings differ in nothing but the name.
const PLACEHOLDERS: [&str; 2] = ["meshboot-name-placeholder-a", "meshboot-placeholder-b"];

/// True when `s` reaches every output as it is: a DNS name (lowercase letters, digits, `-`
/// and `.`), which `shell_quote` leaves bare, JSON needs no escape for, percent-encoding
/// leaves alone, and serde_yaml writes as a plain scalar (not `'123'` or `'true'`).
fn verbatim(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !PLACEHOLDERS.iter().any(|p| s.contains(p))
        && serde_yaml::to_string(s).is_ok_and(|y| y.strip_suffix('\n') == Some(s))
}

/// What every node of one shape shares: the nodes whose plans are equal once renamed to
/// the placeholder ([`NodePlan::renamed`]), such as the nodes of one `count` entry.
struct Shape {
    /// The plan under `PLACEHOLDERS[0]`.
    plan: NodePlan,
    /// Its files under `PLACEHOLDERS[0]`.
    files: Vec<RenderedFile>,
    /// Its whole artifact under `PLACEHOLDERS[0]`, when the envelope carries the name as
    /// it is (uncompressed cloud-init: literal YAML blocks; uncompressed Ignition: data
    /// URLs that stay URL-escaped for any name, see `ignition::escapes_for_any_name`);
    /// else each node's files are wrapped anew (a data URL that may turn base64, gzip).
    document: Option<String>,
}

/// Renders the nodes of one cluster, rendering what nodes of one shape share once.
///
/// The first node of a shape is rendered in full under two placeholder names and parsed
/// back ([`check_rendered`]); the shape is kept only when the two renderings are equal
/// with the placeholders taken out, that is when the name reaches the output only as it
/// is (never quoted, escaped, encoded or measured). Every other node of the shape is that
/// rendering with its own name put in, when its name (and every value built from it)
/// is [`verbatim`] too; any node that is not is rendered in full. The tests compare this
/// with a full rendering of every node of every fixture, byte for byte.
pub struct Renderer<'a> {
    cluster: &'a ClusterPlan,
    secrets: &'a Secrets,
    form: Form,
    shapes: Vec<Shape>,
    /// Nodes rendered in full so far (two per shape, one per node that shares none).
    full: usize,
}

impl<'a> Renderer<'a> {
    /// Renders nodes of `cluster` in their own envelopes.
    pub fn new(cluster: &'a ClusterPlan, secrets: &'a Secrets) -> Self {
        Renderer {
            cluster,
            secrets,
            form: Form {
                envelope: Envelope::CloudInit,
                ignition_version: cluster.ignition_version,
                compress: cluster.compress,
            },
            shapes: Vec::new(),
            full: 0,
        }
    }

    /// How many full renderings this renderer has made.
    pub fn full_renderings(&self) -> usize {
        self.full
    }

    /// `node`'s artifact in its own envelope: the same bytes as [`render_node`].
    pub fn render(&mut self, node: &NodePlan) -> Result<Artifact, RenderError> {
        let form = Form {
            envelope: node.envelope,
            ..self.form
        };
        let named = node.renamed(PLACEHOLDERS[0]);
        let own_values = node.renamed("").k3s.config;
        // The values the name flows into: the name itself, and each config value renaming
        // changes (`<name>.<tailnet>`).
        let name_values = node
            .k3s
            .config
            .iter()
            .filter(|(k, v)| own_values.get(*k) != Some(v));
        let shared = verbatim(&node.name)
            && name_values.into_iter().all(|(_, v)| match v {
                crate::plan::ConfigValue::Str(s) => verbatim(s),
                crate::plan::ConfigValue::List(l) => l.iter().all(|s| verbatim(s)),
                crate::plan::ConfigValue::Bool(_) => true,
            });
        if !shared {
            self.full += 1;
            return Ok(render_checked(self.cluster, node, self.secrets, form)?.1);
        }
        let found = self.shapes.iter().rposition(|s| s.plan == named);
        let shape = match found {
            Some(i) => &self.shapes[i],
            None => match self.shape(named, form)? {
                Some(shape) => {
                    self.shapes.push(shape);
                    &self.shapes[self.shapes.len() - 1]
                }
                None => {
                    self.full += 1;
                    return Ok(render_checked(self.cluster, node, self.secrets, form)?.1);
                }
            },
        };
        let name = node.name.as_str();
        if let Some(document) = &shape.document {
            return Ok(Artifact {
                node: name.to_string(),
                file_name: format!("{name}.{}", form.envelope.extension()),
                envelope: form.envelope,
                contents: document.replace(PLACEHOLDERS[0], name),
                compressed: form.compress,
            });
        }
        let files: Vec<RenderedFile> = shape
            .files
            .iter()
            .map(|f| RenderedFile {
                contents: f.contents.replace(PLACEHOLDERS[0], name),
                ..f.clone()
            })
            .collect();
        envelope_of(node, &files, form)
    }

    /// The shape of `named` (a plan under `PLACEHOLDERS[0]`), or `None` when its output
    /// depends on the name in any way other than holding it as it is.
    fn shape(&mut self, named: NodePlan, form: Form) -> Result<Option<Shape>, RenderError> {
        self.full += 2;
        let other = named.renamed(PLACEHOLDERS[1]);
        let (files, artifact) = render_checked(self.cluster, &named, self.secrets, form)?;
        let (other_files, other_artifact) =
            render_checked(self.cluster, &other, self.secrets, form)?;
        const MARK: &str = "\u{0}";
        let same =
            |a: &str, b: &str| a.replace(PLACEHOLDERS[0], MARK) == b.replace(PLACEHOLDERS[1], MARK);
        let files_agree = files.len() == other_files.len()
            && files.iter().zip(&other_files).all(|(a, b)| {
                a.path == b.path
                    && a.mode == b.mode
                    && a.unit == b.unit
                    && a.enable == b.enable
                    && same(&a.contents, &b.contents)
            });
        if !files_agree {
            return Ok(None);
        }
        // The envelope holds each file as it is (cloud-init's literal blocks), or escaped
        // to itself in the name's part whatever the name (an Ignition data URL that stays
        // URL-escaped for every name length). Gzip is never: each node is wrapped anew.
        let verbatim_envelope = !form.compress
            && match form.envelope {
                Envelope::CloudInit => true,
                Envelope::Ignition => files.iter().all(|f| {
                    ignition::escapes_for_any_name(f.contents.as_bytes(), PLACEHOLDERS[0])
                }),
            };
        // Else (or should the two documents differ in more than the name) each node's files
        // are wrapped anew.
        let document = (verbatim_envelope && same(&artifact.contents, &other_artifact.contents))
            .then_some(artifact.contents);
        Ok(Some(Shape {
            plan: named,
            files,
            document,
        }))
    }
}

/// Parses what was rendered: the envelope, the bootstrap's first line and K3s's config.yaml.
/// A failure is our bug.
fn check_rendered(a: &Artifact, files: &[RenderedFile]) -> Result<(), RenderError> {
    match a.envelope {
        Envelope::CloudInit => {
            if !a.contents.starts_with("#cloud-config\n") {
                return Err(RenderError(format!(
                    "{}: #cloud-config is not on line 1",
                    a.file_name
                )));
            }
            serde_yaml::from_str::<serde_yaml::Value>(&a.contents).map_err(|e| {
                RenderError(format!(
                    "{}: the cloud-config does not parse back: {e}",
                    a.file_name
                ))
            })?;
        }
        Envelope::Ignition => {
            serde_json::from_str::<serde_json::Value>(&a.contents).map_err(|e| {
                RenderError(format!(
                    "{}: the Ignition JSON does not parse back: {e}",
                    a.file_name
                ))
            })?;
        }
    }
    for f in files.iter().filter(|f| f.path == plan::BOOTSTRAP_PATH) {
        if !f.contents.starts_with("#!/bin/sh\n") {
            return Err(RenderError("the bootstrap script lost its #! line".into()));
        }
    }
    for f in files.iter().filter(|f| f.path == plan::K3S_CONFIG_PATH) {
        let parsed = serde_yaml::from_str::<serde_yaml::Value>(&f.contents).map_err(|e| {
            RenderError(format!(
                "{}: config.yaml does not parse back: {e}",
                a.file_name
            ))
        })?;
        if !parsed.is_mapping() {
            return Err(RenderError(format!(
                "{}: config.yaml is not a mapping",
                a.file_name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_loads() {
        let env = environment();
        for (name, _) in TEMPLATES {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn only_dns_names_that_yaml_leaves_plain_are_verbatim() {
        assert!(!verbatim("1e3") && verbatim("1e3-1") && verbatim("w-30.example.ts.net"));
        assert!(!verbatim("W-1") && !verbatim("a b") && !verbatim(PLACEHOLDERS[1]));
    }

    #[test]
    fn shell_quote_leaves_safe_words_bare_and_quotes_the_rest() {
        assert_eq!(shell_quote("cp-1"), "cp-1");
        assert_eq!(shell_quote("--hostname=cp-1"), "--hostname=cp-1");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$(touch /x)"), "'$(touch /x)'");
        assert_eq!(shell_quote("~root"), "'~root'");
    }
}
