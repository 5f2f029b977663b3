//! Recorded prompts: `sounds/<language>/<prompt>.wav` or `.mp3`. A prompt with a recording is
//! played; without one it is spoken. The directory is indexed once at start, and `/sounds/`
//! serves exactly the indexed recordings, nothing else in the directory and nothing a symlink
//! leads out of it to: the URL is public (Twilio fetches it without credentials), and the
//! directory may hold notes, or a file an attacker managed to name `x.html`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::startup::AppState;

#[derive(Debug, Default, Clone)]
pub struct SoundIndex {
    /// `<language>/<file name>` of every playable file.
    files: HashSet<String>,
    /// The directory, with every symlink in its path resolved: what a served file's real path
    /// must lie in.
    root: Option<PathBuf>,
}

/// Twilio plays WAV and MP3.
const PLAYABLE: [&str; 2] = ["wav", "mp3"];

/// The type a recording is served with, by its extension (the index holds no other kind).
fn content_type(name: &str) -> Option<&'static str> {
    let ext = Path::new(name).extension()?;
    if ext.eq_ignore_ascii_case("wav") {
        Some("audio/wav")
    } else if ext.eq_ignore_ascii_case("mp3") {
        Some("audio/mpeg")
    } else {
        None
    }
}

/// `path`'s real location if it is a regular file inside `root` (after every symlink).
fn inside(root: &Path, path: &Path) -> Option<PathBuf> {
    let real = path.canonicalize().ok()?;
    (real.starts_with(root) && real.is_file()).then_some(real)
}

impl SoundIndex {
    pub fn scan(dir: &Path) -> Self {
        let mut files = HashSet::new();
        let Ok(root) = dir.canonicalize() else {
            return Self::default();
        };
        let Ok(languages) = std::fs::read_dir(&root) else {
            return Self::default();
        };
        for language in languages.flatten() {
            let Ok(entries) = std::fs::read_dir(language.path()) else {
                continue;
            };
            let lang = language.file_name().to_string_lossy().into_owned();
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                // A symlink may point within the directory (one recording shared by two
                // names), never out of it.
                if content_type(&name).is_some() && inside(&root, &entry.path()).is_some() {
                    files.insert(format!("{lang}/{name}"));
                }
            }
        }
        Self {
            files,
            root: Some(root),
        }
    }

    /// The path under `/sounds/` of a named recording in `language`, if it exists.
    pub fn file(&self, language: &str, file: &str) -> Option<String> {
        let path = format!("{language}/{file}");
        self.files.contains(&path).then_some(path)
    }

    /// The path under `/sounds/` of the recording for `prompt` in `language`, if there is one.
    pub fn find(&self, language: &str, prompt: &str) -> Option<String> {
        PLAYABLE
            .iter()
            .map(|ext| format!("{language}/{prompt}.{ext}"))
            .find(|path| self.files.contains(path))
    }

    /// Where the indexed recording `language/file` really is, checked again now: a file
    /// swapped for a symlink out of the directory since the scan is not followed.
    fn resolve(&self, language: &str, file: &str) -> Option<PathBuf> {
        let known = self.file(language, file)?;
        let root = self.root.as_deref()?;
        inside(root, &root.join(known))
    }
}

/// `GET /sounds/{language}/{file}` (and HEAD, and ranges): an indexed recording, as audio;
/// anything else 404.
pub async fn serve(
    State(state): State<AppState>,
    UrlPath((language, file)): UrlPath<(String, String)>,
    request: Request,
) -> Response {
    let (Some(path), Some(kind)) = (
        state.ivr.sounds.resolve(&language, &file),
        content_type(&file),
    ) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Ok(response) = ServeFile::new(path).oneshot(request).await;
    let mut response = response.map(Body::new);
    if response.status().is_success() {
        // The type is ours to say, never guessed (by us or, with nosniff, by the client).
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_playable_recordings_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pl-PL")).unwrap();
        std::fs::write(dir.path().join("pl-PL/greeting.mp3"), b"ID3").unwrap();
        std::fs::write(dir.path().join("pl-PL/menu.ogg"), b"Ogg").unwrap();
        let index = super::SoundIndex::scan(dir.path());
        assert_eq!(
            index.find("pl-PL", "greeting").as_deref(),
            Some("pl-PL/greeting.mp3")
        );
        assert_eq!(index.find("pl-PL", "menu"), None);
        assert_eq!(index.find("en-US", "greeting"), None);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_followed_within_the_directory_only() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pl-PL")).unwrap();
        std::fs::write(dir.path().join("pl-PL/greeting.wav"), b"RIFF").unwrap();
        std::fs::write(outside.path().join("secret.wav"), b"RIFF").unwrap();
        let link = |to: &std::path::Path, name: &str| {
            std::os::unix::fs::symlink(to, dir.path().join("pl-PL").join(name)).unwrap()
        };
        link(&dir.path().join("pl-PL/greeting.wav"), "hello.wav");
        link(&outside.path().join("secret.wav"), "leak.wav");
        let index = super::SoundIndex::scan(dir.path());
        assert!(index.file("pl-PL", "hello.wav").is_some());
        assert!(index.resolve("pl-PL", "hello.wav").is_some());
        assert_eq!(index.file("pl-PL", "leak.wav"), None);
        // A file swapped for a way out after the scan is not followed either.
        std::fs::remove_file(dir.path().join("pl-PL/greeting.wav")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.wav"),
            dir.path().join("pl-PL/greeting.wav"),
        )
        .unwrap();
        assert!(index.file("pl-PL", "greeting.wav").is_some());
        assert_eq!(index.resolve("pl-PL", "greeting.wav"), None);
    }
}
