//! `wasmgate plugin new | build | inspect`: a plugin author's loop without the
//! gateway's source tree. `new` writes a crate from the plugin template (its own
//! workspace, the `plugin` profile, the SDK by path, this repository's lock file);
//! `build` compiles a crate to `wasm32-wasip2` with that profile (adding the target
//! with rustup when it is missing), checks the component as the gateway would load
//! it, and can install it into a plugin directory by rename; `inspect` says what a
//! plugin file is.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use clap::Subcommand;

use super::Fatal;
use crate::metrics::Metrics;
use crate::plugin::{Inspection, PluginRuntime, WIT_VERSION};

/// `wasmgate plugin …`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Write a new plugin crate from the template; it builds and its tests pass as
    /// written.
    New {
        /// The plugin's name: lower-case letters, digits, '-' and '_' (the file will
        /// be NAME.wasm).
        name: String,
        /// Where to write the crate (default: ./NAME); must not exist or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The plugin SDK (`plugin-sdk` of a wasmgate checkout); default: the one
        /// this wasmgate was built from.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Build a plugin crate to a component, check it against this gateway's
    /// contract, and print its size and hash.
    Build {
        /// The crate's directory (default: the current one).
        path: Option<PathBuf>,
        /// Also put it into this plugin directory as NAME.wasm, by rename (a running
        /// gateway watching it loads it).
        #[arg(long)]
        install: Option<PathBuf>,
    },
    /// Say what a plugin file is: contract version, imports, exports, size, hash,
    /// and whether this gateway would load it.
    Inspect {
        /// The `.wasm` file.
        file: PathBuf,
    },
}

/// Runs one `plugin` subcommand.
pub fn run(command: PluginCommand) -> Result<(), Fatal> {
    match command {
        PluginCommand::New { name, dir, sdk } => new(&name, dir, sdk),
        PluginCommand::Build { path, install } => build(path, install),
        PluginCommand::Inspect { file } => inspect(&file),
    }
}

/// A failure the author must fix (exit code 2).
fn refuse(message: impl Into<String>) -> Fatal {
    Fatal::Config(message.into())
}

// ---------------------------------------------------------------- new

const TEMPLATE_LIB: &str = include_str!("../../../examples/plugin-template/src/lib.rs");
const WORKSPACE_LOCK: &str = include_str!("../../../Cargo.lock");

