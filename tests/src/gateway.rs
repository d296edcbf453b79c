//! Starting the real `wasmgate` binary: a builder for its config and plugin
//! directory, and a handle that stops the process when dropped.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The `target/` directory the tests were built into.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf()
}

/// The `wasmgate` binary under test.
pub fn wasmgate_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("WASMGATE_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("profile dir");
    let bin = profile_dir.join("wasmgate");
    assert!(
        bin.is_file(),
        "{} is missing: build it first (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// The built component of plugin crate `name` (e.g. `headers`, `spin`).
pub fn plugin_wasm(name: &str) -> PathBuf {
    let dir = std::env::var_os("WASMGATE_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("wasm32-wasip2").join("plugin"));
    let file = dir.join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        file.is_file(),
        "{} is missing: build the plugins first (scripts/build-plugins.sh)",
        file.display()
    );
    file
}

/// Builds a gateway: a config file and a plugin directory in a temp dir.
pub struct TestGateway {
    dir: tempfile::TempDir,
    data_dir: Option<PathBuf>,
    config: String,
    plugins: Vec<(String, PathBuf)>,
    env: Vec<(String, String)>,
    /// The config is an example's file as it is, without the builder's own lines.
    verbatim: bool,
}

impl Default for TestGateway {
    fn default() -> Self {
        Self::new()
    }
}

impl TestGateway {
    /// A gateway listening on a free loopback port, with no routes yet.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            data_dir: None,
            config: String::new(),
            plugins: Vec::new(),
            env: Vec::new(),
            verbatim: false,
        }
    }

    /// The example `examples/NAME/wasmgate.toml` as it is, with the first-party
    /// plugins its routes name in its plugin dir (its `run.sh` puts every one there;
    /// compiling the others would only slow the test) and its relative paths (data)
    /// in a temp dir. Set the example's own variables with
    /// [`TestGateway::env`] (its ports to 0, say).
    pub fn example(name: &str) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the repository")
            .to_path_buf();
        let file = root.join("examples").join(name).join("wasmgate.toml");
        let mut gateway = Self::new();
        gateway.config =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        gateway.verbatim = true;
        let mut plugins: Vec<String> = std::fs::read_dir(root.join("plugins"))
            .expect("plugins/")
            .filter_map(|entry| Some(entry.ok()?.file_name().to_str()?.to_string()))
            .collect();
        plugins.sort();
        for plugin in plugins {
            if gateway.config.contains(&format!("name = \"{plugin}\"")) {
                gateway = gateway.plugin(&plugin, &plugin);
            }
        }
        gateway
    }

    /// Keeps state in `dir` (default: a fresh temp dir), e.g. to restart on it.
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_path_buf());
        self
    }

    /// The whole config text. Line 1 puts the admin API on a free loopback port
    /// (unless the appended TOML has its own `[admin]`: then it is a comment), the
    /// `[gateway]` section takes lines 2-6 and line 7 is blank, so TOML appended with
    /// [`TestGateway::toml`] starts on line 8.
    fn config_text(&self) -> String {
        if self.verbatim {
            return self.config.clone();
        }
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| self.dir.path().join("data"));
        let admin = if self.config.contains("[admin]") {
            "# [admin] is set below"
        } else {
            "admin = { listen = \"127.0.0.1:0\" }"
        };
        format!(
            "{admin}\n[gateway]\nlisten = \"127.0.0.1:0\"\nplugin_dir = \"plugins\"\ndata_dir = {:?}\nshutdown_grace_ms = 3000\n\n{}",
            data_dir.display().to_string(),
            self.config
        )
    }

    /// Appends TOML to the config (services, routes, `[limits]`, `[plugins.X]`).
    pub fn toml(mut self, text: &str) -> Self {
        self.config.push_str(text);
        self.config.push('\n');
        self
    }

    /// Adds `[services.NAME]` with one endpoint.
    pub fn service(self, name: &str, address: SocketAddr) -> Self {
        self.toml(&format!(
            "[services.{name}]\nendpoints = [\"http://{address}\"]\n"
        ))
    }

    /// Puts the built plugin crate `crate_name` into the plugin dir as `NAME.wasm`.
    pub fn plugin(mut self, name: &str, crate_name: &str) -> Self {
        self.plugins.push((name.into(), plugin_wasm(crate_name)));
        self
    }

    /// Puts arbitrary bytes into the plugin dir as `NAME.wasm`.
    pub fn plugin_bytes(self, name: &str, bytes: &[u8]) -> Self {
        let dir = self.dir.path().join("plugins");
        std::fs::create_dir_all(&dir).expect("plugin dir");
        std::fs::write(dir.join(format!("{name}.wasm")), bytes).expect("plugin file");
        self
    }

    /// Sets an environment variable for the process.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Leaves out a variable [`TestGateway::env`] set (the process still inherits the
    /// test's own environment, which the tests' variables are not in).
    pub fn without_env(mut self, name: &str) -> Self {
        self.env.retain(|(set, _)| set != name);
        self
    }

    /// Writes the config and plugin dir; returns the config path.
    fn write(&self) -> PathBuf {
        let plugins = self.dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).expect("plugin dir");
        for (name, source) in &self.plugins {
            std::fs::copy(source, plugins.join(format!("{name}.wasm"))).expect("copy plugin");
        }
        let config = self.dir.path().join("wasmgate.toml");
        std::fs::write(&config, self.config_text()).expect("write config");
        config
    }

    /// Runs `wasmgate check` on the config, with the variables of [`TestGateway::env`]:
    /// (exit status, stdout + stderr).
    pub fn check(self) -> (ExitStatus, String) {
        let config = self.write();
        let mut command = Command::new(wasmgate_bin());
        command.args(["check", "--config"]).arg(&config);
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let output = command.output().expect("run wasmgate check");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status, text)
    }

    /// Runs `wasmgate check`, which must refuse the config (exit code 2) naming the
    /// config file; returns its output.
    pub fn check_refused(self) -> String {
        let (status, output) = self.check();
        assert_eq!(status.code(), Some(2), "exit status; output: {output}");
        assert!(
            output.contains("wasmgate.toml:"),
            "names the file: {output}"
        );
        output
    }

    /// Starts `wasmgate run` and waits until it listens. Panics with its output if it
    /// exits instead.
    pub fn start(self) -> GatewayProcess {
        let config = self.write();
        let mut command = Command::new(wasmgate_bin());
        command
            .args(["run", "--config"])
            .arg(&config)
            .env("LOG_LEVEL", "info")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("spawn wasmgate");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        let log_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        // stdout: `wasmgate admin on http://…` (when enabled), then
        // `wasmgate listening on http://…` once it serves.
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let mut admin = None;
        let address = loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                break None;
            }
            let text = line.trim();
            if let Some(a) = text.strip_prefix("wasmgate admin on http://") {
                admin = a.parse().ok();
            } else {
                break text
                    .strip_prefix("wasmgate listening on http://")
                    .or_else(|| text.strip_prefix("wasmgate listening on https://"))
                    .and_then(|a| a.parse().ok());
            }
        };
        let Some(address) = address else {
            let status = child.wait().ok();
            std::thread::sleep(Duration::from_millis(100));
            let mut rest = String::new();
            let _ = stdout.read_to_string(&mut rest);
            panic!(
                "wasmgate did not start (exit {status:?}); stdout: {line}{rest}\nlog:\n{}\nconfig:\n{}",
                log.lock().unwrap(),
                self.config_text()
            );
        };
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = stdout.read_to_string(&mut sink);
        });
        GatewayProcess {
            child,
            address,
            admin,
            config,
            log,
            log_reader: Some(log_reader),
            dir: self.dir,
        }
    }
}

