//! `wasmgate plugin new`, `build` and `inspect` as a plugin author runs them: a new
//! crate in an empty directory whose tests pass as written, built to a component and
//! installed into a running gateway's plugin directory, which then serves it; and a
//! component of another contract version refused with both versions named.
//!
//! Builds share the workspace's target directory, so the dependencies that
//! `scripts/build-plugins.sh` and the test build compiled are not compiled again.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use wasmgate_e2e::{TestGateway, Upstream, client, wait_until_ok, wasmgate_bin};

/// The workspace's target directory (the one `wasmgate` was built into).
fn target_dir() -> PathBuf {
    wasmgate_bin()
        .parent()
        .and_then(Path::parent)
        .expect("target/release/wasmgate")
        .to_path_buf()
}

/// Runs `wasmgate ARGS`; (exit code, stdout + stderr).
fn wasmgate(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(wasmgate_bin())
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("run wasmgate");
    (output.status.code(), text(&output))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

const ROUTE: &str = r#"
[[routes]]
name = "api"
prefix = "/"
service = "echo"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_plugin_builds_tests_and_serves_from_a_running_gateways_directory() {
    let work = tempfile::tempdir().unwrap();
    let crate_dir = work.path().join("greet");
    let crate_arg = crate_dir.to_str().unwrap();
    let (code, output) = wasmgate(&["plugin", "new", "greet", "--dir", crate_arg]);
    assert_eq!(code, Some(0), "{output}");
    for file in ["Cargo.toml", "Cargo.lock", "src/lib.rs", "README.md"] {
        assert!(crate_dir.join(file).is_file(), "{file} missing");
    }

    // Its tests pass as written.
    let tested = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["test", "--release", "--manifest-path"])
        .arg(crate_dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("run cargo test");
    assert!(tested.status.success(), "{}", text(&tested));

    // Built and installed into a running gateway's plugin directory, then used by a
    // route: the gateway serves it.
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .toml(ROUTE)
        .start();
    let plugin_dir = gateway.plugin_dir();
    let (code, output) = wasmgate(&[
        "plugin",
        "build",
        crate_arg,
        "--install",
        plugin_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("contract wasmgate:plugin@0.5"), "{output}");
    assert!(output.contains("installed as"), "{output}");
    assert!(plugin_dir.join("greet.wasm").is_file());
    gateway.rewrite_config(&format!(
        "{}[[routes.plugins]]\nname = \"greet\"\nconfig = {{ require_header = \"x-api-version\", greeting = \"hi\" }}\n",
        gateway.config_text()
    ));
    wait_until_ok("the new plugin", Duration::from_secs(20), || async {
        let status = client()
            .get(gateway.url("/x"))
            .send()
            .await
            .unwrap()
            .status();
        if status == 400 {
            return Ok(());
        }
        Err(format!("still {status}; log:\n{}", gateway.log()))
    })
    .await;
    let echoed: Value = client()
        .get(gateway.url("/x"))
        .header("x-api-version", "2")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echoed["headers"]["x-greeting"][0], "hi");

    // `inspect` on what was installed.
    let installed = plugin_dir.join("greet.wasm");
    let (code, output) = wasmgate(&["plugin", "inspect", installed.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("wasmgate:plugin/handler@0.5"), "{output}");
    assert!(output.contains("loads     yes"), "{output}");
}

#[test]
fn a_component_of_another_contract_version_is_refused_by_build_and_inspect() {
    let guest = Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/contract-nine");
    let (code, output) = wasmgate(&["plugin", "build", guest.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{output}");
    assert!(
        output.contains(
            "this gateway would not load it: built against wasmgate:plugin@9.0.0, but this gateway implements wasmgate:plugin@0.5"
        ),
        "{output}"
    );
    let wasm = target_dir().join("wasm32-wasip2/plugin/contract_nine.wasm");
    let (code, output) = wasmgate(&["plugin", "inspect", wasm.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{output}");
    assert!(
        output.contains("contract  wasmgate:plugin@9.0.0"),
        "{output}"
    );
}

#[test]
fn new_refuses_a_bad_name_and_a_directory_in_use() {
    let (code, output) = wasmgate(&["plugin", "new", "Not A Name"]);
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("is not a plugin name"), "{output}");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("keep.txt"), "mine").unwrap();
    let (code, output) = wasmgate(&[
        "plugin",
        "new",
        "greet",
        "--dir",
        work.path().to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("exists and is not empty"), "{output}");
    assert_eq!(
        std::fs::read_to_string(work.path().join("keep.txt")).unwrap(),
        "mine"
    );
}
