//! `meshboot autoscaler`: the Secret and `--nodes` arguments the official Hetzner
//! cluster-autoscaler provider reads, judged the way it and Kubernetes read them.
//!
//! What is checked: the output parses as a Kubernetes Secret (apiVersion v1, kind Secret,
//! metadata.name/namespace, `data` whose values are base64); `HCLOUD_CLUSTER_CONFIG` decodes
//! as the provider decodes it (base64, then JSON with `imagesForArch` and `nodeConfigs`:
//! kubernetes/autoscaler cluster-autoscaler/cloudprovider/hetzner/hetzner_manager.go,
//! `ClusterConfig`/`NodeConfig`); each pool's `cloudInit` is byte for byte the file `meshboot
//! build` wrote for the pool, and passes the real `cloud-init schema`; its labels and taints
//! are the ones K3s registers from that very file; one `--nodes=MIN:MAX:TYPE:LOCATION:POOL`
//! per pool; `--config-file` holds the same JSON unencoded (for HCLOUD_CLUSTER_CONFIG_FILE,
//! which the provider reads with os.ReadFile); secrets show only where they must.
//! What is not checked: a real autoscaler scaling up a real Hetzner project (no API here).

use crate::support::{
    assert_no_secret, fixtures_dir, meshboot, require, stderr, stdout, stdout_and_stderr,
};
use base64::Engine as _;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .expect("base64")
}

/// The Secret in `meshboot autoscaler`'s output: its `data`, after checking the manifest.
fn secret_data(output: &str) -> BTreeMap<String, String> {
    let doc: serde_yaml::Value = serde_yaml::from_str(output).expect("the output is YAML");
    assert_eq!(doc["apiVersion"], "v1", "{output}");
    assert_eq!(doc["kind"], "Secret");
    assert_eq!(doc["type"], "Opaque");
    let name = doc["metadata"]["name"].as_str().expect("metadata.name");
    assert!(
        name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
        "{name}"
    );
    assert_eq!(doc["metadata"]["namespace"], "kube-system");
    serde_yaml::from_value(doc["data"].clone()).expect("data is a map of strings")
}

/// The cluster config the provider would read from `HCLOUD_CLUSTER_CONFIG`.
fn cluster_config(output: &str) -> Value {
    let data = secret_data(output);
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        ["HCLOUD_CLUSTER_CONFIG"],
        "{output}"
    );
    // The Secret's data is base64 (Kubernetes); the variable's value is base64 again (the
    // provider: base64.StdEncoding.DecodeString, then json.Unmarshal).
    let env = String::from_utf8(b64(&data["HCLOUD_CLUSTER_CONFIG"])).expect("utf8");
    serde_json::from_slice(&b64(&env)).expect("JSON")
}

/// The environment `meshboot autoscaler`'s header tells to give the autoscaler (the YAML
/// list after "# and this environment", its `#   ` taken off: a container's `env`), as
/// name to value (`valueFrom` entries as their YAML), and the cluster config.
pub(crate) fn env_and_config(output: &str) -> (BTreeMap<String, String>, Value) {
    let list: String = output
        .lines()
        .skip_while(|l| !l.starts_with("# and this environment"))
        .skip(1)
        .map_while(|l| l.strip_prefix("#   "))
        .map(|l| format!("{l}\n"))
        .collect();
    let entries: Vec<serde_yaml::Value> = serde_yaml::from_str(&list).expect("a YAML list");
    let env = entries
        .iter()
        .map(|e| {
            let name = e["name"].as_str().expect("name").to_string();
            let value = match e.get("value") {
                Some(v) => v.as_str().expect("a string value").to_string(),
                None => serde_yaml::to_string(&e["valueFrom"]).unwrap(),
            };
            (name, value)
        })
        .collect();
    (env, cluster_config(output))
}

fn fixture(name: &str) -> String {
    fixtures_dir().join(name).to_string()
}

/// The auth key file `file` (a pool's built file, either envelope) delivers.
fn key_file(file: &str) -> String {
    crate::support::delivered_file(file, meshboot::plan::AUTH_KEY_PATH)
}