/// A running gateway; killed when dropped.
pub struct GatewayProcess {
    child: Child,
    /// Where it listens.
    pub address: SocketAddr,
    /// Where its admin API listens, when enabled.
    pub admin: Option<SocketAddr>,
    config: PathBuf,
    log: Arc<Mutex<String>>,
    log_reader: Option<std::thread::JoinHandle<()>>,
    dir: tempfile::TempDir,
}

impl GatewayProcess {
    /// `http://ADDRESS` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// `http://ADMIN_ADDRESS` + `path`.
    pub fn admin_url(&self, path: &str) -> String {
        let admin = self.admin.expect("the admin API is enabled");
        format!("http://{admin}{path}")
    }

    /// The config file it serves.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Its plugin directory.
    pub fn plugin_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    /// Puts `bytes` in place as plugin `NAME.wasm` the way operators are told to:
    /// written to a temporary name in the same directory, then renamed.
    pub fn install_plugin(&self, name: &str, bytes: &[u8]) {
        let dir = self.plugin_dir();
        let temporary = dir.join(format!(".{name}.wasm.tmp"));
        std::fs::write(&temporary, bytes).expect("write the temporary plugin file");
        std::fs::rename(&temporary, dir.join(format!("{name}.wasm"))).expect("rename it");
    }

