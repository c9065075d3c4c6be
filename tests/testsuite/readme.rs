//! Docs that run: the README's delivery walk-through (the `sh` blocks of "Using the output"
//! and "Pools and the cluster-autoscaler"), executed as written, in order, by bash with
//! `-e -o pipefail` in a scratch directory holding the repository's `fixtures/`, with the
//! fake secrets exported, and on the PATH: the built `meshboot`; the recording hcloud
//! stand-in of `hcloud.rs` (hetznercloud/cli's reference manual, see
//! tests/testsuite/hcloud/hcloud); stand-ins for `packer` and `kubectl` that record
//! their arguments and what they read on stdin and answer with success; and for
//! `tailscale` and `ssh`, which answer the init server's mesh address and its kubeconfig,
//! as `meshboot kubeconfig`'s commands ask them.
//!
//! What this proves: every command of those blocks runs as written against this meshboot
//! (specs, flags, paths and file names agree, each step finds the files the one before
//! wrote, and no block fails), the hcloud script creates the servers and firewalls the
//! README says, packer is pointed at the directory `meshboot packer` wrote, kubectl gets a
//! Secret on stdin, only after the new cluster's kubeconfig was fetched and with every
//! kubectl call naming it (never kubectl's current context), the Hetzner token never appears
//! in an argument, and the restart line is the one `meshboot autoscaler` prints. The README's first command is run too, with
//! `cargo run --release --` replaced by the built binary (so not cargo's release build);
//! its second, `.ci/run`, is this test suite. What this does not prove: that the real
//! hcloud, packer or kubectl accept these calls (the stand-ins check only the hcloud flags
//! they model; packer and kubectl not even that), or anything about Hetzner or a cluster.

use crate::support::{fake_env_vars, root};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

const HCLOUD: &str = include_str!("hcloud/hcloud");

/// Records `NAME ARGS...` (tab-separated) in $RECORD/NAME, and stdin in
/// $RECORD/NAME.stdin.N when the arguments say to read it (`-f -`, `/dev/stdin`), as
/// kubectl and packer read it only then: `meshboot kubeconfig ... | sh` feeds its script to
/// sh on the same stdin, which a stand-in reading it regardless would swallow.
const RECORDER: &str = r#"#!/bin/sh
set -eu
name=$(basename "$0")
line=$name
for a in "$@"; do line="$line	$a"; done
printf '%s\n' "$line" >>"$RECORD/$name"
n=$(wc -l <"$RECORD/$name")
case " $* " in
  *" -f - "* | *=/dev/stdin*) cat >"$RECORD/$name.stdin.$n" ;;
esac
"#;

/// The init server's mesh address, as the `tailscale` stand-in answers `tailscale ip -4`.
const INIT_MESH_IP: &str = "100.64.0.1";

/// A stand-in that records its calls as [`RECORDER`] does, answers `answer` (on stdout) to
/// exactly the arguments `args`, and fails on anything else.
fn answering(args: &str, answer: &str) -> String {
    format!(
        "#!/bin/sh\nset -eu\nline=$(basename \"$0\")\nfor a in \"$@\"; do line=\"$line\t$a\"; done\nprintf '%s\\n' \"$line\" >>\"$RECORD/$(basename \"$0\")\"\n[ \"$*\" = '{args}' ] || exit 1\ncat <<'EOF'\n{answer}EOF\n"
    )
}

/// `tailscale ip -4 cp-1` answers the init server's mesh address (`tailscale ip` prints a
/// peer's addresses, one per line: tailscale/tailscale cmd/tailscale/cli/ip.go).
fn tailscale() -> String {
    answering("ip -4 cp-1", &format!("{INIT_MESH_IP}\n"))
}

/// `ssh -o ConnectTimeout=10 root@<mesh ip> cat /etc/rancher/k3s/k3s.yaml` prints a
/// kubeconfig (K3s writes the admin kubeconfig there, pointing at 127.0.0.1).
fn ssh() -> String {
    answering(
        &format!("-o ConnectTimeout=10 root@{INIT_MESH_IP} cat /etc/rancher/k3s/k3s.yaml"),
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://127.0.0.1:6443\n  name: default\n",
    )
}

/// The fenced `sh` blocks of the README section that starts with `heading`.
fn sh_blocks(readme: &str, heading: &str) -> Vec<String> {
    let start = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no section {heading}"));
    let section = &readme[start + 1..];
    let end = section[heading.len()..]
        .find("\n## ")
        .map_or(section.len(), |e| e + heading.len());
    let mut blocks = Vec::new();
    let mut rest = &section[..end];
    while let Some(i) = rest.find("```sh\n") {
        let body = &rest[i + 6..];
        let j = body.find("```\n").expect("a closed block");
        blocks.push(body[..j].to_string());
        rest = &body[j..];
    }
    blocks
}

fn install(bin: &Path, name: &str, text: &str) {
    let p = bin.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn lines(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('\t').map(String::from).collect())
        .collect()
}

