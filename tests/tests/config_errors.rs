//! Config errors: the gateway refuses to start, exits non-zero, and names the file,
//! the line and what is wrong.

use std::path::Path;
use std::process::Command;

use wasmgate_e2e::TestGateway;

/// Every `tests/config-errors/NAME.toml` is refused by `wasmgate check` (exit code 2)
/// with exactly the output in `NAME.err` beside it: the file, the line and what is
/// wrong, as an operator would read it. The config is checked from a fresh directory
/// as `NAME.toml` from a fresh directory; leading `# env: NAME=value` lines set
/// variables for the run, and `# plugin: NAME` lines put that plugin (built from the
/// repo) in its `plugins/`. `BLESS=1` writes the
/// `.err` files from what the gateway prints instead (then read the diff).
#[test]
fn each_golden_config_is_refused_with_its_message() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("config-errors");
    let mut names: Vec<String> = std::fs::read_dir(&cases)
        .expect("tests/config-errors/")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".toml")?.to_string())
        })
        .collect();
    names.sort();
    assert!(names.len() >= 20, "only {} cases", names.len());
    let bless = std::env::var_os("BLESS").is_some();
    let mut wrong = Vec::new();
    for name in &names {
        let toml = std::fs::read_to_string(cases.join(format!("{name}.toml"))).unwrap();
        let (code, output) = check_golden(name, &toml);
        let expected_file = cases.join(format!("{name}.err"));
        if bless {
            std::fs::write(&expected_file, &output).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_file)
            .unwrap_or_else(|e| panic!("{}: {e} (BLESS=1 writes it)", expected_file.display()));
        if code != Some(2) || output != expected {
            wrong.push(format!(
                "{name}.toml: exit {code:?}\n  expected: {expected}  printed:  {output}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Runs `wasmgate check --config NAME.toml` on `toml` in a fresh directory; the exit
/// code and its stderr from the first `error:` line on.
fn check_golden(name: &str, toml: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    for plugin in toml.lines().filter_map(|l| l.strip_prefix("# plugin: ")) {
        let wasm = wasmgate_e2e::plugin_wasm(plugin);
        std::fs::copy(&wasm, plugins.join(format!("{plugin}.wasm"))).unwrap();
    }
    let file = format!("{name}.toml");
    std::fs::write(dir.path().join(&file), toml).unwrap();
    let mut command = Command::new(wasmgate_e2e::wasmgate_bin());
    command
        .current_dir(dir.path())
        .args(["check", "--config", &file]);
    for line in toml.lines().filter_map(|l| l.strip_prefix("# env: ")) {
        let (variable, value) = line.split_once('=').expect("# env: NAME=value");
        command.env(variable, value);
    }
    let output = command.output().unwrap();
    // From the error on: log lines before it (a plugin loaded, with its compile time)
    // are not part of the verdict.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let verdict: String = stderr
        .lines()
        .skip_while(|line| !line.starts_with("error: "))
        .map(|line| format!("{line}\n"))
        .collect();
    (output.status.code(), verdict)
}

#[test]
fn run_refuses_to_start_on_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wasmgate.toml");
    std::fs::write(&config, "[gateway]\nlisten = \"not an address\"\n").unwrap();
    let output = Command::new(wasmgate_e2e::wasmgate_bin())
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("wasmgate.toml:2:"), "{text}");
    assert!(text.contains("not an address"), "{text}");
}

/// Runs `wasmgate COMMAND --config FILE` on `toml` written to a fresh directory
/// (with an empty `plugins/`); returns the exit code and what it printed.
fn run_on(command: &str, toml: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    let config = dir.path().join("wasmgate.toml");
    std::fs::write(&config, toml).unwrap();
    let output = Command::new(wasmgate_e2e::wasmgate_bin())
        .args([command, "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

#[test]
fn check_exits_0_on_a_good_config_and_2_on_a_bad_one() {
    let (code, output) = TestGateway::new()
        .service("up", "127.0.0.1:1".parse().unwrap())
        .toml("[[routes]]\nname = \"r\"\nprefix = \"/\"\nservice = \"up\"\n")
        .check();
    assert_eq!(code.code(), Some(0), "{output}");
    // The verdict alone: no log lines of plugins loaded or a store opened.
    let (code, output) = run_on(
        "check",
        "[services.up]\nendpoints = [\"http://127.0.0.1:1\"]\n\n\
         [[routes]]\nname = \"r\"\nprefix = \"/\"\nservice = \"up\"\n",
    );
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(output.lines().count(), 1, "{output}");
    assert!(
        output.ends_with("wasmgate.toml: ok (1 route, 0 plugins)\n"),
        "{output}"
    );
    let (code, output) = run_on("check", "[gateway]\nlisten = 8080\n");
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("wasmgate.toml:2:"), "{output}");
}

#[test]
fn run_exits_1_when_it_cannot_listen() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let toml = format!("[gateway]\nlisten = \"{address}\"\n\n[admin]\nenabled = false\n");
    let (code, output) = run_on("run", &toml);
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains(&format!("cannot listen on {address}")),
        "{output}"
    );
}

#[test]
fn a_non_loopback_admin_address_needs_allow_remote() {
    let toml = "[gateway]\nlisten = \"127.0.0.1:0\"\n\n[admin]\nlisten = \"0.0.0.0:9901\"\n";
    let (code, output) = run_on("check", toml);
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("wasmgate.toml:5:"), "{output}");
    assert!(output.contains("allow_remote"), "{output}");
    // The same address with allow_remote passes the check.
    let allowed = format!("{toml}allow_remote = true\n");
    let (code, output) = run_on("check", &allowed);
    assert_eq!(code, Some(0), "{output}");
}
