//! Config errors: the gateway refuses to start, exits non-zero, and names the file,
//! the line and what is wrong.

use wasmgate_e2e::TestGateway;

/// Runs `wasmgate check` on `toml` and returns the output, asserting exit code 2.
fn refused(gateway: TestGateway) -> String {
    gateway.check_refused()
}

fn assert_line(output: &str, line: usize, what: &str) {
    assert!(
        output.contains(&format!("wasmgate.toml:{line}:")),
        "expected line {line} in: {output}"
    );
    assert!(output.contains(what), "expected {what:?} in: {output}");
}

// The builder's first line sets the admin listener, its [gateway] section takes
// lines 2-6 and line 7 is blank, so appended TOML starts on line 8.

#[test]
fn bad_toml_names_its_line() {
    let output =
        refused(TestGateway::new().toml("[services.a]\nendpoints = [\"http://127.0.0.1:1\"\n"));
    assert_line(&output, 9, "unclosed array, expected `]`");
}

#[test]
fn unknown_field_is_refused() {
    let output = refused(TestGateway::new().toml("[limits]\nmax_header_byte = 10\n"));
    assert_line(&output, 9, "unknown field `max_header_byte`");
}

#[test]
fn unknown_service_names_its_line() {
    let output = refused(
        TestGateway::new()
            .toml("[[routes]]\nname = \"r\"\nprefix = \"/\"\nservice = \"nowhere\"\n"),
    );
    assert_line(&output, 11, "unknown service \"nowhere\"");
}

#[test]
fn unknown_plugin_names_its_line() {
    let output = refused(
        TestGateway::new()
            .service("up", "127.0.0.1:1".parse().unwrap())
            .toml("[[routes]]\nname = \"r\"\nprefix = \"/\"\nservice = \"up\"\n[[routes.plugins]]\nname = \"missing\"\n"),
    );
    assert_line(&output, 16, "unknown plugin \"missing\"");
}

#[test]
fn duplicate_route_name_names_its_line() {
    let output = refused(
        TestGateway::new()
            .service("up", "127.0.0.1:1".parse().unwrap())
            .toml("[[routes]]\nname = \"r\"\nprefix = \"/a\"\nservice = \"up\"\n\n[[routes]]\nname = \"r\"\nprefix = \"/b\"\nservice = \"up\"\n"),
    );
    assert_line(&output, 17, "duplicate route name \"r\"");
}

#[test]
fn bad_path_pattern_names_its_line() {
    let output = refused(
        TestGateway::new()
            .service("up", "127.0.0.1:1".parse().unwrap())
            .toml("[[routes]]\nname = \"r\"\npath = \"/users/{id\"\nservice = \"up\"\n"),
    );
    assert_line(&output, 13, "route \"r\": path");
}

#[test]
fn a_plugin_that_refuses_its_config_names_the_route_and_line() {
    let output = refused(
        TestGateway::new()
            .service("up", "127.0.0.1:1".parse().unwrap())
            .plugin("headers", "headers")
            .toml("[[routes]]\nname = \"r\"\nprefix = \"/\"\nservice = \"up\"\n[[routes.plugins]]\nname = \"headers\"\nconfig = { no_such_field = 1 }\n"),
    );
    assert_line(&output, 16, "refused its config");
}

#[test]
fn run_refuses_to_start_on_a_bad_config() {
    use std::process::Command;
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
    let output = std::process::Command::new(wasmgate_e2e::wasmgate_bin())
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

#[test]
fn an_unset_environment_variable_names_its_line() {
    let output = refused(TestGateway::new().env("E2E_SET_LIMIT", "5").toml(
        "[limits]\nmax_header_bytes = ${E2E_SET_LIMIT}0000\nmax_body_bytes = ${E2E_UNSET_BODY}\n",
    ));
    assert_line(
        &output,
        10,
        "environment variable E2E_UNSET_BODY is not set (write `${E2E_UNSET_BODY:-default}`",
    );
}
