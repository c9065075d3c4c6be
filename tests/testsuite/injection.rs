//! Injection cannot happen: every hostile value is either rejected with a clear error or
//! rendered inert.
//!
//! - `fixtures/adversarial/*.yaml` are accepted specs full of shell and YAML syntax. For
//!   every node, the envelope parses (cloud-init YAML, Ignition JSON), and the bootstrap
//!   script passes the static checks of `injection/shell.rs`: it parses, every canary lies
//!   inside single quotes, every quoted word reads back byte for byte in dash without
//!   running anything; the variable assignments run without effect; the K3s config.yaml the
//!   envelope delivers is meshboot's serialization and holds each hostile arg exactly (the
//!   script holds none of them); `tailscale up` gets each arg as one word.
//! - `fixtures/adversarial/rejected/*.yaml` snapshot their (clear) errors.
//! - A matrix puts every payload into every field that reaches the node and demands one of
//!   the two outcomes, never a third (a panic, an internal error, or output that runs it).

use crate::support::shell;
use crate::support::shell::{CANARY, assert_inert, run_assignments};
use crate::support::{delivered_files, fake_env, root, yaml_files};
use camino::{Utf8Path, Utf8PathBuf};
use meshboot::plan::{BOOTSTRAP_PATH, K3S_CONFIG_PATH, NodePlan, parse_args};
use meshboot::render::{Artifact, shell_quote};
use meshboot::secrets::Environment;
use meshboot::{Checked, Options, exit};

fn adversarial(glob: &str) -> Vec<Utf8PathBuf> {
    let dir = root().join("fixtures/adversarial");
    match glob.strip_suffix("/*.yaml") {
        Some(sub) => yaml_files(&dir.join(sub)),
        None => yaml_files(&dir),
    }
}

/// Checks and renders `text`; `Err` is the failure (code, message).
fn compile(
    path: &Utf8Path,
    text: &str,
    env: &dyn Environment,
) -> Result<(Checked, Vec<Artifact>), (i32, String)> {
    let checked = meshboot::check(path, text, env, &Options::default())
        .map_err(|f| (f.exit_code(), f.message().to_string()))?;
    let artifacts = meshboot::render_all_nodes(&checked)
        .map_err(|f| (f.exit_code(), f.message().to_string()))?;
    Ok((checked, artifacts))
}

/// The file at `path` a node receives, decoded from its envelope.
fn delivered_file(a: &Artifact, path: &str) -> String {
    delivered_files(a)
        .into_iter()
        .find(|(p, _, _)| p == path)
        .map(|(_, _, contents)| contents)
        .unwrap_or_else(|| panic!("{} delivers no {path}", a.file_name))
}

/// The bootstrap script a node receives.
fn bootstrap_of(a: &Artifact) -> String {
    delivered_file(a, BOOTSTRAP_PATH)
}

/// The K3s config.yaml a node receives.
fn k3s_config_of(a: &Artifact) -> String {
    delivered_file(a, K3S_CONFIG_PATH)
}

