//! The command line: clap types, and one function per subcommand that drives the library.

use crate::emit::{self, human_size, share_of_limit};
use crate::k3s_flags::Flag;
use crate::plan::{ClusterPlan, ConfigValue, IgnitionVersion, Join, NodePlan};
use crate::secrets::Environment;
use crate::{Error, Options};
use camino::{Utf8Path, Utf8PathBuf};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::fmt::Write as _;

#[derive(Parser, Debug)]
#[command(
    name = "meshboot",
    version,
    about = "Compile a cluster spec into first-boot configs that bring up K3s on a Tailscale mesh",
    after_help = "Exit codes: 0 ok, 1 invalid spec, 2 usage or I/O error, 3 internal error (a meshboot bug)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write DIR/<node>.yaml or DIR/<node>.ign for every node, plus DIR/SHA256SUMS
    Build {
        /// The cluster spec (YAML)
        spec: Utf8PathBuf,
        /// Output directory (created 0700; files are written 0600). Files of nodes no longer
        /// in the spec that an earlier build there listed in SHA256SUMS are removed
        #[arg(long, short)]
        out: Utf8PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Print one node's first-boot config to stdout
    Render {
        /// The cluster spec (YAML)
        spec: Utf8PathBuf,
        /// The node's name after count expansion, e.g. worker-2
        #[arg(long)]
        node: String,
        #[command(flatten)]
        common: Common,
    },
    /// Validate the spec and resolve its secrets; write nothing
    Check {
        /// The cluster spec (YAML)
        spec: Utf8PathBuf,
        #[command(flatten)]
        vet: Vet,
    },
    /// Print what every node will do: role, OS, K3s flags, open ports, sizes
    Plan {
        /// The cluster spec (YAML)
        spec: Utf8PathBuf,
        #[command(flatten)]
        vet: Vet,
    },
    /// Print a script that creates the nodes in Hetzner Cloud with the hcloud CLI: cloud
    /// firewalls, spread placement groups, one `hcloud server create` per fixed node (pools are
    /// the cluster-autoscaler's)
    Hcloud {
        /// The cluster spec (YAML)
        spec: Utf8PathBuf,
        /// The directory `meshboot build` wrote the nodes' files to (the script reads them);
        /// required unless --firewalls-only
        #[arg(long, short, required_unless_present = "firewalls_only")]
        out: Option<Utf8PathBuf>,
        /// Create only the cloud firewalls, no placement groups or servers: what the
        /// autoscaler's pool servers need when the fixed nodes are created some other way
        #[arg(long, conflicts_with = "out")]
        firewalls_only: bool,
        /// Treat warnings as errors
        #[arg(long)]
        strict: bool,
    },
    /// Write DIR/meshboot.pkr.hcl and DIR/bake.sh: a Packer build of one generic snapshot
    /// per OS and architecture, with the spec's Tailscale and K3s pre-installed
    Packer {
        /// The cluster spec (YAML)
        spec: Utf8PathBuf,
        /// Output directory (created if missing)
        #[arg(long, short)]
        out: Utf8PathBuf,
        /// Treat warnings as errors
        #[arg(long)]
        strict: bool,
    },
    /// Print the Hetzner cluster-autoscaler's Secret (HCLOUD_CLUSTER_CONFIG) and --nodes args
    Autoscaler {
        /// The cluster spec (YAML)
        spec: Utf8PathBuf,
        /// Put the JSON in the Secret as cluster-config.json, for HCLOUD_CLUSTER_CONFIG_FILE
        /// (no environment size limit), instead of HCLOUD_CLUSTER_CONFIG
        #[arg(long)]
        config_file: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Print a commented starter spec (one server, two agents), or write it to --out
    Init {
        /// Write the spec to FILE instead of stdout; an existing FILE is left alone
        #[arg(long, short, value_name = "FILE")]
        out: Option<Utf8PathBuf>,
        /// Replace FILE if it exists
        #[arg(long, requires = "out")]
        force: bool,
    },
    /// Print the completion script for SHELL to stdout
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the JSON Schema of the spec (for editors: see the README)
    Schema,
    /// Print the cluster's tailnet policy (HuJSON): tag owners, grants, SSH, tests
    Policy {
        /// The cluster spec (YAML)
        spec: Utf8PathBuf,
    },
    /// Print system-upgrade-controller Plans that upgrade the nodes to k3s.version
    Upgrade {
        /// The cluster spec (YAML)
        spec: Utf8PathBuf,
    },
    /// Print the commands that fetch the kubeconfig over the mesh from the first server that answers
    Kubeconfig {
        /// The cluster spec (YAML)
        spec: Utf8PathBuf,
    },
}

/// The spec `meshboot init` writes. It is `fixtures/init.yaml`, so every test that runs
/// over the fixtures (golden snapshots, the real consumers, the first-boot sandbox) runs
/// over it too.
pub const STARTER_SPEC: &str = include_str!("../fixtures/init.yaml");

/// `meshboot init`: the starter spec on stdout, or in `out` (never replacing a file
/// unless `force`).
fn init(out: Option<&Utf8Path>, force: bool) -> Result<Output, Error> {
    let Some(path) = out else {
        return Ok(Output {
            stdout: STARTER_SPEC.into(),
            stderr: String::new(),
        });
    };
    let mut file = std::fs::OpenOptions::new();
    // create_new refuses an existing file in the same call that creates it: no window
    // between a check and the write.
    if force {
        file.write(true).create(true).truncate(true);
    } else {
        file.write(true).create_new(true);
    }
    let written = file
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, STARTER_SPEC.as_bytes()));
    match written {
        Ok(()) => Ok(Output {
            stdout: format!("wrote {path}\n"),
            stderr: String::new(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::Usage(format!(
            "error: {path} already exists; meshboot init does not replace it\n  = help: pass --force to replace it, or choose another --out\n"
        ))),
        Err(e) => Err(Error::Usage(format!(
            "error: writing {path}: {}\n",
            crate::problem::IoReason::from_io(&e)
        ))),
    }
}

/// `meshboot completions SHELL`, generated from the same clap types that parse the
/// command line, so they cannot drift.
fn completions(shell: clap_complete::Shell) -> Output {
    let mut script = Vec::new();
    clap_complete::generate(
        shell,
        &mut <Cli as clap::CommandFactory>::command(),
        "meshboot",
        &mut script,
    );
    Output {
        stdout: String::from_utf8_lossy(&script).into_owned(),
        stderr: String::new(),
    }
}

/// `--mint-auth-key[=EXPIRY]`, shared by the commands that check or build a spec.
#[derive(Args, Debug, Clone, Copy)]
pub struct Mint {
    /// Exchange an OAuth client secret (tskey-client-...) for short-lived auth keys through
    /// the Tailscale API, and deliver only those: EXPIRY like 12h, 3d (default 24h, 1h to
    /// 90d); pools get ephemeral keys that last 90d; check and plan only take it into account
    #[arg(
        long,
        value_name = "EXPIRY",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "24h",
        value_parser = crate::mint::parse_expiry
    )]
    pub mint_auth_key: Option<u64>,
}

