//! Recorded prompts: `sounds/<language>/<prompt>.wav` or `.mp3`. A prompt with a recording is
//! played; without one it is spoken. The directory is indexed once at start.

use std::collections::HashSet;
use std::path::Path;

#[derive(Debug, Default, Clone)]
pub struct SoundIndex {
    /// `<language>/<file name>` of every playable file.
    files: HashSet<String>,
}

/// Twilio plays WAV and MP3.
const PLAYABLE: [&str; 2] = ["wav", "mp3"];

impl SoundIndex {
    pub fn scan(dir: &Path) -> Self {
        let mut files = HashSet::new();
        let Ok(languages) = std::fs::read_dir(dir) else {
            return Self::default();
        };
        for language in languages.flatten() {
            let Ok(entries) = std::fs::read_dir(language.path()) else {
                continue;
            };
            let lang = language.file_name().to_string_lossy().into_owned();
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let playable = Path::new(&name)
                    .extension()
                    .is_some_and(|e| PLAYABLE.iter().any(|p| e.eq_ignore_ascii_case(p)));
                if playable && entry.path().is_file() {
                    files.insert(format!("{lang}/{name}"));
                }
            }
        }
        Self { files }
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
}