fn new(name: &str, dir: Option<PathBuf>, sdk: Option<PathBuf>) -> Result<(), Fatal> {
    if !crate::config::is_plugin_name(name) {
        return Err(refuse(format!(
            "{name:?} is not a plugin name (lower-case letters, digits, '-' and '_')"
        )));
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map(|mut entries| entries.next().is_some())
            .unwrap_or(true)
    {
        return Err(refuse(format!(
            "{} exists and is not empty: choose another --dir",
            dir.display()
        )));
    }
    let sdk = sdk.unwrap_or_else(|| {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../plugin-sdk")).to_path_buf()
    });
    let sdk = std::fs::canonicalize(&sdk)
        .ok()
        .filter(|sdk| sdk.join("Cargo.toml").is_file())
        .ok_or_else(|| {
            refuse(format!(
                "no plugin SDK at {}: give --sdk PATH (the plugin-sdk folder of a wasmgate checkout)",
                sdk.display()
            ))
        })?;
    let write = |file: &str, text: &str| -> Result<(), Fatal> {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| refuse(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(&path, text)
            .map_err(|e| refuse(format!("cannot write {}: {e}", path.display())))
    };
    write("Cargo.toml", &manifest(name, &sdk))?;
    write("Cargo.lock", WORKSPACE_LOCK)?;
    write("src/lib.rs", TEMPLATE_LIB)?;
    write(".gitignore", "/target\n")?;
    write("README.md", &readme(name))?;
    println!("wrote the plugin crate {name} in {}", dir.display());
    println!(
        "  test it:   cargo test --manifest-path {}/Cargo.toml",
        dir.display()
    );
    println!("  build it:  wasmgate plugin build {}", dir.display());
    Ok(())
}

/// The new crate's manifest: its own workspace, the SDK by path, the plugin profile.
fn manifest(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
wasmgate-plugin-sdk = {{ path = {sdk:?} }}
serde = {{ version = "1", features = ["derive"] }}

[dev-dependencies]
serde_json = "1"

# Its own workspace, wherever it is written.
[workspace]

# What `wasmgate plugin build` builds with: small, no debug info, aborts on panic.
[profile.plugin]
inherits = "release"
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = true
debug = false
"#,
        sdk = sdk.display().to_string()
    )
}

fn readme(name: &str) -> String {
    format!(
        "# {name}\n\nA wasmgate plugin, written by `wasmgate plugin new` from the plugin \
         template: it refuses requests without a configured header and greets the \
         upstream. `src/lib.rs` is the whole plugin; its tests run natively.\n\n\
         ```sh\ncargo test                              # the harness tests\n\
         wasmgate plugin build --install PLUGIN_DIR  # → PLUGIN_DIR/{name}.wasm\n```\n\n\
         ```toml\n[[routes.plugins]]\nname = \"{name}\"\n\
         config = {{ require_header = \"x-api-version\", greeting = \"hi\" }}\n```\n"
    )
}

// ---------------------------------------------------------------- build

fn build(path: Option<PathBuf>, install: Option<PathBuf>) -> Result<(), Fatal> {
    let dir = path.unwrap_or_else(|| PathBuf::from("."));
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(refuse(format!(
            "{}: no Cargo.toml: give the plugin crate's directory",
            dir.display()
        )));
    }
    ensure_target()?;
    eprintln!(
        "building {} for wasm32-wasip2 (profile plugin)…",
        dir.display()
    );
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .args(["build", "--profile", "plugin", "--target", "wasm32-wasip2"])
        .args([
            "--message-format",
            "json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let output = cargo
        .output()
        .map_err(|e| Fatal::Other(anyhow::anyhow!("cannot run cargo: {e}")))?;
    if !output.status.success() {
        return Err(refuse(format!(
            "{}: cargo build failed (its errors are above)",
            dir.display()
        )));
    }
    let (package, wasm) = built_component(&output.stdout).ok_or_else(|| {
        refuse(format!(
            "{}: cargo built no .wasm: is the crate a cdylib (crate-type = [\"cdylib\", \"rlib\"])?",
            dir.display()
        ))
    })?;
    let bytes = std::fs::read(&wasm)
        .map_err(|e| Fatal::Other(anyhow::anyhow!("cannot read {}: {e}", wasm.display())))?;
    let inspection = inspect_bytes(&bytes)?;
    if let Err(why) = &inspection.loadable {
        return Err(refuse(format!(
            "{}: this gateway would not load it: {why}",
            wasm.display()
        )));
    }
    println!(
        "{}: {} bytes, sha256 {}, contract wasmgate:plugin@{}",
        wasm.display(),
        inspection.size,
        inspection.hash,
        inspection.loadable.as_deref().unwrap_or_default()
    );
    if let Some(plugin_dir) = install {
        let target = plugin_dir.join(format!("{package}.wasm"));
        let staging = plugin_dir.join(format!(".{package}.wasm.tmp"));
        std::fs::create_dir_all(&plugin_dir)
            .and_then(|()| std::fs::write(&staging, &bytes))
            .and_then(|()| std::fs::rename(&staging, &target))
            .map_err(|e| refuse(format!("cannot install into {}: {e}", plugin_dir.display())))?;
        println!("installed as {}", target.display());
    }
    Ok(())
}

/// Adds the `wasm32-wasip2` target with rustup when rustup is there (a toolchain
/// without rustup must have it already; cargo then says so).
fn ensure_target() -> Result<(), Fatal> {
    let Ok(installed) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return Ok(());
    };
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|line| line.trim() == "wasm32-wasip2")
    {
        return Ok(());
    }
    eprintln!("adding the wasm32-wasip2 target (rustup target add wasm32-wasip2)…");
    let status = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status()
        .map_err(|e| Fatal::Other(anyhow::anyhow!("cannot run rustup: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(refuse("rustup target add wasm32-wasip2 failed"))
    }
}

/// The (package name, `.wasm` file) of the cdylib in cargo's JSON messages.
fn built_component(messages: &[u8]) -> Option<(String, PathBuf)> {
    String::from_utf8_lossy(messages)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter_map(|message| {
            let wasm = message["filenames"]
                .as_array()?
                .iter()
                .filter_map(|f| f.as_str())
                .find(|f| f.ends_with(".wasm"))?
                .to_string();
            // `path+file:///…#name@0.1.0`, or `…#0.1.0` when the folder is the name.
            let id = message["package_id"].as_str()?;
            let name = message["target"]["name"].as_str()?;
            let package = id
                .rsplit_once('#')
                .and_then(|(_, tail)| tail.split_once('@').map(|(n, _)| n.to_string()))
                .unwrap_or_else(|| name.replace('_', "-"));
            Some((package, PathBuf::from(wasm)))
        })
        .next_back()
}

// ---------------------------------------------------------------- inspect

fn inspect_bytes(bytes: &[u8]) -> Result<Inspection, Fatal> {
    let runtime = PluginRuntime::new(None, Arc::new(Metrics::new()))?;
    runtime.inspect(bytes).map_err(|e| refuse(e.to_string()))
}

fn inspect(file: &Path) -> Result<(), Fatal> {
    let bytes = std::fs::read(file).map_err(|e| refuse(format!("{}: {e}", file.display())))?;
    let inspection =
        inspect_bytes(&bytes).map_err(|e| refuse(format!("{}: {e}", file.display())))?;
    println!("file      {}", file.display());
    println!("size      {} bytes", inspection.size);
    println!("sha256    {}", inspection.hash);
    let contract = inspection
        .exports
        .iter()
        .find_map(|e| e.strip_prefix("wasmgate:plugin/handler@"))
        .unwrap_or("none (not a wasmgate plugin)");
    println!("contract  wasmgate:plugin@{contract} (this gateway: {WIT_VERSION})");
    println!("imports");
    for name in &inspection.imports {
        println!("  {name}");
    }
    println!("exports");
    for name in &inspection.exports {
        println!("  {name}");
    }
    match &inspection.loadable {
        Ok(_) => {
            println!("loads     yes");
            Ok(())
        }
        Err(why) => Err(refuse(format!(
            "{}: this gateway would not load it: {why}",
            file.display()
        ))),
    }
}
