//! The binaries as a user installs them (`cargo install --path rsu/lab`, a `.deb`): copied into
//! an empty folder and run from there, with the repository they were built from hidden behind an
//! empty tmpfs (in a mount namespace of the test's own, via `unshare`), so a path compiled into
//! them could not be followed. The demo must run on its embedded site and criteria, validation
//! must judge by the scenario's built-in criteria, and the daemon must check a configuration with
//! no site of its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Copies the workspace binaries `names` into `dir/bin`.
fn install(dir: &Path, names: &[&str]) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin folder");
    for name in names {
        std::fs::copy(e2e_tests::workspace_bin(name), bin.join(name)).expect("copy binary");
    }
    bin
}

/// Runs `program args` in `cwd` with the workspace hidden when the machine allows a private
/// mount namespace (root, or unprivileged user namespaces); says so when it does not.
fn run_hidden(cwd: &Path, program: &Path, args: &[&str]) -> Output {
    let root = e2e_tests::workspace_root();
    let script = r#"mount -t tmpfs -o size=1m rsu-hidden "$1" && shift && exec "$@""#;
    let hidden = |user_ns: bool| {
        let mut cmd = Command::new("unshare");
        if user_ns {
            cmd.arg("--map-root-user");
        }
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", script, "sh"])
            .arg(&root)
            .arg(program)
            .args(args)
            .current_dir(cwd)
            .output()
    };
    for user_ns in [false, true] {
        if let Ok(out) = hidden(user_ns) {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let refused = stderr.contains("unshare failed") || stderr.contains("mount:") && !out.status.success();
            if !refused {
                return out;
            }
        }
    }
    eprintln!(
        "NOTE: no private mount namespace here (unshare refused); running {} from {} with the repository visible",
        program.display(),
        cwd.display()
    );
    Command::new(program).args(args).current_dir(cwd).output().expect("runs")
}

fn text(out: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn installed_binaries_run_from_an_empty_folder_on_embedded_defaults() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bin = install(tmp.path(), &["rsu", "rsu-lab"]);
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).expect("work folder");
    let root = e2e_tests::workspace_root();

    // The hiding works: the repository's README is not there for the child.
    let probe = run_hidden(&work, Path::new("/bin/sh"), &["-c", &format!("test ! -e {}/README.md", root.display())]);
    let hidden = probe.status.success();

    // The demo on its embedded site, scenario and criteria.
    let out = run_hidden(&work, &bin.join("rsu-lab"), &["demo", "--duration-s", "4", "--out", "demo-out"]);
    let said = text(&out);
    assert!(out.status.success(), "rsu-lab demo from an empty folder failed:\n{said}");
    assert!(said.contains("with V2X") && said.contains("without V2X"), "{said}");
    assert!(said.contains("built-in criteria of scenario bus-pedestrian"), "the demo names its criteria:\n{said}");
    for file in ["demo.mcap", "demo.rrd", "summary.json", "report.html"] {
        assert!(work.join("demo-out").join(file).exists(), "{file} written");
    }

    // Validation of the demo's log judges it by the scenario's built-in criteria, and says so.
    let out =
        run_hidden(&work, &bin.join("rsu-lab"), &["replay", "validate", "demo-out/demo.mcap", "--report", "r.json"]);
    let said = text(&out);
    assert!(matches!(out.status.code(), Some(0 | 1)), "validate ran:\n{said}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("r.json")).expect("report")).expect("JSON");
    assert_eq!(report["logs"][0]["criteria"]["kind"], "embedded", "{report}");
    assert_eq!(report["logs"][0]["criteria"]["name"], "bus-pedestrian");

    // The daemon: a development PKI, then a configuration with no site checks on the embedded one.
    let out = run_hidden(&work, &bin.join("rsu"), &["certs", "init", "--out", "pki"]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(
        work.join("rsu.toml"),
        "listen = \"127.0.0.1:0\"\n[tls]\nca = \"pki/ca.pem\"\ncert = \"pki/rsu.pem\"\nkey = \"pki/rsu.key\"\n",
    )
    .expect("config");
    let out = run_hidden(&work, &bin.join("rsu"), &["serve", "--config", "rsu.toml", "--check"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("embedded representative Yancheng site"), "{said}");

    assert!(hidden || std::env::var_os("CI").is_none(), "CI must be able to hide the repository: {}", text(&probe));
}
