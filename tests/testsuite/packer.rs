//! `meshboot packer`: the Packer template and bake.sh it writes. Packer itself is not
//! installable here (no registry ships it), so the template is read by an HCL parser
//! (hcl-rs) and compared with what the spec asks for; bake.sh passes shellcheck, dash -n
//! and bash -n. What this does not prove: that Packer, the hcloud plugin or Hetzner accept
//! the build, that rescue mode, flatcar-install or coreos-installer behave as their docs
//! say, or that bake.sh leaves the state it checks for on a real image (the first-boot
//! sandbox proves the other side: a node booting from that state downloads nothing).

use crate::support::{compile, fixtures_dir, meshboot_in, require, root, stderr, stdout};
use hcl::eval::{Context, Evaluate};
use meshboot::Options;
use meshboot::delivery::packer::plan_packer;
use std::collections::BTreeMap;
use std::process::Command;

/// `meshboot packer fixtures/FIXTURE --out <tmp>`: (stdout, template, bake.sh).
fn packer(fixture: &str) -> (String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("images");
    let o = meshboot_in(
        root().as_std_path(),
        &[
            "packer",
            &format!("fixtures/{fixture}"),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let read = |name: &str| std::fs::read_to_string(out.join(name)).expect(name);
    let printed = stdout(&o).replace(out.to_str().unwrap(), "DIR");
    (printed, read("meshboot.pkr.hcl"), read("bake.sh"))
}

#[test]
fn the_template_and_bake_script_are_snapshots() {
    let (printed, hcl, bake) = packer("hetzner.yaml");
    insta::assert_snapshot!("packer-stdout", printed);
    insta::assert_snapshot!("packer-template", hcl);
    insta::assert_snapshot!("packer-bake", bake);
}

#[test]
fn bake_sh_passes_shellcheck_dash_and_bash() {
    let (_, _, bake) = packer("hetzner.yaml");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bake.sh");
    std::fs::write(&path, &bake).unwrap();
    let o = Command::new(require("shellcheck", "shellcheck"))
        .args(["-S", "warning"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    for shell in [require("dash", "dash"), require("bash", "bash")] {
        let o = Command::new(&shell).arg("-n").arg(&path).output().unwrap();
        assert!(
            o.status.success(),
            "{shell} -n: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // It holds no secret: nothing read from the secret references reaches it.
    crate::support::assert_no_secret("bake.sh", &bake, &[]);
}

fn string(e: &hcl::Expression) -> String {
    match e.evaluate(&Context::new()) {
        Ok(hcl::Value::String(s)) => s,
        other => panic!("not a string: {other:?}"),
    }
}

/// The template parses as HCL, and each image's builder settings are what the spec says:
/// one source per OS and architecture of the nodes, the stock image or rescue mode, the
/// nodes' server type, and the labels that select it.
#[test]
fn the_template_parses_as_hcl_with_one_source_per_os_and_architecture() {
    let (_, hcl, _) = packer("hetzner.yaml");
    let body = hcl::parse(&hcl).unwrap_or_else(|e| panic!("{e}\n{hcl}"));
    let build = body
        .blocks()
        .find(|b| b.identifier() == "build")
        .expect("a build block");
    let sources: BTreeMap<String, BTreeMap<String, hcl::Expression>> = build
        .body()
        .blocks()
        .filter(|b| b.identifier() == "source")
        .map(|b| {
            let attrs: BTreeMap<String, hcl::Expression> = b
                .body()
                .attributes()
                .map(|a| (a.key().to_string(), a.expr().clone()))
                .collect();
            (string(&attrs["name"]), attrs)
        })
        .collect();
    // Written from hetzner.yaml: hz-server ubuntu-24.04/cx22, hz-edge ubuntu-22.04/cx22,
    // hz-core flatcar/cax21 (Arm), hz-debian debian-12/cx22.
    let want = [
        ("debian-12-x86", "debian-12", "cx22", false),
        ("flatcar-arm", "ubuntu-24.04", "cax21", true),
        ("ubuntu-22.04-x86", "ubuntu-22.04", "cx22", false),
        ("ubuntu-24.04-x86", "ubuntu-24.04", "cx22", false),
    ];
    assert_eq!(
        sources.keys().collect::<Vec<_>>(),
        want.map(|w| w.0).iter().collect::<Vec<_>>()
    );
    for (name, image, server_type, rescue) in want {
        let s = &sources[name];
        assert_eq!(string(&s["image"]), image, "{name}");
        assert_eq!(string(&s["server_type"]), server_type, "{name}");
        assert_eq!(
            s.get("rescue").map(string),
            rescue.then(|| "linux64".to_string()),
            "{name}"
        );
        let labels = match s["snapshot_labels"].evaluate(&Context::new()) {
            Ok(hcl::Value::Object(m)) => m,
            other => panic!("{name}: labels {other:?}"),
        };
        let os = name.rsplit_once('-').unwrap().0;
        let want_labels: hcl::Map<String, hcl::Value> = [
            ("meshboot.cluster", "hz"),
            ("meshboot.k3s", "v1.33.13-k3s1"),
            ("meshboot.os", os),
            ("meshboot.tailscale", "1.90.6"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), hcl::Value::String(v.to_string())))
        .collect();
        assert_eq!(labels, want_labels, "{name}");
    }
    // Each image's labels satisfy hz-core's selector in the spec (its own OS's image).
    assert!(hcl.contains("\"meshboot.os\" = \"flatcar\""));
}

/// bake.sh puts Tailscale and K3s where every node's bootstrap looks for them: for
/// hetzner.yaml, and for it with a Fedora CoreOS node added (hetzner.yaml has none), whose
/// static Tailscale lives in /usr/local/bin itself, with no link.
#[test]
fn bake_sh_fills_the_places_the_bootstrap_looks() {
    let fcos = tempfile::tempdir().unwrap();
    let spec = camino::Utf8PathBuf::from_path_buf(fcos.path().join("hetzner-fcos.yaml")).unwrap();
    let text = std::fs::read_to_string(fixtures_dir().join("hetzner.yaml")).unwrap();
    std::fs::write(
        &spec,
        format!("{text}  - name: hz-fcos\n    role: agent\n    os: fedora-coreos\n    firewall: {{ backend: nftables }}\n"),
    )
    .unwrap();
    let mut fcos_images = 0;
    for path in [fixtures_dir().join("hetzner.yaml"), spec] {
        let (checked, _) = compile(&path, &Options::default());
        let plan = plan_packer(&checked.spec, &checked.plan);
        for n in &checked.plan.nodes {
            let image = plan
                .images
                .iter()
                .find(|b| b.nodes.contains(&n.name))
                .unwrap_or_else(|| panic!("no image for {}", n.name));
            let baked = n.k3s.baked.as_ref().expect("pinned K3s");
            assert_eq!(image.paths.k3s_bin, baked.bin, "{}", n.name);
            if let meshboot::plan::TailscaleInstall::Static { dir, link_dir, .. } =
                &n.tailscale.install
            {
                assert_eq!(image.paths.tailscale_bin, format!("{dir}/tailscale"));
                match link_dir {
                    Some(link_dir) => {
                        assert!(image.paths.tailscale_dir_disk.ends_with(dir), "{}", n.name);
                        assert!(
                            image
                                .paths
                                .tailscale_link_disk
                                .ends_with(&format!("{link_dir}/tailscale")),
                            "{}",
                            n.name
                        );
                    }
                    None => {
                        fcos_images += 1;
                        assert_eq!(image.paths.tailscale_link_disk, "", "{}", n.name);
                        assert_eq!(
                            image.paths.tailscale_dir_disk,
                            "/mnt/ostree/deploy/fedora-coreos/var/usrlocal/bin"
                        );
                    }
                }
            }
        }
    }
    assert_eq!(fcos_images, 1, "the Fedora CoreOS node was not checked");
}

#[test]
fn hcl_strings_are_escaped_and_read_back_byte_for_byte() {
    for s in [
        "plain",
        "a \"quoted\" word",
        "back\\slash",
        "${var.hcloud_token}",
        "%{ if true }x%{ endif }",
        "$${already}",
        "line\nbreak\r\ttab",
        "nul\u{1}ctl",
        "ünïcødé ✓",
        "$",
        "%",
        "ends with \\",
    ] {
        let text = format!("x = {}\n", meshboot::render::hcl_quote(s));
        let body = hcl::parse(&text).unwrap_or_else(|e| panic!("{s:?}: {e}\n{text}"));
        let attr = body.attributes().next().expect("x");
        assert_eq!(string(attr.expr()), s, "{text}");
    }
}

#[test]
fn unpinned_versions_and_nodes_without_a_type_are_refused() {
    for fixture in ["cluster.yaml", "flatcar.yaml"] {
        let o = meshboot_in(
            root().as_std_path(),
            &[
                "packer",
                &format!("fixtures/{fixture}"),
                "--out",
                "/nonexistent/images",
            ],
            &[],
        );
        assert_eq!(o.status.code(), Some(1), "{fixture}");
        insta::assert_snapshot!(format!("packer-refusals-{fixture}"), stderr(&o));
    }
}

/// Pools boot a baked image too: every OS and architecture a pool uses has a source in the
/// template, listing the pool as `<pool>-*`, and a pool whose image is the selector
/// `meshboot packer` prints boots the snapshot of its own OS and architecture.
#[test]
fn every_os_and_architecture_a_pool_uses_gets_an_image() {
    let dir = tempfile::tempdir().unwrap();
    // pools.yaml with a pinned Tailscale (an image holds one version).
    let pinned = dir.path().join("pools.yaml");
    let text = std::fs::read_to_string(fixtures_dir().join("pools.yaml"))
        .unwrap()
        .replace(
            "  tags: [tag:k3s]\n",
            "  tags: [tag:k3s]\n  version: 1.90.6\n",
        );
    std::fs::write(&pinned, text).unwrap();
    let specs = [
        camino::Utf8PathBuf::from_path_buf(pinned).unwrap(),
        fixtures_dir().join("pools-flatcar.yaml"),
    ];
    let mut pools = 0;
    for spec in &specs {
        let (checked, _) = compile(spec, &Options::default());
        let plan = plan_packer(&checked.spec, &checked.plan);
        for n in checked.plan.nodes.iter().filter(|n| n.pool.is_some()) {
            pools += 1;
            let arch = meshboot::delivery::Arch::of_server_type(
                n.hcloud.server_type.as_deref().expect("a pool's type"),
            );
            let image = plan
                .images
                .iter()
                .find(|b| b.os == n.os && b.arch == arch.name())
                .unwrap_or_else(|| panic!("{spec}: no image for pool {}", n.name));
            assert!(
                image.nodes.contains(&format!("{}-*", n.name)),
                "{spec}: {:?}",
                image.nodes
            );
            if let Some(selector) = &n.hcloud.image {
                assert_eq!(*selector, image.selector, "{spec}: {}", n.name);
            }
        }
    }
    assert_eq!(pools, 3);
    let (printed, hcl, _) = packer("pools-flatcar.yaml");
    insta::assert_snapshot!("packer-stdout-pools-flatcar", printed);
    assert!(hcl.contains("# flatcar-arm: for core-1, flock-*"), "{hcl}");
    hcl::parse(&hcl).unwrap_or_else(|e| panic!("{e}\n{hcl}"));
}
