//! The Debian package of the daemon (`rsu/packaging/build-deb.sh`): built around this build's
//! `rsu`, it holds the daemon, its systemd unit and its configuration where the filesystem
//! conventions put them, and the configuration it installs is valid once certificates are in
//! place (checked by the packaged binary itself, in a root folder of its own).

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// The value of `key=` lines in the unit.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines().filter_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix('='))).collect()
}

#[test]
fn the_deb_installs_the_daemon_its_unit_and_a_valid_configuration() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = run(Command::new(workspace().join("rsu/packaging/build-deb.sh"))
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_rsu"))
        .arg("--out")
        .arg(tmp.path()));
    let deb = PathBuf::from(out.lines().last().expect("the script names the package").trim());
    assert!(deb.exists(), "{}", deb.display());

    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for file in [
        "./usr/bin/rsu",
        "./lib/systemd/system/rsu.service",
        "./etc/rsu/rsu.toml",
        "./usr/share/rsu/site/yancheng/site.toml",
        "./usr/share/doc/rsu/README.md",
    ] {
        assert!(contents.lines().any(|l| l.ends_with(file)), "{file} in\n{contents}");
    }
    let fields = run(Command::new("dpkg-deb").arg("--field").arg(&deb).args(["Package", "Version"]));
    assert!(fields.contains("Package: rsu") && fields.contains(env!("CARGO_PKG_VERSION")), "{fields}");

    // Unpacked into a root of its own, with certificates where the configuration expects them.
    let root = tmp.path().join("root");
    run(Command::new("dpkg-deb").arg("--extract").arg(&deb).arg(&root));
    let control = tmp.path().join("control");
    run(Command::new("dpkg-deb").arg("--control").arg(&deb).arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).expect("conffiles");
    assert_eq!(conffiles.trim(), "/etc/rsu/rsu.toml", "the configuration survives upgrades");

    let unit = std::fs::read_to_string(root.join("lib/systemd/system/rsu.service")).expect("unit");
    assert_eq!(unit_values(&unit, "ExecStart"), ["/usr/bin/rsu serve --config /etc/rsu/rsu.toml"]);
    assert_eq!(unit_values(&unit, "ExecStartPre"), ["/usr/bin/rsu serve --config /etc/rsu/rsu.toml --check"]);
    assert_eq!(unit_values(&unit, "User"), ["rsu"]);
    let state: Vec<&str> = unit_values(&unit, "StateDirectory").iter().flat_map(|v| v.split_whitespace()).collect();

    let config_text = std::fs::read_to_string(root.join("etc/rsu/rsu.toml")).expect("config");
    let config: rsu::config::ServeConfig = toml::from_str(&config_text).expect("the packaged config parses");
    let recordings = &config.recording.dir;
    assert!(config.recording.enabled);
    assert!(
        state.iter().any(|d| Path::new("/var/lib").join(d) == *recordings),
        "recordings in {} lie in a StateDirectory ({state:?}), the only place the unit may write",
        recordings.display()
    );
    assert!(config.tls.key.starts_with("/etc/rsu/pki") && config.tls.ca.starts_with("/etc/rsu/pki"));

    // The packaged binary checks the packaged configuration, rebased into the unpacked root.
    let etc = root.join("etc/rsu");
    let rebased = config_text
        .replace("/etc/rsu", &etc.display().to_string())
        .replace("/var/lib/rsu", &root.join("var/lib/rsu").display().to_string());
    std::fs::write(etc.join("rsu.toml"), rebased).expect("rebased config");
    let rsu = root.join("usr/bin/rsu");
    let mut certs = Command::new(&rsu);
    certs.args(["certs", "init", "--rsu-id", "rsu-1", "--out"]).arg(etc.join("pki"));
    run(&mut certs);
    let mut check = Command::new(&rsu);
    check.args(["serve", "--check", "--config"]).arg(etc.join("rsu.toml"));
    let said = run(&mut check);
    assert!(said.contains("is valid") && said.contains("embedded representative Yancheng site"), "{said}");
}