/// The options of the commands that only vet a spec: `check` and `plan`.
#[derive(Args, Debug)]
pub struct Vet {
    /// Treat warnings as errors
    #[arg(long)]
    pub strict: bool,
    /// Do not read secrets: check validates everything else, plan sizes the nodes with
    /// placeholders
    #[arg(long)]
    pub redact: bool,
    #[command(flatten)]
    pub mint: Mint,
}

#[derive(Args, Debug)]
pub struct Common {
    /// Treat warnings as errors
    #[arg(long)]
    pub strict: bool,
    /// Render placeholders instead of secret values (secrets are not read)
    #[arg(long)]
    pub redact: bool,
    /// Ignition spec version of .ign outputs
    #[arg(long, value_enum, default_value_t = IgnitionArg::V3_3_0)]
    pub ignition_version: IgnitionArg,
    #[command(flatten)]
    pub mint: Mint,
    /// Gzip the large files inside each output (cloud-init encoding: gz+b64, Ignition
    /// compression: gzip), to fit Hetzner's 32 KiB user-data limit
    #[arg(long)]
    pub compress: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum IgnitionArg {
    #[value(name = "3.3.0")]
    V3_3_0,
    #[value(name = "3.4.0")]
    V3_4_0,
}

impl From<IgnitionArg> for IgnitionVersion {
    fn from(v: IgnitionArg) -> Self {
        match v {
            IgnitionArg::V3_3_0 => IgnitionVersion::V3_3,
            IgnitionArg::V3_4_0 => IgnitionVersion::V3_4,
        }
    }
}

/// What a subcommand prints: `stdout` on success, `stderr` always (warnings, progress).
#[derive(Debug, Default)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// Runs one command. `Err` carries the failure and what was printed on stderr before it
/// (warnings).
pub fn run(cmd: &Command, env: &dyn Environment) -> Result<Output, (Error, String)> {
    let mut out = Output::default();
    let (spec_path, opts) = match cmd {
        Command::Schema => {
            out.stdout = crate::schema::schema_json();
            return Ok(out);
        }
        Command::Build { spec, common, .. }
        | Command::Render { spec, common, .. }
        | Command::Autoscaler { spec, common, .. } => (
            spec,
            Options {
                redact: common.redact,
                strict: common.strict,
                ignition_version: common.ignition_version.into(),
                mint_auth_key: common.mint.mint_auth_key,
                target: None,
                compress: common.compress,
                autoscaler: matches!(cmd, Command::Autoscaler { .. }),
            },
        ),
        Command::Check { spec, vet } | Command::Plan { spec, vet } => (
            spec,
            Options {
                redact: vet.redact,
                strict: vet.strict,
                ignition_version: IgnitionVersion::default(),
                mint_auth_key: vet.mint.mint_auth_key,
                target: None,
                compress: false,
                autoscaler: false,
            },
        ),
        // Commands that read the spec but no secret: they print nothing of a node's own.
        Command::Policy { spec } | Command::Upgrade { spec } | Command::Kubeconfig { spec } => (
            spec,
            Options {
                redact: true,
                ..Options::default()
            },
        ),
        Command::Hcloud {
            spec,
            strict,
            firewalls_only,
            ..
        } => (
            spec,
            Options {
                // No secret: the script names the files build wrote.
                redact: true,
                strict: *strict,
                // Firewalls need no node's server type, location or image.
                target: (!firewalls_only).then_some(crate::validate::Target::Hcloud),
                ..Options::default()
            },
        ),
        Command::Packer { spec, strict, .. } => (
            spec,
            Options {
                // No secret: an image holds none.
                redact: true,
                strict: *strict,
                ignition_version: IgnitionVersion::default(),
                mint_auth_key: None,
                compress: false,
                autoscaler: false,
                target: Some(crate::validate::Target::Packer),
            },
        ),
        // The commands without a spec answer here.
        Command::Init { out, force } => {
            return init(out.as_deref(), *force).map_err(|f| (f, String::new()));
        }
        Command::Completions { shell } => return Ok(completions(*shell)),
    };
    let text = std::fs::read(spec_path)
        .map_err(|e| (Error::reading_spec(spec_path, &e), String::new()))?;
    let mut checked =
        crate::check_bytes(spec_path, &text, env, &opts).map_err(|f| (f, String::new()))?;
    out.stderr.push_str(&checked.warnings);
    let fail = |e: Error, out: &Output| (e, out.stderr.clone());
    // Build, render and autoscaler mint the keys of the nodes and pools they write (never
    // with --redact).
    if let (Some(expiry), false) = (opts.mint_auth_key, opts.redact) {
        let names: Vec<&str> = match cmd {
            Command::Build { .. } => checked.plan.nodes.iter().map(|n| n.name.as_str()).collect(),
            Command::Render { node, .. } => vec![node.as_str()],
            Command::Autoscaler { .. } => checked
                .plan
                .nodes
                .iter()
                .filter(|n| n.pool.is_some())
                .map(|n| n.name.as_str())
                .collect(),
            _ => Vec::new(),
        };
        if !names.is_empty() {
            let names: Vec<String> = names.into_iter().map(String::from).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            crate::mint_keys(&mut checked, &names, expiry, env).map_err(|e| fail(e, &out))?;
        }
    }

    match cmd {
        Command::Check { .. } => {
            let _ = writeln!(
                out.stdout,
                "{spec_path}: ok, {} in cluster {}",
                count_nodes(&checked.plan),
                checked.plan.cluster
            );
        }
        Command::Plan { .. } => {
            let sizes = crate::render_each(&checked, |a| Ok(emit::Summary::of(&a, false)))
                .map_err(|f| fail(f, &out))?;
            crate::check_size(&checked, &sizes).map_err(|f| fail(f, &out))?;
            out.stdout = plan_table(&checked.plan, &sizes);
        }
        Command::Render { node, .. } => {
            let Some(n) = checked.plan.nodes.iter().find(|n| &n.name == node) else {
                let names: Vec<&str> = checked.plan.nodes.iter().map(|n| n.name.as_str()).collect();
                return Err(fail(Error::no_such_node(node, spec_path, &names), &out));
            };
            let a = crate::render::render_node(&checked.plan, n, &checked.secrets)
                .map_err(|e| fail(e.into(), &out))?;
            crate::check_size(&checked, &[emit::Summary::of(&a, false)])
                .map_err(|e| fail(e, &out))?;
            out.stdout = a.contents;
        }
        Command::Build { out: dir, .. } => {
            let (written, leftovers) = build(&checked, dir).map_err(|f| fail(f, &out))?;
            for a in &written {
                let _ = writeln!(
                    out.stdout,
                    "wrote {}  {:>9}  ({})",
                    dir.join(&a.file_name),
                    human_size(a.len),
                    share_of_limit(a.len)
                );
            }
            let _ = writeln!(out.stdout, "wrote {}", dir.join(emit::SHA256SUMS));
            out.stdout.push_str(&leftovers.removed_lines(dir));
            out.stderr.push_str(&leftovers.warnings(dir));
        }
        Command::Policy { .. } => {
            let Some(policy) = crate::policy::policy(&checked.spec) else {
                return Err(fail(
                    checked.refuse("tailscale.tags", crate::problem::Problem::PolicyNeedsTags),
                    &out,
                ));
            };
            out.stdout = crate::policy::text(&checked.spec, &policy);
        }
        Command::Upgrade { .. } => {
            out.stdout = crate::upgrade::text(&checked.spec, &checked.plan);
        }
        Command::Kubeconfig { .. } => {
            out.stdout =
                crate::kubeconfig::commands(&checked.spec, &checked.plan).map_err(|e| {
                    let (path, problem) = *e;
                    fail(checked.refuse(path, problem), &out)
                })?;
        }
        Command::Hcloud { out: dir, .. } => {
            let plan = crate::delivery::hcloud::plan_hcloud(
                &checked.spec,
                &checked.plan,
                dir.as_ref().map(|d| d.as_str()),
            );
            out.stdout = crate::render::hcloud_script(&plan).map_err(|e| fail(e.into(), &out))?;
        }
        Command::Packer { out: dir, .. } => {
            let plan = crate::delivery::packer::plan_packer(&checked.spec, &checked.plan);
            let (hcl, bake) =
                crate::render::packer_files(&plan).map_err(|e| fail(e.into(), &out))?;
            let write = |name: &str, text: &str, mode: u32| -> std::io::Result<()> {
                std::fs::create_dir_all(dir)?;
                let path = dir.join(name);
                std::fs::write(&path, text)?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt as _;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
                }
                Ok(())
            };
            write("meshboot.pkr.hcl", &hcl, 0o644)
                .and_then(|_| write("bake.sh", &bake, 0o755))
                .map_err(|e| fail(Error::writing_to(dir, &e), &out))?;
            let _ = writeln!(out.stdout, "wrote {}", dir.join("meshboot.pkr.hcl"));
            let _ = writeln!(out.stdout, "wrote {}", dir.join("bake.sh"));
            let _ = writeln!(
                out.stdout,
                "\nBuild with: packer init {dir} && packer build {dir}\nThen point the nodes at their snapshot (hcloud.image):"
            );
            for b in &plan.images {
                let _ = writeln!(
                    out.stdout,
                    "  {} ({}): image: \"{}\"",
                    b.name,
                    b.nodes.join(", "),
                    b.selector
                );
            }
        }
        Command::Autoscaler { config_file, .. } => {
            let artifacts = crate::render_all_nodes(&checked).map_err(|f| fail(f, &out))?;
            let delivery = if *config_file {
                crate::autoscaler::Delivery::File
            } else {
                crate::autoscaler::Delivery::Env
            };
            if checked.plan.nodes.iter().all(|n| n.pool.is_none()) {
                return Err(fail(
                    Error::InvalidSpec(format!(
                        "error: {spec_path} has no pools: nothing for the autoscaler to scale\n  = help: give an agent entry `autoscale: {{ min: 0, max: 10 }}` (see the README, \"Pools\")\n"
                    )),
                    &out,
                ));
            }
            out.stdout =
                crate::autoscaler::secret(&checked.spec, &checked.plan, &artifacts, delivery)
                    .map_err(|e| fail(e, &out))?;
        }
        // Answered before any spec was read.
        Command::Init { .. } | Command::Completions { .. } | Command::Schema => {}
    }
    Ok(out)
}

