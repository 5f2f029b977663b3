//! `callgate backup` while the server answers calls, and the documented restore.

use crate::common::*;

#[tokio::test]
async fn a_backup_taken_while_serving_restores_to_a_working_server() {
    let app = TestApp::spawn().await;
    app.add_account("ACC-B", "+48601234567", Some("246810"), false);
    // Calls keep coming while the backup runs.
    let endpoint = app.endpoint();
    let traffic = tokio::spawn(async move {
        for _ in 0..30 {
            let mut c = Caller::new(&endpoint, "+48601234567");
            c.dial().await;
            c.press("246810#").await;
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    let copy_path = copy.to_str().unwrap();
    let out = callgate_cli(&app.data_dir, &["backup", copy_path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("integrity ok") && stdout.contains("callgate.key"),
        "{stdout}"
    );
    traffic.await.unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // A second backup to the same file is refused.
    let again = callgate_cli(&app.data_dir, &["backup", copy_path]);
    assert!(!again.status.success());

    // Restore as the README says: the copy as callgate.db, the same key file.
    let restored = dir.path().join("restored");
    std::fs::create_dir_all(&restored).unwrap();
    std::fs::copy(&copy, restored.join("callgate.db")).unwrap();
    std::fs::copy(
        app.data_dir.join("callgate.key"),
        restored.join("callgate.key"),
    )
    .unwrap();
    let back = TestApp::start(&restored, |_| {}).await;
    let mut caller = Caller::new(&back, "+48601234567");
    caller.dial().await;
    let menu = caller.press("246810#").await;
    assert!(
        menu.said().contains("W sprawie rozliczeń"),
        "{}",
        menu.said()
    );
}
