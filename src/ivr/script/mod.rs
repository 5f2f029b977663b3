//! IVR scripts: TOML files (see `ivr-scripts/README.md`) that describe a graph of steps.
//! `check` turns a text into a [`Script`] or a list of problems; the database keeps every
//! version (`store::scripts`); the [`Catalog`] holds the published ones that answer calls and
//! the versions calls in progress still run on.

pub mod check;
pub mod model;
mod raw;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{Context, bail};

pub use check::{CheckReport, Env, Problem, Severity, check};
pub use model::{Challenge, Department, Input, PopFields, Script, Step, Via};

use crate::store::Db;

/// The published scripts, with the dialed numbers they answer.
#[derive(Debug, Clone)]
pub struct ScriptSet {
    scripts: HashMap<String, Arc<Script>>,
    by_number: HashMap<String, String>,
}

impl ScriptSet {
    /// Refuses a set without a `default` script, or with a number bound to two scripts.
    pub fn from_scripts(list: Vec<Arc<Script>>) -> anyhow::Result<Self> {
        let mut scripts = HashMap::new();
        let mut by_number = HashMap::new();
        for script in list {
            for number in &script.numbers {
                if let Some(other) = by_number.insert(number.clone(), script.name.clone())
                    && other != script.name
                {
                    bail!(
                        "number {number} is bound to both {other} and {}",
                        script.name
                    );
                }
            }
            if scripts.contains_key(&script.name) {
                bail!("two scripts are named {}", script.name);
            }
            scripts.insert(script.name.clone(), script);
        }
        if !scripts.contains_key("default") {
            bail!("no script is named \"default\"; it answers every number no other script binds");
        }
        Ok(Self { scripts, by_number })
    }

    /// One script answering every number, whatever its name (the simulator's).
    pub fn single(script: Arc<Script>) -> Self {
        let name = script.name.clone();
        Self {
            scripts: HashMap::from([("default".to_owned(), script.clone()), (name, script)]),
            by_number: HashMap::new(),
        }
    }

    /// The script that answers a call to `called`.
    pub fn for_number(&self, called: Option<&str>) -> Arc<Script> {
        called
            .and_then(|to| self.by_number.get(to))
            .and_then(|name| self.scripts.get(name))
            .unwrap_or_else(|| self.default_script())
            .clone()
    }

    pub fn get(&self, name: &str) -> Option<Arc<Script>> {
        self.scripts.get(name).cloned()
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Script>> {
        self.scripts.values()
    }

    fn default_script(&self) -> &Arc<Script> {
        // `from_scripts` refuses a set without a default, so the fallback is never taken.
        self.scripts
            .get("default")
            .or_else(|| self.scripts.values().next())
            .unwrap_or_else(|| unreachable!("a ScriptSet always holds a default script"))
    }
}

/// Compiled versions kept for calls in progress; beyond this the oldest are dropped (and
/// recompiled from the database if a call still needs one).
const VERSION_CACHE: usize = 256;

/// The scripts the server runs: the published set, swapped whole when an admin publishes (no
/// restart), and every version a call started on.
pub struct Catalog {
    live: RwLock<Arc<ScriptSet>>,
    versions: Mutex<HashMap<(String, i64), Arc<Script>>>,
    sounds_dir: PathBuf,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").finish_non_exhaustive()
    }
}

impl Catalog {
    pub fn new(set: ScriptSet, sounds_dir: PathBuf) -> Self {
        Self {
            live: RwLock::new(Arc::new(set)),
            versions: Mutex::new(HashMap::new()),
            sounds_dir,
        }
    }

    /// The published scripts in the database.
    pub fn load(db: &dyn Db, sounds_dir: &Path) -> anyhow::Result<Self> {
        let set = published_set(db)?;
        Ok(Self::new(set, sounds_dir.to_owned()))
    }

    pub fn live(&self) -> Arc<ScriptSet> {
        match self.live.read() {
            Ok(set) => set.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the published versions: new calls take them from now on.
    pub fn reload(&self, db: &dyn Db) -> anyhow::Result<()> {
        let set = Arc::new(published_set(db)?);
        match self.live.write() {
            Ok(mut live) => *live = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
        Ok(())
    }

    pub fn env(&self) -> Env<'_> {
        Env {
            sounds_dir: Some(&self.sounds_dir),
        }
    }

    /// The version a call started on: from the published set, the cache, or the database.
    pub fn version(
        &self,
        db: &dyn Db,
        name: &str,
        version: i64,
    ) -> anyhow::Result<Option<Arc<Script>>> {
        if let Some(s) = self.live().get(name).filter(|s| s.version == version) {
            return Ok(Some(s));
        }
        let key = (name.to_owned(), version);
        if let Some(s) = self.cache().get(&key) {
            return Ok(Some(s.clone()));
        }
        let Some(source) = db.script_source(name, version)? else {
            return Ok(None);
        };
        // Sound files are not re-checked for a version that is already running calls.
        let Some(mut script) = check(&source, Env::default()).script else {
            return Ok(None);
        };
        script.version = version;
        let script = Arc::new(script);
        let mut cache = self.cache();
        if cache.len() >= VERSION_CACHE {
            cache.clear();
        }
        cache.insert(key, script.clone());
        Ok(Some(script))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(String, i64), Arc<Script>>> {
        match self.versions.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Every published version, compiled. Whether they hold together is `ScriptSet::from_scripts`.
pub fn published_scripts(db: &dyn Db) -> anyhow::Result<Vec<Arc<Script>>> {
    let mut list = Vec::new();
    for (name, version, source) in db.published_scripts()? {
        let checked = check(&source, Env::default());
        let Some(mut script) = checked.script else {
            let problems: Vec<String> = checked.errors().map(|p| p.render(&name)).collect();
            bail!(
                "published version {version} of script {name} no longer passes the checker:\n  {}",
                problems.join("\n  ")
            );
        };
        script.version = version;
        list.push(Arc::new(script));
    }
    Ok(list)
}

/// The published scripts as the set that answers calls; refused if they do not hold together.
pub fn published_set(db: &dyn Db) -> anyhow::Result<ScriptSet> {
    ScriptSet::from_scripts(published_scripts(db)?).context("the published scripts")
}

/// One `*.toml` file of a scripts directory, read and checked.
pub struct ScriptFile {
    pub path: PathBuf,
    pub source: String,
    pub checked: CheckReport,
}

impl ScriptFile {
    pub fn origin(&self) -> String {
        self.path.display().to_string()
    }
}

/// Reads and checks every `*.toml` in `dir`, in name order.
pub fn read_dir(dir: &Path, env: Env<'_>) -> anyhow::Result<Vec<ScriptFile>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading scripts directory {}", dir.display()))?;
    let mut paths: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let source = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let checked = check(&source, env);
            Ok(ScriptFile {
                path,
                source,
                checked,
            })
        })
        .collect()
}