/// `meshboot build`: every node rendered and written as it is made ([`crate::render_each`],
/// [`emit::Staging`]), then, when every file is within the size limit, put in place with
/// `SHA256SUMS`, and the previous build's files of nodes that left the spec removed
/// ([`emit::Leftovers`]); otherwise nothing is left of the build, and nothing is removed.
fn build(
    checked: &crate::Checked,
    dir: &Utf8Path,
) -> Result<(Vec<emit::Summary>, emit::Leftovers), Error> {
    let staging = emit::Staging::open(dir).map_err(|e| Error::writing_to(dir, &e))?;
    let written = crate::render_each(checked, |a| {
        let summary = emit::Summary::of(&a, true);
        if summary.len <= emit::USER_DATA_LIMIT {
            staging
                .stage(&a.file_name, a.contents.as_bytes())
                .map_err(|e| Error::writing_to(dir, &e))?;
        }
        Ok(summary)
    });
    let written = match written.and_then(|w| crate::check_size(checked, &w).map(|()| w)) {
        Ok(w) => w,
        Err(e) => {
            staging.abort();
            return Err(e);
        }
    };
    let leftovers = staging
        .commit(&emit::sha256sums(&written))
        .map_err(|e| Error::writing_to(dir, &e))?;
    Ok((written, leftovers))
}

