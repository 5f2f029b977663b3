//! callgate's developer commands, run as `cargo xtask <command>` (the alias is in
//! `.cargo/config.toml`), so a fresh machine needs nothing but the Rust toolchain.
//!
//! `cargo xtask test [ARGS...]` is the README's test command and what `.ci/run` calls: it makes
//! sure everything the tests talk to is there (Chromium and chromedriver for the browser tests,
//! from Debian's packages; a PostgreSQL server for the storage tests' PostgreSQL half), then runs
//! `cargo test --locked --no-fail-fast [ARGS...]`, so one failing test binary does not hide the
//! others.
//!
//! PostgreSQL: `CALLGATE_TEST_POSTGRES_URL` when set; else a server already listening on
//! 127.0.0.1:5432 (the development machines run one with trust authentication); else a server
//! of our own, started from Debian's `postgresql` package (installed when missing) in a
//! temporary directory on port 54329 with trust authentication, stopped when the tests end.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("setup") => setup(),
        _ => {
            eprintln!(
                "usage: cargo xtask test [cargo test arguments]   install what the tests need, then run them\n       \
                 cargo xtask setup                            only install what the tests need"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root: the parent of this crate.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn test(extra: &[String]) -> Result<ExitCode, String> {
    ensure_browser()?;
    let postgres = ensure_postgres()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    check_fuzz_targets(&cargo)?;
    let mut command = Command::new(cargo);
    without_run_environment(&mut command);
    command.env("CALLGATE_TEST_POSTGRES_URL", postgres.url());
    let status = command
        .current_dir(root())
        .args(["test", "--locked", "--no-fail-fast"])
        .args(extra)
        .status()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(n) => ExitCode::from(u8::try_from(n).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

/// The fuzz targets live in a workspace of their own (they need libFuzzer), so `cargo test`
/// never compiles them and a rename in the library broke CI's fuzzing run unseen once. A plain
/// `cargo check` of them (about a minute cold, seconds warm) catches that here.
fn check_fuzz_targets(cargo: &str) -> Result<(), String> {
    let mut command = Command::new(cargo);
    without_run_environment(&mut command);
    let status = command
        .current_dir(root())
        .args([
            "check",
            "--locked",
            "--manifest-path",
            "fuzz/Cargo.toml",
            "--bins",
        ])
        .env("CARGO_TARGET_DIR", root().join("target").join("fuzz-check"))
        .status()
        .map_err(|e| format!("cannot run cargo check on the fuzz targets: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("the fuzz targets do not compile (cargo check --manifest-path fuzz/Cargo.toml)".into())
    }
}

/// `cargo run` gives the program it runs its package's variables and a library path into the
/// target directory; a build started from here with them would see another environment than
/// one started from the shell, and rebuild crates whose build scripts watch it.
fn without_run_environment(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_PKG_")
            || matches!(
                key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "RUST_RECURSION_COUNT"
            )
        {
            command.env_remove(key);
        }
    }
    if let Some(paths) = std::env::var_os("LD_LIBRARY_PATH") {
        let target = root().join("target");
        let kept: Vec<PathBuf> = std::env::split_paths(&paths)
            .filter(|p| !p.starts_with(&target) && !p.to_string_lossy().contains("/rustlib/"))
            .collect();
        if kept.is_empty() {
            command.env_remove("LD_LIBRARY_PATH");
        } else if let Ok(joined) = std::env::join_paths(kept) {
            command.env("LD_LIBRARY_PATH", joined);
        }
    }
}

fn setup() -> Result<ExitCode, String> {
    ensure_browser()?;
    let postgres = ensure_postgres()?;
    eprintln!("xtask: PostgreSQL for the tests: {}", postgres.url());
    // `setup` alone leaves a server it started running, for the developer's own test runs.
    std::mem::forget(postgres);
    Ok(ExitCode::SUCCESS)
}

/// The PostgreSQL server the tests use; one this command started is stopped on drop.
enum Postgres {
    Given(String),
    Own {
        url: String,
        ctl: PathBuf,
        dir: PathBuf,
    },
}

impl Postgres {
    fn url(&self) -> &str {
        match self {
            Self::Given(url) | Self::Own { url, .. } => url,
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Self::Own { ctl, dir, .. } = self {
            let _ = as_postgres_user(
                ctl,
                &["-D", &dir.display().to_string(), "-m", "fast", "stop"],
            )
            .status();
        }
    }
}

const OWN_POSTGRES_PORT: u16 = 54329;

fn ensure_postgres() -> Result<Postgres, String> {
    if let Ok(url) = std::env::var("CALLGATE_TEST_POSTGRES_URL") {
        return Ok(Postgres::Given(url));
    }
    let own = std::env::var("CALLGATE_XTASK_OWN_POSTGRES").is_ok_and(|v| v == "1");
    if !own && listening(5432) {
        return Ok(Postgres::Given(
            "postgres://postgres@127.0.0.1:5432/postgres".into(),
        ));
    }
    let bin = match postgres_bin() {
        Some(bin) => bin,
        None => {
            if !on_path("apt-get") {
                return Err("the storage tests need PostgreSQL: set CALLGATE_TEST_POSTGRES_URL to a                             server where user postgres may create databases, or install PostgreSQL"
                    .into());
            }
            eprintln!("xtask: installing postgresql (Debian) for the storage tests");
            apt(&["update"])?;
            apt(&["install", "-y", "--no-install-recommends", "postgresql"])?;
            postgres_bin().ok_or("PostgreSQL's programs are still missing after installing it")?
        }
    };
    let dir = std::env::temp_dir().join(format!("callgate-xtask-postgres-{OWN_POSTGRES_PORT}"));
    let ctl = bin.join("pg_ctl");
    let url = format!("postgres://postgres@127.0.0.1:{OWN_POSTGRES_PORT}/postgres");
    if listening(OWN_POSTGRES_PORT) {
        // Left running by `cargo xtask setup` or an interrupted run: use it, leave it.
        return Ok(Postgres::Given(url));
    }
    if !dir.join("PG_VERSION").is_file() {
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        if is_root() {
            // PostgreSQL refuses to run as root: the package's `postgres` user owns the cluster.
            run(Command::new("chown").args(["postgres:postgres", &dir.display().to_string()]))?;
        }
        run(&mut as_postgres_user(
            &bin.join("initdb"),
            &[
                "-D",
                &dir.display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        ))?;
    }
    let options = format!(
        "-p {OWN_POSTGRES_PORT} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
        dir.display()
    );
    run(&mut as_postgres_user(
        &ctl,
        &[
            "-D",
            &dir.display().to_string(),
            "-o",
            &options,
            "-l",
            &dir.join("server.log").display().to_string(),
            "-w",
            "start",
        ],
    ))?;
    eprintln!("xtask: started PostgreSQL for the tests on 127.0.0.1:{OWN_POSTGRES_PORT}");
    Ok(Postgres::Own { url, ctl, dir })
}

/// The newest installed PostgreSQL's programs (Debian keeps them out of PATH).
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn as_postgres_user(program: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program).args(args);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("cannot run {:?}: {e}", command.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{:?} failed ({status})", command.get_program()))
    }
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        std::time::Duration::from_millis(500),
    )
    .is_ok()
}

/// The browser tests drive headless Chromium through chromedriver; they fail, never skip,
/// without them. Debian's packages are the ones this project's machines reach.
fn ensure_browser() -> Result<(), String> {
    if on_path("chromium") && on_path("chromedriver") {
        return Ok(());
    }
    if !on_path("apt-get") {
        return Err(
            "the browser tests need `chromium` and `chromedriver` on PATH, and this machine has no \
             apt-get to install them: install both (matching versions), then run this again"
                .into(),
        );
    }
    eprintln!("xtask: installing chromium and chromium-driver (Debian) for the browser tests");
    apt(&["update"])?;
    apt(&[
        "install",
        "-y",
        "--no-install-recommends",
        "chromium",
        "chromium-driver",
    ])?;
    if on_path("chromium") && on_path("chromedriver") {
        Ok(())
    } else {
        Err("chromium and chromedriver are still not on PATH after installing them".into())
    }
}

fn apt(args: &[&str]) -> Result<(), String> {
    let mut command = if is_root() {
        Command::new("apt-get")
    } else {
        let mut c = Command::new("sudo");
        c.arg("apt-get");
        c
    };
    let status = command
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("apt-get {} failed ({status})", args.join(" ")))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let candidate = dir.join(program);
            candidate.is_file()
        })
    })
}