#[test]
fn the_readmes_delivery_walk_through_runs_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::os::unix::fs::symlink(root().join("fixtures"), d.join("fixtures")).unwrap();
    let bin = d.join("bin");
    let record = d.join("record");
    let fake = d.join("fake");
    for p in [&bin, &record, &fake] {
        std::fs::create_dir_all(p).unwrap();
    }
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_meshboot"), bin.join("meshboot")).unwrap();
    install(&bin, "hcloud", HCLOUD);
    install(&bin, "packer", RECORDER);
    install(&bin, "kubectl", RECORDER);
    install(&bin, "tailscale", &tailscale());
    install(&bin, "ssh", &ssh());
    const HCLOUD_TOKEN: &str = "FAKEhcloudTOKENdoNOTuse";

    let first = readme
        .lines()
        .find(|l| l.contains("cargo run --release -- build"))
        .expect("the README's first command")
        .replace("cargo run --release --", "meshboot");
    let mut blocks = vec![first];
    blocks.extend(sh_blocks(&readme, "## Using the output"));
    blocks.extend(sh_blocks(&readme, "## Pools and the cluster-autoscaler"));
    assert_eq!(blocks.len(), 6, "{blocks:#?}");
    for (i, block) in blocks.iter().enumerate() {
        let mut cmd = Command::new("bash");
        cmd.args(["-e", "-o", "pipefail", "-c", block])
            .current_dir(d)
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("HCLOUD_FAKE", &fake)
            .env("RECORD", &record)
            .env("HCLOUD_TOKEN", HCLOUD_TOKEN);
        // The README's first command sets its own (example) secrets, in a fresh shell; the
        // others say which to export.
        if i > 0 {
            cmd.envs(fake_env_vars());
        }
        let o = cmd.output().expect("bash runs");
        assert!(
            o.status.success(),
            "the README block failed:\n{block}\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert!(
        !fake.join("unexpected").exists(),
        "hcloud got a call its stand-in does not model: {}",
        std::fs::read_to_string(fake.join("unexpected")).unwrap_or_default()
    );

    // The first command built the example cluster.
    assert!(d.join("out/edge-eu/SHA256SUMS").exists());
    // hcloud: hetzner.yaml's four servers and pools.yaml's two fixed nodes, and the
    // cloud firewalls of both clusters, created once each.
    let calls = lines(&fake.join("calls"));
    let created = |kind: &str| -> Vec<String> {
        calls
            .iter()
            .filter(|c| c[0] == kind && c[1] == "create")
            .map(|c| c[3].clone())
            .collect()
    };
    assert_eq!(
        created("server"),
        [
            "hz-server",
            "hz-edge",
            "hz-core",
            "hz-debian",
            "cp-1",
            "steady"
        ]
    );
    assert_eq!(created("firewall"), ["hz", "hz-hz-edge", "burst-lab"]);
    // packer: pointed at what meshboot packer wrote.
    assert!(d.join("images/meshboot.pkr.hcl").exists());
    let packer: Vec<String> = lines(&record.join("packer"))
        .iter()
        .map(|c| c[1..].join(" "))
        .collect();
    assert_eq!(packer, ["init images", "build images"]);
    // The kubeconfig was fetched over the mesh before any kubectl call, and every kubectl
    // call names it: the Secrets go to the new cluster, whatever kubectl's current context.
    assert_eq!(
        lines(&record.join("ssh")),
        [[
            "ssh",
            "-o",
            "ConnectTimeout=10",
            &format!("root@{INIT_MESH_IP}"),
            "cat",
            "/etc/rancher/k3s/k3s.yaml"
        ]]
    );
    let kubeconfig = std::fs::read_to_string(d.join("burst-lab.kubeconfig")).unwrap();
    assert!(kubeconfig.contains("kind: Config"), "{kubeconfig}");
    // kubectl: the kubeconfig pointed at the init server, the Secret, twice (apply, then
    // the day-2 re-apply), the token from stdin, the restart meshboot autoscaler prints.
    let kubectl = lines(&record.join("kubectl"));
    let args: Vec<String> = kubectl.iter().map(|c| c[1..].join(" ")).collect();
    const KUBECONFIG: &str = "--kubeconfig burst-lab.kubeconfig ";
    let restart = meshboot::autoscaler::RESTART.trim_start_matches("kubectl ");
    assert_eq!(
        args,
        [
            format!("{KUBECONFIG}config set-cluster default --server https://{INIT_MESH_IP}:6443"),
            format!("{KUBECONFIG}get nodes -o wide"),
            format!("{KUBECONFIG}apply --server-side -f -"),
            format!(
                "{KUBECONFIG}-n kube-system create secret generic hcloud --from-file=token=/dev/stdin"
            ),
            format!("{KUBECONFIG}apply --server-side -f -"),
            format!("{KUBECONFIG}{restart}"),
        ]
    );
    let stdin = |n: usize| std::fs::read_to_string(record.join(format!("kubectl.stdin.{n}")));
    assert!(stdin(1).is_err() && stdin(2).is_err(), "read no stdin");
    assert_eq!(stdin(4).unwrap(), HCLOUD_TOKEN);
    for n in [3, 5] {
        let secret = stdin(n).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&secret).expect("YAML");
        assert_eq!(doc["kind"], "Secret");
        assert_eq!(doc["metadata"]["name"], "meshboot-burst-lab-autoscaler");
        assert!(
            secret.contains(&format!("#   {}\n", meshboot::autoscaler::RESTART)),
            "the header's restart line"
        );
        assert!(secret.contains(&format!("\n#   {}", "--nodes=0:10:cpx41:nbg1:burst")));
    }
    // No recorded argument holds the Hetzner token.
    let all: BTreeSet<String> = kubectl
        .into_iter()
        .chain(calls)
        .chain(lines(&record.join("packer")))
        .flatten()
        .collect();
    assert!(!all.iter().any(|a| a.contains(HCLOUD_TOKEN)));

    // The Deployment example runs what meshboot printed for this fixture: its --nodes line
    // and Secret name.
    for want in [
        "- --nodes=0:10:cpx41:nbg1:burst",
        "name: meshboot-burst-lab-autoscaler,",
        "value: burst-lab",
    ] {
        assert!(readme.contains(want), "the README's Deployment: {want}");
    }
}
