//! IVR scripts: save a draft, publish a version, roll back, and import the script files at
//! start. Every way a version goes live passes the checker and the whole-set check here: no
//! number bound to two scripts, a `default` script. A set that does not hold together would
//! keep answering in the running server and stop the next start.

use std::path::Path;
use std::sync::Arc;

use super::{Actor, Refused, Result};
use crate::ivr::script::{self, Env, Problem, Script, ScriptSet, Severity};
use crate::store::Db;

/// A script source may not be larger than this.
pub const MAX_SOURCE_BYTES: usize = 60 * 1024;

/// A text that passed the checker under the name it is saved as: the only thing `save_draft`
/// takes, so nothing unchecked is ever saved.
pub struct Draft {
    name: String,
    source: String,
    script: Script,
    warnings: Vec<Problem>,
}

impl Draft {
    /// Checks `source` for saving as a version of `name`: every checker problem, plus a name in
    /// the text that is not `name`.
    pub fn check(name: &str, source: String, env: Env<'_>) -> std::result::Result<Self, Refused> {
        if source.len() > MAX_SOURCE_BYTES {
            return Err(Refused::Invalid(format!(
                "a script may be at most {MAX_SOURCE_BYTES} bytes"
            )));
        }
        let mut checked = script::check(&source, env);
        if let Some(s) = &checked.script
            && s.name != name
        {
            let line = source
                .lines()
                .position(|l| l.trim_start().starts_with("name"))
                .map_or(1, |i| i + 1);
            checked.problems.push(Problem {
                severity: Severity::Error,
                line,
                col: 1,
                message: format!("the script is named {:?} but is saved as {name:?}", s.name),
            });
            return Err(unchecked(checked.problems));
        }
        match checked.script {
            Some(script) => Ok(Self {
                name: name.to_owned(),
                source,
                script,
                warnings: checked.problems,
            }),
            None => Err(unchecked(checked.problems)),
        }
    }

    /// The checker's warnings (a draft with errors is no draft).
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }
}

fn unchecked(problems: Vec<Problem>) -> Refused {
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    Refused::Unchecked {
        message: format!("the script has {errors} error(s)"),
        problems,
    }
}

/// A saved draft: its version, and the checker's warnings.
#[derive(Debug)]
pub struct Saved {
    pub name: String,
    pub version: i64,
    pub warnings: Vec<Problem>,
}

/// Saves a checked draft as the script's next version (a new script when the name is new).
/// Nothing is published. Audited as `script.save`, with the diff.
pub fn save_draft(
    db: &dyn Db,
    actor: &Actor,
    draft: Draft,
    origin: &str,
    now: i64,
) -> Result<Saved> {
    let version = db.add_script_version(&draft.name, &draft.source, origin, actor.as_str(), now)?;
    tracing::info!(script = %draft.name, version, "script draft saved");
    Ok(Saved {
        name: draft.name,
        version,
        warnings: draft.warnings,
    })
}

#[derive(Debug)]
pub struct Published {
    pub name: String,
    pub published_version: i64,
    pub previous_version: Option<i64>,
}

/// Publishes a saved version: the next call takes it. The version is checked again (sound files
/// may have gone since it was saved), and the published set with it in place of the script's
/// current version must hold together. Audited as `script.publish`.
pub fn publish(
    db: &dyn Db,
    env: Env<'_>,
    actor: &Actor,
    name: &str,
    version: i64,
    now: i64,
) -> Result<Published> {
    let Some(source) = db.script_source(name, version)? else {
        return Err(Refused::NotFound(format!("script {name} has no version {version}")).into());
    };
    let mut candidate = Draft::check(name, source, env)?.script;
    candidate.version = version;
    whole_set_with(db, candidate)?;
    let previous = db.published_version(name)?;
    db.publish_script(name, version, actor.as_str(), now)?;
    tracing::info!(script = %name, version, "script published");
    Ok(Published {
        name: name.to_owned(),
        published_version: version,
        previous_version: previous,
    })
}

/// A rollback is a publish of an earlier version; it is refused for a version that is not
/// earlier, so a mistyped number cannot push an untested draft live.
pub fn rollback(
    db: &dyn Db,
    env: Env<'_>,
    actor: &Actor,
    name: &str,
    version: i64,
    now: i64,
) -> Result<Published> {
    if let Some(current) = db.published_version(name)?
        && version >= current
    {
        return Err(Refused::Conflict(format!(
            "version {version} is not earlier than the published version {current}"
        ))
        .into());
    }
    publish(db, env, actor, name, version, now)
}

/// The whole-set check: the published scripts, with `candidate` in place of its script's
/// published version, must make a `ScriptSet`. They are read from the database in the
/// publish's own transaction, not from a server's memory, so another process's publish cannot
/// slip in between the check and the write. Compiling them costs about a millisecond per
/// script (release build), which a publish, rare by nature, may take from the writer.
fn whole_set_with(db: &dyn Db, candidate: Script) -> Result<()> {
    let mut list: Vec<Arc<Script>> = script::published_scripts(db)?
        .into_iter()
        .filter(|s| s.name != candidate.name)
        .collect();
    list.push(Arc::new(candidate));
    ScriptSet::from_scripts(list).map_err(|e| Refused::Conflict(format!("{e:#}")))?;
    Ok(())
}

/// What importing the scripts directory did.
pub struct Imported {
    /// (script, new version) for every file that changed and was published.
    pub published: Vec<(String, i64)>,
    /// Rendered problems of files that were not imported.
    pub rejected: Vec<String>,
    /// The published set after the import, which holds together.
    pub set: ScriptSet,
}

/// Imports the script files at start: a file whose text no version of its script has yet
/// becomes a new version and is published (files are how scripts are deployed from version
/// control). A file with errors is not imported; the version published before keeps answering.
/// The published set must then hold together; if it does not, nothing can start: the error
/// says why (the files' problems when some were refused), and the caller rolls back.
pub fn import_files(db: &dyn Db, dir: &Path, env: Env<'_>, now: i64) -> anyhow::Result<Imported> {
    let actor = Actor::files();
    let mut published = Vec::new();
    let mut rejected = Vec::new();
    for file in script::read_dir(dir, env)? {
        let Some(script) = &file.checked.script else {
            let origin = file.origin();
            rejected.extend(file.checked.errors().map(|p| p.render(&origin)));
            continue;
        };
        // A text that any version already has is not new: the file was imported before, and
        // versions an admin saved since then must not be overridden by it at every restart.
        if db.script_has_source(&script.name, &file.source)? {
            continue;
        }
        let name = &script.name;
        let version = db.add_script_version(name, &file.source, "file", actor.as_str(), now)?;
        db.publish_script(name, version, actor.as_str(), now)?;
        published.push((name.clone(), version));
    }
    match script::published_set(db) {
        Ok(set) => Ok(Imported {
            published,
            rejected,
            set,
        }),
        Err(e) if rejected.is_empty() => Err(e),
        // With nothing published to fall back on, the refused files are the reason.
        Err(_) => anyhow::bail!("invalid IVR scripts:\n  {}", rejected.join("\n  ")),
    }
}
