//! `callgate script ...` and `callgate audit ...`: the checker on files, the versions in the
//! database, and the audit trail's chain.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;

use super::in_transaction;
use crate::config::{DEFAULT_SCRIPTS_DIR, DEFAULT_SOUNDS_DIR};
use crate::ivr::script::{self, Env, ScriptSet, Severity};
use crate::store::{Store, audit, now_ms};
use crate::usecases::Actor;
use crate::usecases::scripts as use_case;

#[derive(Debug, Subcommand)]
pub enum ScriptCommand {
    /// Check script files like a compiler: every problem with file:line:col; exit status 1
    /// when any file has an error. Without FILEs, every *.toml in the scripts directory, which
    /// are also checked together (one `default`, no number bound twice).
    Check {
        files: Vec<PathBuf>,
        #[arg(long, env = "CALLGATE_SCRIPTS", default_value = DEFAULT_SCRIPTS_DIR)]
        scripts_dir: PathBuf,
        /// Recordings referenced by the scripts must exist here and be WAV or MP3.
        #[arg(long, env = "CALLGATE_SOUNDS", default_value = DEFAULT_SOUNDS_DIR)]
        sounds_dir: PathBuf,
    },
    /// Scripts in the database: published and latest versions.
    List,
    /// The versions of one script.
    Versions { name: String },
    /// Write each script's published version (or, with --latest, its newest) to DIR/<name>.toml.
    Export {
        #[arg(long, env = "CALLGATE_SCRIPTS", default_value = DEFAULT_SCRIPTS_DIR)]
        dir: PathBuf,
        #[arg(long)]
        latest: bool,
    },
    /// Publish a saved version (a running server takes it within two seconds). It is checked
    /// again, and the published scripts with it must still hold together (one `default`, no
    /// number bound twice), as when an admin publishes.
    Publish {
        name: String,
        version: i64,
        /// Who is publishing, for the audit trail.
        #[arg(long, env = "USER", default_value = "cli")]
        actor: String,
        /// Recordings the script references must exist here (when the directory exists).
        #[arg(long, env = "CALLGATE_SOUNDS", default_value = DEFAULT_SOUNDS_DIR)]
        sounds_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain of the whole audit trail; exit status 1 if it is broken.
    Verify,
    /// The newest entries.
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only entries about this subject, e.g. script:default.
        #[arg(long)]
        subject: Option<String>,
    },
}

pub fn run(cmd: ScriptCommand, place: &crate::store::Location) -> anyhow::Result<()> {
    match cmd {
        ScriptCommand::Check {
            files,
            scripts_dir,
            sounds_dir,
        } => check_files(&files, &scripts_dir, &sounds_dir),
        ScriptCommand::List => {
            let store = Store::at(place)?;
            let rows = store.read_sync(|db| db.scripts())?;
            if rows.is_empty() {
                println!(
                    "no scripts yet: they are imported from the scripts directory when the server starts"
                );
            }
            for r in rows {
                println!(
                    "{:<20} published v{:<4} latest v{:<4} {} version(s)",
                    r.name,
                    r.published_version.map_or("-".into(), |v| v.to_string()),
                    r.latest_version,
                    r.versions
                );
            }
            Ok(())
        }
        ScriptCommand::Versions { name } => {
            let store = Store::at(place)?;
            let list = store.read_sync(|db| db.script_versions(&name))?;
            if list.is_empty() {
                bail!("no script named {name}");
            }
            for v in list {
                println!(
                    "v{:<4} {} {:<6} by {:<16} {}{}",
                    v.version,
                    v.created_at.unwrap_or_default(),
                    v.origin,
                    v.author,
                    &v.sha256[..12],
                    if v.published { "  (published)" } else { "" }
                );
            }
            Ok(())
        }
        ScriptCommand::Export { dir, latest } => {
            let store = Store::at(place)?;
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for row in store.read_sync(|db| db.scripts())? {
                let version = if latest {
                    Some(row.latest_version)
                } else {
                    row.published_version
                };
                let Some(version) = version else { continue };
                let Some(source) = store.read_sync(|db| db.script_source(&row.name, version))?
                else {
                    continue;
                };
                let path = dir.join(format!("{}.toml", row.name));
                // Written whole or not at all.
                let tmp = dir.join(format!(".{}.toml.tmp", row.name));
                std::fs::write(&tmp, &source)
                    .with_context(|| format!("writing {}", tmp.display()))?;
                std::fs::rename(&tmp, &path)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("{} v{version} -> {}", row.name, path.display());
            }
            Ok(())
        }
        ScriptCommand::Publish {
            name,
            version,
            actor,
            sounds_dir,
        } => {
            let env = Env {
                sounds_dir: sounds_dir.is_dir().then_some(sounds_dir.as_path()),
            };
            let store = Store::at(place)?;
            let actor = Actor::cli(&actor);
            in_transaction(&store, |db| {
                use_case::publish(db, env, &actor, &name, version, now_ms())
            })?;
            println!("published {name} v{version}");
            Ok(())
        }
    }
}

pub fn run_audit(cmd: AuditCommand, place: &crate::store::Location) -> anyhow::Result<()> {
    let store = Store::at(place)?;
    match cmd {
        AuditCommand::Verify => match store.read_sync(|db| db.verify_audit())? {
            audit::Verdict::Intact { entries, head } => {
                println!("audit trail intact: {entries} entries, head {head}");
                Ok(())
            }
            audit::Verdict::Broken { seq, why } => {
                bail!("audit trail BROKEN at entry {seq}: {why}")
            }
        },
        AuditCommand::List { limit, subject } => {
            for e in store.read_sync(|db| db.recent_audit(subject.as_deref(), limit))? {
                println!(
                    "#{:<5} {} {:<12} {:<16} {}",
                    e.seq, e.at, e.actor, e.action, e.subject
                );
                for line in e.detail.lines().take(40) {
                    println!("        {line}");
                }
            }
            Ok(())
        }
    }
}

fn check_files(files: &[PathBuf], scripts_dir: &Path, sounds_dir: &Path) -> anyhow::Result<()> {
    let env = Env {
        sounds_dir: sounds_dir.is_dir().then_some(sounds_dir),
    };
    let whole_dir = files.is_empty();
    let checked: Vec<script::ScriptFile> = if whole_dir {
        script::read_dir(scripts_dir, env)?
    } else {
        files
            .iter()
            .map(|path| {
                let source = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let checked = script::check(&source, env);
                Ok(script::ScriptFile {
                    path: path.clone(),
                    source,
                    checked,
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let (mut errors, mut warnings) = (0, 0);
    for file in &checked {
        for p in &file.checked.problems {
            match p.severity {
                Severity::Error => errors += 1,
                Severity::Warning => warnings += 1,
            }
            println!("{}", p.render(&file.origin()));
        }
    }
    if whole_dir && errors == 0 {
        let set: Vec<Arc<script::Script>> = checked
            .iter()
            .filter_map(|f| f.checked.script.clone().map(Arc::new))
            .collect();
        if let Err(e) = ScriptSet::from_scripts(set) {
            errors += 1;
            println!("{}: error: {e:#}", scripts_dir.display());
        }
    }
    if errors > 0 {
        bail!(
            "{errors} error(s), {warnings} warning(s) in {} file(s)",
            checked.len()
        );
    }
    println!("ok: {} script(s), {warnings} warning(s)", checked.len());
    Ok(())
}
