//! callgate's developer commands, run as `cargo xtask <command>` (the alias is in
//! `.cargo/config.toml`), so a fresh machine needs nothing but the Rust toolchain.
//!
//! `cargo xtask test [ARGS...]` is the README's test command and what `.ci/run` calls: it makes
//! sure everything the tests talk to is there (today: Chromium and chromedriver for the browser
//! tests, from Debian's packages), then runs `cargo test --locked --no-fail-fast [ARGS...]`, so
//! one failing test binary does not hide the others.

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
    setup()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    without_run_environment(&mut command);
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
    Ok(ExitCode::SUCCESS)
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
