//! The on-disk cache of compiled plugins, so that a restart does not compile every
//! plugin again.
//!
//! An entry is named by the plugin's content hash and a key of the engine (wasmtime's
//! version and every setting that changes the machine code), so a different wasmtime
//! or engine config never finds an old entry. Each file starts with a magic line and
//! the SHA-256 of the artifact after it: a truncated or corrupted file fails that check
//! and is compiled again and rewritten, never loaded. wasmtime itself refuses an
//! artifact from another version or config as a second line of defence.
//!
//! Entries are written to a temporary name and renamed, so a crash mid-write leaves no
//! half file under a real name.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The first bytes of every cache file (format version 1).
const MAGIC: &[u8; 8] = b"WGCACHE1";
/// Magic plus the SHA-256 of the payload.
const HEADER_LEN: usize = MAGIC.len() + 32;

/// What the cache did for one load, for the log and `/admin/plugins`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// No cache directory is configured.
    Disabled,
    /// Loaded from the cache: nothing compiled.
    Hit,
    /// No entry: compiled, and the entry written.
    Miss,
    /// An entry was there but unusable (the reason): compiled and rewritten.
    Rebuilt(String),
}

impl CacheOutcome {
    /// A short name for logs and the admin API.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Rebuilt(_) => "rebuilt",
        }
    }
}

/// A directory of compiled components for one engine.
#[derive(Debug, Clone)]
pub struct DiskCache {
    dir: PathBuf,
    engine_key: String,
}

impl DiskCache {
    /// The cache in `dir` for `engine`; creates the directory.
    pub fn open(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir: dir.to_path_buf(),
            engine_key: format!("{:016x}", hasher.finish()),
        })
    }

    /// The file of the plugin whose content hash (hex) is `hash`.
    pub fn entry_path(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}-{}.cwasm", self.engine_key))
    }

    /// The component for `bytes` (content hash `hash`): from the cache if a sound
    /// entry is there, else compiled with `compile` and written back.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        hash: &str,
        compile: impl FnOnce() -> wasmtime::Result<Component>,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let path = self.entry_path(hash);
        let outcome = match std::fs::read(&path) {
            Ok(file) => match load(engine, &file) {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(why) => CacheOutcome::Rebuilt(why),
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => CacheOutcome::Miss,
            Err(error) => CacheOutcome::Rebuilt(format!("cannot read it: {error}")),
        };
        if let CacheOutcome::Rebuilt(why) = &outcome {
            tracing::warn!(entry = %path.display(), reason = %why, "plugin cache entry unusable; compiling again");
        }
        let component = compile()?;
        if let Err(error) = self.store(&path, &component) {
            tracing::warn!(entry = %path.display(), %error, "cannot write the plugin cache entry");
        }
        Ok((component, outcome))
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        let payload = component
            .serialize()
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let mut file = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.dir)?;
        file.write_all(MAGIC)?;
        file.write_all(&Sha256::digest(&payload))?;
        file.write_all(&payload)?;
        file.as_file().sync_all()?;
        file.persist(path)?;
        Ok(())
    }
}

/// Checks a cache file and deserializes its artifact; `Err` says why it is unusable.
#[allow(unsafe_code)]
fn load(engine: &Engine, file: &[u8]) -> Result<Component, String> {
    if file.len() < HEADER_LEN || &file[..MAGIC.len()] != MAGIC {
        return Err("not a wasmgate cache file (bad header)".into());
    }
    let (digest, payload) = file[MAGIC.len()..].split_at(32);
    if Sha256::digest(payload).as_slice() != digest {
        return Err("checksum mismatch (truncated or corrupted)".into());
    }
    // SAFETY: `payload` is exactly what `Component::serialize` produced for this cache
    // (its SHA-256 matches the one written beside it), and the file lives in the
    // gateway's own data directory. wasmtime also checks that it was made by this
    // wasmtime version with a compatible engine config and refuses it otherwise.
    unsafe { Component::deserialize(engine, payload) }
        .map_err(|e| format!("wasmtime refused it: {e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component there is: the preamble of an empty component.
    const EMPTY: &[u8] = b"\0asm\x0d\x00\x01\x00";

    /// An engine with or without epoch interruption: a setting that changes the
    /// machine code, so wasmtime refuses artifacts across it.
    fn engine(epochs: bool) -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true).epoch_interruption(epochs);
        Engine::new(&config).expect("engine")
    }

    fn compile(engine: &Engine) -> wasmtime::Result<Component> {
        Component::new(engine, EMPTY)
    }

    #[test]
    fn a_second_load_hits_and_a_corrupt_entry_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(true);
        let cache = DiskCache::open(dir.path(), &engine).unwrap();
        let (_, first) = cache
            .load_or_compile(&engine, "ab", || compile(&engine))
            .unwrap();
        assert_eq!(first, CacheOutcome::Miss);
        let (_, second) = cache
            .load_or_compile(&engine, "ab", || compile(&engine))
            .unwrap();
        assert_eq!(second, CacheOutcome::Hit);

        // Flip one byte of the artifact: the checksum catches it.
        let path = cache.entry_path("ab");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, third) = cache
            .load_or_compile(&engine, "ab", || compile(&engine))
            .unwrap();
        assert!(
            matches!(&third, CacheOutcome::Rebuilt(why) if why.contains("checksum")),
            "{third:?}"
        );
        // ...and the rewritten entry is sound again.
        let (_, fourth) = cache
            .load_or_compile(&engine, "ab", || compile(&engine))
            .unwrap();
        assert_eq!(fourth, CacheOutcome::Hit);

        // A truncated file.
        std::fs::write(&path, &bytes[..10]).unwrap();
        let (_, fifth) = cache
            .load_or_compile(&engine, "ab", || compile(&engine))
            .unwrap();
        assert!(matches!(fifth, CacheOutcome::Rebuilt(_)), "{fifth:?}");
    }

    #[test]
    fn engines_with_different_settings_use_different_entries() {
        let dir = tempfile::tempdir().unwrap();
        let ours_engine = engine(true);
        let their_engine = engine(false);
        let a = DiskCache::open(dir.path(), &ours_engine).unwrap();
        let b = DiskCache::open(dir.path(), &their_engine).unwrap();
        assert_ne!(a.entry_path("ab"), b.entry_path("ab"));
    }

    #[test]
    fn an_artifact_of_another_engine_under_our_name_is_refused_and_rebuilt() {
        // As if a file from another wasmtime or engine config were copied in under
        // this engine's name with a valid checksum: wasmtime's own check refuses it.
        let dir = tempfile::tempdir().unwrap();
        let ours_engine = engine(true);
        let their_engine = engine(false);
        let ours = DiskCache::open(dir.path(), &ours_engine).unwrap();
        let theirs = DiskCache::open(dir.path(), &their_engine).unwrap();
        theirs
            .load_or_compile(&their_engine, "ab", || compile(&their_engine))
            .unwrap();
        std::fs::rename(theirs.entry_path("ab"), ours.entry_path("ab")).unwrap();
        let (_, outcome) = ours
            .load_or_compile(&ours_engine, "ab", || compile(&ours_engine))
            .unwrap();
        assert!(
            matches!(&outcome, CacheOutcome::Rebuilt(why) if why.contains("wasmtime refused")),
            "{outcome:?}"
        );
    }
}