#[test]
fn the_secret_holds_each_pools_built_file_byte_for_byte() {
    let out = tempfile::tempdir().unwrap();
    let o = meshboot(&[
        "build",
        &fixture("pools.yaml"),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let a = meshboot(&["autoscaler", &fixture("pools.yaml")]);
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    let config = cluster_config(&stdout(&a));

    let pools = config["nodeConfigs"].as_object().expect("nodeConfigs");
    assert_eq!(pools.keys().collect::<Vec<_>>(), ["arm", "burst"]);
    // One image per architecture: burst is on cpx41 (amd64), arm on cax21 (arm64); each
    // pool also names its own, for its architecture (hetzner_node_group.go `findImage`
    // reads `nodeConfigs.<pool>.imagesForArch` first).
    assert_eq!(
        config["imagesForArch"],
        serde_json::json!({ "amd64": "ubuntu-24.04", "arm64": "debian-12" })
    );
    assert_eq!(
        config["nodeConfigs"]["burst"]["imagesForArch"],
        serde_json::json!({ "amd64": "ubuntu-24.04" })
    );
    assert_eq!(
        config["nodeConfigs"]["arm"]["imagesForArch"],
        serde_json::json!({ "arm64": "debian-12" })
    );
    let cloud_init = require("cloud-init", "cloud-init");
    for (pool, node) in pools {
        let built = std::fs::read(out.path().join(format!("{pool}.yaml"))).unwrap();
        let given = node["cloudInit"].as_str().expect("cloudInit");
        assert_eq!(
            given.as_bytes(),
            built.as_slice(),
            "{pool}: not the built file"
        );
        // The real consumer of cloudInit: the server's cloud-init.
        let file = out.path().join(format!("{pool}.from-secret"));
        std::fs::write(&file, given).unwrap();
        let o = Command::new(&cloud_init)
            .args(["schema", "--config-file"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(o.status.success(), "{pool}: {}", stdout_and_stderr(&o));

        // The labels and taints the autoscaler assumes are the ones K3s registers: read
        // them from the config.yaml this very file delivers.
        let doc: serde_yaml::Value = serde_yaml::from_slice(&built).unwrap();
        let config_yaml = doc["write_files"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|f| f["path"] == "/etc/rancher/k3s/config.yaml")
            .and_then(|f| f["content"].as_str())
            .expect("config.yaml");
        let k3s: serde_yaml::Value = serde_yaml::from_str(config_yaml).unwrap();
        let list = |key: &str| -> Vec<String> {
            k3s[key]
                .as_sequence()
                .into_iter()
                .flatten()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        let labels: Vec<String> = node["labels"]
            .as_object()
            .expect("labels")
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
            .collect();
        assert_eq!(labels, list("node-label"), "{pool}");
        let taints: Vec<String> = node["taints"]
            .as_array()
            .expect("taints")
            .iter()
            .map(|t| {
                let value = t["value"]
                    .as_str()
                    .map(|v| format!("={v}"))
                    .unwrap_or_default();
                format!(
                    "{}{value}:{}",
                    t["key"].as_str().unwrap(),
                    t["effect"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(taints, list("node-taint"), "{pool}");
    }
    assert_eq!(
        pools["burst"]["taints"],
        serde_json::json!([{ "key": "burst", "value": "true", "effect": "NoSchedule" }])
    );

    // One --nodes per pool, MIN:MAX:TYPE:LOCATION:POOL, from autoscale and hcloud.
    let printed = stdout(&a);
    let args: Vec<&str> = printed
        .lines()
        .filter_map(|l| l.trim_start_matches('#').trim().strip_prefix("--nodes="))
        .collect();
    assert_eq!(args, ["0:10:cpx41:nbg1:burst", "1:3:cax21:fsn1:arm"]);
    // The Secret holds secrets: stdout only, nothing on stderr.
    assert_no_secret("autoscaler stderr", &stderr(&a), &[]);
    let burst = config["nodeConfigs"]["burst"]["cloudInit"]
        .as_str()
        .unwrap();
    // The pools join with their own key (tailscale.pool_auth_key), not the fixed nodes'.
    assert_eq!(
        key_file(burst),
        format!("{}\n", crate::support::FAKE_POOL_AUTH_KEY)
    );
}

#[test]
fn config_file_holds_the_same_json_unencoded() {
    let env = meshboot(&["autoscaler", &fixture("pools.yaml")]);
    let file = meshboot(&["autoscaler", &fixture("pools.yaml"), "--config-file"]);
    assert_eq!(file.status.code(), Some(0), "{}", stderr(&file));
    let data = secret_data(&stdout(&file));
    assert_eq!(data.keys().collect::<Vec<_>>(), ["cluster-config.json"]);
    let json: Value = serde_json::from_slice(&b64(&data["cluster-config.json"])).unwrap();
    assert_eq!(json, cluster_config(&stdout(&env)));
    assert!(
        stdout(&file).contains("HCLOUD_CLUSTER_CONFIG_FILE")
            && stdout(&file).contains("/etc/meshboot-autoscaler/cluster-config.json")
    );
}

#[test]
fn redact_prints_placeholders_and_snapshots_the_output() {
    for (name, pool, key, snapshot) in [
        (
            "pools.yaml",
            "burst",
            "tailscale.pool_auth_key",
            "autoscaler-pools-redacted",
        ),
        (
            "pools-flatcar.yaml",
            "flock",
            "tailscale.auth_key",
            "autoscaler-pools-flatcar-redacted",
        ),
    ] {
        let o = crate::support::meshboot_env(&["autoscaler", &fixture(name), "--redact"], &[]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let text = stdout(&o);
        let config = cluster_config(&text);
        let file = config["nodeConfigs"][pool]["cloudInit"].as_str().unwrap();
        let file_key = key_file(file);
        assert!(
            file_key.starts_with(&format!("REDACTED({key})")),
            "{file_key}"
        );
        assert_no_secret("autoscaler --redact", &text, &[]);
        // The snapshot: the output with the base64 value replaced by its decoded JSON, each
        // cloudInit by its size (the pool files have snapshots of their own).
        let mut review = String::new();
        for line in text.lines() {
            match line.strip_prefix("  HCLOUD_CLUSTER_CONFIG: ") {
                Some(_) => review
                    .push_str("  HCLOUD_CLUSTER_CONFIG: <base64 of base64 of the JSON below>\n"),
                None => review.push_str(&format!("{line}\n")),
            }
        }
        let mut shown = config.clone();
        for (_, node) in shown["nodeConfigs"].as_object_mut().unwrap() {
            let len = node["cloudInit"].as_str().unwrap().len();
            node["cloudInit"] = Value::String(format!("<{len} bytes: the pool's file>"));
        }
        review.push_str("--- the JSON:\n");
        review.push_str(&serde_json::to_string_pretty(&shown).unwrap());
        insta::assert_snapshot!(snapshot, review);
    }
}

/// A Flatcar pool boots the snapshot `meshboot packer` bakes for it: the selector packer
/// prints for the pool's OS and architecture is the pool's image, given to the autoscaler
/// for the pool and globally; `cloudInit` is the pool's Ignition file byte for byte, which
/// the real `ignition-validate` accepts.
#[test]
fn an_ignition_pool_boots_the_snapshot_meshboot_packer_bakes() {
    let out = tempfile::tempdir().unwrap();
    let spec = fixture("pools-flatcar.yaml");
    let images = out.path().join("images");
    let p = meshboot(&["packer", &spec, "--out", images.to_str().unwrap()]);
    assert_eq!(p.status.code(), Some(0), "{}", stderr(&p));
    // `  flatcar-arm (core-1, flock-*): image: "SELECTOR"`
    let printed = stdout(&p);
    let line = printed
        .lines()
        .find(|l| l.contains("flock-*"))
        .unwrap_or_else(|| panic!("no image for the pool: {printed}"));
    assert!(line.trim_start().starts_with("flatcar-arm "), "{line}");
    let selector = line
        .split("image: \"")
        .nth(1)
        .and_then(|s| s.strip_suffix('"'))
        .expect("a selector");

    let b = meshboot(&["build", &spec, "--out", out.path().to_str().unwrap()]);
    assert_eq!(b.status.code(), Some(0), "{}", stderr(&b));
    let a = meshboot(&["autoscaler", &spec]);
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    let config = cluster_config(&stdout(&a));
    assert_eq!(
        config["imagesForArch"],
        serde_json::json!({ "arm64": selector })
    );
    let flock = &config["nodeConfigs"]["flock"];
    assert_eq!(
        flock["imagesForArch"],
        serde_json::json!({ "arm64": selector })
    );
    let given = flock["cloudInit"].as_str().expect("cloudInit");
    let built = std::fs::read(out.path().join("flock.ign")).unwrap();
    assert_eq!(given.as_bytes(), built.as_slice(), "not the built file");
    let file = out.path().join("flock.from-secret.ign");
    std::fs::write(&file, given).unwrap();
    let o = Command::new(require("ignition-validate", "ignition"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stdout_and_stderr(&o));
}

/// Two pools of one architecture from different images: each gets its own, and the global
/// image is the first pool's, which an autoscaler reading no per-pool image would give
/// both; meshboot warns (an error under --strict).
#[test]
fn pools_of_one_architecture_may_boot_different_images_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.yaml");
    let text = std::fs::read_to_string(fixtures_dir().join("pools.yaml"))
        .unwrap()
        .replace(
            "hcloud: { type: cax21, location: fsn1 }",
            "hcloud: { type: cpx21, location: fsn1 }",
        );
    std::fs::write(&spec, text).unwrap();
    let o = meshboot(&["autoscaler", spec.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("warning: nodes[3].autoscale: pools `burst` (\"ubuntu-24.04\") and `arm` (\"debian-12\") both run on amd64 servers, from different images"),
        "{e}"
    );
    assert!(e.contains("kubernetes/autoscaler#8297"), "{e}");
    let config = cluster_config(&stdout(&o));
    assert_eq!(
        config["imagesForArch"],
        serde_json::json!({ "amd64": "ubuntu-24.04" })
    );
    assert_eq!(
        config["nodeConfigs"]["arm"]["imagesForArch"],
        serde_json::json!({ "amd64": "debian-12" })
    );
    let strict = meshboot(&["autoscaler", spec.to_str().unwrap(), "--strict"]);
    assert_eq!(strict.status.code(), Some(1), "{}", stdout(&strict));
}

#[test]
fn what_the_autoscaler_cannot_use_is_an_error_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.yaml");
    let text = std::fs::read_to_string(fixtures_dir().join("pools.yaml"))
        .unwrap()
        .replace(
            "hcloud: { type: cx22, location: nbg1 }",
            "hcloud: { type: cx22 }",
        )
        .replace(
            "    os: debian-12\n",
            "    os: ubuntu-22.04\n    hcloud: { type: cpx21 }\n",
        )
        .replace("    hcloud: { type: cax21, location: fsn1 }\n", "");
    std::fs::write(&spec, text).unwrap();
    let o = meshboot(&["autoscaler", spec.to_str().unwrap(), "--redact"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).is_empty());
    let e = stderr(&o);
    assert!(
        e.contains("error: nodes[2].autoscale: pool `burst` has no `hcloud.location`, which the autoscaler's --nodes=MIN:MAX:TYPE:LOCATION:POOL needs"),
        "{e}"
    );
    assert!(e.contains("spec.yaml:27:5"), "{e}");
    assert!(
        e.contains(
            "pools `burst` (\"ubuntu-24.04\") and `arm` (\"ubuntu-22.04\") both run on amd64 servers"
        ),
        "{e}"
    );
    // check and build do not need what only the autoscaler needs.
    let c = meshboot(&["check", spec.to_str().unwrap(), "--redact"]);
    assert_eq!(c.status.code(), Some(0), "{}", stderr(&c));

    // A Flatcar pool without an image: Hetzner has none to boot it from.
    let flatcar = dir.path().join("flatcar.yaml");
    let text = std::fs::read_to_string(fixtures_dir().join("pools-flatcar.yaml")).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("image:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&flatcar, text).unwrap();
    let f = meshboot(&["autoscaler", flatcar.to_str().unwrap(), "--redact"]);
    assert_eq!(f.status.code(), Some(1));
    let e = stderr(&f);
    assert!(
        e.contains("error: nodes[1].autoscale: pool `flock` runs flatcar, which Hetzner has no stock image of, and names no `hcloud.image`"),
        "{e}"
    );
    assert!(e.contains("flatcar.yaml:"), "{e}");
    assert!(e.contains("meshboot packer"), "{e}");
    let n = meshboot(&["autoscaler", &fixture("cluster.yaml"), "--redact"]);
    assert_eq!(n.status.code(), Some(1));
    assert!(stderr(&n).contains("has no pools"), "{}", stderr(&n));
}

/// The provider puts one SSH key (`HCLOUD_SSH_KEY`) on every pool's servers and has no
/// per-pool key (kubernetes/autoscaler @55c37cd: hetzner_manager.go `newManager` reads one;
/// `NodeConfig` has no SSH field; hetzner_node_group.go `createServer` sets
/// `opts.SSHKeys = []*hcloud.SSHKey{n.manager.sshKey}`). meshboot's rule: the first key of
/// the first pool's `hcloud.ssh_keys` that every pool lists, the others named as not given;
/// none when a pool lists none or no key is common. Proves the rule on the printed
/// environment (parsed as the container's `env` YAML, so a name with a quote is one value);
/// not that Hetzner puts the key on the server.
#[test]
fn the_pools_ssh_key_is_the_first_one_every_pool_lists() {
    let run = |text: &str| -> (BTreeMap<String, String>, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("spec.yaml"), text).unwrap();
        let o =
            crate::support::meshboot_in(dir.path(), &["autoscaler", "spec.yaml", "--redact"], &[]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        (env_and_config(&stdout(&o)).0, stdout(&o))
    };
    let both = crate::hcloud::pools_with_firewalls(false);
    // burst lists [ops, "it's ops"], arm ["it's ops", arm-key]: only "it's ops" is in both.
    let (env, out) = run(&both);
    assert_eq!(env["HCLOUD_SSH_KEY"], "it's ops", "{out}");
    assert!(
        out.contains("# HCLOUD_SSH_KEY: the provider puts one key on every pool's servers; not given: arm-key, ops.\n"),
        "{out}"
    );
    assert_eq!(env["HCLOUD_FIREWALL"], "burst-lab");
    // The same list on every pool (from defaults): that key, nothing left out.
    let same = std::fs::read_to_string(fixtures_dir().join("pools.yaml"))
        .unwrap()
        .replace(
            "  hcloud: { type: cx22, location: nbg1 }\n",
            "  hcloud: { type: cx22, location: nbg1, ssh_keys: [ops] }\n",
        );
    let (env, out) = run(&same);
    assert_eq!(env["HCLOUD_SSH_KEY"], "ops", "{out}");
    assert!(!out.contains("not given"), "{out}");
    // No key common to all pools, or a pool without keys: none, and why.
    for (text, why) in [
        (
            both.replace("[\"it's ops\", arm-key]", "[arm-key]"),
            "# No HCLOUD_SSH_KEY: no key is in every pool's hcloud.ssh_keys",
        ),
        (
            both.replace(", ssh_keys: [\"it's ops\", arm-key]", ""),
            "# No HCLOUD_SSH_KEY: a pool has no hcloud.ssh_keys",
        ),
    ] {
        let (env, out) = run(&text);
        assert!(!env.contains_key("HCLOUD_SSH_KEY"), "{out}");
        assert!(out.contains(why), "{out}");
    }
}