/// Every check on one node's script and K3s config; returns the words the shell sees.
fn assert_node_inert(what: &str, node: &NodePlan, checked: &Checked, a: &Artifact) -> Vec<Vec<u8>> {
    let script = &bootstrap_of(a);
    let lexed = assert_inert(what, script);
    let words: Vec<Vec<u8>> = lexed.words.iter().map(|(_, w)| w.clone()).collect();
    let has_word = |w: &str| words.iter().any(|x| x == w.as_bytes());

    // `tailscale up` gets each of its arguments as exactly one word.
    for arg in &node.tailscale.up_args {
        assert!(
            script.contains(&shell_quote(arg)),
            "{what}: `tailscale up` argument {arg:?} is not written through shell_quote"
        );
        if shell_quote(arg) != *arg {
            assert!(has_word(arg), "{what}: no shell word is exactly {arg:?}");
        }
    }

    // The K3s config the node receives is data, not script: the envelope delivers exactly
    // meshboot's serialized config.yaml, which holds every extra arg as the value of its
    // own key, and the script carries none of it.
    let config = k3s_config_of(a);
    assert_eq!(
        config,
        meshboot::render::k3s_config(node).expect("config renders"),
        "{what}: the delivered config.yaml is not meshboot's"
    );
    let parsed: serde_yaml::Mapping = serde_yaml::from_str(&config).expect("config.yaml parses");
    let args = if node.role.is_server() {
        &checked.spec.k3s.server_args
    } else {
        &checked.spec.k3s.agent_args
    };
    for (key, value) in parse_args(args) {
        if key == "tls-san" {
            continue;
        }
        let got = &parsed[serde_yaml::Value::String(key.clone())];
        let want = serde_yaml::Value::String(value.clone().unwrap_or_default());
        let found = match value {
            None => got == &serde_yaml::Value::Bool(true),
            Some(_) => got == &want || got.as_sequence().is_some_and(|s| s.contains(&want)),
        };
        assert!(
            found,
            "{what}: config.yaml lost --{key} = {want:?}; it holds {got:?}"
        );
        if let Some(v) = value.as_ref().filter(|v| v.contains(CANARY)) {
            assert!(
                !script.contains(v.as_str()),
                "{what}: the script carries --{key}'s value; it belongs in config.yaml only"
            );
        }
    }

    // The assignments at the top run without effect and hold what the plan says.
    let vars = run_assignments(what, script);
    let get = |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(
        get("NODE_NAME"),
        Some(node.name.clone().into_bytes()),
        "{what}"
    );
    words
}

fn assert_artifacts_inert(what: &str, checked: &Checked, artifacts: &[Artifact]) -> usize {
    let mut canaries = 0;
    for (node, a) in checked.plan.nodes.iter().zip(artifacts) {
        canaries += bootstrap_of(a).matches(CANARY).count();
        canaries += k3s_config_of(a).matches(CANARY).count();
        assert_node_inert(&format!("{what}: {}", a.file_name), node, checked, a);
    }
    canaries
}

#[test]
fn accepted_adversarial_specs_render_inert() {
    let fixtures = adversarial("*.yaml");
    assert!(fixtures.len() >= 2, "{fixtures:?}");
    for path in fixtures {
        let text = std::fs::read_to_string(&path).expect("readable");
        let (checked, artifacts) = compile(&path, &text, &fake_env)
            .unwrap_or_else(|(code, msg)| panic!("{path} is not accepted ({code}):\n{msg}"));
        let envelopes: std::collections::BTreeSet<&str> =
            artifacts.iter().map(|a| a.envelope.extension()).collect();
        assert!(!artifacts.is_empty());
        let canaries = assert_artifacts_inert(path.as_str(), &checked, &artifacts);
        // Not hollow: the hostile values reached every script that is meant to hold them.
        assert!(
            canaries >= artifacts.len(),
            "{path}: only {canaries} canaries in {} scripts",
            artifacts.len()
        );
        if path.as_str().ends_with("extra_args.yaml") {
            assert_eq!(envelopes.len(), 2, "both envelopes are exercised");
        }
    }
}

#[test]
fn rejected_adversarial_specs_say_why() {
    insta::glob!("../../fixtures/adversarial/rejected", "*.yaml", |path| {
        let path = Utf8PathBuf::from_path_buf(path.to_path_buf()).expect("UTF-8");
        let rel = path.strip_prefix(root()).expect("under the crate");
        let text = std::fs::read_to_string(&path).expect("readable");
        let (code, report) = match compile(rel, &text, &fake_env) {
            Ok(_) => panic!("{rel} is accepted"),
            Err(e) => e,
        };
        assert_eq!(code, exit::INVALID_SPEC, "{rel}:\n{report}");
        // One error per hostile line in the fixture (lines that mention the canary or hold
        // a non-ASCII or very long value).
        let hostile = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.contains(CANARY) || l.contains("'") || !l.is_ascii() || l.len() > 200)
            .count();
        let errors = report.lines().filter(|l| l.starts_with("error:")).count();
        assert!(
            errors >= hostile,
            "{rel}: {errors} errors for {hostile} hostile lines:\n{report}"
        );
        insta::assert_snapshot!("rejected", format!("exit code {code}\n\n{report}"));
    });
}