fn ports(list: &[crate::spec::PortRange], proto: &str) -> Vec<String> {
    list.iter().map(|p| format!("{p}/{proto}")).collect()
}

/// The K3s flags of a node, one `--key=value` per entry: config.yaml's, then what the
/// bootstrap adds in config.yaml.d at boot.
pub fn k3s_flags(n: &NodePlan) -> Vec<String> {
    let mut flags = vec![n.k3s.exec.to_string()];
    for (k, v) in &n.k3s.config {
        match v {
            ConfigValue::Bool(true) => flags.push(format!("--{k}")),
            ConfigValue::Bool(false) => flags.push(format!("--{k}=false")),
            ConfigValue::Str(s) => flags.push(format!("--{k}={s}")),
            ConfigValue::List(l) => flags.extend(l.iter().map(|s| format!("--{k}={s}"))),
        }
    }
    // What the bootstrap adds in config.yaml.d once the node is on the mesh.
    let boot = &n.k3s.boot_config;
    let port = n.k3s.api_port;
    let mesh_ips: &[&str] = if boot.ipv6 {
        &["<tailscale ip>", "<tailscale ipv6>"]
    } else {
        &["<tailscale ip>"]
    };
    if boot.node_name {
        flags.push(format!("--{}=<server name>", Flag::NodeName.name()));
    }
    if let Some(id) = &boot.provider_id {
        flags.push(format!(
            "--{}=provider-id={}<server id>",
            Flag::KubeletArg.name(),
            id.prefix
        ));
    }
    if boot.node_ip {
        flags.push(format!("--{}={}", Flag::NodeIp.name(), mesh_ips.join(",")));
    }
    if boot.advertise_address {
        flags.push(format!(
            "--{}=<tailscale ip>",
            Flag::AdvertiseAddress.name()
        ));
    }
    if boot.tls_san {
        flags.extend(
            mesh_ips
                .iter()
                .map(|s| format!("--{}={s}", Flag::TlsSan.name())),
        );
    }
    if boot.join {
        let init = Flag::ClusterInit.name();
        let server = Flag::Server.name();
        flags.push(match &n.join {
            Join::Init { rejoin } if rejoin.is_empty() => format!("--{init}"),
            Join::Init { rejoin } => format!(
                "--{init} (or --{server}=https://<ip>:{port} of {} if one is already up)",
                rejoin.join("/")
            ),
            Join::Via { init_server, .. } => {
                format!("--{server}=https://<{init_server} ip>:{port}")
            }
        });
    }
    flags
}