    /// Replaces the config file, written to a temporary name and renamed.
    pub fn rewrite_config(&self, text: &str) {
        let temporary = self.dir.path().join(".wasmgate.toml.tmp");
        std::fs::write(&temporary, text).expect("write the temporary config");
        std::fs::rename(&temporary, &self.config).expect("rename it");
    }

    /// The config file's current text.
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(&self.config).expect("read the config")
    }

    /// Sends a signal (`HUP`, `TERM`…) to the process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Everything the gateway logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log's JSON lines (`LOG_FORMAT=json`), parsed; other lines are skipped.
    pub fn json_log(&self) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Waits (up to 10 s) until the JSON log holds at least `count` lines that
    /// `matches`, and returns every such line, in order; the failure shows the log.
    pub fn wait_for_json_lines(
        &self,
        what: &str,
        count: usize,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        crate::wait_for_ok(what, Duration::from_secs(10), || {
            let lines: Vec<_> = self.json_log().into_iter().filter(&matches).collect();
            match lines.len() >= count {
                true => Ok(lines),
                false => Err(format!(
                    "{} of {count} so far; log:\n{}",
                    lines.len(),
                    self.log()
                )),
            }
        })
    }

    /// Waits (up to 10 s) until the log holds `needle`, and returns the log.
    /// Log lines reach the test through a pipe some time after the response
    /// that caused them, so a positive check on the log must wait.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the gateway never logged {needle:?}; its log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The log once it holds every line about what happened before the call: the
    /// gateway is asked to reload (`SIGHUP`), whose outcome it logs whatever it is, and
    /// lines arrive in order. A check that something was never logged reads this, not
    /// [`log`](Self::log), which may not yet hold the lines of the latest requests.
    pub fn settled_log(&self) -> String {
        let outcomes = |log: &str| {
            log.matches("trigger=Signal").count() + log.matches(r#""trigger":"Signal""#).count()
        };
        let before = outcomes(&self.log());
        self.signal("HUP");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if outcomes(&log) > before {
                return log;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the gateway logged no reload outcome after SIGHUP; its log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The gateway's resident set size in KiB, from `/proc`.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS line")
    }

    /// Sends SIGTERM and waits (bounded) for the exit status; afterwards
    /// [`log`](Self::log) holds everything the process wrote.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        self.signal("TERM");
        let status = crate::wait_for("wasmgate to exit", Duration::from_secs(15), || {
            self.child.try_wait().ok().flatten()
        });
        if let Some(reader) = self.log_reader.take() {
            let _ = reader.join();
        }
        Some(status)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