/// Values that try to break out of a shell word, a YAML scalar or a terminal line.
fn payloads() -> Vec<String> {
    let mut v: Vec<String> = [
        "$(touch meshboot-canary)",
        "`touch meshboot-canary`",
        "x'; touch meshboot-canary; '",
        "x\"; touch meshboot-canary; \"",
        "x\ntouch meshboot-canary",
        "x\rtouch meshboot-canary",
        ";touch meshboot-canary",
        "&&touch meshboot-canary",
        "|touch meshboot-canary",
        ">meshboot-canary",
        "${IFS}touch${IFS}meshboot-canary",
        "\\$(touch meshboot-canary)",
        "%s%n%x\\n\\0meshboot-canary",
        "-n meshboot-canary",
        "*meshboot-canary*",
        "~/meshboot-canary",
        "#meshboot-canary",
        "ünïcødé-日本語-🚀-meshboot-canary",
        "\u{202e}meshboot-canary\u{2028}\u{00a0}",
        "\u{1b}[31mmeshboot-canary",
        "key: meshboot-canary",
        "- meshboot-canary",
        "{a: meshboot-canary}",
        "&a *b !c | > meshboot-canary",
        "'",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(format!("{}meshboot-canary", "a".repeat(5000)));
    v.push(format!("{}$(touch meshboot-canary)", "b".repeat(3000)));
    v
}

/// A spec whose `slot` field holds `value` (JSON-escaped, which YAML reads as a
/// double-quoted scalar); every other field is valid.
fn spec_with(slot: &str, value: &str) -> String {
    let q = serde_json::to_string(value).expect("string");
    let fill = |name: &str, default: &str| -> String {
        if name == slot {
            q.clone()
        } else {
            default.to_string()
        }
    };
    format!(
        r#"version: 1
cluster:
  name: {cluster}
tailscale:
  auth_key: {{ env: {env} }}
  tags: [tag:k3s, {tag}]
  login_server: {login}
k3s:
  version: v1.33.5+k3s1
  token: {{ file: {file} }}
  disable: [traefik, {disable}]
  server_args: [{sarg}, {sflag}, {tlssan}]
  agent_args: [{aarg}]
firewall:
  backend: nftables
nodes:
  - name: cp-1
    role: server
    labels: {{ {lkey}: {lvalue} }}
    taints: [{taint}]
    hcloud: {{ location: {location} }}
  - name: {name}
    role: agent
    os: flatcar
"#,
        cluster = fill("cluster.name", "adversarial"),
        env = fill("env", "TS_AUTHKEY"),
        tag = fill("tag", "tag:ok"),
        login = fill("login_server", "https://hs.example.com"),
        file = fill("file", "../secrets/k3s-token"),
        disable = fill("disable", "servicelb"),
        sarg = fill("server_arg", "--kube-apiserver-arg=a=b").replace(
            &q,
            &serde_json::to_string(&format!("--kube-apiserver-arg={value}")).expect("json")
        ),
        sflag = fill("server_flag", "--kube-proxy-arg=x").replace(
            &q,
            &serde_json::to_string(&format!("--{value}=x")).expect("json")
        ),
        tlssan = fill("tls_san", "--tls-san=api.example.com").replace(
            &q,
            &serde_json::to_string(&format!("--tls-san={value}")).expect("json")
        ),
        aarg = fill("agent_arg", "--kubelet-arg=max-pods=150").replace(
            &q,
            &serde_json::to_string(&format!("--kubelet-arg={value}")).expect("json")
        ),
        lkey = fill("label_key", "pool"),
        lvalue = fill("label_value", "general"),
        taint = fill("taint", "\"dedicated=edge:NoSchedule\""),
        location = fill("location", "fsn1"),
        name = fill("node_name", "worker"),
    )
}

const SLOTS: &[(&str, &str)] = &[
    ("cluster.name", "cluster.name"),
    ("env", "tailscale.auth_key"),
    ("tag", "tailscale.tags[1]"),
    ("login_server", "tailscale.login_server"),
    ("file", "k3s.token"),
    ("disable", "k3s.disable[1]"),
    ("server_arg", "k3s.server_args[0]"),
    ("server_flag", "k3s.server_args[1]"),
    ("tls_san", "k3s.server_args[2]"),
    ("agent_arg", "k3s.agent_args[0]"),
    ("label_key", "nodes[0].labels"),
    ("label_value", "nodes[0].labels.pool"),
    ("taint", "nodes[0].taints[0]"),
    ("location", "nodes[0].hcloud.location"),
    ("node_name", "nodes[1].name"),
];

#[test]
fn every_payload_in_every_field_is_rejected_or_inert() {
    // The spec lives in fixtures/adversarial/ so that `file: ../secrets/k3s-token` resolves.
    let path = root().join("fixtures/adversarial/matrix.yaml");
    let mut accepted = 0;
    let mut rejected = 0;
    for (slot, field) in SLOTS {
        for payload in payloads() {
            let what = format!("{slot} = {payload:?}");
            let text = spec_with(slot, &payload);
            match compile(&path, &text, &fake_env) {
                Ok((checked, artifacts)) => {
                    accepted += 1;
                    assert_artifacts_inert(&what, &checked, &artifacts);
                }
                Err((code, report)) => {
                    rejected += 1;
                    assert_eq!(code, exit::INVALID_SPEC, "{what}: exit {code}:\n{report}");
                    assert!(
                        report
                            .lines()
                            .any(|l| l.starts_with("error:") && l.contains(field)),
                        "{what}: no error names {field}:\n{report}"
                    );
                    assert!(
                        report.contains("= help: "),
                        "{what}: the error does not say what to do:\n{report}"
                    );
                    // The terminal never receives a raw control character from the spec.
                    assert!(
                        !report.chars().any(|c| c.is_control() && c != '\n'),
                        "{what}: the report holds a control character:\n{report:?}"
                    );
                }
            }
        }
    }
    // Both outcomes happen: arg values are accepted and quoted, names and tags are refused.
    assert!(
        accepted >= 20 && rejected >= 200,
        "{accepted} accepted, {rejected} rejected"
    );
}

#[test]
fn hostile_secret_values_stay_in_their_files() {
    let key = "tskey-auth-k$(touch${IFS}meshboot-canary)`id`'\"\\;|&<>*";
    let token = "K10$(touch${IFS}meshboot-canary)::server:'\"`;|&";
    let env = move |name: &str| match name {
        "TS_AUTHKEY" => Some(key.to_string()),
        "K3S_TOKEN" => Some(token.to_string()),
        _ => None,
    };
    let path = root().join("fixtures/adversarial/login_server.yaml");
    let text = std::fs::read_to_string(&path).expect("readable");
    let (checked, artifacts) =
        compile(&path, &text, &env).unwrap_or_else(|(_, m)| panic!("not accepted:\n{m}"));
    for (node, a) in checked.plan.nodes.iter().zip(&artifacts) {
        let files = delivered_files(a);
        let file = |p: &str| {
            files
                .iter()
                .find(|(path, _, _)| path == p)
                .map(|(_, mode, c)| (*mode, c.clone()))
                .unwrap_or_else(|| panic!("{} lacks {p}", a.file_name))
        };
        assert_eq!(
            file(meshboot::plan::AUTH_KEY_PATH),
            (0o600, format!("{key}\n"))
        );
        assert_eq!(
            file(meshboot::plan::TOKEN_PATH),
            (0o600, format!("{token}\n"))
        );
        let script = bootstrap_of(a);
        assert!(
            !script.contains(key) && !script.contains(token),
            "{}",
            a.file_name
        );
        assert_node_inert(&a.file_name, node, &checked, a);
    }
}

#[test]
fn the_lexer_sees_through_broken_quoting() {
    // The checks above are only as good as the lexer: it must flag an unquoted value.
    let script = "#!/bin/sh\nNODE=x$(touch meshboot-canary)\nprintf '%s' 'ok'\n";
    let lexed = shell::lex(script).expect("lexes");
    let at = script.find(CANARY).expect("marker");
    assert!(!lexed.single_quoted[at]);
    let quoted = format!(
        "#!/bin/sh\nNODE={}\n",
        shell_quote("x$(touch meshboot-canary)")
    );
    let lexed = shell::lex(&quoted).expect("lexes");
    let at = quoted.find(CANARY).expect("marker");
    assert!(lexed.single_quoted[at]);
    assert_eq!(lexed.words.len(), 1);
    assert_eq!(lexed.words[0].1, b"NODE=x$(touch meshboot-canary)");
    assert!(shell::lex("echo `id`\n").is_err());
    assert!(shell::lex("cat <<EOF\nx\nEOF\n").is_err());
    assert!(shell::lex("echo 'open\n").is_err());
}

/// K3s reads config.yaml with gopkg.in/yaml.v2, a YAML 1.1 parser, and passes each value on
/// as a flag through `convert.ToString` (k3s-io/k3s pkg/configfilearg/parser.go
/// `readConfigFile`). So a plain `on`, `yes`, `off` or `null` (valid node names, and values
/// extra args may carry) would reach K3s as `true`, `false` or no value at all. This loads
/// every config.yaml meshboot writes, for every fixture and for a cluster whose names and
/// args are YAML 1.1 words, with PyYAML's `safe_load`, a YAML 1.1 parser that resolves the
/// same booleans and nulls as yaml.v2 (it differs on `y`, `n` and `1e3`, which yaml.v2 also
/// reads as a bool or a float: so every string value must also be a double-quoted scalar,
/// which neither parser resolves). Each value must come back as exactly the plan's: strings
/// as strings, booleans as booleans. What it does not prove: K3s's own parse (no K3s here).
#[test]
fn k3s_reads_every_config_value_as_a_yaml_1_1_parser_does() {
    const PYTHON: &str = "/usr/bin/python3";
    crate::support::require(PYTHON, "python3");
    const LOAD: &str =
        "import json, sys, yaml\nprint(json.dumps(yaml.safe_load(sys.stdin.read())))\n";
    let words = r#"version: 1
cluster:
  name: yes
tailscale:
  auth_key: { env: TS_AUTHKEY }
  tags: [tag:k3s]
k3s:
  version: v1.33.13+k3s1
  token: { env: K3S_TOKEN }
  server_args: ["--kube-apiserver-arg=on", "--cluster-domain=null"]
  agent_args: ["--kubelet-arg=yes"]
firewall: { backend: ufw, ssh: public }
nodes:
  - { name: "on", role: server, os: ubuntu-24.04, labels: { "off": "yes" } }
  - { name: "null", role: agent, os: debian-12 }
  - { name: "off", role: agent, os: ubuntu-24.04 }
  - { name: "y", role: agent, os: ubuntu-24.04 }
"#;
    let dir = tempfile::tempdir().unwrap();
    let words_path = Utf8PathBuf::from_path_buf(dir.path().join("words.yaml")).unwrap();
    std::fs::write(&words_path, words).unwrap();
    let mut specs: Vec<(Utf8PathBuf, String)> = crate::support::good_fixtures()
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    specs.push((words_path, words.to_string()));
    let mut checked_values = 0;
    for (path, text) in &specs {
        let (checked, artifacts) = compile(path, text, &fake_env)
            .unwrap_or_else(|(code, msg)| panic!("{path}: exit {code}: {msg}"));
        for (node, a) in checked.plan.nodes.iter().zip(&artifacts) {
            let config = k3s_config_of(a);
            let mut child = std::process::Command::new(PYTHON)
                .args(["-c", LOAD])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("python3 runs");
            use std::io::Write as _;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(config.as_bytes())
                .unwrap();
            let o = child.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "{path} {}: {}",
                node.name,
                String::from_utf8_lossy(&o.stderr)
            );
            let loaded: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let want = serde_json::to_value(&node.k3s.config).unwrap();
            assert_eq!(
                loaded, want,
                "{path} {}: config.yaml as YAML 1.1 reads it\n{config}",
                node.name
            );
            // Every string is a double-quoted scalar, which no YAML 1.1 resolver turns
            // into anything else.
            for line in config.lines().filter(|l| !l.starts_with('#')) {
                let value = match line.strip_prefix("- ") {
                    Some(item) => item,
                    None => line.split_once(": ").map_or("", |(_, v)| v),
                };
                if value.is_empty() || value == "true" || value == "false" || value == "[]" {
                    continue;
                }
                assert!(
                    serde_json::from_str::<String>(value).is_ok(),
                    "{path} {}: `{line}` is not a double-quoted string",
                    node.name
                );
                checked_values += 1;
            }
        }
    }
    assert!(checked_values >= 200, "{checked_values}");
}