/// "3 nodes", or "2 nodes and 1 pool (0..10 servers)" when the spec has pools.
fn count_nodes(plan: &ClusterPlan) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let pools: Vec<&crate::plan::PoolPlan> =
        plan.nodes.iter().filter_map(|n| n.pool.as_ref()).collect();
    let fixed = plural(plan.nodes.len() - pools.len(), "node");
    if pools.is_empty() {
        return fixed;
    }
    let min: u32 = pools.iter().map(|p| p.min).sum();
    let max: u32 = pools.iter().map(|p| p.max).sum();
    format!(
        "{fixed} and {} ({min}..{max} servers)",
        plural(pools.len(), "pool")
    )
}

/// The readable table `meshboot plan` prints. A pool is one row, named `<pool>-*` with its
/// size as its role.
pub fn plan_table(plan: &ClusterPlan, artifacts: &[emit::Summary]) -> String {
    let mut rows = vec![[
        "NODE".to_string(),
        "ROLE".into(),
        "OS".into(),
        "ENVELOPE".into(),
        "FIREWALL".into(),
        "PUBLIC".into(),
        "MESH (tailscale0)".into(),
        "SIZE".into(),
    ]];
    for (n, a) in plan.nodes.iter().zip(artifacts) {
        let mut public = ports(&n.firewall.public_tcp, "tcp");
        public.extend(ports(&n.firewall.public_udp, "udp"));
        let mut mesh = ports(&n.firewall.mesh_tcp, "tcp");
        mesh.extend(ports(&n.firewall.mesh_udp, "udp"));
        let (name, role) = match &n.pool {
            Some(p) => (
                format!("{}-*", n.name),
                format!("{} pool, {}..{}", serde_plain(&n.role), p.min, p.max),
            ),
            None => (n.name.clone(), serde_plain(&n.role)),
        };
        rows.push([
            name,
            role,
            n.os.name().to_string(),
            serde_plain(&n.envelope),
            serde_plain(&n.firewall.backend),
            public.join(","),
            mesh.join(","),
            human_size(a.len),
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!("cluster {}: {}\n\n", plan.cluster, count_nodes(plan));
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out.push_str("\nK3s flags (/etc/rancher/k3s/config.yaml, then what the bootstrap adds in config.yaml.d at boot):\n");
    for n in &plan.nodes {
        let name = match &n.pool {
            Some(_) => format!("{}-*", n.name),
            None => n.name.clone(),
        };
        let _ = writeln!(out, "  {name}: {}", k3s_flags(n).join(" "));
    }
    out.push('\n');
    out.push_str(&crate::k3s_flags::text());
    out
}

fn serde_plain<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_prints_the_schema_without_a_spec() {
        let no_env = |_: &str| None;
        let out = run(&Command::Schema, &no_env).expect("schema runs");
        let printed: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
        assert_eq!(printed, crate::schema::schema());
        assert_eq!(printed["title"], "meshboot cluster spec");
        assert!(out.stdout.ends_with("}\n") && out.stderr.is_empty());
    }
}
